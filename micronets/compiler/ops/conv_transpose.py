"""Conv2DTranspose / Conv1DTranspose (a learnt upsampling: autoencoder and segmentation decoders).

Input pixel (iy, ix) adds its channels times tap (ky, kx) of the kernel into output pixel
(iy * SH - PT + ky, ix * SW - PL + kx), which is TensorFlow's ``conv_transpose`` (the gradient
of a convolution with the same kernel, strides and padding). The kernel gathers instead: output
pixel (oy, ox) sums the taps whose input pixel exists, so each output is finished at once, with
its bias and activation, and nothing accumulates in the arena. Output size as Keras computes it
(``output_padding`` included); PT / PL as TensorFlow derives them from it: 'valid' 0, 'same'
half of max((H - 1) * SH + KH - HO, 0), rounded down. MACs: the taps that land, times CIN.
"""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter, keras_activation


def transpose_pads(size: int, out: int, kernel: int, stride: int, padding: str) -> int:
    """Rows (columns) TensorFlow drops before the first output of a transposed convolution: 0 for
    'valid', the 'same' convolution's leading padding for an ``out``-long map otherwise."""
    return 0 if padding == "valid" else max((size - 1) * stride + kernel - out, 0) // 2


def landing_taps(size: int, out: int, kernel: int, stride: int, pad: int) -> int:
    """How many (input position, tap) pairs along one axis land inside the output."""
    pos = np.arange(size)[:, None] * stride - pad + np.arange(kernel)[None, :]
    return int(np.count_nonzero((pos >= 0) & (pos < out)))


def transpose_macs(in_hwc, out_hwc, kernel, strides, pads) -> int:
    """Multiply-adds of a transposed convolution: the (input pixel, tap) pairs that land inside
    the output, times input and output channels (float or int8)."""
    rows = landing_taps(in_hwc[0], out_hwc[0], kernel[0], strides[0], pads[0])
    cols = landing_taps(in_hwc[1], out_hwc[1], kernel[1], strides[1], pads[1])
    return rows * cols * in_hwc[2] * out_hwc[2]


def transpose_detail(kernel, strides, pads) -> str:
    """'3x3 x2 crop 1,1' style summary of a transposed convolution (float or int8)."""
    text = f"{kernel[0]}x{kernel[1]}"
    if tuple(strides) != (1, 1):
        text += f" x{strides[0]}" if strides[0] == strides[1] else f" x{tuple(strides)}"
    if any(pads):
        text += f" crop {pads[0]},{pads[1]}"
    return text


class ConvTranspose(Op):
    """Transposed convolution, HWC ((L, C) sequences as 1 x L x C maps), kernel in Keras' layout
    (KH, KW, COUT, CIN), emitted as [COUT][KH][KW][CIN]; ``pads`` = (top, left)."""

    kind = "Conv2DTranspose"
    template = "kernels/conv_transpose.h.j2"
    requires = ("kernels/conv_transpose_taps.h.j2",)
    fuses_activation = True

    def __init__(self, name, x, out, kernel, bias, strides, pads):
        super().__init__(name, [x], out)
        self.kernel = np.asarray(kernel, np.float64)
        self.bias = None if bias is None else np.asarray(bias, np.float64)
        self.strides = tuple(int(s) for s in strides)
        self.pads = tuple(int(p) for p in pads)
        kh, kw, cout, cin = self.kernel.shape
        if (cin, cout) != (x.hwc[2], out.hwc[2]):
            raise ValueError(f"'{name}': kernel {self.kernel.shape} for {x.hwc[2]} -> {out.hwc[2]} channels")

    def folded(self, scale, shift) -> "ConvTranspose":
        """This op with a per-output-channel ``y * scale + shift`` (BatchNorm) folded in."""
        bias = (self.bias if self.bias is not None else 0.0) * scale + shift
        return self.evolve(kernel=self.kernel * np.asarray(scale)[None, None, :, None], bias=np.asarray(bias, np.float64))

    def macs(self):
        return transpose_macs(self.inputs[0].hwc, self.output.hwc, self.kernel.shape[:2], self.strides, self.pads)

    def weights(self):
        w = collections.OrderedDict(w=np.transpose(self.kernel, (2, 0, 1, 3)).reshape(-1))  # [COUT][KH][KW][CIN]
        if self.bias is not None:
            w["b"] = self.bias.reshape(-1)
        return w

    def describe(self):
        return transpose_detail(self.kernel.shape[:2], self.strides, self.pads)


@converter("Conv2DTranspose", "Conv1DTranspose")
def convert_conv_transpose(layer, inputs, ctx):
    from micronets.compiler.ops.conv2d import as_2d, check_conv_layer, check_rank

    check_conv_layer(layer)
    x = ctx.dense_input(inputs[0], layer)
    one_d = type(layer).__name__ == "Conv1DTranspose"
    check_rank(layer, x, 2 if one_d else 3)
    if set(as_2d(layer, x, layer.dilation_rate, 1)) != {1}:
        raise UnsupportedModelError(f"layer '{layer.name}' ({type(layer).__name__}) uses dilation_rate="
                                    f"{layer.dilation_rate}; only 1 is supported")
    if layer.padding not in ("valid", "same"):
        raise UnsupportedModelError(f"layer '{layer.name}' uses padding '{layer.padding}'; supported: valid, same")
    kernel = layer.get_weights()[0]
    if one_d:
        kernel = kernel[None]  # (1, k, cout, cin)
    bias = layer.get_weights()[1] if layer.use_bias else None
    strides = as_2d(layer, x, layer.strides, 1)
    out_shape = tuple(int(d) for d in ctx.output_shape)
    (h, w, _), ho, wo = x.hwc, (1 if one_d else out_shape[0]), out_shape[-2]
    pads = []
    for size, out, k, s in ((h, ho, kernel.shape[0], strides[0]), (w, wo, kernel.shape[1], strides[1])):
        # TensorFlow runs it as the gradient of the convolution from ``out`` to ``size``: only
        # where that convolution's output is ``size`` (else Keras' own call fails)
        forward = -(-out // s) if layer.padding == "same" else (out - k) // s + 1
        if forward != size:
            raise UnsupportedModelError(f"layer '{layer.name}' ({type(layer).__name__}): a {layer.padding} convolution of its "
                                        f"{out}-long output with stride {s} is {forward} long, not its input's {size} "
                                        f"(output_padding={layer.output_padding}); TensorFlow cannot run it either")
        pads.append(transpose_pads(size, out, k, s, layer.padding))
    out = ctx.new_tensor(layer.name, out_shape)
    op = ctx.add(ConvTranspose(layer.name, x, out, kernel, bias, strides, pads))
    return ctx.activation(op, keras_activation(layer.activation, layer), layer)
