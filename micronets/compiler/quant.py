"""TFLite's integer arithmetic, reproduced in Python where the compiler needs it ahead of time.

The int8 kernels requantise an int32 accumulator with a fixed-point multiplier (a Q0.31 int32) and
a power-of-two shift, computed here once per tensor or per output channel exactly as TFLite's
``QuantizeMultiplier`` does (``frexp``, round half away from zero, the 2^31 carry, flush below
2^-31), from the double-precision real multiplier formed the way each TFLite kernel forms it.
``mbqm`` and friends are the same double-rounding integer functions the generated C++ runs
(``SaturatingRoundingDoublingHighMul`` then ``RoundingDivideByPOT``), used for tables computed
at compile time (the uint8 input table) and by the tests.
"""

from __future__ import annotations

import functools
import math
from typing import Tuple

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
#: TFLite fused activations: (name, real lower bound, real upper bound)
FUSED = {0: ("", None, None), 1: ("ReLU", 0.0, None), 2: ("ReLU_N1_TO_1", -1.0, 1.0), 3: ("ReLU6", 0.0, 6.0)}
RANGES = {"int8": (-128, 127), "uint8": (0, 255)}


@functools.lru_cache(maxsize=None)
def libm_f32(name: str, fallback, arity: int = 1):
    """The C library's single-precision ``name`` (expf, erfcf, tanhf, powf: what TFLite's kernels
    call as std::exp/erfc/tanh/pow of floats), as a function of ``arity`` float32 values;
    ``fallback`` (a numpy function) where no C library loads."""
    import ctypes
    import ctypes.util

    try:
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        fn = getattr(libm, name)
        fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float] * arity
        return lambda *v: np.float32(fn(*(float(x) for x in v)))
    except (OSError, AttributeError):  # pragma: no cover - no C library to load
        return lambda *v: np.float32(fallback(*(np.float32(x) for x in v)))


