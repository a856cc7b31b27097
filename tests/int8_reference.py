"""References for the int8 tests: TFLite's reference kernels (tf.lite.Interpreter with the
BUILTIN_REF resolver) in this process, and TFLM (the tflite_micro wheel) in one child process for a
whole batch of models (a crash there costs the child, not the test run)."""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Sequence, Tuple

import numpy as np

_TFLM_CHILD = r"""
import sys, os, numpy as np
os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
from tflite_micro import runtime
folder = sys.argv[1]
for name in sorted(f[:-7] for f in os.listdir(folder) if f.endswith(".tflite")):
    interp = runtime.Interpreter.from_file(os.path.join(folder, name + ".tflite"), arena_size=1 << 22)
    feeds = [np.load(os.path.join(folder, name + ".in.npy"))]
    while os.path.exists(os.path.join(folder, name + f".in{len(feeds)}.npy")):
        feeds.append(np.load(os.path.join(folder, name + f".in{len(feeds)}.npy")))
    outs = []
    for j in range(len(feeds[0])):
        for k, xs in enumerate(feeds):
            # (as its own type: an input no op reads stays float32 in the converter's .tflite)
            interp.set_input(np.asarray(xs[j][None], interp.get_input_details(k)["dtype"]), k)
        interp.invoke()
        count = int(np.load(os.path.join(folder, name + ".outputs.npy")))
        outs.append(np.concatenate([np.array(interp.get_output(k)).reshape(-1) for k in range(count)]))
    np.save(os.path.join(folder, name + ".out.npy"), np.stack(outs))
"""


