"""int8 DepthwiseConv2D (TFLite DEPTHWISE_CONV_2D): filter [KH][KW][CIN*M], per-channel scales,
any depth multiplier M. MACs: Ho*Wo*Cout*KH*KW."""

from __future__ import annotations


import numpy as np

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

    @property
    def dsp_layout(self) -> bool:
        """Whether the DSP kernels may run the layer on weights and per-channel parameters
        unpacked at run time (the kernels' "DSP layout": doubled weights as 16-bit halves; 2 x
        folded bias, multiplier, k = -shift - 1 and the zero-point term (2 out_off + 1) << k):
        depth multiplier 1, no dilation, the short requantisation (RQ 1 or 2) and every channel's
        zero-point term small enough that adding it to the rounded product (below 2^30 in
        magnitude) cannot overflow."""
        if self.multiplier != 1 or self.dilation != (1, 1) or self.rq_mode == 0:
            return False
        k = -self.shift.astype(np.int64) - 1
        return bool(np.all(abs(2 * int(self.out_off) + 1) * (np.int64(1) << k) < 2 ** 30 - 1))

    def dsp_table(self, flat: int = 0) -> np.ndarray:
        """The DSP kernels' layout of every group of four channels (int8_dw_row_dsp's ``tab``),
        word for word what mn_dw_unpack writes at run time: per group, per tap t of the
        [KH][KW][C] filter, the words (2 w[c0], 2 w[c2]) and (2 w[c1], 2 w[c3]) as 16-bit halves
        (low, high); then the four doubled folded biases and per lane {multiplier, k = -shift - 1,
        zk = (2 out_off + 1) << k}, int32 wrapped as the C computes them. Groups: channels 4 g ..
        4 g + 3 for g < ceil(C / 4) (the last one's lanes past C empty: the kernels read a padded
        ring's last C % 4 channels as a group, and a stream's depthwise stages with such channels
        always read one), or ``flat`` = P the flat
        pattern's P groups, lane l of group v channel (4 v + l) % C (mn_dw_lanes). A lane without
        a channel holds zeros."""
        c = self.output.hwc[2]
        taps = self.filt.reshape(self.kh * self.kw, c).astype(np.int64)
        bf = np.asarray(self.folded_bias(), np.int64)
        mult = np.asarray(self.mult, np.int64).reshape(-1)
        shift = np.asarray(self.shift, np.int64).reshape(-1)
        groups = []
        for g in range(flat or (c + 3) // 4):
            ch = [(4 * g + lane) % c if flat else 4 * g + lane for lane in range(4)]
            ch = [x if flat or x < c else -1 for x in ch]

            def half(lane, t):
                return 0 if ch[lane] < 0 else (2 * int(taps[t, ch[lane]])) & 0xFFFF

            words = []
            for t in range(self.kh * self.kw):
                words.append(half(0, t) | half(2, t) << 16)
                words.append(half(1, t) | half(3, t) << 16)
            words += [2 * int(bf[x]) if x >= 0 else 0 for x in ch]
            for x in ch:
                k = int(-shift[x] - 1) if x >= 0 else 0
                words += [int(mult[x]), k, ((2 * int(self.out_off) + 1) << k) if x >= 0 else 0] if x >= 0 else [0, 0, 0]
            groups.append(words)
        table = np.array(groups, np.int64).reshape(-1) & 0xFFFFFFFF
        return np.where(table >= 1 << 31, table - (1 << 32), table).astype(np.int32)

    @property
    def workspace_options(self) -> "tuple[int, ...]":
        """What the pair-row kernel needs (its workspace bytes, best first; none: not used). It
        takes stride-1 layers of the DSP layout's kind; per group of four channels, its workspace
        holds a ring of KH input rows as pairs of 16-bit taps (16 bytes a column), the group's
        weights in pairs of columns and its parameters. The planner keeps it where it costs no
        arena (``workspace_option``; None: the one-pixel kernel). Not where almost all of each
        window is padding (``inside_share`` below 1/8: a 1x1 map, say): the pair rows run every
        tap, the one-pixel kernel only those inside the map (a 5x5 depthwise on MobileNetV3Small's
        1x1x192 map: 52.4k instructions with pair rows, 18.4k without; a 3x3 on EfficientNet's
        1x1x288: 37.8k, 22.4k). On 2x2 maps (share 4/25 for 5x5) neither wins everywhere
        (MobileNetV3Small's 2x2x96: 43.4k with, 36.4k without; EfficientNet's 2x2x144: 63.8k
        with, 97.3k without), so they keep it."""
        if self.strides != (1, 1) or not self.dsp_layout or self.inside_share() < 0.125:
            return ()
        return (self._pair_bytes(4), self._pair_bytes(2))

    def _pair_bytes(self, gw: int) -> int:
        """The pair-row kernel's workspace for groups of ``gw`` (4 or 2) channels: the ring of KH
        pair rows (4 gw bytes a column), the group's weights in pairs of columns, its parameters
        (16 words) and alignment. The second option, groups of two (half the ring and weights),
        is what the planner falls back to where the first would grow the arena: PhiNet-20M's
        block 14 (5x5 on 8x8x299, by the arena peak) has room for a workspace of 700 bytes but
        not of 800; the first option needs 1,267, the second 667 (block 15, 8x8x308, has room for
        none: int8_depthwise_hr runs it in its one-pixel scratch, ``halves_here``; on these rows of
        8 pixels it also runs block 14 and the rest in the pair rows' workspace, faster)."""
        wo = self.output.hwc[1]
        kp = (self.kw + 1) // 2
        return self.kh * (wo + 2 * kp - 2) * 4 * gw + self.kh * kp * 4 * gw + 64 + 3

    def pair_width(self) -> int:
        """Channels a group of the pair-row kernel takes under the planned workspace: 4 (the
        first option) or 2 (the second)."""
        return 2 if self.workspace_option == self._pair_bytes(2) else 4

    def inside_share(self) -> float:
        """Share of the taps of all output windows that fall inside the input map (1: no
        padding reached; 4 / 25 for a 5x5 window on a 2x2 map)."""
        share = 1.0
        for size, out, k, stride, pad in ((self.inputs[0].hwc[0], self.output.hwc[0], self.kh, self.strides[0], self.pads[0]),
                                          (self.inputs[0].hwc[1], self.output.hwc[1], self.kw, self.strides[1], self.pads[2])):
            start = np.arange(out) * stride - pad  # first input index of each output's window
            inside = np.clip(start + k, 0, size) - np.clip(start, 0, size)
            share *= float(inside.sum()) / (out * k)
        return share

    #: the workspace the planner gave (None: none)
    workspace_option = None

    def workspace_bytes(self):
        return self.workspace_option or 0

    def pixels2_here(self, placed) -> bool:
        """Whether the pixel-pair kernel (int8_depthwise_px2) runs where the pair rows do not (nor,
        where it checks first, int8_depthwise_hr in the scratch: ``halves_here``): stride
        1, depth multiplier 1, no dilation, an int8 input of at least four channels, output rows of
        at least two pixels (on rows of one, a Conv1D's H x 1 maps, each row's setup serves a single
        pixel: MLPerf's streaming wake word 5x1 layer on 28x1x128 took 154k instructions, the
        one-pixel kernel 101k), and the output either apart from the input or whole pixels before it
        (it stores a group of channels of two output pixels once both are summed, with no scratch:
        channel c of output pixel p lands on channel c of input pixel p - k, which no pixel after p
        reads, as the planner's gap for the one-pixel kernel ensures)."""
        c = self.inputs[0].hwc[2]
        if (self.pairs_here(placed) or self.multiplier != 1 or self.strides != (1, 1) or self.dilation != (1, 1)
                or c < 4 or self.output.hwc[1] < 2 or self.inputs[0].dtype != "int8"
                or not placed.plan.in_arena(self.inputs[0])):
            return False
        if not placed.overlaps_input():
            return True
        gap = placed.plan.offset(self.inputs[0]) - placed.plan.offset(self.output)
        return gap >= 0 and gap % c == 0

    def halves_bytes(self) -> int:
        """What int8_depthwise_hr needs of the scratch: the input map's H rows of WO + 2 KP 16-bit
        halves, KH KP pair taps and alignment."""
        kp = (self.kw + 1) // 2
        return 2 * self.inputs[0].hwc[0] * (self.output.hwc[1] + 2 * kp) + 4 * self.kh * kp + 3

    def halves_here(self, placed) -> bool:
        """Whether int8_depthwise_hr runs (pairs of taps through SMLAD, channel by channel, the
        channel's map as 16-bit halves in a buffer, ``halves_buffer``)."""
        return self.halves_buffer(placed) is not None

    def halves_buffer(self, placed):
        """Where int8_depthwise_hr keeps its buffer (``halves_bytes``): "work" (the pair rows'
        workspace, on output rows of 8 k, 8 k + 7 or 8 k + 6 pixels, where its assembly blocks beat
        the pair rows: PhiNet-20M's and PhiNet-10M's 5x5 layers on 8x8 maps, 1.67-1.84 Cortex-M4
        instructions a MAC with the pair rows, 1.56 with the halves; PhiNet-5M's on 7x7, a block
        of eight storing seven a row, 1.80 -> 1.74; PhiNet-2M's on 6x6, a block of six, 1.90 ->
        1.76. Not on rows that leave pixels to its C++ form: on PhiNet-2M's 6x6, 2.10 with 4 + 2
        pixels, 1.99 with a block of eight storing six), "scratch" (in place, where
        the pixel-pair kernel would run without a workspace and the one-pixel scratch holds it:
        PhiNet-20M's block 15, 5x5 on 8x8x308 at the arena's peak, 287 of its 308 bytes; 1.31M
        instructions with the pixel pairs, 2.66 a MAC, 766k with the halves, 1.56), or None.
        Only for windows three pairs of taps wide (5 or 6 columns: the assembly's blocks), a DSP
        layout and windows not almost all padding."""
        if (self.kh < 1 or (self.kw + 1) // 2 != 3 or not self.dsp_layout or self.inside_share() < 0.125
                or self.inputs[0].dtype != "int8" or not placed.plan.in_arena(self.inputs[0])):
            return None
        if self.pairs_here(placed):
            wo = self.output.hwc[1]
            ok = wo % 8 in (0, 6, 7) and self.workspace_option >= self.halves_bytes()
            return "work" if ok else None
        if (not self.pixels2_here(placed) or not placed.overlaps_input() or placed.source not in placed.plan.scratch
                or self.scratch_bytes() < self.halves_bytes()):
            return None
        return "scratch"

    def rows_here(self, placed) -> bool:
        """Whether int8_depthwise_rows runs: strides above 1 (the pair rows, the halves and the
        pixel pairs take stride 1), the DSP layout, windows up to 7x7 (a group's layout on the
        stack: 456 bytes for 7x7), an int8 input of at least four channels in the arena (the
        model's input may be uint8 or float), and the output either apart from
        the input or where its order, a group of four channels at a time over every row, reads
        no input it has overwritten (``groups_in_place``)."""
        x = self.inputs[0]
        if (self.strides == (1, 1) or not self.dsp_layout or x.dtype != "int8" or x.hwc[2] < 4
                or self.kh * self.kw > 49 or not placed.plan.in_arena(x)):
            return False
        return not placed.overlaps_input() or self.groups_in_place(placed.plan.offset(x) - placed.plan.offset(self.output))

    def groups_in_place(self, gap: int) -> bool:
        """Whether int8_depthwise_rows may run with its output ``gap`` bytes before its input
        (negative: after it), the two overlapping. Only whole pixels apart (gap = k C): channel c
        of output pixel p then lands on channel c of input pixel p - k, which only the group of
        channel c reads, so one channel's order decides, exactly: every row in turn, a row's
        pixels in pairs (both windows read, then both stored; the last C % 4 channels a pixel at
        a time), no window reading an input pixel already overwritten. The stride-2 layers of
        EfficientNet and MobileNetV2 / V3 pass, in place at one offset (k = 0): output pixel p
        lands on input pixel p, which no window still to run reads."""
        h, w, c = self.inputs[0].hwc
        ho, wo, _ = self.output.hwc
        (sh, sw), pt, pl = self.strides, self.pads[0], self.pads[2]
        if gap % c:
            return False
        k = gap // c

        def reads(oy, ox):  # the input pixels output pixel (oy, ox) reads
            return [iy * w + ix for iy in range(max(oy * sh - pt, 0), min(oy * sh - pt + self.kh, h))
                    for ix in range(max(ox * sw - pl, 0), min(ox * sw - pl + self.kw, w))]

        def clean(step):  # one channel's order, blocks of `step` pixels
            written = set()
            for oy in range(ho):
                for ox in range(0, wo, step):
                    block = range(ox, min(ox + step, wo))
                    if any(q in written for x in block for q in reads(oy, x)):
                        return False
                    written.update(oy * wo + x - k for x in block)
            return True

        return all(clean(step) for step in ((2, 1) if c % 4 else (2,)))

    def pairs_here(self, placed) -> bool:
        """Whether the pair-row kernel runs as planned: it has its workspace, and the output
        either does not overlap the input or starts k >= 0 whole pixels before it (the kernel
        takes the input into its ring a group of channels and a row at a time, then writes those
        channels of a row of output pixels: channel c of output pixel p lands on channel c of
        input pixel p - k, in a row the ring already holds or has passed)."""
        if not self.workspace_option:
            return False
        if not placed.overlaps_input():
            return True
        gap = placed.plan.offset(self.inputs[0]) - placed.plan.offset(self.output)
        return gap >= 0 and gap % self.inputs[0].hwc[2] == 0
