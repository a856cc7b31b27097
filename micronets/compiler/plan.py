"""plan: a Graph -> where every tensor lives (a :class:`MemoryPlan`), via the pure planner.

Each model input stays in the caller's buffer, each model output is written straight into its
array in the object (``outputs``, ``outputs1``, ...), and every other tensor that owns bytes gets
an offset in the one static arena. Views share their base's bytes. The ops' in-place rules
(``inplace_gap``) become overlap records, so the planner may let an op write over what it reads.
Nothing here edits the graph: the plan is a separate value the emitter reads next to it.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple

from micronets.compiler import planner
from micronets.compiler.graph import FLOAT_BYTES, Graph, Tensor, input_name

#: element type -> the name a kernel call uses for the arena seen as that type (float graphs'
#: ``arena`` is a float*; an int8 header's run() names its byte arena ``arena_s8`` / ``arena_u8``)
ARENA_VIEWS = {"float32": "arena", "int8": "arena_s8", "uint8": "arena_u8", "int32": "arena_s32"}


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    arena_size: int
    lower_bound: int
    #: storage tensor -> ("input", k) | ("output", k) | ("arena", byte offset)
    locations: Dict[Tensor, Tuple[str, int]]
    #: op -> byte offset of its one-pixel scratch (only for ops planned to overlap their input)
    scratch: Dict[object, int]
    #: op -> byte offset of its workspace (e.g. a ring of rows)
    workspace: Dict[object, int]
    #: op -> the op as it runs under this plan, where the planner chose something for it (a copy
    #: with ``scratch_pixels`` / ``workspace_option`` set; the graph's op is left as traced)
    variants: Dict[object, object]
    result: planner.Plan

    def op(self, op):
        """``op`` as it runs under this plan: what the emitter renders and the figures count."""
        return self.variants.get(op, op)

    def location(self, tensor: Tensor) -> Tuple[str, int]:
        return self.locations[tensor.storage]

    def offset(self, tensor: Tensor) -> Optional[int]:
        kind, value = self.location(tensor)
        return value if kind == "arena" else None

    def in_arena(self, tensor: Tensor) -> bool:
        return self.location(tensor)[0] == "arena"

    def overlaps(self, a: Tensor, b: Tensor) -> bool:
        """True when the two tensors share arena bytes."""
        oa, ob = self.offset(a), self.offset(b)
        if oa is None or ob is None:
            return False
        return oa < ob + b.storage.nbytes and ob < oa + a.storage.nbytes

    def overlaps_input(self, op) -> bool:
        return any(self.overlaps(t, op.output) for t in op.inputs)


def plan_memory(graph: Graph) -> MemoryPlan:
    """Offsets for every tensor of ``graph``, and how each op runs under them. Ops that run faster
    in place with a wider scratch (``wide_scratch_pixels``, widest first) get one where the arena
    stays no larger than with one pixel: every such op at the widest at once if that fits, else op
    by op, widest that fits. Then ops whose workspace only makes them faster
    (``workspace_options``: their kernel runs without it) get it where it costs no arena
    (``_add_workspaces``). The graph's ops are never touched: a choice lives in the plan, as a copy
    of the op with ``scratch_pixels`` / ``workspace_option`` set (``MemoryPlan.op``)."""
    optional = [op for op in graph.ops if getattr(op, "workspace_options", ())]
    # without the optional workspaces first: the wider scratches come first
    settings: Settings = {op: {"workspace_option": _workspace_fallback(op)} for op in optional}
    plan = _plan_memory(graph, settings)
    wide = [op for op in graph.ops if getattr(op, "wide_scratch_pixels", ()) and op in plan.scratch]

    def attempt(choices):
        nonlocal plan, settings
        trial = _with(settings, {op: {"scratch_pixels": pixels} for op, pixels in choices})
        wider = _plan_memory(graph, trial)
        if wider.arena_size <= plan.arena_size:
            plan, settings = wider, trial
            return True
        return False

    if wide and not attempt([(op, op.wide_scratch_pixels[0]) for op in wide]):
        for op in wide:
            for pixels in op.wide_scratch_pixels:
                if attempt([(op, pixels)]):
                    break
    return _add_workspaces(graph, plan, settings, optional)


def arena_lower_bound(graph: Graph) -> int:
    """A lower bound of ``plan_memory(graph).arena_size`` from one planner call: the live-set
    bound with every op at its smallest setting (one-pixel scratch, fallback workspace), which
    plan_memory's choices only ever widen. Cheap enough to rule out a rewrite before planning it."""
    optional = [op for op in graph.ops if getattr(op, "workspace_options", ())]
    return _plan_memory(graph, {op: {"workspace_option": _workspace_fallback(op)} for op in optional}).lower_bound


