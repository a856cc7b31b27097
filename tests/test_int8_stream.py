"""Depth-first (row-streamed) int8 layer chains (micronets/compiler/ops/int8_stream.py): formed
where they cut the planned arena, bit-exact with TFLM and TFLite's BUILTIN_REF on the host and on
the emulated Cortex-M4 (DSP and portable builds), refused where they would not help."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from micronets.compiler.int8 import STREAM_MIN_SAVING, _fuse_if_smaller, _fuse_swish, _renumbered, compile_tflite
from micronets.compiler.plan import plan_memory
from micronets.compiler.tflite import read_tflite
from int8_reference import convert, run_header_int8, spread_weights, tflite_reference, tflm_reference

keras = pytest.importorskip("keras")
L = keras.layers


def kws_like():
    """MLPerf's DS-CNN in small: a 5x4 /2 conv of one input channel (word rows), then
    depthwise -> pointwise x 3 (6 channels: a padded ring read as runs of bytes; a stride-2
    depthwise), a global average (MEAN), dense, softmax."""
    i = keras.Input((40, 12, 1))
    x = L.Conv2D(6, (5, 4), strides=2, padding="same", activation="relu")(i)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = L.Conv2D(32, 1, activation="relu")(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = L.Conv2D(32, 1, activation="relu")(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(x)
    x = L.Conv2D(24, 1, activation="relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(i, L.Softmax()(L.Dense(5)(x)), name="kws_like")


def map_out():
    """A stream that starts with a pointwise conv of the caller's input and ends in a whole map
    (a max pooling's, of the last conv's rows; a Dense over its pixels reads it, which cannot
    close a stream): a depth multiplier of 2 (TFLite's layout, pixel by pixel) reading 6 channels
    from a padded ring (rows outside the map as rows of the zero point)."""
    i = keras.Input((24, 8, 3))
    x = L.Conv2D(24, 1, activation="relu6")(i)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = L.Conv2D(6, 1)(x)
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    x = L.Conv2D(4, 1, activation="relu")(x)
    x = L.Dense(4)(L.MaxPooling2D(2)(x))
    return keras.Model(i, L.Flatten()(x), name="map_out")


def thin():
    """A chain whose maps are three rows tall: the rings would hold them whole."""
    i = keras.Input((3, 16, 8))
    x = L.Conv2D(16, 1, activation="relu")(i)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = L.Conv2D(8, 1)(x)
    return keras.Model(i, L.Dense(3)(L.GlobalAveragePooling2D()(x)), name="thin")


def rgb_stem():
    """A 3x3 /2 conv of an RGB input first in a stream: an im2col conv, its filter stored in the
    1x1 kernels' layout (the stream's rows must take that kernel, not the plain taps)."""
    i = keras.Input((32, 12, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(i)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = L.Conv2D(16, 1, activation="relu6")(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = L.Conv2D(16, 1)(x)
    return keras.Model(i, L.Dense(4)(L.GlobalAveragePooling2D()(x)), name="rgb_stem")


def _bit_exact(compiled, data, name, xs, path):
    """Writes ``compiled``'s header to ``path`` and returns its raw outputs on ``xs``: they equal
    TFLM's, and the reference='tflite-ref' build's equal TFLite BUILTIN_REF's, bit for bit."""
    path.write_text(compiled.header)
    raw, _ = run_header_int8(str(path), compiled.classname, xs)
    assert np.array_equal(raw, tflm_reference({name: (data, xs)})[name])
    ref = path.parent / "R.h"
    ref.write_text(compile_tflite(data, classname="R", reference="tflite-ref").header)
    assert np.array_equal(run_header_int8(str(ref), "R", xs)[0], tflite_reference(data, xs))
    return raw


def _converted(fns, weight_seed, cal_seed, input_seed, n_inputs):
    """name -> (.tflite bytes, int8 test inputs) for each model builder: weights spread with
    weight_seed + k, converted on 32 calibration inputs drawn with cal_seed + k."""
    out = {}
    for k, fn in enumerate(fns):
        model = spread_weights(fn(), seed=weight_seed + k)
        shape = tuple(model.input_shape[1:])
        cal = np.random.default_rng(cal_seed + k).uniform(-1, 1, (32,) + shape).astype(np.float32)
        xs = np.random.default_rng(input_seed + k).integers(-128, 128, (n_inputs,) + shape).astype(np.int8)
        out[model.name] = (convert(model, cal), xs)
    return out


@pytest.fixture(scope="module")
def converted():
    return _converted((kws_like, map_out, thin, rgb_stem), 30, 0, 40, 6)


def layer_by_layer(data):
    """The graph and plan without streams (each conv -> depthwise pair fused where smaller)."""
    graph, _, _ = read_tflite(data)
    return _fuse_if_smaller(_fuse_swish(graph))


@pytest.mark.parametrize("name, stages, kinds", [
    ("kws_like", 8, ["conv", "dw", "pw", "dw", "pw", "dw", "pw", "mean"]),
    ("map_out", 6, ["pw", "dw", "pw", "dw", "pw", "pool"]),
])
def test_stream_formed_smaller_and_bit_exact(name, stages, kinds, converted, tmp_path):
    data, xs = converted[name]
    compiled = compile_tflite(data, classname="S")
    streams = [op for op in compiled.graph.ops if op.kind == "Stream"]
    assert len(streams) == 1 and len(streams[0].stages) == stages
    op = compiled.plan.op(streams[0])
    assert [op.stage_kind(k) for k in range(stages)] == kinds
    _, flat = layer_by_layer(data)
    assert compiled.plan.arena_size <= (1 - STREAM_MIN_SAVING) * flat.arena_size
    # the header and `micronets info` describe every streamed layer and its ring
    layer = compiled.summary()["layers"][0]
    assert [s["macs"] for s in layer["stages"]] == [s.macs() for s in op.stages] and layer["macs"] == op.macs()
    assert all(s["ring_bytes"] > 0 and s["ring_offset"] is not None for s in layer["stages"][:len(op.row_stages) - (0 if op.reduces else 1)])
    assert compiled.header.count("// s") >= stages and "ring of 3 x" in compiled.header
    if name == "kws_like":
        assert op.padded_ring(0) and op.dw_flat(1) == 3  # 6 channels: a padded ring read as runs of bytes
    else:
        assert op.padded_ring(2) and op.stages[3].multiplier == 2 and not op.stages[3].dsp_layout

    assert len(np.unique(_bit_exact(compiled, data, name, xs, tmp_path / "S.h"))) > 5


