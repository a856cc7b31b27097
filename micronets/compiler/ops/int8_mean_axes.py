"""int8 mean over any axes (TFLite MEAN other than the spatial one: over channels, over one
spatial axis, over everything). Two integer forms, chosen at compile time:

- ``fixed`` (TFLM for every MEAN; TFLite's reference when the scales or zero points differ):
  QuantizedMeanOrSum, out = clamp(MBQM(sum - zin * n, mult, shift) + zout), 1/n folded into
  the multiplier as for the spatial mean.
- ``trunc`` (TFLite's BUILTIN_REF when input and output share scale and zero point, outside its
  4-D keep-dims spatial special case): out = sum / n in C integer division (toward zero) of the
  raw int8 values.

Loops: the kept axes (output order), then the reduced ones, each collapsed where contiguous."""

from __future__ import annotations

from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.int8_base import Int8Op
from micronets.compiler.ops.int8_mean import fold_count
from micronets.compiler.ops.int8_transpose import collapse_gather
from micronets.compiler.quant import quantize_multiplier

MODES = ("fixed", "trunc")


class Int8MeanAxes(Int8Op):
    kind = "Mean"
    template = "kernels/int8_mean_axes.h.j2"

    def __init__(self, name, x, out, axes, mode="fixed"):
        super().__init__(name, [x], out, 0)
        if mode not in MODES:
            raise ValueError(mode)
        self.mode = mode
        self.axes = tuple(sorted(set(int(a) for a in axes)))  # over x.shape (no batch)
        if not self.axes or any(a < 0 or a >= len(x.shape) for a in self.axes):
            raise UnsupportedModelError(f"mean '{name}' over axes {list(axes)} of {x.shape}")
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
            raise UnsupportedModelError(f"mean '{name}' of {x.shape} over {list(self.axes)} does not give {out.shape}")
        self.kdims, self.kstrides = collapse_gather([x.shape[i] for i in kept], [strides[i] for i in kept], name)
        self.rdims, self.rstrides = collapse_gather([x.shape[a] for a in self.axes], [strides[a] for a in self.axes], name)
        mult, shift = quantize_multiplier(float(x.quant.scale) / float(out.quant.scale))
        self.mult, self.shift = fold_count(mult, shift, self.count)
        self.zin_n = x.quant.zero_point * self.count
        self.out_off = out.quant.zero_point

    def describe(self):
        return f"{self.inputs[0].shape_str()} over axes {','.join(str(a + 1) for a in self.axes)} ({self.count} values)" + (
            ", truncating" if self.mode == "trunc" else "")
