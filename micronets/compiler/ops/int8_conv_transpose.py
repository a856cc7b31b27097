"""int8 transposed convolution (TFLite TRANSPOSE_CONV, what Conv2DTranspose / Conv1DTranspose
become): per-output-channel int8 filter [COUT][KH][KW][CIN], optional int32 bias, fused ReLU /
ReLU6 as the output clamp.

TFLite's reference kernel (TFLM runs the same) scatters: every input value minus its zero point,
times every tap, adds into an int32 per output, then bias and the convolution's requantisation.
This kernel gathers the same products for one output at a time (integer sums in any order are
the same integers), so no int32 map sits in the arena. The input offset cannot be folded into the
bias: how many taps reach an output changes along the border and with the stride's phase.
Padding from the output size as TFLite computes it (see ops/conv_transpose.py).
"""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.conv_transpose import transpose_detail, transpose_macs, transpose_pads
from micronets.compiler.ops.int8_base import (Int8Op, c_requant_bias, c_requant_shift, conv_real_scales, param_layout,
                                              per_channel_multipliers, requant_arrays, requant_mode)


class Int8ConvTranspose(Int8Op):
    kind = "Conv2DTranspose"
    template = "kernels/int8_conv_transpose.h.j2"
    requires = ("kernels/int8_params.h.j2", "kernels/conv_transpose_taps.h.j2")

    def __init__(self, name, x, out, filt, bias, filter_scales, strides, same: bool, fused=0):
        super().__init__(name, [x], out, fused)
        self.filt = np.asarray(filt, np.int8)  # [COUT][KH][KW][CIN]
        cout, kh, kw, cin = self.filt.shape
        if (cin, cout) != (x.hwc[2], out.hwc[2]) or x.dtype != "int8":
            raise UnsupportedModelError(f"'{name}': a {list(self.filt.shape)} filter for an {x.dtype} {x.shape} input "
                                        f"and a {out.shape} output; int8 with [COUT][KH][KW][CIN] is supported")
        self.bias = np.zeros(cout, np.int32) if bias is None else np.asarray(bias, np.int32).reshape(-1)
        self.strides = tuple(int(s) for s in strides)
        (h, w, _), (ho, wo, _) = x.hwc, out.hwc
        self.pads = (transpose_pads(h, ho, kh, self.strides[0], "same" if same else "valid"),
                     transpose_pads(w, wo, kw, self.strides[1], "same" if same else "valid"))
        # TFLite's kernel skips taps outside the output, so any output size the file states runs
        # there; the references' own Prepare checks nothing more
        self.mult, self.shift = per_channel_multipliers(conv_real_scales(x.quant.scale, filter_scales, out.quant.scale, cout))
        self.in_off = -x.quant.zero_point
        self.out_off = out.quant.zero_point

    @property
    def kernel_size(self) -> "tuple[int, int]":
        """(KH, KW) of the filter [COUT][KH][KW][CIN]."""
        return int(self.filt.shape[1]), int(self.filt.shape[2])

    def describe(self):
        return transpose_detail(self.kernel_size, self.strides, self.pads)

    def macs(self):
        return transpose_macs(self.inputs[0].hwc, self.output.hwc, self.kernel_size, self.strides, self.pads)

    @property
    def rq_mode(self) -> int:
        """The requantisation the kernel may use (``requant_mode``: bias + 255 * sum |w| bounds
        every sum, whichever taps land)."""
        abs_sums = np.abs(self.filt.astype(np.int64)).reshape(self.filt.shape[0], -1).sum(axis=1)
        return requant_mode(self.bias, abs_sums, self.shift, self.act_min, self.act_max)

    @property
    def param_layout(self) -> str:
        return param_layout(self.bias)

    def typed_weights(self):
        w = collections.OrderedDict(w=self.filt.reshape(-1))
        w.update(requant_arrays(self.bias, self.mult, self.shift))
        return w

    def weights_bytes_bound(self) -> int:
        return int(self.filt.size + 9 * self.output.hwc[2])

    def c_bias(self, stem: str) -> str:
        return c_requant_bias(self.param_layout, stem)

    def c_shift(self, stem: str) -> str:
        return c_requant_shift(self.param_layout, stem)

    def params(self):
        return int(self.filt.size + self.bias.size)