def test_stream_depthwise_tables_in_flash(converted):
    """A thin depthwise stage of the DSP layout reads its weights and parameters in the DSP
    kernels' layout from flash (the compiler's ``dsp_table``), neither unpacked for every output
    row nor in the arena: the workspace is the rings (and the sums). The layout is mn_dw_unpack's: per
    tap, lanes 0 and 2 (then 1 and 3) doubled as 16-bit halves; 2 x folded bias; {m, k = -shift -
    1, zk = (2 out_off + 1) << k}; for the 6-channel flat stage lane l of group v is channel
    (4 v + l) % 6. Bit-exact on QEMU's Cortex-M4: the test below."""
    data, _ = converted["kws_like"]
    compiled = compile_tflite(data, classname="S")
    stream = [op for op in compiled.graph.ops if op.kind == "Stream"][0]
    op = compiled.plan.op(stream)
    dws = [k for k in range(len(op.stages)) if op.stage_kind(k) == "dw"]
    # 6 channels: in flash; 32: unpacked for each row (more than FLASH_TABLE_CHANNELS)
    assert dws == [1, 3, 5] and [op.flash_table(k) for k in dws] == [True, False, False]
    assert op.workspace_options == ((True,), (False,))
    assert op.workspace_bytes() == op.rings_total() + 3 + 3 + 4 * op.output.hwc[2]
    assert f"s1.d.use({op.wname('s1t')});" in compiled.header and compiled.header.count(".d.use(") == 1
    assert ".d.prep(" not in compiled.header
    # each stage compiles the one row path it takes (the table's, or unpacking for each row)
    assert [f"D{k}, {int(op.flash_table(k))}> S{k};" in compiled.header for k in dws] == [True] * 3
    dw = op.stages[1]
    t = op.dsp_table(1).reshape(3, -1).astype(np.int64)  # flat: 3 groups of 2 * 9 + 16 words
    assert t.shape == (3, 34)
    w = dw.filt.reshape(9, 6).astype(np.int64)
    bf, shift = np.asarray(dw.folded_bias(), np.int64), np.asarray(dw.shift, np.int64).reshape(-1)
    lo, hi = (t[:, :18] << 48) >> 48, t[:, :18] >> 16  # the halves, sign-extended
    for v in range(3):
        ch = [(4 * v + lane) % 6 for lane in range(4)]
        assert np.array_equal(lo[v, 0::2], 2 * w[:, ch[0]]) and np.array_equal(hi[v, 0::2], 2 * w[:, ch[2]])
        assert np.array_equal(lo[v, 1::2], 2 * w[:, ch[1]]) and np.array_equal(hi[v, 1::2], 2 * w[:, ch[3]])
        for lane, c in enumerate(ch):
            k = -int(shift[c]) - 1
            assert t[v, 18 + lane] == 2 * bf[c]
            assert list(t[v, 22 + 3 * lane:25 + 3 * lane]) == [int(np.asarray(dw.mult).reshape(-1)[c]), k, (2 * dw.out_off + 1) << k]
    assert op.weights_bytes() <= op.weights_bytes_bound()


# ---- closing stages: the net's ending reads the last rows as they arrive

def conv_pool_fc():
    """Conv -> Pool -> Flatten -> Dense (Keras' "Simple MNIST convnet" ending): the fully
    connected layer closes the stream, each pooled row a slice of its 432 inputs; 10 outputs (two
    blocks of four, two more)."""
    i = keras.Input((20, 14, 1))
    x = L.MaxPooling2D(2)(L.Conv2D(8, 3, activation="relu")(i))
    return keras.Model(i, L.Dense(10)(L.Flatten()(x)), name="conv_pool_fc")


def conv_fc_softmax():
    """An RGB 3x3 /2 conv straight into a Dense with a softmax (an im2col first stage, its rows
    the dense's input slices)."""
    i = keras.Input((24, 16, 3))
    x = L.Conv2D(6, 3, strides=2, padding="same", activation="relu6")(i)
    return keras.Model(i, L.Dense(5, activation="softmax")(L.Flatten()(x)), name="conv_fc_softmax")


def dw_fc():
    """TFLM's micro_speech in small: a strided DepthwiseConv2D of a one-channel spectrogram (depth
    multiplier 6: imported as the conv it is, which opens the stream over the caller's input of
    any type), then a Dense over the flattened map, softmax."""
    i = keras.Input((25, 16, 1))
    x = L.DepthwiseConv2D((5, 4), strides=2, padding="same", depth_multiplier=6, activation="relu")(i)
    return keras.Model(i, L.Softmax()(L.Dense(4)(L.Flatten()(x))), name="dw_fc")


def conv1d_gap():
    """A Conv1D net whose GlobalAveragePooling1D (TFLite's MEAN over axis 1 of the 1 x L map)
    closes the stream run along L."""
    i = keras.Input((64, 3))
    x = L.MaxPooling1D(2)(L.Conv1D(8, 5, activation="relu")(i))
    x = L.Conv1D(12, 1, activation="relu")(x)
    return keras.Model(i, L.Dense(4)(L.GlobalAveragePooling1D()(x)), name="conv1d_gap")


def mean_rows():
    """A MEAN over H alone (W x C means: an accumulator for each of a row's bytes) closing a
    stream over a 2-D map, a Dense over its W x C means."""
    i = keras.Input((24, 6, 2))
    x = L.Conv2D(8, 3, padding="same", activation="relu")(i)
    x = L.Lambda(lambda t: keras.ops.mean(t, axis=1))(L.DepthwiseConv2D(3, padding="same")(x))
    return keras.Model(i, L.Dense(4)(L.Flatten()(x)), name="mean_rows")


@pytest.fixture(scope="module")
def closing():
    return _converted((conv_pool_fc, conv_fc_softmax, dw_fc, conv1d_gap, mean_rows), 80, 90, 100, 8)


