"""int8 select by a comparison (TFLite SELECT / SELECT_V2 whose condition is an int8 GREATER,
GREATER_EQUAL, LESS, LESS_EQUAL, EQUAL or NOT_EQUAL): out = (a CMP b) ? x : y, any broadcasting.
What Keras' ReLU(threshold=...), selu, hard_shrink, soft_shrink, sparse_plus and
``keras.ops.where(a > b, ...)`` become.

The comparison is never stored: the references' bool tensor lives only inside this op (a
comparison read by anything but a select is refused by the importer). Both references compare
``(v - zero_point) * 2^8`` of each operand rescaled by its own scale (TFLite's
MultiplyByQuantizedMultiplierSmallerThanOneExp, so scales of 1 and above are refused as TFLite
refuses them); the select copies raw values (the converter gives x, y and the output one
quantisation; an op where they differ is refused, since copying values of two scales would not
be a selection).

Against a scalar constant (a threshold: every Keras activation above) the rescaled comparison is
a monotone function of the tensor's raw value, so it is computed here for all 256 values and
becomes ``lo <= v <= hi`` (or its negation) on the raw int8 value: no arithmetic per element.
Two computed operands (or a constant of several values) are rescaled per element in the kernel."""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.graph import Tensor
from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.int8_base import Int8Op, broadcast_walk
from micronets.compiler.quant import mbqm, quantize_multiplier

#: TFLite comparison -> (C++ operator, its numpy function)
COMPARISONS = {"GREATER": (">", np.greater), "GREATER_EQUAL": (">=", np.greater_equal), "LESS": ("<", np.less),
               "LESS_EQUAL": ("<=", np.less_equal), "EQUAL": ("==", np.equal), "NOT_EQUAL": ("!=", np.not_equal)}
#: the references' left shift of an operand before its rescaling
LEFT_SHIFT = 8


def _rescaling(what: str, quant) -> "tuple[int, int, int]":
    """(offset, multiplier, shift) both references use for an operand of ``quant``."""
    mult, shift = quantize_multiplier(float(np.float64(np.float32(quant.scale))))
    if shift > 0:
        raise UnsupportedModelError(f"{what}: an operand's scale {quant.scale:.6g} is 1 or more; TFLite's comparison "
                                    "kernels require scales below 1")
    return -int(quant.zero_point), int(mult), int(shift)


def rescaled(values, offset: int, mult: int, shift: int) -> np.ndarray:
    """The references' rescaled operand: ((v + offset) * 2^8) * mult * 2^shift, rounded as
    MultiplyByQuantizedMultiplierSmallerThanOneExp (int64 array)."""
    return np.array([mbqm((int(v) + offset) * (1 << LEFT_SHIFT), mult, shift) for v in np.asarray(values).reshape(-1)],
                    np.int64)


def holds_against_constant(kind: str, x_quant, const, const_quant, x_first: bool = True,
                           what: str = "comparison") -> np.ndarray:
    """Whether ``x CMP const`` (``const CMP x`` when not ``x_first``) holds, as both references
    compare, for each raw value -128..127 of an int8 x quantised as ``x_quant`` (bool array)."""
    ref = rescaled(np.asarray(const).reshape(-1)[:1], *_rescaling(what, const_quant))[0]
    scaled = rescaled(np.arange(-128, 128), *_rescaling(what, x_quant))
    return COMPARISONS[kind][1](*((scaled, ref) if x_first else (ref, scaled)))


class Comparison:
    """An int8 comparison the importer met: ``kind`` (a key of COMPARISONS) of operands ``a`` and
    ``b``, each a Tensor or (int8 array, Quant) for a constant. Not an op: the select computes it."""

    def __init__(self, kind: str, a, b):
        if kind not in COMPARISONS:
            raise ValueError(f"not a comparison: {kind}")
        self.kind, self.a, self.b = kind, a, b


