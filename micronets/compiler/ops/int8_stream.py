"""int8 layer chains run depth first (row streamed): a chain of N ops, each the only reader of
the one before, computed row by row so that no intermediate map is ever stored whole.

Each stage produces the rows of its output on demand; between two stages the producer's rows
live in a ring as tall as the consumer's window needs (a pointwise conv: 1 row; a KxK depthwise
or pooling: K rows; a global average: 1 row, summed into an int32 per channel as it arrives). Pulling the
last stage's rows in order pulls every stage's rows in order, each computed exactly once, so the
work is the chain's MACs, no more. Each stage calls the row kernels of its op (int8_conv_row /
int8_pointwise / the depthwise row helpers of int8_conv_depthwise.h.j2 / int8_pool's pixel) with that op's own
requantisation, so the result is the layer-by-layer one bit for bit. (MCUNetV2's patch-based
inference cuts a net's first stages into spatial patches with overlapping halos, recomputed; a
row stream needs no recomputation, only rings.)

Stages: the first may be any int8 Conv2D (it reads the whole input map) or, when its input is
not the caller's (whose element type is run()'s template parameter), a pointwise conv or a
depthwise conv (of the caller's input, a depthwise conv of one input channel, as the conv it
is: micro_speech's first layer); later stages a pointwise conv (1x1, stride 1, unpadded), a depthwise conv
(any stride, padding, depth multiplier; no dilation) or a max / average pooling (any window,
stride and padding: Conv -> MaxPool, the classic CNN's pair, never stores the conv's map, e.g.
26x26x32 in Keras' MNIST convnet); a conv -> depthwise pair fused through a
ring (Int8ConvDepthwise) is its two stages. The chain ends in its last stage's full output map,
or in a closing stage (``Int8Op.closes_rows``) that reads the last rows as they arrive into int32
accumulators (exact in any order) and finishes them with its op's own requantisation: a global
average (TFLite MEAN over H and W, or AVERAGE_POOL_2D whose window is the whole map: per-channel
sums), a MEAN over the streamed axis (a Conv1D net's global average over L: a sum for each of a
row's bytes), or a FULLY_CONNECTED layer over the flattened map (row y its inputs [y W C, (y + 1)
W C): one accumulator per output). The closer is the op's, in its kernel's template.

The int8 lowering (micronets.compiler.int8._stream_if_smaller) forms a stream only where the
planned arena gets markedly smaller (``STREAM_MIN_SAVING``), over the run of a chain's ops that
saves most.

Streams here are chains. Residual nets stream as a graph (micronets/compiler/ops/int8_branch.py,
Int8Branch): a block input read by two stages, ADD stages of two row sources, KxK convs over
line buffers kept contiguous; MLPerf's ResNet-8 streamed whole plans 11,078 B against 33,312 B
layer by layer, the Keras example's small Xception 6,208 B against 11,936 B. Where a chain's run
and a graph's both save enough, the lowering keeps the one that plans smaller.
"""

from __future__ import annotations

import collections
from typing import List, Optional, Sequence

import numpy as np

from micronets.compiler.graph import Tensor, is_input
from micronets.compiler.ops.int8_base import Int8Op
from micronets.compiler.ops.int8_conv import Int8Conv2D
from micronets.compiler.ops.int8_conv_depthwise import Int8ConvDepthwise
from micronets.compiler.ops.int8_depthwise import Int8DepthwiseConv2D
from micronets.compiler.ops.int8_pool import Int8Pool


def _closes(op) -> bool:
    """Whether ``op`` can be a stream's closing stage (``Int8Op.closes_rows``): a global average
    (MEAN over H and W, an average pooling whose one window is the map), a MEAN over the map's
    rows, a fully connected layer over the flattened map."""
    return op.closes_rows()


def _row_stage(op, first: bool, input_is_int8: bool) -> bool:
    """Whether ``op`` can be a stage that produces rows (``first``: reading the chain's input map)."""
    if type(op) is Int8Conv2D:
        return first or op.pointwise
    if type(op) is Int8DepthwiseConv2D:
        return op.dilation == (1, 1) and (input_is_int8 or not first)
    if type(op) is Int8Pool:  # a pooling window over ring rows (a global average closes a stream instead)
        return not first and not _closes(op)
    return False


def _window(op) -> Optional["tuple[int, int, int]"]:
    """(KH, stride, top padding) of a stage that reads a window of rows, None for one that reads a
    row (a pointwise conv)."""
    if type(op) is Int8DepthwiseConv2D:
        return op.kh, op.strides[0], op.pads[0]
    if type(op) is Int8Pool:
        return op.kernel[0], op.strides[0], op.pads[0]
    return None