def round_half_away(x: float) -> int:
    """std::round: halves away from zero."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1) if abs(x) < 2 ** 52 else int(x)


def lut_populate(in_scale: float, in_zero: int, out_scale: float, out_zero: int, fn) -> np.ndarray:
    """TFLite's int8 table of a function (LUTPopulate, what its GELU, EXP and LOG kernels build at
    Prepare), for the inputs -128..127 in order: x = input_scale * (v - zero point) in single
    precision, ``fn`` (of one float32, giving a float32), times 1 / output_scale (a float),
    rounded half away from zero, plus the output zero point (in float, then cast), clamped. Below
    int32 (-inf: log of 0, which the converter's input range always holds) the cast gives the
    minimum on x86 and ARM alike, so -128. ValueError where an entry is NaN or above int32: there
    TFLite's cast differs between machines (x86 gives the minimum, ARM saturates high)."""
    f32 = np.float32
    inverse = f32(1) / f32(out_scale)
    out = []
    for v in range(-128, 128):
        y = f32(fn(f32(in_scale) * f32(v - int(in_zero))))
        rescaled = f32(y * inverse)
        if np.isnan(rescaled) or float(rescaled) >= 2.0 ** 31 - 256:
            raise ValueError(f"at input {v} the table's value is {float(y):.9g} / {float(out_scale):.9g}, "
                             "where TFLite's table differs between machines")
        if float(rescaled) <= -(2.0 ** 31 - 256):
            out.append(-128)
            continue
        out.append(max(-128, min(127, round_half_away(float(rescaled)) + int(out_zero))))
    return np.array(out, np.int8)


def quantize_multiplier(real: float) -> Tuple[int, int]:
    """(multiplier, shift) with real ~= multiplier * 2^(shift - 31), as TFLite's QuantizeMultiplier
    (double rounding build): shift > 0 is a left shift."""
    real = float(real)
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed > (1 << 31):
        raise ValueError(f"multiplier {real!r} cannot be quantised")
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if q_fixed > INT32_MAX:
        raise ValueError(f"multiplier {real!r} cannot be quantised")
    if shift < -31:
        shift, q_fixed = 0, 0
    return int(q_fixed), int(shift)


def srdhm(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul on int32 values."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    v = ab + nudge
    q = abs(v) >> 31
    return int(q if v >= 0 else -q)  # C division truncates toward zero


def rdbpot(x: int, exponent: int) -> int:
    """RoundingDivideByPOT: x / 2^exponent rounded to nearest, halves away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def wrap32(x: int) -> int:
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def mbqm(x: int, multiplier: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier(int32 x, multiplier, shift), double rounding."""
    left = shift if shift > 0 else 0
    right = 0 if shift > 0 else -shift
    return rdbpot(srdhm(wrap32(x * (1 << left)), multiplier), right)


def activation_range(fused: int, quant, dtype: str = "int8") -> Tuple[int, int]:
    """CalculateActivationRangeQuantized: the clamp of a fused activation in the output's integer
    domain (the real bounds quantised with float32 arithmetic, as TFLite does)."""
    qmin, qmax = RANGES[dtype]
    if fused not in FUSED:
        raise ValueError(f"fused activation {fused} is not supported")
    _, lo, hi = FUSED[fused]

    def q(f):
        return quant.zero_point + round_half_away(float(np.float32(f) / np.float32(quant.scale)))

    lo_q = qmin if lo is None else max(qmin, q(lo))
    hi_q = qmax if hi is None else min(qmax, q(hi))
    return int(lo_q), int(hi_q)


def quantize_float(x, quant, dtype: str = "int8") -> np.ndarray:
    """TFLite's AffineQuantize of float32 values as its reference kernel (TFLM's) computes it:
    round(x / scale) with the quotient in float32 (not double: the two round differently where
    the float32 quotient lands on a half), halves away from zero, + zero point, saturated."""
    with np.errstate(over="ignore", invalid="ignore"):
        q = (np.asarray(x, np.float32) / np.float32(quant.scale)).astype(np.float64)
    q = np.clip(np.nan_to_num(q, nan=-1e6), -1e6, 1e6)  # as the header's mn_quantize
    r = np.sign(q) * np.floor(np.abs(q) + 0.5)
    lo, hi = RANGES[dtype]
    return np.clip(r + quant.zero_point, lo, hi).astype(np.int8 if dtype == "int8" else np.uint8)


def c_array(values, per_line: int = 16, indent: str = "    ") -> str:
    """Integer values as the body of a C array initialiser."""
    flat = [str(int(v)) for v in np.asarray(values).reshape(-1).tolist()]
    lines = [indent + ", ".join(flat[i:i + per_line]) + "," for i in range(0, len(flat), per_line)]
    return "\n".join(lines)


# gemmlowp's fixed-point helpers (as templates/kernels/int8_reciprocal.h.j2 and int8_fixedpoint.h.j2 have them in C++), for
# tables computed at compile time (the int8 logistic)
def sat_shl(x: int, e: int) -> int:
    """SaturatingRoundingMultiplyByPOT for e > 0: x * 2^e saturated to int32."""
    threshold = (1 << (31 - e)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return x << e


def exp_quarter(a: int) -> int:
    """exp(a) for a in [-1/4, 0), Q0.31 in and out (gemmlowp's
    exp_on_interval_between_negative_one_quarter_and_0_excl)."""
    constant_term, one_third = 1895147668, 715827883
    x = wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbpot(x4, 2)
    poly = rdbpot(wrap32(srdhm(wrap32(x4_over_4 + x3), one_third) + x2), 1)
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + poly)))


def exp_neg(a: int, integer_bits: int = 4) -> int:
    """exp(a) for a <= 0: a with ``integer_bits`` integer bits (Q4.27 for the logistic, Q5.26 for
    tanh's exp(2x)), result in Q0.31 (gemmlowp's exp_on_negative_values: exp of a - 1/4 modulo
    1/4 by polynomial, then one factor exp(-2^k) for each bit k of the remainder the input's
    integer bits allow; no clamp is needed below 6 integer bits)."""
    if integer_bits > 5:
        raise ValueError("exp_neg: more than 5 integer bits needs gemmlowp's clamp at -32")
    frac = 31 - integer_bits
    factors = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)
    quarter = 1 << (frac - 2)
    a_mod = (a & (quarter - 1)) - quarter
    result = exp_quarter(sat_shl(a_mod, integer_bits))
    remainder = wrap32(a_mod - a)
    for k, f in enumerate(factors[:integer_bits + 2]):  # exponents -2 .. integer_bits - 1
        if remainder & (1 << (frac - 2 + k)):
            result = srdhm(result, f)
    return INT32_MAX if a == 0 else result


def exp_neg_q4_27(a: int) -> int:
    """exp(a) for a <= 0: a in Q4.27, result in Q0.31 (gemmlowp's exp_on_negative_values)."""
    return exp_neg(a, 4)


