"""Kubeflow Pipelines v2: compile, image and scheduling of the same pipeline."""
