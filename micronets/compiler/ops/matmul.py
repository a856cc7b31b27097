"""A product of two activations, per sample: Keras' Dot layer (vectors or matrices, contracting any
axis of each, optionally of L2-normalised inputs: cosine similarity), keras.ops.matmul (of
matrices, or of stacks of them: per head, as CaiT and Swin write attention) and keras.ops.einsum
of two model values (the operands' axes rearranged into a stack of such products, and the result
into the equation's order). out[i][j] = sum_k A(i, k) B(k, j), A an M x K matrix stored as is or
transposed (its contracted axis first), B K x N likewise; a vector is a matrix of one row (A) or
one column (B); ``batch`` such products one after another. Float headers. MACs: batch M N K.
"""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter, one_sample


class MatMul(Op):
    template = "kernels/matmul.h.j2"

    def __init__(self, name, a, b, out, m: int, k: int, n: int, a_t: bool, b_t: bool, normalize: bool = False,
                 kind: str = "MatMul", batch: int = 1):
        super().__init__(name, [a, b], out)
        if a.size != batch * m * k or b.size != batch * k * n or out.size != batch * m * n:
            raise ValueError(f"matmul '{name}': {a.shape} x {b.shape} -> {out.shape} is not {batch} x {m}x{k} x {k}x{n}")
        self.m, self.k, self.n, self.batch = int(m), int(k), int(n), int(batch)
        #: A is stored [K][M] (B: [N][K]): its contracted axis first (last)
        self.a_t, self.b_t = bool(a_t), bool(b_t)
        self.normalize = bool(normalize)
        self.kind = kind

    def describe(self):
        text = f"{self.m}x{self.k}{' (stored KxM)' if self.a_t else ''} x {self.k}x{self.n}{' (stored NxK)' if self.b_t else ''}"
        if self.batch > 1:
            text = f"{self.batch} x ({text})"
        return text + (", L2-normalised (cosine)" if self.normalize else "")

    def macs(self):
        return self.batch * self.m * self.n * self.k


def _as_matrix(shape, axis, first: bool):
    """(rows, contracted, transposed) of a per-sample vector or matrix contracted on ``axis`` (0 or
    1), as the left (``first``) or right operand."""
    if len(shape) == 1:
        return 1, shape[0], False
    other = shape[1 - axis]
    # left: A(i, k) stored [i][k] unless the contracted axis comes first; right: B(k, j) stored
    # [k][j] unless the contracted axis comes last
    return other, shape[axis], (axis == 0) if first else (axis == 1)


@converter("Dot")
def convert_dot(layer, inputs, ctx):
    if len(inputs) != 2:
        raise UnsupportedModelError(f"layer '{layer.name}' (Dot) takes two inputs; got {len(inputs)}")
    a, b = (ctx.dense_input(t) for t in inputs)
    ranks = (len(a.shape) + 1, len(b.shape) + 1)  # Keras' axes count the batch axis
    axes = layer.axes if isinstance(layer.axes, (list, tuple)) else (layer.axes, layer.axes)
    axes = [int(ax) % r for ax, r in zip(axes, ranks)]
    if any(r > 3 for r in ranks):
        raise UnsupportedModelError(f"layer '{layer.name}' (Dot) of {a.shape} and {b.shape}: only vectors and matrices "
                                    f"(per sample) are supported")
    if 0 in axes:
        raise UnsupportedModelError(f"layer '{layer.name}' (Dot) contracts the batch axis")
    m, k, a_t = _as_matrix(a.shape, axes[0] - 1, True)
    n, k2, b_t = _as_matrix(b.shape, axes[1] - 1, False)
    if k != k2:
        raise UnsupportedModelError(f"layer '{layer.name}' (Dot) contracts {k} with {k2} values")
    shape = tuple(ctx.output_shape) or (1,)
    out = ctx.new_tensor(layer.name, shape)
    return ctx.add(MatMul(layer.name, a, b, out, m, k, n, a_t, b_t, bool(layer.normalize), kind="Dot")).output