def _reciprocal_half_denominator(a: int) -> int:
    """gemmlowp's Newton-Raphson 1 / ((1 + a) / 2) for a in [0, 1) (Q0.31 in, Q2.29 out: three
    steps from 48/17 - 32/17 d), shared by 1 / (1 + a) and (1 - a) / (1 + a)."""
    total = a + INT32_MAX
    half_denominator = (total + 1) // 2 if total >= 0 else -((-total + 1) // 2)
    x = wrap32(1515870810 + srdhm(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = wrap32((1 << 29) - srdhm(half_denominator, x))
        x = wrap32(x + sat_shl(srdhm(x, one_minus), 2))
    return x


def one_over_one_plus(a: int) -> int:
    """1 / (1 + a) for a in [0, 1), Q0.31 in and out (gemmlowp's
    one_over_one_plus_x_for_x_in_0_1: Newton-Raphson, three steps)."""
    return sat_shl(_reciprocal_half_denominator(a), 1)


def one_minus_over_one_plus(a: int) -> int:
    """(1 - a) / (1 + a) for a in [0, 1), Q0.31 in and out (gemmlowp's
    one_minus_x_over_one_plus_x_for_x_in_0_1: the same reciprocal, minus one, rescaled)."""
    return sat_shl(wrap32(_reciprocal_half_denominator(a) - (1 << 29)), 2)


def logistic_int8(q: int, zin: int, radius: int, mult: int, shift: int) -> int:
    """TFLite's reference integer Logistic of one int8 value (output scale 1/256, zero point
    -128): beyond the input radius it saturates; otherwise x - zin becomes Q4.27 through (mult,
    shift) and gemmlowp's logistic gives Q0.31, rounded to the output's 2^-8 steps."""
    x = q - zin
    if x <= -radius:
        return -128
    if x >= radius:
        return 127
    q4 = mbqm(x, mult, shift)
    if q4 == 0:
        r = 1 << 30
    else:
        positive = one_over_one_plus(exp_neg_q4_27(-q4 if q4 > 0 else q4))
        r = positive if q4 > 0 else INT32_MAX - positive
    return max(-128, min(127, rdbpot(r, 23) - 128))


def q4_input_params(in_scale: float) -> Tuple[int, int, int]:
    """(multiplier, shift, input radius) of TFLite's int8 Logistic and Tanh: input_scale * 2^27
    by frexp with no carry step (as both reference kernels form it), and the radius beyond which
    the Q4.27 input saturates."""
    real = float(in_scale) * float(1 << 27)
    q, shift = math.frexp(real)
    mult = wrap32(round_half_away(q * (1 << 31)))
    radius = int(math.floor(15 * (1 << 27) / (2.0 ** shift)))
    return mult, int(shift), radius


def tanh_int8(q: int, zin: int, radius: int, mult: int, shift: int) -> int:
    """TFLite's reference integer Tanh of one int8 value (output scale 1/128, zero point 0), as
    TFLM runs it: beyond the input radius it saturates; otherwise x - zin becomes Q4.27 through
    (mult, shift) and gemmlowp's tanh gives Q0.31 (tanh |x| = (1 - e^-2|x|) / (1 + e^-2|x|), the
    exponent read as Q5.26, sign restored), rounded to the output's 2^-7 steps."""
    x = q - zin
    if x <= -radius:
        return -128
    if x >= radius:
        return 127
    q4 = mbqm(x, mult, shift)
    if q4 == 0:
        return 0
    t = one_minus_over_one_plus(exp_neg(-abs(q4), 5))
    return max(-128, min(127, rdbpot(-t if q4 < 0 else t, 24)))


def inv_sqrt_multiplier_exp(x: int) -> Tuple[int, int]:
    """TFLite's GetInvSqrtQuantizedMultiplierExp(x, reverse_shift=-1): (multiplier, shift) with
    1 / sqrt(x) ~= multiplier * 2^(shift - 31), shift > 0 a left shift. x is normalised to
    [2^27, 2^29) by pairs of bits, then five Newton-Raphson steps in gemmlowp's Q3.28 from 1, and
    a multiply by sqrt(2) / 2 (Q0.31). x <= 1 gives (INT32_MAX, 0)."""
    if x <= 1:
        return INT32_MAX, 0
    shift = 11
    while x >= (1 << 29):
        x //= 4
        shift += 1
    leading = 32 - x.bit_length()  # CountLeadingZeros of a positive int32
    pairs = (leading - 1) // 2 - 1
    shift -= pairs
    x <<= 2 * pairs
    half_input = rdbpot(x >> 1, 1)  # Q3.28 x / 2, rounded
    half_three = (1 << 28) + (1 << 27)  # 1.5 in Q3.28
    r = 1 << 28  # 1 in Q3.28
    for _ in range(5):
        r3 = sat_shl(srdhm(srdhm(r, r), r), 6)  # Q9 -> Q3
        r = sat_shl(wrap32(srdhm(half_three, r) - srdhm(half_input, r3)), 3)  # Q6 -> Q3
    r = srdhm(r, 1518500250)  # times sqrt(2) / 2, Q0.31
    if shift < 0:
        r, shift = wrap32(r << -shift), 0
    return r, -shift
