"""Embedding: each input value is a row index (a token id) into a learned table of V rows of D
floats; out[..., :] = table[id]. The ids arrive as the model's input values (``predict(const
float*)``: ids as floats, exact up to 2^24; ``predict(const uint8_t*)``: ids 0..255), truncated
toward zero as Keras casts them. An id outside [0, V) (or NaN), where TensorFlow raises, gives
a row of zeros: the header never reads outside its table."""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter


class Embedding(Op):
    kind = "Embedding"
    template = "kernels/embedding.h.j2"

    def __init__(self, name, x, out, table):
        super().__init__(name, [x], out)
        self.table = np.asarray(table, np.float64)

    @property
    def rows(self) -> int:
        return int(self.table.shape[0])

    @property
    def width(self) -> int:
        return int(self.table.shape[1])

    def weights(self):
        return collections.OrderedDict(t=self.table.reshape(-1))

    def describe(self):
        return f"{self.rows} ids x {self.width}"


@converter("Embedding")
def convert_embedding(layer, inputs, ctx):
    if getattr(layer, "mask_zero", False):
        raise UnsupportedModelError(f"layer '{layer.name}' (Embedding) has mask_zero=True: the layers after it skip the "
                                    f"masked steps (a masked average, a recurrent layer holding its state), which "
                                    f"micronets does not model; build it with mask_zero=False")
    if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
        raise UnsupportedModelError(f"layer '{layer.name}' (Embedding) is LoRA-enabled or quantised; merge or "
                                    f"dequantise its table first")
    x = ctx.dense_input(inputs[0])
    table = np.asarray(layer.get_weights()[0], np.float64)
    if table.ndim != 2:
        raise UnsupportedModelError(f"layer '{layer.name}' (Embedding) has a table of shape {table.shape}; (rows, width) expected")
    width = int(table.shape[1])
    # one id a sample (``Embedding(...)(ids[:, 0])``, collaborative filtering's users and items): the
    # id is held as a vector of one, Keras' output is (D,), not (1, D), and an axis-1 softmax after it
    # must see D values (it saw one: every output 1.0)
    shape = tuple(ctx.output_shape) if int(np.prod(ctx.output_shape)) == x.size * width else tuple(x.shape) + (width,)
    out = ctx.new_tensor(layer.name, shape)
    return ctx.add(Embedding(layer.name, x, out, table)).output
