"""int8 depthwise-family kernels on DSP cores: the pair-row depthwise (stride 1, a workspace the
planner gives where it costs no arena, in place too), the padded ring of a conv -> depthwise op
(with channel counts not a multiple of 4 read as runs of bytes), the one-input-channel conv (a
kernel row per word): on QEMU's Cortex-M4 the same outputs as the host's portable build and as
TFLM, bit for bit."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from micronets.compiler.int8 import compile_tflite
from int8_reference import convert, run_header_int8, spread_weights, tflite_reference, tflm_reference

keras = pytest.importorskip("keras")
L = keras.layers


def _calibration(model, n=64, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n,) + tuple(model.input_shape[1:])).astype(np.float32)


def _models():
    """name -> Keras model, one per kernel path."""
    out = {}
    # a thin stem as MobileNet's: one input channel, conv 3x3 /2 (word rows) into a ring with a
    # 3-channel depthwise (flat rows), then 3 -> 6 -> a stride-2 depthwise (a 2-channel group)
    i = keras.Input((27, 27, 1))
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6")(L.Conv2D(3, 3, strides=2, activation="relu6")(i))
    x = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6")(L.Conv2D(6, 1, activation="relu6")(x))
    out["stem"] = keras.Model(i, L.Conv2D(8, 1)(x), name="stem")
    # PhiNet's late blocks after a wider layer (the arena's peak: room for the workspaces): a 1x1
    # expansion, a 5x5 depthwise in place (pair rows through the ring), a projection added to
    # the block's input, a 5x5 depthwise not in place; 94 and 10 channels (groups of 2 at the end)
    i = keras.Input((8, 8, 8))
    t = L.Conv2D(10, 1)(L.Conv2D(160, 1, activation="relu6")(i))
    x = L.DepthwiseConv2D(5, padding="same", activation="relu6")(L.Conv2D(94, 1, activation="relu6")(t))
    x = L.Add()([t, L.Conv2D(10, 1)(x)])
    x = L.DepthwiseConv2D(5, padding="same", activation="relu6")(x)
    out["late"] = keras.Model(i, L.Conv2D(12, 1)(x), name="late")
    # a 3x3 depthwise on a 3x3 map (Base's last block: every window at a border) and a 4-wide
    # kernel row (the pair kernel's zero tap past the last column)
    i = keras.Input((6, 6, 8))
    x = L.Conv2D(20, 3, strides=2, padding="same")(L.Conv2D(64, 1, activation="relu6")(i))
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = L.DepthwiseConv2D((3, 4), padding="same", activation="relu6")(x)
    out["small"] = keras.Model(i, L.Conv2D(6, 1)(x), name="small")
    # 5x5 depthwise layers on 4x4, 2x2 and 1x1 maps (MobileNetV3Small's last blocks)
    i = keras.Input((4, 4, 8))
    x = L.DepthwiseConv2D(5, padding="same", activation="relu6")(L.Conv2D(24, 1, activation="relu6")(i))
    x = L.Conv2D(16, 1, strides=2, activation="relu6")(x)
    x = L.DepthwiseConv2D(5, padding="same", activation="relu6")(x)
    x = L.Conv2D(32, 1, strides=2, activation="relu6")(x)
    x = L.DepthwiseConv2D(5, padding="same", activation="relu6")(x)
    out["tiny"] = keras.Model(i, L.Conv2D(6, 1)(x), name="tiny")
    # ZeroPadding2D folded into a 5x5 depthwise's pads: 6 rows above, more than the window, so the
    # first two output rows' windows lie wholly in the padding (the pair rows' zero-point row 0
    # runs, the rest go into the row's biases), and 6 columns on the right; the other output rows
    # leave out their window rows above or below the map (7 channels: a group of 3 at the end)
    i = keras.Input((6, 6, 8))
    t = L.Conv2D(7, 1)(L.Conv2D(96, 1, activation="relu6")(i))
    x = L.ZeroPadding2D(((6, 1), (2, 6)))(L.Add()([t, L.Conv2D(7, 1)(i)]))
    x = L.DepthwiseConv2D(5, activation="relu6")(x)
    out["padded"] = keras.Model(i, L.Conv2D(6, 1)(x), name="padded")
    # "late" on 7x7 and 6x6 maps (PhiNet-5M's, PhiNet-2M's): rows of 7 and 6 pixels,
    # int8_depthwise_hr in the pair rows' workspace (an assembly block of eight that stores seven,
    # one of six), and on 5x5 maps: rows of 4 + 1 pixels, where the pair rows run (the second
    # layer; the first, in place, has no room for a workspace: the pixel pairs)
    for side in (7, 6, 5):
        i = keras.Input((side, side, 8))
        t = L.Conv2D(10, 1)(L.Conv2D(160, 1, activation="relu6")(i))
        x = L.DepthwiseConv2D(5, padding="same", activation="relu6")(L.Conv2D(94, 1, activation="relu6")(t))
        x = L.Add()([t, L.Conv2D(10, 1)(x)])
        x = L.DepthwiseConv2D(5, padding="same", activation="relu6")(x)
        out[f"late{side}"] = keras.Model(i, L.Conv2D(12, 1)(x), name=f"late{side}")
    return out


@pytest.fixture(scope="module")
def converted():
    out = {}
    for k, (name, model) in enumerate(_models().items()):
        model = spread_weights(model, seed=30 + k)
        out[name] = convert(model, _calibration(model, seed=k)), model
    return out


def _exact_on_host(compiled, data, name, xs, header):
    """Writes ``compiled``'s header to ``header`` and returns its raw outputs on the int8 inputs
    ``xs``, which must equal TFLM's and TFLite BUILTIN_REF's bit for bit."""
    header.write_text(compiled.header)
    raw, _ = run_header_int8(str(header), compiled.classname, xs)
    assert np.array_equal(raw, tflm_reference({name: (data, xs)})[name])
    assert np.array_equal(raw, tflite_reference(data, xs))
    return raw


def _m4_runs(header, classname, x, out_dir, builds):
    """QEMU Cortex-M4 runs of the header's builds (label -> extra compiler flags) on the uint8
    inputs ``x``, each giving the host build's outputs bit for bit: label -> run."""
    from micronets.embedded import qemu

    _, on_host = run_header_int8(str(header), classname, x, entry="uint8")
    runs = {}
    for label, flags in builds.items():
        elf = qemu.build_firmware(header, classname, x, out_dir / label, entry="uint8", extra_flags=flags)
        runs[label] = qemu.run_firmware(elf, timeout=120)
        assert np.array_equal(runs[label].outputs, on_host), label
    return runs


def _exact_here_and_on_m4(compiled, data, model, seed, out_dir, builds, n_host=4, n_m4=2):
    """``compiled``'s header (written to out_dir / CLASSNAME.h) bit for bit against TFLM and
    BUILTIN_REF on ``n_host`` int8 inputs drawn from ``seed`` (more than 8 distinct outputs), then
    its QEMU Cortex-M4 builds (``_m4_runs``) on ``n_m4`` uint8 inputs drawn from ``seed + 1``
    (skipped without the toolchain): label -> run."""
    from micronets.embedded import qemu

    shape = tuple(model.input_shape[1:])
    header = out_dir / f"{compiled.classname}.h"
    xs = np.random.default_rng(seed).integers(-128, 128, (n_host,) + shape).astype(np.int8)
    assert len(np.unique(_exact_on_host(compiled, data, model.name, xs, header))) > 8
    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    x = np.random.default_rng(seed + 1).integers(0, 256, (n_m4,) + shape).astype(np.uint8)
    return _m4_runs(header, compiled.classname, x, out_dir, builds)


