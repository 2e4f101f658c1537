"""TF Serving's layout read without TensorFlow: which version folders count, and under which folder name."""
from serving.layout import pushed_versions, version_folders
from tests.testkit.versions import fake_version


def test_complete_numeric_folders_count_by_number_and_keep_their_own_name(tmp_path):
    fake_version(tmp_path, "007")
    fake_version(tmp_path, "12")
    fake_version(tmp_path, "13", complete=False)  # still being written: not loadable yet
    fake_version(tmp_path, "latest")
    assert version_folders(str(tmp_path)) == {7: str(tmp_path / "007"), 12: str(tmp_path / "12")}
    assert pushed_versions(str(tmp_path)) == [7, 12]


def test_a_missing_base_has_no_versions(tmp_path):
    assert pushed_versions(str(tmp_path / "absent")) == [] and version_folders(str(tmp_path / "absent")) == {}
