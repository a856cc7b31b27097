"""int8 addition of two same-shape tensors (TFLite ADD), TFLite's rescaling: both inputs to twice
the larger input scale with 20 bits of headroom, the sum to the output scale."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_base import Int8Op, broadcast_walk, requant_mode
from micronets.compiler.quant import mbqm, quantize_multiplier

def rescaled_max(mult: int, shift: int) -> int:
    """The largest magnitude of an operand rescaled by (mult, shift): TFLite's
    MBQM((q - z) << 20) for q - z = +-255 (monotone in q - z), about 255 * 2^19 for a multiplier
    near 1/2 (an operand's is at most about 1/2)."""
    return max(abs(mbqm(v * (1 << 20), mult, shift)) for v in (-255, 255))


def rescale_e(mult: int, shift: int) -> int:
    """The template argument E of mn_add_rescale: -1 for the exact 1/2 (m = 2^30, shift 0),
    otherwise -shift (an operand's multiplier is at most 1/2: shift <= 0)."""
    if shift > 0 or mult < 0:
        raise ValueError(f"add: operand multiplier ({mult}, {shift}) is not below one")
    return -1 if (mult, shift) == (1 << 30, 0) else -shift


def folded_mode(rq: int, acc_max: int, mult: int, shift: int) -> int:
    """The RQ argument of mn_rq2 (templates/kernels/int8_add.h.j2) for accumulators of at most
    ``acc_max`` in magnitude: ``rq`` (``requant_mode``'s 0, 1 or 2), or 3 / 4 (the zero point
    folded into the rounding) where rq >= 1 and round(acc * m / 2^31) - 1, plus the folded zero
    point (2 zero + 1) << (-shift - 1), |2 zero + 1| <= 255, stays inside int32."""
    if rq == 0:
        return 0
    high = ((acc_max * mult) >> 31) + 1
    return rq + 2 if high + 1 + (255 << (-shift - 1)) < (1 << 31) else rq


def folded_zero(mode: int, zero: int, shift: int) -> int:
    """mn_rq2's zs: (2 zero + 1) << (-shift - 1) for the folded modes, else 0 (unused)."""
    return (2 * zero + 1) << (-shift - 1) if mode >= 3 else 0


def add_rq_mode(sum_max: int, out_mult: int, out_shift: int, act_min: int, act_max: int) -> int:
    """mn_rq2's RQ for a sum of two rescaled operands of at most ``sum_max`` in magnitude (below
    2^28 in practice; the kernels form 2 * sum, so it must be below 2^30)."""
    if sum_max >= 1 << 29:
        raise ValueError(f"add: rescaled operands up to {sum_max}, beyond TFLite's 20-bit headroom")
    rq = requant_mode([sum_max], [0], [out_shift], act_min, act_max)
    return folded_mode(rq, sum_max, out_mult, out_shift)


def operand_multipliers(a_scale, b_scale):
    """(twice the larger input scale, (a_mult, a_shift), (b_mult, b_shift)): TFLite's rescaling of
    two operands to a common scale, as ADD, SUB and SQUARED_DIFFERENCE prepare it."""
    twice_max = 2.0 * float(max(np.float32(a_scale), np.float32(b_scale)))
    return twice_max, quantize_multiplier(float(a_scale) / twice_max), quantize_multiplier(float(b_scale) / twice_max)


def add_multipliers(a_scale, b_scale, out_scale):
    """TFLite's preparation of ADD (and SUB): ((a_mult, a_shift), (b_mult, b_shift), (out_mult,
    out_shift)), each operand rescaled to twice the larger input scale with 20 bits of headroom,
    the sum to the output scale."""
    twice_max, a, b = operand_multipliers(a_scale, b_scale)
    return a, b, quantize_multiplier(twice_max / ((1 << 20) * float(out_scale)))


class AddRequant:
    """The output requantisation of an addition (mixin: needs sum_max, out_mult, out_shift, out_off
    and the clamp act_min / act_max): mn_rq2's RQ mode and folded zero point."""

    @property
    def rq_mode(self) -> int:
        return add_rq_mode(self.sum_max, self.out_mult, self.out_shift, self.act_min, self.act_max)

    @property
    def zs(self) -> int:
        return folded_zero(self.rq_mode, self.out_off, self.out_shift)


class Int8Add(AddRequant, Int8Op):
    kind = "Add"
    template = "kernels/int8_add.h.j2"

    def __init__(self, name, a, b, out, fused=0):
        super().__init__(name, [a, b], out, fused)
        self.dims, self.strides = broadcast_walk(f"add '{name}'", out.shape, a.shape, b.shape)
        #: an operand broadcast over the output (int8_add_walk; else the flat int8_add)
        self.broadcast = a.size != out.size or b.size != out.size
        (self.a_mult, self.a_shift), (self.b_mult, self.b_shift), (self.out_mult, self.out_shift) = add_multipliers(
            a.quant.scale, b.quant.scale, out.quant.scale)
        self.a_off, self.b_off = -a.quant.zero_point, -b.quant.zero_point
        self.out_off = out.quant.zero_point
        self.a_e, self.b_e = rescale_e(self.a_mult, self.a_shift), rescale_e(self.b_mult, self.b_shift)
        self.sum_max = rescaled_max(self.a_mult, self.a_shift) + rescaled_max(self.b_mult, self.b_shift)

    def describe(self):
        return " + ".join(t.shape_str() for t in self.inputs) if self.broadcast else ""

    def inplace_gap(self, input_index):
        return 0 if self.inputs[input_index].size == self.output.size else None  # not over a broadcast operand
