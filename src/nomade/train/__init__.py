"""Training: the only package allowed to import torch, torch_geometric, lightgbm, xgboost, sklearn,
onnx converters and matplotlib."""
