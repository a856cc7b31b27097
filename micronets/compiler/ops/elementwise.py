"""Binary elementwise arithmetic with numpy/Keras broadcasting: the merge layers (Add, Subtract,
Multiply, Average, Maximum, Minimum; any number of inputs, as a chain of pairs) and the arithmetic
a functional graph records with constants (``x + 3.0``, ``x * (1 / 6)``, ``6 - x``, ``x / y``), where
a constant may also be the output of a layer that does not depend on the model's input (a learned
position embedding added to a sequence).

Each operand is a tensor or a constant (emitted as weights). Shapes are broadcast right-aligned;
the kernel walks the output with per-operand strides (0 along broadcast axes) over at most three
collapsed axes. In place over an operand that has the output's full shape.
"""

from __future__ import annotations

import collections
from typing import List, Tuple

import numpy as np

from micronets.compiler.graph import Tensor
from micronets.compiler.ops.base import Op, UnsupportedModelError, converter, one_sample

FUNCTIONS = {"add": (0, "+"), "subtract": (1, "-"), "multiply": (2, "*"), "maximum": (3, "max"),
             "minimum": (4, "min"), "divide": (5, "/"),
             # comparisons and logic: Keras' booleans as 1.0 / 0.0 (a cast to a float dtype reads them so)
             "greater": (6, ">"), "greater_equal": (7, ">="), "less": (8, "<"), "less_equal": (9, "<="),
             "equal": (10, "=="), "not_equal": (11, "!="), "logical_and": (12, "and"), "logical_or": (13, "or")}


def _strides(shape, out_shape) -> List[int]:
    """Element strides of an operand of ``shape`` walked along ``out_shape`` (0 where broadcast)."""
    shape = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step if d > 1 else 0)
        step *= d
    return strides[::-1]


def collapse(out_shape, *operand_strides) -> Tuple[Tuple[int, ...], Tuple[Tuple[int, ...], ...]]:
    """Drop unit axes, then merge adjacent axes along which every operand walks contiguously or
    stays put; returns (dims, strides per operand), each padded in front to three axes."""
    keep = [i for i, d in enumerate(out_shape) if d > 1]
    dims = [int(out_shape[i]) for i in keep]
    strides = [[s[i] for i in keep] for s in operand_strides]
    k = len(dims) - 1
    while k > 0:
        if all(s[k - 1] == s[k] * dims[k] for s in strides):  # contiguous, or 0 == 0 * d
            dims[k - 1] *= dims[k]
            for s in strides:
                s[k - 1] = s[k]
                del s[k]
            del dims[k]
        k -= 1
    if len(dims) > 3:
        raise UnsupportedModelError(f"broadcast of shape {tuple(out_shape)} needs {len(dims)} axes; at most 3 are supported")
    pad = 3 - len(dims)
    return tuple([1] * pad + dims), tuple(tuple([0] * pad + s) for s in strides)


class Binary(Op):
    """out = act(a OP b); each operand a tensor or a constant array."""

    kind = "Elementwise"
    template = "kernels/elementwise.h.j2"
    fuses_activation = True

    def __init__(self, name, operands, out, function):
        tensors = [o for o in operands if isinstance(o, Tensor)]
        super().__init__(name, tensors, out)
        self.operands = [o if isinstance(o, Tensor) else np.asarray(o, np.float64) for o in operands]
        self.function = function
        self.kind = "".join(w.capitalize() for w in function.split("_"))  # Add, ..., GreaterEqual, LogicalAnd
        self.dims, self.strides = collapse(out.shape, *(_strides(np.shape(o) if not isinstance(o, Tensor) else o.shape,
                                                                  out.shape) for o in self.operands))

    def label(self):
        text = f"{self.kind} " + ", ".join(o.shape_str() if isinstance(o, Tensor) else
                                               (f"{float(o.reshape(-1)[0]):g}" if o.size == 1 else f"const {o.shape}")
                                               for o in self.operands)
        return f"{text} + {self.act.label}" if self.act.label else text

    def weights(self):
        w = collections.OrderedDict()
        for k, o in enumerate(self.operands):
            if not isinstance(o, Tensor):
                w["ab"[k]] = o.reshape(-1)
        return w

    def inplace_gap(self, input_index):
        return 0 if self.inputs[input_index].size == self.output.size else None  # not broadcast

    def any_order(self, p) -> bool:
        """True when the kernel may compute the elements in any order: the output is not in the
        arena over a tensor operand, or lies exactly on it (then each element is read before it
        is written, whatever the order)."""
        plan = p.plan
        for o in self.operands:
            if not isinstance(o, Tensor) or not plan.overlaps(o, self.output):
                continue
            if not (plan.in_arena(o) and plan.in_arena(self.output) and plan.offset(o) == plan.offset(self.output)
                    and o.channel_offset == self.output.channel_offset):
                return False
        return True

    def operand_ptr(self, k, p):
        o = self.operands[k]
        return p.ptr(o) if isinstance(o, Tensor) else self.wname("ab"[k])

    @property
    def code(self):
        return FUNCTIONS[self.function][0]


