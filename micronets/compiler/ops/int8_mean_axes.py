"""int8 mean over any axes (TFLite MEAN other than the spatial one: over channels, over one
spatial axis, over everything), as TFLM and TensorFlow 2.21's BUILTIN_REF compute it
(QuantizedMeanOrSum): out = clamp(MBQM(sum - zin * n, mult, shift) + zout), 1/n folded into the
multiplier as for the spatial mean. (Older TensorFlow reference kernels divided the raw sum by n
when input and output share their quantisation; 2.21's do not: tests/test_int8.py checks it.)

TFLite SUM is the same arithmetic without the 1/n (QuantizedMeanOrSum with compute_sum, TFLM's
for every SUM; BUILTIN_REF's too where the output's quantisation differs from the input's).
REDUCE_MAX over any axes (the output keeps the input's quantisation, as both references require):
the largest stored value, no arithmetic.

Loops: the kept axes (output order), then the reduced ones, each collapsed where contiguous."""

from __future__ import annotations

from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.int8_base import Int8Op, requant_mode
from micronets.compiler.ops.int8_mean import fold_count
from micronets.compiler.ops.int8_transpose import collapse_gather
from micronets.compiler.quant import quantize_multiplier


class Int8MeanAxes(Int8Op):
    kind = "Mean"
    template = "kernels/int8_mean_axes.h.j2"

    def __init__(self, name, x, out, axes, mode: str = "mean"):
        """``mode``: "mean" (TFLite MEAN), "sum" (SUM: no division by the count) or "max" (REDUCE_MAX)."""
        super().__init__(name, [x], out, 0)
        if mode not in ("mean", "sum", "max"):
            raise ValueError(f"reduction {mode!r}; known: mean, sum, max")
        self.mode = mode
        self.kind = {"mean": "Mean", "sum": "Sum", "max": "ReduceMax"}[mode]
        if mode == "max" and x.quant != out.quant:
            raise UnsupportedModelError(f"maximum '{name}' changes the quantisation ({x.quant} -> {out.quant}); "
                                        f"TFLite keeps it")
        self.axes = tuple(sorted(set(int(a) for a in axes)))  # over x.shape (no batch)
        if not self.axes or any(a < 0 or a >= len(x.shape) for a in self.axes):
            raise UnsupportedModelError(f"{mode} '{name}' over axes {list(axes)} of {x.shape}")
        strides, step = [], 1
        for d in reversed(x.shape):
            strides.append(step)
            step *= d
        strides = strides[::-1]
        kept = [i for i in range(len(x.shape)) if i not in self.axes]
        self.count = 1
        for a in self.axes:
            self.count *= int(x.shape[a])
        if x.size // self.count != out.size:
            raise UnsupportedModelError(f"{mode} '{name}' of {x.shape} over {list(self.axes)} does not give {out.shape}")
        self.kdims, self.kstrides = collapse_gather([x.shape[i] for i in kept], [strides[i] for i in kept], name, 4)
        self.rdims, self.rstrides = collapse_gather([x.shape[a] for a in self.axes], [strides[a] for a in self.axes], name, 4)
        mult, shift = quantize_multiplier(float(x.quant.scale) / float(out.quant.scale))
        self.mult, self.shift = (mult, shift) if mode != "mean" else fold_count(mult, shift, self.count)
        self.zin_n = x.quant.zero_point * self.count
        self.out_off = out.quant.zero_point

    @property
    def rq_mode(self) -> int:
        """The requantisation the kernel may use (``requant_mode``): |sum - zin * n| <= 255 * n."""
        return requant_mode(None, [self.count], [self.shift], -128, 127)

    close_kind = "mean"

    def closes_rows(self) -> bool:
        """A mean over the rows of its input map (H x W x C -> W x C; a Conv1D net's global
        average over L, streamed as an L x 1 view: ``Int8Stream``'s ``columns_as_rows``) closes a
        row stream: each of a row's W C bytes summed into its own accumulator as the rows arrive
        (mn_mean_axes_close), then this op's requantisation."""
        if self.mode != "mean":
            return False
        h, w, c = self.inputs[0].hwc

        def axes(dims, strides):  # (size, stride) of the gather's axes longer than 1
            return [(int(d), int(s)) for d, s in zip(dims, strides) if d > 1]

        return (h > 1 and self.count == h and axes(self.rdims, self.rstrides) == [(h, w * c)]
                and axes(self.kdims, self.kstrides) == ([(w * c, 1)] if w * c > 1 else []))

    def transposed(self, x, out):
        """The same mean of ``x``, a view of its input with rows and columns swapped (the same
        bytes: its gathers are unchanged; ``Int8Windowed.transposed``)."""
        return self.evolve(inputs=[x], output=out)

    def describe(self):
        return f"{self.inputs[0].shape_str()} over axes {','.join(str(a + 1) for a in self.axes)} ({self.count} values)"
