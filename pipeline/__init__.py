"""Pipeline definition: component wiring (pipeline.py) and the configuration's command-line flags (flags.py)."""
import config  # noqa: F401 - the ground floor sets TF_USE_LEGACY_KERAS before any module here loads TensorFlow
