"""int8 image resizing (TFLite RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR, what Keras' Resizing
becomes), bit for bit as TFLite's reference kernels, which TFLM runs too.

Bilinear is TFLite's integer form: each axis's source position in 1/1024ths of a pixel from the
integer scale ((1024 IN + OUT / 2) / OUT), the four neighbours weighted by products of 10-bit
fractions, the sum rounded half away from zero at 2^20. Nearest picks the pixel TFLite's float
arithmetic picks; those indices are worked out here, in float32 as TFLite does, and stored (one
int16 per output row and column). Both keep the input's quantisation (TFLite requires it).

A crop that only the resize reads (the STRIDED_SLICE of Keras' ``crop_to_aspect_ratio``) is read
in place: ``box`` is the window of the input that is resized, so no copy of it sits in the arena.
"""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.int8_base import Int8Op


def nearest_indices(n_in: int, n_out: int, align_corners: bool, half_pixel_centers: bool) -> np.ndarray:
    """TFLite's GetNearestNeighbor for every output index, in its float32 arithmetic."""
    f32 = np.float32
    scale = f32(n_in - 1) / f32(n_out - 1) if align_corners and n_out > 1 else f32(n_in) / f32(n_out)
    at = (np.arange(n_out, dtype=f32) + f32(0.5 if half_pixel_centers else 0.0)) * scale
    # TfLiteRound (align_corners): halves away from zero; the positions are never negative
    picked = np.floor(at + f32(0.5)) if align_corners else np.floor(at)
    idx = np.minimum(picked.astype(np.int64), n_in - 1)
    return np.maximum(idx, 0) if half_pixel_centers else idx


class Int8Resize(Int8Op):
    kind = "Resize"
    template = "kernels/int8_resize.h.j2"

    def __init__(self, name, x, out, bilinear: bool, align_corners: bool, half_pixel_centers: bool, box=None):
        """``box`` = (top, left, height, width): the window of ``x`` resized (default all of it)."""
        if len(x.shape) != 3 or len(out.shape) != 3 or x.shape[2] != out.shape[2]:
            raise UnsupportedModelError(f"'{name}' resizes {x.shape} to {out.shape}; an HxWxC map to the same channels is supported")
        if x.dtype != "int8":
            raise UnsupportedModelError(f"'{name}' resizes a {x.dtype} map; int8 inside the graph is supported")
        if out.quant != x.quant or out.dtype != x.dtype:
            raise UnsupportedModelError(f"'{name}' changes the quantisation while resizing; TFLite keeps it")
        if align_corners and half_pixel_centers:
            raise UnsupportedModelError(f"'{name}' sets both align_corners and half_pixel_centers")
        h, w, _ = x.shape
        top, left, bh, bw = (int(v) for v in (box if box is not None else (0, 0, h, w)))
        if min(top, left) < 0 or min(bh, bw) < 1 or top + bh > h or left + bw > w:
            raise UnsupportedModelError(f"'{name}': window {box} is not inside the {x.shape} map")
        super().__init__(name, [x], out, 0)
        self.box = (top, left, bh, bw)
        self.bilinear = bool(bilinear)
        self.align_corners = bool(align_corners)
        self.half_pixel_centers = bool(half_pixel_centers)

    @property
    def offset(self) -> int:
        """Elements from the input's start to the window's first."""
        top, left, _, _ = self.box
        _, w, c = self.inputs[0].shape
        return (top * w + left) * c

    def describe(self):
        h, w, _ = self.inputs[0].shape
        top, left, bh, bw = self.box
        ho, wo, _ = self.output.shape
        crop = f" crop {bh}x{bw} at {top},{left} ->" if (bh, bw) != (h, w) else ""
        how = ", align corners" if self.align_corners else ("" if self.half_pixel_centers else ", corner pixels")
        return f"{'bilinear' if self.bilinear else 'nearest'} {h}x{w} ->{crop} {ho}x{wo}{how}"

    def typed_weights(self):
        if self.bilinear:
            return collections.OrderedDict()
        (_, _, h, w), (ho, wo, _) = self.box, self.output.shape
        rows = nearest_indices(h, ho, self.align_corners, self.half_pixel_centers)
        cols = nearest_indices(w, wo, self.align_corners, self.half_pixel_centers)
        return collections.OrderedDict(y=rows.astype(np.int16), x=cols.astype(np.int16))

    def params(self):
        return 0
