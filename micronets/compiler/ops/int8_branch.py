"""int8 residual blocks run depth first (row streamed): a stream over a small graph of layers,
not only a chain (Int8Stream's), so that no map inside it is ever stored whole.

A stage produces the rows of its output on demand, as Int8Stream's do; what is new is that a
stage may read two row sources (an ADD) and that a row source may have two readers (a block's
input feeds its first conv and its shortcut, or the ADD itself). Stages:

- the first: any int8 Conv2D reading the whole input map (as Int8Stream's first stage), or a
  pointwise conv of an int8 map that is not the caller's;
- later: a pointwise conv (1x1, stride 1, unpadded; int8_pointwise over a row's pixels), any
  other Conv2D without vertical dilation (a KxK or a strided 1x1 conv: int8_conv_row /
  int8_conv_im2col_row over the KH rows of its window, below), a depthwise conv without
  dilation (the chain stream's depthwise stage: the row helpers of int8_conv_depthwise.h.j2), a
  pooling that is not global (int8_pool's pixels, the window clipped to the map), an ADD of two
  same-shape rows (int8_add over a row, TFLite's rescaling: the ADD op's own helper) or a ReLU
  op (int8_relu over a row);
- the last may also be a closing stage (a global average, a dense over the flattened map: its
  int32 accumulators, as Int8Stream's).

Between a stage and its readers its rows live in a *line buffer*: N rows kept contiguous and in
order (a new row moves the N - 1 newest up when the buffer is full, one memmove of (N - 1) rows:
a few hundred bytes a row against tens of thousands of MACs), and the rows of a conv's window
outside the map are rows of the input's zero point in the same buffer (the buffer runs over the
padded map). A conv stage therefore hands its row kernel a map of exactly KH rows and asks for
its row 0 with no vertical padding: the taps that TFLite skips at the border read the zero point
z = -in_off instead, and add w * (z + in_off) = 0 to the sums, the bias being folded with the
input offset for every tap (im2col writes the same z into its patches itself). Integer sums are
exact in any order, so every stage gives its layer's output bit for bit.

A line buffer read by a depthwise of the DSP layout is padded as the chain stream's rings are:
columns of the zero point either side of each row, so that kernel reads every tap from memory
without border tests (a conv reading the same buffer takes each slot as a wider map whose extra
columns are taps of the zero point, adding 0 as above).

A stage read by nothing but an ADD (or a ReLU) keeps no rows: the ADD computes that operand's
row straight into its own output row (it adds in place, as int8_add may) or, for its second
computed operand, into a row of its own. Which operand goes first is chosen by shape alone: the
order that needs the fewest buffered rows. The number of rows each line buffer needs is found
by running the stream's pulls in Python exactly as the generated code runs them
(``_simulate``): the most rows any reader reaches back, at the moment it reads. MLPerf's
ResNet-8 streamed whole keeps 3 rows of the stem's output, of each block input and of each
block's first conv (one row of the last ADD) and two ADD rows: 11,014 B of workspace (every row
512 B) where layer by layer plans 33,312 B; its shortcuts are computed first (into the ADD's
output row), so a block input's buffer only spans the strided conv's window.

The int8 lowering (micronets.compiler.int8._stream_if_smaller) forms one where it saves as much
arena as a chain stream must (``STREAM_MIN_SAVING``), over a run of graph ops, residual or not: a
plain chain with a KxK conv after its first stage (which a chain stream cannot run there) streams
as a graph too, e.g. Keras' MNIST convnet (Conv -> Pool -> Conv -> Pool -> Dense, closed by the
dense) whole in 4,696 B where its two Conv -> Pool chains left 8,608 B.
"""

from __future__ import annotations

import collections
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from micronets.compiler.graph import is_input
from micronets.compiler.ops.int8_add import Int8Add
from micronets.compiler.ops.int8_base import Int8Op
from micronets.compiler.ops.int8_conv import Int8Conv2D
from micronets.compiler.ops.int8_depthwise import Int8DepthwiseConv2D
from micronets.compiler.ops.int8_pool import Int8Pool
from micronets.compiler.ops.int8_relu import Int8Relu
from micronets.compiler.ops.int8_stream import Int8Stream, StagedOp, Unstreamable, _closes


def _later_stage(op) -> bool:
    """Whether ``op`` can be a row stage after the first (reading rows of other stages)."""
    if type(op) is Int8Conv2D:
        return op.pointwise or op.dilation[0] == 1
    if type(op) is Int8DepthwiseConv2D:
        return op.dilation == (1, 1)
    if type(op) is Int8Pool:
        return not _closes(op)
    if type(op) is Int8Add:
        return not op.broadcast and op.inputs[0].storage is not op.inputs[1].storage
    return type(op) is Int8Relu and op.inputs[0].dtype == "int8"


