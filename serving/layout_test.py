"""TF Serving's layout read without TensorFlow: which version folders count, and under which folder name."""
from pathlib import Path

from serving.layout import pushed_versions, version_folders


def _version(base: Path, name: str, variables: bool = True) -> None:
    folder = base / name
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"")
    if variables:
        (folder / "variables" / "variables.index").write_bytes(b"")


def test_complete_numeric_folders_count_by_number_and_keep_their_own_name(tmp_path):
    _version(tmp_path, "007")
    _version(tmp_path, "12")
    _version(tmp_path, "13", variables=False)  # still being written: not loadable yet
    _version(tmp_path, "latest")
    assert version_folders(str(tmp_path)) == {7: str(tmp_path / "007"), 12: str(tmp_path / "12")}
    assert pushed_versions(str(tmp_path)) == [7, 12]


def test_a_missing_base_has_no_versions(tmp_path):
    assert pushed_versions(str(tmp_path / "absent")) == [] and version_folders(str(tmp_path / "absent")) == {}
