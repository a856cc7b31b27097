"""int8 fully connected (TFLite FULLY_CONNECTED): weights [OUT][N] int8 (per-tensor or per-channel
scale), int32 bias, fused activation clamp; rows of N inputs each give OUT outputs. MACs: rows*N*OUT.

TFLite's own reference kernel (BUILTIN_REF) requantises FULLY_CONNECTED in double precision where
TFLM uses the fixed-point multiplier: the two disagree by 1 LSB on
some outputs. The default follows TFLM; ``double_requant`` follows BUILTIN_REF."""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.ops.int8_base import (Int8Op, c_requant_bias, c_requant_shift, conv_real_scales,
                                              fits_signed, fold_input_offset, param_layout, per_channel_multipliers,
                                              requant_arrays, requant_mode)
from micronets.compiler.ops.int8_conv import pointwise_weight_layout


class Int8Dense(Int8Op):
    kind = "Dense"
    template = "kernels/int8_dense.h.j2"
    #: mn_lo24 / mn_hi8 (the packed bias and shift); the pointwise kernels run ``tiled`` layers
    requires = ("kernels/int8_params.h.j2", "kernels/int8_pointwise.h.j2")

    def __init__(self, name, x, out, weights, bias, filter_scales, fused=0, double_requant=False, from_conv=False):
        super().__init__(name, [x], out, fused)
        #: a CONV_2D 1x1 of a single pixel, run as a fully connected layer
        self.from_conv = bool(from_conv)
        self.w = np.asarray(weights, np.int8)
        self.units, self.depth = (int(d) for d in self.w.shape)
        if x.size % self.depth or out.size != x.size // self.depth * self.units:
            raise ValueError(f"fully connected '{name}': {x.shape} input for weights {self.w.shape} gives {out.shape}?")
        self.rows = x.size // self.depth
        self.bias = None if bias is None else np.asarray(bias, np.int32).reshape(-1)
        self.real_scales = conv_real_scales(x.quant.scale, filter_scales, out.quant.scale, self.units)
        self.mult, self.shift = per_channel_multipliers(self.real_scales)
        #: requantise as TFLite's BUILTIN_REF kernel does (double precision), not in fixed point
        #: as TFLM does
        self.double_requant = bool(double_requant)
        self.in_off = -x.quant.zero_point
        self.out_off = out.quant.zero_point

    @property
    def tiled(self) -> bool:
        """Several rows with TFLM's requantisation: the rows are the pixels of a 1x1 convolution
        (the same integers: an int8 dot product plus the folded bias per output, each requantised
        with its channel's multiplier), run by the pointwise kernels' tiles of pixels
        (int8_pointwise: each weight word serves up to 4 rows), the weights in their layout
        (``pointwise_weight_layout``). A single row (a classifier head, a closer) keeps the row kernel."""
        return self.rows > 1 and not self.double_requant

    def describe(self):
        return (f"{self.depth} -> {self.units}" + (f" x{self.rows} rows" if self.rows != 1 else "")
                + (" (CONV_2D 1x1 of one pixel)" if self.from_conv else ""))

    @property
    def rq_mode(self) -> int:
        """The requantisation the kernel may use (``requant_mode``)."""
        return requant_mode(self.bias, np.abs(self.w.astype(np.int64)).sum(axis=1), self.shift, self.act_min, self.act_max)

    def folded_bias(self) -> np.ndarray:
        """bias + in_off * sum(w) per output: the input offset folded in (exact in integers), so the
        kernel's inner loop is a plain int8 dot product (SMLAD on DSP cores)."""
        return fold_input_offset(self.name, self.bias, self.in_off, self.w.astype(np.int64).sum(axis=1), self.units)

    def macs(self):
        return self.rows * self.depth * self.units

    def params(self):
        return int(self.w.size + (0 if self.bias is None else self.bias.size))

    def weights_bytes_bound(self):
        per_unit = 4 + (8 if self.double_requant else 5)
        pad = 3 if self.tiled and self.depth % 4 else 0  # pointwise_weight_layout's spare bytes
        return int(self.w.size + per_unit * self.units + pad)

    def typed_weights(self):
        w = collections.OrderedDict(w=pointwise_weight_layout(self.w) if self.tiled else self.w.reshape(-1))
        f = self.folded_bias()
        if self.double_requant:
            # the folded bias (int16 when every one fits) and the double scales
            w["f"] = f.astype(np.int16) if fits_signed(f, 16) else f.astype(np.int32)
            w["d"] = np.asarray(self.real_scales, np.float64)
        else:
            # as a convolution's: the smallest lossless layout (int16 biases, or bias and shift
            # packed in one int32)
            w.update(requant_arrays(f, self.mult, self.shift))
        return w

    def c_bias(self, stem=None) -> str:
        """C expression the kernel indexes for the folded biases (``stem``: the weights' C name
        without its suffix; default the layer's own, 'L3_')."""
        return c_requant_bias(param_layout(self.folded_bias()), stem or f"{self.ident}_")

    def c_shift(self, stem=None) -> str:
        """C expression the kernel indexes for the requantisation shifts."""
        return c_requant_shift(param_layout(self.folded_bias()), stem or f"{self.ident}_")

    close_kind = "fc"

    def closes_rows(self) -> bool:
        """One row of inputs (no batch, no kept dimensions), the whole input map flattened in its
        HWC order: it closes a row stream, row y of the map being inputs [y W C, (y + 1) W C)
        whose dot products with each output's slice of the weights add to that output's int32
        accumulator as the row arrives (mn_dense_close), then this layer's requantisation (TFLM's
        fixed point or BUILTIN_REF's double precision)."""
        return self.rows == 1 and self.depth == self.inputs[0].size

    def transposed(self, x, out):
        """The same layer reading ``x``, its input map's bytes seen with rows and columns swapped
        (``Int8Windowed.transposed``: a 1 x L map, whose flattened order is the L x 1 view's)."""
        return self.evolve(inputs=[x], output=out)
