""".tflite importer: a fully-int8 TensorFlow Lite flatbuffer -> a Graph of int8 ops.

Reads the model with TensorFlow's own flatbuffer schema (``schema_py_generated``): tensors with
their static shapes (the batch axis of 1 dropped), per-tensor scale / zero point, per-channel
filter scales, constant buffers and every op's builtin options. Accepted: int8 graphs whose model
input is int8, uint8 (a QUANTIZE to int8 first) or float32 (a QUANTIZE first), and whose outputs
are int8, uint8 (a QUANTIZE last) or float32 (a DEQUANTIZE last); those edge ops become the
header's input loads and output dequantisation. Anything else that is not integer (a float op, a
hybrid op with float activations) or an op outside :data:`SUPPORTED` is refused with an
:class:`~micronets.compiler.ops.base.UnsupportedModelError` naming the op and tensor.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from micronets.compiler import shape_fold
from micronets.compiler.graph import Graph, Quant, Tensor, input_name
from micronets.compiler.ops.base import UnsupportedModelError, conv_output
from micronets.compiler.ops.int8_abs import Int8Abs
from micronets.compiler.ops.int8_add import Int8Add
from micronets.compiler.ops.int8_add_const import Int8AddConst
from micronets.compiler.ops.int8_base import REFERENCES
from micronets.compiler.ops.int8_batch_matmul import Int8BatchMatMul
from micronets.compiler.ops.int8_concat import Int8Concat
from micronets.compiler.ops.int8_conv import Int8Conv2D
from micronets.compiler.ops.int8_conv_transpose import Int8ConvTranspose
from micronets.compiler.ops.int8_dense import Int8Dense
from micronets.compiler.ops.int8_depth_space import Int8DepthToSpace, Int8SpaceToDepth
from micronets.compiler.ops.int8_depthwise import Int8DepthwiseConv2D
from micronets.compiler.ops.int8_div import Int8Div, Int8DivConst
from micronets.compiler.ops.int8_exp import Int8Exp
from micronets.compiler.ops.int8_float_island import FLOAT_OPS, Int8FloatIsland
from micronets.compiler.ops.int8_gelu import Int8Gelu
from micronets.compiler.ops.int8_hard_swish import Int8HardSwish
from micronets.compiler.ops.int8_leaky_relu import Int8LeakyRelu
from micronets.compiler.ops.int8_log import Int8Log
from micronets.compiler.ops.int8_logistic import Int8Logistic
from micronets.compiler.ops.int8_mean import Int8Mean
from micronets.compiler.ops.int8_mean_axes import Int8MeanAxes
from micronets.compiler.ops.int8_minmax import Int8MinMax
from micronets.compiler.ops.int8_mul import Int8Mul
from micronets.compiler.ops.int8_mul_const import Int8MulConst
from micronets.compiler.ops.int8_pad import Int8Pad
from micronets.compiler.ops.int8_pool import Int8Pool
from micronets.compiler.ops.int8_prelu import Int8Prelu
from micronets.compiler.ops.int8_relu import Int8Relu
from micronets.compiler.ops.int8_requantize import Int8Requantize
from micronets.compiler.ops.int8_resize import Int8Resize
from micronets.compiler.ops.int8_rsqrt import Int8Rsqrt
from micronets.compiler.ops.int8_select import COMPARISONS, Comparison, Int8Select, holds_against_constant
from micronets.compiler.ops.int8_slice import Int8Slice
from micronets.compiler.ops.int8_softmax import Int8Softmax
from micronets.compiler.ops.int8_sqrt import Int8Sqrt
from micronets.compiler.ops.int8_squared_difference import Int8SquaredDifference
from micronets.compiler.ops.int8_sub import Int8ConstMinus, Int8Sub, Int8SubConst
from micronets.compiler.ops.int8_tanh import Int8Tanh
from micronets.compiler.ops.int8_tile import Int8Tile
from micronets.compiler.ops.int8_transpose import Int8Transpose

#: ops that may read the [R, U] output of a FULLY_CONNECTED over rows: they read it element by
#: element (broadcasting along its last axis), as rows of U, or reshape it; none names an axis
ROW_SAFE = ("FULLY_CONNECTED", "RESHAPE", "ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "LOGISTIC", "HARD_SWISH", "GELU",
            "RELU", "RELU6", "QUANTIZE", "SOFTMAX", "TANH", "LEAKY_RELU")
#: the ops that may read a tensor whose first axis holds parts of a sample (Swin's windows, a stack of
#: q, k, v: kept in our shape, see ``_Importer.is_parts``), writing one where they read one: they
#: index no axis from the front (elementwise, a softmax or a product over the last axes) or take
#: the .tflite's full shapes themselves (the rearranging ops)
PARTS_SAFE = ROW_SAFE + ("TRANSPOSE", "UNPACK", "SPLIT", "SPLIT_V", "STRIDED_SLICE", "SLICE", "PACK", "BATCH_MATMUL",
                         "CONCATENATION", "EXP", "ABS", "DIV")
#: the ops whose int8 kernels apply a fused activation (fusedActivationFunction); another op carrying one is refused
FUSES = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "ADD", "SUB",
                   "MUL", "DIV", "TRANSPOSE_CONV"})
SUPPORTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "ADD", "SUB",
             "MUL", "LOGISTIC", "HARD_SWISH", "GELU", "CONCATENATION", "RESHAPE", "SQUEEZE", "SOFTMAX", "PAD", "QUANTIZE",
             "DEQUANTIZE", "RELU", "RELU6", "TRANSPOSE", "STRIDED_SLICE", "MAXIMUM", "MINIMUM", "REDUCE_MAX",
             "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "TRANSPOSE_CONV", "TILE", "SQUARED_DIFFERENCE", "RSQRT",
             "BATCH_MATMUL", "TANH", "LEAKY_RELU", "PRELU", "PACK", "SUM", "ABS", "EXP", "LOG", "EXPAND_DIMS",
             *COMPARISONS, "SELECT", "SELECT_V2", "DIV", "SQRT", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH",
             "MIRROR_PAD", "PADV2", "SPLIT", "SPLIT_V", "SLICE", "UNPACK")
#: how to convert a model whose shapes TFLite resolves only at run time
DYNAMIC_HINT = ("convert the model for a batch of 1 (TFLiteConverter.from_concrete_functions with an input signature of "
                "shape [1, ...], as micronets.export(..., quantize='int8') does)")
_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8", 10: "float64"}
_NP = {"int8": np.int8, "uint8": np.uint8, "int32": np.int32, "int64": np.int64, "float32": np.float32, "int16": np.int16,
       "bool": np.bool_}


@dataclasses.dataclass(frozen=True)
class Edges:
    """How the caller's data meets the int8 graph.

    ``input_types``: per input (the graph's order), the .tflite model's input type (int8, uint8 or
    float32); ``inputs_uint8``: per input, for a uint8 input its quantisation (requantised to the
    graph's int8 input as it is read), else None. ``outputs_float``: per output, whether the .tflite
    output was float32 (a DEQUANTIZE)."""

    input_types: Tuple[str, ...]
    inputs_uint8: Tuple[Optional[Quant], ...]
    outputs_float: Tuple[bool, ...]

    @property
    def input_type(self) -> str:
        """The type of the first input (a one-input model's only one)."""
        return self.input_types[0]

    @property
    def input_uint8(self) -> Optional[Quant]:
        """The first input's uint8 quantisation (a one-input model's only one), if it is uint8."""
        return self.inputs_uint8[0]


def _schema():
    try:
        from tensorflow.lite.python import schema_py_generated as schema
    except ImportError as exc:  # pragma: no cover - TensorFlow is a dependency
        raise RuntimeError("reading .tflite files needs TensorFlow (tensorflow.lite.python.schema_py_generated)") from exc
    return schema


def _op_names(schema) -> Dict[int, str]:
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


class _Reader:
    def __init__(self, data: bytes, what: str):
        schema = _schema()
        self.schema = schema
        self.what = what
        self.data = data
        try:
            self.model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        except Exception as exc:
            raise UnsupportedModelError(f"{what} is not a readable .tflite flatbuffer ({exc.__class__.__name__}: {exc})") from None
        if not self.model.subgraphs:
            raise UnsupportedModelError(f"{what} has no subgraph")
        if len(self.model.subgraphs) != 1:
            raise UnsupportedModelError(f"{what} has {len(self.model.subgraphs)} subgraphs; only single-graph models are supported")
        self.sg = self.model.subgraphs[0]
        self.names = _op_names(schema)
        #: tensor index -> the value the importer computed from constants alone (``fold``)
        self.folded: Dict[int, np.ndarray] = {}

    def op_name(self, op) -> str:
        code = self.model.operatorCodes[op.opcodeIndex]
        value = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        if value == getattr(self.schema.BuiltinOperator, "CUSTOM", 32):
            return f"CUSTOM:{(code.customCode or b'').decode('utf-8', 'replace') if isinstance(code.customCode, bytes) else code.customCode}"
        return self.names.get(value, f"builtin {value}")

    def tensor(self, index: int):
        return self.sg.tensors[index]

    def tname(self, index: int) -> str:
        """Tensor ``index``'s name, or "#index" for a tensor the file leaves unnamed."""
        name = self.tensor(index).name
        if name is None or name == b"" or name == "":
            return f"#{index}"
        return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)

    def label(self, index: int) -> str:
        """Tensor ``index``'s name as an op's label: the converter joins a fused op's TF names with
        ';', and the first, shortened, says enough."""
        return self.tname(index).split(";")[0][-60:]

    def ttype(self, index: int) -> str:
        t = int(self.tensor(index).type)
        return _TYPES.get(t, f"type {t}")

    def shape(self, index: int) -> Tuple[int, ...]:
        s = self.tensor(index).shape
        return tuple(int(d) for d in (s if s is not None else []))

    def fold(self, index: int, value: np.ndarray) -> None:
        """Tensor ``index`` holds ``value``, computed at import from constants (a TILE or RESHAPE
        of one: the anchors of ST's SSD detectors): from now on it reads as a constant of the file."""
        if index in self.folded or self.constant(index) is not None:
            raise UnsupportedModelError(f"{self.what}: tensor '{self.tname(index)}' is written twice")
        self.folded[index] = value.reshape(self.shape(index))

    def constant(self, index: int) -> Optional[np.ndarray]:
        if index in self.folded:
            return self.folded[index]
        t = self.tensor(index)
        buf = self.model.buffers[t.buffer] if t.buffer is not None and t.buffer < len(self.model.buffers) else None
        raw = None
        if buf is not None and buf.data is not None and len(buf.data):
            raw = np.asarray(buf.data, np.uint8).tobytes()
        elif buf is not None and getattr(buf, "offset", 0) and getattr(buf, "size", 0):
            raw = self.data[buf.offset:buf.offset + buf.size]
        if raw is None:
            return None
        dtype = _NP.get(self.ttype(index))
        if dtype is None:
            raise UnsupportedModelError(f"tensor '{self.tname(index)}' holds {self.ttype(index)} constants, which are not supported")
        return np.frombuffer(raw, dtype).reshape(self.shape(index))

    def quant(self, index: int) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], int]:
        q = self.tensor(index).quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            return None, None, 0
        zp = q.zeroPoint if q.zeroPoint is not None else np.zeros(len(q.scale), np.int64)
        scales = np.asarray(q.scale, np.float32)
        if not np.all(np.isfinite(scales)):
            raise UnsupportedModelError(
                f"{self.what}: tensor '{self.tname(index)}' has quantisation scale {scales[~np.isfinite(scales)][0]}: its "
                f"calibrated range left float32's (TFLite's converter writes inf there); calibrate with inputs as the "
                f"model takes them, in their real range")
        return scales, np.asarray(zp, np.int64), int(q.quantizedDimension)


