"""Test fixtures and builders the tests share: stand-in models and version folders, the stand-in server on a
model dir, tiny Transform runs, toy training data, audio files good and bad.

Outside the product: only tests import it; no product module or benchmark does (tests/test_layering.py checks
the product)."""
