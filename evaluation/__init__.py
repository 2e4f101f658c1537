"""Held-out accuracy on the real clips through the whole pipeline, and its robustness to how audio arrives."""