def _block_at_the_peak(wide, name, seed, classname, hw=(7, 7), mid=45):
    """(model, .tflite, compiled, its depthwise op) of PhiNet-20M's late blocks in small, on a
    ``hw`` map (7x7): a 1x1 conv of ``wide`` channels sets the arena, then 1x1 to ``mid`` (45)
    channels, a 5x5 depthwise in place, a projection and the residual ADD."""
    from micronets.compiler.ops.int8_depthwise import Int8DepthwiseConv2D

    i = keras.Input(tuple(hw) + (8,))
    t = L.Conv2D(10, 1)(L.Conv2D(wide, 1, activation="relu6")(i))
    x = L.DepthwiseConv2D(5, padding="same", activation="relu6")(L.Conv2D(mid, 1, activation="relu6")(t))
    x = L.Add()([t, L.Conv2D(10, 1)(x)])
    model = spread_weights(keras.Model(i, L.Conv2D(6, 1)(x), name=name), seed=seed)
    data = convert(model, _calibration(model, seed=seed))
    compiled = compile_tflite(data, classname=classname, stream=False)
    (dw,) = [op for op in compiled.graph.ops if isinstance(op, Int8DepthwiseConv2D)]
    return model, data, compiled, dw


def _stem_builds(data, model, streams, out_dir, builds):
    """A one-input-channel stem model's header, layer by layer (streams 0) or as one stream (1):
    bit for bit against TFLM and BUILTIN_REF on 3 int8 inputs, then ``builds`` (``_m4_runs``) on a
    uint8 input: (compiled, header, label -> run)."""
    compiled = compile_tflite(data, classname="C", stream=bool(streams))
    assert sum(op.kind == "Stream" for op in compiled.graph.ops) == streams
    header = out_dir / f"{model.name}{streams}.h"
    xs = np.random.default_rng(5).integers(-128, 128, (3,) + tuple(model.input_shape[1:])).astype(np.int8)
    _exact_on_host(compiled, data, model.name, xs, header)
    x = np.random.default_rng(6).integers(0, 256, (1,) + tuple(model.input_shape[1:])).astype(np.uint8)
    return compiled, header, _m4_runs(header, "C", x, out_dir / f"{model.name}{streams}", builds)


def test_pair_kernel_and_padded_ring_are_planned(converted):
    """The kernels the tests below run are the ones planned: pair rows for the stride-1
    depthwise layers (on rows of 8, 7 or 6 pixels, 5x5: int8_depthwise_hr in their workspace), the
    padded ring with flat rows for the 3-channel stem, word rows for its conv; the optional
    workspaces leave the arena as it is without them."""
    from micronets.compiler.ops.int8_conv_depthwise import Int8ConvDepthwise
    from micronets.compiler.ops.int8_depthwise import Int8DepthwiseConv2D
    from micronets.compiler.plan import Placed, _plan_memory, _workspace_fallback

    # layer by layer: streamed, these chains may run as Int8Streams (tests/test_int8_stream.py),
    # and the whole-layer kernels are what this file tests
    stem = compile_tflite(converted["stem"][0], classname="Stem", stream=False)
    rings = [stem.plan.op(op) for op in stem.graph.ops if isinstance(op, Int8ConvDepthwise)]
    assert rings and rings[0].conv.word_rows and rings[0].padded_ring and rings[0].dw_flat == 3
    assert "mn_dw_rows_q<" in stem.header and "int8_conv_depthwise<" in stem.header
    for name in ("late", "late7", "late6", "small"):
        compiled = compile_tflite(converted[name][0], classname="M", stream=False)
        dws = [op for op in compiled.graph.ops if isinstance(op, Int8DepthwiseConv2D)]
        assert len(dws) == 2 and all(compiled.plan.op(op).workspace_option for op in dws)
        assert not any(op.workspace_option for op in dws)  # the choice lives in the plan, not the graph
        kernel = {"late": "int8_depthwise_hr<8, 8, ", "late7": "int8_depthwise_hr<7, 7, ",
                  "late6": "int8_depthwise_hr<6, 6, "}.get(name, "int8_depthwise_ws<")
        assert compiled.header.count(kernel) == 2
        if name in ("late", "late7", "late6"):  # in the pair rows' workspace, not the scratch
            assert all(compiled.plan.op(op).halves_buffer(Placed(op, compiled.plan, ())) == "work" for op in dws)
        if name.startswith("late"):  # the first one in place: its output whole pixels before its input
            plan = compiled.plan
            assert plan.overlaps_input(dws[0]) and not plan.overlaps_input(dws[1])
        without = {op: {"workspace_option": _workspace_fallback(op)}
                   for op in compiled.graph.ops if getattr(op, "workspace_options", ())}
        assert _plan_memory(compiled.graph, without).arena_size == compiled.summary()["arena_bytes"]




def test_pair_rows_not_planned_where_the_window_is_almost_all_padding(converted):
    """A 5x5 depthwise on a 1x1 map (MobileNetV3Small's last blocks) reads one tap of 25: the
    pair-row kernel would run all 25 (2.9x the instructions), so it is not offered; on a 2x2
    map (4 taps of 25) and on a 4x4 map it still is. Bit-exact: the QEMU test below."""
    from micronets.compiler.ops.int8_depthwise import Int8DepthwiseConv2D

    compiled = compile_tflite(converted["tiny"][0], classname="Tiny")
    dws = [op for op in compiled.graph.ops if isinstance(op, Int8DepthwiseConv2D)]
    assert [op.output.hwc[:2] for op in dws] == [(4, 4), (2, 2), (1, 1)]
    assert [round(op.inside_share(), 4) for op in dws] == [0.49, 0.16, 0.04]  # (14 / 20)^2, (4 / 10)^2, (1 / 5)^2
    assert [bool(op.workspace_options) for op in dws] == [True, True, False]
    assert compiled.plan.op(dws[2]).workspace_option is None


def test_pair_rows_with_windows_wholly_in_a_folded_padding_are_planned(converted):
    """The padded model's depthwise (ZeroPadding2D folded into its pads, 6 rows above a 5x5
    window) runs through the pair rows, so the QEMU test below checks the path where a window
    lies wholly outside the map."""
    from micronets.compiler.ops.int8_depthwise import Int8DepthwiseConv2D

    compiled = compile_tflite(converted["padded"][0], classname="P", stream=False)
    (dw,) = [op for op in compiled.graph.ops if isinstance(op, Int8DepthwiseConv2D)]
    assert dw.pads[0] == 6 and dw.kh == 5 and dw.output.hwc == (9, 10, 7)
    assert compiled.plan.op(dw).workspace_option and "int8_depthwise_ws<" in compiled.header


def test_pair_rows_on_maps_shorter_than_the_window_bit_exact(tmp_path):
    """5x5 depthwise layers (pads 2) on a 3x3 map and on a 2x2 map, through the pair rows: the
    middle output rows leave out window rows above and below the map at once (their biases add
    both sides' zero-point rows), the others one side. Bit for bit: TFLM and BUILTIN_REF on the
    host; on QEMU's Cortex-M4 the DSP build and the C++ forms of the assembly give the host's
    outputs."""
    from micronets.compiler.ops.int8_depthwise import Int8DepthwiseConv2D

    i = keras.Input((6, 6, 8))  # the wide 1x1 conv's output sets the arena: the workspaces cost none
    x = L.Conv2D(12, 3, strides=2, padding="same")(L.Conv2D(96, 1, activation="relu6")(i))
    x = L.DepthwiseConv2D(5, padding="same", activation="relu6")(x)
    x = L.Conv2D(9, 2, activation="relu6")(x)
    x = L.DepthwiseConv2D(5, padding="same", activation="relu6")(x)
    model = spread_weights(keras.Model(i, L.Conv2D(6, 1)(x), name="short"), seed=71)
    data = convert(model, _calibration(model, seed=71))
    compiled = compile_tflite(data, classname="S", stream=False)
    dws = [op for op in compiled.graph.ops if isinstance(op, Int8DepthwiseConv2D)]
    assert [op.output.hwc[:2] for op in dws] == [(3, 3), (2, 2)]
    assert all(compiled.plan.op(op).workspace_option for op in dws)
    assert compiled.header.count("int8_depthwise_ws<") == 2
    _exact_here_and_on_m4(compiled, data, model, 71, tmp_path, {"dsp": [], "cxx": ["-DMN_DW_NO_ASM"]}, n_m4=3)


