"""Base models trained by ``nomade train`` (each follows nomade.train.base.TrainedModel)."""
