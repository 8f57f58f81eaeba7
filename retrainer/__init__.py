"""Incremental retrainer: labels topic -> scikit-learn -> ONNX -> validated model versions."""