def test_pair_rows_in_groups_of_two_where_four_do_not_fit_bit_exact(tmp_path):
    """A 5x5 depthwise in place on a 5x5x45 map where the arena (set by the wide 1x1 conv before
    it) has room for the pair-row kernel's second workspace option (groups of two channels: half
    the ring and weights, 547 B) but not its first (1,027 B), as PhiNet-20M's block 14 (8x8x299):
    the planner falls back to the second, the arena stays as without any, and the kernel runs
    groups of two (the last one a single channel, output rows of 4 + 1 pixels, border rows
    leaving out window rows). Bit for bit: TFLM and BUILTIN_REF on the host; on QEMU's
    Cortex-M4 the DSP build and the C++ forms of the assembly (MN_DW_NO_ASM) give the host's
    outputs."""
    from micronets.compiler.plan import _plan_memory, _workspace_fallback

    # (on 7x7 and 6x6 maps int8_depthwise_hr runs in the workspace instead)
    model, data, compiled, dw = _block_at_the_peak(108, "half", 81, "H", hw=(5, 5))
    planned = compiled.plan.op(dw)
    assert dw.workspace_options == (1027, 547) and planned.workspace_option == 547 and planned.pair_width() == 2
    assert compiled.plan.overlaps_input(dw)
    assert "int8_depthwise_ws<5, 5, 45, 5, 5, 5, 5, 2, 2, 2, 2>(" in compiled.header
    without = {op: {"workspace_option": _workspace_fallback(op)}
               for op in compiled.graph.ops if getattr(op, "workspace_options", ())}
    assert _plan_memory(compiled.graph, without).arena_size == compiled.summary()["arena_bytes"]
    _exact_here_and_on_m4(compiled, data, model, 81, tmp_path, {"dsp": [], "cxx": ["-DMN_DW_NO_ASM"]})


def test_pixel_pairs_without_workspace_in_place_bit_exact(tmp_path):
    """A 5x5 depthwise in place on a 7x7x45 map at the arena's peak, with no room for either pair-row
    workspace (PhiNet-20M's block 15, 8x8x308): the pixel-pair kernel (int8_depthwise_px2) runs
    it, its output 16 whole pixels (2 W + 2) before its input, stored group by group with no
    scratch; rows of 3 pairs and a last single pixel, border rows (window rows outside the map
    folded into the biases), border columns, a last single channel. Bit for bit: TFLM and
    BUILTIN_REF on the host; on QEMU's Cortex-M4 the DSP build and the portable build (the
    one-pixel kernel through the scratch) give the host's outputs."""
    model, data, compiled, dw = _block_at_the_peak(60, "px2", 83, "X")
    plan = compiled.plan
    assert dw.workspace_options and plan.op(dw).workspace_option is None and plan.overlaps_input(dw)
    assert plan.offset(dw.inputs[0]) - plan.offset(dw.output) == 16 * 45
    assert "int8_depthwise_px2<7, 7, 45, 7, 7, 5, 5, 2, 2, 2>(" in compiled.header
    _exact_here_and_on_m4(compiled, data, model, 83, tmp_path, {"dsp": [], "portable": ["-DMICRONETS_NO_DSP"]})


@pytest.mark.parametrize("h, w, c", [(8, 8, 296), (5, 9, 216)])
def test_halves_in_the_scratch_without_workspace_in_place_bit_exact(h, w, c, tmp_path):
    """A 5x5 depthwise in place at the arena's peak with no room for either pair-row workspace
    but a one-pixel scratch that holds the channel's whole map as 16-bit halves and its pair
    taps (PhiNet-20M's block 15, 8x8x308: 287 of its 308 bytes): int8_depthwise_hr runs it,
    channel by channel, in the scratch, where the pixel-pair kernel ran before (the same model
    with 45 channels: test_pixel_pairs_without_workspace_in_place_bit_exact). 8x8: rows of eight
    pixels (one assembly block), 5x9: rows of 8 + 1 (an eight-pixel block and the C++ form for
    the last pixel), border rows leaving out window rows (the assembly's loop). Bit for bit:
    TFLM and BUILTIN_REF on the host; on QEMU's Cortex-M4 the DSP build at -O2, -O3, -Os and -Og
    with a frame pointer, the C++ forms of the assembly (MN_DW_NO_ASM) and the portable build
    (the one-pixel kernel through the same scratch) give the host's outputs."""
    model, data, compiled, dw = _block_at_the_peak(60, f"hr{h}x{w}", 85, "R", hw=(h, w), mid=c)
    plan = compiled.plan
    assert dw.workspace_options and plan.op(dw).workspace_option is None and plan.overlaps_input(dw)
    assert plan.offset(dw.inputs[0]) - plan.offset(dw.output) == (2 * w + 2) * c
    assert dw.halves_bytes() <= dw.scratch_bytes() == c
    assert f"int8_depthwise_hr<{h}, {w}, {c}, {h}, {w}, 5, 5, 2, 2, 2>(" in compiled.header
    assert "int8_depthwise_px2<" not in compiled.header
    _exact_here_and_on_m4(compiled, data, model, 85, tmp_path,
                          {"dsp": [], "o3": ["-O3"], "os": ["-Os"], "og": ["-Og", "-fno-omit-frame-pointer"],
                           "cxx": ["-DMN_DW_NO_ASM"], "portable": ["-DMICRONETS_NO_DSP"]})


@pytest.mark.parametrize("side", [7, 6])
def test_halves_in_the_workspace_on_rows_of_seven_and_six_bit_exact(side, converted, tmp_path):
    """5x5 depthwise layers on 7x7 maps (PhiNet-5M's blocks 6-10) and 6x6 maps (PhiNet-2M's
    blocks 5-8) with the pair rows' workspace: int8_depthwise_hr runs them there, each row one
    assembly block, of eight pixels that stores seven (the eighth's windows end at the row's last
    half) or of six, border rows through its loop form; the first in place. Bit for bit: TFLM and
    BUILTIN_REF on the host; on QEMU's Cortex-M4 the DSP build at -O2, -O3, -Os and -Og with a
    frame pointer, the C++ forms (MN_DW_NO_ASM: a four-pixel block and the rest) and the portable
    build give the host's outputs."""
    data, model = converted[f"late{side}"]
    compiled = compile_tflite(data, classname="L", stream=False)
    assert compiled.header.count(f"int8_depthwise_hr<{side}, {side}, ") == 2 and "int8_depthwise_ws<" not in compiled.header
    _exact_here_and_on_m4(compiled, data, model, 87, tmp_path,
                          {"dsp": [], "o3": ["-O3"], "os": ["-Os"], "og": ["-Og", "-fno-omit-frame-pointer"],
                           "cxx": ["-DMN_DW_NO_ASM"], "portable": ["-DMICRONETS_NO_DSP"]})


def test_halves_kernel_on_keras_mobilenet_v3_small_bit_exact_on_emulated_cortex_m4(tmp_path):
    """keras.applications' MobileNetV3Small (tests/public_models.py, alpha 0.75, random weights) at
    128x128, where its 5x5 depthwise layers run on 8x8 maps: four of them through
    int8_depthwise_hr, which otherwise runs only on our PhiNets and made-up models. Cut at its
    logits (the softmax of random weights is one-hot). Bit for bit: TFLM and BUILTIN_REF on the
    host; the DSP build on QEMU's Cortex-M4 gives the host's outputs (a wrong tap offset in the
    kernel's assembly fails here)."""
    import keras
    import public_models

    full = public_models.keras_mobilenet_v3(input_shape=(128, 128, 3), alpha=0.75, include_preprocessing=False,
                                            num_classes=10)
    model = spread_weights(keras.Model(full.input, full.get_layer("logits").output, name="v3_logits"), seed=5)
    data = convert(model, _calibration(model, seed=5))
    compiled = compile_tflite(data, classname="V3", stream=True)
    hr = re.findall(r"int8_depthwise_hr<(\d+), (\d+), \d+, \d+, \d+, 5, 5,", compiled.header)
    assert len(hr) == 4 and set(hr) == {("8", "8")}, hr
    _exact_here_and_on_m4(compiled, data, model, 5, tmp_path, {"dsp": []})


