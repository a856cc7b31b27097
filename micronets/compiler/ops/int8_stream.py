"""int8 layer chains run depth first (row streamed): a chain of N ops, each the only reader of
the one before, computed row by row so that no intermediate map is ever stored whole.

Each stage produces the rows of its output on demand; between two stages the producer's rows
live in a ring as tall as the consumer's window needs (a pointwise conv: 1 row; a KxK depthwise:
K rows; a global average: 1 row, summed into an int32 per channel as it arrives). Pulling the
last stage's rows in order pulls every stage's rows in order, each computed exactly once, so the
work is the chain's MACs, no more. Each stage calls the row kernels of its op (int8_conv_row /
int8_pointwise / the depthwise row helpers of int8_conv_depthwise.h.j2) with that op's own
requantisation, so the result is the layer-by-layer one bit for bit. (MCUNetV2's patch-based
inference cuts a net's first stages into spatial patches with overlapping halos, recomputed; a
row stream needs no recomputation, only rings.)

Stages: the first may be any int8 Conv2D (it reads the whole input map) or, when its input is
not the caller's (whose element type is run()'s template parameter), a pointwise conv or a
depthwise conv; later stages a pointwise conv (1x1, stride 1, unpadded) or a depthwise conv
(any stride, padding, depth multiplier; no dilation); a conv -> depthwise pair fused through a
ring (Int8ConvDepthwise) is its two stages. The chain ends in its last stage's full output map,
or in a global average (TFLite MEAN over H and W, or AVERAGE_POOL_2D whose window is the whole
map), whose per-channel sums are exact in int32 and finished with that op's own rounding.

The int8 lowering (micronets.compiler.int8._stream_if_smaller) forms a stream only where the
planned arena gets markedly smaller (``STREAM_MIN_SAVING``), over the run of a chain's ops that
saves most.

Not yet: streams are chains. Residual nets need a stream that is a graph: a ring read by two
consumers (sized by the later one's delay: a block input feeding both a 3x3 /2 conv and a 1x1 /2
shortcut keeps rows 2y .. 2y + 4, or 3 rows and a 2-row ring of the shortcut's output), an ADD
stage with two row sources, a KxK conv stage reading ring rows (int8_conv_row indexes a whole
map: row pointers, or a ring kept contiguous by moving KH - 1 rows up per row) and pooling
windows over ring rows. MLPerf's ResNet-8 streamed whole would need about 13.6 KB of rings (all
its rows are 512 B: 3 + 3 + 1 rows in stack 1, 5 + 3 + 1 in stacks 2 and 3, 1 row and 256 B of
sums at the end) against 33,312 B layer by layer; the Keras example's small Xception, streamed
per block with the 12x12x16 block output stored (2,304 B), about 6.6 KB against 11,936 B.
"""

from __future__ import annotations

import collections
from typing import List, Optional, Sequence

import numpy as np

from micronets.compiler.ops.int8_base import Int8Op
from micronets.compiler.ops.int8_conv import Int8Conv2D
from micronets.compiler.ops.int8_conv_depthwise import Int8ConvDepthwise
from micronets.compiler.ops.int8_depthwise import Int8DepthwiseConv2D
from micronets.compiler.ops.int8_mean import Int8Mean
from micronets.compiler.ops.int8_pool import Int8Pool


def _global_average(op) -> bool:
    """A mean over the whole map: MEAN over H, W, or an average pool whose one window is the map."""
    if type(op) is Int8Mean:
        return True
    return (type(op) is Int8Pool and op.average and op.output.hwc[:2] == (1, 1) and not any(op.pads)
            and op.kernel == op.inputs[0].hwc[:2])


def _row_stage(op, first: bool, input_is_int8: bool) -> bool:
    """Whether ``op`` can be a stage that produces rows (``first``: reading the chain's input map)."""
    if type(op) is Int8Conv2D:
        return first or op.pointwise
    if type(op) is Int8DepthwiseConv2D:
        return op.dilation == (1, 1) and (input_is_int8 or not first)
    return False


