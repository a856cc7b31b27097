"""What the int8 ops share: TFLite's requantisation parameters and the header-comment details.

An int8 op reads and writes int8 tensors (each with its :class:`~micronets.compiler.graph.Quant`);
its weights are typed numpy arrays (int8 filters, biases, int32 multipliers, shifts) emitted as
``static const`` arrays of those types; convolutions and dense layers pick, per layer and from
their values, the smallest lossless type for biases and shifts (see :func:`param_layout`).
Every multiplier is computed by :func:`micronets.compiler.quant.quantize_multiplier` from the real
scale formed the way the matching TFLite kernel forms it, so the generated kernels reproduce TFLite's reference results.
"""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.ops.base import Op, UnsupportedModelError
from micronets.compiler.quant import FUSED, activation_range, quantize_multiplier


#: which implementation the kernels reproduce bit for bit where TFLM and TFLite's reference kernels
#: disagree (FULLY_CONNECTED's requantisation, a rescaling RELU6, DIV's output multiplier,
#: LOGISTIC's table): "tflm" (TFLM: fixed point) or "tflite-ref" (TFLite's BUILTIN_REF kernels:
#: double precision, and a single-precision table for LOGISTIC).
#: TFLite's default kernels (XNNPACK) match neither everywhere: their convolutions round differently.
REFERENCES = ("tflm", "tflite-ref")


class Int8Op(Op):
    """An op of an int8 graph. ``fused`` is the TFLite fused activation (0 none, 1 ReLU, 3 ReLU6),
    applied as the output clamp [act_min, act_max]."""

    def __init__(self, name, inputs, output, fused: int = 0):
        super().__init__(name, inputs, output)
        self.fused = int(fused)
        self.act_min, self.act_max = activation_range(self.fused, output.quant, output.dtype) if output.quant else (-128, 127)

    def label(self):
        text = f"{self.kind} {self.describe()}".strip()
        act = FUSED[self.fused][0]
        return f"{text} + {act}" if act else text

    def scales(self) -> str:
        """Quantisation of inputs and output for the header comment."""
        ins = ", ".join(f"s={t.quant.scale:.6g} z={t.quant.zero_point}" for t in self.inputs if t.quant)
        o = self.output.quant
        return f"in {ins} -> out s={o.scale:.6g} z={o.zero_point}"

    def activations(self):
        return []

    #: what a row stream's closing stage of this op is to the templates (``closes_rows``)
    close_kind = ""

    def closes_rows(self) -> bool:
        """Whether the op can close a row stream (micronets/compiler/ops/int8_stream.py): it reads
        its input map's rows in order into int32 accumulators, one per output (exact in any
        order), and finishes them with its own requantisation, so the map is never stored. Its
        kernel's template then defines the closer (its ``closer`` macro)."""
        return False

    def typed_weights(self) -> "collections.OrderedDict[str, np.ndarray]":
        return collections.OrderedDict()

    def weights(self):
        return self.typed_weights()

    def weights_bytes(self) -> int:
        return int(sum(a.nbytes for a in self.typed_weights().values()))

    def weights_bytes_bound(self) -> int:
        """Flash bytes whatever the weight values: where a layer picks a smaller lossless layout
        from its values (int16 biases, packed bias and shift), the widest one is counted. What an
        untrained candidate and its trained header share (the search compares the two)."""
        return self.weights_bytes()


def per_channel_multipliers(real_scales) -> "tuple[np.ndarray, np.ndarray]":
    """(int32 multipliers, int8 shifts), one per output channel."""
    pairs = [quantize_multiplier(float(r)) for r in np.asarray(real_scales, np.float64).reshape(-1)]
    return (np.array([m for m, _ in pairs], np.int32), np.array([s for _, s in pairs], np.int8))


