"""Data movement: Permute (and with Reshape views, ShuffleNet's channel shuffle), image patches
(keras.ops.image.extract_patches), keras.ops.split and stack, Cropping1D/2D
(and the crops of CenterCrop and Resizing),
UpSampling1D/2D (nearest; bilinear is ops/resize.py's), RepeatVector, keras.ops.tile and repeat, Concatenate, slicing (``x[..., :c]``), materialised zero padding and
plain copies. All of them are the same kernel: copy elements from an input to the output along a
strided walk of at most six axes (a zero stride repeats an element: nearest upsampling); an op
is a list of such moves, optionally over a zeroed output (padding). No MACs.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
from typing import List, Optional, Sequence, Tuple

import numpy as np

from micronets.compiler.graph import Tensor
from micronets.compiler.ops.base import Op, UnsupportedModelError, converter, one_sample, rewrite

MAX_AXES = 6


def row_major(shape: Sequence[int]) -> Tuple[int, ...]:
    strides, step = [], 1
    for d in reversed(tuple(shape)):
        strides.append(step)
        step *= int(d)
    return tuple(strides[::-1])


@dataclasses.dataclass(frozen=True)
class Move:
    """Copy ``in[src_offset + sum(i_k * src_strides[k])]`` to ``out[dst_offset + sum(i_k * dst_strides[k])]``
    for every index i < dims, from input number ``source`` (constant number ``-1 - source`` when
    negative: an array of the op's weights, such as a learned class token concatenated in)."""

    source: int
    src_offset: int
    dst_offset: int
    dims: Tuple[int, ...]
    src_strides: Tuple[int, ...]
    dst_strides: Tuple[int, ...]

    def collapsed(self) -> "Move":
        """Unit axes dropped, axes contiguous in both walks merged, padded to MAX_AXES."""
        axes = [(d, s, t) for d, s, t in zip(self.dims, self.src_strides, self.dst_strides) if d > 1] or [(1, 0, 0)]
        merged = [list(axes[0])]
        for d, s, t in axes[1:]:
            pd, ps, pt = merged[-1]
            if ps == s * d and pt == t * d:
                merged[-1] = [pd * d, s, t]
            else:
                merged.append([d, s, t])
        if len(merged) > MAX_AXES:
            raise UnsupportedModelError(f"a data movement over {len(merged)} axes; at most {MAX_AXES} are supported")
        merged = [[1, 0, 0]] * (MAX_AXES - len(merged)) + merged
        return Move(self.source, self.src_offset, self.dst_offset, tuple(m[0] for m in merged),
                    tuple(m[1] for m in merged), tuple(m[2] for m in merged))


class Rearrange(Op):
    template = "kernels/rearrange.h.j2"

    def __init__(self, name, inputs, out, moves: List[Move], kind: str, detail: str = "", zero: bool = False,
                 channel_offsets: Optional[Sequence[int]] = None, constants: Sequence[np.ndarray] = ()):
        super().__init__(name, inputs, out)
        self.moves = [m.collapsed() for m in moves]
        #: arrays moves with a negative source read (flash), in Move.source order -1, -2, ...
        self.constants = tuple(np.asarray(c, np.float32).reshape(-1) for c in constants)
        self.kind = kind
        self.detail = detail
        self.zero = bool(zero)
        #: a concatenation on the last axis: where each input's channels start in the output
        self.channel_offsets = None if channel_offsets is None else tuple(channel_offsets)

    def describe(self):
        return self.detail

    def weights(self):
        return collections.OrderedDict((f"c{k}", c) for k, c in enumerate(self.constants))

    def source_ptr(self, move, p) -> str:
        return p.ptr(self.inputs[move.source]) if move.source >= 0 else self.wname(f"c{-1 - move.source}")


def _add(ctx, name, inputs, shape, moves, kind, detail="", zero=False, channel_offsets=None, constants=()):
    out = ctx.new_tensor(name, shape)
    return ctx.add(Rearrange(name, list(inputs), out, moves, kind, detail, zero, channel_offsets, constants)).output


def materialise_padding(ctx, padded):
    """A ZeroPadding result as a real tensor: zeros, then the source copied into the middle."""
    src = padded.src
    h, w, c = src.hwc
    top, _, left, _ = padded.pads
    hp, wp, _ = padded.hwc
    move = Move(0, 0, (top * wp + left) * c, (h, w, c), row_major((h, w, c)), (wp * c, c, 1))
    return _add(ctx, padded.name, [src], padded.shape, [move], "ZeroPadding", "pad " + ",".join(map(str, padded.pads)), zero=True)


def constant_tensor(ctx, value, name):
    """A constant (a learned table, Perceiver's latent array) as a tensor of its own: copied from
    flash into the arena, for an op that reads only tensors."""
    value = np.asarray(value, np.float32)
    shape = tuple(int(d) for d in value.shape) or (1,)
    return _add(ctx, name, [], shape, [Move(-1, 0, 0, (value.size,), (1,), (1,))], "Constant", constants=(value,))


def copy_tensor(ctx, x, name):
    return _add(ctx, name, [x], x.shape, [Move(0, 0, 0, (x.size,), (1,), (1,))], "Copy")


#: why a rearrangement may not move the batch axis (Swin's attention moves its q, k, v axis in front)
BATCH_MOVE = ("; a compiled model runs one sample at a time, so an operation may rearrange a sample's axes only "
              "(index the stacked axis instead, e.g. qkv[:, :, 0])")


@converter("Permute", "op:Transpose", "op:Swapaxes", "op:Moveaxis", parts=True)
def convert_permute(layer, inputs, ctx):
    """Keras' permutations of a sample's axes; in parts mode (``ctx.lead`` 0: tensors of Keras'
    whole shape, Swin's q/k/v moved in front of its windows) of every axis."""
    x = ctx.dense_input(inputs[0])
    lead = ctx.lead
    if type(layer).__name__ == "Permute":  # (its dims never name the batch axis)
        perm = list(range(1 - lead)) + [int(d) - lead for d in layer.dims]
    elif type(layer).__name__ == "Moveaxis":  # numpy's moveaxis: sources to destinations, the rest in order
        rank = len(x.shape) + lead
        src, dst = ([int(a) % rank for a in (v if isinstance(v, (list, tuple)) else [v])]
                    for v in (layer.source, layer.destination))
        order = [a for a in range(rank) if a not in src]
        for d, a in sorted(zip(dst, src)):
            order.insert(d, a)
        if lead and order[0] != 0:
            raise UnsupportedModelError(f"operation '{layer.name}' (keras.ops moveaxis) moves the batch axis{BATCH_MOVE}")
        perm = [a - lead for a in order[lead:]]
    else:
        axes = getattr(layer, "axes", None)
        if type(layer).__name__ == "Swapaxes":  # a transpose of two axes
            axes = list(range(len(x.shape) + lead))
            i, j = (int(a) % len(axes) for a in (layer.axis1, layer.axis2))
            axes[i], axes[j] = axes[j], axes[i]
        if axes is None:
            raise UnsupportedModelError(f"operation '{layer.name}' transposes without axes; the batch axis would move")
        axes = [int(a) % (len(x.shape) + lead) for a in axes]
        if lead and axes[0] != 0:
            raise UnsupportedModelError(f"operation '{layer.name}' moves the batch axis (axes {tuple(axes)}){BATCH_MOVE}")
        perm = [a - lead for a in axes[lead:]]
    if sorted(perm) != list(range(len(x.shape))):
        raise UnsupportedModelError(f"layer '{layer.name}' permutes {x.shape} with {perm}")
    return permute(ctx, x, perm, layer.name)


def permute(ctx, x, perm, name):
    """``x`` with its axes in the order ``perm`` (sample axes, 0-based): a copy, or x itself for
    the identity."""
    perm = tuple(int(p) for p in perm)
    if perm == tuple(sorted(perm)):
        return x
    shape = tuple(x.shape[p] for p in perm)
    src = row_major(x.shape)
    move = Move(0, 0, 0, shape, tuple(src[p] for p in perm), row_major(shape))
    return _add(ctx, name, [x], shape, [move], "Permute", "axes " + ",".join(str(p + 1) for p in perm))


@converter("op:Roll", parts=True)
def convert_roll(layer, inputs, ctx):
    """``keras.ops.roll(x, shift, axis)`` along sample axes (Swin's shifted windows roll the map's
    rows and columns): element i of an axis of n moves to (i + shift) mod n; each axis splits in
    two blocks, so one copy of 2^axes blocks. Without an axis, numpy rolls the flattened batch,
    which mixes samples: refused."""
    x = ctx.dense_input(inputs[0])
    rank = len(x.shape)
    if layer.axis is None:
        raise UnsupportedModelError(f"operation '{layer.name}' (keras.ops roll) rolls without an axis: numpy then rolls "
                                    f"the whole batch flattened, moving values between samples; give the axes")
    axes = list(layer.axis) if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    shifts = list(layer.shift) if isinstance(layer.shift, (list, tuple)) else [layer.shift] * len(axes)
    if len(shifts) != len(axes):
        raise UnsupportedModelError(f"operation '{layer.name}' rolls {len(axes)} axes by {len(shifts)} shifts")
    total = [0] * rank
    for axis, shift in zip(axes, shifts):
        a = ctx.axis(int(axis), rank)
        if a is None:
            raise UnsupportedModelError(f"operation '{layer.name}' rolls axis {axis}{BATCH_MOVE}")
        total[a] += int(shift)  # (numpy adds the shifts of an axis named twice)
    src = row_major(x.shape)
    # per axis, the blocks (source start, destination start, length) its roll makes
    blocks = []
    for n, shift in zip(x.shape, total):
        k = shift % n
        blocks.append([(0, 0, n)] if k == 0 else [(0, k, n - k), (n - k, 0, k)])
    moves = []
    for combo in itertools.product(*blocks):
        dims = tuple(length for _, _, length in combo)
        moves.append(Move(0, sum(s * st for (s, _, _), st in zip(combo, src)),
                          sum(d * st for (_, d, _), st in zip(combo, src)), dims, src, src))
    if len(moves) == 1:  # every shift a whole turn: the input itself
        return x
    return _add(ctx, layer.name, [x], x.shape, moves, "Roll", "shift " + ",".join(map(str, total)))


@converter("op:DepthToSpace", "op:SpaceToDepth")
def convert_depth_space(layer, inputs, ctx):
    """``keras.ops.depth_to_space`` (EDSR's and ESPCN's pixel shuffle) and ``space_to_depth``, as
    TensorFlow orders them: output pixel (h b + i, w b + j) channel c is input pixel (h, w) channel
    (i b + j) C + c; either data format. One copy."""
    x = ctx.dense_input(inputs[0])
    b = int(layer.block_size)
    last = getattr(layer, "data_format", "channels_last") == "channels_last"
    to_space = type(layer).__name__ == "DepthToSpace"
    if len(x.shape) != 3 or b < 2:
        raise UnsupportedModelError(f"operation '{layer.name}' rearranges a {x.shape} sample in blocks of {b}; "
                                    f"a map (H, W, C) and blocks of 2 or more are supported")
    # the deep side (h, w, i, j, c) and the spatial side (h, i, w, j, c), channels last or first
    if to_space:
        h, w, deep_c = x.shape if last else (x.shape[1], x.shape[2], x.shape[0])
    else:
        h, w, deep_c = (x.shape[0] // b, x.shape[1] // b, x.shape[2] * b * b) if last else \
            (x.shape[1] // b, x.shape[2] // b, x.shape[0] * b * b)
        if (x.shape[:2] if last else x.shape[1:]) != (h * b, w * b):
            raise UnsupportedModelError(f"operation '{layer.name}': a {x.shape} sample is not made of {b}x{b} blocks")
    if deep_c % (b * b):
        raise UnsupportedModelError(f"operation '{layer.name}': {deep_c} channels are not {b}x{b} blocks")
    c = deep_c // (b * b)
    dims = (h, w, b, b, c)
    if last:
        deep_shape, deep = (h, w, deep_c), (w * deep_c, deep_c, b * c, c, 1)
        space_shape, space = (h * b, w * b, c), (b * w * b * c, b * c, w * b * c, c, 1)
    else:
        deep_shape, deep = (deep_c, h, w), (w, 1, b * c * h * w, c * h * w, h * w)
        space_shape, space = (c, h * b, w * b), (b * w * b, b, w * b, 1, h * b * w * b)
    src, dst, shape = (deep, space, space_shape) if to_space else (space, deep, deep_shape)
    if tuple(ctx.output_shape) != shape:
        raise UnsupportedModelError(f"operation '{layer.name}' gives {shape}, Keras says {tuple(ctx.output_shape)}")
    return _add(ctx, layer.name, [x], shape, [Move(0, 0, 0, dims, src, dst)], type(layer).__name__, f"block {b}")


@converter("op:ExtractPatches")
def convert_extract_patches(layer, inputs, ctx):
    """``keras.ops.image.extract_patches`` (ViT's patch layer): output pixel (i, j) holds the
    input window at (i * stride, j * stride), dilated, flattened row by row, channels last
    (Keras computes it as a convolution with an identity kernel). One move per window offset;
    where 'same' padding leaves a window partly outside the input, those elements stay zero."""
    from micronets.compiler.ops.conv2d import spatial_padding

    if getattr(layer, "is_3d", False) or getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnsupportedModelError(f"operation '{layer.name}' (extract_patches) is 3-D or channels_first; "
                                    f"only 2-D channels_last patches are supported")
    pair = lambda v: (int(v), int(v)) if np.isscalar(v) else tuple(int(a) for a in v)
    (kh, kw), (sh, sw), (dh, dw) = pair(layer.size), pair(layer.strides), pair(layer.dilation_rate)
    x = ctx.dense_input(inputs[0])
    if len(x.shape) != 3:
        raise UnsupportedModelError(f"operation '{layer.name}' extracts patches of a {x.shape} input; an image is expected")
    x, (pt, _, pl, _), (ho, wo) = spatial_padding(layer, ctx, x, (kh, kw), (sh, sw), (dh, dw))
    h, w, c = x.hwc
    depth = kh * kw * c
    shape = (ho, wo, depth)
    if shape != tuple(ctx.output_shape):
        raise UnsupportedModelError(f"operation '{layer.name}': patches of {shape}, Keras says {ctx.output_shape}")
    moves = []
    for i in range(kh):
        for j in range(kw):
            rows = [o for o in range(ho) if 0 <= o * sh + i * dh - pt < h]
            cols = [o for o in range(wo) if 0 <= o * sw + j * dw - pl < w]
            if rows and cols:
                r, q = rows[0] * sh + i * dh - pt, cols[0] * sw + j * dw - pl
                moves.append(Move(0, (r * w + q) * c, (rows[0] * wo + cols[0]) * depth + (i * kw + j) * c,
                                  (len(rows), len(cols), c), (sh * w * c, sw * c, 1), (wo * depth, depth, 1)))
    zero = sum(int(np.prod(m.dims)) for m in moves) < ho * wo * depth
    detail = f"{kh}x{kw} /{sh},{sw}" + (f" dilation {dh},{dw}" if (dh, dw) != (1, 1) else "")
    return _add(ctx, layer.name, [x], shape, moves, "ExtractPatches", detail, zero=zero)


@converter("Cropping2D", "Cropping1D")
def convert_cropping(layer, inputs, ctx):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnsupportedModelError(f"layer '{layer.name}' uses data_format={layer.data_format}; only channels_last is supported")
    x = ctx.dense_input(inputs[0])
    if type(layer).__name__ == "Cropping1D":
        (top, bottom), (left, right) = (0, 0), layer.cropping
    else:
        (top, bottom), (left, right) = layer.cropping
    return crop(ctx, x, top, bottom, left, right, layer.name)


def _image_margins(layer, kind, x, out):
    """(top, bottom, left, right) of keras.ops.image.crop_images / pad_images (``kind`` 'cropping'
    or 'padding') on map ``x`` giving Keras' declared output ``out``: a margin left None is what the
    target height or width leaves of the other."""
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnsupportedModelError(f"operation '{layer.name}' uses data_format={layer.data_format}; only channels_last is supported")
    if len(x.shape) != 3 or len(out) != 3:
        raise UnsupportedModelError(f"operation '{layer.name}' ({kind} images) of a {x.shape} sample; only maps (H, W, C) are supported")
    margins = []
    for first, second, size, target in (("top", "bottom", x.shape[0], out[0]), ("left", "right", x.shape[1], out[1])):
        a, b = getattr(layer, f"{first}_{kind}"), getattr(layer, f"{second}_{kind}")
        total = abs(int(size) - int(target))
        a = total - int(b) if a is None else int(a)
        margins += [a, total - a if b is None else int(b)]
    return tuple(margins)


@converter("op:CropImages")
def convert_crop_images(layer, inputs, ctx):
    """``keras.ops.image.crop_images``: a window of the map (ShiftViT shifts channel groups with it)."""
    x = ctx.dense_input(inputs[0])
    return crop(ctx, x, *_image_margins(layer, "cropping", x, ctx.output_shape), layer.name)


@converter("op:PadImages")
def convert_pad_images(layer, inputs, ctx):
    """``keras.ops.image.pad_images``: zeros around the map, as ZeroPadding2D (absorbed by a
    convolution or pooling that reads it, written out otherwise)."""
    x = inputs[0]
    return ctx.pad(x, _image_margins(layer, "padding", x, ctx.output_shape), layer)


@converter("op:Pad")
def convert_pad(layer, inputs, ctx):
    """``keras.ops.pad`` around a map's rows and columns or a sequence's steps: with zeros as
    ZeroPadding2D / 1D, or with -inf as the padding of the max pooling that reads it; mirrored
    (mode 'reflect': CycleGAN's ReflectionPadding2D, or 'symmetric', the edge repeated) as copies
    of the input's bands, read backwards. Other modes, other values and other axes are refused,
    naming what."""
    x = inputs[0]
    rank = len(x.shape)
    pads = [tuple(int(p) for p in pw) for pw in layer.pad_width]
    pads = pads * (rank + 1) if len(pads) == 1 else pads
    value = ctx.call_kwargs.get("constant_values", ctx.call_args[1] if len(ctx.call_args) > 1 else None)
    what = f"operation '{layer.name}' (keras.ops pad)"
    mode = str(layer.mode).lower()
    if mode not in ("constant", "reflect", "symmetric"):
        raise UnsupportedModelError(f"{what} pads in mode '{layer.mode}'; only 'constant' (zeros), 'reflect' and "
                                    f"'symmetric' are supported")
    fill = 0.0 if value is None else float(np.asarray(value))
    if mode == "constant" and fill not in (0.0, -np.inf):
        raise UnsupportedModelError(f"{what} pads with {fill}; only with zeros, or with -inf before a max pooling, "
                                    f"is supported")
    if rank not in (2, 3) or len(pads) != rank + 1 or pads[0] != (0, 0) or pads[-1] != (0, 0):
        raise UnsupportedModelError(f"{what} pads {pads} around a {tuple(x.shape)} sample; only the rows and columns "
                                    f"of a map (H, W, C) or the steps of a sequence (L, C) are supported")
    margins = (pads[1] + pads[2]) if rank == 3 else ((0, 0) + pads[1])
    if mode == "constant":
        return ctx.pad(x, margins, layer, fill=fill)
    return _mirror_pad(ctx, ctx.dense_input(x), margins, mode == "reflect", layer.name, what)


def _mirror_bands(n: int, before: int, after: int, reflect: bool):
    """(output start, length, input start, input step) of each band of an axis of ``n`` padded by
    ``before`` and ``after`` mirrored: reflect leaves the edge out of the mirror (d c b | a b c d |
    c b a), symmetric repeats it (b a | a b c d | d c)."""
    skip = 1 if reflect else 0
    bands = [(0, before, before - 1 + skip, -1), (before, n, 0, 1), (before + n, after, n - 1 - skip, -1)]
    return [b for b in bands if b[1] > 0]


def _mirror_pad(ctx, x, margins, reflect, name, what):
    top, bottom, left, right = margins
    h, w, c = x.hwc
    limit = h - 1 if reflect else h, w - 1 if reflect else w
    if max(top, bottom) > limit[0] or max(left, right) > limit[1]:
        raise UnsupportedModelError(f"{what} mirrors {margins} around a {h}x{w} map: at most {limit[0]} rows and "
                                    f"{limit[1]} columns a side in mode '{'reflect' if reflect else 'symmetric'}'")
    ho, wo = h + top + bottom, w + left + right
    moves = [Move(0, (r0 * w + c0) * c, (or0 * wo + oc0) * c, (rn, cn, c), (rs * w * c, cs * c, 1), (wo * c, c, 1))
             for or0, rn, r0, rs in _mirror_bands(h, top, bottom, reflect)
             for oc0, cn, c0, cs in _mirror_bands(w, left, right, reflect)]
    shape = (wo, c) if len(x.shape) == 2 else (ho, wo, c)
    return _add(ctx, name, [x], shape, moves, "ReflectPadding" if reflect else "SymmetricPadding",
                "pad " + ",".join(map(str, margins)))


def crop(ctx, x, top, bottom, left, right, name):
    """``x`` (a map or a sequence) without ``top``/``bottom`` rows and ``left``/``right`` columns."""
    h, w, c = x.hwc
    ho, wo = h - top - bottom, w - left - right
    if ho < 1 or wo < 1:
        raise UnsupportedModelError(f"layer '{name}' crops a {h}x{w} input to nothing")
    shape = (wo, c) if len(x.shape) == 2 else (ho, wo, c)
    move = Move(0, (top * w + left) * c, 0, (ho, wo, c), (w * c, c, 1), row_major((ho, wo, c)))
    return _add(ctx, name, [x], shape, [move], "Cropping", f"crop {top},{bottom},{left},{right}")


@converter("UpSampling2D", "UpSampling1D")
def convert_upsampling(layer, inputs, ctx):
    interpolation = getattr(layer, "interpolation", "nearest")
    if interpolation not in ("nearest", "bilinear"):
        raise UnsupportedModelError(f"layer '{layer.name}' (UpSampling2D) uses interpolation '{layer.interpolation}'; "
                                    f"only 'nearest' and 'bilinear' are supported")
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnsupportedModelError(f"layer '{layer.name}' uses data_format={layer.data_format}; only channels_last is supported")
    if interpolation == "bilinear":  # Keras resizes the image then (keras.ops.image.resize)
        from micronets.compiler.ops.resize import resize

        x = ctx.dense_input(inputs[0])
        sh, sw = (int(s) for s in layer.size)
        return resize(ctx, x, (x.shape[0] * sh, x.shape[1] * sw), "bilinear", layer.name, layer=layer)
    x = ctx.dense_input(inputs[0])
    h, w, c = x.hwc
    if type(layer).__name__ == "UpSampling1D":
        sh, sw = 1, int(layer.size)
        shape = (w * sw, c)
    else:
        sh, sw = (int(s) for s in layer.size)
        shape = (h * sh, w * sw, c)
    dims = (h, sh, w, sw, c)
    move = Move(0, 0, 0, dims, (w * c, 0, c, 0, 1), row_major(dims))
    return _add(ctx, layer.name, [x], shape, [move], "UpSampling", f"nearest x{sh},{sw}")


@converter("RepeatVector")
def convert_repeat_vector(layer, inputs, ctx):
    """A vector (F,) as n rows of it, (n, F): an LSTM autoencoder's bridge from the encoder's
    state to the decoder's steps. A zero source stride repeats the vector."""
    x = ctx.dense_input(inputs[0])
    if len(x.shape) != 1:
        raise UnsupportedModelError(f"layer '{layer.name}' (RepeatVector) repeats a {x.shape} input; a vector is expected")
    n, f = int(layer.n), int(x.shape[0])
    move = Move(0, 0, 0, (n, f), (0, 1), (f, 1))
    return _add(ctx, layer.name, [x], (n, f), [move], "RepeatVector", f"x{n}")


def _repeats(layer, value, what):
    """Keras' ``repeats`` argument as a tuple of ints, or a clear refusal (a tensor, or None: a
    repeat count known only when the model runs)."""
    counts = (value,) if isinstance(value, (int, np.integer)) else \
        tuple(np.ravel(value).tolist()) if isinstance(value, (list, tuple, np.ndarray)) else None
    if counts is None or not all(isinstance(r, (int, np.integer)) and r >= 1 for r in counts):
        raise UnsupportedModelError(f"operation '{layer.name}' ({what}) repeats {value!r} times; micronets needs "
                                    f"repeat counts that are positive numbers when the model is built")
    return tuple(int(r) for r in counts)


@converter("op:Tile")
def convert_tile(layer, inputs, ctx):
    """``keras.ops.tile(x, repeats)``: the sample laid side by side ``repeats[i]`` times along each
    axis. One move: each axis split into (copy, element), the copy axis of source stride 0. The
    batch axis must stay: repeats align to the batch axis and the sample's as numpy aligns them."""
    x = ctx.dense_input(inputs[0])
    rank = len(x.shape)
    reps = _repeats(layer, layer.repeats, "keras.ops.tile")
    if len(reps) > rank + 1:
        raise UnsupportedModelError(f"operation '{layer.name}' tiles a {rank + 1}-axis batch with {len(reps)} "
                                    f"repeats: it would add axes in front of the batch axis")
    reps = (1,) * (rank + 1 - len(reps)) + reps
    if reps[0] != 1:
        raise UnsupportedModelError(f"operation '{layer.name}' tiles the batch axis {reps[0]} times; a compiled "
                                    f"model's batch is one sample")
    reps = reps[1:]
    if all(r == 1 for r in reps):
        return x
    shape = tuple(r * d for r, d in zip(reps, x.shape))
    dims = tuple(v for r, d in zip(reps, x.shape) for v in (r, d))
    src = tuple(v for st in row_major(x.shape) for v in (0, st))
    move = Move(0, 0, 0, dims, src, row_major(dims))
    return _add(ctx, layer.name, [x], shape, [move], "Tile", "x" + ",".join(map(str, reps)))


@converter("op:Repeat", parts=True)
def convert_repeat(layer, inputs, ctx):
    """``keras.ops.repeat(x, n, axis)``: each element along ``axis`` n times in a row (numpy's
    repeat). One move: the axis split into (element, copy), the copy of source stride 0. Per-element
    counts and ``axis=None`` (which flattens the batch with the sample) are refused."""
    x = ctx.dense_input(inputs[0])
    reps = _repeats(layer, layer.repeats, "keras.ops.repeat")
    if layer.axis is not None and reps == (1,):  # (GCViT repeats its global query once per window: once)
        return x
    axis = None if layer.axis is None else ctx.axis(int(layer.axis), len(x.shape))
    if axis is None or len(reps) != 1:
        raise UnsupportedModelError(f"operation '{layer.name}' (keras.ops.repeat) repeats with axis={layer.axis} and "
                                    f"repeats={layer.repeats!r}; micronets repeats along one axis of the sample, every "
                                    f"element the same number of times")
    n = reps[0]
    if n == 1:
        return x
    shape = tuple(d * n if a == axis else d for a, d in enumerate(x.shape))
    st = row_major(x.shape)
    dims = x.shape[:axis + 1] + (n,) + x.shape[axis + 1:]
    src = st[:axis + 1] + (0,) + st[axis + 1:]
    move = Move(0, 0, 0, tuple(dims), tuple(src), row_major(dims))
    return _add(ctx, layer.name, [x], shape, [move], "Repeat", f"x{n} on axis {axis + 1}")


def concatenate(ctx, xs, axis, name):
    """``xs`` along ``axis`` (Keras' count: 0 is the batch axis). An operand that is not a model
    value is a constant (a learned class token, ``concatenate([tile(cls), x], axis=1)``): its
    values are the op's weights, copied in where the operand goes; its batch axis, of 1, dropped."""
    values = [ctx.dense_input(t) if ctx.is_value(t) else np.asarray(t, np.float32) for t in xs]
    tensors = [t for t in values if isinstance(t, Tensor)]
    if not tensors:
        raise UnsupportedModelError(f"'{name}': a concatenation of constants alone")
    rank = len(tensors[0].shape)
    parts = [(t.shape, t) if isinstance(t, Tensor) else (one_sample(t, rank).shape, one_sample(t, rank)) for t in values]
    a = ctx.axis(axis, rank)
    if a is None or any(len(s) != rank for s, _ in parts):
        raise UnsupportedModelError(f"'{name}': concatenation over axis {axis} of shapes {[s for s, _ in parts]}")
    first = parts[0][0]
    for s, _ in parts:
        if s[:a] != first[:a] or s[a + 1:] != first[a + 1:]:
            raise UnsupportedModelError(f"'{name}': shapes {[s for s, _ in parts]} do not concatenate on axis {axis}")
    shape = first[:a] + (sum(s[a] for s, _ in parts),) + first[a + 1:]
    dst = row_major(shape)
    inputs, constants, moves, at, offsets = [], [], [], 0, []
    for s, t in parts:
        if isinstance(t, Tensor):
            inputs.append(t)
            source = len(inputs) - 1
        else:
            constants.append(t)
            source = -len(constants)
        moves.append(Move(source, 0, at * dst[a], s, row_major(s), dst))
        offsets.append(at)
        at += s[a]
    channel_offsets = None
    if a == rank - 1 and not constants:
        channel_offsets = offsets
    return _add(ctx, name, inputs, shape, moves, "Concatenate", f"axis {axis}", channel_offsets=channel_offsets,
                constants=constants)


@converter("Concatenate", constants=True, parts=True)
def convert_concatenate(layer, inputs, ctx):
    return concatenate(ctx, inputs, int(layer.axis), layer.name)


@converter("op:Concatenate", constants=True, parts=True)
def convert_concatenate_op(layer, inputs, ctx):
    """keras.ops.concatenate: its operands as called (model values and constants), in order."""
    return concatenate(ctx, list(ctx.call_args[0]), int(getattr(layer, "axis", 0)), layer.name)


@converter("op:Stack", parts=True)
def convert_stack(layer, inputs, ctx):
    """``keras.ops.stack(xs, axis)``: equal shapes side by side along a new axis (caffe-style
    ``preprocess_input`` swaps RGB to BGR as ``stack([x[..., 2], x[..., 1], x[..., 0]], -1)``)."""
    xs = list(ctx.call_args[0])
    if not all(ctx.is_value(t) for t in xs):
        raise UnsupportedModelError(f"operation '{layer.name}' stacks a constant; only model values are supported")
    xs = [ctx.dense_input(t) for t in xs]
    shape = xs[0].shape
    if any(t.shape != shape for t in xs):
        raise UnsupportedModelError(f"operation '{layer.name}' stacks shapes {[t.shape for t in xs]}; they must be equal")
    axis = int(getattr(layer, "axis", 0))
    a = ctx.axis(axis, len(shape) + 1)  # an axis of the stacked value
    if a is None:
        raise UnsupportedModelError(f"operation '{layer.name}' stacks along axis {axis}; only a sample's axes are supported")
    out = shape[:a] + (len(xs),) + shape[a:]
    dst = row_major(out)
    inner = dst[:a] + dst[a + 1:]
    moves = [Move(k, 0, k * dst[a], shape, row_major(shape), inner) for k in range(len(xs))]
    return _add(ctx, layer.name, xs, out, moves, "Stack", f"axis {axis}")


@converter("op:GetItem", parts=True)
def convert_getitem(layer, inputs, ctx):
    """Basic slicing ``x[..., a:b:s]`` (slices, integers, Ellipsis, and None for a new axis of 1,
    as ``g[:, None, None, :]``) of the sample axes."""
    x = ctx.dense_input(inputs[0])
    key = ctx.call_args[1] if len(ctx.call_args) > 1 else None
    key = key if isinstance(key, tuple) else (key,)
    if any(k is not Ellipsis and k is not None and not isinstance(k, (slice, int, np.integer)) for k in key):
        raise UnsupportedModelError(f"operation '{layer.name}' indexes with {key!r}; only slices, integers, Ellipsis and "
                                    f"None (a new axis) are supported")
    key = tuple(k for k in key if k is not None)  # new axes of 1: the same values in the same order
    full = (slice(None),) * ctx.lead + tuple(x.shape)  # (a placeholder for the batch axis of a sample)
    if Ellipsis in key:
        i = key.index(Ellipsis)
        key = key[:i] + (slice(None),) * (len(full) - len(key) + 1) + key[i + 1:]
    key = tuple(key) + (slice(None),) * (len(full) - len(key))
    if ctx.lead and key[0] != slice(None):
        raise UnsupportedModelError(f"operation '{layer.name}' slices the batch axis")
    src = row_major(x.shape)
    offset, dims, strides = 0, [], []
    for d, k, s in zip(x.shape, key[ctx.lead:], src):
        if isinstance(k, slice):
            start, stop, step = k.indices(d)
            n = len(range(start, stop, step))
            if n < 1:
                raise UnsupportedModelError(f"operation '{layer.name}' takes an empty slice")
            offset += start * s
            dims.append(n)
            strides.append(step * s)
        else:
            k = int(k) + d if int(k) < 0 else int(k)
            offset += k * s
    shape = tuple(dims)
    declared = tuple(ctx.output_shape)
    if None in declared and len(declared) == len(shape):  # (parts mode in a graph of any batch size: that axis)
        declared = tuple(n if d is None else d for d, n in zip(declared, shape))
    if tuple(d for d in declared if d != 1) != tuple(d for d in shape if d != 1) or len(declared) < len(shape):
        raise UnsupportedModelError(f"operation '{layer.name}': slice gives {shape}, Keras says {declared}")
    if not shape:  # one value a sample (keras.io's variable selection: expand_dims(x[:, i], -1)): a vector of one
        shape, strides = (1,), [1]
    move = Move(0, offset, 0, shape, tuple(strides), row_major(shape))
    return _add(ctx, layer.name, [x], declared or shape, [move], "Slice")


@converter("op:Split", multi_output=True, parts=True)
def convert_split(layer, inputs, ctx):
    """``keras.ops.split(x, n or indices, axis)`` along a sample axis (gMLP's spatial gating unit
    halves its channels): one copy per part, each a model value of its own."""
    x = ctx.dense_input(inputs[0])
    rank = len(x.shape)
    axis = int(layer.axis)
    a = ctx.axis(axis, rank)
    if a is None:
        raise UnsupportedModelError(f"operation '{layer.name}' splits axis {axis} of a {x.shape} sample; "
                                    f"only the sample's axes can be split")
    n = x.shape[a]
    sections = layer.indices_or_sections
    if isinstance(sections, (int, np.integer)):
        if int(sections) < 1 or n % int(sections):
            raise UnsupportedModelError(f"operation '{layer.name}' splits {n} into {sections} equal parts")
        bounds = list(range(0, n + 1, n // int(sections)))
    else:
        bounds = [0] + [min(max(int(i), 0), n) for i in sections] + [n]
    if any(hi <= lo for lo, hi in zip(bounds, bounds[1:])):
        raise UnsupportedModelError(f"operation '{layer.name}' makes an empty part (bounds {bounds} of axis {axis})")
    return _pieces(ctx, x, a, bounds, layer.name, "Split", f"axis {axis}")


@converter("op:Unstack", multi_output=True, parts=True)
def convert_unstack(layer, inputs, ctx):
    """``keras.ops.unstack(x, num, axis)``: each slice of ``x`` along ``axis``, without that axis
    (keras-hub's Swin takes q, k and v out of their stack so): one copy per slice."""
    x = ctx.dense_input(inputs[0])
    a = ctx.axis(int(layer.axis), len(x.shape))
    if a is None:
        raise UnsupportedModelError(f"operation '{layer.name}' unstacks axis {layer.axis} of a {x.shape} sample; "
                                    f"only the sample's axes can be unstacked")
    return _pieces(ctx, x, a, list(range(x.shape[a] + 1)), layer.name, "Unstack", f"axis {layer.axis}", drop=True)


def _pieces(ctx, x, a, bounds, name, kind, detail, drop: bool = False):
    """``x`` cut along axis ``a`` at ``bounds`` (first 0, last the axis' length): one copy per
    piece, each a model value of its own; ``drop``: pieces of one, without the axis."""
    src = row_major(x.shape)
    pieces = []
    for k, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        dims = x.shape[:a] + (hi - lo,) + x.shape[a + 1:]
        shape = (x.shape[:a] + x.shape[a + 1:] or (1,)) if drop else dims
        move = Move(0, lo * src[a], 0, dims, src, row_major(dims))
        pieces.append(_add(ctx, f"{name}_{k}" if k else name, [x], shape, [move], kind, f"{detail}, {lo}:{hi}"))
    return tuple(pieces)


@rewrite(stage=2)
def concatenate_in_place(ops, kept):
    """A Conv2D whose only reader is a concatenation on the channel axis writes its channels
    straight into the concatenation's output (a channel slice, output pixels a whole row of
    channels apart) instead of into a tensor of its own that the concatenation then copies. The
    concatenation keeps copying only its other inputs, and vanishes when none are left."""
    from micronets.compiler.ops.conv2d import Conv2D

    readers = collections.Counter(t.storage for op in ops for t in op.inputs)
    producer = {op.output: op for op in ops}
    replaced, out = {}, []
    for op in ops:
        if isinstance(op, Rearrange) and op.channel_offsets is not None:
            keep = []
            for k, t in enumerate(op.inputs):
                p = producer.get(t)
                if (type(p) is Conv2D and p not in replaced and readers[t] == 1 and t not in kept
                        and sum(x is t for x in op.inputs) == 1):
                    piece = Tensor(t.name, t.shape, base=op.output, channel_offset=op.channel_offsets[k])
                    replaced[p] = p.evolve(output=piece)
                else:
                    keep.append(k)
            if len(keep) < len(op.inputs):
                if keep:
                    moves = [dataclasses.replace(m, source=keep.index(m.source)) for m in op.moves if m.source in keep]
                    out.append(op.evolve(inputs=[op.inputs[k] for k in keep], moves=moves,
                                         channel_offsets=tuple(op.channel_offsets[k] for k in keep)))
                continue
        out.append(op)
    return [replaced.get(op, op) for op in out]