#: op -> the attributes it runs with under a plan (``scratch_pixels``, ``workspace_option``)
Settings = Dict[object, Dict[str, object]]


def _with(settings: Settings, changes: Settings) -> Settings:
    """``settings`` with ``changes`` laid over it (a new dict: neither argument is edited)."""
    merged = {op: dict(values) for op, values in settings.items()}
    for op, values in changes.items():
        merged.setdefault(op, {}).update(values)
    return merged


def _workspace_fallback(op):
    """What an op with optional workspace runs with when it gets none of its options: None (no
    workspace), or its last option where it has ``workspace_needed``."""
    return op.workspace_options[-1] if getattr(op, "workspace_needed", False) else None


def _add_workspaces(graph: Graph, plan: MemoryPlan, settings: Settings, optional) -> MemoryPlan:
    """``plan`` (every op of ``optional`` at its fallback) with optional workspaces added where
    they cost no arena: an op with ``workspace_options`` (what its kernel can use, best first)
    runs with ``workspace_option`` one of them or its fallback. All at their best if the arena
    stays as it is, else each op in graph order at the best option that keeps it."""
    if not optional:
        return plan
    best = _plan_memory(graph, _with(settings, {op: {"workspace_option": op.workspace_options[0]} for op in optional}))
    if best.arena_size <= plan.arena_size:
        return best
    for op in optional:
        for option in op.workspace_options:
            if option == _workspace_fallback(op):
                break
            trial = _with(settings, {op: {"workspace_option": option}})
            with_it = _plan_memory(graph, trial)
            if with_it.arena_size <= plan.arena_size:
                plan, settings = with_it, trial
                break
    return plan