class Unstreamable(ValueError):
    """These ops cannot run as one stream (a stage of a kind or order the stream's rows cannot
    carry); the lowering tries the next candidate run."""


class StagedOp(Int8Op):
    """What an op made of layers run as its stages (Int8Stream, Int8Branch) reports of them: the
    sums of their MACs and parameters, their weights (stage k's under ``s{k}``, with the op's own
    arrays for it: ``stage_arrays``) and their scales."""

    stages: tuple = ()
    #: whether the last stage closes the stream (``Int8Op.closes_rows``: it reads its producer's
    #: rows as they arrive into int32 accumulators)
    reduces = False
    #: the kernels the stages call (a closing stage's template comes with it: ``requires``)
    kernels: tuple = ()

    @property
    def requires(self) -> tuple:
        """The stages' kernels, and the closing stage's kernel template (its ``closer``)."""
        last = self.stages[-1]
        return self.kernels + ((*last.requires, last.template) if self.reduces else ())

    @property
    def row_stages(self) -> tuple:
        """The stages that produce rows (all but a closing one)."""
        return self.stages[:-1] if self.reduces else self.stages

    def stage_arrays(self, k: int) -> dict:
        """Arrays the op stores for stage k besides the stage's own weights (suffix -> array)."""
        return {}

    def stage_kind(self, k: int) -> str:
        """What stage k is to the templates: "conv", "pw", "dw", "pool", or the closing stage's
        ``close_kind`` ("mean", "avg", "fc")."""
        op = self.stages[k]
        if k >= len(self.row_stages):
            return op.close_kind
        if type(op) is Int8DepthwiseConv2D:
            return "dw"
        if type(op) is Int8Pool:
            return "pool"
        return "pw" if op.pointwise else "conv"

    def macs(self):
        return sum(op.macs() for op in self.stages)

    def params(self):
        return sum(op.params() for op in self.stages)

    def weights_bytes_bound(self):
        return sum(op.weights_bytes_bound() + sum(a.nbytes for a in self.stage_arrays(k).values())
                   for k, op in enumerate(self.stages))

    def typed_weights(self):
        w = collections.OrderedDict()
        for k, op in enumerate(self.stages):
            for suffix, array in op.typed_weights().items():
                w[f"s{k}{suffix}"] = array
            for suffix, array in self.stage_arrays(k).items():
                w[f"s{k}{suffix}"] = array
        return w

    def describe(self):
        return f"{len(self.stages)} stages, workspace {self.workspace_bytes():,} B"

    def scales(self):
        return "; ".join(op.scales() for op in self.stages)


