"""int8 division (TFLite DIV: softsign's x / (1 + |x|), a normalisation x / s) as TFLM's
reference integer Div: each operand minus its zero point; a negative divisor flips both signs;
the divisor's reciprocal from gemmlowp's Newton-Raphson 1 / (1 + a) (GetReciprocal: the divisor
normalised to [1, 2) by its leading zeros, three steps), the dividend shifted to fill 31 bits
(its leading sign bits) and multiplied by it, then the output multiplier input1_scale /
(input2_scale * output_scale) applied with the two shifts' sum, plus the output zero point,
clamped. TFLM forms that multiplier in double, TFLite's interpreter in single precision
(``reference`` picks which is matched).

TFLite's interpreter runs the same arithmetic, but first stops with an error wherever a raw
divisor byte is 0 (its non-zero check reads the int8 bytes, not the values they stand for): for
softsign on real digits images it stops, and TFLM is the only reference that runs. A divisor of value 0 (the raw byte at its zero
point) is undefined in both (a shift by 32); here it saturates to the clamp's end of the
dividend's sign (the zero point for 0 / 0). The final rounding shift is undefined beyond 31 bits (a
small dividend over a large divisor with a small output multiplier: on x86 both references put a
quotient that rounds to 0 near the clamp); a model whose operand ranges reach it is refused
(``check_defined``).

Two activations (broadcasting as numpy) run the kernel of int8_div.h.j2; a scalar constant
dividend or divisor leaves a function of one int8 value: a 256-entry table (Int8DivConst)."""

from __future__ import annotations

import functools

import numpy as np

from micronets.compiler.ops.int8_base import REFERENCES, Int8Op, Int8TableOp, broadcast_walk
from micronets.compiler.quant import one_over_one_plus, quantize_multiplier, rdbpot, srdhm


@functools.lru_cache(maxsize=1024)
def reciprocal(x: int) -> "tuple[int, int]":
    """GetReciprocal(x, 31) for 1 <= x < 2^31: (1 / (1 + a) in Q0.31, bits over unit) with
    x = (1 + a) * 2^bits."""
    leading = 32 - x.bit_length()
    return one_over_one_plus((x << leading) - (1 << 31)), 31 - leading


def leading_sign_bits(v: int) -> int:
    """CountLeadingSignBits of an int32: 31 for 0 and -1."""
    u = v ^ (v >> 31) if v < 0 else v
    return 31 - u.bit_length()


def div_multiplier(a_scale: float, b_scale: float, out_scale: float, reference: str = "tflm") -> "tuple[int, int]":
    """(multiplier, shift) of input1_scale / (input2_scale * output_scale): TFLM forms it in double,
    TFLite's interpreter in single precision (they differ in the last bits of the multiplier, and
    so at quotients a hair from a rounding tie)."""
    if reference not in REFERENCES:
        raise ValueError(f"reference={reference!r}; one of {', '.join(REFERENCES)}")
    f32 = np.float32
    if reference == "tflm":
        return quantize_multiplier(float(f32(a_scale)) / (float(f32(b_scale)) * float(f32(out_scale))))
    return quantize_multiplier(float(f32(a_scale) / (f32(b_scale) * f32(out_scale))))


def div_value(a: int, b: int, mult: int, shift: int, out_zero: int, lo: int, hi: int) -> int:
    """TFLM's int8 Div of one pair of operands minus their zero points (a / b). ValueError where
    the references' final shift leaves [0, 31] (see ``right_shifts``)."""
    if b == 0:
        return lo if a < 0 else hi if a > 0 else max(lo, min(hi, out_zero))
    if b < 0:
        a, b = -a, -b
    inv, bits = reciprocal(b)
    headroom = leading_sign_bits(a)
    right = headroom + bits - shift
    if not 0 <= right <= 31:
        raise ValueError(f"{a} / {b}: a final shift of {right}")
    return max(lo, min(hi, out_zero + rdbpot(srdhm(srdhm(a * (1 << headroom), inv), mult), right)))


def right_shifts(dividends, divisors, shift: int) -> "tuple[int, int]":
    """(smallest, largest) final right shift of TFLM's Div over the given operand values (minus
    their zero points; a divisor of 0 left out): the dividend's redundant sign bits (of its
    negation too where a divisor is negative: both signs flip) plus the divisor's bits above its
    leading one, minus the output shift."""
    negative = any(int(b) < 0 for b in divisors)
    heads = [leading_sign_bits(s * int(a)) for a in dividends for s in ((1, -1) if negative else (1,))]
    bits = [abs(int(b)).bit_length() - 1 for b in divisors if int(b) != 0]
    return min(heads) + min(bits, default=0) - shift, max(heads) + max(bits, default=0) - shift