def tflite_reference(model_bytes: bytes, xs: np.ndarray, builtin_ref: bool = True) -> np.ndarray:
    """Outputs of TFLite's reference kernels (BUILTIN_REF; with ``builtin_ref=False`` its default
    kernels), (N, all outputs' values) in the model's output type: every output, in the model's
    order, concatenated per input (as ``host.run_int8`` gives the header's). ``xs``: the inputs, or a
    tuple of one array per input for a model of several (in its input order)."""
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resolver = tf.lite.experimental.OpResolverType
        # every tensor in memory of its own: with the interpreter's shared arena, BUILTIN_REF gave
        # fuzz seed 8738 (Keras Average of three Dense branches, one a RESHAPE of another's input)
        # other outputs (up to 12 LSB) than with its tensors kept apart, which TFLM's agree with
        it = tf.lite.Interpreter(model_content=model_bytes, num_threads=1, experimental_preserve_all_tensors=True,
                                 experimental_op_resolver_type=resolver.BUILTIN_REF if builtin_ref else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    ins, douts = it.get_input_details(), it.get_output_details()
    feeds = list(xs) if isinstance(xs, tuple) else [xs]
    out = []
    for j in range(len(feeds[0])):
        for din, x in zip(ins, feeds):
            it.set_tensor(din["index"], np.asarray(x[j], din["dtype"])[None])
        it.invoke()
        out.append(np.concatenate([it.get_tensor(d["index"]).reshape(-1) for d in douts]))
    return np.stack(out)


def output_count(model_bytes: bytes) -> int:
    """How many outputs the .tflite's main subgraph has."""
    from micronets.compiler.tflite import _Reader

    return len(list(_Reader(model_bytes, "model").sg.outputs))


def tflm_reference(models: Dict[str, Tuple[bytes, np.ndarray]]) -> Dict[str, np.ndarray]:
    """TFLM outputs per model name (every output, concatenated per input, as ``tflite_reference``),
    all models run in one child process (inputs as ``tflite_reference`` takes them: an array, or a
    tuple of one array per input)."""
    with tempfile.TemporaryDirectory(prefix="micronets-tflm-") as tmp:
        for name, (data, xs) in models.items():
            with open(os.path.join(tmp, name + ".tflite"), "wb") as fh:
                fh.write(data)
            for k, x in enumerate(xs if isinstance(xs, tuple) else (xs,)):
                np.save(os.path.join(tmp, name + (".in.npy" if k == 0 else f".in{k}.npy")), x)
            np.save(os.path.join(tmp, name + ".outputs.npy"), np.int64(output_count(data)))
        proc = subprocess.run([sys.executable, "-c", _TFLM_CHILD, tmp], capture_output=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"TFLM child failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}")
        return {name: np.load(os.path.join(tmp, name + ".out.npy")) for name in models}


#: host drivers built in this process: (header text's SHA-256, classname, opt, flags) -> executable
_HOST_BUILDS: Dict[Tuple[str, str, str, Tuple[str, ...]], str] = {}
_HOST_BUILD_DIR: List[str] = []


def host_build(header_path, classname: str, opt: str = "-O2", flags: Sequence[str] = ()) -> str:
    """``micronets.host.build`` of the header, compiled once per process for each header text,
    class name, level and flags: the driver g++ makes of the same source and flags is the same
    program, so a test that runs one header on several input sets (int8, uint8, float entries;
    the host's outputs for a QEMU comparison after its own bit-exactness check) builds it once."""
    from micronets import host

    with open(header_path, "rb") as fh:
        key = (hashlib.sha256(fh.read()).hexdigest(), classname, opt, tuple(flags))
    exe = _HOST_BUILDS.get(key)
    if exe is None or not os.path.exists(exe):
        if not _HOST_BUILD_DIR:
            _HOST_BUILD_DIR.append(tempfile.mkdtemp(prefix="micronets-test-drivers-"))
            atexit.register(shutil.rmtree, _HOST_BUILD_DIR[0], True)
        out = os.path.join(_HOST_BUILD_DIR[0], str(len(_HOST_BUILDS)))
        os.makedirs(out, exist_ok=True)
        exe = host.build(str(header_path), classname, out_dir=out, opt=opt, flags=flags)
        _HOST_BUILDS[key] = exe
    return exe


def run_header_int8(header_path, classname: str, x: np.ndarray, entry: str = "int8", opt: str = "-O2",
                    flags: Sequence[str] = ()) -> Tuple[np.ndarray, np.ndarray]:
    """``micronets.host.run_header_int8`` with the driver from ``host_build`` (built once per header
    text): (raw outputs, dequantised outputs) of int8 header ``header_path`` on inputs ``x``."""
    from micronets import host

    return host.run_int8(host_build(header_path, classname, opt, flags), str(header_path), x, entry=entry)


def spread_weights(model, seed: int = 0):
    """Give every kernel random weights of varied per-channel magnitude (so int8 values span their
    range with many levels) and biases of a similar size; BatchNorm statistics away from identity.
    A nested model's layers (a Siamese network's shared tower), and a user's layer class's own
    sublayers (a ConvBN block), are spread as their own: as one layer, a BatchNormalization's
    variance inside was drawn as a bias, negative (NaN in its output, left in float by TFLite's
    converter). (Keras' own layers of sublayers, MultiHeadAttention's, are spread as one.)"""
    _spread(model.layers, np.random.default_rng(seed))
    return model


def _spread(layers, rng):
    import keras

    for layer in layers:
        inner = list(layer._flatten_layers(include_self=False, recursive=False))
        # (keras-hub's and keras-cv's blocks are classes of their own: only Keras' root package is Keras')
        if inner and (isinstance(layer, keras.Model) or type(layer).__module__.split(".")[0] != "keras"):
            _spread(inner, rng)  # (its own variables, if any, keep their initial values)
            continue
        ws = layer.get_weights()
        if not ws:
            continue
        new = []
        for w in ws:
            if w.ndim >= 2:
                fan_in = int(np.prod(w.shape[:-1])) if w.ndim > 2 else w.shape[0]
                if type(layer).__name__ == "DepthwiseConv2D":
                    fan_in = int(np.prod(w.shape[:2]))
                scale = rng.uniform(0.5, 2.0, size=w.shape[-1]) * np.sqrt(2.0 / max(fan_in, 1))
                new.append((rng.standard_normal(w.shape) * scale).astype(np.float32))
            else:
                new.append((rng.standard_normal(w.shape) * 0.1).astype(np.float32))
        if type(layer).__name__ == "BatchNormalization":  # by name: scale=False / center=False drop gamma / beta
            new = [np.asarray(rng.uniform(0.5, 1.5, w.shape) if v.name in ("gamma", "moving_variance")
                              else rng.standard_normal(w.shape) * 0.1, np.float32) for v, w in zip(layer.weights, ws)]
        layer.set_weights(new)


def convert(model, calibration: np.ndarray, io_type: str = "int8", dynamic_batch: bool = False) -> bytes:
    """TFLite's converter: full-integer with ``io_type`` (int8, uint8) input and output, or
    'float' (QUANTIZE / DEQUANTIZE at the edges). ``dynamic_batch``: convert as tutorials do,
    ``TFLiteConverter.from_keras_model`` (Keras' batch axis left unknown: shapes computed at run
    time), not for a batch of 1."""
    if io_type == "int8" and not dynamic_batch:
        from micronets.compiler.int8 import quantize_keras

        return quantize_keras(model, calibration)
    import tensorflow as tf

    shape = [1] + [int(d) for d in model.input_shape[1:]]

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def infer(x):
        return model(x, training=False)

    conv = (tf.lite.TFLiteConverter.from_keras_model(model) if dynamic_batch
            else tf.lite.TFLiteConverter.from_concrete_functions([infer.get_concrete_function()]))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[None]] for x in np.asarray(calibration, np.float32))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io_type in ("uint8", "int8"):
        conv.inference_input_type = conv.inference_output_type = tf.uint8 if io_type == "uint8" else tf.int8
    return conv.convert()


