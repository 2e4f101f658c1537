"""Beam's Dask runner with the fixes any pipeline with more than one branch needs (docs/distributed.md): Beam's
own computes only the last branch, gives a multi-output ParDo's consumers all its outputs, drops what
``finish_bundle`` emits, recomputes side inputs and cannot translate ``beam.io.Read``. Like Beam's: global window
only, no metrics. Use ``--runner=pipeline.dask_runner.DaskRunner --dask_client_address=HOST:PORT``."""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.pipeline import AppliedPTransform, PipelineVisitor
from apache_beam.runners.common import DoFnContext, DoFnInvoker, DoFnSignature, Receiver, _OutputHandler
from apache_beam.runners.dask import dask_runner as beam_dask
from apache_beam.runners.dask import overrides
from apache_beam.runners.dask import transform_evaluator as te
from apache_beam.runners.runner import PipelineState
from apache_beam.transforms.sideinputs import SideInputMap

READ_BUNDLE_BYTES = 64 << 20  # desired size of one Read split (one Dask task)


@dataclasses.dataclass
class _TagReceiver(Receiver):
    tag: Optional[str]
    out: list

    def receive(self, windowed_value) -> None:
        self.out.append((self.tag, windowed_value.value))


class _Receivers(dict):
    def __init__(self, out: list):
        super().__init__()
        self.out = out

    def __missing__(self, tag):
        self[tag] = _TagReceiver(tag, self.out)
        return self[tag]


def _run_bundle(items, fn, label, args, kwargs, window_fn, side_specs, *side_values) -> list:
    """One Dask partition = one bundle: every output, tagged, finish_bundle's included."""
    out: list = []
    receivers = _Receivers(out)
    side_inputs = [SideInputMap(view_type, view_options, [te.get_windowed_value(v, window_mapping_fn) for v in values])
                   for (view_type, view_options, window_mapping_fn), values in zip(side_specs, side_values)]
    handler = _OutputHandler(window_fn=window_fn, main_receivers=receivers[None], tagged_receivers=receivers,
                             per_element_output_counter=None, output_batch_converter=None,
                             process_yields_batches=False, process_batch_yields_elements=False)
    invoker = DoFnInvoker.create_invoker(
        DoFnSignature(fn), handler, context=DoFnContext(label, state=None), side_inputs=side_inputs,
        input_args=args, input_kwargs=kwargs, user_state_context=None,
        bundle_finalizer_param=beam.DoFn.BundleFinalizerParam())
    invoker.invoke_setup()
    invoker.invoke_start_bundle()
    for item in items:
        invoker.invoke_process(te.get_windowed_value(item, window_fn))
    invoker.invoke_finish_bundle()
    invoker.invoke_teardown()
    return out


def _concat(*partitions) -> list:
    return [x for part in partitions for x in part]


def _select(pairs, tag) -> list:
    return [value for t, value in pairs if t == tag]


def _read_splits(bundles) -> list:
    return [x for b in bundles for x in b.source.read(b.source.get_range_tracker(b.start_position, b.stop_position))]


def _count(partition) -> list:
    return [sum(1 for _ in partition)]


class _Translator(PipelineVisitor):
    """Beam transforms -> Dask bags, one per PCollection; remembers which PCollections are read."""

    def __init__(self, bag_kwargs: dict):
        self.bag_kwargs = bag_kwargs
        self.bags: dict[pvalue.PCollection, Any] = {}
        self.consumed: set[int] = set()

    def visit_transform(self, node: AppliedPTransform) -> None:
        import dask
        import dask.bag as db
        transform = node.transform
        inputs = [i for i in node.inputs if not isinstance(i, pvalue.PBegin)]
        self.consumed.update(id(i) for i in inputs)
        self.consumed.update(id(si.pvalue) for si in node.side_inputs)
        in_bags = [self.bags[i] for i in inputs if self.bags.get(i) is not None]
        cls = type(transform)
        if cls is overrides._Create:
            bag = te.Create(node, bag_kwargs=self.bag_kwargs).apply(None)
        elif cls is beam.ParDo:
            if not in_bags:
                raise NotImplementedError(f"{node.full_label}: its input has no Dask translation on "
                                          f"{__name__}.DaskRunner (see docs/distributed.md)")
            side_specs = [(type(si), si._view_options(), si._window_mapping_fn) for si in node.side_inputs]
            # One Delayed per side input, over the producing bag's own keys: computed once in the graph.
            side_values = [dask.delayed(_concat)(*self.bags[si.pvalue].to_delayed(optimize_graph=False))
                           for si in node.side_inputs]
            main = next(iter(node.main_inputs.values()))
            window_fn = main.windowing.windowfn if hasattr(main, "windowing") else None
            args, kwargs = transform.raw_side_inputs
            pairs = in_bags[0].map_partitions(_run_bundle, transform.fn, transform.label, list(args), kwargs,
                                              window_fn, side_specs, *side_values)
            for tag, pcoll in node.outputs.items():
                self.bags[pcoll] = pairs.map_partitions(_select, tag)
            return
        elif cls is beam.Impulse:
            bag = db.from_sequence([b""], npartitions=1)
        elif cls is overrides._GroupByKeyOnly:
            bag = te.GroupByKey(node, bag_kwargs=self.bag_kwargs).apply(in_bags[0])
        elif cls is overrides._Flatten:
            bag = db.concat(in_bags) if in_bags else None
        elif cls is overrides._Read:
            splits = list(transform.source.split(desired_bundle_size=READ_BUNDLE_BYTES))
            bag = db.from_sequence(splits, npartitions=max(1, len(splits))).map_partitions(_read_splits)
        else:  # _Reshuffle, _GroupAlsoByWindow (GroupByKey already grouped the windows' values)
            bag = in_bags[0] if in_bags else None
        for pcoll in node.outputs.values():
            self.bags[pcoll] = bag

    def leaves(self) -> list:
        return [bag.map_partitions(_count) for pcoll, bag in self.bags.items()
                if bag is not None and id(pcoll) not in self.consumed]


class _Result(beam_dask.DaskRunnerResult):
    """Closes its client once the pipeline is done: an open client retries the scheduler forever."""

    def wait_until_finish(self, duration=None) -> str:
        try:
            return super().wait_until_finish(duration)
        finally:
            if self.state in (PipelineState.DONE, PipelineState.FAILED):
                self.client.close()


class DaskRunner(beam_dask.DaskRunner):
    """Executes a Beam pipeline on a Dask distributed cluster, every branch of it."""

    def run_pipeline(self, pipeline, options):
        import dask
        import dask.distributed as ddist
        dask_options = options.view_as(beam_dask.DaskOptions).get_all_options(drop_default=True, current_only=True)
        bag_kwargs = beam_dask.DaskOptions._extract_bag_kwargs(dask_options)
        client = ddist.Client(**dask_options)
        pipeline.replace_all(overrides.dask_overrides())
        translator = _Translator(bag_kwargs)
        pipeline.visit(translator)
        leaves = translator.leaves()
        futures = client.compute(list(dask.optimize(*leaves))) if leaves else []
        return _Result(client, futures)

