"""int8 squeeze-excite multiply fused into the 1x1 conv that reads it (PhiNets, EfficientNet,
MobileNetV3-like nets): TFLite's MUL of an H x W x C map by a per-channel vector (the gate,
broadcast over the pixels), whose only reader is a pointwise (1x1, stride 1, unpadded) CONV_2D,
as one op whose kernel forms each tile's inputs exactly as the MUL forms its outputs (same zero
points, multiplier, shift, rounding and clamp) and runs the conv's tile on them
(templates/kernels/int8_conv_mul.h.j2): the MUL's pass over the map (about 7.1 Cortex-M4
instructions an element), its stores and the conv's reading them back disappear, and so does the
product map. Shape rule, MACs and weights are the conv's; the inputs are the map and the vector.
"""

from __future__ import annotations

import collections

from micronets.compiler.graph import is_input
from micronets.compiler.ops.int8_conv import Int8Conv2D
from micronets.compiler.ops.int8_mul import Int8Mul

#: fewest pixels a layer is fused at. Fused, even 2x2 maps run fewer instructions (MobileNetV3-
#: Small's 2x2x96 -> 48 blocks 10.7k -> 9.6k), but each fused layer instantiates its own tiles
#: (0.2 to 0.5 KB of flash): with every 2x2 block fused MobileNetV3-Small ran 0.45% fewer
#: instructions for 1.3 KB more, EfficientNet-tiny 0.18% for 0.5 KB
MIN_PIXELS = 16
#: the default of int8_conv_mul.h.j2's MN_CM_XBUF_BYTES: layers whose 2-pixel tiles' unpacked
#: products fit it are fused (at most 320 inputs)
CM_XBUF_BYTES = 1280


class Int8ConvMul(Int8Conv2D):
    kind = "MultiplyConv2D"
    template = "kernels/int8_conv_mul.h.j2"
    # mn_rq2v (the MUL's requantisation), int8_pw_tile_dsp (the conv's tiles, XB 2)
    requires = ("kernels/int8_params.h.j2", "kernels/int8_add.h.j2", "kernels/int8_pointwise.h.j2")

    def __init__(self, mul: Int8Mul, conv: Int8Conv2D):
        self.__dict__.update(conv.__dict__)  # the conv's filter, bias, requantisation, index, ident
        x, v = (mul.inputs[i] for i in mul.vec)
        self.inputs = [x, v]
        self.x_off, self.v_off = mul.offs[mul.vec[0]], mul.offs[mul.vec[1]]
        self.m_mult, self.m_shift = mul.mult, mul.shift
        self.m_rq, self.m_zs, self.m_zero = mul.vec_rq_mode, mul.vec_zs, mul.out_off
        self.m_lo, self.m_hi = mul.act_min, mul.act_max
        # both zero points -128 (a ReLU's map times a sigmoid's gate) and the plain folded
        # requantisation: every product >= 0, so the kernel skips its sign term (int8_cm_tile_dsp's PN)
        self.m_pos = self.x_off == 128 and self.v_off == 128 and self.m_rq == 4

    def describe(self):
        return f"{super().describe()} (x SE vector {self.inputs[1].shape_str()})"

    def label(self):
        return "Conv2D" + super().label()[len(self.kind):]

    def inplace_gap(self, input_index):
        # the map as the conv's own input: every tile reads all its inputs before its first store
        # (so no scratch); the vector is read by every tile
        return super().inplace_gap(0) if input_index == 0 else None

    # The workspace rule is the conv's (Int8Conv2D.workspace_options: 4-pixel tiles in the arena
    # above 128 inputs where it costs no arena): here the tiles also form the gate's halves once for
    # 4 pixels (PhiNet-10M's 8x8x197 -> 35: 594k -> 550k instructions; its seven such blocks 1.8% of
    # the net's instructions fewer, and 1.4 KB less flash since their tiles share int8_pw_tile_ws,
    # the plain workspace layers' run-time-CIN tile: 4.2 KB more with a tile each).

    @property
    def wide_scratch_pixels(self):
        return ()

    def scratch_bytes(self):
        return 0


def fusable(mul, conv, graph_inputs) -> bool:
    """Whether ``mul`` (an op) -> ``conv`` (its output's only reader) fuse as Int8ConvMul: a
    per-channel broadcast MUL of an int8 map that is not the graph's input, into a pointwise int8
    conv of at least MIN_PIXELS pixels whose 2-pixel tiles' unpacked products fit CM_XBUF_BYTES
    (a 1-pixel tile reads each weight for one pixel only: the conv would lose more than the MUL
    saves) and that is not thin (a channel at a time: no tiles)."""
    if type(mul) is not Int8Mul or mul.vec is None or type(conv) is not Int8Conv2D or not conv.pointwise:
        return False
    x, v = (mul.inputs[i] for i in mul.vec)
    cin = conv.inputs[0].hwc[2]
    return (conv.inputs[0] is mul.output and not is_input(x, graph_inputs) and x.dtype == "int8" and v.dtype == "int8"
            and x.shape == mul.output.shape and v.size == cin
            and conv.output.hwc[0] * conv.output.hwc[1] >= MIN_PIXELS
            and 4 * ((cin + 3) // 4 * 4) <= CM_XBUF_BYTES and not conv.thin_in_place
            # a 2-pixel tile's last word of one or two inputs is one LDRD (mn_pw_half), whose
            # offset reaches 1020 bytes: 256 inputs (PhiNet-20M's wider ones end in 3 or 4)
            and not (cin > 256 and cin % 4 in (1, 2)))


def fuse_conv_mul(ops, kept, graph_inputs):
    """``ops`` with each squeeze-excite MUL whose output only a pointwise conv reads (and is not in
    ``kept``) fused into that conv (``fusable``), the fused op at the conv's place."""
    readers = collections.defaultdict(list)
    for op in ops:
        for t in op.inputs:
            readers[t.storage].append(op)
    fused = {}
    for mul in ops:
        users = readers.get(mul.output.storage, []) if isinstance(mul, Int8Mul) else []
        if len(users) == 1 and mul.output.storage not in kept and fusable(mul, users[0], graph_inputs):
            fused[id(users[0])] = mul
    if not fused:
        return ops
    gone = {id(m) for m in fused.values()}
    return [Int8ConvMul(fused[id(op)], op) if id(op) in fused else op for op in ops if id(op) not in gone]