def op_names(model_bytes: bytes) -> List[str]:
    from micronets.compiler.tflite import _Reader

    r = _Reader(model_bytes, "model")
    return [r.op_name(op) for op in r.sg.operators]


def repack(model, size_hint: int = 0) -> bytes:
    """A .tflite flatbuffer of ``model`` (the schema's object API, as _Reader(...).model holds it)."""
    import flatbuffers

    builder = flatbuffers.Builder(size_hint + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def as_version(model_bytes: bytes, op_names: Sequence[str], version: int = 1) -> bytes:
    """The model with the operator codes of ``op_names`` relabelled ``version``, repacked. TF
    2.21's BUILTIN_REF registers some ops at their float version only (DEPTH_TO_SPACE and
    SPACE_TO_DEPTH at 1, TILE below 3) though their reference kernels take int8 too; relabelled,
    it runs them."""
    from micronets.compiler.tflite import _Reader

    r = _Reader(model_bytes, "model")
    codes = {value for value, name in r.names.items() if name in op_names}
    for code in r.model.operatorCodes:
        if max(int(code.builtinCode), int(code.deprecatedBuiltinCode)) in codes:
            code.version = version
    return repack(r.model, len(model_bytes))


def share_quantisation(model_bytes: bytes, op_name: str) -> bytes:
    """The model with every ``op_name`` op's output quantised like its input (same scale and zero
    point), repacked: the converter rarely makes such ops, which some TFLite kernels treat apart.
    Reshapes of a changed tensor follow it (a reshape keeps its input's quantisation)."""
    from micronets.compiler.tflite import _Reader

    r = _Reader(model_bytes, "model")
    model = r.model
    tensors = model.subgraphs[0].tensors
    for op in model.subgraphs[0].operators:
        if r.op_name(op) in (op_name, "RESHAPE", "SQUEEZE"):
            src, dst = tensors[op.inputs[0]].quantization, tensors[op.outputs[0]].quantization
            dst.scale, dst.zeroPoint = list(src.scale), list(src.zeroPoint)
    return repack(model, len(model_bytes))


def requantise_op(model_bytes: bytes, index: int, input_q, output_q) -> bytes:
    """The model with operator ``index``'s first input and its output quantised as the given
    (scale, zero point) pairs, repacked: a kernel's parameters at scales the converter seldom
    picks."""
    from micronets.compiler.tflite import _Reader

    op = _Reader(model_bytes, "model").model.subgraphs[0].operators[index]
    return requantise_tensors(model_bytes, {int(op.inputs[0]): input_q, int(op.outputs[0]): output_q})


def requantise_tensors(model_bytes: bytes, quants) -> bytes:
    """The model with tensors ``quants`` (index -> (scale, zero point)) quantised so, repacked."""
    from micronets.compiler.tflite import _Reader

    model = _Reader(model_bytes, "model").model
    tensors = model.subgraphs[0].tensors
    for index, (scale, zero) in quants.items():
        tensors[index].quantization.scale, tensors[index].quantization.zeroPoint = [float(scale)], [int(zero)]
    return repack(model, len(model_bytes))

