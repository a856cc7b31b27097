"""MultiHeadAttention (the transformers' and ViTs' attention; float headers only), as Keras
computes it at inference: per head h, q = (x_q Wq_h + bq_h) / sqrt(key_dim), k = x_k Wk_h + bk_h,
v = x_v Wv_h + bv_h; each query position's weights p = softmax(q . k) over the key positions (only
those its mask lets it see), its head output o = sum p v (times sigmoid(x_q Wg_h + bg_h) with
``use_gate``); and out = sum over heads of o Wo_h, + bo. A mask is a band of key positions
around each query's own: ``use_causal_mask`` (keys up to the query's), ``sliding_window`` (keys
less than w away), both, or a constant ``attention_mask`` of that form (miniature GPT's hand-built
causal mask); any other mask is refused. Positions are every axis but the last (a sequence's L, a map's H x W: Keras'
default ``attention_axes``). The key bias is not stored: it adds q . bk_h to every score of a
query, which the softmax cancels.

Two forms of the kernel (templates/kernels/attention.h.j2), one walk over heads and query
positions each: ``stored`` projects a head's keys and values once into its workspace (LK x
(key_dim + value_dim) floats); ``folded`` projects neither, scoring each key position's input
against Wk_h q and projecting the p-weighted sum of the value inputs (a few dozen floats of
workspace). ``folded`` is the fallback; ``stored`` is offered first where it takes fewer MACs (key
and value inputs wider than a head), and the plan gives it where it costs no arena
(``workspace_options``). MACs are counted as Keras' computation (``stored``'s). Neither input may
share bytes with the output (every query reads every key position).
"""

from __future__ import annotations

import collections
import inspect

import numpy as np

from micronets.compiler.activations import c_float
from micronets.compiler.graph import FLOAT_BYTES, Tensor
from micronets.compiler.ops.base import Op, TraceThrough, UnsupportedModelError, converter, one_sample


