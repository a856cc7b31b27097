"""The int32 shape arithmetic of a .tflite converted for a dynamic batch, evaluated at import.

``tf.lite.TFLiteConverter.from_keras_model`` (the way tutorials convert) keeps Keras' batch axis
unknown, so a Flatten or a Reshape computes its target shape at run time: SHAPE of the input,
STRIDED_SLICE of its batch entry, PACK with the constant rest, then RESHAPE. The tensors' stored
shapes are those of a batch of 1, which is what a header runs, so every such value is a constant
here. :func:`evaluate` computes each such op's value (only from shapes and int32 constants) as the
importer meets it; those ops then produce no code, and RESHAPE's target and the other integer
operands are read from their values. The same evaluation folds integer values a model computes
from constants alone: Swin's shifted-window mask numbers image regions (DYNAMIC_UPDATE_SLICE,
TRANSPOSE) and compares them (a bool value, held as 0 and 1).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

#: the ops folded when every input is a stored shape (SHAPE) or an int32 value known here
FOLDABLE = ("SHAPE", "STRIDED_SLICE", "PACK", "CONCATENATION", "GATHER", "REDUCE_PROD", "MUL", "ADD", "SUB",
            "FLOOR_DIV", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CAST", "TRANSPOSE", "DYNAMIC_UPDATE_SLICE",
            "EQUAL", "NOT_EQUAL", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL")
#: comparisons of known integers: a bool value (held as 0 / 1), such as Swin's shifted-window mask
_COMPARE = {"EQUAL": np.equal, "NOT_EQUAL": np.not_equal, "LESS": np.less, "LESS_EQUAL": np.less_equal,
            "GREATER": np.greater, "GREATER_EQUAL": np.greater_equal}
_INT = ("int32", "int64")


def slice_ranges(dims: Sequence[int], begin, end, steps, begin_mask: int, end_mask: int, shrink_mask: int) -> List[range]:
    """The indices a TFLite STRIDED_SLICE takes along each axis of a tensor of ``dims`` (no
    ellipsis, new axes or offset bounds): Python's slice rules, a masked bound open, a shrunk axis
    one index (negative from the end). Axes past ``begin`` are taken whole. ValueError on a zero
    stride."""
    begin, end = np.asarray(begin).reshape(-1).tolist(), np.asarray(end).reshape(-1).tolist()
    steps = [1] * len(begin) if steps is None else np.asarray(steps).reshape(-1).tolist()
    out = []
    for axis, dim in enumerate(dims):
        if axis >= len(begin):
            out.append(range(dim))
            continue
        step = int(steps[axis])
        if step == 0:
            raise ValueError("has a zero stride")
        if shrink_mask >> axis & 1:
            b = int(begin[axis]) + (dim if int(begin[axis]) < 0 else 0)
            out.append(range(b, b + 1) if 0 <= b < dim else range(0))
        else:
            b = None if begin_mask >> axis & 1 else int(begin[axis])
            e = None if end_mask >> axis & 1 else int(end[axis])
            out.append(range(*slice(b, e, step).indices(dim)))
    return out


def _evaluate(r, name: str, op, value, shape) -> Optional[np.ndarray]:
    """The int64 value of ``op``'s output, or None where this op is not shape arithmetic we know."""
    ins = [int(i) for i in op.inputs]
    opt = op.builtinOptions
    if name == "SHAPE":
        dims = shape(ins[0])
        return None if dims is None else np.asarray(dims, np.int64)
    args = [value(i) if i >= 0 else None for i in ins]
    if any(a is None for a, i in zip(args, ins) if i >= 0):
        return None
    if int(getattr(opt, "fusedActivationFunction", 0) or 0):
        return None
    if name == "STRIDED_SLICE":
        if int(opt.ellipsisMask or 0) or int(opt.newAxisMask or 0) or bool(getattr(opt, "offset", False)):
            return None
        x = args[0]
        try:
            ranges = slice_ranges(x.shape, args[1], args[2], args[3] if len(args) > 3 else None, int(opt.beginMask or 0),
                                  int(opt.endMask or 0), int(opt.shrinkAxisMask or 0))
        except ValueError:
            return None
        taken = x[np.ix_(*[np.asarray(list(rg), np.int64) for rg in ranges])] if x.ndim else x
        shrink = int(opt.shrinkAxisMask or 0)
        return taken.reshape([len(rg) for a, rg in enumerate(ranges) if not shrink >> a & 1])
    if name == "PACK":
        return np.stack(args, axis=int(opt.axis or 0))
    if name == "CONCATENATION":
        return np.concatenate(args, axis=int(opt.axis or 0))
    if name == "GATHER":
        if int(getattr(opt, "batchDims", 0) or 0):
            return None
        return np.take(args[0], args[1], axis=int(opt.axis or 0))
    if name == "REDUCE_PROD":
        axes = tuple(int(a) for a in np.asarray(args[1]).reshape(-1))
        return np.prod(args[0], axis=axes, keepdims=bool(opt.keepDims))
    if name in ("MUL", "ADD", "SUB", "FLOOR_DIV"):
        fn = {"MUL": np.multiply, "ADD": np.add, "SUB": np.subtract, "FLOOR_DIV": np.floor_divide}[name]
        if name == "FLOOR_DIV" and np.any(args[1] == 0):
            return None
        return fn(args[0], args[1])
    if name in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CAST"):
        return args[0].reshape(r.shape(int(op.outputs[0])))
    if name == "TRANSPOSE":
        return np.transpose(args[0], [int(p) for p in np.asarray(args[1]).reshape(-1)])
    if name == "DYNAMIC_UPDATE_SLICE":  # (Swin's shifted-window mask: regions of an image numbered)
        x, update = args[0].copy(), args[1]
        starts = [int(v) for v in np.asarray(args[2]).reshape(-1)]
        if update.ndim != x.ndim or len(starts) != x.ndim:
            return None
        # as TFLite's kernel: each start clamped so that the update fits
        starts = [min(max(b, 0), d - u) for b, d, u in zip(starts, x.shape, update.shape)]
        x[tuple(slice(b, b + u) for b, u in zip(starts, update.shape))] = update
        return x
    if name in _COMPARE:
        return _COMPARE[name](args[0], args[1]).astype(np.int64)
    return None