@pytest.mark.parametrize("name", ["stem", "late", "small", "tiny", "padded", "late7", "late6", "late5"])
def test_depthwise_family_bit_exact_on_emulated_cortex_m4(name, converted, tmp_path):
    """DSP build (pair rows, padded ring, assembly blocks) on QEMU, the portable build on QEMU
    (MICRONETS_NO_DSP) and the C++ forms of the assembly blocks (MN_DW_NO_ASM): all equal to the
    host's outputs, which are TFLM's."""
    from micronets.embedded import qemu

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    data, model = converted[name]
    compiled = compile_tflite(data, classname="Dw", stream=False)  # the whole-layer and fused ring kernels
    header = tmp_path / "Dw.h"
    header.write_text(compiled.header)
    xs = np.random.default_rng(3).integers(-128, 128, (4,) + tuple(model.input_shape[1:])).astype(np.int8)
    raw, _ = run_header_int8(str(header), "Dw", xs, entry="int8")
    assert np.array_equal(raw, tflm_reference({name: (data, xs)})[name])
    assert len(np.unique(raw)) > 8
    x = np.random.default_rng(4).integers(0, 256, (2,) + tuple(model.input_shape[1:])).astype(np.uint8)
    _, expected = run_header_int8(str(header), "Dw", x, entry="uint8")
    objdump = shutil.which(qemu.CXX).replace("g++", "objdump")
    runs = {}
    for label, flags in (("dsp", []), ("portable", ["-DMICRONETS_NO_DSP"]), ("cxx", ["-DMN_DW_NO_ASM"])):
        elf = qemu.build_firmware(header, "Dw", x, tmp_path / label, entry="uint8", extra_flags=flags)
        code = subprocess.run([objdump, "-d", str(elf)], capture_output=True, text=True).stdout
        runs[label] = (qemu.run_firmware(elf, timeout=120), code)
    for label, (result, _) in runs.items():
        assert np.array_equal(result.outputs, expected), label
    dsp, dsp_code = runs["dsp"]
    assert "\tsmlad" in dsp_code and "\tsmmlar" in dsp_code
    assert dsp.instructions < 0.9 * runs["portable"][0].instructions


def test_depthwise_channel_tail_as_a_dsp_group_bit_exact(tmp_path):
    """Depthwise layers whose channel count is not a multiple of 4 (5, 6 and 7: a last group of
    1, 2 and 3 channels), streamed and layer by layer: the DSP kernels read the last C % 4
    channels as a group of their own (its unused lanes zero), in the DSP layout's tables too
    (ceil(C / 4) groups), and, from a padded ring's rows, in the assembly loop of pixel pairs
    (strides 1 and 2); a last single channel from a ring's rows in TFLite's layout (mn_dw_rows_q's
    tail()). Bit for bit: TFLM and BUILTIN_REF on the host; on QEMU's Cortex-M4 the DSP build, the C++ forms of the assembly
    (MN_DW_NO_ASM) and the portable build give the host's outputs."""
    from micronets.compiler.ops.int8_conv_depthwise import Int8ConvDepthwise
    from micronets.compiler.ops.int8_depthwise import Int8DepthwiseConv2D
    from micronets.embedded import qemu

    i = keras.Input((47, 47, 1))  # streamed: every depthwise stage reads a padded ring (the assembly loop)
    x = L.Conv2D(5, 3, strides=2, activation="relu6")(i)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6")(L.Conv2D(6, 1, activation="relu6")(x))
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6")(L.Conv2D(7, 1, activation="relu6")(x))
    model = spread_weights(keras.Model(i, L.Conv2D(8, 1)(x), name="tails"), seed=61)
    data = convert(model, _calibration(model, seed=61))
    xs = np.random.default_rng(61).integers(-128, 128, (3,) + tuple(model.input_shape[1:])).astype(np.int8)
    expected = tflm_reference({"tails": (data, xs)})["tails"]
    ref = tmp_path / "R.h"
    ref.write_text(compile_tflite(data, classname="R", reference="tflite-ref").header)
    assert np.array_equal(run_header_int8(str(ref), "R", xs)[0], tflite_reference(data, xs))
    x = np.random.default_rng(62).integers(0, 256, (2,) + tuple(model.input_shape[1:])).astype(np.uint8)
    have = bool(shutil.which(qemu.CXX) and shutil.which(qemu.QEMU))
    tails = set()
    for stream in (True, False):
        compiled = compile_tflite(data, classname="T", stream=stream)
        dws = [s for op in compiled.graph.ops for s in ([op.dw] if isinstance(op, Int8ConvDepthwise) else getattr(op, "stages", [op]))
               if isinstance(s, Int8DepthwiseConv2D)]
        for dw in dws:
            c = dw.output.hwc[2]
            assert dw.dsp_layout and dw.dsp_table().size == (c + 3) // 4 * (2 * 9 + 16)
            tails.add(c % 4)
        header = tmp_path / f"T{int(stream)}.h"
        header.write_text(compiled.header)
        raw, _ = run_header_int8(str(header), "T", xs)
        assert np.array_equal(raw, expected), stream
        assert len(np.unique(raw)) > 8
        if not have:
            continue
        _m4_runs(header, "T", x, tmp_path / f"stream{int(stream)}",
                 {"dsp": [], "cxx": ["-DMN_DW_NO_ASM"], "portable": ["-DMICRONETS_NO_DSP"]})
    assert tails == {1, 2, 3}
    if not have:
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")


@pytest.fixture(scope="module")
def strided_rows():
    """(model, .tflite, compiled) of stride-2 depthwise layers for int8_depthwise_rows: 3x3, 7x7,
    5x5 and 3x5 windows on odd and even maps, 14 and 22 channels (converted once for the tests
    below)."""
    i = keras.Input((30, 29, 8))
    t = L.Conv2D(14, 1, activation="relu6")(i)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6")(t)
    x = L.Add()([x, L.Conv2D(14, 1, strides=2, padding="same")(t)])
    x = L.DepthwiseConv2D(7, strides=2, padding="same", activation="relu6")(L.Conv2D(14, 1, activation="relu6")(x))
    x = L.DepthwiseConv2D(5, strides=2, padding="same", activation="relu6")(L.Conv2D(22, 1, activation="relu6")(x))
    x = L.Conv2D(22, 1, activation="relu6")(L.Conv2D(16, 1, activation="relu6")(x))
    y = L.DepthwiseConv2D((3, 5), strides=2, padding="same", activation="relu6")(x)
    model = spread_weights(keras.Model(i, L.Conv2D(8, 1)(y), name="rows"), seed=71)
    data = convert(model, _calibration(model, seed=71))
    return model, data, compile_tflite(data, classname="G", stream=False)


