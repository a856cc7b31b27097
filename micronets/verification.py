"""verify: run the compiled header on inputs and compare every layer with Keras.

The header calls ``MICRONETS_TRACE_OP(index, values, count)`` after each op; a debug driver
defines it to write each op's output to a file, so the whole run is observed as executed (in-place
and fused kernels included). Each op is compared with the Keras layer whose output it holds (the
last of the layers folded into it), and the first op that diverges is named.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import struct
import subprocess
import tempfile
from typing import List, Optional, Tuple

import numpy as np

_DRIVER = r"""
#include <stdio.h>
#include <stdint.h>
static FILE* mn_trace_file;
static void mn_trace(int index, const float* values, long count)
{
    int32_t head[2] = {(int32_t)index, (int32_t)count};
    fwrite(head, sizeof head, 1, mn_trace_file);
    fwrite(values, sizeof(float), (size_t)count, mn_trace_file);
}
#define MICRONETS_TRACE_OP(index, values, count) mn_trace(index, values, count)
#include "%(header)s"

static %(cls)s net;

int main(int argc, char** argv)
{
    if (argc < 2 || !(mn_trace_file = fopen(argv[1], "wb")))
        return 2;
    enum { MnRecord = %(record_size)s }; // one sample: every input's values, in the model's order
    static float sample[MnRecord];
    while (fread(sample, sizeof(float), MnRecord, stdin) == (size_t)MnRecord)
        net.predict(%(args)s);
    fclose(mn_trace_file);
    return 0;
}
"""


@dataclasses.dataclass(frozen=True)
class LayerCheck:
    index: int
    op: str
    kind: str
    keras_layer: Optional[str]  # the Keras layer compared with (None: no Keras counterpart)
    shape: tuple
    max_abs: Optional[float]
    max_rel: Optional[float]
    ok: bool


@dataclasses.dataclass(frozen=True)
class Report:
    layers: List[LayerCheck]
    tolerance: float
    inputs: int
    #: how Keras computed what the ops were compared with, where that is not plain float32
    notes: Tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(layer.ok for layer in self.layers)

    @property
    def first_divergence(self) -> Optional[LayerCheck]:
        return next((layer for layer in self.layers if not layer.ok), None)

    def table(self) -> str:
        rows = [("#", "op", "kind", "keras layer", "shape", "max abs diff", "max rel diff", "")]
        for c in self.layers:
            rows.append((str(c.index), c.op, c.kind, c.keras_layer or "-", "x".join(map(str, c.shape)),
                         "-" if c.max_abs is None else f"{c.max_abs:.3g}",
                         "-" if c.max_rel is None else f"{c.max_rel:.3g}", "ok" if c.ok else "DIVERGES"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        first = self.first_divergence
        unmatched = sum(c.max_abs is None for c in self.layers)  # no Keras layer holds their output
        verdict = (f"all {len(self.layers)} ops match Keras within {self.tolerance:g} (relative to each tensor's scale) "
                   f"on {self.inputs} inputs" + (f" ({unmatched} of them, inside a layer or model traced through its "
                                                  f"call(), have no Keras output of their own to compare with)"
                                                  if unmatched else "") if first is None else
                   f"first divergence: op [{first.index}] {first.op} ({first.kind}), compared with Keras layer "
                   f"'{first.keras_layer}': max abs diff {first.max_abs:.3g}, relative {first.max_rel:.3g} > {self.tolerance:g}")
        return "\n".join(lines + [""] + list(self.notes) + [verdict])


def default_inputs(shape, n: int = 8, seed: int = 0, ids: Optional[int] = None) -> np.ndarray:
    """Random inputs in [0, 1] with structure (smooth blobs plus noise), for models without data;
    for a model whose input holds token ids (``ids``: the rows of its smallest Embedding table),
    ids drawn from all of [0, ids) (values in [0, 1] would all be id 0)."""
    rng = np.random.default_rng(seed)
    if ids is not None:
        return rng.integers(0, int(ids), (n,) + tuple(shape)).astype(np.float32)
    x = rng.random((n,) + tuple(shape)).astype(np.float32)
    if len(shape) >= 2:
        grid = np.linspace(0, 1, int(np.prod(shape[:-1]))).reshape(shape[:-1] + (1,))
        x = 0.5 * x + 0.5 * np.sin(grid * rng.uniform(2, 9, (n,) + (1,) * len(shape)) * np.pi) ** 2
    return x.astype(np.float32)


def _keras_outputs(model, names):
    """Keras' value of each named layer's output, via one probe model."""
    import keras

    from micronets.compiler.trace import _keras_graph, call_name, output_name

    order, _ = _keras_graph(model)
    by_name, calls = {}, {}
    for layer, node, _ in order:  # named per call and output, as trace names graph.keras_tensors
        name = call_name(layer.name, calls)
        for k, kt in enumerate(node.output_tensors):
            by_name[output_name(name, k)] = kt
    wanted = [n for n in names if n in by_name]
    probe = keras.Model(model.inputs, [by_name[n] for n in wanted])
    return probe, wanted


def _id_rows(graph, x) -> Optional[int]:
    """The rows of the smallest Embedding table when Embeddings are all that read input ``x``."""
    readers = [op for op in graph.ops if any(t is x for t in op.inputs)]
    if readers and all(op.kind == "Embedding" for op in readers):
        return min(op.rows for op in readers)
    return None


def _checked_inputs(graph, x) -> List[np.ndarray]:
    """``x`` as one float32 array (N, *shape) per model input: ``x`` is an array (N, *shape) or
    (shape), or for a model of several inputs a list of such arrays, one per input in order."""
    arrays = list(x) if len(graph.inputs) > 1 and isinstance(x, (list, tuple)) else [x]
    if len(arrays) != len(graph.inputs):
        raise ValueError(f"the model has {len(graph.inputs)} inputs; got {len(arrays)} array(s) of inputs")
    out = []
    for k, (a, t) in enumerate(zip(arrays, graph.inputs)):
        a = np.asarray(a, np.float32)
        which = f"input {k}" if len(arrays) > 1 else "input"
        if a.shape == t.shape:
            a = a[None]
        if a.shape[1:] != t.shape or len(a) == 0:
            raise ValueError(f"inputs of shape {a.shape[1:]} do not fit the model's {which} {t.shape}")
        out.append(a)
    if len({len(a) for a in out}) != 1:
        raise ValueError(f"the inputs hold different numbers of samples: {[len(a) for a in out]}")
    return out


def verify(model, x=None, classname: str = "Net", tolerance: float = 1e-4, workdir: Optional[str] = None) -> Report:
    """Compile ``model``, run it in C++ on ``x`` (default: 8 random inputs, ``default_inputs``; for
    a model of several inputs, one array per input) and compare each op's output with the matching
    Keras layer's; see :class:`Report`. Raises what export raises for a model that cannot be
    compiled, and RuntimeError when g++ fails."""
    from micronets import host
    from micronets.compiler.compile import compile_model
    from micronets.compiler.trace import _functional_view, half_precision_layers, keras_in_float32

    compiled = compile_model(model, classname=classname)
    graph = compiled.graph
    if x is None:
        xs = [default_inputs(t.shape, seed=k, ids=_id_rows(graph, t)) for k, t in enumerate(graph.inputs)]
    else:
        xs = _checked_inputs(graph, x)
    n = len(xs[0])
    # which Keras layer each op's output holds: the last layer mapped onto its bytes
    counterpart = {}
    for name, tensor in graph.keras_tensors:
        for op in graph.ops:
            if op.output is tensor.storage:
                counterpart[op.index] = (name, tensor)
    half = half_precision_layers(model)
    # the header's arithmetic, whatever the model's dtype policy; a subclassed model seen as the
    # trace sees it (one call of it on Inputs: its own output is compared, its insides are not)
    with keras_in_float32(model) as kept, _functional_view(model) as functional:
        probe, wanted = _keras_outputs(functional, [n for n, _ in counterpart.values()])
        values = probe.predict(xs if len(xs) > 1 else xs[0], verbose=0) if wanted else []
    notes = []
    if len(kept) < len(half):
        policies = sorted(set(p for n, p in half.items() if n not in kept))
        notes.append(f"Keras computed in float32, as the header does: {len(half) - len(kept)} layers of dtype policy "
                     f"{', '.join(policies)} compute in 16 bits when Keras runs the model itself")
    if kept:
        notes.append(f"Keras computed {len(kept)} layers in 16 bits (dtype policy {', '.join(sorted(set(kept.values())))}: "
                     f"16-bit weights, which Keras cannot run in float32); the header computes them in float32 from "
                     f"the same weights, so differences of 16-bit rounding are expected there")
    values = values if isinstance(values, list) else [values]
    keras_values = dict(zip(wanted, values))

    with (tempfile.TemporaryDirectory(prefix="micronets-verify-") if workdir is None else contextlib.nullcontext(workdir)) as work:
        header = os.path.join(work, f"{classname}.h")
        with open(header, "w") as fh:
            fh.write(compiled.header)
        record_size, args = host.predict_arguments(header, classname, "sample")
        exe = host.compile_driver(_DRIVER % {"header": header, "cls": classname, "record_size": record_size, "args": args},
                                  header, os.path.join(work, "verify"), opt="-O1", std_flags=["-std=c++98"], link=["-lm"])
        trace_path = os.path.join(work, "trace.bin")
        proc = subprocess.run([exe, trace_path], input=np.ascontiguousarray(host.samples(xs), np.float32).tobytes(),
                              capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError(f"the debug build exited with {proc.returncode}")
        with open(trace_path, "rb") as fh:
            raw = fh.read()
    traced = _parse(raw, len(graph.ops), n)
    checks = []
    for op in graph.ops:
        got = traced[op.index]
        entry = counterpart.get(op.index)
        name = entry[0] if entry else None
        if name is None or name not in keras_values:
            checks.append(LayerCheck(op.index, op.ident, op.kind, None, op.output.shape, None, None, True))
            continue
        ref = np.asarray(keras_values[name], np.float32).reshape(n, -1)
        diff = float(np.abs(got - ref).max())
        scale = max(1.0, float(np.abs(ref).max()))
        rel = diff / scale
        checks.append(LayerCheck(op.index, op.ident, op.kind, name, op.output.shape, diff, rel,
                                 bool(np.isfinite(diff) and rel <= tolerance)))
    return Report(checks, tolerance, n, tuple(notes))


def _parse(raw: bytes, num_ops: int, num_inputs: int):
    per_op = {i: [] for i in range(num_ops)}
    pos = 0
    while pos < len(raw):
        index, count = struct.unpack_from("<ii", raw, pos)
        pos += 8
        per_op[index].append(np.frombuffer(raw, np.float32, count, pos))
        pos += 4 * count
    return {i: np.stack(v) if v else np.zeros((num_inputs, 0), np.float32) for i, v in per_op.items()}
