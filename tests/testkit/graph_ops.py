"""The graph check every in-graph feature and augmentation test shares: core TensorFlow ops only, so the
exported model runs on TF Serving, which has no tensorflow-io kernels."""
from __future__ import annotations

from tensorflow.python.framework import op_def_registry


def assert_core_ops_only(concrete_fn) -> set[str]:
    """Every op of the graph (nested functions included) is a registered core op, none tfio's."""
    graph_def = concrete_fn.graph.as_graph_def()
    library = {f.signature.name for f in graph_def.library.function}
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    ops = {n.op for n in nodes if n.op not in library}
    assert not [op for op in ops if op.startswith("IO>")], f"tensorflow-io ops in the graph: {ops}"
    unregistered = sorted(op for op in ops if op_def_registry.get(op) is None)
    assert not unregistered, f"ops not registered in core TensorFlow: {unregistered}"
    return ops