class MultiHeadAttention(Op):
    kind = "MultiHeadAttention"
    template = "kernels/attention.h.j2"

    def __init__(self, name, query, key, value, out, wq, bq, wk, wv, bv, wo, bo, band=(None, None), wg=None, bg=None):
        super().__init__(name, [query, key, value], out)
        # Keras' kernels: query/key/value/gate (D_in, H, dim), output (H, value_dim, D_out)
        self.wq, self.wk, self.wv, self.wo = (np.asarray(w, np.float64) for w in (wq, wk, wv, wo))
        self.bq, self.bv, self.bo = (None if b is None else np.asarray(b, np.float64) for b in (bq, bv, bo))
        #: query i sees key positions i - before .. i + after (None: no bound that side)
        self.before, self.after = (None if b is None else int(b) for b in band)
        self.wg = None if wg is None else np.asarray(wg, np.float64)
        self.bg = None if bg is None or wg is None else np.asarray(bg, np.float64)

    # ---- sizes
    @property
    def heads(self) -> int:
        return int(self.wq.shape[1])

    @property
    def key_dim(self) -> int:
        return int(self.wq.shape[2])

    @property
    def value_dim(self) -> int:
        return int(self.wv.shape[2])

    @staticmethod
    def _positions(t) -> int:
        return int(np.prod(t.shape[:-1], dtype=np.int64))

    @property
    def lq(self) -> int:
        return self._positions(self.inputs[0])

    @property
    def lk(self) -> int:
        return self._positions(self.inputs[1])

    @property
    def dims(self):
        """(query, key, value, output) features: the last axis of each."""
        return tuple(int(t.shape[-1]) for t in (*self.inputs, self.output))

    @property
    def has_bias(self) -> bool:
        return self.bq is not None

    @property
    def scale_c(self) -> str:
        # Keras multiplies the projected query by 1 / sqrt(key_dim) in the query's dtype
        return c_float(float(np.float32(1.0 / np.sqrt(float(self.key_dim)))))

    @property
    def gated(self) -> bool:
        return self.wg is not None

    def keys_seen(self, i: int) -> "tuple[int, int]":
        """The key positions [j0, j1) query position ``i`` attends to."""
        j0 = 0 if self.before is None else max(0, i - self.before)
        j1 = self.lk if self.after is None else min(self.lk, i + self.after + 1)
        return j0, j1

    @property
    def band_c(self) -> "tuple[int, int]":
        """(BEFORE, AFTER) for the kernel: an unbounded side as LQ + LK (reaches every key)."""
        far = self.lq + self.lk
        return (far if self.before is None else self.before), (far if self.after is None else self.after)

    # ---- facts
    def _pairs(self) -> int:
        """(query, key) position pairs scored."""
        return sum(j1 - j0 for j0, j1 in map(self.keys_seen, range(self.lq)))

    def macs(self) -> int:
        dq, dkin, dvin, dout = self.dims
        h, dk, dv, lq, lk = self.heads, self.key_dim, self.value_dim, self.lq, self.lk
        gate = lq * dq * dv if self.gated else 0
        return int(h * (lq * dq * dk + lk * dkin * dk + lk * dvin * dv + self._pairs() * (dk + dv) + lq * dv * dout + gate))

    def _form_macs(self, form: str) -> int:
        """MACs of a form's own part (the query and output projections are common)."""
        _, dkin, dvin, _ = self.dims
        h, dk, dv, lq, lk = self.heads, self.key_dim, self.value_dim, self.lq, self.lk
        if form == "stored":
            return h * (lk * (dkin * dk + dvin * dv) + self._pairs() * (dk + dv))
        return h * (lq * (dk * dkin + dvin * dv) + self._pairs() * (dkin + dvin))

    @property
    def workspace_options(self) -> "tuple[str, ...]":
        """The kernel's forms, best first: ``stored`` only where it takes fewer MACs."""
        return ("stored", "folded") if self._form_macs("stored") < self._form_macs("folded") else ("folded",)

    workspace_needed = True
    workspace_option = None

    @property
    def form(self) -> str:
        """The form this op runs (its planned ``workspace_option``; ``folded`` before planning)."""
        return self.workspace_option or "folded"

    def workspace_bytes(self) -> int:
        _, dkin, dvin, _ = self.dims
        dk, dv, lk = self.key_dim, self.value_dim, self.lk
        gate = dv if self.gated else 0  # the gate of one query position
        if self.form == "stored":
            return FLOAT_BYTES * (lk * (dk + dv) + dk + lk + dv + gate)
        return FLOAT_BYTES * (dk + dkin + lk + dvin + dv + gate)

    def weights(self):
        w = collections.OrderedDict()
        # per head, [input feature][head dim]: a head's projection reads one contiguous block
        w["wq"] = self.wq.transpose(1, 0, 2).reshape(-1)
        if self.bq is not None:
            w["bq"] = self.bq.reshape(-1)
        w["wk"] = self.wk.transpose(1, 0, 2).reshape(-1)
        w["wv"] = self.wv.transpose(1, 0, 2).reshape(-1)
        if self.bv is not None:
            w["bv"] = self.bv.reshape(-1)
        w["wo"] = self.wo.reshape(-1)  # [head][value dim][output feature]
        if self.gated:
            w["wg"] = self.wg.transpose(1, 0, 2).reshape(-1)  # as wq: [head][input feature][value dim]
            if self.bg is not None:
                w["bg"] = self.bg.reshape(-1)
        if self.bo is not None:
            w["bo"] = self.bo.reshape(-1)
        return w

    def describe(self):
        side = {(None, None): "", (None, 0): ", causal"}
        band = side.get((self.before, self.after), f", keys from {self.before if self.before is not None else 'all'} "
                                                    f"before to {self.after if self.after is not None else 'all'} after")
        gate = ", gated" if self.gated else ""
        form = f", keys and values {self.workspace_option}" if self.workspace_option else ""  # as planned
        return f"{self.heads} heads x {self.key_dim}/{self.value_dim}, {self.lq} x {self.lk} positions{band}{gate}{form}"


