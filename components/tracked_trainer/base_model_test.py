"""WarmStartModelStrategy on hand-made MLMD records (SQLite): the base model is the newest blessed model of this
run's warm start key that no Trainer execution trained on the current examples."""
from __future__ import annotations

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata
from tfx.types import standard_artifacts

from components.tracked_trainer.base_model import (BLESSING_KEY, EXAMPLES_KEY, KEY_PROPERTY, MODEL_KEY,
                                                   WarmStartModelStrategy)

Event = metadata_store_pb2.Event


class Records:
    """A store with examples, Trainer executions (examples in, a model out) and ClipEvaluator-style blessings."""

    def __init__(self, path) -> None:
        self.store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(str(path)))
        self.trainer_type = self.store.put_execution_type(metadata_store_pb2.ExecutionType(name="Trainer"))
        self.models, self.blessings = [], []

    def put(self, artifact):
        artifact.type_id = self.store.put_artifact_type(artifact.artifact_type)
        [artifact.id] = self.store.put_artifacts([artifact.mlmd_artifact])
        return artifact

    def examples(self):
        return self.put(standard_artifacts.Examples())

    def train(self, examples, *inputs, model=None, blessed: bool = True, key: str = "cnn"):
        """A Trainer execution reading ``examples`` (and ``inputs``, a base model) and writing ``model`` (a new
        one of warm start key ``key``, or an existing one: a run that took the Trainer from the cache)."""
        if model is None:
            model = standard_artifacts.Model()
            model.set_string_custom_property(KEY_PROPERTY, key)
            model = self.put(model)
        execution = metadata_store_pb2.Execution(type_id=self.trainer_type)
        self.store.put_execution(execution, [
            *[(a.mlmd_artifact, Event(type=Event.INPUT)) for a in (examples, *inputs)],
            (model.mlmd_artifact, Event(type=Event.OUTPUT))], contexts=[])
        if model not in self.models:
            self.models.append(model)
            blessing = standard_artifacts.ModelBlessing()
            blessing.set_int_custom_property("blessed", int(blessed))
            blessing.set_int_custom_property("current_model_id", model.id)
            self.blessings.append(self.put(blessing))
        return model

    def resolve(self, current_examples, key: str = "cnn") -> list:
        result = WarmStartModelStrategy(key).resolve_artifacts(self.store, {
            MODEL_KEY: list(self.models), BLESSING_KEY: list(self.blessings), EXAMPLES_KEY: [current_examples]})
        assert result[EXAMPLES_KEY] == [current_examples]
        assert [b.get_int_custom_property("current_model_id") for b in result[BLESSING_KEY]] == [
            m.id for m in result[MODEL_KEY]]
        return [m.id for m in result[MODEL_KEY]]


@pytest.fixture
def records(tmp_path) -> Records:
    return Records(tmp_path / "metadata.sqlite")


def test_an_unchanged_re_run_resolves_the_base_model_of_the_run_it_repeats(records):
    """Run 1 trains on e1; run 2, on grown data e2, starts from run 1's model. A re-run of run 2 (e2 again) must
    resolve run 1's model again, not run 2's own (then TFX's cache would see a new input and retrain)."""
    e1, e2 = records.examples(), records.examples()
    first = records.train(e1)
    second = records.train(e2, first)
    assert records.resolve(e2) == [first.id]
    records.train(e2, first, model=second)  # the re-run's Trainer, taken from the cache: the same model again
    assert records.resolve(e2) == [first.id]


def test_new_examples_resolve_the_newest_blessed_model(records):
    e1, e2, e3 = records.examples(), records.examples(), records.examples()
    first = records.train(e1)
    second = records.train(e2, first)
    records.train(e3, second, blessed=False)  # a newer model the gate refused
    assert records.resolve(records.examples()) == [second.id]
    assert records.resolve(e3) == [second.id]


def test_no_blessed_model_of_other_examples_resolves_nothing(records):
    e1 = records.examples()
    assert records.resolve(e1) == []  # no model yet
    records.train(e1)
    assert records.resolve(e1) == []  # the only champion trained on these very examples
    records.train(records.examples(), blessed=False)
    assert records.resolve(e1) == []  # the other model was never blessed


def test_a_model_of_another_family_or_input_is_passed_over(records):
    """CNN, then a VGG blessed on its own examples, then the CNN's run again: it resolves what it resolved the first
    time (nothing), so its Trainer comes from the cache; a CNN run on new examples starts from the CNN."""
    cnn_examples = records.examples()
    cnn = records.train(cnn_examples)
    vgg = records.train(records.examples(), key="vgg")
    assert records.resolve(cnn_examples) == []
    assert records.resolve(records.examples()) == [cnn.id]
    assert records.resolve(records.examples(), key="vgg") == [vgg.id]