class Int8Stream(StagedOp):
    kind = "Stream"
    template = "kernels/int8_stream.h.j2"
    # its stages call the conv / pointwise row kernels and the depthwise row helpers
    # (the pointwise kernels before the conv ones: an im2col conv runs on the 1x1 tiles)
    kernels = ("kernels/int8_params.h.j2", "kernels/int8_pointwise.h.j2", "kernels/int8_conv2d.h.j2",
               "kernels/int8_depthwise.h.j2", "kernels/int8_conv_depthwise.h.j2", "kernels/int8_pool.h.j2")

    def __init__(self, stages: Sequence[Int8Op], input_is_caller: bool = False, tensors=None):
        """``tensors``: the (input, output) the stream has in the graph where its stages run on
        views of them (``columns_as_rows``); default: the first stage's input, the last's output."""
        stages = tuple(stages)
        if len(stages) < 2:
            raise Unstreamable("a stream needs at least two stages")
        last = stages[-1]
        x, out = tensors if tensors is not None else (stages[0].inputs[0], last.output)
        if x.storage is not stages[0].inputs[0].storage or out.storage is not last.output.storage:
            raise Unstreamable("a stream's tensors must be its first stage's input and its last stage's output")
        super().__init__(f"{stages[0].name}..{last.name}", [x], out, last.fused)
        self.stages = stages
        #: whether the chain's input is the caller's input (of run()'s element type T)
        self.input_is_caller = bool(input_is_caller)
        self.reduces = _closes(last)
        rows = stages[:-1] if self.reduces else stages
        for k, op in enumerate(rows):
            if not _row_stage(op, k == 0, not input_is_caller and op.inputs[0].dtype == "int8"):
                raise Unstreamable(f"'{op.name}' ({op.label()}) cannot be stage {k} of a stream")
        for a, b in zip(stages, stages[1:]):
            if b.inputs[0] is not a.output or len(b.inputs) != 1:
                raise Unstreamable(f"'{b.name}' does not read only '{a.name}''s output")

    # ---- the stages
    #: rows a first-stage im2col conv whose rows are one pixel computes at once (``block_rows``)
    COLUMN_BLOCK = 4

    def block_rows(self, k: int) -> int:
        """Rows stage k computes at once into its ring: ``COLUMN_BLOCK`` for a first-stage im2col
        conv whose output rows are one pixel (a 1-D layer streamed along its length, e.g. a
        Conv1D before its global average), so that its kernel tiles four pixels as layer by layer
        (one pixel a row would run one-pixel tiles: 1.7 times the Cortex-M4 instructions on
        conv1d_accelerometer's second Conv1D), where its consumer's windows each lie in one block
        (a ring of a block's rows then serves them): one row (a pointwise conv, the closing
        stage), or windows at most as tall as their stride, unpadded, a whole number of them a
        block (MaxPooling1D 2 /2); else 1."""
        s = self.stages[k]
        if not (k == 0 and type(s) is Int8Conv2D and s.kernel_form == 2 and s.output.hwc[1] == 1
                and s.output.hwc[0] >= self.COLUMN_BLOCK and k + 1 < len(self.stages) and not self.padded_ring(k)):
            return 1
        window = _window(self.stages[k + 1]) if k + 1 < len(self.row_stages) else None
        if window is not None:
            kh, sh, pt = window
            if not (pt == 0 and kh <= sh and self.COLUMN_BLOCK % sh == 0):
                return 1
        return self.COLUMN_BLOCK

    def ring_rows(self, k: int) -> int:
        """Rows of stage k's output its consumer's window needs at once (0: none, the last row
        stage writes the stream's output map), or the rows it computes at once (``block_rows``)."""
        if k + 1 >= len(self.stages):
            return 0
        if self.block_rows(k) > 1:
            return self.block_rows(k)
        window = _window(self.stages[k + 1]) if k + 1 < len(self.row_stages) else None
        if window is None:  # a pointwise conv, or the closing global average: one row at a time
            return 1
        # a padded ring fills a slot with the zero point for a window row outside the map, so
        # every row of a window needs its own slot even where the map is shorter than the window
        return window[0] if self.padded_ring(k) else min(window[0], self.stages[k].output.hwc[0])

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
        """(ring offsets, end) in the workspace: the rings back to back, then 3 bytes; a closing
        stage's int32 accumulators after them."""
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
        # with a closing stage, its int32 accumulators, one an output (word aligned at run time: 3
        # more bytes)
        return self.layout()[1] + (3 + 4 * self.output.size if self.reduces else 0)

    # ---- facts (StagedOp's sums)
    def stage_arrays(self, k: int) -> dict:
        """A depthwise stage's table of unpacked weights in flash (``flash_table``)."""
        return {"t": self.dsp_table(k)} if self.flash_table(k) else {}

    def label(self):
        parts = []
        for k, op in enumerate(self.stages):
            ring = self.ring_rows(k)
            parts.append(op.label() + (f" [ring {ring} row{'s' if ring > 1 else ''}]" if ring else ""))
        return f"Stream ({self.describe()}): " + " -> ".join(parts)

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
                            sums_bytes=4 * op.output.size if k >= len(self.row_stages) else 0))
        return out

    # ---- in place
    def _last_first_rows(self) -> np.ndarray:
        """For each output row of the last row stage, the last row of stage 0's output that has
        been computed once it is stored (rows are pulled on demand, in order)."""
        rows = self.row_stages
        need = np.arange(rows[-1].output.hwc[0])
        for op in reversed(rows[1:]):  # stage k's rows -> stage k-1's
            h_in = op.inputs[0].hwc[0]
            window = _window(op)
            if window is not None:
                kh, sh, pt = window
                need = np.minimum(need * sh - pt + kh - 1, h_in - 1)
            need = np.maximum.accumulate(np.maximum(need, 0))
        return need

    def inplace_gap(self, input_index):
        h, w, cin = self.stages[0].inputs[0].hwc  # (W x 1 maps where the stages run along columns)
        ho, wo, cout = self.stages[-1].output.hwc
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
    def input_ctype(self) -> str:
        return "T" if self.input_is_caller else "int8_t"


def _parts(op) -> list:
    return [op.conv, op.dw] if type(op) is Int8ConvDepthwise else [op]