def conv_real_scales(input_scale: float, filter_scales, output_scale: float, channels: int) -> np.ndarray:
    """input_scale * filter_scale / output_scale in double, per output channel (a single filter
    scale is per-tensor and repeated), as TFLite's PopulateConvolutionQuantizationParams."""
    fs = np.asarray(filter_scales, np.float32).astype(np.float64).reshape(-1)
    if fs.size == 1:
        fs = np.repeat(fs, channels)
    if fs.size != channels:
        raise ValueError(f"{fs.size} filter scales for {channels} output channels")
    return np.array([float(np.float64(np.float32(input_scale))) * f / float(np.float64(np.float32(output_scale))) for f in fs])


def fits_signed(values, bits: int) -> bool:
    """Whether every integer of ``values`` fits a signed ``bits``-bit type (true when empty)."""
    a = np.asarray(values)
    return a.size == 0 or (int(a.min()) >= -(1 << (bits - 1)) and int(a.max()) < (1 << (bits - 1)))


def param_layout(folded) -> str:
    """How a layer's per-output-channel folded biases and shifts are stored, chosen per layer
    without changing a result: "f16" (every folded bias fits int16: int16 biases, int8 shifts: 7
    bytes a channel with the int32 multiplier), "packed" (every one fits 24 bits: bias and shift in
    one int32, low 24 / high 8 bits: 8 bytes) or "wide" (int32 biases, int8 shifts: 9 bytes)."""
    return "f16" if fits_signed(folded, 16) else "packed" if fits_signed(folded, 24) else "wide"


def requant_arrays(folded, mult, shift) -> "collections.OrderedDict[str, np.ndarray]":
    """The per-channel requantisation arrays in ``param_layout``: 'q' (packed bias and shift:
    exact, the low 24 bits sign-extend back to the bias, the arithmetic >> 24 gives the shift) and
    'm', or 'f' (int16 or int32 biases), 'm' and 's'."""
    folded = np.asarray(folded)
    layout = param_layout(folded)
    if layout == "packed":
        packed = (folded.astype(np.int64) & 0xFFFFFF) + np.asarray(shift, np.int64) * (1 << 24)
        return collections.OrderedDict(q=packed.astype(np.int32), m=mult)
    return collections.OrderedDict(f=folded.astype(np.int16) if layout == "f16" else folded.astype(np.int32),
                                   m=mult, s=shift)


def c_requant_bias(layout: str, stem: str) -> str:
    """C expression a kernel indexes for the folded biases of ``requant_arrays`` (``stem``: the
    arrays' C name without the suffix, e.g. 'L3_' or 'L3_c')."""
    return f"mn_lo24({stem}q)" if layout == "packed" else f"{stem}f"


def c_requant_shift(layout: str, stem: str) -> str:
    """C expression a kernel indexes for the shifts of ``requant_arrays``."""
    return f"mn_hi8({stem}q)" if layout == "packed" else f"{stem}s"


def c_requant_types(layout: str) -> "tuple[str, str]":
    """C types of those two expressions (a kernel's template arguments for them)."""
    if layout == "packed":
        return "mn_lo24", "mn_hi8"
    return ("const int16_t*" if layout == "f16" else "const int32_t*"), "const int8_t*"


def fold_input_offset(name: str, bias, in_off: int, weight_sums, channels: int) -> np.ndarray:
    """bias + in_off * sum(w) per output channel (int32; bias None counts as 0): the input offset
    folded in at compile time (exact in integers), so a kernel's inner loop is a plain int8 dot
    product. ValueError naming the layer when a value leaves int32."""
    b = np.zeros(channels, np.int64) if bias is None else np.asarray(bias, np.int64).reshape(-1)
    sums = np.asarray(weight_sums, np.int64).reshape(-1)
    folded = b + int(in_off) * sums
    out = np.flatnonzero((folded < -2 ** 31) | (folded >= 2 ** 31))  # (-2^31 is an int32: squeeze-excite's dead channels)
    if out.size:
        c = int(out[0])
        raise UnsupportedModelError(f"'{name}': channel {c}'s bias {int(b[c])} plus the input offset {int(in_off)} x its "
                                    f"weights' sum {int(sums[c])} is {int(folded[c])}, outside the int32 the kernels hold "
                                    f"it in (TFLite's kernels add the bias after the products, never forming it)")
    return folded.astype(np.int32)