def _weights(layer):
    """{'query/kernel': array, ...}: the layer's weights by their last two path parts."""
    return {"/".join(w.path.split("/")[-2:]): np.asarray(w.numpy(), np.float64) for w in layer.weights}


def _band(name, lq, lk, mask):
    """(before, after) such that query i sees exactly key positions i - before .. i + after of the
    boolean (lq, lk) ``mask`` (None: no bound on that side); TraceThrough (the layer's call() is
    compiled instead) for a mask of another form."""
    rows = [np.flatnonzero(r) for r in mask]
    for i, js in enumerate(rows):
        if js.size == 0:
            raise TraceThrough(f"{name}: its mask lets query position {i} see no key, which its kernel does not take")
    inner = [(i, js[0]) for i, js in enumerate(rows) if js[0] > 0]
    outer = [(i, js[-1]) for i, js in enumerate(rows) if js[-1] < lk - 1]
    before = inner[0][0] - inner[0][1] if inner else None
    after = outer[0][1] - outer[0][0] if outer else None
    i, j = np.arange(lq)[:, None], np.arange(lk)[None, :]
    band = np.ones((lq, lk), bool)
    if before is not None:
        band &= j >= i - before
    if after is not None:
        band &= j <= i + after
    if not np.array_equal(band, mask):
        raise TraceThrough(f"{name}: its attention mask is not a band of key positions around each query's own "
                           f"(causal, a sliding window, or both), which its kernel takes")
    return before, after


def _mask(name, call, layer, lq, lk, rank):
    """The boolean (lq, lk) mask Keras applies (attention_mask AND causal AND sliding window), None
    for none. A constant attention_mask only: one computed from the input (padding) is refused."""
    import keras

    given = call.get("attention_mask")
    window = getattr(layer, "_sliding_window", None)
    causal = bool(call.get("use_causal_mask"))
    if given is None and window is None and not causal:
        return None
    if rank != 1:
        raise UnsupportedModelError(f"{name} masks attention over a map; only over a sequence is it supported")
    mask = np.ones((lq, lk), bool)
    if given is not None:
        if isinstance(given, Tensor):
            raise UnsupportedModelError(f"{name}: its attention_mask is computed from the model's input (a padding "
                                        f"mask); only a constant mask is supported")
        m = np.asarray(keras.ops.convert_to_numpy(given)).astype(bool)  # Keras casts it to bool
        if m.ndim == 3 and m.shape[0] == 1:  # for a batch of one (built in call() from ops.shape(x)[0])
            m = m[0]
        try:
            mask &= np.broadcast_to(m, (lq, lk))
        except ValueError:
            raise UnsupportedModelError(f"{name}: its attention_mask of shape {m.shape} is not one sample's "
                                        f"({lq}, {lk})") from None
    i, j = np.arange(lq)[:, None], np.arange(lk)[None, :]
    if causal:
        mask &= i >= j
    if window is not None:
        mask &= np.abs(i - j) < int(window)
    return mask