def test_strided_depthwise_rows_of_groups_bit_exact(strided_rows, tmp_path):
    """Stand-alone stride-2 depthwise layers (EfficientNet's and MobileNetV3's downsampling, NASNet's
    7x7 /2) of the DSP layout run a group of four channels at a time over every row
    (int8_depthwise_rows): 3x3, 7x7, 5x5 and 3x5 windows (odd and even maps), 14 and 22 channels
    (a last group of 2 in TFLite's layout), the 7x7 apart from its input (as planned), the
    others in place at its offset. Bit for bit: TFLM and BUILTIN_REF on the host; on QEMU's
    Cortex-M4 the DSP build, the C++ forms of the assembly (MN_DW_NO_ASM) and the portable build
    (the one-pixel kernel) give the host's outputs."""
    from micronets.compiler.ops.int8_depthwise import Int8DepthwiseConv2D
    from micronets.compiler.plan import Placed

    model, data, compiled = strided_rows
    plan = compiled.plan
    seen = {}
    for op in compiled.graph.ops:
        if isinstance(op, Int8DepthwiseConv2D):
            assert plan.op(op).rows_here(Placed(op, plan, ()))
            assert f"int8_depthwise_rows<{', '.join(map(str, op.inputs[0].hwc + op.output.hwc[:2]))}" in compiled.header
            seen[(op.kh, op.kw)] = plan.offset(op.inputs[0]) - plan.offset(op.output) if plan.overlaps_input(op) else None
    assert seen == {(3, 3): 0, (7, 7): None, (5, 5): 0, (3, 5): 0}, seen
    _exact_here_and_on_m4(compiled, data, model, 71, tmp_path,
                          {"dsp": [], "cxx": ["-DMN_DW_NO_ASM"], "portable": ["-DMICRONETS_NO_DSP"]})


def test_strided_rows_model_compiles_for_cortex_m4_at_o1_and_og(strided_rows, tmp_path):
    """The header of the model above compiles for Cortex-M4 under -Werror at -O1 and at plain -Og
    (PlatformIO's debug builds), its kernels' assembly included: its in-place 1x1 of 14 inputs to
    14 channels runs the thin kernel over a one-pixel run, whose lone pixel's assembly had 12
    register operands, which GCC could not give it at those levels ("impossible constraints";
    -O2, -O3, -Os did)."""
    from micronets.embedded import qemu

    cxx = shutil.which(qemu.CXX)
    if not cxx:
        pytest.skip("arm-none-eabi-g++ not installed")
    _, _, compiled = strided_rows
    assert "int8_pointwise<225, 14, 14, 2, 4>(arena_s8 + 0, arena_s8 + 0, arena_s8 + " in compiled.header
    header = tmp_path / "G.h"
    header.write_text(compiled.header)
    src = tmp_path / "G.cpp"
    src.write_text(f'#include "{header}"\nG net;\nint run(const int8_t* x) {{ return net.predict(x); }}\n')
    for opt in ("-O1", "-Og"):
        proc = subprocess.run([cxx, *qemu.CPU_FLAGS, *qemu.CXX_FLAGS, "-std=c++98", "-pedantic", *qemu.WARN_FLAGS, opt, "-c",
                               str(src), "-o", str(tmp_path / "G.o")], capture_output=True, text=True)
        assert proc.returncode == 0, f"{opt}: {proc.stderr[-3000:]}"


def _groups_clobber(op, gap):
    """Whether int8_depthwise_rows, its output ``gap`` bytes before its input (negative: after),
    would read an input byte after writing it, in the order its C++ runs: each whole group of
    four channels over every row (pairs of pixels: both windows read, then both stored), then
    the last C % 4 channels a pixel at a time."""
    h, w, c = op.inputs[0].hwc
    ho, wo, _ = op.output.hwc
    (sh, sw), (pt, pl) = op.strides, (op.pads[0], op.pads[2])
    written = set()

    def window(oy, ox, chans):
        for ky in range(op.kh):
            for kx in range(op.kw):
                iy, ix = oy * sh - pt + ky, ox * sw - pl + kx
                if 0 <= iy < h and 0 <= ix < w:
                    yield from (gap + (iy * w + ix) * c + j for j in chans)

    def run(pixels, chans):  # read every window of the pixels, then store them
        clobbered = any(b in written for oy, ox in pixels for b in window(oy, ox, chans))
        written.update((oy * wo + ox) * c + j for oy, ox in pixels for j in chans)
        return clobbered

    bad = False
    for g in range(0, c - 3, 4):
        bad |= any(run([(oy, x) for x in (ox, ox + 1) if x < wo], range(g, g + 4)) for oy in range(ho)
                   for ox in range(0, wo, 2))
    return bad | any(run([(oy, ox)], range(c & ~3, c)) for oy in range(ho) for ox in range(wo))


def _pixels_clobber(op, gap):
    """Whether the one-pixel kernel (all channels of a pixel read, then stored) would: the gaps
    the planner may give a depthwise in place are those where it does not."""
    h, w, c = op.inputs[0].hwc
    ho, wo, _ = op.output.hwc
    written = set()
    for oy in range(ho):
        for ox in range(wo):
            for ky in range(op.kh):
                for kx in range(op.kw):
                    iy, ix = oy * op.strides[0] - op.pads[0] + ky, ox * op.strides[1] - op.pads[2] + kx
                    if 0 <= iy < h and 0 <= ix < w and any(gap + (iy * w + ix) * c + j in written for j in range(c)):
                        return True
            written.update((oy * wo + ox) * c + j for j in range(c))
    return False


def test_strided_depthwise_rows_in_place_only_where_no_group_overwrites_input_it_reads(strided_rows):
    """Int8DepthwiseConv2D.groups_in_place against the rows kernel's access order, on the four
    layers of the bit-exact test above, for the in-place gaps under which the one-pixel kernel is
    safe (the planner's), whole pixels or not, the output before or after the input: where it
    says yes, the order never reads a byte it has overwritten; with whole pixels it says yes
    exactly there; and it says both yes and no."""
    from micronets.compiler.ops.int8_depthwise import Int8DepthwiseConv2D

    _, _, compiled = strided_rows
    answers = []
    for op in compiled.graph.ops:
        if not isinstance(op, Int8DepthwiseConv2D):
            continue
        (h, w, c), (ho, wo, _) = op.inputs[0].hwc, op.output.hwc
        near = range(-3 * c, 5 * c)  # every gap near 0, and a spread over the rest
        for gap in sorted(set(near) | set(np.linspace(-ho * wo * c + 1, h * w * c - 1, 40).astype(int).tolist())):
            if _pixels_clobber(op, gap):
                continue
            yes, clobbers = op.groups_in_place(gap), _groups_clobber(op, gap)
            assert not (yes and clobbers), (op.name, gap)
            assert gap % c or yes == (not clobbers), (op.name, gap)
            answers.append(yes)
    assert len(answers) > 50 and 0 < sum(answers) < len(answers), (len(answers), sum(answers))


def _expansion_into_stride_two(side, cin, seed, name, classname):
    """(model, data, compiled, fused op) of a PhiNet block's 1x1 expansion to 45 channels into a
    3x3 /2 depthwise on a side x side map of cin channels (a 1x1 from the 3-channel input first: the
    fused op reads the arena, not the uint8 input), then a few outputs (the harness dequantises in
    doubles); layer by layer."""
    from micronets.compiler.ops.int8_conv_depthwise import Int8ConvDepthwise

    i = keras.Input((side, side, 3))
    x = L.Conv2D(cin, 1, activation="relu6")(i)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6")(L.Conv2D(45, 1, activation="relu6")(x))
    x = L.GlobalAveragePooling2D()(L.Conv2D(8, 1)(x))
    model = spread_weights(keras.Model(i, x, name=name), seed=seed)
    data = convert(model, np.random.default_rng(seed).uniform(0, 1, (64,) + tuple(model.input_shape[1:])).astype(np.float32))
    compiled = compile_tflite(data, classname=classname, stream=False)
    rings = [compiled.plan.op(op) for op in compiled.graph.ops if isinstance(op, Int8ConvDepthwise)]
    assert len(rings) == 1
    return model, data, compiled, rings[0]


