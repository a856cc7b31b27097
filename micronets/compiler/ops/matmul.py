"""A product of two activations, per sample: Keras' Dot layer (vectors or matrices, contracting any
axis of each, optionally of L2-normalised inputs: cosine similarity) and keras.ops.matmul of two
matrices. out[i][j] = sum_k A(i, k) B(k, j), A an M x K matrix stored as is or transposed (its
contracted axis first), B K x N likewise; a vector is a matrix of one row (A) or one column (B).
Float headers. MACs: M N K.
"""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter, one_sample


class MatMul(Op):
    template = "kernels/matmul.h.j2"

    def __init__(self, name, a, b, out, m: int, k: int, n: int, a_t: bool, b_t: bool, normalize: bool = False,
                 kind: str = "MatMul"):
        super().__init__(name, [a, b], out)
        if a.size != m * k or b.size != k * n or out.size != m * n:
            raise ValueError(f"matmul '{name}': {a.shape} x {b.shape} -> {out.shape} is not {m}x{k} x {k}x{n}")
        self.m, self.k, self.n = int(m), int(k), int(n)
        #: A is stored [K][M] (B: [N][K]): its contracted axis first (last)
        self.a_t, self.b_t = bool(a_t), bool(b_t)
        self.normalize = bool(normalize)
        self.kind = kind

    def describe(self):
        text = f"{self.m}x{self.k}{' (stored KxM)' if self.a_t else ''} x {self.k}x{self.n}{' (stored NxK)' if self.b_t else ''}"
        return text + (", L2-normalised (cosine)" if self.normalize else "")

    def macs(self):
        return self.m * self.n * self.k


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


@converter("op:Matmul")
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
    if len(a.shape) != 2 or len(b.shape) != 2 or a.shape[1] != b.shape[0]:
        raise UnsupportedModelError(f"{what} of {a.shape} and {b.shape}: only (M, K) x (K, N) matrices per sample "
                                    f"are supported")
    (m, k), n = a.shape, b.shape[1]
    out = ctx.new_tensor(layer.name, (m, n))
    return ctx.add(MatMul(layer.name, a, b, out, m, k, n, False, False)).output