def can_start(op, graph_inputs) -> bool:
    """Whether graph op ``op`` can be a stream's first (a conv -> depthwise pair: first two) stage."""
    x = op.inputs[0] if op.inputs else None
    if x is None or x.is_slice or len(op.inputs) != 1:
        return False
    caller = is_input(x, graph_inputs)
    first = _parts(op)
    return (_row_stage(first[0], True, not caller and x.dtype == "int8")
            and all(_row_stage(part, False, True) for part in first[1:]))


def stream_candidates(ops, kept, graph_inputs) -> List[tuple]:
    """Maximal chains (start, end) of op indices (end exclusive) that could run as one stream:
    each op the only reader of the one before (its only input, not kept whole), every op a
    stage (``Int8ConvDepthwise`` counts as its two), at least two stages."""
    readers = collections.Counter(t.storage for op in ops for t in op.inputs)

    def links(a, b) -> bool:
        same = _same_bytes if _closes(b) else _same_map  # a closing stage may read the map flattened
        return (len(b.inputs) == 1 and same(b.inputs[0], a.output) and readers[a.output.storage] == 1
                and a.output.storage not in kept and not a.output.is_slice and a.output.dtype == "int8")

    chains, i = [], 0
    while i < len(ops):
        if not can_start(ops[i], graph_inputs):
            i += 1
            continue
        j = i + 1
        while j < len(ops) and links(ops[j - 1], ops[j]):
            sub = _parts(ops[j])
            if all(_row_stage(op, False, True) for op in sub):
                j += 1
                continue
            if len(sub) == 1 and _closes_over(sub[0], ops[j - 1].output) and not sub[0].output.is_slice:
                j += 1
            break
        if j - i >= 2 and not ops[j - 1].output.is_slice:
            chains.append((i, j))
            i = j
        else:
            i += 1
    return chains


def _one_row(t) -> bool:
    return len(t.shape) == 3 and t.shape[0] == 1


def columns_as_rows(stages: Sequence[Int8Op]) -> list:
    """Stages whose maps are all one row tall (Conv1D, MaxPooling1D ... as TFLite runs them:
    1 x W maps) with rows and columns swapped, so that a row stream runs along W: each map a W x 1
    view of the same bytes (a 1 x W map and a W x 1 map are one array), each op its
    ``transposed`` self, the outputs unchanged. Other stages as they are."""
    if not (all(_one_row(op.inputs[0]) for op in stages) and all(hasattr(op, "transposed") for op in stages)):
        return list(stages)
    views = {}

    def view(t):
        if not _one_row(t):  # a global average's output
            return t
        if id(t) not in views:
            h, w, c = t.shape
            views[id(t)] = Tensor(f"{t.name}^T", (w, h, c), base=t.storage, dtype=t.dtype, quant=t.quant)
        return views[id(t)]

    return [op.transposed(view(op.inputs[0]), view(op.output)) for op in stages]


def _closes_over(op, x) -> bool:
    """Whether ``op`` closes a stream whose last row stage writes ``x`` (the map it reads, maybe
    flattened): over x's rows, or over its columns where x is one row tall (the stream then runs
    along them: ``columns_as_rows``)."""
    x_rows = op.evolve(inputs=[x])
    if _closes(x_rows):
        return True
    h, w, c = x.hwc
    if h != 1:
        return False
    view = Tensor(f"{x.name}^T", (w, h, c), base=x.storage, dtype=x.dtype, quant=x.quant)
    return hasattr(op, "transposed") and _closes(op.transposed(view, op.output))


def _same_bytes(t, u) -> bool:
    """``t`` and ``u`` are one map's bytes in one order (a map and its flattened view)."""
    return t.storage is u.storage and not t.is_slice and not u.is_slice and t.size == u.size


def _same_map(t, u) -> bool:
    """``t`` is ``u`` or a view of the same map (a Conv1D's (L, C) sequence of a 1 x L x C map)."""
    return t is u or (t.storage is u.storage and not t.is_slice and not u.is_slice and t.hwc == u.hwc)


def make_stream(ops, graph_inputs) -> Int8Stream:
    """The stream op of a chain of graph ops (as ``stream_candidates`` found it); 1-D chains run
    along their columns (``columns_as_rows``)."""
    stages = []
    caller = is_input(ops[0].inputs[0], graph_inputs)
    for op in ops:
        # each stage reading its producer's very tensor
        for part in _parts(op):
            if stages and part.inputs[0] is not stages[-1].output:
                part = part.evolve(inputs=[stages[-1].output])
            stages.append(part)
    return Int8Stream(columns_as_rows(stages), input_is_caller=caller, tensors=(ops[0].inputs[0], ops[-1].output))