def test_conv_depthwise_ring_unpadded_without_table_on_emulated_cortex_m4(tmp_path):
    """A PhiNet block's 1x1 expansion to 45 channels into a 3x3 /2 depthwise (PhiNet-2M's block1
    at a smaller width), at the arena's peak: the planner gives the fused op neither a padded ring
    nor a table, so each output row unpacks every group's layout (whole groups unrolled), rows
    outside the map are ring slots at the zero point, and the row kernel's border pairs (the
    first pixel's window left of the map, the last pair's right of it) are known when compiled.
    Bit for bit: TFLM and BUILTIN_REF on the host; on QEMU's Cortex-M4 the DSP build, the C++
    forms of the assembly (MN_DW_NO_ASM) and the portable build give the host's outputs. The DSP
    build: 2.69 instructions a MAC with the 1x1 convs around it (2.77 with the border pairs and
    the top row tested at run time and the groups unpacked in a loop; the fused op 2.30 / 2.40)."""
    model, data, compiled, ring = _expansion_into_stride_two(23, 12, 91, "unpadded", "U")
    assert not ring.padded_ring and not ring.dw_table and ring.dw.dsp_layout
    assert ring.dw.pads[2] == 1 and ring.output.hwc == (12, 12, 45)  # a border pair at each end of a row
    runs = _exact_here_and_on_m4(compiled, data, model, 91, tmp_path, {"dsp": [], "cxx": ["-DMN_DW_NO_ASM"], "portable": ["-DMICRONETS_NO_DSP"]}, n_host=8)
    assert runs["dsp"].instructions < 2.73 * compiled.summary()["macs"], runs["dsp"].instructions


def test_conv_depthwise_stride_two_expansion_rows_in_pairs_on_emulated_cortex_m4(tmp_path):
    """A PhiNet block's thin 1x1 expansion (11 inputs, as PhiNet-10M's block1 and block3) to 45
    channels into a 3x3 /2 depthwise: each depthwise output row needs two new conv rows, which
    run as one thin run of 2 x 16 pixels (mn_pw_rows2, int8_pw_thin2: each channel's weights, bias
    and requantisation set up once for both rows, their outputs into two ring slots). Bit for bit:
    TFLM and BUILTIN_REF on the host; on QEMU's Cortex-M4 the DSP build, the C++ forms of the
    assembly (MN_PW_NO_ASM: rows one at a time) and the build with the pairs off
    (MN_PW_PAIR_XBUF_BYTES=0) give the host's outputs, and the DSP build runs fewer instructions
    than the one without pairs (8.5k fewer of 605k here)."""
    model, data, compiled, ring = _expansion_into_stride_two(16, 11, 93, "pairs", "P")
    assert ring.conv.pointwise and ring.dw.strides == (2, 2) and ring.dw.dsp_layout
    assert ring.inputs[0].hwc == (16, 16, 11) and ring.output.hwc == (8, 8, 45)
    runs = _exact_here_and_on_m4(compiled, data, model, 93, tmp_path,
                                 {"dsp": [], "cxx": ["-DMN_PW_NO_ASM"], "unpaired": ["-DMN_PW_PAIR_XBUF_BYTES=0"]})
    assert runs["dsp"].instructions < runs["unpaired"].instructions - 6000, (runs["dsp"].instructions, runs["unpaired"].instructions)


def test_conv_depthwise_two_rows_a_pass_where_the_ring_has_room_on_emulated_cortex_m4(tmp_path):
    """PhiNet-10M's block4 in small: a 1x1 expansion 35 -> 197 into a 3x3 depthwise on an 8x8 map,
    fused (another fused block lowers the arena's peak, which a 1x1 to 92 channels then sets).
    The planner has room for a ring of KD + 1 rows but not for the depthwise's table, so it takes
    the two-row option: each pass computes two output rows, each group's weights and parameters
    unpacked once for both (mn_dw_rows_q::row2_notab). Bit for bit: TFLM and BUILTIN_REF on the
    host; on QEMU's Cortex-M4 the DSP build, the C++ forms of the assembly (MN_DW_NO_ASM), the
    portable build and the same header a row a pass (TWO = 0) give the host's outputs, and the DSP
    build runs fewer instructions than a row a pass (18.8k fewer of 3.55M here)."""
    from micronets.compiler.ops.int8_conv_depthwise import Int8ConvDepthwise

    i = keras.Input((16, 16, 3))
    x = L.Conv2D(11, 1, activation="relu6")(L.Conv2D(92, 1, activation="relu6")(L.Conv2D(11, 1, activation="relu6")(i)))
    x = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6")(L.Conv2D(96, 1, activation="relu6")(x))
    t = L.Conv2D(35, 1)(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6")(L.Conv2D(197, 1, activation="relu6")(t))
    x = L.Add()([t, L.Conv2D(35, 1)(x)])
    x = L.GlobalAveragePooling2D()(L.Conv2D(8, 1)(x))  # (few outputs: the harness dequantises in doubles)
    model = spread_weights(keras.Model(i, x, name="tworows"), seed=95)
    data = convert(model, np.random.default_rng(95).uniform(0, 1, (64,) + tuple(model.input_shape[1:])).astype(np.float32))
    compiled = compile_tflite(data, classname="T", stream=False)
    rings = [compiled.plan.op(op) for op in compiled.graph.ops if isinstance(op, Int8ConvDepthwise)]
    assert len(rings) == 2 and rings[1].output.hwc == (8, 8, 197) and rings[1].dw.strides == (1, 1)
    assert rings[1].two_rows and rings[1].padded_ring and not rings[1].dw_table and rings[1].ring_rows == 4
    assert not rings[0].two_rows  # (stride 2: not offered)
    one = re.sub(r"(int8_conv_depthwise<8, 8, 35, [^>]*), 1>\(", r"\1, 0>(", compiled.header)  # a row a pass
    assert one != compiled.header
    runs = _exact_here_and_on_m4(compiled, data, model, 95, tmp_path, {"dsp": [], "cxx": ["-DMN_DW_NO_ASM"], "portable": ["-DMICRONETS_NO_DSP"]})
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "T.h").write_text(one)
    x = np.random.default_rng(96).integers(0, 256, (2,) + tuple(model.input_shape[1:])).astype(np.uint8)
    single = _m4_runs(tmp_path / "one" / "T.h", "T", x, tmp_path / "one", {"dsp": []})["dsp"]
    assert runs["dsp"].instructions < single.instructions - 12000, (runs["dsp"].instructions, single.instructions)


def test_one_channel_conv_in_few_instructions_on_emulated_cortex_m4(tmp_path):
    """A MobileNet stem, a 3x3 /2 conv of one input channel to 4 (word rows, weights unpacked
    once; inputs calibrated over [0, 1], so a uint8 pixel p is p - 128, read a word at a time),
    layer by layer and as a stream's first stage: on QEMU's Cortex-M4 the pixels whose
    windows lie inside the input run as one loop a row (int8_conv1_pairs_run; three kernel rows:
    LDRD of doubled weights and parameters, the zero point added in SMMLAR): 2.9 instructions a
    MAC with the average after it layer by layer (3.8 before), 3.2 streamed. The DSP builds, the
    C++ form (MN_CONV1_NO_ASM) and the portable build give the host's outputs, which are TFLM's
    and BUILTIN_REF's."""
    from micronets.embedded import qemu

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    i = keras.Input((49, 49, 1))
    x = L.Conv2D(4, 3, strides=2, activation="relu6")(i)
    model = spread_weights(keras.Model(i, L.GlobalAveragePooling2D()(x), name="stem_conv"), seed=71)  # (4 outputs)
    builds = {"dsp": [], "cxx": ["-DMN_CONV1_NO_ASM"], "portable": ["-DMICRONETS_NO_DSP"]}
    data = convert(model, np.random.default_rng(7).uniform(0, 1, (64,) + tuple(model.input_shape[1:])).astype(np.float32))
    for streams, labels in ((0, ("dsp", "cxx")), (1, ("dsp", "portable"))):
        compiled, _, runs = _stem_builds(data, model, streams, tmp_path, {label: builds[label] for label in labels})
        # (its average: 0.2 instructions a MAC layer by layer, 0.5 as the stream's sums)
        assert runs["dsp"].instructions < (3.4 if streams else 3.1) * compiled.summary()["macs"]


