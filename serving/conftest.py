"""pytest set-up for serving/: test_server.py is the TF Serving test double, not a test module."""
import pytest

from serving.testing import build_stand_in_model, serving_endpoint

collect_ignore = ["test_server.py"]


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """The test double serving version 1 of the stand-in model; yields its host:port."""
    base = tmp_path_factory.mktemp("models") / "genre"
    build_stand_in_model(base, version=1)
    with serving_endpoint(base) as target:
        yield target