def check_defined(name: str, dividends, divisors, shift: int) -> None:
    """UnsupportedModelError naming the op where some operand pair takes the references' final
    rounding shift outside [0, 31]: RoundingDivideByPOT is then undefined C++ (a shift by 32 or
    more), and TFLite's and TFLM's results differ between machines (on x86 a quotient that rounds
    to 0 comes out near the clamp), so there is nothing sound to match."""
    from micronets.compiler.ops.base import UnsupportedModelError

    lo, hi = right_shifts(dividends, divisors, shift)
    if lo < 0 or hi > 31:
        raise UnsupportedModelError(
            f"div '{name}': at these scales the references' final rounding shift reaches {hi if hi > 31 else lo} "
            f"bits for some operands (output multiplier 2^{shift}; it must stay in [0, 31]), where TFLite's and TFLM's "
            "int8 DIV are undefined and differ between machines; a smaller divisor range or a larger dividend "
            "range keeps it defined")


def operand_values(quant) -> range:
    """Every value an int8 operand minus its zero point can take."""
    return range(-128 - quant.zero_point, 128 - quant.zero_point)


class Int8Div(Int8Op):
    kind = "Divide"
    template = "kernels/int8_div.h.j2"
    requires = ("kernels/int8_reciprocal.h.j2",)  # mn_clz, mn_one_over_one_plus

    def __init__(self, name, a, b, out, fused=0, reference="tflm"):
        super().__init__(name, [a, b], out, fused)
        self.dims, self.strides = broadcast_walk(f"div '{name}'", out.shape, a.shape, b.shape)
        self.mult, self.shift = div_multiplier(a.quant.scale, b.quant.scale, out.quant.scale, reference)
        check_defined(name, operand_values(a.quant), operand_values(b.quant), self.shift)
        self.a_off, self.b_off = -a.quant.zero_point, -b.quant.zero_point
        self.out_off = out.quant.zero_point

    def describe(self):
        return " / ".join(t.shape_str() for t in self.inputs)

    def inplace_gap(self, input_index):
        return 0 if self.inputs[input_index].size == self.output.size else None  # not over a broadcast operand


def div_const_table(const: int, const_quant, x_quant, out_zero: int, const_first: bool, mult: int, shift: int,
                    act_min: int, act_max: int) -> np.ndarray:
    """TFLM's int8 Div of a scalar constant (raw ``const``) and an int8 input, c / x
    (``const_first``) or x / c, for the inputs -128..127 in order, at the output multiplier
    (``mult``, ``shift``)."""
    c = int(const) - const_quant.zero_point
    out = []
    for v in range(-128, 128):
        x = v - x_quant.zero_point
        a, b = (c, x) if const_first else (x, c)
        out.append(div_value(a, b, mult, shift, out_zero, act_min, act_max))
    return np.array(out, np.int8)


class Int8DivConst(Int8TableOp):
    """c / x or x / c for a scalar constant c: a table (kernels/int8_lookup.h.j2), the fused
    activation's clamp included."""
    kind = "DivideConstant"

    def __init__(self, name, x, const, const_quant, out, const_first: bool, fused=0, reference="tflm"):
        Int8Op.__init__(self, name, [x], out, fused)
        values = np.asarray(const).reshape(-1)
        if values.size != 1:
            raise ValueError(f"div '{name}': a constant of shape {tuple(np.shape(const))}; only a scalar constant "
                             "operand is supported")
        c = int(values[0]) - const_quant.zero_point
        scales = (const_quant.scale, x.quant.scale) if const_first else (x.quant.scale, const_quant.scale)
        mult, shift = div_multiplier(*scales, out.quant.scale, reference)
        check_defined(name, *(([c], operand_values(x.quant)) if const_first else (operand_values(x.quant), [c])), shift)
        self.const = float(c * const_quant.scale)
        self.const_first = bool(const_first)
        self.table = div_const_table(int(values[0]), const_quant, x.quant, out.quant.zero_point, const_first, mult,
                                     shift, self.act_min, self.act_max)

    def describe(self):
        x = self.inputs[0].shape_str()
        return f"{self.const:.6g} / {x}" if self.const_first else f"{x} / {self.const:.6g}"
