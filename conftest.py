"""Shared test set-up: Keras 2 before TensorFlow, and the repository on sys.path."""
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Real GTZAN clips live beside the project, never in it. Tests that need them are
# marked real_data and skip, naming the folder, where it is absent.
SHARED_GTZAN = ROOT.parent / "shared" / "data" / "gtzan"
