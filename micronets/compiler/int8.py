"""The int8 pipeline: (Keras model + calibration images | .tflite file) -> int8 Graph -> plan -> header.

Quantisation parameters come from TensorFlow's own converter (post-training full-integer
quantisation with a representative dataset: :func:`quantize_keras`); :func:`read_tflite` turns the
resulting (or any fully-int8) flatbuffer into typed int8 ops; the memory planner places every
int8 tensor in one byte arena, to the byte, with the same in-place rules as the float path; the
emitter renders ``templates/header_int8.h.j2`` with one kernel template per op kind
(``templates/kernels/int8_*.h.j2``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from micronets.compiler.activations import c_double
from micronets.compiler.compile import _align
from micronets.compiler.graph import Graph, input_name
from micronets.compiler.plan import MemoryPlan, arena_lower_bound, plan_memory
from micronets.compiler.quant import c_array, mbqm, quantize_float, quantize_multiplier
from micronets.compiler.tflite import Edges, read_tflite

#: fewest calibration samples accepted (TFLite's converter needs a representative spread of
#: inputs to choose each tensor's range; a few hundred is what the docs recommend)
MIN_CALIBRATION_SAMPLES = 16
_CTYPES = {np.dtype(np.float64): "double", np.dtype(np.int8): "int8_t", np.dtype(np.uint8): "uint8_t", np.dtype(np.int32): "int32_t", np.dtype(np.int16): "int16_t"}
_WHAT = {"w": "weights (int8)", "b": "bias", "f": "bias with the input offset folded in",
         "q": "bias with the input offset folded in (low 24 bits) and requantisation shift (high 8 bits)",
         "m": "requantisation multipliers (Q0.31)", "s": "requantisation shifts",
         "d": "requantisation scales (double, as TFLite's BUILTIN_REF)", "t": "output for each int8 input + 128",
         "k": "constant operand", "y": "input row of each output row", "x": "input column of each output column"}


# ------------------------------------------------------------------------------- calibration
def check_calibration(model, calibration):
    """The calibration inputs as float32 (N, *input shape), or for a model of several inputs a list
    of such arrays, one per input in ``model.inputs`` order, all of the same N; ValueError when
    missing, too few, wrongly shaped or not finite, naming the input."""
    inputs = list(getattr(model, "inputs", None) or ())
    if calibration is None:
        what = "(N, H, W, C)" if len(inputs) <= 1 else f"(a list of {len(inputs)} arrays, one per input, each (N, ...))"
        raise ValueError(f"quantize='int8' needs calibration=: a few hundred representative inputs shaped like the "
                         f"training data {what}, from which TFLite's converter picks each tensor's range")
    shapes = [tuple(int(d) for d in t.shape[1:]) for t in inputs]
    if len(shapes) <= 1:
        return _checked_calibration(calibration, tuple(int(d) for d in model.input_shape[1:]), "calibration")
    if not isinstance(calibration, (list, tuple)) or len(calibration) != len(shapes):
        got = f"a list of {len(calibration)}" if isinstance(calibration, (list, tuple)) else type(calibration).__name__
        raise ValueError(f"model '{model.name}' has {len(shapes)} inputs: calibration must be a list of {len(shapes)} "
                         f"arrays, one per input in model.inputs order; got {got}")
    arrays = [_checked_calibration(c, shape, f"calibration[{k}] (input '{t.name}')")
              for k, (c, shape, t) in enumerate(zip(calibration, shapes, inputs))]
    counts = [len(a) for a in arrays]
    if len(set(counts)) > 1:
        raise ValueError(f"calibration arrays hold {', '.join(map(str, counts))} samples: one sample is one value "
                         f"of every input, so they must hold the same number")
    return arrays


def _checked_calibration(calibration, shape, what: str) -> np.ndarray:
    """One input's calibration array as float32 (N, *shape); ValueError naming ``what``."""
    try:
        x = np.asarray(calibration, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an array of numbers; got {type(calibration).__name__}") from None
    if x.ndim == len(shape) and tuple(x.shape) == shape:
        raise ValueError(f"{what} is one input of shape {x.shape}; pass at least {MIN_CALIBRATION_SAMPLES} "
                         f"(N, {', '.join(map(str, shape))})")
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise ValueError(f"{what} has shape {tuple(x.shape)}; the model takes (N, {', '.join(map(str, shape))})")
    if len(x) < MIN_CALIBRATION_SAMPLES:
        raise ValueError(f"{what} has {len(x)} samples; at least {MIN_CALIBRATION_SAMPLES} are needed "
                         f"(a few hundred representative inputs are recommended)")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} holds NaN or infinite values")
    return x