def _plan_memory(graph: Graph, settings: Settings) -> MemoryPlan:
    variants = {op: op.evolve(**values) for op, values in settings.items() if values}

    def run(op):  # the op as it runs under these settings
        return variants.get(op, op)

    locations: Dict[Tensor, Tuple[str, int]] = {x: ("input", k) for k, x in enumerate(graph.inputs)}
    for k, t in enumerate(graph.outputs):
        locations[t.storage] = ("output", k)
    first: Dict[Tensor, int] = {}  # storage -> first op writing it (several write a concatenation's slices)
    last: Dict[Tensor, int] = {}  # storage -> last op reading or writing it
    for op in graph.ops:
        first.setdefault(op.output.storage, op.index)
        last[op.output.storage] = op.index
        for t in op.inputs:
            last[t.storage] = op.index
    buffers: List[planner.Buffer] = []
    overlaps: List[planner.Overlap] = []
    names: Dict[Tensor, str] = {}
    for op in graph.ops:
        out = op.output.storage
        if out in locations or out in names:
            continue
        names[out] = f"{op.ident}:out"
        buffers.append(planner.Buffer(names[out], out.nbytes, first[out], last[out]))
    scratch_ops = []
    for op in graph.ops:
        out = op.output
        if out not in names:  # outside the arena, or a slice (written with a stride: never in place)
            continue
        if first[out] != op.index:  # earlier ops wrote slices of it: an input inside it could be overwritten already
            continue
        declared = False
        storages = [t.storage for t in op.inputs]
        for k, src in enumerate(storages):
            if src not in names or last.get(src) != op.index or src in storages[:k]:
                continue
            same = [j for j, s in enumerate(storages) if s is src]
            gaps = [run(op).inplace_gap(j) for j in same]
            if any(g is None for g in gaps):
                continue
            backs = [run(op).inplace_gap_reverse(j) for j in same]
            back = None if any(b is None for b in backs) else min(backs)
            overlaps.append(planner.Overlap(names[src], names[out], int(max(gaps)), None if back is None else int(back)))
            declared = True
        if declared and run(op).scratch_bytes():
            buffers.append(planner.Buffer(f"{op.ident}:scratch", run(op).scratch_bytes(), op.index, op.index))
            scratch_ops.append(op)
    working = [op for op in graph.ops if run(op).workspace_bytes()]
    for op in working:
        buffers.append(planner.Buffer(f"{op.ident}:work", run(op).workspace_bytes(), op.index, op.index))
    # offsets aligned to the widest element in the arena: float graphs to 4 bytes, int8 ones to the byte
    alignment = max([t.itemsize for t in names] + [FLOAT_BYTES if any(op.output.dtype == "float32" for op in graph.ops) else 1])
    result = planner.plan(buffers, overlaps, alignment=alignment)
    result.check(buffers, overlaps)
    for t, name in names.items():
        locations[t] = ("arena", result.offsets[name])
    return MemoryPlan(
        arena_size=int(result.arena_size),
        lower_bound=int(result.lower_bound),
        locations=locations,
        scratch={op: result.offsets[f"{op.ident}:scratch"] for op in scratch_ops},
        workspace={op: result.offsets[f"{op.ident}:work"] for op in working},
        variants=variants,
        result=result,
    )


class Placed:
    """One op seen with its memory plan: what its kernel template needs to name pointers."""

    def __init__(self, op, plan: MemoryPlan, output_names: Tuple[str, ...]):
        self.source = op  # the graph's op: what the plan's records are keyed by
        self.op = plan.op(op)  # the op as it runs under the plan
        self.plan = plan
        self.output_names = output_names

    def ptr(self, tensor: Tensor) -> str:
        """C expression for a tensor's first element inside ``run``."""
        kind, value = self.plan.location(tensor)
        if kind == "input":
            base = input_name(value)
        elif kind == "output":
            base = self.output_names[value]
        else:
            base = f"{ARENA_VIEWS[tensor.dtype]} + {value // tensor.itemsize}"
        return f"{base} + {tensor.channel_offset}" if tensor.channel_offset else base

    def overlaps_input(self) -> bool:
        return self.plan.overlaps_input(self.op)

    def scratch_ptr(self) -> str:
        """Scratch for kernels that can work in place; NULL (write directly) when the planner kept
        input and output apart."""
        if self.op.output.dtype != "float32":  # an integer kernel's scratch: one output pixel of its type
            if self.source in self.plan.scratch and self.overlaps_input():
                return f"{ARENA_VIEWS[self.op.output.dtype]} + {self.plan.scratch[self.source]}"
            return f"({self.op.output.dtype}_t*)0"
        if self.source in self.plan.scratch and self.overlaps_input():
            return f"arena + {self.plan.scratch[self.source] // FLOAT_BYTES}"
        return "(float*)0"

    def workspace_offset(self) -> int:
        """Byte offset of the op's workspace in the arena."""
        return self.plan.workspace[self.source]

    def workspace_ptr(self) -> str:
        return f"arena + {self.workspace_offset() // FLOAT_BYTES}"

    @property
    def reverse(self) -> bool:
        """Kernels that can walk backwards: walk backwards when the planner overlapped input and
        output in the reverse window."""
        x, out = self.op.inputs[0], self.op.output
        if not (self.plan.in_arena(x) and self.plan.in_arena(out) and self.overlaps_input()):
            return False
        return self.plan.offset(x) - self.plan.offset(out) < self.op.inplace_gap(0)