@pytest.mark.parametrize("name, kinds", [
    ("conv_pool_fc", ["conv", "pool", "fc"]),
    ("conv_fc_softmax", ["conv", "fc"]),
    ("dw_fc", ["conv", "fc"]),
    ("conv1d_gap", ["conv", "pool", "pw", "mean"]),
    ("mean_rows", ["conv", "dw", "mean"]),
])
def test_closing_stage_formed_smaller_and_bit_exact(name, kinds, closing, tmp_path):
    """A net's ending closes its stream (``Int8Op.closes_rows``): a fully connected layer over the
    flattened map (each arriving row's dot products added to one int32 per output), a MEAN over
    the streamed axis (a Conv1D net's global average over L; a mean over H). The map before it is
    never stored: the arena drops below the layer-by-layer one by a quarter or more, the closing
    stage's workspace is its accumulators, and the outputs are TFLM's and (requantised in double
    precision, as the dense layer does) BUILTIN_REF's bit for bit."""
    data, xs = closing[name]
    compiled = compile_tflite(data, classname="S")
    streams = [compiled.plan.op(op) for op in compiled.graph.ops if op.kind == "Stream"]
    assert len(streams) == 1
    op = streams[0]
    assert [op.stage_kind(k) for k in range(len(op.stages))] == kinds and op.reduces
    assert op.workspace_bytes() == op.rings_total() + 3 + 3 + 4 * op.stages[-1].output.size
    _, flat = layer_by_layer(data)
    assert compiled.plan.arena_size <= (1 - STREAM_MIN_SAVING) * flat.arena_size
    assert compiled.summary()["layers"][0]["stages"][-1]["sums_bytes"] == 4 * op.output.size
    path = tmp_path / "S.h"
    path.write_text(compiled.header)
    raw, _ = run_header_int8(str(path), "S", xs)
    assert np.array_equal(raw, tflm_reference({name: (data, xs)})[name]) and len(np.unique(raw)) > 3
    ref = compile_tflite(data, classname="R", reference="tflite-ref")
    assert [type(o).__name__ for o in ref.graph.ops] == [type(o).__name__ for o in compiled.graph.ops]
    if kinds[-1] == "fc":  # the dense layer's own requantisations: fixed point, double precision
        assert f"{op.stages[-1].units}, {op.stages[-1].rq_mode}, 0>(acc," in compiled.header
        assert f"{op.stages[-1].units}, 0, 1>(acc," in ref.header
    ref_path = tmp_path / "R.h"
    ref_path.write_text(ref.header)
    assert np.array_equal(run_header_int8(str(ref_path), "R", xs)[0], tflite_reference(data, xs))


@pytest.mark.parametrize("models, name", [("converted", "kws_like"), ("converted", "map_out"),
                                          ("residuals", "residual"), ("residuals", "xception_like"),
                                          ("residuals", "residual_fc"), ("closing", "conv_pool_fc"), ("closing", "dw_fc"),
                                          ("closing", "conv1d_gap")])
def test_stream_bit_exact_on_emulated_cortex_m4(models, name, request, tmp_path):
    """DSP and portable (MICRONETS_NO_DSP) builds on QEMU's Cortex-M4 give the host's outputs, chain
    streams and graph streams (the residual ones below) alike."""
    from micronets.embedded import qemu

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    data, xs = request.getfixturevalue(models)[name]
    header = tmp_path / "S.h"
    header.write_text(compile_tflite(data, classname="S").header)
    x = np.random.default_rng(7).integers(0, 256, (2,) + xs.shape[1:]).astype(np.uint8)
    _, on_host = run_header_int8(str(header), "S", x, entry="uint8")
    objdump = shutil.which(qemu.CXX).replace("g++", "objdump")
    for label, flags in (("dsp", []), ("portable", ["-DMICRONETS_NO_DSP"])):
        elf = qemu.build_firmware(header, "S", x, tmp_path / label, entry="uint8", extra_flags=flags)
        assert np.array_equal(qemu.run_firmware(elf, timeout=120).outputs, on_host), label
        code = subprocess.run([objdump, "-d", str(elf)], capture_output=True, text=True).stdout
        assert ("\tsmlad" in code) == (label == "dsp")


def test_lowering_skips_only_runs_a_stream_cannot_carry(converted, monkeypatch):
    """The lowering tries candidate runs and skips those a stream cannot carry (Unstreamable, a
    ValueError); any other error while making a stream is a bug and reaches the caller instead of
    silently costing the stream."""
    import micronets.compiler.ops.int8_stream as int8_stream
    from micronets.compiler.ops.int8_stream import Unstreamable

    data, _ = converted["kws_like"]
    assert any(op.kind == "Stream" for op in compile_tflite(data).graph.ops)
    with pytest.raises(Unstreamable, match="a stream needs at least two stages"):
        int8_stream.Int8Stream(compile_tflite(data, stream=False).graph.ops[:1])

    def broken(ops, graph_input):
        raise ValueError("a bug in making a stream")

    monkeypatch.setattr(int8_stream, "make_stream", broken)
    with pytest.raises(ValueError, match="a bug in making a stream"):
        compile_tflite(data)

    def unfit(ops, graph_input):
        raise Unstreamable("these stages cannot stream")

    monkeypatch.setattr(int8_stream, "make_stream", unfit)
    assert not any(op.kind == "Stream" for op in compile_tflite(data).graph.ops)


def test_stream_refused_where_it_does_not_help(converted):
    """Maps three rows tall: rings of three rows are the maps, so streaming plans a larger arena
    than layer by layer; the lowering keeps the layers."""
    from micronets.compiler.ops.int8_stream import make_stream, stream_candidates

    data, _ = converted["thin"]
    compiled = compile_tflite(data)
    assert not [op for op in compiled.graph.ops if op.kind == "Stream"]
    graph, flat = layer_by_layer(data)
    assert compiled.plan.arena_size == flat.arena_size
    ops = list(graph.ops)
    chains = stream_candidates(ops, {t.storage for t in graph.outputs}, graph.inputs)
    assert chains  # a chain there is, but streamed it needs more
    i, j = chains[0]
    forced = plan_memory(_renumbered(graph, ops[:i] + [make_stream(ops[i:j], graph.inputs)] + ops[j:]))
    assert forced.arena_size > flat.arena_size


def classic_cnn(second=32, gate=True):
    """Conv -> Pool twice, the classic CNN: a 2x2 /2 max pooling of a 3x3 conv's rows (the conv's
    map never stored), then a 3x3 'same' conv of ``second`` channels and an overlapping, padded
    3x3 /2 max pooling. ``gate``: a sigmoid between the blocks (an op no stream runs), so that they
    stream as two chains (without it the whole net streams as one graph: a 3x3 conv over a line
    buffer of the first pooling's rows)."""
    i = keras.Input((30, 22, 3))
    x = L.MaxPooling2D(2)(L.Conv2D(12, 3, activation="relu")(i))
    if gate:
        x = L.Activation("sigmoid")(x)
    x = L.MaxPooling2D(3, strides=2, padding="same")(L.Conv2D(second, 3, padding="same", activation="relu6")(x))
    return keras.Model(i, L.Dense(5)(L.Flatten()(L.Conv2D(8, 1)(x))), name="classic_cnn")


