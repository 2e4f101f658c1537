"""Model code, split by concern: audio framing, features, preprocessing, model families, training, signatures."""
