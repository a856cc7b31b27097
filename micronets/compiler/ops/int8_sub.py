"""int8 subtraction (TFLite SUB; a Normalization layer's ``x - mean``, ``a - b`` in a graph).

TFLite prepares SUB as ADD: both operands rescaled to twice the larger input scale with 20 bits of
headroom, the result to the output scale. The two references then part ways: TFLM subtracts the
second rescaled operand (reference_ops::Sub), while TFLite's interpreter negates the second
operand's multiplier and runs its integer Add. Rounding a product to the nearest integer with
halves away from zero is symmetric but TFLite's doubling high multiply nudges ties differently
for a negative product, so the two can differ by one at a tie; ``reference`` picks which is
matched (``read_tflite(reference=...)``).

With a constant second operand (``x - c``) the rescaled constant is an integer computed here, so
the op is an addition of a constant (Int8AddConst's kernel) with that integer negated (TFLM) or
computed with the negated multiplier (TFLite). Two activations use the portable kernel of
int8_sub.h.j2."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_add import rescaled_max
from micronets.compiler.ops.int8_add_const import Int8AddConst
from micronets.compiler.ops.int8_base import Int8Op
from micronets.compiler.quant import mbqm, quantize_multiplier

REFERENCES = ("tflm", "tflite-ref")


def _rescaled(v: int, mult: int, shift: int, negate: bool, reference: str) -> int:
    """The second operand's term of the sum: -MBQM(v << 20) (TFLM) or MBQM(v << 20) with the
    multiplier negated (TFLite), for v = q - z; MBQM itself when not subtracting."""
    if not negate:
        return mbqm(v * (1 << 20), mult, shift)
    return -mbqm(v * (1 << 20), mult, shift) if reference == "tflm" else mbqm(v * (1 << 20), -mult, shift)


class Int8SubConst(Int8AddConst):
    kind = "SubtractConstant"
    symbol = "-"

    def __init__(self, name, x, const, const_quant, out, fused=0, reference="tflm"):
        if reference not in REFERENCES:
            raise ValueError(f"reference={reference!r}; one of {', '.join(REFERENCES)}")
        super().__init__(name, x, const, const_quant, out, fused)
        twice_max = 2.0 * float(max(np.float32(x.quant.scale), np.float32(const_quant.scale)))
        c_mult, c_shift = quantize_multiplier(float(const_quant.scale) / twice_max)
        self.k = np.array([_rescaled(int(c) - int(const_quant.zero_point), c_mult, c_shift, True, reference)
                           for c in np.asarray(const).reshape(-1).tolist()], np.int32)
        self.sum_max = rescaled_max(self.x_mult, self.x_shift) + int(np.abs(self.k.astype(np.int64)).max(initial=0))


class Int8Sub(Int8Op):
    kind = "Subtract"
    template = "kernels/int8_sub.h.j2"

    def __init__(self, name, a, b, out, fused=0, reference="tflm"):
        if reference not in REFERENCES:
            raise ValueError(f"reference={reference!r}; one of {', '.join(REFERENCES)}")
        super().__init__(name, [a, b], out, fused)
        if a.size != out.size or b.size != out.size:
            raise ValueError(f"sub '{name}': {a.shape} - {b.shape} -> {out.shape} needs broadcasting, which is not supported")
        twice_max = 2.0 * float(max(np.float32(a.quant.scale), np.float32(b.quant.scale)))
        self.a_mult, self.a_shift = quantize_multiplier(float(a.quant.scale) / twice_max)
        self.b_mult, self.b_shift = quantize_multiplier(float(b.quant.scale) / twice_max)
        self.out_mult, self.out_shift = quantize_multiplier(twice_max / ((1 << 20) * float(out.quant.scale)))
        self.a_off, self.b_off = -a.quant.zero_point, -b.quant.zero_point
        self.out_off = out.quant.zero_point
        #: 1: subtract the second rescaled operand (TFLM); 0: add it, rescaled with its multiplier negated (TFLite)
        self.negate = 1 if reference == "tflm" else 0
        if not self.negate:
            self.b_mult = -self.b_mult

    def describe(self):
        return " - ".join(t.shape_str() for t in self.inputs)

    def inplace_gap(self, input_index):
        return 0
