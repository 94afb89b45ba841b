"""Scoring: load a bundle, build features from its history tables, run ONNX models with
onnxruntime, explain with tree contributions. Imports stdlib, numpy and onnxruntime only."""
