"""Stream scorer: ONNX probabilities -> uncertainty scores -> Redis ranked queue."""