def test_one_channel_conv_borders_on_emulated_cortex_m4(tmp_path):
    """Convs of one input channel with 'same' padding, as MLPerf's KWS DS-CNN's first layer (10x4
    /2, 16 channels: too many rows to unpack, two pixels at a time inside) and a stem's 3x3 /2 to
    4 (unpacked once): half the 10x4's windows leave the input, and those too run on words of
    four taps (SMLAD), their outside taps at the input's zero point. On QEMU's Cortex-M4 the DSP
    and portable builds give the host's outputs, TFLM's and BUILTIN_REF's; the DSP build 3.3
    instructions a MAC with the layers after it (4.1 with the borders four channels at a time in
    C++)."""
    from micronets.embedded import qemu

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    i = keras.Input((25, 10, 1))
    a = L.Conv2D(16, (10, 4), strides=2, padding="same", activation="relu")(i)
    b = L.Conv2D(4, 3, strides=2, padding="same")(i)
    x = L.Flatten()(L.MaxPooling2D((13, 5))(L.Concatenate()([a, b])))  # (few outputs: the harness dequantises in doubles)
    model = spread_weights(keras.Model(i, L.Dense(6)(x), name="borders"), seed=81)
    data = convert(model, np.random.default_rng(8).uniform(0, 1, (64,) + tuple(model.input_shape[1:])).astype(np.float32))
    compiled = compile_tflite(data, classname="B", stream=False)
    assert [op.word_rows for op in compiled.graph.ops if op.kind == "Conv2D"] == [True, True]
    header = tmp_path / "B.h"
    xs = np.random.default_rng(9).integers(-128, 128, (3,) + tuple(model.input_shape[1:])).astype(np.int8)
    _exact_on_host(compiled, data, "borders", xs, header)
    x = np.random.default_rng(10).integers(0, 256, (1,) + tuple(model.input_shape[1:])).astype(np.uint8)
    runs = _m4_runs(header, "B", x, tmp_path, {"dsp": [], "portable": ["-DMICRONETS_NO_DSP"]})
    assert runs["dsp"].instructions < 3.7 * compiled.summary()["macs"]


@pytest.mark.parametrize("side", [49, 47])
def test_flat_depthwise_turns_in_pairs_on_emulated_cortex_m4(side, tmp_path):
    """A MobileNet stem's 3-channel depthwise (a padded ring read as runs of bytes, FLAT = 3: turns
    of three groups of four output bytes, 4 pixels) on rows of 24 pixels (6 whole turns: 3 pairs)
    and 23 (5: 2 pairs, then 6 groups, the last one short): the pairs of turns as
    mn_dw3_flat2_asm (each tap's weights and each channel's parameters loaded once for both
    turns), the groups left as int8_dw4_q, layer by layer (the conv -> depthwise op) and as a
    stream's stage. The DSP build and the C++ form (MN_DW_NO_ASM) give the host's outputs, which
    are TFLM's and BUILTIN_REF's, and the DSP build fewer instructions than a turn at a time."""
    from micronets.embedded import qemu

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    i = keras.Input((side, side, 1))
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6")(L.Conv2D(3, 3, strides=2, activation="relu6")(i))
    x = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6")(L.Conv2D(6, 1, activation="relu6")(x))
    x = L.GlobalAveragePooling2D()(L.Conv2D(8, 1)(x))  # (few outputs: the harness dequantises in doubles)
    model = spread_weights(keras.Model(i, x, name="flat_pairs"), seed=97)
    data = convert(model, np.random.default_rng(97).uniform(0, 1, (64,) + tuple(model.input_shape[1:])).astype(np.float32))
    wo = (side - 1) // 2
    per_mac = []
    for streams in (0, 1):
        compiled = compile_tflite(data, classname="F", stream=bool(streams))
        assert sum(op.kind == "Stream" for op in compiled.graph.ops) == streams
        assert streams or compiled.graph.ops[0].kind == "Conv2D+DepthwiseConv2D"
        assert re.search(rf"mn_dw_(rows_q|q_rows)<{wo}, 3, {wo}, 3, 3, 1, 1, 2, 1, 3\b", compiled.header)  # flat, padded
        header = tmp_path / f"flat{streams}.h"
        xs = np.random.default_rng(98).integers(-128, 128, (3,) + tuple(model.input_shape[1:])).astype(np.int8)
        _exact_on_host(compiled, data, model.name, xs, header)
        x = np.random.default_rng(99).integers(0, 256, (2,) + tuple(model.input_shape[1:])).astype(np.uint8)
        runs = _m4_runs(header, "F", x, tmp_path / f"flat{streams}", {"dsp": [], "cxx": ["-DMN_DW_NO_ASM"]})
        per_mac.append(runs["dsp"].instructions / compiled.summary()["macs"])
    # (one turn at a time, mn_dw3_flat_asm: 3.69 and 3.43 instructions a MAC on 24 pixels, 3.968 and
    # 3.575 on 23, the stream's 1x1 and depthwise stages after it included)
    bound = {49: (3.65, 3.38), 47: (3.962, 3.568)}[side]
    assert per_mac[0] < bound[0] and per_mac[1] < bound[1], per_mac


@pytest.mark.parametrize("stride", [2, 1])
def test_one_channel_conv_to_three_channels_in_pairs_on_emulated_cortex_m4(stride, tmp_path):
    """A MobileNetV1 stem, a 3x3 /2 conv of one input channel to 3 (MicroNet-Micro's s0; and one of
    stride 1, a pair's words a byte apart): on DSP cores the pixels inside the input run two at a
    time (mn_conv1_pairs3_asm: each channel's pair words and parameters loaded once for both
    pixels), an odd one left as the one-pixel loop;
    layer by layer and as a stream's first stage, on a uint8 input (read with its sign bits
    flipped) and a float one (quantised to int8 first). The DSP build, the C++ form
    (MN_CONV1_NO_ASM) and the portable build give the host's outputs, which are TFLM's and
    BUILTIN_REF's, and the DSP build fewer instructions than a pixel at a time."""
    from micronets.embedded import qemu

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    i = keras.Input((49, 47, 1) if stride == 2 else (17, 23, 1))  # (24 and 23 pixels a row, 21: pairs, then one)
    x = L.Conv2D(3, 3, strides=stride, activation="relu6")(i)
    model = spread_weights(keras.Model(i, L.GlobalAveragePooling2D()(x), name="stem3"), seed=73)  # (3 outputs)
    data = convert(model, np.random.default_rng(7).uniform(0, 1, (64,) + tuple(model.input_shape[1:])).astype(np.float32))
    per_mac = []
    builds = {"dsp": [], "cxx": ["-DMN_CONV1_NO_ASM"], "portable": ["-DMICRONETS_NO_DSP"]}
    for streams in (0, 1):
        compiled, header, runs = _stem_builds(data, model, streams, tmp_path, builds)
        per_mac.append(runs["dsp"].instructions / compiled.summary()["macs"])
        xf = np.random.default_rng(8).uniform(0, 1, (1,) + tuple(model.input_shape[1:])).astype(np.float32)
        _, on_host = run_header_int8(str(header), "C", xf, entry="float")
        elf = qemu.build_firmware(header, "C", xf, tmp_path / f"stem3_{streams}_float", entry="float")
        assert np.array_equal(qemu.run_firmware(elf, timeout=120).outputs, on_host)
    # (a pixel at a time: 3.04 and 3.42 instructions a MAC, the average after it included)
    assert stride == 1 or (per_mac[0] < 2.97 and per_mac[1] < 3.34), per_mac