class Int8Stream(Int8Op):
    kind = "Stream"
    template = "kernels/int8_stream.h.j2"
    # its stages call the conv / pointwise row kernels and the depthwise row helpers
    # (the pointwise kernels before the conv ones: an im2col conv runs on the 1x1 tiles)
    requires = ("kernels/int8_params.h.j2", "kernels/int8_pointwise.h.j2", "kernels/int8_conv2d.h.j2",
                "kernels/int8_depthwise.h.j2", "kernels/int8_conv_depthwise.h.j2")

    def __init__(self, stages: Sequence[Int8Op], input_is_caller: bool = False):
        stages = tuple(stages)
        if len(stages) < 2:
            raise ValueError("a stream needs at least two stages")
        last = stages[-1]
        super().__init__(f"{stages[0].name}..{last.name}", list(stages[0].inputs), last.output, last.fused)
        self.stages = stages
        #: whether the chain's input is the caller's input (of run()'s element type T)
        self.input_is_caller = bool(input_is_caller)
        self.reduces = _global_average(last)
        rows = stages[:-1] if self.reduces else stages
        for k, op in enumerate(rows):
            if not _row_stage(op, k == 0, not input_is_caller and op.inputs[0].dtype == "int8"):
                raise ValueError(f"'{op.name}' ({op.label()}) cannot be stage {k} of a stream")
        for a, b in zip(stages, stages[1:]):
            if b.inputs[0] is not a.output or len(b.inputs) != 1:
                raise ValueError(f"'{b.name}' does not read only '{a.name}''s output")

    # ---- the stages
    @property
    def row_stages(self) -> tuple:
        """The stages that produce rows (all but a closing global average)."""
        return self.stages[:-1] if self.reduces else self.stages

    def ring_rows(self, k: int) -> int:
        """Rows of stage k's output its consumer's window needs at once (0: none, the last row
        stage writes the stream's output map)."""
        if k + 1 >= len(self.stages):
            return 0
        nxt = self.stages[k + 1]
        if type(nxt) is not Int8DepthwiseConv2D:
            return 1
        # a padded ring fills a slot with the zero point for a window row outside the map, so
        # every row of a window needs its own slot even where the map is shorter than the window
        return nxt.kh if self.padded_ring(k) else min(nxt.kh, self.stages[k].output.hwc[0])

    def padded_ring(self, k: int) -> bool:
        """Whether stage k's ring is padded (``ring_pads``): with the ``padded_rings`` option, and
        always before a depthwise whose channel count is not a multiple of 4 (a few bytes, the
        channels being few; unpadded, its last C % 4 channels run pixel by pixel with border
        tests, padded a 3x3 one reads its rows as runs of bytes: ``dw_flat``). A depthwise in
        TFLite's layout (mn_dw_rows_px) reads a padded ring's rows outside the map as rows of the
        zero point, whose taps add w * (z - z) = 0: what skipping them adds."""
        if self.stages[k].output.hwc[2] % 4 != 0:  # by shape alone: the arena never depends on the weights
            return self._feeds_dw(k)
        return self.padded_rings and self._feeds_dsp_dw(k)

    def _feeds_dw(self, k: int) -> bool:
        nxt = self.stages[k + 1] if k + 1 < len(self.row_stages) else None
        return nxt is not None and type(nxt) is Int8DepthwiseConv2D

    def _feeds_dsp_dw(self, k: int) -> bool:
        return self._feeds_dw(k) and self.stages[k + 1].dsp_layout

    def ring_pads(self, k: int) -> "tuple[int, int]":
        """Columns of zero point left and right of each row of stage k's ring (padded rings only:
        a depthwise of the DSP layout then reads every tap without a border test, as
        Int8ConvDepthwise's padded ring)."""
        if not self.padded_ring(k):
            return 0, 0
        dw = self.stages[k + 1]
        wt = self.stages[k].output.hwc[1]
        wo = dw.output.hwc[1]
        left = dw.pads[2]
        return left, max(0, (wo - 1) * dw.strides[1] - left + dw.kw - wt)

    def ring_bytes(self, k: int) -> int:
        _, w, c = self.stages[k].output.hwc
        return self.ring_rows(k) * (w + sum(self.ring_pads(k))) * c

    def dw_flat(self, k: int) -> int:
        """Depthwise stage k reads its padded ring as runs of bytes, P = lcm(4, C) / 4 groups of
        lanes (Int8ConvDepthwise.dw_flat); 0: in groups of four channels."""
        dw = self.stages[k]
        c = dw.output.hwc[2]
        if (k == 0 or not dw.dsp_layout or not self.padded_ring(k - 1) or c % 4 == 0 or dw.strides[1] != 1
                or (dw.kh, dw.kw) != (3, 3)):
            return 0
        p = int(np.lcm(4, c)) // 4
        return p if p <= 4 else 0

    #: the most channels a depthwise stage may have to take its tables from flash (``flash_table``)
    FLASH_TABLE_CHANNELS = 16

    def flash_table(self, k: int) -> bool:
        """Whether depthwise stage k reads its weights and parameters in the DSP kernels' layout
        from flash (``dsp_table``, the stage's weights "s{k}t") instead of unpacking them for
        every output row (mn_dw_unpack; a stream has no arena to spare for them, its rings being
        what it saves): a stage after the first of the DSP layout with at most
        ``FLASH_TABLE_CHANNELS`` channels. A table is 34 bytes a channel, twice the layer's own
        weights and parameters: on MicroNets' thin streams (3 to 12 channels) 1.4 kB of flash
        saves 112k of 1.47M Cortex-M4 instructions; on MLPerf's KWS DS-CNN (64 channels) the
        tables would be 8.7 kB (a third more weights) for 6%, so its stages keep unpacking."""
        dw = self.stages[k]
        return (0 < k < len(self.row_stages) and type(dw) is Int8DepthwiseConv2D and dw.dsp_layout
                and dw.output.hwc[2] <= self.FLASH_TABLE_CHANNELS)

    def dsp_table(self, k: int) -> np.ndarray:
        """Depthwise stage k's weights and parameters in the DSP kernels' layout (``flash_table``)."""
        return self.stages[k].dsp_table(self.dw_flat(k))

    def layout(self) -> "tuple[List[int], int]":
        """(ring offsets, end) in the workspace: the rings back to back, then 3 bytes; a global
        average's int32 sums after them."""
        rings, at = [], 0
        for k in range(len(self.row_stages)):
            rings.append(at)
            at += self.ring_bytes(k)
        return rings, at + 3  # a DSP kernel's word load of a row's last partial word stays inside

    def ring_offsets(self) -> List[int]:
        return self.layout()[0]

    def rings_total(self) -> int:
        return sum(self.ring_bytes(k) for k in range(len(self.row_stages)))

    @property
    def workspace_options(self) -> "tuple[tuple[bool], ...]":
        """(padded rings,), best first: what makes the DSP depthwise stages fastest, as for
        Int8ConvDepthwise; the planner keeps it where it costs no arena (the plain rings are
        always possible). Their unpacked weights are in flash (``flash_table``)."""
        if not any(self._feeds_dsp_dw(k) for k in range(len(self.row_stages))):
            return ()
        return ((True,), (False,))

    #: the planner's choice among ``workspace_options`` (None: the plain rings)
    workspace_option = None
    workspace_needed = True

    @property
    def padded_rings(self) -> bool:
        return bool(self.workspace_option and self.workspace_option[0])

    def workspace_bytes(self):
        # with a global average, its int32 sums (word aligned at run time: 3 more bytes)
        return self.layout()[1] + (3 + 4 * self.output.hwc[2] if self.reduces else 0)

    # ---- facts
    def macs(self):
        return sum(op.macs() for op in self.stages)

    def params(self):
        return sum(op.params() for op in self.stages)

    def weights_bytes_bound(self):
        return sum(op.weights_bytes_bound() for op in self.stages) + sum(
            4 * self.dsp_table(k).size for k in range(len(self.stages)) if self.flash_table(k))

    def typed_weights(self):
        w = collections.OrderedDict()
        for k, op in enumerate(self.stages):
            for suffix, array in op.typed_weights().items():
                w[f"s{k}{suffix}"] = array
            if self.flash_table(k):
                w[f"s{k}t"] = self.dsp_table(k)
        return w

    def describe(self):
        return f"{len(self.stages)} stages, workspace {self.workspace_bytes():,} B"

    def label(self):
        parts = []
        for k, op in enumerate(self.stages):
            ring = self.ring_rows(k)
            parts.append(op.label() + (f" [ring {ring} row{'s' if ring > 1 else ''}]" if ring else ""))
        return f"Stream ({self.describe()}): " + " -> ".join(parts)

    def scales(self):
        return "; ".join(op.scales() for op in self.stages)

    def stage_summary(self, workspace: Optional[int]) -> list:
        """One dict per stage for ``micronets info`` and the header: name, op, shapes, MACs,
        params, ring rows / bytes and the ring's arena offset (``workspace``: the op's)."""
        offs = self.ring_offsets()
        out = []
        for k, op in enumerate(self.stages):
            ring = self.ring_rows(k) if k < len(self.row_stages) else 0
            out.append(dict(name=op.name, op=op.kind, detail=op.label(), input_shape=list(op.inputs[0].shape),
                            output_shape=list(op.output.shape), macs=int(op.macs()), params=int(op.params()),
                            ring_rows=ring, ring_bytes=self.ring_bytes(k) if ring else 0,
                            ring_offset=(workspace + offs[k]) if ring and workspace is not None else None,
                            sums_bytes=4 * op.output.hwc[2] if k >= len(self.row_stages) else 0))
        return out

    # ---- in place
    def _last_first_rows(self) -> np.ndarray:
        """For each output row of the last row stage, the last row of stage 0's output that has
        been computed once it is stored (rows are pulled on demand, in order)."""
        rows = self.row_stages
        need = np.arange(rows[-1].output.hwc[0])
        for op in reversed(rows[1:]):  # stage k's rows -> stage k-1's
            h_in = op.inputs[0].hwc[0]
            if type(op) is Int8DepthwiseConv2D:
                need = np.minimum(need * op.strides[0] - op.pads[0] + op.kh - 1, h_in - 1)
            need = np.maximum.accumulate(np.maximum(need, 0))
        return need

    def inplace_gap(self, input_index):
        h, w, cin = self.inputs[0].hwc
        ho, wo, cout = self.output.hwc
        if self.reduces:  # one store, after every read
            return -(h * w * cin + ho * wo * cout)
        first = self.row_stages[0]
        ht = first.output.hwc[0]
        sc, pc = first.strides[0], first.pads[0]
        last_row = self._last_first_rows()
        next_in = np.clip((last_row + 1) * sc - pc, 0, h) * w * cin
        next_in = np.where(last_row >= ht - 1, np.iinfo(np.int64).max // 4, next_in)  # no more reads
        first_read_after = np.repeat(next_in, wo)[:-1]
        out_end = np.arange(1, ho * wo) * cout
        if out_end.size == 0:
            return -(h * w * cin + ho * wo * cout)
        return int(np.max(out_end - first_read_after))

    # ---- emission helpers
    @staticmethod
    def param_types(op) -> "tuple[str, str]":
        """C types of a conv / depthwise stage's bias and shift views (its ``param_layout``)."""
        layout = op.param_layout
        if layout == "packed":
            return "mn_lo24", "mn_hi8"
        return ("const int16_t*" if layout == "f16" else "const int32_t*"), "const int8_t*"

    def stage_kind(self, k: int) -> str:
        op = self.stages[k]
        if k >= len(self.row_stages):
            return "mean" if type(op) is Int8Mean else "avg"
        if type(op) is Int8DepthwiseConv2D:
            return "dw"
        return "pw" if op.pointwise else "conv"

    def input_ctype(self) -> str:
        return "T" if self.input_is_caller else "int8_t"


def stream_candidates(ops, kept, graph_input) -> List[tuple]:
    """Maximal chains (start, end) of op indices (end exclusive) that could run as one stream:
    each op the only reader of the one before (its only input, not kept whole), every op a
    stage (``Int8ConvDepthwise`` counts as its two), at least two stages."""
    readers = collections.Counter(t.storage for op in ops for t in op.inputs)

    def parts(op):
        return [op.conv, op.dw] if type(op) is Int8ConvDepthwise else [op]

    def links(a, b) -> bool:
        return (len(b.inputs) == 1 and b.inputs[0] is a.output and readers[a.output.storage] == 1
                and a.output.storage not in kept and not a.output.is_slice and a.output.dtype == "int8")

    chains, i = [], 0
    while i < len(ops):
        first = parts(ops[i])
        x = ops[i].inputs[0] if ops[i].inputs else None
        caller = x is not None and x.storage is graph_input.storage
        if (x is None or x.is_slice or len(ops[i].inputs) != 1
                or not _row_stage(first[0], True, not caller and x.dtype == "int8")
                or any(not _row_stage(op, False, True) for op in first[1:])):
            i += 1
            continue
        j = i + 1
        while j < len(ops) and links(ops[j - 1], ops[j]):
            sub = parts(ops[j])
            if all(_row_stage(op, False, True) for op in sub):
                j += 1
                continue
            if len(sub) == 1 and _global_average(sub[0]) and not sub[0].output.is_slice:
                j += 1
            break
        if j - i >= 2 and not ops[j - 1].output.is_slice:
            chains.append((i, j))
            i = j
        else:
            i += 1
    return chains


def make_stream(ops, graph_input) -> Int8Stream:
    """The stream op of a chain of graph ops (as ``stream_candidates`` found it)."""
    stages = []
    for op in ops:
        stages.extend([op.conv, op.dw] if type(op) is Int8ConvDepthwise else [op])
    return Int8Stream(stages, input_is_caller=ops[0].inputs[0].storage is graph_input.storage)