def read_tflite(source, *, reference: str = "tflm") -> Tuple[Graph, Edges, Dict[str, str]]:
    """Import a fully-int8 .tflite (a path, or the flatbuffer's bytes). Returns (graph, edges,
    notes): the int8 ops in execution order, how input and outputs are typed at the model's edges,
    and facts for the header comment. ``reference``: see :data:`REFERENCES`."""
    if reference not in REFERENCES:
        raise ValueError(f"reference={reference!r}; one of {', '.join(REFERENCES)}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, what = bytes(source), "the .tflite model"
    else:
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such .tflite file")
        with open(path, "rb") as fh:
            data = fh.read()
        what = path
    return _Importer(_Reader(data, what), reference).run()


class _Importer:
    def __init__(self, r: _Reader, reference: str = "tflm"):
        self.r = r
        self.reference = reference
        self.tensors: Dict[int, Tensor] = {}
        self.ops: List = []
        self.consumers = collections.Counter(i for op in r.sg.operators for i in op.inputs if i >= 0)
        for i in r.sg.outputs:
            self.consumers[i] += 1
        self.folded_pad: Dict[int, Tuple[int, Tuple[int, int, int, int]]] = {}  # pad output -> (pad input, pads)
        #: crop output -> (crop input, (top, left, height, width)), for a resize reading the crop in place
        self.folded_crop: Dict[int, Tuple[int, Tuple[int, int, int, int]]] = {}
        #: .tflite tensors [R, U] of a FULLY_CONNECTED over rows (and of elementwise ops of them)
        self.row_tensors: set = set()
        #: the operator being lowered's input tensors
        self.reading: Tuple[int, ...] = ()
        #: operators already lowered as part of an earlier one (a float NEG and its QUANTIZE)
        self.absorbed: set = set()
        #: the values of a dynamic batch's shape arithmetic (shape_fold), as it is met
        self.shape_values: Dict[int, np.ndarray] = {}
        #: bool outputs of int8 comparisons, computed by the SELECT / SELECT_V2 reading them
        self.conditions: Dict[int, Comparison] = {}
        #: shapes TFLite resolves at run time, as the ops writing them define them (resolve)
        self.resolved: Dict[int, Tuple[int, ...]] = {}

    # ------------------------------------------------------------------ helpers
    def fail(self, op_index: int, opname: str, why: str):
        raise UnsupportedModelError(f"{self.r.what}: op {op_index} ({opname}) {why}")

    def act_tensor(self, index: int, op_index: int, opname: str, rows: bool = False, unbatched: bool = False) -> Tensor:
        """Our int8 tensor for .tflite tensor ``index`` (created on first sight). ``rows``: a
        FULLY_CONNECTED's output, which may be [R, U] (a Dense over the pixels of a map, its
        input flattened to R rows by the converter): kept as our (R, U) tensor, readable only by the ops of
        ``ROW_SAFE`` (they do not index axes, which here have no batch axis in front)."""
        if index in self.conditions:
            self.fail(op_index, opname, f"reads '{self.r.tname(index)}', the result of a comparison; an int8 comparison "
                                        f"compiles only as the condition of a SELECT or SELECT_V2")
        if index in self.tensors:
            if index in self.row_tensors and opname not in ROW_SAFE:
                self.fail(op_index, opname, f"reads '{self.r.tname(index)}', the [rows, units] output of a FULLY_CONNECTED "
                                            f"over rows; only {', '.join(ROW_SAFE)} may read one")
            if self.is_parts(index) and opname not in PARTS_SAFE:
                self.fail(op_index, opname, f"reads '{self.r.tname(index)}' of shape {list(self.r.shape(index))}, whose "
                                            f"first axis holds parts of a sample (windows, stacked q/k/v), not a batch "
                                            f"of 1; only {', '.join(PARTS_SAFE)} may read one")
            return self.tensors[index]
        dtype = self.r.ttype(index)
        tname = self.r.tname(index)
        if self.r.constant(index) is not None:
            self.fail(op_index, opname, f"reads constant tensor '{tname}' where micronets' {opname} takes only "
                                        f"computed tensors")
        if dtype not in ("int8", "uint8"):
            kind = "float" if dtype.startswith("float") else dtype
            self.fail(op_index, opname, f"has {kind} tensor '{tname}': only fully-int8 models are supported "
                                        f"(convert with a representative dataset and TFLITE_BUILTINS_INT8)")
        scales, zps, _ = self.r.quant(index)
        if scales is None or len(scales) != 1:
            self.fail(op_index, opname, f"tensor '{tname}' has no per-tensor quantisation")
        shape = self.known_shape(index)
        if shape is None:
            self.fail(op_index, opname, f"tensor '{tname}' has a shape TFLite resolves at run time (signature "
                                        f"{[int(d) for d in self.r.tensor(index).shapeSignature]}); {DYNAMIC_HINT}")
        if rows and len(shape) == 2 and shape[0] > 1:
            self.row_tensors.add(index)
            shape = (1,) + tuple(shape)
        if unbatched and shape and shape[0] != 1:
            shape = (1,) + tuple(shape)
        if not shape or shape[0] != 1:
            self.fail(op_index, opname, f"tensor '{tname}' has shape {list(shape)}: its first axis, the batch's, must "
                                        f"be 1 (a model compiles one sample at a time; here {shape[0] if shape else 0} "
                                        f"parts, such as windows or stacked q/k/v, are in the batch axis)")
        t = Tensor(name=tname, shape=shape[1:] or (1,), dtype=dtype, quant=Quant(float(scales[0]), int(zps[0])))
        self.tensors[index] = t
        return t

    def constant_part(self, index: int, op_index: int, opname: str, out: Tensor) -> np.ndarray:
        """A constant operand of a copy (CONCATENATION) as int8 values of one sample, in the output's
        quantisation (the copy does no arithmetic)."""
        value, tname = self.r.constant(index), self.r.tname(index)
        scales, zps, _ = self.r.quant(index)
        if self.r.ttype(index) != "int8" or scales is None or len(scales) != 1 or \
                Quant(float(scales[0]), int(zps[0])) != out.quant:
            self.fail(op_index, opname, f"reads constant tensor '{tname}' quantised otherwise than its output; "
                                        f"only a constant in the output's int8 quantisation is supported")
        shape = tuple(value.shape)
        if not shape or shape[0] != 1:
            self.fail(op_index, opname, f"constant tensor '{tname}' has shape {list(shape)}; a batch of 1 is required")
        return value.reshape(shape[1:] or (1,))

    def new_output(self, index: int, op_index: int, opname: str, rows: bool = False, unbatched: bool = False) -> Tensor:
        """Our tensor for output ``index`` of op ``op_index``. ``unbatched``: its first axis may be
        longer than 1 (not a batch axis; kept in our shape, as RESHAPE keeps one); so it may be
        where a PARTS_SAFE op reads such a tensor."""
        if index in self.tensors:
            self.fail(op_index, opname, f"writes tensor '{self.r.tname(index)}' a second time")
        # an elementwise op of a [rows, units] tensor writes one too
        rows = rows or (opname in ROW_SAFE and opname != "RESHAPE" and any(i in self.row_tensors for i in self.reading))
        unbatched = unbatched or (opname in PARTS_SAFE and any(self.is_parts(i) for i in self.reading))
        return self.act_tensor(index, op_index, opname, rows, unbatched)

    def materialised(self, index: int, op_index: int, opname: str) -> Tensor:
        """Int8 constant ``index`` as a tensor of the arena, copied there from flash (a concatenation
        of one constant part), for an op whose kernel reads tensors only; the file's first axis is
        kept where it is not a batch of 1."""
        if index in self.tensors:
            return self.tensors[index]
        value, tname = self.r.constant(index), self.r.tname(index)
        scales, zps, _ = self.r.quant(index)
        if self.r.ttype(index) != "int8" or scales is None or len(scales) != 1:
            self.fail(op_index, opname, f"reads constant tensor '{tname}', which is not int8 quantised per tensor")
        shape = tuple(value.shape)
        shape = shape[1:] if len(shape) > 1 and shape[0] == 1 else shape
        t = Tensor(name=self.r.label(index), shape=shape or (1,), dtype="int8", quant=Quant(float(scales[0]), int(zps[0])))
        self.tensors[index] = t
        self.add(Int8Concat(t.name, [value.reshape(t.shape)], t, -1), opname)
        return t

    def reshaped(self, k: int, opname: str, x: Tensor, index: int, shape: Sequence[int], label: str) -> None:
        """.tflite tensor ``index``, of ``shape`` (the file's), holds ``x``'s values in order
        (RESHAPE, and UNPACK / PACK of one step through a batch of 1): a view of x's bytes; or,
        where the file quantises it otherwise (MCUNet's last RESHAPE), a copy read at its scale
        (TFLite's kernels copy the bytes as they are; a view keeps its base's quantisation)."""
        r = self.r
        shape = tuple(int(d) for d in shape)
        if shape[0] != 1 or len(shape) == 1:  # rank 1 (the converter's squeeze of 1x1x1xC to C): no batch axis
            shape = (1,) + shape
        scales, zps, _ = r.quant(index)
        if scales is None or len(scales) != 1 or r.ttype(index) != x.dtype:
            self.fail(k, opname, f"changes the type or quantisation ({x.dtype} {x.quant} -> {r.ttype(index)} "
                                 f"{None if scales is None else [float(v) for v in scales]})")
        quant = Quant(float(scales[0]), int(zps[0]))
        if quant == x.quant:
            self.tensors[index] = Tensor(name=label, shape=shape[1:] or (1,), base=x.storage, dtype=x.dtype, quant=quant)
        else:
            out = self.tensors[index] = Tensor(name=label, shape=shape[1:] or (1,), dtype=x.dtype, quant=quant)
            self.add(Int8Slice(label, x, out, [0] * len(x.shape), [1] * len(x.shape), x.shape), opname)

    def our_axis(self, k: int, opname: str, index: int, x: Tensor, axis: int, verb: str) -> Tuple[int, int]:
        """(the file's axis, ours) for ``axis`` of .tflite tensor ``index`` (our ``x``): ours is
        the file's on a tensor of parts (is_parts), one less past a batch axis, which is refused."""
        parts = self.is_parts(index)
        full = tuple(x.shape) if parts else (1,) + tuple(x.shape)
        axis %= len(full)
        if axis == 0 and not parts:
            self.fail(k, opname, f"{verb} the batch axis of {list(full)}")
        return axis, axis if parts else axis - 1

    def slices_along(self, k: int, opname: str, x: Tensor, outs: Sequence[int], a: int, sizes: Sequence[int]):
        """SPLIT / UNPACK: output j the next ``sizes[j]`` indices of our axis ``a`` of ``x``, copied
        as they are (TFLite's kernels do no arithmetic: the same quantisation in and out)."""
        start = 0
        for o, count in zip(outs, sizes):
            starts, counts = [0] * len(x.shape), list(x.shape)
            starts[a], counts[a] = start, count
            start += count
            out = self.new_output(o, k, opname, unbatched=True)
            if out.quant != x.quant:
                self.fail(k, opname, f"output '{self.r.label(o)}' is quantised otherwise than its input")
            try:
                self.add(Int8Slice(self.r.label(o), x, out, starts, [1] * len(x.shape), counts), opname)
            except UnsupportedModelError as exc:
                self.fail(k, opname, str(exc))

    def is_parts(self, index: int) -> bool:
        """Whether our tensor for .tflite tensor ``index`` keeps the file's first axis, which holds
        parts of a sample (windows, stacked q/k/v, time steps) rather than a batch of 1: its shape
        is the file's, of rank 2 or more, first axis not 1 (a [rows, units] tensor is one too)."""
        t = self.tensors.get(index)
        if t is None or index in self.row_tensors:
            return False
        shape = tuple(self.r.shape(index))
        return len(shape) >= 2 and shape[0] != 1 and tuple(t.shape) == shape

    def weights(self, index: int, op_index: int, opname: str, dtype: str):
        if index < 0:
            return None, None
        arr = self.r.constant(index)
        tname = self.r.tname(index)
        if arr is None:
            self.fail(op_index, opname, f"reads '{tname}' as weights, but it is not a constant")
        if self.r.ttype(index) != dtype:
            kind = "float" if self.r.ttype(index).startswith("float") else self.r.ttype(index)
            self.fail(op_index, opname, f"has {kind} weights '{tname}' ({dtype} expected): hybrid or float models are not supported")
        scales, zps, _ = self.r.quant(index)
        if dtype == "int8" and (scales is None or np.any(zps != 0)):
            self.fail(op_index, opname, f"weights '{tname}' are not symmetric int8 (per-tensor or per-channel, zero point 0)")
        return arr, scales

    def shape(self, index: int) -> Tuple[int, ...]:
        """.tflite tensor ``index``'s shape for a batch of 1: stored, or resolved (resolve)."""
        return self.resolved.get(index) or self.r.shape(index)

    def known_shape(self, index: int) -> Optional[Tuple[int, ...]]:
        """shape(index), or None while it is a placeholder (an unknown axis past the batch's in
        its signature, not yet resolved)."""
        signature = self.r.tensor(index).shapeSignature
        if index not in self.resolved and signature is not None and any(int(d) < 0 for d in list(signature)[1:]):
            return None
        return self.shape(index)

    def resolve(self, index: int, shape: Tuple[int, ...], op_index: int, opname: str) -> Tuple[int, ...]:
        """An op's output ``index`` is ``shape`` by the op's own rule. A model converted for a
        dynamic batch stores a placeholder for a shape TFLite resolves at run time (a RESHAPE to
        rows of a Dense over a sequence, and the FULLY_CONNECTED reading them): where its signature
        says so, ``shape`` takes its place; a stored shape that is not a placeholder must agree."""
        shape = tuple(int(d) for d in shape)
        stored = self.r.shape(index)
        if stored != shape:
            signature = self.r.tensor(index).shapeSignature
            if signature is None or all(int(d) >= 0 for d in signature):
                self.fail(op_index, opname, f"writes '{self.r.tname(index)}' of shape {list(stored)}, not {list(shape)}")
            self.resolved[index] = shape
        return shape

    def int_operand(self, index: int) -> Optional[np.ndarray]:
        """An integer operand's value (axes, bounds, sizes, a permutation): a constant of the
        file, or a value of its shape arithmetic (shape_fold); None if neither."""
        if index in self.shape_values:
            return self.shape_values[index]
        return self.r.constant(index)

    def const_operand(self, index: int, k: int, opname: str):
        """(int8 values, Quant) when .tflite tensor ``index`` is a per-tensor quantised int8
        constant; None when it is computed."""
        if index in self.tensors:
            return None
        arr = self.r.constant(index)
        if arr is None:
            return None
        if self.r.ttype(index) != "int8":
            self.fail(k, opname, f"has a {self.r.ttype(index)} constant operand '{self.r.tname(index)}'; int8 expected")
        scales, zps, _ = self.r.quant(index)
        if scales is None or len(scales) != 1:
            self.fail(k, opname, f"constant operand '{self.r.tname(index)}' has no per-tensor quantisation")
        return arr, Quant(float(scales[0]), int(zps[0]))

    def operand(self, index: int, k: int, opname: str):
        """An elementwise operand: const_operand's (int8 values, Quant) for a constant, else our tensor."""
        const = self.const_operand(index, k, opname)
        return const if const is not None else self.act_tensor(index, k, opname)

    def add(self, op, opname: str):
        op.index = len(self.ops)
        op.ident = f"L{op.index}"
        op.tflite_op = opname
        self.ops.append(op)
        return op

    # ------------------------------------------------------------------ conversion
    def caller_input(self, in_index: int, operators, skip: set):
        """(index of the int8 tensor the graph reads for .tflite input ``in_index``, the input's type,
        its quantisation when uint8 else None): an int8 input itself, or a float32 / uint8 input's
        one QUANTIZE to int8 (added to ``skip``: the header quantises as it reads)."""
        r = self.r
        in_type = r.ttype(in_index)
        if in_type == "int8":
            return in_index, in_type, None
        if in_type not in ("float32", "uint8"):
            raise UnsupportedModelError(f"{r.what}: input '{r.tname(in_index)}' is {in_type}; int8, uint8 or float32 "
                                        f"(with a QUANTIZE) expected")
        first = [k for k, op in enumerate(operators) if in_index in list(op.inputs)]
        if (len(first) != 1 or r.op_name(operators[first[0]]) != "QUANTIZE"
                or r.ttype(operators[first[0]].outputs[0]) != "int8"):
            readers = ", ".join(f"op {j} ({r.op_name(operators[j])}"
                                + (f" to {r.ttype(operators[j].outputs[0])})" if r.op_name(operators[j]) == "QUANTIZE" else ")")
                                for j in first)
            raise UnsupportedModelError(f"{r.what}: not a fully-int8 model: its {in_type} input '{r.tname(in_index)}' is read "
                                        f"by {readers}, not by one QUANTIZE to int8 (convert with a representative "
                                        f"dataset and TFLITE_BUILTINS_INT8)")
        skip.add(first[0])
        in_uint8 = None
        if in_type == "uint8":
            scales, zps, _ = r.quant(in_index)
            in_uint8 = Quant(float(scales[0]), int(zps[0]))
        return int(operators[first[0]].outputs[0]), in_type, in_uint8

    def run(self):
        r = self.r
        sg = r.sg
        operators = list(sg.operators)
        skip = set()
        graph_inputs, input_types, inputs_uint8 = [], [], []
        for k, in_index in enumerate(int(i) for i in sg.inputs):
            if not any(in_index in list(op.inputs) for op in operators):
                # an input no op reads (a Keras input no output depends on: the converter keeps it,
                # of its own type): an argument of the header's entries, never read
                shape = tuple(int(d) for d in (self.known_shape(in_index) or ()))
                if not shape or shape[0] != 1:
                    raise UnsupportedModelError(f"{r.what}: input '{r.tname(in_index)}' has shape {list(shape)}; a batch "
                                                f"of 1 is required")
                graph_input = Tensor(name=input_name(k), shape=shape[1:] or (1,), dtype="int8", quant=Quant(1.0, 0))
                in_type, in_uint8 = r.ttype(in_index), None
            else:
                graph_in_index, in_type, in_uint8 = self.caller_input(in_index, operators, skip)
                graph_input = self.act_tensor(graph_in_index, -1, "input")
                graph_input = Tensor(name=input_name(k), shape=graph_input.shape, dtype="int8", quant=graph_input.quant)
                self.tensors[graph_in_index] = graph_input
            graph_inputs.append(graph_input)
            input_types.append(in_type)
            inputs_uint8.append(in_uint8)
        if not graph_inputs:
            raise UnsupportedModelError(f"{r.what} has no inputs")

        outputs_float = []
        out_indices = []
        for o in sg.outputs:
            o = int(o)
            t = r.ttype(o)
            if t == "float32":
                prod = [k for k, op in enumerate(operators) if o in list(op.outputs)]
                if len(prod) != 1 or r.op_name(operators[prod[0]]) != "DEQUANTIZE":
                    raise UnsupportedModelError(f"{r.what}: output '{r.tname(o)}' is float32 and not made by a DEQUANTIZE: "
                                                f"only fully-int8 models are supported")
                skip.add(prod[0])
                out_indices.append(int(operators[prod[0]].inputs[0]))
                outputs_float.append(True)
            elif t in ("int8", "uint8"):
                out_indices.append(o)
                outputs_float.append(False)
            else:
                raise UnsupportedModelError(f"{r.what}: output '{r.tname(o)}' is {t}; int8, uint8 or float32 expected")

        for k, op in enumerate(operators):
            if k in skip or k in self.absorbed:
                continue
            value = shape_fold.evaluate(r, op, self.int_operand, self.known_shape)
            if value is not None:  # shape arithmetic: a value, no code
                self.shape_values[int(op.outputs[0])] = value
                continue
            if self.fold_constant(op):  # a rearranged constant: a constant, no code
                continue
            self.convert(k, op, operators)
        outputs = []
        for o in out_indices:
            if o not in self.tensors:
                raise UnsupportedModelError(f"{r.what}: output '{r.tname(o)}' is not computed by any supported op")
            outputs.append(self.tensors[o])
        if not self.ops:
            raise UnsupportedModelError(f"{r.what}: the model computes nothing")
        graph = Graph(ops=tuple(self.ops), inputs=tuple(graph_inputs), outputs=tuple(outputs))
        edges = Edges(input_types=tuple(input_types), inputs_uint8=tuple(inputs_uint8), outputs_float=tuple(outputs_float))
        desc = self.r.model.description
        notes = {"Source": os.path.basename(r.what) if r.what != "the .tflite model" else ".tflite bytes",
                 "Bit-exact with": "TFLM" if self.reference == "tflm" else "TFLite's BUILTIN_REF kernels"}
        if desc:
            notes["Converter"] = desc.decode("utf-8", "replace") if isinstance(desc, bytes) else str(desc)
        return graph, edges, notes

    #: ops that only rearrange their first input's values, folded where it is a constant
    REARRANGING = ("TILE", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "STRIDED_SLICE")

    def fold_constant(self, op) -> bool:
        """Whether ``op`` computes from constants alone, its output then a constant too, computed
        here (``_Reader.fold``) and read as the file's constants are (a CONCATENATION's constant
        parts, an elementwise op's constant operand). ST's SSD detectors tile their int8 anchors by
        a batch size computed from SHAPE, then reshape them; Swin's shifted windows number image
        regions (int32 shape arithmetic, shape_fold), compare them (bool), CAST and QUANTIZE the
        result and scale it by a constant (MUL: TFLite's integer arithmetic, exactly)."""
        from micronets.compiler import quant as q

        r = self.r
        name = r.op_name(op)
        ins, outs = [int(i) for i in op.inputs], [int(i) for i in op.outputs]
        if len(outs) != 1 or not ins or ins[0] < 0:
            return False
        out_type = r.ttype(outs[0])
        opt = op.builtinOptions
        if name == "CAST":  # of a known integer or bool value (shape_fold's) to float32
            value = self.int_operand(ins[0])
            if value is None or out_type != "float32":
                return False
            r.fold(outs[0], np.asarray(value).astype(np.float32))
            return True
        if name == "QUANTIZE" and r.ttype(ins[0]) == "float32" and out_type in ("int8", "uint8"):
            value, (scales, zps, _) = r.constant(ins[0]), r.quant(outs[0])
            if value is None or scales is None or len(scales) != 1:
                return False
            r.fold(outs[0], q.quantize_float(value, Quant(float(scales[0]), int(zps[0])), out_type))
            return True
        if out_type != "int8" or any(i >= 0 and r.ttype(i) == "int8" and r.constant(i) is None for i in ins):
            return False
        quants = [r.quant(i) for i in ins[:2] + outs if r.ttype(i) == "int8"]
        if any(s is None or len(s) != 1 for s, _, _ in quants):
            return False
        if name == "MUL":  # TFLite's int8 MUL of two constants
            (s1, z1, _), (s2, z2, _), (so, zo, _) = quants
            multiplier, shift = q.quantize_multiplier(float(s1[0]) * float(s2[0]) / float(so[0]))
            lo, hi = q.activation_range(int(opt.fusedActivationFunction or 0), Quant(float(so[0]), int(zo[0])))
            a, b = np.broadcast_arrays(r.constant(ins[0]).astype(np.int64) - int(z1[0]),
                                       r.constant(ins[1]).astype(np.int64) - int(z2[0]))
            product = [int(zo[0]) + q.mbqm(int(x) * int(y), multiplier, shift) for x, y in zip(a.reshape(-1), b.reshape(-1))]
            r.fold(outs[0], np.clip(np.asarray(product, np.int64), lo, hi).astype(np.int8).reshape(a.shape))
            return True
        if name not in self.REARRANGING or len(quants) != 2 or \
                (float(quants[0][0][0]), int(quants[0][1][0])) != (float(quants[1][0][0]), int(quants[1][1][0])):
            return False  # (requantised: converted as an op)
        value = r.constant(ins[0])
        if name == "TILE":
            multiples = self.int_operand(ins[1])
            if multiples is None:
                return False
            value = np.tile(value, [int(m) for m in np.asarray(multiples).reshape(-1)])
        elif name == "STRIDED_SLICE":
            bounds = [self.int_operand(i) if i >= 0 else None for i in ins[1:4]]
            if bounds[0] is None or bounds[1] is None or int(opt.ellipsisMask or 0) or int(opt.newAxisMask or 0) \
                    or bool(getattr(opt, "offset", False)):
                return False
            try:
                ranges = shape_fold.slice_ranges(value.shape, bounds[0], bounds[1], bounds[2], int(opt.beginMask or 0),
                                                 int(opt.endMask or 0), int(opt.shrinkAxisMask or 0))
            except ValueError:
                return False
            value = value[np.ix_(*[np.asarray(list(rg), np.int64) for rg in ranges])]
        if value.size != int(np.prod(r.shape(outs[0]))):
            return False
        r.fold(outs[0], value)
        return True

    def convert(self, k: int, op, operators):
        r = self.r
        name = r.op_name(op)
        ins = [int(i) for i in op.inputs]
        outs = [int(i) for i in op.outputs]
        self.reading = tuple(ins)
        if name not in SUPPORTED:
            # an op of integer values computed from a shape (not from the data)
            shapes = any(i in self.shape_values for i in ins)
            writes = r.label(outs[0]) if outs else "?"
            raise UnsupportedModelError(f"{r.what}: op {k} ({name}, writing '{writes}') is not supported "
                                        f"by micronets' int8 path" + (f"; it computes a shape at run time: {DYNAMIC_HINT}"
                                                                      if shapes else f" (`micronets info --layers` lists "
                                                                                     f"the {len(SUPPORTED)} it supports)"))
        opt = op.builtinOptions
        label = r.label(outs[0])
        fused = int(getattr(opt, "fusedActivationFunction", 0) or 0)
        if fused not in (0, 1, 2, 3):
            self.fail(k, name, f"uses fused activation {fused}; supported: none, RELU, RELU_N1_TO_1, RELU6")
        if fused and name not in FUSES:  # (its kernel would drop it: TFLite's reference refuses a fused CONCATENATION)
            self.fail(k, name, f"has a fused activation ({fused}); micronets fuses one into "
                               f"{', '.join(sorted(FUSES))} only")

        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            x_index = ins[0]
            extra = (0, 0, 0, 0)
            if x_index in self.folded_pad:
                x_index, extra = self.folded_pad[x_index]
            x = self.act_tensor(x_index, k, name)
            filt, fscales = self.weights(ins[1], k, name, "int8")
            bias = self.weights(ins[2], k, name, "int32")[0] if len(ins) > 2 else None
            out = self.new_output(outs[0], k, name)
            strides = (int(opt.strideH), int(opt.strideW))
            dilation = (int(opt.dilationHFactor or 1), int(opt.dilationWFactor or 1))
            kh, kw = int(filt.shape[1]), int(filt.shape[2])
            pads = self._pads(k, name, x, out, (kh, kw), strides, dilation, int(opt.padding), extra)
            if name == "CONV_2D":
                if filt.shape[3] != x.hwc[2]:
                    self._grouped_conv(k, name, label, x, out, filt, bias, fscales, strides, pads, dilation, fused)
                    return
                if (kh, kw) == (1, 1) and x.hwc[:2] == (1, 1) and out.hwc[:2] == (1, 1) and not any(pads):
                    # a 1x1 convolution of one pixel (squeeze-excite, a classifier head) is a
                    # fully connected layer with per-channel scales and fixed-point requantisation
                    # in both references: the dense kernels' unpacked-row path runs it faster
                    self.add(Int8Dense(label, x, out, filt.reshape(filt.shape[0], -1), bias, fscales, fused,
                                       from_conv=True), name)
                    return
                cls = Int8Conv2D
            elif x.hwc[2] == 1:
                # a depthwise convolution of one input channel (multiplier M) is a convolution of
                # one input channel into M: the same sums and per-channel requantisation in both
                # references, and a conv can open a row stream over the caller's input (TFLM's
                # person_detect starts so, its 48x48x8 output never stored whole then)
                cls, filt = Int8Conv2D, np.transpose(filt, (3, 1, 2, 0))
            else:
                cls = Int8DepthwiseConv2D
            self.add(cls(label, x, out, filt, bias, fscales, strides, pads, dilation, fused), name)
        elif name == "FULLY_CONNECTED":
            if int(getattr(opt, "weightsFormat", 0) or 0) != 0:
                self.fail(k, name, "uses shuffled weights; only the default format is supported")
            x = self.act_tensor(ins[0], k, name)
            w, wscales = self.weights(ins[1], k, name, "int8")
            bias = self.weights(ins[2], k, name, "int32")[0] if len(ins) > 2 and ins[2] >= 0 else None
            # TFLite's rule for the output: the input's values in rows of the weights' depth, or
            # the input's dims with the last one the units (keep_num_dims)
            x_shape, (units, depth) = self.shape(ins[0]), w.shape
            size = int(np.prod(x_shape))
            if getattr(opt, "keepNumDims", False) and x_shape and x_shape[-1] == depth:
                self.resolve(outs[0], (*x_shape[:-1], units), k, name)
            elif not getattr(opt, "keepNumDims", False) and size % depth == 0:
                self.resolve(outs[0], (size // depth, units), k, name)
            out = self.new_output(outs[0], k, name, rows=True)
            self.add(Int8Dense(label, x, out, w, bias, wscales, fused, double_requant=self.reference == "tflite-ref"), name)
        elif name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            x_index, extra = ins[0], (0, 0, 0, 0)
            if x_index in self.folded_pad:  # (a MAX_POOL_2D with VALID padding: see PAD)
                x_index, extra = self.folded_pad[x_index]
            x = self.act_tensor(x_index, k, name)
            out = self.new_output(outs[0], k, name)
            kernel = (int(opt.filterHeight), int(opt.filterWidth))
            strides = (int(opt.strideH), int(opt.strideW))
            pads = self._pads(k, name, x, out, kernel, strides, (1, 1), int(opt.padding), extra)
            border = x.quant.zero_point if any(extra) else None
            self.add(Int8Pool(label, x, out, kernel, strides, pads, name == "AVERAGE_POOL_2D", fused, border), name)
        elif name == "MEAN":
            x = self.act_tensor(ins[0], k, name)
            rank, axes = self._reduced_axes(k, name, ins[1], x, "averages")
            out = self.new_output(outs[0], k, name)
            # TFLM and (TensorFlow 2.21's) BUILTIN_REF compute every int8 MEAN, whatever its axes
            # and even when the output shares the input's scale and zero point, with
            # QuantizedMeanOrSum's fixed-point arithmetic (tests/test_int8.py checks both)
            if rank == 4 and axes == [1, 2]:
                self.add(Int8Mean(label, x, out), name)
            else:
                try:
                    self.add(Int8MeanAxes(label, x, out, [a - 1 for a in axes if a > 0]), name)
                except UnsupportedModelError as exc:
                    self.fail(k, name, str(exc))
        elif name == "SUM":
            x = self.act_tensor(ins[0], k, name)
            rank, axes = self._reduced_axes(k, name, ins[1], x, "sums")
            out = self.new_output(outs[0], k, name)
            if self.reference == "tflite-ref":
                # TensorFlow 2.21's BUILTIN_REF SUM gives neither the sum nor TFLM's values (a
                # column of int8 values summing to -1 came out as -82 where TFLM and TFLite's
                # default kernel give 5): nothing to be exact with
                self.fail(k, name, "has no sound reference in TFLite's BUILTIN_REF kernels (TensorFlow 2.21's disagrees "
                                   "with TFLM and with TFLite's default kernel); compile with reference='tflm'")
            if out.quant == x.quant:
                # TFLM requantises this sum too; BUILTIN_REF adds the int8 values as they are
                self.fail(k, name, "sums into its input's scale and zero point, where TFLM and TFLite's reference "
                                   "kernels disagree; not supported")
            try:
                self.add(Int8MeanAxes(label, x, out, [a - 1 for a in axes if a > 0], mode="sum"), name)
            except UnsupportedModelError as exc:
                self.fail(k, name, str(exc))
        elif name in ("RELU", "RELU6"):
            x = self.act_tensor(ins[0], k, name)
            out = self.new_output(outs[0], k, name)
            self.add(Int8Relu(label, x, out, six=name == "RELU6", reference=self.reference), name)
        elif name == "TRANSPOSE":
            x = self.act_tensor(ins[0], k, name)
            perm = self.int_operand(ins[1])
            if perm is None:
                self.fail(k, name, "permutes by axes that are not a constant")
            # a first axis holding parts of a sample (windows, q/k/v) in or out: kept in our shape
            full = tuple(x.shape) if self.is_parts(ins[0]) else None
            out = self.new_output(outs[0], k, name, unbatched=True)
            try:
                self.add(Int8Transpose(label, x, out, np.asarray(perm).reshape(-1).tolist(), full), name)
            except UnsupportedModelError as exc:
                self.fail(k, name, str(exc))
        elif name in ("DEPTH_TO_SPACE", "SPACE_TO_DEPTH"):
            x = self.act_tensor(ins[0], k, name)
            out = self.new_output(outs[0], k, name)
            kind = Int8DepthToSpace if name == "DEPTH_TO_SPACE" else Int8SpaceToDepth
            try:
                self.add(kind(label, x, out, int(opt.blockSize)), name)
            except UnsupportedModelError as exc:
                self.fail(k, name, str(exc))
        elif name == "TILE":
            x = self.act_tensor(ins[0], k, name)
            multiples = self.int_operand(ins[1])
            if multiples is None:
                self.fail(k, name, "tiles by multiples that are not a constant")
            multiples = [int(m) for m in np.asarray(multiples).reshape(-1)]
            if len(multiples) != len(x.shape) + 1 or multiples[0] != 1:
                self.fail(k, name, f"tiles a {[1, *x.shape]} tensor by {multiples}: the batch axis must stay 1")
            out = self.new_output(outs[0], k, name)
            try:
                self.add(Int8Tile(label, x, out, multiples[1:]), name)
            except UnsupportedModelError as exc:
                self.fail(k, name, str(exc))
        elif name == "STRIDED_SLICE":
            x = self.act_tensor(ins[0], k, name)
            begin, end = self.int_operand(ins[1]), self.int_operand(ins[2])
            steps = self.int_operand(ins[3]) if len(ins) > 3 and ins[3] >= 0 else None
            if begin is None or end is None or (len(ins) > 3 and ins[3] >= 0 and steps is None):
                self.fail(k, name, "slices with bounds that are not constants")
            if int(opt.ellipsisMask or 0) or int(opt.newAxisMask or 0) or bool(getattr(opt, "offset", False)):
                self.fail(k, name, "uses an ellipsis, a new axis or offset bounds; not supported")
            # a tensor the converter made time-major ([T, 1, C], Keras' TimeDistributed unrolled: its
            # first axis is not a batch of 1) is sliced on all its axes; any other has a batch axis
            unbatched = tuple(r.shape(ins[0])) == tuple(x.shape) and x.shape[0] != 1
            full = tuple(x.shape) if unbatched else (1,) + tuple(x.shape)
            try:
                ranges = shape_fold.slice_ranges(full, begin, end, steps, int(opt.beginMask or 0), int(opt.endMask or 0),
                                                 int(opt.shrinkAxisMask or 0))
            except ValueError as exc:
                self.fail(k, name, str(exc))
            for axis, rng in enumerate(ranges):
                if len(rng) == 0:
                    self.fail(k, name, f"selects nothing along axis {axis}")
            starts, stepl, counts = [rg.start for rg in ranges], [rg.step for rg in ranges], [len(rg) for rg in ranges]
            if unbatched:
                starts, stepl, counts = [0] + starts, [1] + stepl, [1] + counts  # a batch axis of 1 in front
            elif starts[0] != 0 or counts[0] != 1:
                self.fail(k, name, "slices the batch axis")
            readers = [o for o in operators if outs[0] in list(o.inputs)]
            scales, zps, _ = r.quant(outs[0])
            if (len(full) == 4 and stepl[1:3] == [1, 1] and (starts[3], counts[3]) == (0, full[3]) and len(readers) == 1
                    and self.consumers[outs[0]] == 1 and list(readers[0].inputs)[0] == outs[0]
                    and r.op_name(readers[0]) in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")
                    and scales is not None and r.ttype(outs[0]) == x.dtype
                    and Quant(float(scales[0]), int(zps[0])) == x.quant):
                # a crop (Keras' crop_to_aspect_ratio) that only a resize reads: the resize reads
                # its window of the input in place (Int8Resize.box), no copy is made
                self.folded_crop[outs[0]] = (ins[0], (starts[1], starts[2], counts[1], counts[2]))
                return
            out = self.new_output(outs[0], k, name)
            try:
                self.add(Int8Slice(label, x, out, starts[1:], stepl[1:], counts[1:]), name)
            except UnsupportedModelError as exc:
                self.fail(k, name, str(exc))
        elif name == "SLICE":  # (keras.ops.slice, ops.image.crop_images: ShiftViT's shifts) begin and size
            x = self.act_tensor(ins[0], k, name)
            begin, size = self.int_operand(ins[1]), self.int_operand(ins[2])
            if begin is None or size is None:
                self.fail(k, name, "slices with bounds that are not constants")
            full = (1,) + tuple(x.shape)
            begin, size = [int(v) for v in np.asarray(begin).reshape(-1)], [int(v) for v in np.asarray(size).reshape(-1)]
            size = [d - b if n == -1 else n for d, b, n in zip(full, begin, size)]  # -1: to the end
            if (len(begin) != len(full) or len(size) != len(full)
                    or any(b < 0 or n < 1 or b + n > d for d, b, n in zip(full, begin, size))):
                self.fail(k, name, f"slices {list(full)} from {begin} by {size}")
            if begin[0] != 0 or size[0] != 1:
                self.fail(k, name, "slices the batch axis")
            out = self.new_output(outs[0], k, name)
            try:
                self.add(Int8Slice(label, x, out, begin[1:], [1] * len(x.shape), size[1:]), name)
            except UnsupportedModelError as exc:
                self.fail(k, name, str(exc))
        elif name in ("ADD", "MUL", "SUB"):
            consts = [self.const_operand(i, k, name) for i in ins[:2]]
            if consts[0] is not None and consts[1] is not None:
                self.fail(k, name, "has two constant operands (nothing to compute at run time)")
            if consts[0] is not None or consts[1] is not None:
                j = 0 if consts[0] is not None else 1
                x = self.act_tensor(ins[1 - j], k, name)
                if name == "SUB" and j == 0:  # c - x
                    out = self.new_output(outs[0], k, name)
                    try:
                        self.add(Int8ConstMinus(label, consts[0][0], consts[0][1], x, out, fused), name)
                    except ValueError as exc:
                        self.fail(k, name, str(exc))
                    return
                out = self.new_output(outs[0], k, name)
                cls = {"ADD": Int8AddConst, "MUL": Int8MulConst, "SUB": Int8SubConst}[name]
                try:
                    self.add(cls(label, x, consts[j][0], consts[j][1], out, fused), name)
                except UnsupportedModelError as exc:
                    self.fail(k, name, str(exc))
                return
            a = self.act_tensor(ins[0], k, name)
            b = self.act_tensor(ins[1], k, name)
            out = self.new_output(outs[0], k, name)
            if name in ("ADD", "SUB"):
                # same sizes ((1, 1, C) + (C,): the converter squeezes one operand) add element by
                # element; otherwise numpy broadcasting
                try:
                    if name == "ADD":
                        self.add(Int8Add(label, a, b, out, fused), name)
                    else:
                        self.add(Int8Sub(label, a, b, out, fused), name)
                except UnsupportedModelError as exc:
                    self.fail(k, name, str(exc))
            else:
                try:
                    self.add(Int8Mul(label, a, b, out, fused), name)
                except UnsupportedModelError as exc:
                    self.fail(k, name, str(exc))
        elif name == "DIV":
            operands = [self.operand(i, k, name) for i in ins[:2]]
            tensors = [isinstance(o, Tensor) for o in operands]
            if not any(tensors):
                self.fail(k, name, "has two constant operands (nothing to compute at run time)")
            out = self.new_output(outs[0], k, name)
            try:
                if all(tensors):
                    self.add(Int8Div(label, operands[0], operands[1], out, fused, self.reference), name)
                else:
                    j = tensors.index(False)
                    self.add(Int8DivConst(label, operands[1 - j], *operands[j], out, j == 0, fused, self.reference), name)
            except ValueError as exc:
                self.fail(k, name, str(exc))
        elif name in ("MAXIMUM", "MINIMUM"):
            operands = [self.operand(i, k, name) for i in ins[:2]]
            if not any(isinstance(o, Tensor) for o in operands):
                self.fail(k, name, "has two constant operands (nothing to compute at run time)")
            out = self.new_output(outs[0], k, name)
            try:
                self.add(Int8MinMax(label, operands, out, maximum=name == "MAXIMUM"), name)
            except UnsupportedModelError as exc:
                self.fail(k, name, str(exc))
        elif name in COMPARISONS:
            # computed by the select(s) reading it (int8_select): only its operands are kept
            operands = [self.operand(i, k, name) for i in ins[:2]]
            if not any(isinstance(o, Tensor) for o in operands):
                self.fail(k, name, "compares two constants (nothing to compute at run time)")
            if outs[0] in self.tensors or outs[0] in self.conditions:
                self.fail(k, name, f"writes tensor '{r.tname(outs[0])}' a second time")
            self.conditions[outs[0]] = Comparison(name, *operands)
        elif name in ("SELECT", "SELECT_V2"):
            cond = self.conditions.get(ins[0])
            if cond is None:
                const = r.ttype(ins[0]) == "bool" and r.constant(ins[0]) is not None
                why = (f"selects by the constant '{r.tname(ins[0])}' (a mask, as an attention's causal mask)" if const else
                       f"selects by '{r.tname(ins[0])}', which is not the result of an int8 comparison")
                why += f"; only a comparison ({', '.join(COMPARISONS)}) is supported as an int8 condition"
                scales, _, _ = r.quant(ins[1])
                if const and scales is not None and len(scales) == 1 and float(scales[0]) > 1e6:
                    why += (f" (and here the converter quantised the values it chooses from to a scale of "
                            f"{float(scales[0]):.3g}, where every unmasked value rounds to one level: compile it in float32)")
                self.fail(k, name, why)
            operands = [self.operand(i, k, name) for i in ins[1:3]]
            out = self.new_output(outs[0], k, name)
            try:
                self.add(Int8Select(label, cond, *operands, out), name)
            except UnsupportedModelError as exc:
                self.fail(k, name, str(exc))
        elif name == "REDUCE_MAX":
            # the largest value of each channel over the map (Keras GlobalMaxPooling2D): a max
            # pooling whose window is the whole map, as both references compare stored values; over
            # other axes (channels: keras.ops.max(x, axis=-1)) a gather like MEAN's
            x = self.act_tensor(ins[0], k, name)
            rank, axes = self._reduced_axes(k, name, ins[1], x, "takes the maximum")
            out = self.new_output(outs[0], k, name)
            if x.quant != out.quant:
                self.fail(k, name, f"changes the quantisation ({x.quant} -> {out.quant}); TFLite keeps it")
            try:
                if axes == list(range(1, rank - 1)) and rank in (3, 4):
                    h, w = x.hwc[0], x.hwc[1]
                    self.add(Int8Pool(label, x, out, (h, w), (h, w), (0, 0, 0, 0), False), name)
                else:
                    self.add(Int8MeanAxes(label, x, out, [a - 1 for a in axes if a > 0], mode="max"), name)
            except UnsupportedModelError as exc:
                self.fail(k, name, str(exc))
        elif name == "CONCATENATION":
            out = self.new_output(outs[0], k, name)
            xs = [self.act_tensor(i, k, name) if self.r.constant(i) is None else self.constant_part(i, k, name, out)
                  for i in ins]
            axis = int(getattr(opt, "axis", -1)) % (len(out.shape) + 1)
            if axis == 0:
                self.fail(k, name, f"concatenates along the batch axis of {list(r.shape(outs[0]))}")
            try:
                self.add(Int8Concat(label, xs, out, axis - 1), name)
            except UnsupportedModelError as exc:
                self.fail(k, name, str(exc))
        elif name == "PACK":
            # a stack of tensors along a new axis: a concatenation of views of them with that axis
            # (length 1) in place. On axis 0 (the converter's unrolled TimeDistributed: T [1, C]
            # tensors to [T, 1, C]) the output's first axis is not a batch of 1 and is kept.
            xs = [self.act_tensor(i, k, name) for i in ins]
            tshape = r.shape(outs[0])
            axis = int(getattr(opt, "axis", 0)) % max(len(tshape), 1)
            if axis == 0 and len(xs) == 1 and tshape[0] == 1 and not self.is_parts(ins[0]):
                # one sample stacked into a batch of 1 (RNNoise's time steps of one): the sample itself
                self.reshaped(k, name, xs[0], outs[0], tshape, label)
                return
            out = self.new_output(outs[0], k, name, unbatched=axis == 0)
            a = axis if axis == 0 else axis - 1
            view = out.shape[:a] + (1,) + out.shape[a + 1:]
            if tshape[0] == 1 and axis == 0 or any(x.size != int(np.prod(view)) for x in xs) or len(xs) != out.shape[a]:
                self.fail(k, name, f"stacks {[list(r.shape(i)) for i in ins]} into {list(tshape)} along axis {axis}")
            parts = [Tensor(name=f"{x.name}@{j}", shape=view, base=x.storage, dtype=x.dtype, quant=x.quant)
                     for j, x in enumerate(xs)]
            try:
                self.add(Int8Concat(label, parts, out, a), name)
            except UnsupportedModelError as exc:
                self.fail(k, name, str(exc))
        elif name == "HARD_SWISH":
            x = self.act_tensor(ins[0], k, name)
            out = self.new_output(outs[0], k, name)
            try:
                self.add(Int8HardSwish(label, x, out, reference=self.reference), name)
            except ValueError as exc:
                self.fail(k, name, str(exc))
        elif name == "SQUARED_DIFFERENCE":
            a, b = (self.act_tensor(i, k, name) for i in ins[:2])
            out = self.new_output(outs[0], k, name)
            try:
                self.add(Int8SquaredDifference(label, a, b, out, reference=self.reference), name)
            except UnsupportedModelError as exc:
                self.fail(k, name, str(exc))
        elif name == "BATCH_MATMUL":
            # a constant factor (ViTDet's relative position tables) is copied into the arena first
            a, b = (self.act_tensor(i, k, name) if self.r.constant(i) is None else self.materialised(i, k, name)
                    for i in ins[:2])
            out = self.new_output(outs[0], k, name)
            try:
                self.add(Int8BatchMatMul(label, a, b, out, bool(getattr(opt, "adjX", False)),
                                         bool(getattr(opt, "adjY", False))), name)
            except UnsupportedModelError as exc:
                self.fail(k, name, str(exc))
        elif name in ("EXP", "LOG"):  # TFLite's tables (TFLM has no int8 kernel for either)
            x = self.act_tensor(ins[0], k, name)
            out = self.new_output(outs[0], k, name)
            try:
                self.add((Int8Exp if name == "EXP" else Int8Log)(label, x, out), name)
            except ValueError as exc:
                self.fail(k, name, str(exc))
        elif name == "ABS":
            x = self.act_tensor(ins[0], k, name)
            self.add(Int8Abs(label, x, self.new_output(outs[0], k, name)), name)
        elif name == "SQRT":  # TFLite's float steps (TFLM has no int8 SQRT)
            x = self.act_tensor(ins[0], k, name)
            self.add(Int8Sqrt(label, x, self.new_output(outs[0], k, name)), name)
        elif name == "RSQRT":
            x = self.act_tensor(ins[0], k, name)
            self.add(Int8Rsqrt(label, x, self.new_output(outs[0], k, name)), name)
        elif name == "LOGISTIC":
            x = self.act_tensor(ins[0], k, name)
            out = self.new_output(outs[0], k, name)
            self.add(Int8Logistic(label, x, out, reference=self.reference), name)
        elif name == "TANH":
            x = self.act_tensor(ins[0], k, name)
            out = self.new_output(outs[0], k, name)
            try:
                self.add(Int8Tanh(label, x, out, reference=self.reference), name)
            except ValueError as exc:
                self.fail(k, name, str(exc))
        elif name == "LEAKY_RELU":
            x = self.act_tensor(ins[0], k, name)
            self.add(Int8LeakyRelu(label, x, self.new_output(outs[0], k, name), float(opt.alpha)), name)
        elif name == "PRELU":
            # the slopes are a constant (Keras PReLU's alpha, quantised per tensor)
            alpha = self.const_operand(ins[1], k, name)
            if alpha is None:
                self.fail(k, name, "has slopes that are computed, not a constant")
            x = self.act_tensor(ins[0], k, name)
            out = self.new_output(outs[0], k, name)
            try:
                self.add(Int8Prelu(label, x, alpha[0], alpha[1], out), name)
            except UnsupportedModelError as exc:
                self.fail(k, name, str(exc))
        elif name == "GELU":
            x = self.act_tensor(ins[0], k, name)
            out = self.new_output(outs[0], k, name)
            self.add(Int8Gelu(label, x, out, approximate=bool(getattr(opt, "approximate", False))), name)
        elif name in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
            x = self.act_tensor(ins[0], k, name)
            shape = r.shape(outs[0])
            if name == "RESHAPE" and len(ins) > 1 and ins[1] >= 0:
                target = self.int_operand(ins[1])
                if target is None:
                    self.fail(k, name, f"computes its target shape '{r.tname(ins[1])}' at run time from ops micronets does "
                                       f"not evaluate; {DYNAMIC_HINT}")
                target = np.asarray(target).reshape(-1).tolist()
                resolved = shape_fold.reshape_target(target, x.size)
                if resolved is None:
                    self.fail(k, name, f"reshapes {list(x.shape)} ({x.size} values) to {target}")
                shape = self.resolve(outs[0], resolved, k, name)
            if not shape or int(np.prod(shape)) != x.size:
                self.fail(k, name, f"reshapes {x.shape} to {list(shape)}")
            self.reshaped(k, name, x, outs[0], shape, label)
        elif name in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
            x_index, box = self.folded_crop.get(ins[0], (ins[0], None))
            x = self.act_tensor(x_index, k, name)
            size = self.int_operand(ins[1])
            if size is None:
                self.fail(k, name, "resizes to a size that is not a constant")
            out = self.new_output(outs[0], k, name)
            if tuple(int(v) for v in np.asarray(size).reshape(-1)) != tuple(out.shape[:2]):
                self.fail(k, name, f"resizes to {np.asarray(size).reshape(-1).tolist()} but writes {list(out.shape)}")
            try:
                self.add(Int8Resize(label, x, out, name == "RESIZE_BILINEAR", bool(opt.alignCorners),
                                    bool(opt.halfPixelCenters), box), name)
            except UnsupportedModelError as exc:
                self.fail(k, name, str(exc))
        elif name == "TRANSPOSE_CONV":  # inputs: output shape, filter, input[, bias]
            x = self.act_tensor(ins[2], k, name)
            filt, fscales = self.weights(ins[1], k, name, "int8")
            bias = self.weights(ins[3], k, name, "int32")[0] if len(ins) > 3 else None
            out = self.new_output(outs[0], k, name)
            size = self.int_operand(ins[0])
            if size is None or [int(v) for v in np.asarray(size).reshape(-1)][1:] != list(out.hwc if len(out.shape) == 3 else ()):
                self.fail(k, name, f"states the output shape {None if size is None else np.asarray(size).tolist()} "
                                   f"where it writes {[1, *out.shape]}")
            if len(x.shape) != 3 or int(opt.padding) not in (0, 1):
                self.fail(k, name, f"reads a {list(x.shape)} map with padding {int(opt.padding)}; HxWxC, SAME or VALID")
            try:
                self.add(Int8ConvTranspose(label, x, out, filt, bias, fscales, (int(opt.strideH), int(opt.strideW)),
                                           int(opt.padding) == 0, fused), name)
            except UnsupportedModelError as exc:
                self.fail(k, name, str(exc))
        elif name == "SOFTMAX":
            x = self.act_tensor(ins[0], k, name)
            out = self.new_output(outs[0], k, name)
            self.add(Int8Softmax(label, x, out, float(opt.beta)), name)
        elif name in ("PAD", "PADV2", "MIRROR_PAD"):
            x = self.act_tensor(ins[0], k, name)
            scales, zps, _ = r.quant(outs[0])
            value = int(zps[0]) if zps is not None else 0  # PAD's border: the output's zero point
            if name == "PADV2" and len(ins) > 2 and ins[2] >= 0:
                # PADV2's own border value (YOLOv5's -inf before a max pooling), stored quantised
                # as the output; TFLite's kernel writes its raw value
                given = self.r.constant(ins[2])
                if given is None or given.size != 1 or r.ttype(ins[2]) != x.dtype:
                    self.fail(k, name, f"pads with '{r.tname(ins[2])}', not one {x.dtype} constant")
                gs, gz, _ = r.quant(ins[2])
                if gs is None or Quant(float(gs[0]), int(gz[0])) != Quant(float(scales[0]), int(zps[0])):
                    self.fail(k, name, "pads with a value quantised otherwise than its output")
                value = int(np.asarray(given).reshape(-1)[0])
            pads = self.int_operand(ins[1])
            rank = len(x.shape) + 1
            if (pads is None or rank not in (3, 4) or pads.shape != (rank, 2) or np.any(pads[0] != 0)
                    or np.any(pads[-1] != 0)):
                self.fail(k, name, f"pads {x.shape} by {None if pads is None else pads.tolist()}; only spatial padding "
                                   "of an HWC map or a sequence is supported")
            if rank == 4:
                p = (int(pads[1][0]), int(pads[1][1]), int(pads[2][0]), int(pads[2][1]))
            else:  # a sequence (L, C) is a 1 x L x C map: its padding is columns
                p = (0, 0, int(pads[1][0]), int(pads[1][1]))
            readers = [j for j, o in enumerate(operators) if outs[0] in list(o.inputs)]
            reader = r.op_name(operators[readers[0]]) if len(readers) == 1 else None
            if (rank == 4 and len(readers) == 1 and self.consumers[outs[0]] == 1
                    and (reader in ("CONV_2D", "DEPTHWISE_CONV_2D")
                         or (reader == "MAX_POOL_2D" and int(operators[readers[0]].builtinOptions.padding) == 1))
                    and list(operators[readers[0]].inputs)[0] == outs[0] and name != "MIRROR_PAD"
                    and value == int(zps[0])):
                # taps on the border read the zero point, which the convolution's skipped taps mean
                # too; a VALID max pooling's windows take it as one more value (Int8Pool.border):
                # the padding folds into the reader, no padded copy is made
                if Quant(float(scales[0]), int(zps[0])) == x.quant:
                    self.folded_pad[outs[0]] = (ins[0], p)
                    return
            out = self.new_output(outs[0], k, name)
            mode = ("reflect", "symmetric")[int(opt.mode)] if name == "MIRROR_PAD" else "zero"
            try:
                self.add(Int8Pad(label, x, out, p, value, mode), name)
            except UnsupportedModelError as exc:
                self.fail(k, name, str(exc))
        elif name in ("SPLIT", "SPLIT_V"):
            # each output a slice of the input along one axis (TFLite copies the values as they are)
            x_index, axis_index = (ins[1], ins[0]) if name == "SPLIT" else (ins[0], ins[2])
            x = self.act_tensor(x_index, k, name)
            axis = self.int_operand(axis_index)
            if axis is None or np.asarray(axis).size != 1:
                self.fail(k, name, "splits along an axis that is not a constant")
            axis, a = self.our_axis(k, name, x_index, x, int(np.asarray(axis).reshape(-1)[0]), "splits")
            n = x.shape[a]
            if name == "SPLIT":
                if len(outs) < 1 or n % len(outs):
                    self.fail(k, name, f"splits {n} along axis {axis} into {len(outs)} equal parts")
                sizes = [n // len(outs)] * len(outs)
            else:
                sizes = self.int_operand(ins[1])
                if sizes is None:
                    self.fail(k, name, "splits into sizes that are not constants")
                sizes = [int(v) for v in np.asarray(sizes).reshape(-1)]
                if sizes.count(-1) == 1:  # the rest
                    sizes[sizes.index(-1)] = n - (sum(sizes) + 1)
                if len(sizes) != len(outs) or min(sizes, default=0) < 1 or sum(sizes) != n:
                    self.fail(k, name, f"splits {n} along axis {axis} into {sizes}")
            self.slices_along(k, name, x, outs, a, sizes)
        elif name == "UNPACK":
            # each output one index of the axis (Swin's q, k, v = qkv[0], qkv[1], qkv[2] of a stack
            # the converter put first): a slice, the values copied as they are
            x = self.act_tensor(ins[0], k, name)
            if int(getattr(opt, "axis", 0)) % (len(x.shape) + 1) == 0 and not self.is_parts(ins[0]) and len(outs) == 1:
                # the batch of 1 unpacked (RNNoise's unrolled time steps of one): the sample itself
                self.reshaped(k, name, x, outs[0], r.shape(outs[0]), label)
                return
            axis, a = self.our_axis(k, name, ins[0], x, int(getattr(opt, "axis", 0)), "unpacks")
            if len(outs) != x.shape[a]:
                self.fail(k, name, f"unpacks {x.shape[a]} along axis {axis} into {len(outs)} tensors")
            self.slices_along(k, name, x, outs, a, [1] * len(outs))
        elif name == "QUANTIZE":
            x = self.act_tensor(ins[0], k, name)
            out = self.new_output(outs[0], k, name)
            self.add(Int8Requantize(label, x, out), name)
        elif name == "DEQUANTIZE":
            island = self._float_island(k, outs[0], operators)
            if island is not None:  # LayerNormalization's -mean, an ELU: the converter keeps them in float
                steps, members, quantize = island
                x = self.act_tensor(ins[0], k, name)
                out = self.new_output(int(operators[quantize].outputs[0]), quantize, "QUANTIZE")
                try:
                    self.add(Int8FloatIsland(label, x, out, steps), name)
                except ValueError as exc:
                    self.fail(k, name, f"starts float ops ({', '.join(s[0] for s in steps)}): {exc}")
                self.absorbed.update((*members, quantize))
                return
            # name the float op(s) it feeds (their tensors carry the Keras layers' names): what the
            # converter could not quantise, the user's lead
            readers = [f"op {j} ({r.op_name(o)}) '{r.tname(list(o.outputs)[0])}'"
                       for j, o in enumerate(operators) if outs[0] in list(o.inputs)]
            fed = f" for {', '.join(readers[:3])}{' ...' if len(readers) > 3 else ''}, kept in float" if readers else ""
            self.fail(k, name, f"dequantises '{r.tname(outs[0])}' inside the graph{fed}: only fully-int8 models are "
                               "supported")

    def _float_island(self, k: int, index: int, operators):
        """(steps, member operator indices, QUANTIZE index) where float tensor ``index`` (op k's
        output, a DEQUANTIZE's) is read only by ops of int8_float_island.FLOAT_OPS, reading it, each
        other and scalar float constants, elementwise, whose one way out is a QUANTIZE to int8 of
        the last one's result; else None (the op names the float ops it feeds)."""
        r = self.r
        size = int(np.prod(r.shape(index)))
        values = {index: 0}  # island tensor -> operand number (0: the input, n: step n's result)
        steps, members, quantize = [], [], None
        for j in range(k + 1, len(operators)):
            o = operators[j]
            ins = [int(i) for i in o.inputs]
            if not any(i in values for i in ins):
                continue
            name, out = r.op_name(o), int(o.outputs[0])
            if name == "QUANTIZE":
                if quantize is not None or r.ttype(out) != "int8":
                    return None
                quantize = j
                continue
            if name not in FLOAT_OPS or quantize is not None or len(o.outputs) != 1:
                return None
            operands = []
            for i in ins:
                if i in values:
                    operands.append(values[i])
                    continue
                if r.ttype(i) == "bool":  # an int8 comparison of the island's input with a constant
                    holds = self._input_comparison(i, int(operators[k].inputs[0]), operators[:j])
                    if holds is None:
                        return None
                    operands.append(holds)
                    continue
                c = r.constant(i) if r.ttype(i) == "float32" else None
                if c is None or c.size != 1:
                    return None  # another activation, or a constant per element
                operands.append(float(c.reshape(-1)[0]))
            if int(np.prod(r.shape(out))) != size:
                return None
            fused = int(getattr(o.builtinOptions, "fusedActivationFunction", 0) or 0)
            steps.append((name, tuple(operands), fused if fused in (0, 1, 2, 3) else -1))
            if steps[-1][2] < 0:
                return None
            members.append(j)
            values[out] = len(steps)
        if quantize is None or not steps or int(operators[quantize].inputs[0]) != int(operators[members[-1]].outputs[0]):
            return None
        readers = collections.Counter(int(i) for j in (*members, quantize) for i in operators[j].inputs)
        if any(readers[t] != self.consumers[t] for t in values):
            return None  # a float value read elsewhere too (or a model output)
        return tuple(steps), tuple(members), quantize

    def _input_comparison(self, index: int, x_index: int, earlier):
        """For each raw value of int8 tensor ``x_index``, whether the comparison writing bool tensor
        ``index`` (an op of ``earlier``: x against a scalar int8 constant) holds; None for any
        other comparison."""
        r = self.r
        for o in earlier:
            if index in [int(t) for t in o.outputs]:
                name, ins = r.op_name(o), [int(t) for t in o.inputs]
                if name not in COMPARISONS or x_index not in ins or len(ins) != 2:
                    return None
                other = ins[1 - ins.index(x_index)]
                scales, zps, _ = r.quant(x_index)
                try:
                    const = self.const_operand(other, -1, name) if r.ttype(other) == "int8" else None
                    if const is None or const[0].size != 1 or scales is None or len(scales) != 1:
                        return None
                    return holds_against_constant(name, Quant(float(scales[0]), int(zps[0])), *const,
                                                  x_first=ins[0] == x_index)
                except UnsupportedModelError:  # a constant without one scale, a scale of 1 or more
                    return None
        return None

    def _reduced_axes(self, k, name, index, x, verb):
        """(rank with the batch axis, sorted axes) of a reduction of ``x`` over the constant
        tensor ``index``, negative axes resolved; a clear error when they are not a constant."""
        axes = self.int_operand(index)
        if axes is None:
            self.fail(k, name, f"{verb} over axes that are not a constant")
        rank = len(x.shape) + 1
        return rank, sorted(set(int(a) % rank for a in np.asarray(axes).reshape(-1)))

    def _grouped_conv(self, k, name, label, x, out, filt, bias, fscales, strides, pads, dilation, fused):
        """A CONV_2D whose filter holds CIN / G input channels (Keras Conv2D(groups=G)): with one
        input channel a group, a depthwise convolution (output channel o reads input o // M, as
        DEPTHWISE_CONV_2D's multiplier M = COUT / CIN); else G convolutions of the input's channel
        slices, concatenated. The same sums and per-channel requantisation as the references'."""
        cin, cin_g, cout = x.hwc[2], int(filt.shape[3]), int(filt.shape[0])
        if len(x.shape) != 3 or cin % cin_g or cout % (cin // cin_g):
            self.fail(k, name, f"has a filter {list(filt.shape)} for {cin} input channels: not a grouping of them")
        groups = cin // cin_g
        if cin_g == 1:
            self.add(Int8DepthwiseConv2D(label, x, out, np.transpose(filt, (3, 1, 2, 0)), bias, fscales, strides, pads,
                                         dilation, fused), name)
            return
        cout_g = cout // groups
        scales = np.asarray(fscales, np.float64).reshape(-1)
        parts = []
        for g in range(groups):
            part = slice(g * cout_g, (g + 1) * cout_g)
            xs = Tensor(name=f"{x.name}[group {g}]", shape=x.shape[:-1] + (cin_g,), dtype=x.dtype, quant=x.quant)
            self.add(Int8Slice(f"{label} group {g} inputs", x, xs, (0, 0, g * cin_g), (1, 1, 1), x.shape[:-1] + (cin_g,)), name)
            og = Tensor(name=f"{out.name}[group {g}]", shape=out.shape[:-1] + (cout_g,), dtype=out.dtype, quant=out.quant)
            self.add(Int8Conv2D(f"{label} group {g}", xs, og, filt[part], None if bias is None else bias[part],
                                scales[part] if scales.size > 1 else scales, strides, pads, dilation, fused), name)
            parts.append(og)
        self.add(Int8Concat(label, parts, out), name)

    def _pads(self, k, name, x, out, kernel, strides, dilation, padding, extra):
        """(top, bottom, left, right) from TFLite's SAME (0) / VALID (1) padding, plus a folded PAD;
        checks the output shape the file states."""
        h, w, _ = x.hwc
        h += extra[0] + extra[1]
        w += extra[2] + extra[3]
        eff = [(kernel[0] - 1) * dilation[0] + 1, (kernel[1] - 1) * dilation[1] + 1]
        if padding == 0:  # SAME
            ho, wo = -(-h // strides[0]), -(-w // strides[1])
            th = max((ho - 1) * strides[0] + eff[0] - h, 0)
            tw = max((wo - 1) * strides[1] + eff[1] - w, 0)
            pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        elif padding == 1:  # VALID
            pads = (0, 0, 0, 0)
        else:
            self.fail(k, name, f"uses padding {padding}")
        pads = tuple(a + b for a, b in zip(pads, extra))
        hx, wx, _ = x.hwc
        ho = conv_output(hx, eff[0], strides[0], pads[0], pads[1])
        wo = conv_output(wx, eff[1], strides[1], pads[2], pads[3])
        if (ho, wo) != out.hwc[:2]:
            self.fail(k, name, f"output {out.hwc} does not match its {kernel} window over {x.hwc} ({ho}x{wo} expected)")
        return pads
