"""The EfficientAT reference files beside the project (../shared/models/efficientat), never in it."""
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT

SHARED_EFFICIENTAT = ROOT.parent / "shared" / "models" / "efficientat"
REFERENCE = SHARED_EFFICIENTAT / "mn04_reference.npz"
WEIGHTS = SHARED_EFFICIENTAT / "mn04_as_mAP_432.pt"
LABELS = SHARED_EFFICIENTAT / "class_labels_indices.csv"


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"{path.name} not found in {SHARED_EFFICIENTAT} (reference files are never part of the repository)")
    return path


@pytest.fixture(scope="session")
def mn04_reference() -> dict[str, np.ndarray]:
    """The reference implementation's outputs on two GTZAN excerpts (README.md in that folder)."""
    with np.load(_require(REFERENCE)) as data:
        return {name: data[name] for name in data.files}


@pytest.fixture(scope="session")
def mn04_weights_file() -> Path:
    return _require(WEIGHTS)


@pytest.fixture(scope="session")
def audioset_labels_csv() -> Path:
    return _require(LABELS)