@converter("op:Matmul", parts=True)
def convert_matmul(layer, inputs, ctx):
    what = f"operation '{layer.name}' (keras.ops matmul)"
    if len(inputs) == 1:  # by a constant (a weight, or a function of one: keras.io's decision forest's softmax(pi))
        from micronets.compiler.ops.dense import dense

        x, w = ctx.call_args[:2]
        if not ctx.is_value(x):
            raise UnsupportedModelError(f"{what} multiplies a constant by a model value (W @ x); only x @ W is "
                                        f"supported (a Dense layer without bias)")
        x, w = ctx.dense_input(x), one_sample(np.asarray(w, np.float32), 2)
        if w.ndim != 2 or w.shape[0] != x.shape[-1]:
            raise UnsupportedModelError(f"{what} of {x.shape} and a constant of {w.shape}: only a constant (K, N) "
                                        f"after K values on the last axis is supported")
        return dense(ctx, layer.name, x, w, None).output
    if len(inputs) != 2:
        raise UnsupportedModelError(f"{what} of {len(inputs)} model values")
    a, b = (ctx.dense_input(t) for t in inputs)
    stack = a.shape[:-2]  # (a stack of matrices per sample: one per head)
    if len(a.shape) < 2 or len(b.shape) < 2 or a.shape[-1] != b.shape[-2]:
        raise UnsupportedModelError(f"{what} of {a.shape} and {b.shape}: only (..., M, K) x (..., K, N) per sample "
                                    f"is supported")
    (m, k), n = a.shape[-2:], b.shape[-1]
    if b.shape[:-2] == stack:
        out = ctx.new_tensor(layer.name, stack + (m, n))
        return ctx.add(MatMul(layer.name, a, b, out, m, k, n, False, False, batch=int(np.prod(stack)))).output
    if all(d == 1 for d in b.shape[:-2]):  # one B for every matrix of A's stack (multi-query attention's
        # shared keys and values): A's rows one after another, a single product
        shape = tuple(np.broadcast_shapes(stack, b.shape[:-2])) + (m, n)
        out = ctx.new_tensor(layer.name, shape)
        return ctx.add(MatMul(layer.name, a, b, out, int(np.prod(stack, dtype=np.int64)) * m, k, n, False,
                              False)).output
    raise UnsupportedModelError(f"{what} of {a.shape} and {b.shape}: only the same stack (...) of matrices on both "
                                f"sides, or one right-hand matrix for all of the left's, is supported")


@converter("op:Einsum", constants=True, parts=True)
def convert_einsum(layer, inputs, ctx):
    """keras.ops.einsum of two operands, a model value and a model value or a constant (keras-hub
    ViTDet's relative position tables), each index of the equation a batch (in both operands and
    the result: e.g. heads), free (in one operand and the result) or contracted (in both operands,
    not the result) index. A model value's first index is the sample's batch axis, which the
    result's first index must be too; a constant has none. The operands are permuted into stacks
    of (free x contracted) and (contracted x free) matrices, multiplied, and the products permuted
    into the result's order. A copy is left out where an operand is already in that order; a
    constant is stored so ordered (and copied into the arena, as a MatMul reads tensors)."""
    what = f"operation '{layer.name}' (keras.ops einsum '{layer.subscripts}')"
    equation = str(layer.subscripts).replace(" ", "")
    if "..." in equation or "->" not in equation:
        raise UnsupportedModelError(f"{what}: only equations written out in full (with '->', no '...') are supported")
    operands, result = equation.split("->")
    operands = operands.split(",")
    args = list(ctx.call_args[:2])
    if len(operands) != 2 or len(args) != 2 or not any(ctx.is_value(v) for v in args):
        raise UnsupportedModelError(f"{what}: only the product of two operands, one of them a model value at least, is "
                                    f"supported")
    if any(len(set(s)) != len(s) for s in operands + [result]):
        raise UnsupportedModelError(f"{what}: an index repeated within one operand (a diagonal) is not supported")
    lead = ctx.lead  # (0 in parts mode: the batch axis holds parts of the sample, an index like the others)
    if lead and not all(s[:1] == result[:1] if ctx.is_value(v) else result[:1] not in s for s, v in zip(operands, args)):
        raise UnsupportedModelError(f"{what}: the batch axis must be the first index of each model value and of the "
                                    f"result, and no index of a constant")
    subs = [s[lead:] if ctx.is_value(v) else s for s, v in zip(operands, args)]
    a, b = (ctx.dense_input(v) if ctx.is_value(v) else np.asarray(v, np.float32) for v in args)
    return einsum(ctx, subs[0], subs[1], result[lead:], a, b, layer.name, what)