def load_calibration(path, input_shape, raw: bool = False) -> np.ndarray:
    """Calibration inputs from a .npy file (N, H, W, C; taken as the model takes them) or a folder of
    images (class subfolders or images directly inside): float32 in [0, 1] like micronets'
    training data, or for a model that takes raw values (``raw``: ``takes_raw_input``, a model
    starting with its own Rescaling) the pixels 0..255."""
    from micronets import data
    from micronets.compiler.compile import pixels_as_input

    path = os.fspath(path)
    if os.path.isfile(path):
        if not path.lower().endswith(".npy"):
            raise ValueError(f"calibration file {path} is not a .npy array (or pass a folder of images)")
        return np.load(path, allow_pickle=False)
    if not os.path.isdir(path):
        raise ValueError(f"calibration data not found: {path}")
    if len(input_shape) != 3 or input_shape[2] not in (1, 3):
        raise ValueError(f"calibration {path}: a folder of images fits only an image model (HxWx1 or HxWx3); this "
                         f"one takes {'x'.join(map(str, input_shape))}: pass a .npy array of its inputs")
    files = data.image_files_under(path)
    if not files:
        raise ValueError(f"no images in {path} (or its subfolders) to calibrate with")
    return pixels_as_input(np.stack([data.load_image(f, input_shape) for f in files]), raw)


