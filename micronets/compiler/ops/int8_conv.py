"""int8 Conv2D (TFLite CONV_2D): per-output-channel int8 filter [COUT][KH][KW][CIN], int32 bias,
fused ReLU/ReLU6 as the output clamp. MACs: Ho*Wo*Cout*KH*KW*Cin."""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.ops.base import per_pixel_gap, spatial_detail
from micronets.compiler.ops.int8_base import (Int8Op, c_requant_bias, c_requant_shift, c_requant_types, conv_real_scales,
                                              fold_input_offset, param_layout, per_channel_multipliers, requant_arrays,
                                              requant_mode)


class Int8Windowed(Int8Op):
    """What int8 Conv2D and DepthwiseConv2D share: filter, bias, strides, pads, dilation, the
    per-channel requantisation (its storage chosen per layer: :attr:`param_layout`) and the
    one-pixel-scratch in-place rule."""

    requires = ("kernels/int8_params.h.j2",)
    #: the filter's output-channel axis: [COUT][KH][KW][CIN] for Conv2D, [1][KH][KW][COUT] for
    #: DepthwiseConv2D
    channel_axis = 0

    def __init__(self, name, x, out, filt, bias, filter_scales, strides, pads, dilation=(1, 1), fused=0):
        super().__init__(name, [x], out, fused)
        self.filt = np.asarray(filt, np.int8)
        self.bias = None if bias is None else np.asarray(bias, np.int32).reshape(-1)
        self.strides = tuple(int(s) for s in strides)
        self.pads = tuple(int(p) for p in pads)  # top, bottom, left, right
        self.dilation = tuple(int(d) for d in dilation)
        cout = out.hwc[2]
        self.filter_scales = np.asarray(filter_scales, np.float32).reshape(-1)
        self.mult, self.shift = per_channel_multipliers(conv_real_scales(x.quant.scale, self.filter_scales, out.quant.scale, cout))
        self.in_off = -x.quant.zero_point
        self.out_off = out.quant.zero_point

    def describe(self):
        text = spatial_detail((self.kh, self.kw), self.strides, self.pads)
        if self.dilation != (1, 1):
            text += f" dilation {self.dilation[0]},{self.dilation[1]}"
        return text

    @property
    def kh(self):
        return int(self.filt.shape[1])

    @property
    def kw(self):
        return int(self.filt.shape[2])

    def _taps(self) -> np.ndarray:
        """The filter as int64 [output channel][tap]."""
        f = np.moveaxis(self.filt, self.channel_axis, 0)
        return f.reshape(f.shape[0], -1).astype(np.int64)

    def filter_sums(self) -> np.ndarray:
        """Sum of each output channel's filter taps (int64)."""
        return self._taps().sum(axis=1)

    def filter_abs_sums(self) -> np.ndarray:
        """Sum of the magnitudes of each output channel's filter taps (int64)."""
        return np.abs(self._taps()).sum(axis=1)

    @property
    def rq_mode(self) -> int:
        """The requantisation the kernel may use (``requant_mode``)."""
        return requant_mode(self.bias, self.filter_abs_sums(), self.shift, self.act_min, self.act_max)

    def folded_bias(self) -> np.ndarray:
        """bias + in_off * sum(w) per output channel: the input offset folded in for every tap
        (exact in integers; the kernels take a skipped tap's in_off * w back out)."""
        return fold_input_offset(self.name, self.bias, self.in_off, self.filter_sums(), self.output.hwc[2])

    @property
    def param_layout(self) -> str:
        """How the per-channel bias and shift are stored (``int8_base.param_layout``)."""
        return param_layout(self.folded_bias())

    #: kernels with a DSP form for one input channel (see Int8Conv2D.word_rows)
    word_rows = False

    def filter_layout(self) -> np.ndarray:
        """The filter as the kernels read it (the plain [COUT][KH][KW][CIN] here)."""
        return self.filt.reshape(-1)

    def typed_weights(self):
        w = collections.OrderedDict(w=self.filter_layout())
        w.update(requant_arrays(self.folded_bias(), self.mult, self.shift))
        return w

    def weights_bytes_bound(self) -> int:
        return int(self.filt.size + 9 * self.output.hwc[2])  # int32 bias + int32 multiplier + int8 shift

    def c_bias(self, stem: str) -> str:
        """C expression the kernel indexes for the folded biases (``stem``: the weights' C name
        without its suffix, e.g. 'L3_' or 'L3_c')."""
        return c_requant_bias(self.param_layout, stem)

    def c_shift(self, stem: str) -> str:
        """C expression the kernel indexes for the requantisation shifts."""
        return c_requant_shift(self.param_layout, stem)

    def c_param_types(self) -> "tuple[str, str]":
        """C types of ``c_bias`` and ``c_shift`` (a row kernel's template arguments)."""
        return c_requant_types(self.param_layout)

    def params(self):
        return int(self.filt.size + (0 if self.bias is None else self.bias.size))

    def inplace_gap(self, input_index):
        return per_pixel_gap(self.inputs[0].hwc, self.output.hwc, self.strides, self.pads, itemsize=1)

    def transposed(self, x, out):
        """This layer with rows and columns swapped, reading ``x`` and writing ``out`` (views of
        its tensors with H and W swapped): the same outputs, for maps one row tall, whose bytes a
        W x 1 map shares (a row stream then runs along W; ``int8_stream.columns_as_rows``)."""
        t, b, l, r = self.pads
        return self.evolve(inputs=[x], output=out, filt=np.swapaxes(self.filt, 1, 2), strides=self.strides[::-1],
                           pads=(l, r, t, b), dilation=self.dilation[::-1])

    #: output pixels the in-place scratch holds (see ``Int8Conv2D.wide_scratch_pixels``)
    scratch_pixels = 1

    def scratch_bytes(self):
        return self.scratch_pixels * self.output.hwc[2]