def _first_stage(op, input_is_caller: bool) -> bool:
    if type(op) is not Int8Conv2D:
        return False
    return not op.pointwise or (not input_is_caller and op.inputs[0].dtype == "int8")


class Int8Branch(StagedOp):
    kind = "BranchStream"
    template = "kernels/int8_branch.h.j2"
    # the chain stream's stages and row sources (its kernels' order), and the ADD's row helper
    kernels = Int8Stream.kernels + ("kernels/int8_stream.h.j2", "kernels/int8_add.h.j2", "kernels/int8_pool.h.j2",
                                    "kernels/int8_relu.h.j2")

    def __init__(self, stages: Sequence[Int8Op], input_is_caller: bool = False):
        stages = tuple(stages)
        if len(stages) < 2:
            raise Unstreamable("a stream needs at least two stages")
        last = stages[-1]
        super().__init__(f"{stages[0].name}..{last.name}", list(stages[0].inputs), last.output, last.fused)
        self.stages = stages
        self.input_is_caller = bool(input_is_caller)
        self.reduces = _closes(last)
        rows = stages[:-1] if self.reduces else stages
        if not _first_stage(stages[0], self.input_is_caller) or len(stages[0].inputs) != 1:
            raise Unstreamable(f"'{stages[0].name}' ({stages[0].label()}) cannot be a stream's first stage")
        made = {op.output.storage: k for k, op in enumerate(stages)}
        #: for each stage, the stages it reads (-1: the stream's input map)
        sources = [(-1,)]
        for k, op in enumerate(stages[1:], 1):
            if k < len(rows) and not _later_stage(op):
                raise Unstreamable(f"'{op.name}' ({op.label()}) cannot be stage {k} of a stream")
            src = tuple(made.get(t.storage, -2) for t in op.inputs)
            if any(s < 0 or s >= k for s in src) or any(stages[s].output is not t for s, t in zip(src, op.inputs)):
                raise Unstreamable(f"'{op.name}' reads a tensor no earlier stage of the stream writes whole")
            sources.append(src)
        self.sources = tuple(sources)
        readers = [[] for _ in stages]
        for k, src in enumerate(self.sources):
            for s in src:
                if s >= 0:
                    readers[s].append(k)
        if any(not readers[k] for k in range(len(stages) - 1)):
            raise Unstreamable("every stage but the last must be read by a later one")
        #: for each stage, the stages that read it
        self.readers = tuple(tuple(r) for r in readers)
        self.roles = self._best_roles()
        self.lines = self._simulate(self.roles)

    # ---- the stages
    def stage_kind(self, k: int) -> str:
        """StagedOp's kinds, and "add", "relu", "convr" (a conv over a line buffer)."""
        op = self.stages[k]
        if k < len(self.row_stages) and type(op) in (Int8Add, Int8Relu):
            return "add" if type(op) is Int8Add else "relu"
        kind = super().stage_kind(k)
        return "convr" if kind == "conv" and k > 0 else kind

    def direct(self, k: int) -> bool:
        """Whether stage k keeps no rows: its only reader is an ADD or a ReLU, which computes its
        rows into its own output row (or the ADD's own row)."""
        return (k < len(self.row_stages) - 1 and len(self.readers[k]) == 1
                and type(self.stages[self.readers[k][0]]) in (Int8Add, Int8Relu))

    def _default_roles(self) -> Dict[int, Tuple[int, int]]:
        roles = {}
        for k, op in enumerate(self.stages):
            if type(op) is Int8Add and k < len(self.row_stages):
                d = [self.direct(s) for s in self.sources[k]]
                roles[k] = (1 if d[0] else 0, (2 if d[0] else 1) if d[1] else 0)
        return roles

    def _best_roles(self) -> Dict[int, Tuple[int, int]]:
        """Each ADD's roles of its operands (0: a line buffer's row; 1: computed into the output
        row; 2: into the ADD's own row): where both are computed, the order (first into the output
        row) that needs fewer buffered rows, one ADD at a time in stream order."""
        roles = self._default_roles()
        for k, (ra, rb) in sorted(roles.items()):
            if ra and rb:
                swapped = dict(roles)
                swapped[k] = (2, 1)
                if self._bytes(self._simulate(swapped)) < self._bytes(self._simulate(roles)):
                    roles = swapped
        return roles

    def _bytes(self, lines) -> int:
        return sum(n * self.row_bytes(k) for k, n in enumerate(lines))

    def row_bytes(self, k: int) -> int:
        """Bytes a row of stage k's line buffer takes (its map row and any padding columns)."""
        _, w, c = self.stages[k].output.hwc
        pl, pr = self.pads(k)
        return (pl + w + pr) * c

    def _dsp_dw(self, r: int) -> bool:
        return self.stage_kind(r) == "dw" and self.stages[r].dsp_layout

    def padded(self, k: int) -> bool:
        """Whether stage k's line buffer is padded: a depthwise of the DSP layout reads it, and
        then reads every tap from memory, without border tests (the chain stream's padded rings):
        its rows outside the map are rows of the zero point (as in every line buffer) and each row
        has ``pads`` columns of it either side."""
        return any(self._dsp_dw(r) for r in self.readers[k])

    def pads(self, k: int) -> Tuple[int, int]:
        """Columns of zero point left and right of each row of a padded line buffer: as many as
        its depthwise readers' windows reach past the map."""
        dws = [self.stages[r] for r in self.readers[k] if self._dsp_dw(r)]
        if not dws:
            return 0, 0
        w = self.stages[k].output.hwc[1]
        return (max(d.pads[2] for d in dws),
                max(max(0, (d.output.hwc[1] - 1) * d.strides[1] - d.pads[2] + d.kw - w) for d in dws))

    def dw_flat(self, k: int) -> int:
        """Depthwise stage k (DSP layout, its rows padded) reads them as runs of bytes, P =
        lcm(4, C) / 4 groups of lanes (Int8ConvDepthwise.dw_flat); 0: in groups of four channels."""
        dw = self.stages[k]
        c = dw.output.hwc[2]
        if not self._dsp_dw(k) or c % 4 == 0 or dw.strides[1] != 1 or (dw.kh, dw.kw) != (3, 3):
            return 0
        p = int(np.lcm(4, c)) // 4
        return p if p <= 4 else 0

    def window(self, k: int) -> Tuple[int, int]:
        """(first row - y * stride, rows) of the window a conv stage k reads for its output row y:
        (-PT, KH); a pointwise or an ADD: (0, 1)."""
        op = self.stages[k]
        kind = self.stage_kind(k)
        if kind in ("convr", "dw"):
            return -op.pads[0], op.kh
        if kind == "pool":
            return -op.pads[0], op.kernel[0]
        return 0, 1

    def virtual_top(self, k: int) -> int:
        """Rows of zero point a line buffer of stage k starts with (its readers' top padding)."""
        return max([-self.window(r)[0] for r in self.readers[k]] + [0])

    def zero_point(self, k: int) -> int:
        """The int8 zero point of stage k's output (its readers' -in_off): a padding row's bytes."""
        return self.stages[k].output.quant.zero_point

    def _simulate(self, roles) -> List[int]:
        """Rows each stage's line buffer needs (0: none, the stage is computed into its reader's
        row or is the last): the generated code's pulls, replayed. A read of rows r0 .. r0 + n - 1
        needs the buffer to hold the rows from r0 to the newest it has made by then."""
        n_rows = len(self.row_stages)
        nxt = [-self.virtual_top(k) for k in range(len(self.stages))]
        need = [0] * len(self.stages)
        heights = [op.output.hwc[0] for op in self.stages]

        def fill(k, y):
            while nxt[k] <= y:
                at = nxt[k]
                if 0 <= at < heights[k]:
                    row(k, at)
                nxt[k] = at + 1

        def read(k, r0, n):
            fill(k, r0 + n - 1)
            need[k] = max(need[k], nxt[k] - r0)

        def row(k, y):
            kind = self.stage_kind(k)
            if k == 0:
                return
            if kind == "relu":  # its operand computed into the output row, or a buffered row
                s = self.sources[k][0]
                if self.direct(s):
                    row(s, y)
                else:
                    read(s, y, 1)
                return
            if kind in ("pw", "convr", "dw", "pool"):
                s = self.sources[k][0]
                top, n = self.window(k)
                read(s, y * self.stages[k].strides[0] + top, n)
                return
            ra, rb = roles[k]
            a, b = self.sources[k]
            for want in (1, 2):  # the operand computed into the output row first, then the other
                for s, r in ((a, ra), (b, rb)):
                    if r == want:
                        row(s, y)
            for s, r in ((a, ra), (b, rb)):
                if r == 0:
                    fill(s, y)
            for s, r in ((a, ra), (b, rb)):
                if r == 0:
                    read(s, y, 1)

        last = n_rows - 1
        for y in range(heights[last]):
            if self.reduces:
                read(last, y, 1)
            else:
                row(last, y)
        return [need[k] if k < n_rows and not self.direct(k) else 0 for k in range(len(self.stages))]

    def tmp_stages(self) -> List[int]:
        """The ADDs that compute an operand into a row of their own."""
        return [k for k, (ra, rb) in sorted(self.roles.items()) if 2 in (ra, rb)]

    def layout(self) -> "tuple[List[int], Dict[int, int], int]":
        """(line buffer offsets, ADD row offsets, end) in the workspace: the buffers back to back,
        the ADDs' own rows after them (then, with a closing stage, its int32 accumulators)."""
        lines, at = [], 0
        for k in range(len(self.stages)):
            lines.append(at)
            at += self.lines[k] * self.row_bytes(k)
        tmps = {}
        for k in self.tmp_stages():
            tmps[k] = at
            at += self.row_bytes(k)
        return lines, tmps, at + 3  # a DSP kernel's word load of a row's last partial word stays inside

    def workspace_bytes(self):
        return self.layout()[2] + (3 + 4 * self.output.size if self.reduces else 0)

    # ---- facts: StagedOp's sums
    def label(self):
        parts = []
        for k, op in enumerate(self.stages):
            src = ",".join("in" if s < 0 else f"s{s}" for s in self.sources[k])
            n = self.lines[k]
            parts.append(f"s{k}({src}) {op.label()}" + (f" [{n} row{'s' if n > 1 else ''}]" if n else ""))
        return f"Stream ({self.describe()}): " + "; ".join(parts)

    def stage_summary(self, workspace: Optional[int]) -> list:
        offs = self.layout()[0]
        out = []
        for k, op in enumerate(self.stages):
            n = self.lines[k]
            out.append(dict(name=op.name, op=op.kind, detail=op.label(), input_shape=list(op.inputs[0].shape),
                            output_shape=list(op.output.shape), macs=int(op.macs()), params=int(op.params()),
                            ring_rows=n, ring_bytes=n * self.row_bytes(k),
                            ring_offset=(workspace + offs[k]) if n and workspace is not None else None,
                            sums_bytes=4 * op.output.size if k >= len(self.row_stages) else 0))
        return out

    # ---- emission helpers
    def input_ctype(self) -> str:
        return "T" if self.input_is_caller else "int8_t"


