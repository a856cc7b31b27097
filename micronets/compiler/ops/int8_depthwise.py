"""int8 DepthwiseConv2D (TFLite DEPTHWISE_CONV_2D): filter [KH][KW][CIN*M], per-channel scales,
any depth multiplier M. MACs: Ho*Wo*Cout*KH*KW."""

from __future__ import annotations

from micronets.compiler.ops.int8_conv import Int8Windowed


class Int8DepthwiseConv2D(Int8Windowed):
    kind = "DepthwiseConv2D"
    template = "kernels/int8_depthwise.h.j2"
    channel_axis = -1

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cin, cout = self.inputs[0].hwc[2], self.output.hwc[2]
        if cout % cin:
            raise ValueError(f"depthwise '{self.name}': {cout} output channels for {cin} input channels")
        self.multiplier = cout // cin

    def describe(self):
        text = super().describe()
        return text + (f" x{self.multiplier}" if self.multiplier != 1 else "")

    def macs(self):
        ho, wo, cout = self.output.hwc
        return ho * wo * cout * self.kh * self.kw