#: the defaults of int8_pointwise.h.j2's MN_PW_XBUF_BYTES (a thin run's unpacked inputs) and
#: MN_PW_THIN_MAX (the most inputs a 1x1 runs a channel at a time with the assembly). The plan
#: only uses them to place whole thin runs and to offer a layer thin pixels; a build that
#: overrides either stays correct (every run in [d0, dt) is safe whatever its length, and the
#: kernel picks runs or tiles there), it may only run a second, shorter run instance or tiles.
PW_XBUF_BYTES = 1024
PW_THIN_MAX = 16


def direct_pixels(hw: int, cin: int, cout: int, gap: int, tile: int = 4, align: int = 1,
                  thin: bool = True) -> "tuple[int, int, int]":
    """(d0, dt, d1) for a 1x1 conv of ``hw`` pixels in place, its input ``gap`` bytes after its
    output's start (before it where negative): [d0, d1) are the pixels whose tiles (at most
    ``tile`` pixels, any position) may be stored straight to the output, because the stores land
    before every input byte not yet read (the tile's own included: the portable tile reads its
    inputs again for each channel); a tile [s, e) is so when COUT e <= gap + CIN s. An expansion
    (COUT > CIN) meets it for the tiles of a prefix, a projection for a suffix; the other pixels go
    through the scratch, which holds ``align`` pixels: the split falls on a multiple of it, so the
    scratch's tiles stay whole. [d0, dt) may also run as a thin layer's runs (a channel at a time
    over a run of pixels whose inputs are unpacked before any of its stores): a run ending at e is
    safe where COUT e <= gap + CIN e, which every e in (d0, d1] meets (the tile ending at e does),
    so dt is d1 or, where that is not a whole number of runs, the last whole one's end; the kernel
    picks runs or tiles for [d0, dt), tiles for [dt, d1); dt = d0 where the layer is not ``thin``
    (Int8Conv2D.thin_in_place). A projection whose input starts before its output (gap < 0)
    splits only where it is thin: PhiNet-10M's 32x32 12 -> 11 went whole through the scratch, 56k
    Cortex-M4 instructions more; wide ones (PhiNet-20M's 218 -> 31 and the like) took 13k more
    split into direct tiles than through the scratch, and 1.6 KB more flash."""
    if gap < 0 and (cout >= cin or not thin):
        return 0, 0, 0
    if cout > cin:  # every tile ending at e <= d1: COUT e - CIN s <= (COUT - CIN) d1 + CIN tile
        d1 = max(0, min(hw, (gap - cin * tile) // (cout - cin)))
        d1 -= d1 % align
        d0 = 0
    elif cout < cin:  # every tile starting at s >= d0: COUT e - CIN s <= COUT tile - (CIN - COUT) d0
        d0 = max(0, -(-(cout * tile - gap) // (cin - cout)))
        d0 = min(hw, d0 + (-d0) % align)
        d1 = hw
    else:
        d0, d1 = 0, (hw if cout * tile <= gap else 0)
    # whole runs only (the thin kernel's MN_PW_XBUF_BYTES / (8 K) pixels a run; a shorter last one
    # is a second instance of it, 0.9 KB for PhiNet-10M's 12 -> 11): the pixels left run as tiles
    run = max(1, PW_XBUF_BYTES // (8 * ((cin + 3) // 4)))
    # a projection: rather a few more pixels through the scratch (d0 on to a whole number of runs
    # after it: PhiNet-10M's 12 -> 11 from pixel 100, not 48, 2.4k instructions more, 0.7 KB less)
    if thin and cout < cin and d1 - d0 > run:
        d0 = next((d for d in range(d0, min(hw - run, d0 + run * align) + 1, align) if (hw - d) % run == 0), d0)
    dt = d0 if not thin else d1 if d1 - d0 <= run else d0 + (d1 - d0) // run * run
    return d0, dt, d1


#: the fewest pixels of a 1x1 layer whose tiles of 4 take an arena workspace (Int8Conv2D.
#: workspace_options). Fewer gain too, a layer at a time, but little against the firmware's growth:
#: MLPerf's VWW 256 -> 256 on 3x3, 1.21 -> 1.13 Cortex-M4 instructions a MAC (-47k), the whole net
#: -11.8k (the code around it compiled otherwise) for 360 B of flash
PW_WS_MIN_PIXELS = 16


#: the most inputs a pixel (KH KW CIN) of a conv the im2col kernel runs: its patch of one to four
#: pixels' windows lives on the stack (templates/kernels/int8_conv2d.h.j2)
IM2COL_MAX = 1024


class Int8Conv2D(Int8Windowed):
    kind = "Conv2D"
    # the im2col form runs the pointwise kernel's tiles over each window (int8_pw_tile)
    requires = ("kernels/int8_params.h.j2", "kernels/int8_pointwise.h.j2")

    @property
    def pointwise(self) -> bool:
        """1x1, stride 1, unpadded: the dot-product kernel (SMLAD on Cortex-M DSP cores)."""
        return (self.kh, self.kw) == (1, 1) and self.strides == (1, 1) and not any(self.pads)

    @property
    def template(self):
        return "kernels/int8_pointwise.h.j2" if self.pointwise else "kernels/int8_conv2d.h.j2"

    @property
    def wide_scratch_pixels(self):
        """The pointwise kernel runs four pixels at a time (then two), in place too with a four- or
        two-pixel scratch; the planner gives it one only where the arena does not grow."""
        return (4, 2) if self.pointwise else ()

    @property
    def workspace_options(self) -> "tuple[int, ...]":
        """What the pointwise kernel's tiles of 4 pixels need (none: not used) where the stack
        holds 2 pixels' unpacked inputs at most (more than PW_XBUF_BYTES / 8 = 128 inputs): 2 x 4
        x CP bytes for them in the arena (CP: CIN rounded up to 4) and 3 to align them to a word
        (int8_pointwise_ws). The planner gives it only where the arena does not grow; without it,
        tiles of 2 pixels (up to 256 inputs, beyond that unpacked in chunks). Cortex-M4
        instructions a MAC (PhiNets' projections before their squeeze-excite MULs were fused into
        them, Int8ConvMul, which takes this rule for its own tiles): PhiNet-20M's 218 to 251 -> 31
        on 8x8, 1.21 -> 1.11; 259 to 308 -> 31, 1.23 -> 1.09; PhiNet-10M's 179 to 197 -> 31, 1.21
        -> 1.12. From one tile (200 and 242
        -> 31 on 2x2, 1.21 -> 1.10; on 3x3, one pixel left, 1.30 -> 1.20) and however wide (400,
        512 and 330 -> 31 on 6x6: 1.24, 1.21, 1.23 -> 1.08, 1.07, 1.09), at PW_WS_MIN_PIXELS or more."""
        cin = self.inputs[0].hwc[2]
        hw = self.output.hwc[0] * self.output.hwc[1]
        if not self.pointwise or cin <= PW_XBUF_BYTES // 8 or hw < PW_WS_MIN_PIXELS:
            return ()
        return (8 * ((cin + 3) // 4 * 4) + 3,)

    #: the workspace the planner gave (None: none)
    workspace_option = None

    def workspace_bytes(self):
        return self.workspace_option or 0

    def workspace_here(self, placed) -> bool:
        """Whether the 4-pixel tiles run in the planned workspace: it was given and the input is
        in the arena (a first layer reads the caller's input pixel by pixel)."""
        return bool(self.workspace_option) and placed.plan.in_arena(self.inputs[0])

    def direct_pixels(self, gap: int) -> "tuple[int, int, int]":
        """In place, with the input ``gap`` bytes after the output's start: which pixels the
        pointwise kernel stores straight to the output (``direct_pixels`` below)."""
        return direct_pixels(self.output.hwc[0] * self.output.hwc[1], self.inputs[0].hwc[2], self.output.hwc[2], gap,
                             align=self.scratch_pixels, thin=self.thin_in_place)

    @property
    def thin_in_place(self) -> bool:
        """Whether the pointwise kernel may run this layer a channel at a time (mn_pw_thin_when:
        the short requantisation, at most 8 inputs, or 9 to 16 at RQ 2 with its assembly), so an
        in-place split gives it the pixels its runs may store straight to the output."""
        cin = self.inputs[0].hwc[2]
        return self.rq_mode != 0 and (cin <= 8 or (self.rq_mode == 2 and cin <= PW_THIN_MAX))

    def scratch_bytes(self):
        """None for an im2col conv: in place, its tiles read only their patch (a copy of their
        windows, on the stack) once it is built, so each pixel is stored straight to the output."""
        return 0 if self.im2col else super().scratch_bytes()

    def filter_layout(self) -> np.ndarray:
        if self.pointwise or self.im2col:
            return pointwise_weight_layout(self.filt.reshape(self.filt.shape[0], -1))
        if self.word_rows:
            return self.word_row_weights()
        return super().filter_layout()

    def weights_bytes_bound(self) -> int:
        inputs = self.kh * self.kw * int(self.filt.shape[3])
        pad = 3 if (self.pointwise or self.im2col) and inputs % 4 else 0  # pointwise_weight_layout's spare bytes
        return super().weights_bytes_bound() + pad + (self.word_row_weights().size - self.filt.size if self.word_rows else 0)

    @property
    def im2col(self) -> bool:
        """Neither 1x1 nor word rows, at most IM2COL_MAX inputs a pixel: each output pixel's window
        is gathered into one int8 vector of KH KW CIN inputs (the filter's order; the input's zero
        point where a tap falls outside it) and the pointwise kernel's tiles run over it, so the
        filter is stored as pointwise_weight_layout of [COUT][KH KW CIN]."""
        return (not self.pointwise and not self.word_rows
                and self.kh * self.kw * int(self.filt.shape[3]) <= IM2COL_MAX)

    @property
    def kernel_form(self) -> int:
        """The conv kernels' form (their WR template argument): 0 plain taps, 1 word rows, 2 im2col."""
        return 1 if self.word_rows else 2 if self.im2col else 0

    @property
    def word_rows(self) -> bool:
        """One input channel, kernel rows at most 4 wide, no dilation: the filter is stored with
        each kernel row as one word of four int8 taps (``word_row_weights``; the kernels' row
        stride ``row_stride`` is 4), so on DSP cores a row of a window is one word load of the
        input and one of the weights, two SXTB16 each (taps 0, 2 and 1, 3), two SMLAD."""
        return int(self.filt.shape[3]) == 1 and self.kw <= 4 and self.dilation == (1, 1) and not self.pointwise

    @property
    def row_stride(self) -> int:
        """Taps from one kernel row of the stored filter to the next (4 with ``word_rows``)."""
        return 4 if self.word_rows else self.kw

    def word_row_weights(self) -> np.ndarray:
        """The filter [COUT][KH][4] (int8, zero past each row's KW taps): the plain filter
        rearranged, not a copy next to it (every kernel, DSP or portable, reads this one)."""
        cout = self.filt.shape[0]
        taps = np.zeros((cout, self.kh, 4), np.int8)
        taps[:, :, :self.kw] = self.filt.reshape(cout, self.kh, self.kw)
        return taps.reshape(-1)

    def macs(self):
        ho, wo, cout = self.output.hwc
        return ho * wo * cout * self.kh * self.kw * int(self.filt.shape[3])


def pointwise_weight_layout(f: np.ndarray) -> np.ndarray:
    """A 1x1 conv's filter [COUT][CIN] as the pointwise kernels read it (templates/kernels/
    int8_pointwise.h.j2): output channels in pairs (c0, c1) of 2 CIN bytes each; per group of 4
    inputs i..i+3 two words [c0[i], c1[i], c0[i+2], c1[i+2]] and [c0[i+1], c1[i+1], c0[i+3],
    c1[i+3]], so SXTB16 of a word gives c0's two weights and SXTB16 ROR 8 c1's, each the pair of an
    input word's SXTB16 half; the R = CIN % 4 inputs left over as [c0, c1] byte pairs, inputs
    i, i+2 then i+1 (the kernels read the two words at 8 (CIN / 4) and 2 (R - 1) bytes on: the
    bytes they see for inputs past CIN meet zero-extended inputs). An odd last channel keeps its
    plain row; 3 spare zero bytes end the array where R > 0 (the last word loads read past it).
    Same size as the filter otherwise."""
    f = np.asarray(f, np.int8)
    cout, cin = f.shape
    kf, r = cin // 4, cin % 4
    pairs = cout // 2
    g = f[:2 * pairs]
    # full words: [pair][c][k][r >> 1][r & 1] -> [pair][k][r & 1][r >> 1][c]
    body = g[:, :4 * kf].reshape(pairs, 2, kf, 2, 2).transpose(0, 2, 4, 3, 1).reshape(pairs, 8 * kf)
    tail = g[:, 4 * kf:].reshape(pairs, 2, r)[:, :, [0, 2, 1][:r] if r == 3 else list(range(r))]
    tail = tail.transpose(0, 2, 1).reshape(pairs, 2 * r)
    parts = [np.concatenate([body, tail], axis=1).reshape(-1), f[2 * pairs:].reshape(-1)]
    if r:
        parts.append(np.zeros(3, np.int8))
    return np.concatenate(parts)
