"""The pipeline in one place: Keras model -> trace -> plan -> emit.

``compile_model`` returns a :class:`CompiledModel` holding the graph, the memory plan, the figures
(``summary()``) and the rendered header (``header``).
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional

import numpy as np

from micronets.compiler import planner
from micronets.compiler.graph import FLOAT_BYTES, Graph
from micronets.compiler.trace import trace

CPP_KEYWORDS = frozenset("""
alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t
char32_t class compl concept const consteval constexpr constinit const_cast continue co_await
co_return co_yield decltype default delete do double dynamic_cast else enum explicit export extern
false float for friend goto if inline int long mutable namespace new noexcept not not_eq nullptr
operator or or_eq private protected public register reinterpret_cast requires return short signed
sizeof static static_assert static_cast struct switch template this thread_local throw true try
typedef typeid typename union unsigned using virtual void volatile wchar_t while xor xor_eq
""".split())
# Names the header itself or its standard headers define.
RESERVED = frozenset("""main NULL int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t
size_t memset memcpy expf""".split())


def check_classname(name) -> str:
    """A C++ class name must be an identifier, not a keyword, not reserved for the implementation."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"class name {name!r} is not a valid C++ identifier (letters, digits, '_'; not starting with a digit)")
    if name in CPP_KEYWORDS:
        raise ValueError(f"class name {name!r} is a C++ keyword")
    if name in RESERVED or "__" in name or re.match(r"_[A-Z]", name):
        raise ValueError(f"class name {name!r} is reserved in C++ or clashes with a standard name")
    return name


class CompiledModel:
    """A model compiled for one class name: graph, memory plan, figures and header text."""

    def __init__(self, keras_model, graph: Graph, plan, classname: str, arch: str,
                 input_scale: float, input_offset: float, layerwise: Graph, layerwise_plan):
        self.keras_model = keras_model
        self.graph = graph
        self.plan = plan
        #: the same model with one op per layer (no fusion): the baseline the bounds refer to
        self.layerwise = layerwise
        self.layerwise_plan = layerwise_plan
        self.classname = classname
        self.arch = arch
        self.input_scale = float(input_scale)
        self.input_offset = float(input_offset)
        self._header: Optional[str] = None
        self._filename = "model.h"

    # ---------------------------------------------------------------- figures
    def summary(self) -> Dict:
        g = self.graph
        weights = sum(op.params() for op in g.ops)
        arena = self.plan.arena_size
        outputs = g.output.size * FLOAT_BYTES
        layers = []
        for op in g.ops:
            t = op.output
            layers.append(dict(
                name=op.name, op=op.kind, detail=op.label(), output_shape=list(t.shape),
                macs=int(op.macs()), params=int(op.params()),
                arena_offset=t.offset if t.kind == "arena" else None,
                arena_bytes=t.nbytes if t.kind == "arena" else 0,
                input_offsets=[x.offset if x.kind == "arena" else None for x in op.inputs],
            ))
        return dict(
            arch=self.arch,
            classname=self.classname,
            input_shape=list(g.input.shape),
            num_classes=int(g.output.size),
            macs=int(sum(op.macs() for op in g.ops)),
            params=int(self.keras_model.count_params()),
            weights=int(weights),
            weights_bytes=int(weights * FLOAT_BYTES),
            arena_bytes=int(arena),
            # bounds: layer by layer with no op writing over its input (max in + out); layer by
            # layer with every op working in place where it can; and for the ops as executed here
            naive_bound=int(naive_bound(self.layerwise)),
            layerwise_bound=int(self.layerwise_plan.lower_bound),
            inplace_bound=int(self.plan.lower_bound),
            # outputs[] + uint16_t output + float proba, padded to float alignment
            object_bytes=int(arena + outputs + 2 * FLOAT_BYTES) if arena else int(FLOAT_BYTES + outputs + 2 * FLOAT_BYTES),
            layers=layers,
        )

    # ---------------------------------------------------------------- header
    def render(self, filename: str = "model.h") -> str:
        from micronets import __version__
        from micronets.compiler.emit import render

        return render(self.graph, classname=self.classname, namespace=f"micronets_{self.classname}",
                      filename=filename, arch=self.arch, version=__version__, summary=self.summary(),
                      input_scale=self.input_scale, input_offset=self.input_offset)

    @property
    def header(self) -> str:
        if self._header is None:
            self._header = self.render()
        return self._header


