"""Pipeline definition: component wiring (pipeline.py) and the configuration's command-line flags (flags.py)."""
import os

# TFX 1.21's Transform and TFMA need Keras 2 (tf_keras). Entry points set this too;
# this is the safety net for anything that imports the pipeline before TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
