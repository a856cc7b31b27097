"""Reductions over axes (keras.ops mean, sum, max, min with ``axis`` and ``keepdims``): float
headers. The input's axes are grouped, after dropping those of size 1, into runs of kept and of
reduced axes, at most three of each, alternating kept / reduced from the outermost (a leading
reduced run follows an empty kept one): the kernel walks the kept runs for the output, in order,
and for each output value the reduced runs. A mean or max over the rows and columns of a map (or
the steps of a sequence) for each channel is global pooling, and runs as that op
(ops/global_pool.py). No MACs.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter
from micronets.compiler.ops.global_pool import GlobalPool

MODES = {"Mean": 0, "Sum": 1, "Max": 2, "Min": 3}
#: the most runs of kept and of reduced axes (each) the kernel walks
MAX_RUNS = 3


def runs(shape: Tuple[int, ...], reduced: Tuple[int, ...]) -> List[Tuple[int, int]]:
    """``shape`` with the axes in ``reduced`` as [(kept, reduced)] extents, outermost first:
    the axes of size 1 dropped, neighbours of the same kind merged, a kept run of 1 in front of a
    leading reduced one and a reduced run of 1 after a trailing kept one."""
    groups: List[List[int]] = []  # [size, is_reduced]
    for i, d in enumerate(shape):
        if d == 1:
            continue
        r = int(i in reduced)
        if groups and groups[-1][1] == r:
            groups[-1][0] *= d
        else:
            groups.append([d, r])
    if not groups or groups[-1][1] == 0:  # (also where every axis is of size 1: one value, reduced over 1)
        groups.append([1, 1])
    if groups[0][1] == 1:
        groups.insert(0, [1, 0])
    return [(groups[i][0], groups[i + 1][0]) for i in range(0, len(groups), 2)]


class Reduce(Op):
    template = "kernels/reduce.h.j2"

    def __init__(self, name, x, out, mode: str, axes: Tuple[int, ...]):
        if mode not in MODES:
            raise ValueError(f"reduction {mode!r}; known: {', '.join(MODES)}")
        super().__init__(name, [x], out)
        self.kind = f"Reduce{mode}"
        self.mode = mode
        self.axes = tuple(sorted(int(a) for a in axes))
        self.runs = runs(x.shape, self.axes)
        if len(self.runs) > MAX_RUNS:
            raise UnsupportedModelError(f"'{name}' reduces axes {[a + 1 for a in self.axes]} of {x.shape}: "
                                        f"{len(self.runs)} alternations of kept and reduced axes, at most {MAX_RUNS} are supported")
        kept = int(np.prod([k for k, _ in self.runs]))
        if kept != out.size:
            raise ValueError(f"reduction '{name}': {kept} kept values for an output of {out.size}")

    def describe(self):
        return "over axes " + ",".join(str(a + 1) for a in self.axes)

    @property
    def mode_code(self) -> int:
        return MODES[self.mode]

    @property
    def extents(self) -> List[int]:
        """The kernel's six extents K0, R0, K1, R1, K2, R2 (runs padded with 1 x 1 in front)."""
        padded = [(1, 1)] * (MAX_RUNS - len(self.runs)) + self.runs
        return [d for pair in padded for d in pair]


@converter(*(f"op:{k}" for k in MODES))
def convert_reduce(layer, inputs, ctx):
    x = ctx.dense_input(inputs[0])
    mode = type(layer).__name__
    op_name = f"operation '{layer.name}' (keras.ops {mode.lower()})"
    rank = len(x.shape)
    axis = getattr(layer, "axis", None)
    if axis is None:
        raise UnsupportedModelError(f"{op_name} reduces over every axis, the batch axis too; give the axes")
    axes = [int(a) for a in (np.ravel(axis) if isinstance(axis, (list, tuple, np.ndarray)) else [axis])]
    norm = sorted({a + rank + 1 if a < 0 else a for a in axes})
    if any(not 0 <= a <= rank for a in norm):
        raise UnsupportedModelError(f"{op_name} reduces over axis {axis} of a rank-{rank + 1} tensor")
    if 0 in norm:
        raise UnsupportedModelError(f"{op_name} reduces over the batch axis (axis 0); only over the axes of a sample")
    if getattr(layer, "initial", None) is not None:
        raise UnsupportedModelError(f"{op_name} has an initial value; not supported")
    reduced = tuple(a - 1 for a in norm)
    keep = bool(getattr(layer, "keepdims", False))
    shape = tuple(1 if i in reduced else d for i, d in enumerate(x.shape)) if keep else \
        tuple(d for i, d in enumerate(x.shape) if i not in reduced) or (1,)
    if tuple(ctx.output_shape) not in (shape, ()):
        raise UnsupportedModelError(f"{op_name}: Keras gives {ctx.output_shape}, the reduction {shape}")
    out = ctx.new_tensor(layer.name, shape)
    spatial = tuple(range(rank - 1))
    if mode in ("Mean", "Max") and rank in (2, 3) and reduced == spatial:
        kind = ("GlobalAveragePooling" if mode == "Mean" else "GlobalMaxPooling") + ("2D" if rank == 3 else "1D")
        return ctx.add(GlobalPool(layer.name, x, out, "avg" if mode == "Mean" else "max", kind)).output
    return ctx.add(Reduce(layer.name, x, out, mode, reduced)).output
