"""int8 swish, x * sigmoid(x) (EfficientNet's activation; TFLite writes it as LOGISTIC then MUL of
the logistic's input by its output): one 256-entry table. Both ops' results depend on x's int8
value alone, so the compiler runs TFLite's integer LOGISTIC and MUL for each of the 256 values
(``logistic_table``, then MUL's MultiplyByQuantizedMultiplier with its zero points and clamp) and
the kernel looks the result up: bit-identical to the two ops, in place, and the logistic's output
is never stored (an EfficientNet expansion's swish needed two maps in the arena)."""

from __future__ import annotations

import collections
from typing import List

import numpy as np

from micronets.compiler.ops.int8_base import Int8TableOp
from micronets.compiler.ops.int8_logistic import Int8Logistic
from micronets.compiler.ops.int8_mul import Int8Mul
from micronets.compiler.quant import mbqm


class Int8Swish(Int8TableOp):
    kind = "Swish"

    def __init__(self, name, x, out, table):
        super().__init__(name, x, out)
        self.table = np.asarray(table, np.int8)

    def describe(self):
        return "x * sigmoid(x): LOGISTIC and MUL as one table"


def swish_table(logistic: Int8Logistic, mul: Int8Mul) -> np.ndarray:
    """MUL(x, LOGISTIC(x)) for x = -128..127, with TFLite's integer arithmetic of both ops."""
    x = logistic.inputs[0]
    x_off, s_off = (mul.a_off, mul.b_off) if mul.inputs[0] is x else (mul.b_off, mul.a_off)
    out = []
    for v, s in zip(range(-128, 128), logistic.table.tolist()):
        y = mbqm((v + x_off) * (s + s_off), mul.mult, mul.shift) + mul.out_off
        out.append(min(mul.act_max, max(mul.act_min, y)))
    return np.array(out, np.int8)


def fuse_swish(ops: List, kept) -> List:
    """``ops`` with each LOGISTIC whose only reader is a MUL of the logistic's input by its output
    (same shape; the logistic's output not in ``kept``, the model outputs) replaced, with that MUL,
    by one Int8Swish at the MUL's place."""
    readers = collections.Counter(id(t.storage) for op in ops for t in op.inputs)
    muls = {id(t): m for m in ops if isinstance(m, Int8Mul) for t in m.inputs}  # the MUL reading a tensor, once
    replace, drop = {}, set()
    for op in ops:
        if not isinstance(op, Int8Logistic):
            continue
        x, s = op.inputs[0], op.output
        if readers[id(s.storage)] != 1 or s.storage in kept:
            continue
        mul = muls.get(id(s))
        if mul is None or {id(t) for t in mul.inputs} != {id(x), id(s)} or x.shape != mul.output.shape:
            continue
        replace[id(mul)] = Int8Swish(mul.name, x, mul.output, swish_table(op, mul))
        drop.add(id(op))
    return [replace.get(id(op), op) for op in ops if id(op) not in drop]
