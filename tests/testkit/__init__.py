"""Test fixtures and builders shared by the tests and the benchmarks: stand-in models, the stand-in
server on a model dir, tiny Transform runs, toy training data.

Outside the product: tests and bench/ import it; no product module does (tests/test_layering.py checks).
"""
