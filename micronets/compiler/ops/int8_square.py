"""int8 square through float: TFLite's converter does not quantise SQUARE (keras.ops.square,
squareplus); it leaves a DEQUANTIZE, a float SQUARE and a QUANTIZE back to int8. The three run as
one 256-entry table of the references' float steps (``quant.float_island_table``), the square a
single-precision x * x as TFLM's and TFLite's float SQUARE compute it."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_base import Int8TableOp
from micronets.compiler.quant import float_island_table


def square_table(in_scale: float, in_zero: int, out_scale: float, out_zero: int) -> np.ndarray:
    """x * x requantised for the inputs -128..127, in order, as DEQUANTIZE, SQUARE, QUANTIZE compute it."""
    return float_island_table(in_scale, in_zero, out_scale, out_zero, lambda x: np.float32(x) * np.float32(x))


class Int8Square(Int8TableOp):
    kind = "Square"
    table_of = staticmethod(square_table)