def test_streams_that_only_save_enough_together(tmp_path):
    """Two Conv -> Pool blocks whose maps are about the same size: streaming either leaves the
    other as the peak (each alone saves less than STREAM_MIN_SAVING), both together plan less than
    half the arena; the lowering forms both, and the outputs stay TFLM's bit for bit."""
    model = spread_weights(classic_cnn(second=48), seed=37)
    data = convert(model, np.random.default_rng(4).uniform(-1, 1, (32, 30, 22, 3)).astype(np.float32))
    flat = layer_by_layer(data)[1].arena_size
    alone = [_forced_streams(data, [run], "A").plan.arena_size for run in ((0, 2), (3, 5))]
    assert all(a > (1 - STREAM_MIN_SAVING) * flat for a in alone)
    compiled = compile_tflite(data, classname="S")
    streams = [compiled.plan.op(op) for op in compiled.graph.ops if op.kind == "Stream"]
    assert [[op.stage_kind(k) for k in range(len(op.stages))] for op in streams] == [["conv", "pool"]] * 2
    assert compiled.plan.arena_size < flat / 2
    xs = np.random.default_rng(46).integers(-128, 128, (4, 30, 22, 3)).astype(np.int8)
    path = tmp_path / "S.h"
    path.write_text(compiled.header)
    raw, _ = run_header_int8(str(path), "S", xs)
    assert np.array_equal(raw, tflm_reference({"classic_cnn": (data, xs)})["classic_cnn"]) and len(np.unique(raw)) > 5


def test_plain_chain_streams_whole_as_a_graph(tmp_path):
    """Without a residual ADD, a chain that a chain stream cannot run whole (a 3x3 conv after the
    first pooling: a chain's later stages are pointwise, depthwise or pooling) streams whole as a
    graph (Int8Branch: the conv over a line buffer of the pooling's rows), closed by the dense:
    less than a third of the layer-by-layer arena, TFLM's and BUILTIN_REF's outputs bit for bit
    (Keras' MNIST convnet: 8,608 -> 4,696 B)."""
    model = spread_weights(classic_cnn(second=48, gate=False), seed=37)
    data = convert(model, np.random.default_rng(4).uniform(-1, 1, (32, 30, 22, 3)).astype(np.float32))
    compiled = compile_tflite(data, classname="S")
    streams = [compiled.plan.op(op) for op in compiled.graph.ops if op.kind in ("Stream", "BranchStream")]
    assert len(streams) == 1 and streams[0].kind == "BranchStream"
    op = streams[0]
    assert [op.stage_kind(k) for k in range(len(op.stages))] == ["conv", "pool", "convr", "pool", "pw", "fc"]
    assert compiled.plan.arena_size < layer_by_layer(data)[1].arena_size / 3
    xs = np.random.default_rng(46).integers(-128, 128, (4, 30, 22, 3)).astype(np.int8)
    assert len(np.unique(_bit_exact(compiled, data, "classic_cnn", xs, tmp_path / "S.h"))) > 3


def pooled_chain():
    """Pooling stages between convs: a 3x3 conv, a padded 3x3 /2 max pooling, a widening 1x1 conv,
    a 2x2 /1 average pooling (each window a count of 4: 'valid'), then a 3x3 conv and a 2x2 /2
    max pooling of it."""
    i = keras.Input((30, 22, 3))
    x = L.MaxPooling2D(3, strides=2, padding="same")(L.Conv2D(12, 3, activation="relu")(i))
    x = L.AveragePooling2D(2, strides=1)(L.Conv2D(48, 1, activation="relu")(x))
    x = L.MaxPooling2D(2)(L.Conv2D(16, 3, activation="relu6")(x))
    return keras.Model(i, L.Dense(5)(L.Flatten()(x)), name="pooled_chain")


def _forced_streams(data, runs, classname):
    """The model with streams over the layer-by-layer graph's op runs ``runs`` ((start, end)
    pairs, last first), whatever the arena: every stage kind exercised, not only those the
    lowering picks."""
    from micronets.compiler.int8 import Int8Model
    from micronets.compiler.ops.int8_stream import make_stream

    graph, edges, notes = read_tflite(data)
    graph, _ = _fuse_if_smaller(_fuse_swish(graph))
    ops = list(graph.ops)
    for a, b in runs:
        ops = ops[:a] + [make_stream(ops[a:b], graph.inputs)] + ops[b:]
    graph = _renumbered(graph, ops)
    return Int8Model(graph, plan_memory(graph), edges, classname, "forced", 1 / 255, 0.0, notes, data)