def broadcast_operands(ctx, args, function, name):
    """(operands, output shape) of an elementwise op: each argument a dense tensor or a constant
    array of one sample; their shapes broadcast as numpy does, never over the batch axis."""
    operands = []
    for o in args:
        if ctx.is_value(o):
            operands.append(ctx.dense_input(o))
        else:
            value = np.asarray(o, np.float64)
            if value.dtype.kind not in "fiub":
                raise UnsupportedModelError(f"'{name}': operand {o!r} is not a number")
            operands.append(value)
    rank = max(len(o.shape) for o in operands if isinstance(o, Tensor))
    operands = [o if isinstance(o, Tensor) else one_sample(o, rank) for o in operands]
    shapes = [o.shape if isinstance(o, Tensor) else np.shape(o) for o in operands]
    try:
        shape = np.broadcast_shapes(*shapes)
    except ValueError:
        raise UnsupportedModelError(f"'{name}' ({function}) of shapes {' and '.join(map(str, shapes))} does not "
                                    f"broadcast") from None
    if len(shape) > rank:
        raise UnsupportedModelError(f"'{name}' ({function}): a constant of shape {shapes} would broadcast over the batch axis")
    return operands, shape


def binary(ctx, a, b, function, name):
    operands, shape = broadcast_operands(ctx, (a, b), function, name)
    out = ctx.new_tensor(name, shape)
    return ctx.add(Binary(name, operands, out, function)).output


def chain(ctx, inputs, function, name):
    """Fold several inputs pairwise left to right, as Keras' merge layers do."""
    x = inputs[0]
    for k, y in enumerate(inputs[1:]):
        x = binary(ctx, x, y, function, name if k == len(inputs) - 2 else f"{name}_{k}")
    return x


_MERGES = {"Add": "add", "Subtract": "subtract", "Multiply": "multiply", "Maximum": "maximum", "Minimum": "minimum"}


@converter(*_MERGES, "Average", constants=True, parts=True)
def convert_merge(layer, inputs, ctx):
    cls = type(layer).__name__
    if len(inputs) < 2 or (cls == "Subtract" and len(inputs) != 2):
        raise UnsupportedModelError(f"layer '{layer.name}' ({cls}) has {len(inputs)} inputs; it needs "
                                    f"{'exactly 2' if cls == 'Subtract' else 'at least 2'}")
    if cls == "Average":
        total = chain(ctx, inputs, "add", f"{layer.name}_sum")
        return binary(ctx, total, float(len(inputs)), "divide", layer.name)
    return chain(ctx, inputs, _MERGES[cls], layer.name)


_OPS = {"Add": "add", "Subtract": "subtract", "Multiply": "multiply", "Maximum": "maximum", "Minimum": "minimum",
        "Divide": "divide", "TrueDivide": "divide", "Greater": "greater", "GreaterEqual": "greater_equal",
        "Less": "less", "LessEqual": "less_equal", "Equal": "equal", "NotEqual": "not_equal",
        "LogicalAnd": "logical_and", "LogicalOr": "logical_or"}


@converter(*(f"op:{k}" for k in _OPS), constants=True, parts=True)
def convert_arithmetic(layer, inputs, ctx):
    """keras.ops arithmetic in a functional graph: two operands, tensors or constants."""
    args = list(ctx.call_args) + [ctx.call_kwargs[k] for k in ("x2",) if k in ctx.call_kwargs]
    if len(args) != 2:
        raise UnsupportedModelError(f"operation '{layer.name}' ({type(layer).__name__}) has {len(args)} operands; expected 2")
    return binary(ctx, args[0], args[1], _OPS[type(layer).__name__], layer.name)


@converter("op:Negative", parts=True)
def convert_negative(layer, inputs, ctx):
    return binary(ctx, inputs[0], -1.0, "multiply", layer.name)


@converter("op:LogicalNot", parts=True)
def convert_logical_not(layer, inputs, ctx):
    return binary(ctx, inputs[0], 0.0, "equal", layer.name)


class Select(Op):
    """out = c ? a : b elementwise (``keras.ops.where(c, a, b)``: c non-zero picks a), each operand
    a tensor or a constant, broadcast as numpy does. Never in place."""

    kind = "Where"
    template = "kernels/select.h.j2"

    def __init__(self, name, operands, out):
        super().__init__(name, [o for o in operands if isinstance(o, Tensor)], out)
        self.operands = [o if isinstance(o, Tensor) else np.asarray(o, np.float64) for o in operands]
        self.dims, self.strides = collapse(out.shape, *(_strides(o.shape if isinstance(o, Tensor) else np.shape(o),
                                                                  out.shape) for o in self.operands))

    def weights(self):
        return collections.OrderedDict((f"c{k}", o.reshape(-1)) for k, o in enumerate(self.operands)
                                       if not isinstance(o, Tensor))

    def operand_ptr(self, k, p):
        o = self.operands[k]
        return p.ptr(o) if isinstance(o, Tensor) else self.wname(f"c{k}")


@converter("op:Where", constants=True, parts=True)
def convert_where(layer, inputs, ctx):
    """keras.ops.where(condition, x1, x2): the three-operand select (a one-argument where, which
    returns indices, is refused)."""
    args = list(ctx.call_args) + [ctx.call_kwargs[k] for k in ("x1", "x2") if k in ctx.call_kwargs]
    if len(args) != 3 or any(a is None for a in args):
        given = sum(a is not None for a in args)
        raise UnsupportedModelError(f"operation '{layer.name}' (keras.ops.where) with {given} operand(s) (the indices "
                                    f"form); only where(condition, x1, x2) is supported")
    return select(ctx, *args, layer.name)


def select(ctx, condition, a, b, name):
    """where(condition, a, b), each a model value or a constant (masks: a or a fill)."""
    operands, shape = broadcast_operands(ctx, (condition, a, b), "where", name)
    return ctx.add(Select(name, operands, ctx.new_tensor(name, shape))).output
