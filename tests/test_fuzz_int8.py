"""Random-architecture fuzz test of the int8 path: random graphs of the layers TFLite's converter
turns into ops we support, quantised by TFLite's converter, compiled, and run in C++ against TFLM
and TFLite's BUILTIN_REF kernels, bit for bit.

Models come from test_fuzz's generator (random stacks and graphs, odd and non-square maps,
sequences, vectors, branches that fan out and join) restricted to what a full-integer .tflite of
our supported ops can hold: activations without a TFLite kernel we lack (no ELU, softplus, GELU...),
no upsampling, one output. A draw TFLite's converter cannot quantise, or that uses an op or an op
setting the int8 path refuses, is skipped with its reason; enough draws must be compared for the
test to pass, so a generator that only produced refusals would fail. Weights are spread over the int8 range (int8_reference.spread_weights).

That generator's convs are too narrow for the kernels of wide layers (more than 128 inputs, the
squeeze-excite MUL fused into its projection): build_block_model draws random PhiNet-like blocks
for them. Nor does it reach the stride-2 depthwise kernel (int8_depthwise_rows):
build_strided_model draws random downsampling blocks for it. Nor does it draw the plain stacks
tutorials write (convs, pooling, Flatten, wide Dense layers): build_classic_model does.

Every second compared model also runs on QEMU's Cortex-M4 (the DSP kernels no host build compiles)
against its host build (``MICRONETS_FUZZ8_M4_EVERY``: 1 for all, 0 for none).

Reproduce one seed: ``python tests/test_fuzz_int8.py SEED`` (prints the model, the refusal or the
outputs). More seeds: ``MICRONETS_FUZZ8_MODELS=200 pytest tests/test_fuzz_int8.py``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import test_fuzz  # noqa: E402  (the float fuzz test's generator)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

N_MODELS = int(os.environ.get("MICRONETS_FUZZ8_MODELS", "24"))
SHARDS = int(os.environ.get("MICRONETS_FUZZ8_SHARDS", "2"))
BASE_SEED = int(os.environ.get("MICRONETS_FUZZ8_SEED", "7000"))
#: models with LayerNormalization and MultiHeadAttention too (test_fuzz_int8_transformer_layers)
N_LN_MODELS = int(os.environ.get("MICRONETS_FUZZ8_LN_MODELS", "8"))
LN_BASE_SEED = int(os.environ.get("MICRONETS_FUZZ8_LN_SEED", "13000"))
#: models drawn with keras.ops too (test_fuzz_int8_keras_ops: own seeds, own random stream)
N_OPS_MODELS = int(os.environ.get("MICRONETS_FUZZ8_OPS_MODELS", "8"))
OPS_BASE_SEED = int(os.environ.get("MICRONETS_FUZZ8_OPS_SEED", "15000"))
#: the classifiers tutorials write (test_fuzz_int8_classic_stacks: own seeds, own generator)
N_CLASSIC_MODELS = int(os.environ.get("MICRONETS_FUZZ8_CLASSIC_MODELS", "6"))
CLASSIC_BASE_SEED = int(os.environ.get("MICRONETS_FUZZ8_CLASSIC_SEED", "16000"))
#: models of two or three inputs (test_fuzz_int8_several_inputs: test_fuzz's draws of them)
N_SEVERAL_MODELS = int(os.environ.get("MICRONETS_FUZZ8_SEVERAL_MODELS", "6"))
SEVERAL_BASE_SEED = int(os.environ.get("MICRONETS_FUZZ8_SEVERAL_SEED", "17000"))
N_INPUTS = 6
#: seeds that once failed, always run (shard 0) and always compared (never skipped): 7058 reads the
#: model input in a MINIMUM, whose kernel took only int8 operands (the header did not compile for
#: the uint8 / float entries); 7140 runs two FULLY_CONNECTED over the 5 rows of a transposed map
#: (the converter's [5, U] tensors, refused as "a batch of 5"); 7435 has a LOGISTIC whose BUILTIN_REF
#: table (single precision) gives 54 for one input where TFLM's integer algorithm gives 53; 8738's
#: BUILTIN_REF outputs depended on the interpreter sharing tensor memory (int8_reference.tflite_reference);
#: 37029's 1x1 depthwise after ZeroPadding2D (whole output rows in the padding) did not build for the
#: Cortex-M4 under -Werror (GCC's -Wmaybe-uninitialized on the DSP kernel's row pointers). Regression
#: seeds always get the Cortex-M4 build too.
REGRESSION_SEEDS = [7058, 7140, 7435, 8738, 37029]
#: share of the drawn models that must reach the comparison (the others skipped with a reason)
MIN_COMPARED = 0.5
#: every M4_EVERY-th compared model also runs on QEMU's Cortex-M4 (the DSP kernels, which no host
#: build compiles), its outputs against the host's bit for bit; 0: none
M4_EVERY = int(os.environ.get("MICRONETS_FUZZ8_M4_EVERY", "2"))

#: activations whose TFLite form the int8 path runs (RELU, RELU6, LOGISTIC, HARD_SWISH, swish as
#: LOGISTIC x MUL, hard sigmoid as ADD / RELU6 / MUL, TANH, LEAKY_RELU, SOFTMAX on the last axis)
ACTIVATIONS8 = ["relu", "relu6", "sigmoid", "hard_swish", "hard_silu", "swish", "silu", "hard_sigmoid", "linear",
                "tanh", "leaky_relu"]


class _Gen8(test_fuzz._Gen):
    """test_fuzz's generator, drawing only layers an int8 .tflite of supported ops can hold."""

    def act_arg(self, p=0.6):
        if not self.chance(p):
            return None
        return self.pick(ACTIVATIONS8 + ["softmax"] * (1 if self.chance(0.2) else 0))

    def activation_layer(self, x):
        L = self.L
        r = self.rng.random()
        if r < 0.2:
            return L.ReLU(max_value=6.0 if self.chance(0.5) else None, name=self.name("relu"))(x)
        if r < 0.3 and self.shape(x)[-1] > 1:
            return L.Softmax(name=self.name("softmax"))(x)
        if r < 0.36:
            return L.LeakyReLU(negative_slope=float(self.pick([0.05, 0.2, 0.3])), name=self.name("leaky"))(x)
        if r < 0.44:  # PRELU: a slope per element, or one per channel
            rank = len(self.shape(x))
            shared = list(range(1, rank)) if rank >= 2 and self.chance(0.5) else None
            return L.PReLU(shared_axes=shared, name=self.name("prelu"))(x)
        return L.Activation(self.pick(ACTIVATIONS8), name=self.name("act"))(x)

    RESIZE_PADS = False

    def upsample(self, x):
        """Conv1D/2DTranspose (TRANSPOSE_CONV) or Resizing (RESIZE_*); not UpSampling2D, whose
        TILE TFLM (the reference here) does not run (test_int8 checks it against TFLite)."""
        r = self.rng.random()
        if r < 0.3:
            return self.conv_transpose(x)
        return self.resize(x) if len(self.shape(x)) == 3 and r < 0.6 else None

    def head(self, x):
        """As test_fuzz's, without LOG_SOFTMAX (no int8 kernel of ours)."""
        if len(self.shape(x)) > 1 and self.chance(0.7):
            x = self.global_pool(x, keepdims=False) if self.chance(0.5) else self.L.Flatten(name=self.name("flatten"))(x)
        if self.chance(0.8):
            act = self.pick(["softmax", "softmax", None, "sigmoid"])
            x = self.L.Dense(self.ri(2, 6), activation=act, name=self.name("head"))(x)
        return x

    def model(self):
        built = super().model()
        if len(built.outputs) > 1:  # the references compare output 0
            built = self.k.Model(built.inputs, built.outputs[0], name="fuzz8")
        return built