def test_pooling_stages_bit_exact_and_smaller(tmp_path):
    """Pooling windows over ring rows. The classic CNN streams both Conv -> Pool pairs on its own
    (the arena at most three quarters of the layer-by-layer one); forced streams over the other
    net run max and average pooling stages between convs. Every header gives TFLM's and
    BUILTIN_REF's outputs bit for bit on the host, and the host's on QEMU's Cortex-M4."""
    from micronets.embedded import qemu

    headers = []
    for k, fn in enumerate((classic_cnn, pooled_chain)):
        model = spread_weights(fn(), seed=37 + k)
        cal = np.random.default_rng(4 + k).uniform(-1, 1, (32,) + tuple(model.input_shape[1:])).astype(np.float32)
        xs = np.random.default_rng(44 + k).integers(-128, 128, (6,) + tuple(model.input_shape[1:])).astype(np.int8)
        data = convert(model, cal)
        if fn is classic_cnn:
            compiled = compile_tflite(data, classname="S")
            ref = compile_tflite(data, classname="R", reference="tflite-ref")
            assert compiled.plan.arena_size <= (1 - STREAM_MIN_SAVING) * layer_by_layer(data)[1].arena_size
        else:
            compiled = _forced_streams(data, [(4, 6), (0, 4)], "S")
            ref = compile_tflite(data, classname="R", reference="tflite-ref")  # (pooling: the same arithmetic)
        streams = [compiled.plan.op(op) for op in compiled.graph.ops if op.kind == "Stream"]
        kinds = [[op.stage_kind(k) for k in range(len(op.stages))] for op in streams]
        if fn is classic_cnn:
            assert kinds == [["conv", "pool"], ["conv", "pool"]]
            assert streams[0].ring_rows(0) == 2 and streams[1].ring_rows(0) == 3
        else:
            assert kinds == [["conv", "pool", "pw", "pool"], ["conv", "pool"]]
            assert [streams[0].ring_rows(k) for k in range(3)] == [3, 1, 2]
        path = tmp_path / f"{fn.__name__}.h"
        path.write_text(compiled.header)
        raw, _ = run_header_int8(str(path), "S", xs)
        assert np.array_equal(raw, tflm_reference({fn.__name__: (data, xs)})[fn.__name__]) and len(np.unique(raw)) > 5
        ref_path = tmp_path / f"{fn.__name__}_ref.h"
        ref_path.write_text(ref.header)
        assert np.array_equal(run_header_int8(str(ref_path), "R", xs)[0], tflite_reference(data, xs))
        headers.append(path)
    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    for k, path in enumerate(headers):
        x = np.random.default_rng(9).integers(0, 256, (2, 30, 22, 3)).astype(np.uint8)
        _, on_host = run_header_int8(str(path), "S", x, entry="uint8")
        elf = qemu.build_firmware(path, "S", x, tmp_path / f"dsp{k}", entry="uint8")
        assert np.array_equal(qemu.run_firmware(elf, timeout=120).outputs, on_host)


def conv1d_net():
    """A 1-D net (TFLite runs Conv1D as CONV_2D on 1 x L maps): Conv1D 5 taps, MaxPooling1D 2, a
    'same' DepthwiseConv1D, a 1x1 Conv1D, global average."""
    i = keras.Input((96, 4))
    x = L.MaxPooling1D(2)(L.Conv1D(12, 5, activation="relu")(i))
    x = L.Conv1D(16, 1, activation="relu")(L.DepthwiseConv1D(3, padding="same", activation="relu")(x))
    return keras.Model(i, L.Dense(5)(L.GlobalAveragePooling1D()(x)), name="conv1d_net")


def test_one_row_maps_stream_along_their_columns(tmp_path):
    """Maps one row tall (1 x L: Conv1D as TFLite runs it) stream along L: the stages run on L x 1
    views of the same bytes with rows and columns swapped (a 5-tap Conv1D as a 5x1 conv), so the
    rings hold a few pixels, not the whole map. The lowering streams the whole net up to the
    global average over L (TFLite's MEAN over axis 1, closing the stream: its sums over the L x 1
    view's rows); a forced stream ends in the 1x1 stage's whole map. TFLM's and BUILTIN_REF's
    outputs bit for bit on the host, the host's on QEMU's Cortex-M4."""
    from micronets.embedded import qemu

    model = spread_weights(conv1d_net(), seed=41)
    cal = np.random.default_rng(5).uniform(-1, 1, (32, 96, 4)).astype(np.float32)
    xs = np.random.default_rng(45).integers(-128, 128, (6, 96, 4)).astype(np.int8)
    data = convert(model, cal)
    natural = compile_tflite(data, classname="S")
    flat = layer_by_layer(data)[1]
    assert natural.plan.arena_size <= (1 - STREAM_MIN_SAVING) * flat.arena_size
    stream = [natural.plan.op(op) for op in natural.graph.ops if op.kind == "Stream"][0]
    assert [stream.stage_kind(k) for k in range(len(stream.stages))] == ["conv", "pool", "dw", "pw", "mean"]
    conv, pool = stream.stages[:2]
    assert (conv.kh, conv.kw, conv.inputs[0].hwc, pool.kernel) == (5, 1, (96, 1, 4), (2, 1))
    # the conv's one-pixel rows computed four at a time (its kernel's 4-pixel tiles), into a ring
    # of four rows that holds the pooling's 2 /2 windows
    assert [stream.block_rows(k) for k in range(3)] == [4, 1, 1] and stream.ring_rows(0) == 4
    assert stream.inputs[0].hwc == (1, 96, 4)  # in the graph, the map TFLite has
    forced = _forced_streams(data, [(0, 4)], "F")
    assert [forced.plan.op(op).stage_kind(k) for op in forced.graph.ops if op.kind == "Stream"
            for k in range(4)] == ["conv", "pool", "dw", "pw"]
    reference = tflm_reference({"conv1d_net": (data, xs)})["conv1d_net"]
    paths = []
    for compiled in (natural, forced):
        path = tmp_path / f"{compiled.classname}.h"
        path.write_text(compiled.header)
        raw, _ = run_header_int8(str(path), compiled.classname, xs)
        assert np.array_equal(raw, reference) and len(np.unique(raw)) > 5
        paths.append(path)
    ref = tmp_path / "R.h"
    ref.write_text(compile_tflite(data, classname="R", reference="tflite-ref").header)
    assert np.array_equal(run_header_int8(str(ref), "R", xs)[0], tflite_reference(data, xs))
    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    x = np.random.default_rng(10).integers(0, 256, (2, 96, 4)).astype(np.uint8)
    for k, path in enumerate(paths):
        name = path.stem
        _, on_host = run_header_int8(str(path), name, x, entry="uint8")
        elf = qemu.build_firmware(path, name, x, tmp_path / f"m4{k}", entry="uint8")
        assert np.array_equal(qemu.run_firmware(elf, timeout=120).outputs, on_host)


def test_stream_of_an_im2col_first_conv_bit_exact(converted, tmp_path):
    """A stream whose first stage is an im2col conv (RGB 3x3 /2): TFLM's outputs on the host, and
    the host's on QEMU's Cortex-M4 (DSP build), from the uint8 entry too."""
    from micronets.embedded import qemu

    data, xs = converted["rgb_stem"]
    compiled = compile_tflite(data, classname="S")
    streams = [compiled.plan.op(op) for op in compiled.graph.ops if op.kind == "Stream"]
    assert len(streams) == 1 and streams[0].stages[0].kernel_form == 2
    path = tmp_path / "S.h"
    path.write_text(compiled.header)
    raw, _ = run_header_int8(str(path), "S", xs)
    assert np.array_equal(raw, tflm_reference({"rgb_stem": (data, xs)})["rgb_stem"]) and len(np.unique(raw)) > 5
    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    x = np.random.default_rng(8).integers(0, 256, (2,) + xs.shape[1:]).astype(np.uint8)
    _, on_host = run_header_int8(str(path), "S", x, entry="uint8")
    elf = qemu.build_firmware(path, "S", x, tmp_path / "dsp", entry="uint8")
    assert np.array_equal(qemu.run_firmware(elf, timeout=120).outputs, on_host)


