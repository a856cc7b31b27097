"""Resizing and CenterCrop (Keras' image preprocessing layers inside a model): a camera frame of
one size in, the network's input size out.

Keras resizes with TensorFlow's kernels at half-pixel centres, and so does this kernel, in the
same float arithmetic: output row y samples input row (y + 0.5) * H / OH - 0.5 (bilinear: the two
rows around it, weighted by the fraction, clamped at the edges) or row floor((y + 0.5) * H / OH)
(nearest), columns alike. ``crop_to_aspect_ratio`` crops the centre first and
``pad_to_aspect_ratio`` pads with zeros first, both as Keras computes their boxes, and the kernel
reads the crop (or the zeros around the image) in place. CenterCrop
crops where the input is large enough and otherwise crops to the aspect ratio and resizes
(Keras' ``smart_resize``). No MACs counted (three multiply-adds an output value, bilinear).
"""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter
from micronets.compiler.ops.rearrange import crop

MODES = ("bilinear", "nearest")


class Resize(Op):
    """``x`` resized to the output's height and width. ``box`` = (top, left, height, width): the
    image resized is that window of ``x`` (a crop), or ``x`` inside zeros (negative top / left: a
    pad), read in place: neither is copied."""

    kind = "Resize"
    template = "kernels/resize.h.j2"

    def __init__(self, name, x, out, mode: str, box=None):
        if mode not in MODES:
            raise ValueError(f"resize mode {mode!r}; known: {', '.join(MODES)}")
        if len(x.shape) != 3 or len(out.shape) != 3 or x.shape[2] != out.shape[2]:
            raise ValueError(f"resize '{name}' maps HxWxC to HxWxC with the same channels; got {x.shape} -> {out.shape}")
        h, w, _ = x.shape
        top, left, bh, bw = box if box is not None else (0, 0, h, w)
        crops = top >= 0 and left >= 0 and top + bh <= h and left + bw <= w
        pads = top <= 0 and left <= 0 and bh + 2 * top == h and bw + 2 * left == w
        if bh < 1 or bw < 1 or not (crops or pads):
            raise ValueError(f"resize '{name}': box {box} is neither a crop of nor a centred pad around {x.shape}")
        super().__init__(name, [x], out)
        self.mode = mode
        self.box = (int(top), int(left), int(bh), int(bw))

    def describe(self):
        h, w, _ = self.inputs[0].shape
        top, left, bh, bw = self.box
        ho, wo, _ = self.output.shape
        if (bh, bw) == (h, w):
            frame = ""
        elif top >= 0 and left >= 0:
            frame = f" crop {bh}x{bw} at {top},{left} ->"
        else:
            frame = f" pad {-top},{-left} to {bh}x{bw} ->"
        return f"{self.mode} {h}x{w} ->{frame} {ho}x{wo}"


def _int32(value) -> int:
    """float32 -> int32 as TensorFlow's cast does (towards zero)."""
    return int(np.float32(value))


def aspect_box(h: int, w: int, th: int, tw: int, pad: bool):
    """Keras' crop (pad=False) or pad (pad=True) box for resizing an h x w image to the aspect
    ratio of th x tw, in its float32 arithmetic: (height, width, start row, start column) of the
    crop, or (padded height, padded width, rows added above, columns added left)."""
    bh = _int32(np.float32(w * th) / np.float32(tw))
    bw = _int32(np.float32(h * tw) / np.float32(th))
    if pad:
        bh, bw = max(h, bh), max(w, bw)
        return bh, bw, _int32(np.float32(bh - h) / np.float32(2)), _int32(np.float32(bw - w) / np.float32(2))
    bh, bw = max(min(h, bh), 1), max(min(w, bw), 1)
    return bh, bw, _int32(np.float32(h - bh) / np.float32(2)), _int32(np.float32(w - bw) / np.float32(2))


def resize(ctx, x, size, mode, name, crop_to_aspect_ratio=False, pad_to_aspect_ratio=False, layer=None):
    """``x`` (an H x W x C map) resized to ``size`` as keras.backend's image.resize does."""
    x = ctx.dense_input(x)
    if len(x.shape) != 3:
        raise UnsupportedModelError(f"layer '{name}' resizes a tensor of shape {x.shape}; an H x W x C image is supported")
    h, w, c = x.shape
    th, tw = (int(s) for s in size)
    box = (0, 0, h, w)
    if crop_to_aspect_ratio:
        bh, bw, top, left = aspect_box(h, w, th, tw, pad=False)
        box = (top, left, bh, bw)
    elif pad_to_aspect_ratio:
        _, _, top, left = aspect_box(h, w, th, tw, pad=True)
        box = (-top, -left, h + 2 * top, w + 2 * left)  # Keras adds that many rows (columns) on both sides
    top, left, bh, bw = box
    if (bh, bw) == (th, tw):  # half-pixel sampling at the same size reads every pixel where it is
        if (bh, bw) == (h, w):
            return x
        if top >= 0 and left >= 0:
            return crop(ctx, x, top, h - bh - top, left, w - bw - left, name)
        return ctx.pad(x, (-top, -top, -left, -left), layer)
    out = ctx.new_tensor(name, (th, tw, c))
    return ctx.add(Resize(name, x, out, mode, box)).output


def _channels_last(layer):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnsupportedModelError(f"layer '{layer.name}' uses data_format={layer.data_format}; only channels_last is supported")


@converter("Resizing", "op:Resize")
def convert_resizing(layer, inputs, ctx):
    """The Resizing layer, and keras.ops.image.resize (keras-hub MobileNetV5's multi-scale fusion
    resizes so), which take the same options."""
    _channels_last(layer)
    what = "Resizing" if type(layer).__name__ == "Resizing" else "keras.ops.image.resize"
    if layer.interpolation not in MODES:
        raise UnsupportedModelError(f"layer '{layer.name}' ({what}) uses interpolation '{layer.interpolation}'; "
                                    f"supported: {', '.join(MODES)}")
    if layer.antialias:
        raise UnsupportedModelError(f"layer '{layer.name}' ({what}) uses antialias=True; only antialias=False is "
                                    f"supported")
    if layer.pad_to_aspect_ratio and float(layer.fill_value) != 0.0:
        raise UnsupportedModelError(f"layer '{layer.name}' ({what}) pads to the aspect ratio with fill_value="
                                    f"{layer.fill_value}; only 0 is supported")
    size = (layer.height, layer.width) if what == "Resizing" else tuple(layer.size)
    return resize(ctx, inputs[0], size, layer.interpolation, layer.name, bool(layer.crop_to_aspect_ratio),
                  bool(layer.pad_to_aspect_ratio), layer)


@converter("CenterCrop")
def convert_center_crop(layer, inputs, ctx):
    _channels_last(layer)
    x = ctx.dense_input(inputs[0])
    if len(x.shape) != 3:
        raise UnsupportedModelError(f"layer '{layer.name}' crops a tensor of shape {x.shape}; an H x W x C image is supported")
    h, w, _ = x.shape
    th, tw = int(layer.height), int(layer.width)
    if h >= th and w >= tw:
        top, left = (h - th) // 2, (w - tw) // 2
        return crop(ctx, x, top, h - th - top, left, w - tw - left, layer.name)
    return resize(ctx, x, (th, tw), "bilinear", layer.name, crop_to_aspect_ratio=True)