def branch_candidates(ops, kept, graph_inputs) -> List[Tuple[int, int]]:
    """Runs (start, end) of op indices (end exclusive) that could run as one Int8Branch: the first
    op a conv of a whole map, every other op reading only maps the run's ops write, every map but
    the last read only inside the run and not kept."""
    readers = collections.defaultdict(list)
    for k, op in enumerate(ops):
        for t in op.inputs:
            readers[t.storage].append(k)
    runs = []
    for i, first in enumerate(ops):
        if len(first.inputs) != 1 or first.inputs[0].is_slice:
            continue
        caller = is_input(first.inputs[0], graph_inputs)
        if not _first_stage(first, caller):
            continue
        made = set()
        for j in range(i, len(ops)):
            op = ops[j]
            if op.output.is_slice or op.output.dtype != "int8":
                break
            if j > i:
                if any(t.storage not in made for t in op.inputs):
                    break
                if not (_later_stage(op) or _closes(op)):
                    break
            made.add(op.output.storage)
            inner = [ops[k] for k in range(i, j)]
            closed = all(o.output.storage not in kept and readers[o.output.storage]
                         and all(i <= r <= j for r in readers[o.output.storage]) for o in inner)
            if j > i and closed:
                runs.append((i, j + 1))
            if _closes(op):
                break
    return runs


def make_branch(ops, graph_inputs) -> Int8Branch:
    """The graph stream of ``ops`` (a run ``branch_candidates`` found); a closing stage that reads
    its producer's map flattened (a fully connected layer) reads the producer's very tensor."""
    last = ops[-1]
    if _closes(last):
        made = {op.output.storage: op.output for op in ops[:-1]}
        x = made.get(last.inputs[0].storage)
        if x is not None and x is not last.inputs[0] and x.size == last.inputs[0].size:
            ops = list(ops[:-1]) + [last.evolve(inputs=[x])]
    return Int8Branch(ops, input_is_caller=is_input(ops[0].inputs[0], graph_inputs))
