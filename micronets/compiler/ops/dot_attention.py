"""Keras' Attention (Luong: dot-product, or its "concat" scores) and AdditiveAttention (Bahdanau)
over sequences, as "attention LSTM" classifiers use them: no projections, for each query position
i the scores s_j against every key position j (only j <= i with ``use_causal_mask``), p =
softmax(s), out_i = sum_j p_j v_j. Scores: dot ``scale q.k``; concat ``cw sum_d tanh(scale (q_d +
k_d))``; additive ``sum_d w_d tanh(q_d + k_d)`` (w: Keras' per-feature scale; without it, 1). ``scale``
is 1 without ``use_scale``. Float headers only. Masks are refused; the key is the value unless
given. MACs: LQ LK (D + DV) (the tanh scores counted as one multiply-add a feature).
"""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.activations import c_float
from micronets.compiler.graph import FLOAT_BYTES
from micronets.compiler.ops.base import Op, UnsupportedModelError, converter

MODES = {"dot": 0, "concat": 1, "additive": 2}


class DotAttention(Op):
    template = "kernels/dot_attention.h.j2"
    requires = ("kernels/attention.h.j2",)  # mha_softmax

    def __init__(self, name, query, value, key, out, mode: str, causal: bool, scale: float = 1.0,
                 concat_weight: float = 1.0, weights=None):
        if mode not in MODES:
            raise ValueError(f"attention mode {mode!r}; known: {', '.join(MODES)}")
        super().__init__(name, [query, value, key], out)
        self.kind = "AdditiveAttention" if mode == "additive" else "Attention"
        self.mode = mode
        self.causal = bool(causal)
        self.scale = float(np.float32(scale))
        self.concat_weight = float(np.float32(concat_weight))
        self.w = None if weights is None else np.asarray(weights, np.float64).reshape(-1)
        self.lq, self.dim = query.shape
        self.lk, self.dv = value.shape

    @property
    def mode_code(self) -> int:
        """MODE of the kernel (MODES)."""
        return MODES[self.mode]

    @property
    def scale_c(self):
        return c_float(self.scale)

    @property
    def concat_weight_c(self):
        return c_float(self.concat_weight)

    def macs(self):
        return int(self.lq * self.lk * (self.dim + self.dv))

    def weights(self):
        return collections.OrderedDict() if self.w is None else collections.OrderedDict(w=self.w)

    def workspace_bytes(self):
        return self.lk * FLOAT_BYTES  # one query's scores

    def describe(self):
        text = f"{self.mode} scores, {self.lq} queries x {self.lk} keys"
        return text + (", causal" if self.causal else "")


@converter("Attention", "AdditiveAttention")
def convert_attention(layer, inputs, ctx):
    cls = type(layer).__name__
    if ctx.call_kwargs.get("mask") is not None:
        raise UnsupportedModelError(f"layer '{layer.name}' ({cls}) is called with a mask; not supported")
    xs = [ctx.dense_input(t) for t in inputs]
    if len(xs) not in (2, 3) or any(len(t.shape) != 2 for t in xs):
        raise UnsupportedModelError(f"layer '{layer.name}' ({cls}) attends between sequences (steps, features); "
                                    f"got {[t.shape for t in xs]}")
    query, value = xs[0], xs[1]
    key = xs[2] if len(xs) > 2 else value
    if key.shape[0] != value.shape[0] or key.shape[1] != query.shape[1]:
        raise UnsupportedModelError(f"layer '{layer.name}' ({cls}): query {query.shape}, value {value.shape} and key "
                                    f"{key.shape} do not fit")
    causal = bool(ctx.call_kwargs.get("use_causal_mask", False))
    out = ctx.new_tensor(layer.name, (query.shape[0], value.shape[1]))
    if cls == "AdditiveAttention":
        w = np.asarray(layer.scale.numpy(), np.float64) if layer.use_scale else None  # (None: ones, not stored)
        op = DotAttention(layer.name, query, value, key, out, "additive", causal, weights=w)
    else:
        scale = float(np.asarray(layer.scale.numpy())) if layer.use_scale else 1.0
        if layer.score_mode == "concat":
            op = DotAttention(layer.name, query, value, key, out, "concat", causal, scale,
                              float(np.asarray(layer.concat_score_weight.numpy())))
        else:
            op = DotAttention(layer.name, query, value, key, out, "dot", causal, scale)
    return ctx.add(op).output
