"""pytest set-up for serving/: one stand-in model served for a whole test module."""
import pytest

from tests.testkit.serving import build_stand_in_model, serving_endpoint


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """The test double serving version 1 of the stand-in model; yields its host:port."""
    base = tmp_path_factory.mktemp("models") / "genre"
    build_stand_in_model(base, version=1)
    with serving_endpoint(base) as target:
        yield target
