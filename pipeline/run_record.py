"""What one pipeline run did, read back from MLMD through its ``pipeline_run`` context: runs share one database,
so "the newest execution of each component" may belong to another run."""
from __future__ import annotations

from typing import Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

CACHED, RUNNING = metadata_store_pb2.Execution.CACHED, metadata_store_pb2.Execution.RUNNING


def open_store(metadata_path: str) -> metadata_store.MetadataStore:
    return metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(metadata_path))


class RunRecord:
    """The executions of one pipeline run, by component (node) id."""

    def __init__(self, store: metadata_store.MetadataStore, run_id: str) -> None:
        self.store = store
        self.executions: dict[str, metadata_store_pb2.Execution] = {}
        context = store.get_context_by_type_and_name("pipeline_run", run_id)
        if context is None:
            return
        for execution in store.get_executions_by_context(context.id):
            for node in store.get_contexts_by_execution(execution.id):
                if store.get_context_types_by_id([node.type_id])[0].name == "node":
                    self.executions[node.name.rpartition(".")[2]] = execution

    def state(self, component: str) -> Optional[int]:
        execution = self.executions.get(component)
        return execution.last_known_state if execution else None

    def cached(self) -> list[str]:
        return sorted(name for name, e in self.executions.items() if e.last_known_state == CACHED)

    def output(self, component: str, type_name: str) -> Optional[metadata_store_pb2.Artifact]:
        """The artifact of ``type_name`` the component's execution in this run output (or reused)."""
        if component not in self.executions:
            return None
        type_id = self.store.get_artifact_type(type_name).id
        return next((a for a in outputs_of(self.store, [self.executions[component]]) if a.type_id == type_id), None)


def producers_of(store: metadata_store.MetadataStore, artifact_ids: list[int],
                 exclude: int = -1) -> list[metadata_store_pb2.Execution]:
    """The executions that output any of these artifacts: the one that computed them and any later one
    that took them from the cache (which had the same inputs); ``exclude`` leaves one execution out."""
    ids = {e.execution_id for e in store.get_events_by_artifact_ids(artifact_ids)
           if e.type == metadata_store_pb2.Event.OUTPUT and e.execution_id != exclude}
    return store.get_executions_by_id(sorted(ids))


def inputs_of(store: metadata_store.MetadataStore,
              executions: list[metadata_store_pb2.Execution]) -> list[metadata_store_pb2.Artifact]:
    return _artifacts_of(store, executions, metadata_store_pb2.Event.INPUT)


def outputs_of(store: metadata_store.MetadataStore,
               executions: list[metadata_store_pb2.Execution]) -> list[metadata_store_pb2.Artifact]:
    return _artifacts_of(store, executions, metadata_store_pb2.Event.OUTPUT)


def _artifacts_of(store: metadata_store.MetadataStore, executions: list[metadata_store_pb2.Execution],
                  event_type: int) -> list[metadata_store_pb2.Artifact]:
    ids = {e.artifact_id for e in store.get_events_by_execution_ids([x.id for x in executions]) if e.type == event_type}
    return store.get_artifacts_by_id(sorted(ids))


def ingested_examples_of(store: metadata_store.MetadataStore,
                         model: metadata_store_pb2.Artifact) -> metadata_store_pb2.Artifact:
    """AudioExampleGen's Examples this model was trained from, through Transform's lineage: runs at another sample
    rate share the store, so the newest ingestion may not be this model's."""
    examples_type, artifact = store.get_artifact_type("Examples").id, model
    for producer in ("/Transform/", "/AudioExampleGen/"):  # the model's Examples, then theirs
        [artifact] = [a for a in inputs_of(store, producers_of(store, [artifact.id]))
                      if a.type_id == examples_type and producer in a.uri]
    return artifact


def fail_orphaned_executions(store: metadata_store.MetadataStore) -> int:
    """Executions still RUNNING belong to a run that died (the caller holds the output-dir lock)."""
    orphans = [e for e in store.get_executions() if e.last_known_state == RUNNING]
    for execution in orphans:
        execution.last_known_state = metadata_store_pb2.Execution.FAILED
        execution.custom_properties["genre_note"].string_value = "left RUNNING by a run that ended without finishing"
    if orphans:
        store.put_executions(orphans)
    return len(orphans)