def evaluate(r, op, value, shape) -> Optional[np.ndarray]:
    """The value of ``op``'s int32 output (``r`` a tflite._Reader) when it is shape arithmetic
    computed only from shapes (``shape(index)``: a tensor's shape for a batch of 1 as the importer
    knows it so far, None while it is a placeholder) and integers (``value(index)``: a constant or
    an earlier op's value, None if neither); else None. Called in execution order, so SHAPE reads
    the shape its producer gave."""
    name = r.op_name(op)
    outs = [int(o) for o in op.outputs]
    if name not in FOLDABLE or len(outs) != 1 or r.ttype(outs[0]) not in (_INT + ("bool",) if name in _COMPARE else _INT):
        return None

    def known(index: int) -> Optional[np.ndarray]:
        v = value(index) if r.ttype(index) in _INT + ("bool",) else None
        return None if v is None else np.asarray(v, np.int64)

    v = _evaluate(r, name, op, known, shape)
    if v is None or tuple(v.shape) != tuple(r.shape(outs[0])):
        return None
    return v.astype(np.int64)


def reshape_target(target: Sequence[int], size: int) -> Optional[Tuple[int, ...]]:
    """RESHAPE's ``target`` with its one -1 resolved for ``size`` elements; None if it does not
    hold ``size`` elements (or has more than one -1)."""
    target = [int(d) for d in target]
    if target.count(-1) > 1 or any(d < -1 for d in target):
        return None
    known = int(np.prod([d for d in target if d != -1])) if target else 1
    if -1 in target:
        if known == 0 or size % known:
            return None
        target[target.index(-1)] = size // known
    return tuple(target) if int(np.prod(target)) == size else None
