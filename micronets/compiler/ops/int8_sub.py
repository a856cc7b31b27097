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

from micronets.compiler.ops.int8_add import add_multipliers
from micronets.compiler.ops.int8_add_const import Int8AddConst
from micronets.compiler.ops.int8_base import Int8Op, broadcast_walk
from micronets.compiler.quant import mbqm

REFERENCES = ("tflm", "tflite-ref")


class Int8SubConst(Int8AddConst):
    kind = "SubtractConstant"
    symbol = "-"

    def __init__(self, name, x, const, const_quant, out, fused=0, reference="tflm"):
        if reference not in REFERENCES:
            raise ValueError(f"reference={reference!r}; one of {', '.join(REFERENCES)}")
        self.reference = reference
        super().__init__(name, x, const, const_quant, out, fused)

    def rescaled_constant(self, shifted: int, mult: int, shift: int) -> int:
        """The constant's term of the sum: -MBQM((c - zc) << 20) (TFLM) or MBQM with the
        multiplier negated (TFLite)."""
        return -mbqm(shifted, mult, shift) if self.reference == "tflm" else mbqm(shifted, -mult, shift)


class Int8Sub(Int8Op):
    kind = "Subtract"
    template = "kernels/int8_sub.h.j2"

    def __init__(self, name, a, b, out, fused=0, reference="tflm"):
        if reference not in REFERENCES:
            raise ValueError(f"reference={reference!r}; one of {', '.join(REFERENCES)}")
        super().__init__(name, [a, b], out, fused)
        self.dims, self.strides = broadcast_walk(f"sub '{name}'", out.shape, a.shape, b.shape)
        (self.a_mult, self.a_shift), (self.b_mult, self.b_shift), (self.out_mult, self.out_shift) = add_multipliers(
            a.quant.scale, b.quant.scale, out.quant.scale)
        self.a_off, self.b_off = -a.quant.zero_point, -b.quant.zero_point
        self.out_off = out.quant.zero_point
        #: 1: subtract the second rescaled operand (TFLM); 0: add it, rescaled with its multiplier negated (TFLite)
        self.negate = 1 if reference == "tflm" else 0
        if not self.negate:
            self.b_mult = -self.b_mult

    def describe(self):
        return " - ".join(t.shape_str() for t in self.inputs)

    def inplace_gap(self, input_index):
        return 0 if self.inputs[input_index].size == self.output.size else None  # not over a broadcast operand