# ---- residual blocks streamed as a graph (micronets/compiler/ops/int8_branch.py)

def residual():
    """ResNet-8 in small: a 3x3 stem, a block with an identity shortcut (the stem's rows read by
    the block's first conv and by the ADD), a block with a 3x3 /2 conv and a strided 1x1
    shortcut (both reading the first block's rows, both computed by the ADD), a global average
    (MEAN), dense."""
    i = keras.Input((16, 12, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu")(i)
    y = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    y = L.Conv2D(8, 3, padding="same")(y)
    x = L.Activation("relu")(L.Add()([x, y]))
    y = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    y = L.Conv2D(16, 3, padding="same")(y)
    s = L.Conv2D(16, 1, strides=2)(x)
    x = L.Activation("relu")(L.Add()([s, y]))
    return keras.Model(i, L.Dense(4)(L.GlobalAveragePooling2D()(x)), name="residual")


def residual_map():
    """A residual stream ending in a whole map (a 2x2 max pooling's, read by a dense over its pixels), 15 rows
    (the last windows run past the map): a 5x3 conv (two rows of padding above), a pointwise conv
    reading a line buffer, a 3x3 conv, the ADD's computed operand first."""
    i = keras.Input((15, 10, 4))
    x = L.Conv2D(8, (5, 3), padding="same", activation="relu6")(i)
    y = L.Conv2D(12, 1, activation="relu")(x)
    y = L.Conv2D(8, 3, padding="same")(y)
    x = L.Add()([y, x])
    x = L.Dense(4)(L.MaxPooling2D(2)(x))
    return keras.Model(i, L.Flatten()(x), name="residual_map")


def residual_fc():
    """residual_map's blocks with the dense over the flattened pooled map: the fully connected
    layer closes the graph stream (the pooling's rows added to its accumulators as they come)."""
    i = keras.Input((15, 10, 4))
    x = L.Conv2D(8, (5, 3), padding="same", activation="relu6")(i)
    y = L.Conv2D(12, 1, activation="relu")(x)
    y = L.Conv2D(8, 3, padding="same")(y)
    x = L.Add()([y, x])
    x = L.Flatten()(L.MaxPooling2D(2)(x))
    return keras.Model(i, L.Dense(4)(x), name="residual_fc")


def xception_like():
    """The Keras example's small Xception in small: depthwise stages over line buffers (6
    channels: TFLite's layout for the last two lanes), a max pooling 3 /2 'same' (windows clipped
    to the map), the ADD with a strided 1x1 shortcut, a ReLU as its own op (the ADD's output also
    feeds the next shortcut), a second block."""
    i = keras.Input((64, 8, 3))
    x = L.Conv2D(6, 3, strides=2, padding="same", activation="relu")(i)
    y = L.DepthwiseConv2D(3, padding="same")(x)
    y = L.Conv2D(16, 1, activation="relu")(y)
    y = L.DepthwiseConv2D(3, padding="same")(y)
    y = L.Conv2D(16, 1)(y)
    y = L.MaxPooling2D(3, strides=2, padding="same")(y)
    a = L.Add()([y, L.Conv2D(16, 1, strides=2)(x)])
    y = L.DepthwiseConv2D(3, padding="same")(L.Activation("relu")(a))
    y = L.Conv2D(16, 1)(y)
    a = L.Add()([y, L.Conv2D(16, 1)(a)])
    return keras.Model(i, L.Dense(4)(L.GlobalAveragePooling2D()(a)), name="xception_like")


@pytest.fixture(scope="module")
def residuals():
    return _converted((residual, residual_map, xception_like, residual_fc), 50, 60, 70, 6)


@pytest.mark.parametrize("name, kinds, lines", [
    ("residual", ["conv", "convr", "convr", "add", "convr", "convr", "convr", "add", "mean"], [3, 3, 0, 3, 3, 0, 0, 1, 0]),
    ("residual_map", ["conv", "pw", "convr", "add", "pool"], [2, 3, 0, 2, 0]),
    ("residual_fc", ["conv", "pw", "convr", "add", "pool", "fc"], [2, 3, 0, 2, 1, 0]),
    ("xception_like", ["conv", "convr", "dw", "pw", "dw", "pw", "pool", "add", "relu", "pw", "dw", "pw", "add", "mean"],
     [3, 0, 1, 3, 1, 3, 0, 1, 3, 0, 1, 0, 1, 0]),
])
def test_residual_stream_formed_smaller_and_bit_exact(name, kinds, lines, residuals, tmp_path):
    """The blocks stream whole (a graph: a ring read twice, ADDs of two row sources, KxK and
    strided 1x1 convs over line buffers): a quarter of the arena or more saved, TFLM's and
    BUILTIN_REF's outputs bit for bit on the host. Without Int8Branch these nets stream nothing."""
    data, xs = residuals[name]
    compiled = compile_tflite(data, classname="S")
    streams = [compiled.plan.op(op) for op in compiled.graph.ops if op.kind == "BranchStream"]
    assert len(streams) == 1
    op = streams[0]
    # each stage's kind and the rows its line buffer keeps (0: computed by its reader, or the
    # end), in the converter's op order (which may interleave the two branches either way)
    assert sorted(zip([op.stage_kind(k) for k in range(len(op.stages))], op.lines)) == sorted(zip(kinds, lines))
    assert op.stage_kind(0) == "conv" and op.stage_kind(len(kinds) - 1) == kinds[-1]
    if name == "xception_like":  # DSP depthwise stages read padded rows, 6 channels as runs of bytes
        dws = [k for k in range(len(op.stages)) if op.stage_kind(k) == "dw"]
        assert op.padded(0) and op.pads(0) == (1, 1) and op.dw_flat(dws[0]) == 3
        assert all(op.padded(op.sources[k][0]) for k in dws)
    _, flat = layer_by_layer(data)
    assert compiled.plan.arena_size <= (1 - STREAM_MIN_SAVING) * flat.arena_size
    layer = compiled.summary()["layers"][0]
    assert [s["macs"] for s in layer["stages"]] == [s.macs() for s in op.stages]
    raw = _bit_exact(compiled, data, name, xs, tmp_path / "S.h")
    assert len(np.unique(raw)) > 3
    unstreamed = tmp_path / "U.h"
    unstreamed.write_text(compile_tflite(data, classname="U", stream=False).header)
    assert np.array_equal(run_header_int8(str(unstreamed), "U", xs)[0], raw)




def thin_rows():
    """MicroNets' thin front end in small, rows 15 pixels wide: a 3x3 /2 stem of one channel, then
    1x1 convs of 3 inputs to 6 (one input word a pixel: int8_pw_thin's eight-pixel turns, then two
    at a time and one) and of 6 to 3 (two words: four-pixel turns, then two and one) between 3x3
    depthwise convs; the last map is the output, so every pixel is compared."""
    return _thin_front((32, 30, 1), (1, 1, 2), (6, 3), "thin_rows")


def _thin_front(shape, strides, widths, name):
    """A 3x3 /2 stem of 3 channels, then a 3x3 depthwise conv of each stride in ``strides`` with
    a 1x1 conv to each of ``widths`` between them (ReLU6 throughout), and a 1x1 conv to 12."""
    i = keras.Input(shape)
    x = L.Conv2D(3, 3, strides=2, padding="same", activation="relu6")(i)
    for k, stride in enumerate(strides):
        if k:
            x = L.Conv2D(widths[k - 1], 1, activation="relu6")(x)
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu6")(x)
    return keras.Model(i, L.Conv2D(12, 1)(x), name=name)


def test_thin_pointwise_rows_bit_exact_on_emulated_cortex_m4(tmp_path):
    """The thin 1x1 stages' runs of 15 pixels (every turn and tail of mn_pw_thin_asm; 6 inputs: the
    last word's two packed in one): host and both references alike, and QEMU's Cortex-M4 (DSP: the
    assembly, and MN_PW_NO_ASM: its C++ form) gives the host's outputs bit for bit."""
    from micronets.embedded import qemu

    data, xs = _converted((thin_rows,), 70, 3, 71, 6)["thin_rows"]
    compiled = compile_tflite(data, classname="S")
    streams = [op for op in compiled.graph.ops if op.kind == "Stream"]
    assert len(streams) == 1 and [s.inputs[0].hwc[1:] for s in streams[0].stages[2:5:2]] == [(15, 3), (15, 6)]
    header = tmp_path / "S.h"
    assert len(np.unique(_bit_exact(compiled, data, "thin_rows", xs, header))) > 5
    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    x = np.random.default_rng(9).integers(0, 256, (3,) + xs.shape[1:]).astype(np.uint8)
    _m4_gives_host(header, x, tmp_path, {"dsp": [], "cxx": ["-DMN_PW_NO_ASM"]})  # the assembly and its C++ form


def _m4_gives_host(header, x, tmp_path, builds):
    """QEMU Cortex-M4 builds (label -> extra compiler flags) of ``header``'s class S on the uint8
    inputs ``x``, each giving the host build's outputs (more than 5 distinct values) bit for bit:
    label -> firmware path."""
    from micronets.embedded import qemu

    _, on_host = run_header_int8(str(header), "S", x, entry="uint8")
    assert len(np.unique(on_host)) > 5
    elfs = {}
    for label, flags in builds.items():
        elfs[label] = qemu.build_firmware(header, "S", x, tmp_path / label, entry="uint8", extra_flags=flags)
        assert np.array_equal(qemu.run_firmware(elfs[label], timeout=120).outputs, on_host), label
    return elfs


def test_profile_counts_each_stage_of_a_stream(converted, tmp_path):
    """benchmarks/int8_profile.py --stages: a third Cortex-M4 build times each ring's computing of
    its producer's rows and each plain stream's last call, so a stream's instructions come apart
    into its stages' (each the nested fills less the deeper ones), for a stream ending in a closing
    stage (kws_like's mean) and one storing its last map (map_out's pooling): one count a stage,
    every one of them some, summing to about the stream's own count."""
    import os
    import sys

    from micronets.embedded import qemu

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    import int8_profile

    for name in ("kws_like", "map_out"):
        data, _ = converted[name]
        (tmp_path / f"{name}.tflite").write_bytes(data)
        (tmp_path / name).mkdir()
        r = int8_profile.profile(name, str(tmp_path), str(tmp_path / name), stages=True)
        rows = [row for row in r["rows"] if row["stages"]]
        assert len(rows) == 1 and not any(row["flags"] for row in r["rows"])
        op = [op for op in compile_tflite(data, classname="Net").graph.ops if op.kind == "Stream"][0]
        counts = rows[0]["stages"]
        assert [label.split(":")[0] for label, _ in counts] == [f"s{k}" for k in range(len(op.stages))], name
        assert all(n > 0 for _, n in counts), counts
        # (the first layer's count is predict()'s less the other layers': its set-up too)
        assert 0.9 * rows[0]["instr"] < sum(n for _, n in counts) < 1.01 * rows[0]["instr"], (counts, rows[0]["instr"])


def thin_dw_rows():
    """Thin depthwise stages of padded rings whose C % 4 channels are a group of the table, at
    widths that leave the last block of four pixels partly past the row: 3 channels stride 1 (27
    pixels, the flat pattern's), 6 stride 2 (27 -> 14), 7 stride 1 (14), 10 stride 2 (14 -> 7, no
    padding left)."""
    return _thin_front((64, 54, 1), (1, 2, 1, 2), (6, 7, 10), "thin_dw_rows")


def test_thin_depthwise_rows_through_pair_taps_bit_exact_on_emulated_cortex_m4(tmp_path):
    """A 3x3 depthwise stage of a padded ring with C % 4 in its own group (3, 6, 7, 10 channels;
    strides 1 and 2) runs channel by channel through pair taps (int8_dw_row_halves: mn_dwh_run's
    assembly for each geometry), the blocks past the row's padding from a patch: host and both
    references alike, and QEMU's Cortex-M4 gives the host's outputs bit for bit."""
    from micronets.embedded import qemu

    data, xs = _converted((thin_dw_rows,), 80, 5, 81, 3)["thin_dw_rows"]
    compiled = compile_tflite(data, classname="S")
    streams = [op for op in compiled.graph.ops if op.kind == "Stream"]
    assert len(streams) == 1
    op = compiled.plan.op(streams[0])
    dws = [k for k in range(len(op.stages)) if op.stage_kind(k) == "dw"]
    assert [(op.stages[k].output.hwc[1:], op.stages[k].strides[1]) for k in dws] == [
        ((27, 3), 1), ((14, 6), 2), ((14, 7), 1), ((7, 10), 2)]
    assert all(op.padded_ring(k - 1) and op.flash_table(k) for k in dws)
    header = tmp_path / "S.h"
    assert len(np.unique(_bit_exact(compiled, data, "thin_dw_rows", xs, header))) > 5
    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    x = np.random.default_rng(11).integers(0, 256, (2,) + xs.shape[1:]).astype(np.uint8)
    elf = _m4_gives_host(header, x, tmp_path, {"dsp": []})["dsp"]
    nm = shutil.which(qemu.CXX).replace("g++", "nm")
    syms = subprocess.run([nm, "-C", str(elf)], capture_output=True, text=True).stdout
    for sw, c in ((1, 3), (2, 6), (1, 7), (2, 10)):
        assert f"mn_dwh_run<{sw}, {c}>" in syms


def squeeze_excite():
    """Squeeze-excite blocks on an 8x8 map, each MUL of a depthwise map by its gate read only by
    a 1x1 projection: 50 -> 32 (the tiles' inputs doubled: 2 COUT > CIN; 4-pixel tiles; a last
    word of two inputs), 291 -> 31 (three left over; 4-pixel tiles in an arena workspace, whose
    plain form unpacks in chunks), 45 -> 27 (one left over, doubled) and 39 -> 12 (three) after ReLU6 maps and sigmoid
    gates (both zero points -128: the products' non-negative form); a hard-sigmoid gate and a map
    of no activation (any zero points: the general form) on the 39-channel block."""
    i = keras.Input((8, 8, 8))
    x = L.Conv2D(16, 1)(i)
    for cin, cout, gate, act in ((50, 32, "sigmoid", "relu6"), (291, 31, "sigmoid", "relu6"),
                                 (45, 27, "sigmoid", "relu6"), (39, 12, "hard_sigmoid", None)):
        x = L.DepthwiseConv2D(3, padding="same", activation=act)(L.Conv2D(cin, 1, activation="relu6")(x))
        s = L.GlobalAveragePooling2D(keepdims=True)(x)
        s = L.Conv2D(cin, 1, activation=gate)(L.Conv2D(max(2, cin // 8), 1, activation="relu")(s))
        x = L.Conv2D(cout, 1)(L.Multiply()([x, s]))
    return keras.Model(i, x, name="squeeze_excite")


def test_squeeze_excite_multiply_fused_into_its_projection_on_emulated_cortex_m4(tmp_path, monkeypatch):
    """Each squeeze-excite MUL runs inside the 1x1 projection that reads it (Int8ConvMul,
    templates/kernels/int8_conv_mul.h.j2: each tile's inputs formed as the MUL forms them, then the
    conv's tile), so its map is not stored: host and both references alike; QEMU's Cortex-M4
    (the DSP build at -O2 and -Og with a frame pointer, and the portable one, MICRONETS_NO_DSP) gives
    the host's outputs bit for bit; the arena is no larger than apart; and per block, as
    benchmarks/int8_profile.py counts them, the fused layer takes fewer Cortex-M4 instructions than
    the MUL and the projection apart: 2.5 a product element fewer in the non-negative form (3.1 to
    3.4 measured; the MUL alone takes about 7), 1.0 in the general one (1.25)."""
    import os
    import sys

    from micronets.compiler import int8
    from micronets.compiler.ops.int8_conv_mul import Int8ConvMul
    from micronets.embedded import qemu

    data, xs = _converted((squeeze_excite,), 90, 7, 91, 4)["squeeze_excite"]
    compiled = compile_tflite(data, classname="S")
    fused = [op for op in compiled.graph.ops if isinstance(op, Int8ConvMul)]
    assert [op.inputs[0].hwc[2] for op in fused] == [50, 291, 45, 39] and not any(op.kind == "Multiply" for op in compiled.graph.ops)
    assert [op.m_pos for op in fused] == [True, True, True, False]
    # the 291-channel block's 4-pixel tiles unpack into the arena, where it has room
    assert [bool(compiled.plan.op(op).workspace_option) for op in fused] == [False, True, False, False]
    assert compiled.header.count("int8_conv_mul<") == 4 and "Conv2D 1x1 (x SE vector 1x1x291)" in compiled.header
    with monkeypatch.context() as m:
        m.setattr(int8, "_fuse_conv_mul", lambda graph, plan: (graph, plan))
        apart = compile_tflite(data, classname="A")
    assert compiled.plan.arena_size <= apart.plan.arena_size
    header = tmp_path / "S.h"
    assert len(np.unique(_bit_exact(compiled, data, "squeeze_excite", xs, header))) > 5
    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    x = np.random.default_rng(13).integers(0, 256, (2,) + xs.shape[1:]).astype(np.uint8)
    _m4_gives_host(header, x, tmp_path, {"dsp": [], "og": ["-Og", "-fno-omit-frame-pointer"], "nodsp": ["-DMICRONETS_NO_DSP"]})
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    import int8_profile

    (tmp_path / "squeeze_excite.tflite").write_bytes(data)
    rows = {}
    for label in ("fused", "apart"):
        (tmp_path / label).mkdir()
        with monkeypatch.context() as m:
            if label == "apart":
                m.setattr(int8, "_fuse_conv_mul", lambda graph, plan: (graph, plan))
            r = int8_profile.profile("squeeze_excite", str(tmp_path), str(tmp_path / label))
        assert not any(row["flags"] for row in r["rows"])
        rows[label] = r["rows"]
    fused_rows = [row for row in rows["fused"] if "(x SE vector" in row["label"]]
    assert len(fused_rows) == 4
    apart = rows["apart"]
    for op, row in zip(fused, fused_rows):
        (k,) = [k for k, a in enumerate(apart) if a["label"].startswith(row["label"].split(": ")[0] + ": Conv2D 1x1")]
        assert "Multiply" in apart[k - 1]["label"]
        saved = (apart[k - 1]["instr"] + apart[k]["instr"] - row["instr"]) / op.inputs[0].size
        assert saved > (2.5 if op.m_pos else 1.0), (row["label"], saved)