def naive_bound(graph: Graph) -> int:
    """Max over ops of the arena bytes of its inputs plus its output (layer-by-layer execution
    with no op writing over its input)."""
    best = 0
    for op in graph.ops:
        total = sum(t.nbytes for t in {id(t): t for t in op.inputs + [op.output]}.values() if t.kind == "arena")
        best = max(best, total)
    return best


def plan_memory(graph: Graph):
    """Turn tensor lifetimes and the ops' in-place abilities into planner buffers; write the
    resulting offsets back onto tensors (``offset``) and ops (``scratch_offset``)."""
    last: Dict[int, int] = {}
    for op in graph.ops:
        for t in op.inputs:
            last[id(t)] = op.index
    buffers: List[planner.Buffer] = []
    overlaps: List[planner.Overlap] = []
    names: Dict[int, str] = {}
    for op in graph.ops:
        out = op.output
        if out.kind != "arena":
            continue
        name = f"{op.ident}:out"
        names[id(out)] = name
        buffers.append(planner.Buffer(name, out.nbytes, op.index, max(op.index, last.get(id(out), op.index))))
    scratch_ops = []
    for op in graph.ops:
        out = op.output
        if out.kind != "arena":
            continue
        declared = False
        for k, src in enumerate(op.inputs):
            if src.kind != "arena" or last.get(id(src)) != op.index:
                continue
            if any(other is src for other in op.inputs[:k]):
                continue
            gap = op.inplace_gap(k)
            if gap is None:
                continue
            back = op.inplace_gap_reverse(k)
            overlaps.append(planner.Overlap(names[id(src)], names[id(out)], int(gap),
                                            None if back is None else int(back)))
            declared = True
        if declared and op.scratch_bytes():
            buffers.append(planner.Buffer(f"{op.ident}:scratch", op.scratch_bytes(), op.index, op.index))
            scratch_ops.append(op)
    for op in graph.ops:
        if op.workspace_bytes():
            buffers.append(planner.Buffer(f"{op.ident}:work", op.workspace_bytes(), op.index, op.index))
    result = planner.plan(buffers, overlaps, alignment=FLOAT_BYTES)
    result.check(buffers, overlaps)
    for op in graph.ops:
        if op.output.kind == "arena":
            op.output.offset = result.offsets[names[id(op.output)]]
    for op in scratch_ops:
        op.scratch_offset = result.offsets[f"{op.ident}:scratch"]
    for op in graph.ops:
        if op.workspace_bytes():
            op.workspace_offset = result.offsets[f"{op.ident}:work"]
    return result


def check_weights(graph: Graph):
    for op in graph.ops:
        for suffix, w in op.weights().items():
            if not np.all(np.isfinite(w)):
                bad = "NaN" if np.isnan(w).any() else "Inf"
                raise ValueError(f"layer '{op.name}' ({op.kind}) has {bad} values in its {suffix} after folding; "
                                 f"the model cannot be exported")
            if np.any(np.abs(w) > np.finfo(np.float32).max):
                raise ValueError(f"layer '{op.name}' ({op.kind}) has weights beyond float32 range")


def compile_model(model, classname: str = "Net", arch: Optional[str] = None,
                  input_scale: float = 1.0 / 255.0, input_offset: float = 0.0) -> CompiledModel:
    """Compile a Keras model. ``input_scale``/``input_offset`` say how a raw uint8 pixel maps to the
    network's input (default pixel / 255, how micronets nets are trained)."""
    check_classname(classname)
    if not (np.isfinite(input_scale) and np.isfinite(input_offset)):
        raise ValueError("input_scale and input_offset must be finite numbers")
    graph = trace(model)
    check_weights(graph)
    plan = plan_memory(graph)
    layerwise = trace(model, fuse=False)
    return CompiledModel(model, graph, plan, classname, arch or model.name, input_scale, input_offset,
                         layerwise, plan_memory(layerwise))
