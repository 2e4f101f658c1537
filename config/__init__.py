"""The ground floor: typed settings and constants (settings), the errors a user can cause and fix (errors), and
loopback HTTP helpers (local_http). It imports nothing of the project's, so every other package can import it."""
import os

# TFX 1.21's Transform and TFMA need Keras 2 (tf_keras). Entry points set this too; every package imports
# this one, so it is the safety net for anything that imports the project before TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