class _Gen8Transformer(_Gen8):
    """_Gen8 with test_fuzz's transformer draws the int8 path runs: LayerNormalization (not Group-
    or UnitNormalization) and MultiHeadAttention over a sequence (a map's positions reshaped into
    one) without a causal mask (over a map TFLite makes its softmax over two axes a REDUCE_MAX of a
    6-D tensor, and a mask a SELECT_V2: both refused), also where test_fuzz draws a recurrent
    layer (refused too)."""

    NORMS = ("layer",)
    CAUSAL = False

    def attention(self, x):
        """Over a sequence; a map's positions as a sequence first (a Reshape, as a ViT's patches)."""
        shape = self.shape(x)
        if len(shape) == 3:
            x = self.L.Reshape((shape[0] * shape[1], shape[2]), name=self.name("positions"))(x)
        return super().attention(x) if len(self.shape(x)) == 2 else self.layer_norm(x)

    def recurrent(self, x):
        return self.attention(x)


class _Gen8Ops(_Gen8):
    """_Gen8 with test_fuzz's keras.ops draws that both references run: MEAN and REDUCE_MAX over
    some axes, a softmax over any axis (TRANSPOSEs around a SOFTMAX), Dot and matmul
    (BATCH_MATMUL), ABS, SQUARE (a float island); not SUM (BUILTIN_REF's is unsound), min or
    power (no int8 kernels)."""

    KERAS_OPS = ("reduce", "softmax", "dot", "matmul", "abs", "square")
    REDUCTIONS = ("mean", "max")