def quantize_keras(model, calibration) -> bytes:
    """The Keras model as a fully-int8 .tflite (int8 inputs and outputs), quantised by TFLite's
    converter with ``calibration`` as the representative dataset (for a model of several inputs a
    list of arrays, one per input; the .tflite's inputs are in ``model.inputs`` order)."""
    import logging
    import tempfile
    import warnings

    import keras
    import tensorflow as tf

    from micronets.compiler.compile import layers_in_order
    from micronets.compiler.ops.base import UnsupportedModelError
    from micronets.compiler.ops.recurrent import GATES
    from micronets.compiler.trace import keras_in_float32

    x = check_calibration(model, calibration)
    first = next((layer for layer in layers_in_order(model) if type(layer).__name__ != "InputLayer"), None)
    if type(first).__name__ == "Embedding":
        raise UnsupportedModelError(f"layer '{first.name}' (Embedding): the int8 path has no lookups of token ids "
                                    f"(TFLite's converter keeps the ids and the lookup in float); export this "
                                    f"model as float32")
    several = isinstance(x, list)
    model = _float_input(model, x)
    for outer in layers_in_order(model):
        # refused before converting: TensorFlow 2.21's converter crashed the process (SIGSEGV) on an
        # LSTM, also one inside a user's own layer class (hence the sublayers), on ConvLSTM2D and
        # on keras.layers.RNN of a user's cell: any recurrent layer
        for layer in outer._flatten_layers(include_self=True, recursive=True):
            if isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional)) or type(layer).__name__ in GATES:
                inside = f" inside layer '{outer.name}' ({type(outer).__name__})" if layer is not outer else ""
                raise UnsupportedModelError(f"layer '{layer.name}' ({type(layer).__name__}){inside}: the int8 path has no "
                                            f"recurrent kernels; export this model as float32")
    logging.getLogger("absl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
    specs = [tf.TensorSpec([1] + [int(d) for d in t.shape[1:]], tf.float32) for t in model.inputs]

    # positional arguments, so the .tflite's inputs keep model.inputs' order (the converter
    # orders a concrete function's inputs as its arguments)
    @tf.function(input_signature=specs)
    def infer(*inp):
        return model(list(inp) if several else inp[0], training=False)

    # from the concrete function alone: with the Keras model too, weights stay variables and
    # calibration fails. Traced in float32 (TFLite's int8 kernels take no float16 operations)
    with keras_in_float32(model) as kept:
        if kept:
            name, policy = next(iter(kept.items()))
            raise UnsupportedModelError(f"layer '{name}' holds {policy} weights (dtype policy '{policy}'): TFLite's "
                                        f"converter quantises float32 models; build the model under the float32 "
                                        f"or a mixed policy (mixed_{policy}: float32 weights)")
        converter = tf.lite.TFLiteConverter.from_concrete_functions([infer.get_concrete_function()])

    def dataset():  # one sample: a value of every input
        for k in range(len(x[0] if several else x)):
            yield [a[k][None] for a in x] if several else [x[k][None]]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    saved = os.dup(2)  # the converter's C++ side prints to fd 2; show it only on failure
    sink = tempfile.TemporaryFile()
    os.dup2(sink.fileno(), 2)
    try:
        data = converter.convert()
    except Exception as exc:
        sink.seek(0)
        os.write(saved, sink.read()[-4000:])
        raise ValueError(f"TFLite's converter could not quantise the model to int8: {exc}") from None
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        sink.close()
    _not_finite_refused(model, x, data)
    return data


def _not_finite_refused(model, calibration, data: bytes) -> None:
    """ValueError where the converter left float32 values in ``data`` because the model computes
    NaN or inf on the calibration (a BatchNormalization of negative moving variance): it picks no
    int8 range for them and keeps the graph after them in float, which the importer then refused
    as a float output of the .tflite, naming neither the cause nor the Keras model. A conversion
    without float values (or with its float islands, which the importer compiles) is not run."""
    from micronets.compiler.tflite import _Reader

    r = _Reader(data, "the converted model")
    if all(r.ttype(int(t)) != "float32" for op in r.sg.operators for t in list(op.outputs)):
        return
    several = isinstance(calibration, list)
    for start in range(0, len(calibration[0] if several else calibration), 32):
        batch = [c[start:start + 32] for c in calibration] if several else calibration[start:start + 32]
        outs = model(batch, training=False)
        for k, out in enumerate(outs if isinstance(outs, (list, tuple)) else [outs]):
            values = np.asarray(out)
            bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
            if bad.any():
                raise ValueError(
                    f"model '{model.name}' computes {'NaN' if np.isnan(values).any() else 'inf'} in output "
                    f"{k} on calibration sample {start + int(np.argmax(bad))}: TFLite's converter picks no int8 range for "
                    f"such values and leaves the graph in float; check the weights (a BatchNormalization with a "
                    f"negative moving variance gives NaN) and that the calibration is in the model's input range")


def _float_input(model, calibration: np.ndarray):
    """``model`` itself, or for a model whose Input is of an integer dtype (``keras.Input((H, W, C),
    dtype="uint8")`` and a Rescaling: raw pixels) the same layers called on a float32 Input. The
    converter kept the integer Input's cast in float (DEQUANTIZE, CAST): not a fully-int8 model.
    The values such an Input takes are integers, which float32 holds exactly, so the two compute
    the same; ``calibration`` must hold such values (ValueError naming the dtype's range if not)."""
    import keras

    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1:
        return model
    dtype = keras.backend.standardize_dtype(inputs[0].dtype)
    if "int" not in dtype:
        return model
    info = np.iinfo(dtype)
    if not (np.all(calibration == np.round(calibration)) and calibration.min() >= info.min
            and calibration.max() <= info.max):
        raise ValueError(f"the model's Input takes {dtype} values: calibration must hold whole numbers in "
                         f"[{info.min}, {info.max}] (raw values as the model is fed them); got values in "
                         f"[{calibration.min():g}, {calibration.max():g}]")
    float_input = keras.Input(shape=inputs[0].shape[1:], batch_size=inputs[0].shape[0], dtype="float32",
                              name=inputs[0].name)
    return keras.models.clone_model(model, input_tensors=float_input, clone_function=lambda layer: layer)


# ------------------------------------------------------------------------------- the model
class Int8Model:
    """An int8 model compiled for one class name: graph, plan, edges, figures and header."""

    def __init__(self, graph: Graph, plan: MemoryPlan, edges: Edges, classname: str, arch: str,
                 input_scale: float, input_offset: float, notes: Optional[Dict[str, str]] = None,
                 tflite: Optional[bytes] = None, class_names: Optional[Sequence[str]] = None):
        self.graph = graph
        self.plan = plan
        self.edges = edges
        self.classname = classname
        self.arch = arch
        self.input_scale = float(input_scale)
        self.input_offset = float(input_offset)
        self.notes = dict(notes or {})
        self.tflite = tflite
        self.class_names = None if class_names is None else tuple(class_names)
        self._header: Optional[str] = None

    quantize = "int8"

    @property
    def output_sizes(self) -> List[int]:
        return [int(t.size) for t in self.graph.outputs]

    @property
    def several_inputs(self) -> bool:
        """Whether the model takes several inputs: its header's entries take one int8 or one float
        array per input (no uint8 entry: one pixel mapping cannot fit an image and a vector alike)."""
        return len(self.graph.inputs) > 1

    def quantized_bytes(self) -> int:
        """Bytes of the object's array the several-input float entry quantises the inputs it reads into."""
        if not self.several_inputs:
            return 0
        return max(1, sum(int(t.size) for t, read in zip(self.graph.inputs, self.graph.inputs_read()) if read))

    def input_table(self) -> np.ndarray:
        """int8 value the graph sees for each raw uint8 input value (a one-input model's)."""
        q = self.graph.input.quant
        p = np.arange(256)
        if self.edges.input_uint8 is not None:  # a uint8 model: its QUANTIZE to int8, exactly
            u = self.edges.input_uint8
            mult, shift = quantize_multiplier(float(u.scale) / float(q.scale))
            return np.array([min(127, max(-128, mbqm(int(v) - u.zero_point, mult, shift) + q.zero_point)) for v in p], np.int8)
        real = (p.astype(np.float64) * self.input_scale + self.input_offset).astype(np.float32)
        return quantize_float(real, q, "int8")

    def input_offset_int(self) -> Optional[int]:
        """c when the table is exactly p + c for every raw value p (the usual case: images
        calibrated over [0, 1] read as p / 255 quantise to p - 128), so ``predict(const uint8_t*)``
        adds c instead of reading a 256-byte table from flash; else None."""
        table = self.input_table().astype(np.int32)
        c = int(table[0])
        return c if np.array_equal(table, np.arange(256) + c) else None

    def input_table_bytes(self) -> int:
        return 0 if self.several_inputs or self.input_offset_int() is not None else 256

    def uint8_meaning(self) -> str:
        if self.edges.input_uint8 is not None:
            return "the model's own uint8 input, requantised to int8"
        scale = "%.9g" % self.input_scale
        return f"a raw pixel p, the network input p * {scale}" + (f" + {self.input_offset:.9g}" if self.input_offset else "")

    def array_aliases(self) -> Dict[str, str]:
        """C name -> the C name of an earlier array with the same type and values: the header
        stores each distinct constant array once (two LOGISTIC layers whose inputs share a
        quantisation have one table) and names the others as references to it."""
        return self._stored_arrays[0]

    def stored_weights_bytes(self) -> int:
        """Bytes of the constant arrays the header stores (each distinct array once)."""
        return self._stored_arrays[1]

    @functools.cached_property
    def _stored_arrays(self) -> "tuple[Dict[str, str], int]":
        """(aliases, stored bytes) from one pass over every op's arrays (graph and plan are
        fixed, and each op's arrays are rebuilt on every typed_weights() call)."""
        first: Dict[tuple, str] = {}
        aliases: Dict[str, str] = {}
        stored = 0
        for op in self.running_ops():
            for suffix, array in op.typed_weights().items():
                key = (array.dtype.str, array.size, array.tobytes())
                name = op.wname(suffix)
                if key in first:
                    aliases[name] = first[key]
                else:
                    first[key] = name
                    stored += array.nbytes
        return aliases, int(stored)

    def running_ops(self) -> list:
        """The graph's ops as they run under the plan (``MemoryPlan.op``): what the header emits."""
        return [self.plan.op(op) for op in self.graph.ops]

    def object_bytes(self) -> int:
        size = 0
        for t in self.graph.outputs:
            size = _align(size, 4) + 4 * t.size
            size += t.size * t.itemsize
        index_bytes = 2 if self.graph.output.size <= 65535 else 4
        size = _align(size, index_bytes) + index_bytes
        size = _align(size, 4) + 4
        size += max(1, self.plan.arena_size)
        size += self.quantized_bytes()
        return _align(size, 4)

    def summary(self) -> Dict:
        g, p = self.graph, self.plan
        layers = []
        ops = self.running_ops()
        for source, op in zip(g.ops, ops):
            t = op.output
            extra = {}
            if hasattr(op, "stage_summary"):  # a stream: its layers, their shapes, MACs and rings
                extra["stages"] = op.stage_summary(p.workspace.get(source))
            layers.append(dict(**extra,
                name=op.name, op=op.kind, tflite_op=getattr(op, "tflite_op", ""), detail=op.label(),
                output_shape=list(t.shape), macs=int(op.macs()), params=int(op.params()),
                weights_bytes=int(op.weights_bytes()),
                arena_offset=p.offset(t), arena_bytes=t.nbytes if p.in_arena(t) else 0,
                input_offsets=[p.offset(x) for x in op.inputs],
                input_scales=[x.quant.scale for x in op.inputs], input_zero_points=[x.quant.zero_point for x in op.inputs],
                output_scale=t.quant.scale, output_zero_point=t.quant.zero_point,
            ))
        naive = max((sum(t.nbytes for t in {x.storage: None for x in op.inputs + [op.output]} if p.in_arena(t)) for op in ops), default=0)
        return dict(
            arch=self.arch, classname=self.classname, quantize="int8",
            # the first input's (a one-input model's only one), then every input's
            input_shape=list(g.inputs[0].shape), input_type=self.edges.input_type,
            input_scale=g.inputs[0].quant.scale, input_zero_point=g.inputs[0].quant.zero_point,
            input_shapes=[list(t.shape) for t in g.inputs], input_types=list(self.edges.input_types),
            input_scales=[t.quant.scale for t in g.inputs], input_zero_points=[t.quant.zero_point for t in g.inputs],
            output_shapes=[list(t.shape) for t in g.outputs],
            output_scales=[t.quant.scale for t in g.outputs], output_zero_points=[t.quant.zero_point for t in g.outputs],
            num_classes=int(g.output.size),
            class_names=list(self.class_names) if self.class_names is not None else None,
            macs=int(sum(op.macs() for op in ops)),
            params=int(sum(op.params() for op in ops)),
            # each distinct array once, + the uint8 input table
            weights_bytes=self.stored_weights_bytes() + self.input_table_bytes(),
            # the same whatever the weight values (each layer's widest parameter layout): what the
            # search measures on untrained candidates; weights_bytes <= weights_bytes_bound
            weights_bytes_bound=int(sum(op.weights_bytes_bound() for op in ops)) + self.input_table_bytes(),
            arena_bytes=int(p.arena_size),
            inplace_bound=int(p.lower_bound),
            naive_bound=int(naive),
            object_bytes=int(self.object_bytes()),
            layers=layers,
        )

    def render(self, filename: str = "model.h") -> str:
        from micronets import __version__

        return render_int8(self, filename=filename, version=__version__)

    @property
    def header(self) -> str:
        if self._header is None:
            self._header = self.render()
        return self._header


def compile_tflite(source, classname: str = "Net", arch: Optional[str] = None, input_scale: float = 1.0 / 255.0,
                   input_offset: float = 0.0, notes: Optional[Dict[str, str]] = None,
                   class_names: Optional[Sequence[str]] = None, reference: str = "tflm", stream: bool = True) -> Int8Model:
    """Compile a fully-int8 .tflite (path or bytes). ``input_scale``/``input_offset`` say how a raw
    uint8 pixel maps to the network's real input (for int8/float-input models; a uint8 model's
    input is its own). ``reference``: "tflm" (default; bit-exact with TFLM) or "tflite-ref"
    (bit-exact with TFLite's BUILTIN_REF kernels, whose FULLY_CONNECTED requantises in double
    precision; see ``tflite.REFERENCES``). ``stream``: run chains of layers depth first where that
    saves a quarter of the arena or more (``_stream_if_smaller``); False: layer by layer (a few
    per cent faster on some nets, e.g. MobileNets' thin first blocks)."""
    from micronets.compiler.compile import _number, check_classname

    check_classname(classname)
    input_scale = _number(input_scale, "input_scale")
    input_offset = _number(input_offset, "input_offset")
    graph, edges, tnotes = read_tflite(source, reference=reference)
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if len(class_names) != graph.output.size:
            raise ValueError(f"{len(class_names)} class names for a model with {graph.output.size} outputs")
    graph, plan = _fuse_if_smaller(_fuse_transposes(_fuse_tiles(_fuse_swish(graph))))
    if stream:
        graph, plan = _stream_if_smaller(graph, plan)
    graph, plan = _fuse_conv_mul(graph, plan)
    if arch is None:
        arch = os.path.basename(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else "int8 model"
    merged = dict(tnotes)
    merged.update(notes or {})
    data = bytes(source) if isinstance(source, (bytes, bytearray)) else None
    return Int8Model(graph, plan, edges, classname, arch, input_scale, input_offset, merged, data, class_names)


def _renumbered(graph: Graph, ops) -> Graph:
    ops = [op.evolve(index=i, ident=f"L{i}") for i, op in enumerate(ops)]
    return dataclasses.replace(graph, ops=tuple(ops))


def _fuse_swish(graph: Graph) -> Graph:
    """The graph with each LOGISTIC -> MUL(x, sigmoid(x)) pair as one table op (Int8Swish): always
    fewer instructions and never more arena (the sigmoid map is no longer stored)."""
    from micronets.compiler.ops.int8_swish import fuse_swish

    ops = fuse_swish(list(graph.ops), {t.storage for t in graph.outputs})
    return graph if len(ops) == len(graph.ops) else _renumbered(graph, ops)


def _fuse_tiles(graph: Graph) -> Graph:
    """The graph with each pair of tiles (UpSampling2D's rows then columns) one gather: one copy
    instead of two, and the map between them never stored."""
    from micronets.compiler.ops.int8_tile import fuse_tiles

    ops = fuse_tiles(list(graph.ops), {t.storage for t in graph.outputs})
    return graph if len(ops) == len(graph.ops) else _renumbered(graph, ops)


def _fuse_transposes(graph: Graph) -> Graph:
    """The graph with each transpose of a batch matmul's operand or product folded into its
    strides: attention's transposed K, V and scores are never stored."""
    from micronets.compiler.ops.int8_batch_matmul import fuse_transposes

    ops = fuse_transposes(list(graph.ops), {t.storage for t in graph.outputs})
    return graph if len(ops) == len(graph.ops) else _renumbered(graph, ops)


def _fuse_if_smaller(graph: Graph):
    """(graph, plan): with each conv -> depthwise pair fused through a ring of rows when that
    plans a smaller arena, else as imported."""
    from micronets.compiler.ops.int8_conv_depthwise import fuse_conv_depthwise

    plan = plan_memory(graph)
    kept = {t.storage for t in graph.outputs}
    fused_ops = fuse_conv_depthwise(list(graph.ops), kept)
    if len(fused_ops) == len(graph.ops):
        return graph, plan
    fused = _renumbered(graph, fused_ops)
    fused_plan = plan_memory(fused)
    return (fused, fused_plan) if fused_plan.arena_size < plan.arena_size else (graph, plan)


def _fuse_conv_mul(graph: Graph, plan: MemoryPlan):
    """(graph, plan) with each squeeze-excite MUL fused into the 1x1 conv that reads it
    (Int8ConvMul; after the streams, so only layers they left run fused) where the arena does not
    grow: the map now lives until the conv ends and the vector with it, the product map is gone."""
    from micronets.compiler.ops.int8_conv_mul import fuse_conv_mul

    ops = fuse_conv_mul(list(graph.ops), {t.storage for t in graph.outputs}, graph.inputs)
    if len(ops) == len(graph.ops):
        return graph, plan
    fused = _renumbered(graph, ops)
    fused_plan = plan_memory(fused)
    return (fused, fused_plan) if fused_plan.arena_size <= plan.arena_size else (graph, plan)


#: the share of the arena a stream must save to be formed: its rings can add work per row (rows of
#: a few pixels) and flash (depthwise tables, the stream's code). Cortex-M4 instructions and arena,
#: streamed vs layer by layer: MLPerf's KWS DS-CNN +2.0% for 36% less arena, VWW MobileNetV1 -2.4%
#: for 45% less, Micro / Milli / Base -0.3% / +0.4% / +0.3% for 44% less
STREAM_MIN_SAVING = 0.25


def _stream_if_smaller(graph: Graph, plan: MemoryPlan):
    """(graph, plan) with chains of ops run depth first as Int8Streams where that plans an arena
    at least ``STREAM_MIN_SAVING`` smaller: in each maximal chain (``stream_candidates``) the run
    of two or more of its ops whose stream plans the smallest arena (a stream over the first,
    largest maps of a chain often does better than one over all of it, whose rings grow with
    the channels), the first such run in graph order, or a run that streams as a graph
    (``branch_candidates``: residual blocks, or chains with KxK convs after their first stage;
    Int8Branch) where that plans smaller still;
    again until none saves enough. Where no single stream saves enough, streams that only do so
    together: a net with two maps of about the same size (a classic CNN's Conv -> Pool blocks),
    where streaming either leaves the other as the peak: each step planning smaller, until all
    of them are at least ``STREAM_MIN_SAVING`` smaller (then on by the first rule, so that no
    stream that saves little is formed). (Each stream's workspace options as the planner picks
    them: those that cost no arena.)"""
    def enough(arena):
        return (1 - STREAM_MIN_SAVING) * arena

    streamed, streamed_plan = _streams_greedy(graph, plan, enough)
    if streamed is not graph:
        return streamed, streamed_plan
    goal = enough(plan.arena_size)
    together, together_plan = _streams_greedy(graph, plan, lambda arena: arena - 1, goal)
    if together_plan.arena_size <= goal:
        return _streams_greedy(together, together_plan, enough)
    return graph, plan


def _streams_greedy(graph: Graph, plan: MemoryPlan, budget_of, goal: Optional[int] = None):
    """(graph, plan) after forming, one at a time, the stream that plans the smallest arena
    within ``budget_of(the arena before it)`` (the rules of ``_stream_if_smaller``), until none
    fits or the arena is at most ``goal``; the same graph object where none fits."""
    from micronets.compiler.ops.int8_branch import branch_candidates, make_branch
    from micronets.compiler.ops.int8_stream import Unstreamable, can_start, make_stream, stream_candidates

    kept = {t.storage for t in graph.outputs}
    while goal is None or plan.arena_size > goal:
        ops = list(graph.ops)
        budget = budget_of(plan.arena_size)
        best = None  # (arena, graph, plan)
        # each chain's runs of two ops or more that can start a stream (a pooling cannot: it is a
        # stage only after a conv), then (after every chain) the runs that can stream as a graph
        # (Int8Branch: residual blocks, chains with KxK convs after their first stage)
        groups = [[(a, b, make_stream) for a in range(i, j - 1) if can_start(ops[a], graph.inputs)
                   for b in range(a + 2, j + 1)]
                  for i, j in stream_candidates(ops, kept, graph.inputs)]
        groups.append([(a, b, make_branch) for a, b in branch_candidates(ops, kept, graph.inputs)])
        for g, group in enumerate(groups):
            if best is not None and g < len(groups) - 1:
                continue  # a chain's run found: the graph runs still compete with it
            for a, b, make in group:
                try:
                    made = make(ops[a:b], graph.inputs)
                except Unstreamable:  # e.g. a closing stage that needs rows along an axis the stream does not run
                    continue
                trial = _renumbered(graph, ops[:a] + [made] + ops[b:])
                # a lower bound of the arena with it rules most runs out before planning them
                if arena_lower_bound(trial) > min(budget, best[0] - 1 if best else budget):
                    continue
                trial_plan = plan_memory(trial)
                if trial_plan.arena_size <= budget and (best is None or trial_plan.arena_size < best[0]):
                    best = (trial_plan.arena_size, trial, trial_plan)
        if best is None:
            return graph, plan
        _, graph, plan = best
    return graph, plan


def compile_keras_int8(model, calibration, classname: str = "Net", arch: Optional[str] = None,
                       input_scale: Optional[float] = None, input_offset: float = 0.0,
                       class_names: Optional[Sequence[str]] = None, notes: Optional[Dict[str, str]] = None,
                       reference: str = "tflm", stream: bool = True) -> Int8Model:
    """Quantise a Keras model with TFLite's converter (``calibration``: representative inputs) and
    compile the result (``reference``, ``stream``: as for :func:`compile_tflite`)."""
    import keras

    from micronets.compiler.compile import check_classname, takes_raw_input
    from micronets.compiler.trace import _functional_view

    if not isinstance(model, keras.Model):
        raise TypeError(f"expected a keras.Model to compile; got {type(model).__name__}")
    check_classname(classname)
    with _functional_view(model) as functional:  # a subclassed model: one call of it on its Inputs
        checked = check_calibration(functional, calibration)
        samples = len(checked[0] if isinstance(checked, list) else checked)
        if input_scale is None:
            input_scale = 1.0 if takes_raw_input(functional) else 1.0 / 255.0
        data = quantize_keras(functional, calibration)
    compiled = compile_tflite(data, classname=classname, arch=arch or model.name, input_scale=input_scale,
                              input_offset=input_offset, notes=notes, class_names=class_names, reference=reference,
                              stream=stream)
    compiled.notes["Source"] = "Keras model quantised by TFLite's converter"
    compiled.notes["Calibration"] = f"{samples} samples"
    return compiled


# ------------------------------------------------------------------------------- emission
def render_int8(m: Int8Model, filename: str, version: str) -> str:
    from micronets.compiler.emit import _what, c_string, comment, environment, layer_sections

    aliases = m.array_aliases()

    def weight_entries(op):
        entries = []
        for suffix, array in op.typed_weights().items():
            cname = op.wname(suffix)
            alias = aliases.get(cname)
            body = "" if alias else (c_array(array) if array.dtype != np.float64 else
                    "\n".join("    " + ", ".join(c_double(v) for v in array[i:i + 4].tolist()) + "," for i in range(0, array.size, 4)))
            entries.append(dict(layer=comment(op.name), what=_what(suffix, _WHAT), cname=cname, alias=alias,
                                count=int(array.size), ctype=_CTYPES[array.dtype], body=body))
        return entries

    env = environment()
    g = m.graph
    raw_names = tuple("rawOutputs" if k == 0 else f"rawOutputs{k}" for k in range(len(g.outputs)))
    weights, kernels, calls = layer_sections(g, m.plan, raw_names, weight_entries,
                                             lambda op: dict(scales=comment(op.scales())))
    summary = m.summary()
    outputs = []
    for k, t in enumerate(g.outputs):
        outputs.append(dict(name="outputs" if k == 0 else f"outputs{k}", raw_name=raw_names[k], count=int(t.size),
                            shape=t.shape_str(), size_name="numOutputs" if k == 0 else f"numOutputs{k}",
                            ctype="int8_t" if t.dtype == "int8" else "uint8_t", scale_str="%.9g" % t.quant.scale,
                            scale_double=c_double(t.quant.scale), zero=t.quant.zero_point))
    inputs, offset = [], 0
    for k, (t, read) in enumerate(zip(g.inputs, g.inputs_read())):
        inputs.append(dict(name=input_name(k), size_name="numInputs" if k == 0 else f"numInputs{k}", count=int(t.size),
                           shape=t.shape_str(), scale_str="%.9g" % t.quant.scale, scale_double=c_double(t.quant.scale),
                           zero=t.quant.zero_point, offset=offset if read else 0, read=read))
        offset += int(t.size) if read else 0
    q = g.inputs[0].quant
    several = m.several_inputs
    return env.get_template("header_int8.h.j2").render(
        filename=comment(filename), version=version, arch=comment(m.arch), classname=m.classname,
        namespace=f"micronets_{m.classname}", guard=f"MICRONETS_{m.classname}_H",
        input_shape_str="x".join(map(str, g.inputs[0].shape)), input_scale_str="%.9g" % q.scale,
        input_scale_double=c_double(q.scale), input_zero=q.zero_point, inputs=inputs, several=several,
        quantized_bytes=m.quantized_bytes(), bit_exact_with=comment(m.notes.get("Bit-exact with", "TFLM")),
        uint8_meaning="" if several else comment(m.uint8_meaning()), outputs=outputs,
        index_type="uint16_t" if g.output.size <= 65535 else "uint32_t",
        notes=[(comment(k), comment(v)) for k, v in m.notes.items()],
        macs=summary["macs"], params=summary["params"], weights_bytes=summary["weights_bytes"],
        arena_bytes=summary["arena_bytes"], arena_alloc=max(1, summary["arena_bytes"]),
        inplace_bound=summary["inplace_bound"], naive_bound=summary["naive_bound"],
        object_bytes=summary["object_bytes"], input_lut="" if several else c_array(m.input_table()),
        input_add=None if several else m.input_offset_int(),
        weights=weights, kernels=kernels, calls=calls,
        class_names=None if m.class_names is None else [c_string(c) for c in m.class_names],
    )


# ------------------------------------------------------------------------------- CLI
def cli_run(command: str, tflite=None, *, output=None, classname=None, int8: bool = False, calibration=None,
            model=None, arch=None, stream: bool = True) -> Dict:
    """What ``micronets gen`` / ``micronets info`` do on the int8 path; returns the summary.

    ``tflite``: a .tflite file to import; else ``model`` (a Keras model) is quantised with the
    ``calibration`` path (.npy or image folder; for a model of several inputs an .npz of one array
    per input, as ``micronets verify --inputs`` takes). ``stream``: False for ``--layer-by-layer``.
    ``gen`` writes ``output`` atomically."""
    from micronets.compiler.compile import takes_raw_input
    from micronets.compiler.export import check_writable, write_atomic

    if command == "gen":
        check_writable(output)
    if tflite is not None:
        if calibration is not None:
            raise ValueError("--calibration is for quantising a Keras model; a .tflite file is already quantised")
        compiled = compile_tflite(tflite, classname=classname or "Net", stream=stream)
    else:
        if calibration is None:
            raise ValueError("--int8 needs --calibration DIR|FILE.npy: representative inputs for TFLite's converter")
        if len(model.inputs) > 1:  # one array per input, from an .npz
            from micronets.data import load_input_arrays

            x = load_input_arrays(calibration, model)
        else:
            x = load_calibration(calibration, tuple(int(d) for d in model.input_shape[1:]), takes_raw_input(model))
        compiled = compile_keras_int8(model, x, classname=classname or "Net", arch=arch, stream=stream)
    if command == "gen":
        text = compiled.render(filename=os.path.basename(os.fspath(output)) or "model.h")
        write_atomic(output, text)
        compiled._header = text
    return compiled.summary()


def scales_text(summary: Dict) -> str:
    """Per-layer quantisation as lines of text (for ``micronets info``)."""
    ins = "; ".join(f"input{k or ''} s={s:.6g} z={z}"
                    for k, (s, z) in enumerate(zip(summary["input_scales"], summary["input_zero_points"])))
    lines = [f"int8 scales (real = s * (q - z)): {ins}"]
    for i, layer in enumerate(summary["layers"]):
        ins = ", ".join(f"s={s:.6g} z={z}" for s, z in zip(layer["input_scales"], layer["input_zero_points"]))
        lines.append(f"  {i:>3} {layer['op']:<24} in {ins} -> out s={layer['output_scale']:.6g} z={layer['output_zero_point']}")
    return "\n".join(lines)
