"""Affine maps ``x * scale + shift`` with constants that repeat along the last axes: an unfolded
BatchNormalization, Rescaling and Normalization (preprocessing inside the model). Elementwise and
in place.

- BatchNormalization folds into the conv/dense that produced its input when it normalises that
  op's output channels (the last axis of the op's own output) and is its only reader.
- A per-channel map feeding a conv/dense as its only reader folds forward into that op's weights
  when that is exact: a pure scale always, a shift only where the op reads no padding.
- Otherwise it is this op; a BatchNormalization over another axis (or after a Flatten) gets
  constants of the full period it needs, never per-channel ones.
"""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter, rewrite, tile_period


class ScaleShift(Op):
    kind = "ScaleShift"
    template = "kernels/scale_shift.h.j2"
    fuses_activation = True

    def __init__(self, name, x, out, scale, shift, what="per-channel"):
        super().__init__(name, [x], out)
        self.scale = np.asarray(scale, np.float64).reshape(-1)
        self.shift = np.asarray(shift, np.float64).reshape(-1)
        self.what = what
        if self.scale.size != self.shift.size or out.size % self.scale.size:
            raise ValueError(f"{name}: {self.scale.size} constants do not tile {out.shape}")

    @property
    def period(self) -> int:
        return int(self.scale.size)

    def folded(self, scale, shift):
        """This op followed by a per-channel ``y * scale + shift`` (its period is a whole number
        of channel blocks, so the channel constants tile it)."""
        reps = self.period // np.size(scale)
        scale, shift = np.tile(scale, reps), np.tile(shift, reps)
        return self.evolve(scale=self.scale * scale, shift=self.shift * scale + shift)

    def weights(self):
        return collections.OrderedDict(s=self.scale, t=self.shift)

    def describe(self):
        return self.what

    def inplace_gap(self, input_index):
        return 0


def affine(ctx, x, scale, shift, name, what):
    """``x * scale + shift`` with scale/shift broadcastable to x's shape: one ScaleShift whose
    constants have the shortest period that tiles them over x (per channel when they are)."""
    x = ctx.dense_input(x)
    shape = x.shape
    full_s = np.broadcast_to(np.asarray(scale, np.float64), shape).reshape(-1)
    full_t = np.broadcast_to(np.asarray(shift, np.float64), shape).reshape(-1)
    period = tile_period(shape, full_s, full_t)
    out = ctx.new_tensor(name, shape)
    return ctx.add(ScaleShift(name, x, out, full_s[:period], full_t[:period], what)).output


def _axes(layer, rank):
    axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    axes = sorted(a + rank + 1 if a < 0 else a for a in axis)  # Keras axes count the batch axis
    if any(a < 1 or a > rank for a in axes):
        raise UnsupportedModelError(f"layer '{layer.name}' ({type(layer).__name__}) normalises axis {layer.axis}, "
                                    f"which includes the batch axis or does not exist")
    return axes


def _broadcast_params(values, axes, shape):
    """Reshape per-axis parameters (shaped like the normalised axes) to broadcast over shape."""
    target = [1] * len(shape)
    for a in axes:
        target[a - 1] = shape[a - 1]
    return np.asarray(values, np.float64).reshape(target)


@converter("BatchNormalization")
def convert_batchnorm(layer, inputs, ctx):
    x = ctx.dense_input(inputs[0])
    shape = x.shape
    axes = _axes(layer, len(shape))
    weights = {w.path.split("/")[-1]: np.asarray(w.numpy(), np.float64) for w in layer.weights}
    mean, var = weights["moving_mean"], weights["moving_variance"]
    gamma = weights.get("gamma", np.ones_like(mean))
    beta = weights.get("beta", np.zeros_like(mean))
    scale = gamma / np.sqrt(var + float(layer.epsilon))
    shift = beta - mean * scale
    if axes == [len(shape)]:
        return _per_channel(ctx, x, scale, shift, layer.name, "BatchNorm per-channel")
    return affine(ctx, x, _broadcast_params(scale, axes, shape), _broadcast_params(shift, axes, shape),
                  layer.name, f"BatchNorm over axes {axes}")


def _per_channel(ctx, x, scale, shift, name, what):
    """``x * scale + shift`` per channel (last axis): folded into the conv or dense that produced
    ``x`` when it is that op's only reader and has no activation, else a ScaleShift."""
    op = ctx.producer(x)
    if ctx.can_fuse(x) and hasattr(op, "folded") and op.act.is_linear and op.output.shape[-1] == np.size(scale):
        ctx.replace(op, op.folded(scale, shift))
        return x
    return affine(ctx, x, scale, shift, name, what)