def build_ops_model(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    return _Gen8Ops(np.random.default_rng([seed, 8]), None, np.random.default_rng([seed, 8, 2])).model()


def build_classic_model(seed: int):
    """A classifier as tutorials and newcomers write it, drawn: a 2-D map (8..24 square-ish, 1..3
    channels) or a 1-D sequence (16..64 steps, 1..6 features); one to three convolutions (ReLU, 1 to
    5 taps, same or valid), each maybe followed by BatchNormalization and max or average pooling;
    Flatten (or sometimes a global average); Dropout; one or two hidden Dense layers of the widths
    people pick (8, 10, 16, 32, 64, 100, 128: mostly multiples of 4); a softmax or logits head of
    2..10 classes. test_fuzz's generator draws graphs, not these stacks: its heads are 2..6 units
    after at most a pooling, and its Flatten rarely closes a streamed conv chain. Converted as
    tutorials convert (dynamic_batch below)."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng([seed, 16])
    two_d = rng.random() < 0.6
    if two_d:
        side = int(rng.integers(8, 25))
        shape = (side, side + int(rng.integers(-2, 3)), int(rng.integers(1, 4)))
        conv, pools = L.Conv2D, (L.MaxPooling2D, L.AveragePooling2D)
    else:
        shape = (int(rng.integers(16, 65)), int(rng.integers(1, 7)))
        conv, pools = L.Conv1D, (L.MaxPooling1D, L.AveragePooling1D)
    inputs = keras.Input(shape)
    x = inputs
    for _ in range(int(rng.integers(1, 4))):
        small = min(x.shape[1:-1]) < 6
        x = conv(int(rng.choice([4, 6, 8, 12, 16, 24, 32])), int(rng.choice([1, 3, 3, 5])), activation="relu",
                 padding="same" if small or rng.random() < 0.5 else "valid")(x)
        if rng.random() < 0.3:
            x = L.BatchNormalization()(x)
        if min(x.shape[1:-1]) >= 4 and rng.random() < 0.6:
            x = pools[int(rng.integers(2))](2)(x)
    x = L.Flatten()(x) if rng.random() < 0.8 else (L.GlobalAveragePooling2D() if two_d else L.GlobalAveragePooling1D())(x)
    x = L.Dropout(0.25)(x)
    for _ in range(int(rng.integers(1, 3))):
        x = L.Dense(int(rng.choice([8, 10, 16, 32, 64, 100, 128])), activation="relu")(x)
    outputs = L.Dense(int(rng.integers(2, 11)), activation="softmax" if rng.random() < 0.5 else None)(L.Dropout(0.5)(x))
    return keras.Model(inputs, outputs, name=f"classic{seed}")


#: converted as tutorials convert them: TFLiteConverter.from_keras_model, the batch axis unknown
#: (a Flatten's SHAPE, STRIDED_SLICE and PACK; Conv1D's EXPAND_DIMS)
build_classic_model.dynamic_batch = True


def build_model(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    return _Gen8(np.random.default_rng([seed, 8])).model()


def build_several_model(seed: int):
    """test_fuzz's models of two or three inputs (shared sub-models, early and late joins, an
    unread input, the inputs listed in another order than their layers'), of int8 layers."""
    import keras

    keras.utils.set_random_seed(seed)
    return _Gen8(np.random.default_rng([seed, 8, 3]), several=True).model()


def build_transformer_model(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    return _Gen8Transformer(np.random.default_rng([seed, 8]), np.random.default_rng([seed, 8, 1])).model()


class Case:
    def __init__(self, seed, model, data, header, header_ref, x):
        self.seed, self.model, self.data, self.header, self.header_ref, self.x = seed, model, data, header, header_ref, x


def make_case(seed: int, builder=None):
    """(Case, None) for a model the int8 path compiles (``builder(seed)``, default build_model),
    or (None, why it was skipped)."""
    from int8_reference import convert, spread_weights

    from micronets.compiler import UnsupportedModelError
    from micronets.compiler.int8 import compile_tflite

    model = (builder or build_model)(seed)
    spread_weights(model, seed=seed)
    shapes = [tuple(int(d) for d in t.shape[1:]) for t in model.inputs]
    rng = np.random.default_rng(seed)
    calibration = [rng.uniform(-1, 1, (32,) + shape).astype(np.float32) for shape in shapes]
    if len(shapes) == 1:
        calibration = calibration[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = convert(model, calibration, dynamic_batch=getattr(builder, "dynamic_batch", False))
    except Exception as exc:  # noqa: BLE001 (the converter's own refusal: not ours to test)
        return None, f"converter: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
    try:
        compiled = compile_tflite(data, classname=f"F{seed}")
        header = compiled.header
    except UnsupportedModelError as exc:
        return None, f"refused: {str(exc)[:160]}"
    try:
        header_ref = compile_tflite(data, classname=f"F{seed}", reference="tflite-ref").header
    except UnsupportedModelError as exc:
        if "interpreter does not run" not in str(exc):
            return None, f"refused: {str(exc)[:160]}"
        header_ref = None  # TFLite's interpreter aborts on the model (the refusal says why): TFLM alone
    shapes = [tuple(t.shape) for t in compiled.graph.inputs]  # the .tflite's
    x = tuple(rng.integers(-128, 128, (N_INPUTS,) + shape).astype(np.int8) for shape in shapes)
    return Case(seed, model, data, header, header_ref, x if len(x) > 1 else x[0]), None


def run_seeds(seeds, workdir, builder=None):
    """[(seed, status, detail)]: status 'ok', 'skipped' (detail: why) or 'MISMATCH' (detail: what)."""
    from int8_reference import tflite_reference, tflm_reference

    from micronets import host

    results, cases = [], []
    for seed in seeds:
        case, why = make_case(seed, builder)
        if case is None:
            results.append((seed, "skipped", why))
        else:
            cases.append(case)
    if not cases:
        return results
    try:
        tflm = tflm_reference({f"s{c.seed}": (c.data, c.x) for c in cases})
    except RuntimeError:  # TFLM itself failed on a model: find which, one child each
        tflm = {}
        for c in list(cases):
            try:
                tflm.update(tflm_reference({f"s{c.seed}": (c.data, c.x)}))
            except RuntimeError as exc:
                results.append((c.seed, "skipped", f"TFLM failed: {str(exc)[-160:]}"))
                cases.remove(c)
    for c in cases:
        problems = []
        for label, header, reference in (("TFLM", c.header, lambda: tflm[f"s{c.seed}"]),
                                         ("BUILTIN_REF", c.header_ref, lambda: tflite_reference(c.data, c.x))):
            if header is None:
                continue
            path = os.path.join(workdir, f"F{c.seed}_{label}.h")
            with open(path, "w") as fh:
                fh.write(header)
            got, _ = host.run_header_int8(path, f"F{c.seed}", list(c.x) if isinstance(c.x, tuple) else c.x, opt="-O1",
                                          out_dir=workdir)
            expected = np.asarray(reference()).reshape(got.shape)
            if not np.array_equal(got, expected):
                diff = np.abs(got.astype(np.int32) - expected.astype(np.int32))
                problems.append(f"vs {label}: {int((diff > 0).sum())} of {diff.size} outputs differ, max {int(diff.max())} LSB")
        if M4_EVERY and (cases.index(c) % M4_EVERY == 0 or c.seed in REGRESSION_SEEDS):
            problems += _m4_problems(c, os.path.join(workdir, f"F{c.seed}_TFLM.h"), workdir)
        results.append((c.seed, "MISMATCH" if problems else "ok",
                        "; ".join(problems) or ("" if c.header_ref else "TFLM only (TFLite's interpreter aborts)")))
    return results


def _m4_problems(c, header, workdir):
    """The header's DSP build on QEMU's Cortex-M4 (strict -Werror build, uint8 entry; a header of
    several inputs, which has none, the int8 entry) against its host build: [] when they agree bit
    for bit (or no toolchain is installed)."""
    import shutil

    from micronets import host
    from micronets.embedded import qemu

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        return []
    if isinstance(c.x, tuple):
        pixels, entry = [x[:2] for x in c.x], "int8"
    else:
        pixels, entry = np.random.default_rng(c.seed).integers(0, 256, (2,) + c.x.shape[1:]).astype(np.uint8), "uint8"
    try:
        elf = qemu.build_firmware(header, f"F{c.seed}", pixels, os.path.join(workdir, f"fw{c.seed}"), entry=entry)
        on_m4 = qemu.run_firmware(elf, timeout=300).outputs
    except RuntimeError as exc:
        return [f"Cortex-M4 build or run failed: {str(exc)[:300]}"]
    _, on_host = host.run_header_int8(header, f"F{c.seed}", pixels, entry=entry, out_dir=workdir)
    return [] if np.array_equal(on_m4, on_host) else ["Cortex-M4 outputs differ from the host's"]


def _report(results):
    lines = []
    for seed, status, detail in results:
        if status != "ok":
            lines.append(f"  seed {seed}: {status} {detail}")
    return "\n".join(lines)


def build_block_model(seed: int):
    """A random stack of two or three PhiNet-like blocks, the generator above being too narrow to
    reach the kernels of wide layers (at most 8 filters a conv): a 1x1 expansion to 17..330
    channels, often a 3x3 or 5x5 depthwise, often a squeeze-excite gate (global average, 1x1
    reduction, sigmoid or hard sigmoid, the MUL of the map by it), and a 1x1 projection to 4..40
    channels, on a 4..10 x 4..10 map: the 4-pixel tiles in the arena workspace (more than 128
    inputs), the 2-pixel ones and their chunks on the stack, the squeeze-excite MUL fused into its
    projection (Int8ConvMul) with or without its workspace, and the tails of every CIN % 4."""
    import keras

    L = keras.layers
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng([seed, 11])
    h, w = (int(v) for v in rng.integers(4, 11, 2))
    inp = keras.Input((h, w, int(rng.integers(3, 13))), name="input")
    x = inp
    for _ in range(int(rng.integers(2, 4))):
        e = int(rng.integers(129, 331) if rng.random() < 0.6 else rng.integers(17, 129))
        y = L.Conv2D(e, 1, activation=str(rng.choice(["relu6", "relu", "hard_swish"])))(x)
        if rng.random() < 0.7:
            y = L.DepthwiseConv2D(int(rng.choice([3, 5])), padding="same", activation="relu6")(y)
        if rng.random() < 0.8:
            g = L.GlobalAveragePooling2D(keepdims=True)(y)
            g = L.Conv2D(max(2, e // int(rng.choice([4, 6, 8]))), 1, activation="relu")(g)
            y = L.Multiply()([y, L.Conv2D(e, 1, activation=str(rng.choice(["sigmoid", "hard_sigmoid"])))(g)])
        x = L.Conv2D(int(rng.integers(4, 41)), 1)(y)
    return keras.Model(inp, x, name="blocks8")


def build_strided_model(seed: int):
    """A random stack of two or three downsampling blocks (MobileNetV2 / EfficientNet / NASNet-like):
    a 1x1 expansion to 4..64 channels (any C % 4), a 3x3, 5x5 or 7x7 depthwise of stride 2, (2, 1)
    or (1, 2), 'same' or 'valid', then sometimes a 1x1 projection, on a 9..24 x 9..24 map: the
    stride-2 depthwise kernel a group of four channels over every row (int8_depthwise_rows), in
    place or apart as the plan gives, and the one-pixel kernel where its order would not be safe."""
    import keras

    L = keras.layers
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng([seed, 13])
    h, w = (int(v) for v in rng.integers(9, 25, 2))
    x = inp = keras.Input((h, w, int(rng.integers(1, 9))), name="input")
    for _ in range(int(rng.integers(2, 4))):
        x = L.Conv2D(int(rng.integers(4, 65)), 1, activation=str(rng.choice(["relu6", "relu", "hard_swish"])))(x)
        k = int(rng.choice([3, 5, 7]))
        strides = [2, (2, 1), (1, 2)][int(rng.integers(0, 3))]
        padding = "same" if rng.random() < 0.7 or min(x.shape[1], x.shape[2]) < k else "valid"
        x = L.DepthwiseConv2D(k, strides=strides, padding=padding, activation="relu6")(x)
        if rng.random() < 0.5:
            x = L.Conv2D(int(rng.integers(4, 41)), 1)(x)
    return keras.Model(inp, x, name="strided8")


#: build_block_model's seeds run by the test: between them every path its docstring names
BLOCK_SEEDS = [11000, 11001]


@pytest.mark.parametrize("seed", BLOCK_SEEDS)
def test_fuzz_int8_wide_and_squeeze_excite_blocks(seed, tmp_path):
    """Random PhiNet-like blocks (build_block_model) bit for bit against TFLM and BUILTIN_REF on
    the host, and on QEMU's Cortex-M4 against the host."""
    (row,) = run_seeds([seed], str(tmp_path), builder=build_block_model)
    assert row[1] == "ok", _report([row])


#: build_strided_model's seed run by the test (its two stride-2 depthwise layers run in groups
#: over rows); a sweep of seeds 12000 to 12039 (all also on the Cortex-M4) found no difference
STRIDED_SEED = 12000


def test_fuzz_int8_strided_depthwise_blocks(tmp_path):
    """Random downsampling blocks (build_strided_model) bit for bit against TFLM and BUILTIN_REF on
    the host, and on QEMU's Cortex-M4 against the host; the seed reaches the rows kernel."""
    case, why = make_case(STRIDED_SEED, build_strided_model)
    assert case is not None, why
    assert case.header.count("    int8_depthwise_rows<") == 2
    (row,) = run_seeds([STRIDED_SEED], str(tmp_path), builder=build_strided_model)
    assert row[1] == "ok", _report([row])


def test_fuzz_int8_block_seeds_reach_the_wide_kernels():
    """The block seeds compile to every wide path they are there for (else the test above would
    pass without running them)."""
    import re

    headers = "".join(make_case(seed, build_block_model)[0].header for seed in BLOCK_SEEDS)
    # the calls' template arguments: the fused op's last one says whether it has its workspace
    fused = re.findall(r"int8_conv_mul<\d[^>]*, (true|false)>", headers)
    assert "true" in fused and "false" in fused, fused
    for kernel in ("int8_pointwise_ws", "int8_pointwise_split"):
        assert re.search(kernel + r"<\d", headers), kernel


@pytest.mark.parametrize("shard", range(SHARDS))
def test_fuzz_int8(shard, tmp_path):
    seeds = [BASE_SEED + k for k in range(N_MODELS) if k % SHARDS == shard] + (REGRESSION_SEEDS if shard == 0 else [])
    results = run_seeds(seeds, str(tmp_path))
    bad = [r for r in results if r[1] == "MISMATCH"]
    compared = [r for r in results if r[1] != "skipped"]
    assert not bad, "int8 header differs from its reference (reproduce: python tests/test_fuzz_int8.py SEED):\n" + _report(results)
    assert not [r for r in results if r[0] in REGRESSION_SEEDS and r[1] == "skipped"], _report(results)
    assert len(compared) >= MIN_COMPARED * len(seeds), (
        f"only {len(compared)} of {len(seeds)} drawn models reached the comparison:\n" + _report(results))


def _run_stream(seeds, workdir, builder, flag):
    """Run ``seeds`` drawn by ``builder`` (reproduced with ``python tests/test_fuzz_int8.py
    FLAG SEED``): no mismatch, and enough of them compared; returns the compared seeds."""
    results = run_seeds(seeds, workdir, builder=builder)
    assert not [r for r in results if r[1] == "MISMATCH"], (
        f"int8 header differs from its reference (reproduce: python tests/test_fuzz_int8.py {flag} SEED):\n"
        + _report(results))
    compared = [r[0] for r in results if r[1] != "skipped"]
    assert len(compared) >= MIN_COMPARED * len(seeds), (
        f"only {len(compared)} of {len(seeds)} drawn models reached the comparison:\n" + _report(results))
    return compared


def test_fuzz_int8_keras_ops(tmp_path):
    """Random models with keras.ops reductions, softmax over any axis, Dot, matmul, abs and square
    among the others (build_ops_model; reproduce: python tests/test_fuzz_int8.py --ops SEED), bit
    for bit against TFLM and BUILTIN_REF."""
    _run_stream([OPS_BASE_SEED + k for k in range(N_OPS_MODELS)], str(tmp_path), build_ops_model, "--ops")


def test_fuzz_int8_classic_stacks(tmp_path):
    """Random tutorial-style classifiers (build_classic_model; reproduce: python
    tests/test_fuzz_int8.py --classic SEED), bit for bit against TFLM and BUILTIN_REF. Before the
    stream-closing Dense's tail loop started at a constant, 18 of 40 such models did not compile
    under -Werror (GCC's -Waggressive-loop-optimizations)."""
    _run_stream([CLASSIC_BASE_SEED + k for k in range(N_CLASSIC_MODELS)], str(tmp_path), build_classic_model,
                "--classic")


def test_fuzz_int8_several_inputs(tmp_path):
    """Random models of two or three inputs (build_several_model; reproduce: python
    tests/test_fuzz_int8.py --several SEED), bit for bit against TFLM and BUILTIN_REF through
    predict(input, input1, ...); every compared model has several inputs. Seed 17006 has an input no
    output reads, which the converter keeps as a float32 input read by no op: refused as "not a
    fully-int8 model" before (as 4 of the first 20 seeds were); now an argument never read."""
    seeds = [SEVERAL_BASE_SEED + k for k in range(N_SEVERAL_MODELS)] + [17006]
    compared = _run_stream(seeds, str(tmp_path), build_several_model, "--several")
    assert all(len(build_several_model(seed).inputs) >= 2 for seed in compared) and 17006 in compared


def test_fuzz_int8_transformer_layers(tmp_path):
    """Random models with LayerNormalization and MultiHeadAttention among the others
    (build_transformer_model; reproduce: python tests/test_fuzz_int8.py --transformer SEED), bit for
    bit against TFLM and BUILTIN_REF; both layers reach the comparison."""
    compared = _run_stream([LN_BASE_SEED + k for k in range(N_LN_MODELS)], str(tmp_path), build_transformer_model,
                           "--transformer")
    for kind in ("LayerNormalization", "MultiHeadAttention"):
        drawn = sum(any(type(layer).__name__ == kind for layer in build_transformer_model(seed).layers) for seed in compared)
        assert drawn >= 0.25 * len(compared), f"only {drawn} of {len(compared)} compared models have a {kind}"


if __name__ == "__main__":  # pragma: no cover - a debugging aid
    builder = (build_transformer_model if "--transformer" in sys.argv else build_ops_model if "--ops" in sys.argv
               else build_classic_model if "--classic" in sys.argv else build_several_model if "--several" in sys.argv
               else build_model)
    for arg in (a for a in sys.argv[1:] if not a.startswith("--")):
        seed = int(arg)
        builder(seed).summary()
        with tempfile.TemporaryDirectory() as work:
            for row in run_seeds([seed], work, builder=builder):
                print(*row)