def test_three_channel_stride3_stem_depthwise_on_emulated_cortex_m4(tmp_path):
    """PhiNet's stem: a 3x3 /3 depthwise of the 3-channel camera frame (ZeroPadding2D folded into
    its pads: a border row and column), then a second one on its int8 output. On DSP cores the
    windows inside the input run a window row as two word loads and a byte (mn_dw3c_run: UXTB16
    on the uint8 frame read raw, its ld8 offset in the biases; SXTB16 on int8), nine SMLAxy / MLA
    a row. The DSP build, the C++ form (MN_DW_NO_ASM) and the portable build give the host's
    outputs, which are TFLM's and BUILTIN_REF's, in fewer instructions than a pixel at a time
    through int8_dw_px. A frame whose uint8 values are not p - 128 (a
    table) keeps the generic path, bit for bit."""
    from micronets.embedded import qemu

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    i = keras.Input((35, 35, 3))
    x = L.DepthwiseConv2D(3, strides=3)(L.ZeroPadding2D(((1, 1), (1, 1)))(i))  # 37x37 -> 12x12
    x = L.DepthwiseConv2D(3, strides=3, activation="relu6")(x)  # 12x12 -> 4x4, int8 input
    model = spread_weights(keras.Model(i, L.Dense(6)(L.Flatten()(x)), name="phistem"), seed=101)
    for lo, builds in ((0, {"dsp": [], "cxx": ["-DMN_DW_NO_ASM"], "portable": ["-DMICRONETS_NO_DSP"]}), (-1, {"dsp": []})):
        data = convert(model, np.random.default_rng(11).uniform(lo, 1, (64, 35, 35, 3)).astype(np.float32))
        compiled = compile_tflite(data, classname="P", stream=False)
        assert compiled.header.count("int8_depthwise<") >= 2
        (tmp_path / f"p{-lo}").mkdir()
        runs = _exact_here_and_on_m4(compiled, data, model, 102 - lo, tmp_path / f"p{-lo}", builds, n_host=3)
        per_mac = runs["dsp"].instructions / compiled.summary()["macs"]
        # (a pixel at a time through int8_dw_px: 6.41 instructions a MAC, the harness's predict()
        # and the layers after it included; 4.61 so)
        assert lo or per_mac < 4.8, per_mac


def test_in_place_projection_runs_thin_on_emulated_cortex_m4(tmp_path):
    """PhiNet's first block in small: the stem depthwise, a fused 1x1 3 -> 12 -> 3x3 depthwise, then
    the 12 -> 11 projection in place over its input. The pixels whose stores land before every
    input not yet read run as the thin kernel's runs (a channel at a time over a run whose inputs
    are unpacked before its stores: Int8Conv2D.direct_pixels' [d0, dt)), not as 4-pixel tiles
    (PhiNet-10M's 32x32 12 -> 11: 297k Cortex-M4 instructions through its scratch, 242k so). The
    DSP build, the C++ form (MN_PW_NO_ASM, tiles there) and the portable build give the host's
    outputs, which are TFLM's and BUILTIN_REF's, in fewer instructions than as tiles."""
    from micronets.embedded import qemu

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    i = keras.Input((48, 48, 3))
    x = L.DepthwiseConv2D(3, strides=3, padding="same")(i)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6")(L.Conv2D(12, 1, activation="relu6")(x))
    x = L.Conv2D(11, 1)(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6")(L.Conv2D(44, 1, activation="relu6")(x))
    model = spread_weights(keras.Model(i, L.GlobalAveragePooling2D()(L.Conv2D(8, 1)(x)), name="phiblock"), seed=3)
    data = convert(model, np.random.default_rng(1).uniform(0, 1, (32, 48, 48, 3)).astype(np.float32))
    compiled = compile_tflite(data, classname="Q", stream=False)
    (split,) = re.findall(r"int8_pointwise_split<256, 12, 11, 2, 4, (\d+), (\d+), 256>", compiled.header)
    assert int(split[1]) - int(split[0]) >= 160, split
    builds = {"dsp": [], "cxx": ["-DMN_PW_NO_ASM"], "portable": ["-DMICRONETS_NO_DSP"]}
    runs = _exact_here_and_on_m4(compiled, data, model, 111, tmp_path, builds, n_host=3)
    per_mac = runs["dsp"].instructions / compiled.summary()["macs"]
    # (the projection as 4-pixel tiles, the layers around it included: 2.329 instructions a MAC;
    # 2.295 so, 88 pixels through the scratch, then 168 as 4 runs)
    assert per_mac < 2.31, per_mac


@pytest.mark.parametrize("name, bound", [("late", 1.375), ("late7", 1.545), ("late6", 1.53)])
def test_halves_row_setup_cost_on_emulated_cortex_m4(name, bound, converted, tmp_path):
    """int8_depthwise_hr's rows around the assembly: the rows whose windows lie inside the map
    in one assembly loop (rows of one block: 8, 7 or 6 pixels), the edge rows (window rows in the
    padding) in another over a table the layer sets once, the store keeping the window's pointers
    (the inside rows' loop 9 instructions a row, the edge rows' about 21 and 3 a window row after
    the first): at most ``bound`` Cortex-M4 instructions a MAC for each of its two 5x5 layers
    ("late": 8x8 maps, 1.349 and 1.371; 1.380 and 1.402 with the loops 14 instructions a row and
    4 a window row, 1.55 and 1.56 with each row working out its window rows in C++ and an
    assembly block a row; "late7": 1.502 and 1.539, 1.537 and 1.574, 1.74 and 1.76 before;
    "late6": 1.493 and 1.524, 1.539 and 1.571, 1.76 and 1.77 before), per layer as
    benchmarks/int8_profile.py counts them, each layer's output the host's."""
    import os
    import sys

    from micronets.compiler.ops.int8_depthwise import Int8DepthwiseConv2D
    from micronets.embedded import qemu

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    import int8_profile

    data, _ = converted[name]
    (tmp_path / f"{name}.tflite").write_bytes(data)
    (tmp_path / name).mkdir()
    r = int8_profile.profile(name, str(tmp_path), str(tmp_path / name), stream=False)
    assert not any(row["flags"] for row in r["rows"])
    compiled = compile_tflite(data, classname="Net", stream=False)
    hr = [k for k, op in enumerate(compiled.graph.ops) if isinstance(op, Int8DepthwiseConv2D)]
    assert len(hr) == 2 and compiled.header.count("int8_depthwise_hr<") == 2
    per = {row["idx"]: row["instr"] / row["macs"] for row in r["rows"] if row["macs"]}
    assert all(per[k] < bound for k in hr), [per[k] for k in hr]


@pytest.mark.parametrize("h, w", [(3, 8), (12, 8), (4, 7), (9, 6)])
def test_halves_inside_and_edge_row_loops_bit_exact(h, w, tmp_path):
    """int8_depthwise_hr's two row loops on maps other than PhiNet's squares: 3x8 (no row's
    window inside the map: every row an edge row, its table three rows long), 12x8 (eight inside
    rows in the assembly loop), 4x7 (rows of seven: one inside row, an edge row at each side
    leaving out two window rows and one leaving out three), 9x6 (rows of six). "late"'s blocks on
    an h x w map, one or both 5x5 layers through int8_depthwise_hr. Bit for bit: TFLM and BUILTIN_REF on
    the host; on QEMU's Cortex-M4 the DSP build at -O2, -O3, -Os and -Og with a frame pointer and
    the C++ forms (MN_DW_NO_ASM) give the host's outputs."""
    i = keras.Input((h, w, 8))
    t = L.Conv2D(10, 1)(L.Conv2D(160, 1, activation="relu6")(i))
    x = L.DepthwiseConv2D(5, padding="same", activation="relu6")(L.Conv2D(94, 1, activation="relu6")(t))
    x = L.Add()([t, L.Conv2D(10, 1)(x)])
    x = L.DepthwiseConv2D(5, padding="same", activation="relu6")(x)
    model = spread_weights(keras.Model(i, L.Conv2D(12, 1)(x), name=f"hr{h}x{w}"), seed=91)
    data = convert(model, _calibration(model, seed=91))
    compiled = compile_tflite(data, classname="Hr", stream=False)
    assert compiled.header.count(f"int8_depthwise_hr<{h}, {w}, ") >= 1
    _exact_here_and_on_m4(compiled, data, model, 91, tmp_path,
                          {"dsp": [], "o3": ["-O3"], "os": ["-Os"], "og": ["-Og", "-fno-omit-frame-pointer"],
                           "cxx": ["-DMN_DW_NO_ASM"]})
