"""int8 through float: the ops TFLite's converter leaves unquantised between a DEQUANTIZE and a
QUANTIZE back to int8 (LayerNormalization's -mean, ELU at any alpha, keras.ops.square, sign,
floor, round, cos, sin, power, ...). Every value of such an island is a function of the one int8
input, so the whole island runs as one 256-entry table, computed here with the references' own
float steps: the input dequantised (the scale as a double times q - zero point, rounded to float),
each op in single precision as TFLite's and TFLM's float kernels compute it (the C library's
expm1f, cosf, sinf, expf, logf, powf where they call std::expm1, cos, ...; a fused activation as
their float clamp), the island's result quantised (divided by the output scale in single
precision, rounded half away from zero, plus the zero point, saturated).

An island may hold several ops (ELU with alpha != 1: ELU, MUL, SELECT, by an int8 GREATER of the
input and 0), reading the input, each other, scalar float constants and int8 comparisons of the
input with a constant only. A result that is not finite, or beyond int32
once divided by the output scale, is refused: there the references' float-to-int cast is
undefined and differs between machines. Where a reference lacks a float kernel (BUILTIN_REF has no
ELU; TFLM no POW or SIGN) the other one is the reference."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from micronets.compiler.ops.int8_base import Int8TableOp
from micronets.compiler.quant import FUSED, libm_f32, round_half_away

F32 = np.float32


def _libm(name: str, fallback, arity: int = 1):
    fn = libm_f32(name, fallback, arity)
    return lambda *arrays: np.array([fn(*vs) for vs in zip(*arrays)], F32)


def _where(cond, a, b):
    return np.where(cond, a, b).astype(F32)


#: TFLite float op -> its evaluation over float32 (or bool) arrays, as the reference kernels compute it
FLOAT_OPS = {
    "NEG": lambda a: -a,
    "SQUARE": lambda a: a * a,
    "ABS": np.abs,
    "SIGN": np.sign,
    "FLOOR": np.floor,
    "CEIL": np.ceil,
    "ROUND": np.rint,  # halves to even, as TFLite's RoundToNearest
    "SQRT": np.sqrt,
    "RSQRT": lambda a: F32(1) / np.sqrt(a),
    "ELU": lambda a: _where(a < 0, _libm("expm1f", np.expm1)(a), a),
    "EXP": _libm("expf", np.exp),
    "LOG": _libm("logf", np.log),
    "COS": _libm("cosf", np.cos),
    "SIN": _libm("sinf", np.sin),
    "POW": _libm("powf", np.power, 2),
    "ADD": lambda a, b: a + b,
    "SUB": lambda a, b: a - b,
    "MUL": lambda a, b: a * b,
    "DIV": lambda a, b: a / b,
    "MAXIMUM": np.maximum,
    "MINIMUM": np.minimum,
    "GREATER": np.greater,
    "GREATER_EQUAL": np.greater_equal,
    "LESS": np.less,
    "LESS_EQUAL": np.less_equal,
    "EQUAL": np.equal,
    "NOT_EQUAL": np.not_equal,
    "SELECT": _where,
    "SELECT_V2": _where,
}

#: one step of an island: (TFLite op name, operands, fused activation); an operand is an int
#: (0: the dequantised input, k: step k's result), a float (a scalar constant) or an array of 256
#: values, one per raw input value (an int8 comparison of the input with a constant, as ELU's
#: alpha makes)
Step = Tuple[str, Tuple[object, ...], int]


def island_values(steps: Sequence[Step], in_scale: float, in_zero: int) -> np.ndarray:
    """The island's float32 result for the inputs -128..127, in order."""
    x = np.array([F32(float(F32(in_scale)) * (v - int(in_zero))) for v in range(-128, 128)], F32)
    values = [x]
    with np.errstate(all="ignore"):  # inf / NaN are caught where they reach the output
        for name, operands, fused in steps:
            args = [values[o] if isinstance(o, int) else np.asarray(o) if isinstance(o, np.ndarray)
                    else np.full(256, F32(o), F32) for o in operands]
            y = FLOAT_OPS[name](*args)
            y = y if y.dtype == bool else np.asarray(y, F32)
            _, lo, hi = FUSED[fused]
            if lo is not None:
                y = np.maximum(y, F32(lo))
            if hi is not None:
                y = np.minimum(y, F32(hi))
            values.append(y)
    return values[-1]


def island_table(steps: Sequence[Step], in_scale: float, in_zero: int, out_scale: float, out_zero: int) -> np.ndarray:
    """The island as an int8 table for the inputs -128..127, in order. ValueError where a result
    is not finite or leaves int32 once divided by the output scale."""
    out = []
    for v, y in zip(range(-128, 128), island_values(steps, in_scale, in_zero)):
        q = float(F32(y) / F32(out_scale))
        if not np.isfinite(q) or abs(q) >= 2.0 ** 31 - 256:
            raise ValueError(f"at input {v} the float ops give {float(y):.9g}, which the references cast to int8 "
                             "differently on different machines (not finite, or beyond int32 once divided by the "
                             "output scale)")
        out.append(max(-128, min(127, round_half_away(q) + int(out_zero))))
    return np.array(out, np.int8)


class Int8FloatIsland(Int8TableOp):
    kind = "FloatIsland"

    def __init__(self, name, x, out, steps: Sequence[Step]):
        super().__init__(name, x, out)
        self.steps = tuple(steps)
        self.table = island_table(self.steps, x.quant.scale, x.quant.zero_point, out.quant.scale, out.quant.zero_point)

    def describe(self):
        return ", ".join(name for name, _, _ in self.steps)


def unary_table(op: str, in_scale: float, in_zero: int, out_scale: float, out_zero: int,
                constant: Optional[float] = None) -> np.ndarray:
    """The table of a one-op island: ``op`` of the input (and ``constant``, for a binary op)."""
    operands = (0,) if constant is None else (0, float(constant))
    return island_table(((op, operands, 0),), in_scale, in_zero, out_scale, out_zero)