@converter("LayerScale")
def convert_layer_scale(layer, inputs, ctx):
    """keras.applications ConvNeXt's LayerScale: ``x * gamma``, gamma per channel."""
    x = ctx.dense_input(inputs[0])
    gamma = [np.asarray(w.numpy(), np.float64) for w in layer.weights]
    if not type(layer).__module__.startswith("keras.") or len(gamma) != 1 or gamma[0].shape != (x.shape[-1],):
        raise UnsupportedModelError(f"layer '{layer.name}' (LayerScale) is not keras.applications ConvNeXt's "
                                    f"per-channel LayerScale; not supported")
    return _per_channel(ctx, x, gamma[0], np.zeros_like(gamma[0]), layer.name, "LayerScale")


@converter("CustomScaleLayer")
def convert_custom_scale(layer, inputs, ctx):
    """keras.applications InceptionResNetV2's CustomScaleLayer: ``inputs[0] + inputs[1] * scale``,
    the residual branch scaled (folded into the conv producing it where it can be) and added."""
    from micronets.compiler.ops.elementwise import binary

    scale = getattr(layer, "scale", None)
    if not type(layer).__module__.startswith("keras.") or len(inputs) != 2 or isinstance(scale, bool) \
            or not isinstance(scale, (int, float)):
        raise UnsupportedModelError(f"layer '{layer.name}' (CustomScaleLayer) is not keras.applications "
                                    f"InceptionResNetV2's scaled residual sum of two inputs; not supported")
    x, y = (ctx.dense_input(t) for t in inputs)
    c = y.shape[-1]
    scaled = _per_channel(ctx, y, np.full(c, float(scale)), np.zeros(c), f"{layer.name}_scale", "CustomScaleLayer")
    return binary(ctx, x, scaled, "add", layer.name)


@converter("Rescaling")
def convert_rescaling(layer, inputs, ctx):
    x = ctx.dense_input(inputs[0])
    scale = np.asarray(layer.scale, np.float64)
    offset = np.asarray(layer.offset, np.float64)
    return affine(ctx, x, scale, offset, layer.name, "Rescaling")


@converter("Normalization")
def convert_normalization(layer, inputs, ctx):
    if getattr(layer, "invert", False):
        raise UnsupportedModelError(f"layer '{layer.name}' (Normalization) uses invert=True; not supported")
    x = ctx.dense_input(inputs[0])
    mean = np.asarray(layer.mean, np.float64)
    var = np.asarray(layer.variance, np.float64)
    import keras

    std = np.maximum(np.sqrt(var), keras.backend.epsilon())
    if mean.ndim == len(x.shape) + 1:  # Keras keeps a leading batch axis of 1
        mean, std = mean[0], std[0]
    return affine(ctx, x, 1.0 / std, -mean / std, layer.name, "Normalization")


@rewrite(stage=0)
def fold_affine_forward(ops, kept):
    """Fold a per-channel, activation-free ScaleShift into the conv/dense that is its only reader
    when that is exact (see the module docstring)."""
    from micronets.compiler.ops.conv2d import Conv2D
    from micronets.compiler.ops.dense import Dense
    from micronets.compiler.ops.depthwise import DepthwiseConv2D

    readers = collections.Counter(t.storage for op in ops for t in op.inputs)
    drop, replace = set(), {}
    for i, op in enumerate(ops):
        if not isinstance(op, ScaleShift) or not op.act.is_linear or op.output in kept or readers[op.output] != 1:
            continue
        nxt = next((o for o in ops[i + 1:] if any(t.storage is op.output for t in o.inputs)), None)
        if nxt is None or nxt.inputs[0] is not op.output or nxt in replace:
            continue
        c = op.output.hwc[2]
        if op.period != c:
            continue
        s, t = op.scale, op.shift
        if isinstance(nxt, (Conv2D, DepthwiseConv2D)):
            padded = any(nxt.pads)
            if padded and np.any(t != 0):
                continue
            if isinstance(nxt, Conv2D):
                if nxt.groups != 1:
                    continue
                kernel = nxt.kernel * s[None, None, :, None]
                extra = np.einsum("hwio,i->o", nxt.kernel, t)
            else:
                kernel = nxt.kernel * s[None, None, :]
                extra = np.einsum("hwc,c->c", nxt.kernel, t)
        elif isinstance(nxt, Dense):
            kernel = nxt.kernel * s[:, None]
            extra = t @ nxt.kernel
        else:
            continue
        bias = (nxt.bias if nxt.bias is not None else 0.0) + extra
        replace[nxt] = nxt.evolve(kernel=kernel, bias=np.asarray(bias, np.float64), inputs=list(op.inputs))
        drop.add(op)
    return [replace.get(op, op) for op in ops if op not in drop]
