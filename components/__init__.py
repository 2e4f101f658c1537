"""Custom TFX components, one folder each, and what their executors share: a model's input contract (contract),
the tracks it has seen (model_tracks), the fingerprint of the code a component runs (code_fingerprint)."""