class Int8Select(Int8Op):
    kind = "Select"
    template = "kernels/int8_select.h.j2"

    def __init__(self, name, cond: Comparison, x, y, out):
        """``x``, ``y``: Tensor or (int8 array, Quant) for a constant, like the comparison's operands."""
        what = f"select '{name}'"
        operands = [cond.a, cond.b, x, y]
        quants = [o.quant if isinstance(o, Tensor) else o[1] for o in operands]
        if quants[2] != out.quant or quants[3] != out.quant:
            raise UnsupportedModelError(f"{what} chooses between operands quantised unlike its output ({quants[2]}, "
                                        f"{quants[3]} -> {out.quant}); the references copy raw values, which is only a "
                                        "selection with one quantisation")
        values = [o if isinstance(o, Tensor) else np.asarray(o[0], np.int8) for o in operands]
        if all(not isinstance(v, Tensor) for v in values[:2]):
            raise UnsupportedModelError(f"{what} compares two constants (nothing to compute at run time)")
        inputs = []
        for v in values:
            if isinstance(v, Tensor) and all(v is not t for t in inputs):
                inputs.append(v)
        super().__init__(name, inputs, out, 0)
        self.comparison = cond.kind
        self.cmp_op = COMPARISONS[cond.kind][0]
        self.cmp_index = list(COMPARISONS).index(cond.kind)  # the kernel's CMP
        self.rescale = [_rescaling(what, q) for q in quants[:2]]
        # against a scalar constant: the raw values of the other operand the condition holds for
        const = [k for k in (0, 1) if not isinstance(values[k], Tensor) and values[k].size == 1]
        if const:
            c = const[0]
            t = 1 - c
            holds = holds_against_constant(cond.kind, quants[t], values[c], quants[c], t == 0, what)
            self.range = self._as_range(holds, what)
            self.operands = [values[t], values[2], values[3]]
        else:
            self.range = None
            self.operands = values
        self.dims, self.strides = broadcast_walk(what, out.shape, *(o.shape for o in self.operands))

    @staticmethod
    def _as_range(holds: np.ndarray, what: str) -> "tuple[int, int, bool]":
        """(lo, hi, negate): the condition over raw values -128..127 as (lo <= v <= hi) != negate."""
        negate = bool(holds[0] and holds[-1] and not holds.all())
        inside = np.flatnonzero(holds != negate)
        if inside.size == 0:
            lo, hi = 127, -128  # never
        else:
            lo, hi = int(inside[0]) - 128, int(inside[-1]) - 128
        raw = np.arange(-128, 128)
        if not np.array_equal(((raw >= lo) & (raw <= hi)) != negate, holds):
            raise UnsupportedModelError(f"{what}: the condition is not one range of raw values")  # monotone: never
        return lo, hi, negate

    def describe(self):
        parts = [o.shape_str() if isinstance(o, Tensor) else f"const {tuple(o.shape)}" for o in self.operands]
        if self.range is not None:
            lo, hi, negate = self.range
            return f"{'not ' if negate else ''}{lo} <= {parts[0]} <= {hi} ? {parts[1]} : {parts[2]} ({self.comparison})"
        return f"{parts[0]} {self.cmp_op} {parts[1]} ? {parts[2]} : {parts[3]}"

    def _names(self):
        return "txy" if self.range is not None else "abxy"

    def typed_weights(self):
        w = collections.OrderedDict()
        for k, o in enumerate(self.operands):
            if not isinstance(o, Tensor):
                w[self._names()[k]] = o.reshape(-1)
        return w

    def params(self):
        return int(sum(o.size for o in self.operands if not isinstance(o, Tensor)))

    def inplace_gap(self, input_index):
        # each output element reads its operands' elements at its own index (full-size operands)
        return 0 if self.inputs[input_index].size == self.output.size else None

    def operand_ptr(self, k, p):
        o = self.operands[k]
        return p.ptr(o) if isinstance(o, Tensor) else self.wname(self._names()[k])

    def c_strides(self):
        return ", ".join(str(s) for st in self.strides for s in st)