def requant_mode(bias, abs_weight_sums, shifts, act_min: int, act_max: int) -> int:
    """Which requantisation the kernels may use for a layer (the RQ template argument of
    ``mn_rq``): 0 the general one; 1 the short one, valid when every shift is in [-31, -1] and
    every accumulator the layer can produce, |bias| + 255 * sum |w| (an input minus its zero point
    lies in [-255, 255]), is below 2^30 in magnitude; 2 the same with the whole int8 range as the
    clamp (a single saturation)."""
    shifts = np.asarray(shifts, np.int64).reshape(-1)
    sums = np.asarray(abs_weight_sums, np.int64).reshape(-1)
    b = np.zeros_like(sums) if bias is None else np.abs(np.asarray(bias, np.int64).reshape(-1))
    bound = b + 255 * sums
    if shifts.size == 0 or np.any(shifts > -1) or np.any(shifts < -31) or np.any(bound >= 2 ** 30):
        return 0
    return 2 if (act_min, act_max) == (-128, 127) else 1


def rq8_mode(bound: int, shift: int) -> int:
    """The form of MultiplyByQuantizedMultiplier (mn_mbqm_rq's RQ, and mn_rq8's, which adds the
    zero point and saturates to int8; templates/header_int8.h.j2) for accumulators of at most
    ``bound`` in magnitude, one multiplier (>= 0, as quantize_multiplier gives) and ``shift``: 2 the
    short one (``requant_mode``'s conditions), 3 for a shift >= 0, else 0 (as TFLite writes it)."""
    if -31 <= shift <= -1 and bound < 2 ** 30:
        return 2
    return 3 if shift >= 0 else 0


class Int8TableOp(Int8Op):
    """An elementwise op whose output depends on its int8 input value alone: a 256-entry table
    (``table``, computed at compile time with the reference's own integer arithmetic) that
    kernels/int8_lookup.h.j2 reads, in place. Subclasses set ``table`` in their constructor, or
    name ``table_of``, the table as a function of the input's and the output's scale and zero point."""

    template = "kernels/int8_lookup.h.j2"
    table = None
    table_of = None

    def __init__(self, name, x, out):
        super().__init__(name, [x], out, 0)
        if self.table_of is not None:
            self.table = self.table_of(x.quant.scale, x.quant.zero_point, out.quant.scale, out.quant.zero_point)

    def typed_weights(self):
        return collections.OrderedDict(t=self.table)

    def params(self):
        return 0

    def inplace_gap(self, input_index):
        return 0



def broadcast_walk(what: str, out_shape, *shapes):
    """(dims, strides per operand) of the three-axis walk (ops.elementwise.collapse) over an
    output of ``out_shape`` whose operands have ``shapes`` (numpy broadcasting); operands all of
    the output's size walk it flat, in order ((1, 1, C) and (C,): the converter squeezes one); a
    clear error naming ``what`` where a shape does not broadcast to the output."""
    from micronets.compiler.ops.base import UnsupportedModelError
    from micronets.compiler.ops.elementwise import _strides, collapse

    size = int(np.prod(out_shape))
    if all(int(np.prod(shape)) == size for shape in shapes):
        return (1, 1, size), tuple((0, 0, 1) for _ in shapes)
    for shape in shapes:
        padded = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
        if len(padded) != len(out_shape) or any(d not in (1, o) for d, o in zip(padded, out_shape)):
            raise UnsupportedModelError(f"{what}: operand {tuple(shape)} does not broadcast to {tuple(out_shape)}")
    return collapse(tuple(out_shape), *(_strides(shape, out_shape) for shape in shapes))