def einsum(ctx, sa: str, sb: str, so: str, a, b, name: str, what: str):
    """The einsum 'sa,sb->so' of one sample's tensors (or a constant array) ``a`` and ``b``
    (``what``: the call, for a refusal): permuted into stacks of matrices, one MatMul, the
    products permuted into ``so``."""
    from micronets.compiler.ops.rearrange import constant_tensor, permute

    def arranged(x, subs, order, suffix):
        perm = [subs.index(c) for c in order]
        if isinstance(x, np.ndarray):
            return constant_tensor(ctx, np.transpose(x, perm), f"{name}_{suffix}")
        return permute(ctx, x, perm, f"{name}_{suffix}")

    sizes = {}
    for subs, x in ((sa, a), (sb, b)):
        if len(subs) != len(x.shape):
            raise UnsupportedModelError(f"{what}: '{subs}' indexes {len(subs)} axes of a {x.shape} sample")
        for letter, size in zip(subs, x.shape):
            if sizes.setdefault(letter, size) != size:
                raise UnsupportedModelError(f"{what}: index '{letter}' spans {sizes[letter]} and {size} (broadcasting "
                                            f"is not supported)")
    alone = [c for c in sa + sb if c not in so and (c in sa) != (c in sb)]
    if alone or any(c not in sizes for c in so):
        raise UnsupportedModelError(f"{what}: every index must be in both operands or in the result "
                                    f"(a sum over an axis of one operand is not supported)")
    stack = [c for c in so if c in sa and c in sb]
    free_a, free_b = [c for c in so if c in sa and c not in sb], [c for c in so if c in sb and c not in sa]
    summed = [c for c in sa if c in sb and c not in so]
    count = lambda letters: int(np.prod([sizes[c] for c in letters]))
    left = arranged(a, sa, stack + free_a + summed, "lhs")
    right = arranged(b, sb, stack + summed + free_b, "rhs")
    order = stack + free_a + free_b
    products = ctx.new_tensor(name if order == list(so) else f"{name}_products", tuple(sizes[c] for c in order) or (1,))
    ctx.add(MatMul(products.name, left, right, products, count(free_a), count(summed), count(free_b), False, False,
                   kind="Einsum", batch=count(stack)))
    # (the result's shape from the sizes: Keras declares None for some of an einsum's axes)
    return permute(ctx, products, [order.index(c) for c in so], name) if order != list(so) else products


@converter("op:DotProductAttention")
def convert_dot_product_attention(layer, inputs, ctx):
    """keras.ops.dot_product_attention (what MultiHeadAttention's call() runs without dropout), as
    Keras' TensorFlow backend computes it: per head, logits = q k^T x scale (default 1/sqrt(H));
    where the mask (or the causal band) is false, -0.7 x 3.38953e38 (a where(), as Keras'); softmax
    over the keys (a row all masked: uniform, as Keras); the weighted sum of the values. Query (T,
    N, H), key and value (S, N, H) per sample; the mask broadcast to (N, T, S). No additive bias."""
    import inspect

    import keras

    from micronets.compiler.ops.elementwise import binary, select
    from micronets.compiler.ops.softmax import row_activation

    what = f"operation '{layer.name}' (keras.ops dot_product_attention)"
    # (the operation holds is_causal and the logits' soft cap; its call() the tensors and the scale)
    call = inspect.signature(type(layer).call).bind(layer, *ctx.call_args, **ctx.call_kwargs).arguments
    if call.get("bias") is not None or getattr(layer, "attn_logits_soft_cap", None) is not None:
        raise UnsupportedModelError(f"{what} with an additive bias or a soft cap of the logits is not supported")
    q, k, v = (call[n] for n in ("query", "key", "value"))
    if not all(ctx.is_value(t) for t in (q, k, v)) or any(len(t.shape) != 3 for t in (q, k, v)):
        raise UnsupportedModelError(f"{what}: only query, key and value of (positions, heads, dim) computed from the "
                                    f"input are supported")
    q, k, v = (ctx.dense_input(t) for t in (q, k, v))
    scale = call.get("scale")
    scale = float(np.float32(1.0) / np.sqrt(np.float32(q.shape[-1]))) if scale is None else float(scale)
    logits = binary(ctx, einsum(ctx, "tnh", "snh", "nts", q, k, f"{layer.name}_logits", what), scale, "multiply",
                    f"{layer.name}_scaled")
    n, t, s = logits.shape
    keep = None
    mask = call.get("mask")
    if mask is not None:
        keep = binary(ctx, mask, 0.0, "not_equal", f"{layer.name}_keep") if ctx.is_value(mask) else \
            (one_sample(np.asarray(keras.ops.convert_to_numpy(mask)), 3) != 0).astype(np.float32)
    if getattr(layer, "is_causal", False):
        band = np.tril(np.ones((t, s), np.float32))
        if keep is None or not ctx.is_value(keep):
            keep = band if keep is None else keep * band
        else:
            keep = binary(ctx, keep, band, "multiply", f"{layer.name}_causal")
    if keep is not None:
        logits = select(ctx, keep, logits, float(np.float32(3.38953e38) * np.float32(-0.7)), f"{layer.name}_masked")
    probs = row_activation(ctx, logits, "softmax", f"{layer.name}_probs", axis=-1)
    return einsum(ctx, "nts", "snh", "tnh", probs, v, layer.name, what)