@converter("MultiHeadAttention", constants=True, later_outputs_traced=True)
def convert_multi_head_attention(layer, inputs, ctx):
    name = f"layer '{layer.name}' (MultiHeadAttention)"
    # the call's arguments by name, as Keras' own signature binds them
    call = inspect.signature(type(layer).call).bind(layer, *ctx.call_args, **ctx.call_kwargs).arguments
    for mask in ("query_mask", "value_mask", "key_mask"):
        if call.get(mask) is not None:
            raise UnsupportedModelError(f"{name} is called with {mask}; supported masks: use_causal_mask, "
                                        f"sliding_window and a constant attention_mask")
    if isinstance(call.get("attention_mask"), Tensor):  # (before any op is added)
        raise TraceThrough(f"{name}: its attention_mask is computed from the model's input (a padding mask), which "
                           f"its kernel does not take")
    # (return_attention_scores=True: two outputs, refused before any converter runs)
    value = call["value"]
    key = value if call.get("key") is None else call["key"]
    if not ctx.is_value(key) or not ctx.is_value(value):
        raise UnsupportedModelError(f"{name} attends over constant keys or values (a value that does not depend on "
                                    f"the model's input); not supported")
    key, value = ctx.dense_input(key), ctx.dense_input(value)
    query = call["query"]
    if not ctx.is_value(query):  # learned queries (Perceiver's latents, attention pooling's probe): a constant
        import keras

        from micronets.compiler.ops.rearrange import constant_tensor

        table = one_sample(np.asarray(keras.ops.convert_to_numpy(query), np.float32), len(key.shape))
        query = constant_tensor(ctx, table, f"{layer.name}/query")
    query = ctx.dense_input(query)
    rank = len(query.shape)
    if rank < 2 or len(key.shape) != rank or len(value.shape) != rank or key.shape[:-1] != value.shape[:-1]:
        raise UnsupportedModelError(f"{name} has query {query.shape}, key {key.shape}, value {value.shape}; supported: "
                                    f"sequences or maps of one rank, key and value over the same positions")
    default_axes = tuple(range(1, rank))  # Keras counts the batch axis: every axis but batch and features
    axes = layer.get_config().get("attention_axes")
    if axes is not None and tuple(sorted(a + rank + 1 if a < 0 else a for a in axes)) != default_axes:
        raise UnsupportedModelError(f"{name} attends over axes {tuple(axes)} of a {query.shape} query; only over every "
                                    f"axis but the last (attention_axes=None) is supported")
    w = _weights(layer)
    for proj, x in (("query", query), ("key", key), ("value", value)):
        bias = w.get(f"{proj}/bias")
        if bias is not None and bias.shape[0] > 1 and bias.shape[1] == 1 and x.shape[0] == bias.shape[0]:
            # keras.ops.add (TensorFlow backend) takes a (heads, 1) bias beside a first axis of that
            # length for a channels-first bias_add: Keras adds it per position of that axis, not
            # per head, so the layer's Keras outputs are not what it defines
            raise UnsupportedModelError(
                f"{name}: with {bias.shape[0]} heads of width 1 over a first axis of {x.shape[0]} positions, Keras' "
                f"TensorFlow backend adds the {proj} bias along that axis instead of per head (keras.ops.add treats "
                f"it as a channels-first bias_add), so no header can match both Keras and the layer's definition; "
                f"use a key_dim / value_dim above 1, another number of heads, or use_bias=False")
    wq, wk, wv, wo = w["query/kernel"], w["key/kernel"], w["value/kernel"], w["attention_output/kernel"]
    if wo.ndim != 3:
        raise UnsupportedModelError(f"{name} projects its output to {tuple(wo.shape[2:])}; only to one last axis "
                                    f"(output_shape=None or an int) is supported")
    out = ctx.new_tensor(layer.name, query.shape[:-1] + (int(wo.shape[2]),))
    if tuple(out.shape) != tuple(ctx.output_shape):
        raise UnsupportedModelError(f"{name}: output {out.shape} where Keras gives {ctx.output_shape}")
    lq, lk = (int(np.prod(t.shape[:-1])) for t in (query, key))
    mask = _mask(name, call, layer, lq, lk, rank - 1)
    band = (None, None) if mask is None else _band(name, lq, lk, mask)
    gate = (w["gate/kernel"], w.get("gate/bias")) if getattr(layer, "_use_gate", False) else (None, None)
    op = MultiHeadAttention(layer.name, query, key, value, out, wq, w.get("query/bias"), wk, wv, w.get("value/bias"),
                            wo, w.get("attention_output/bias"), band, *gate)
    return ctx.add(op).output
