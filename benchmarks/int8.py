#!/usr/bin/env python
"""micronets int8 benchmark: arena, weights and bit-exactness of the int8 headers, against TFLM.

    python benchmarks/int8.py                      # every net, updates its section of RESULTS.md
    python benchmarks/int8.py --nets pico,phinet-2m --out -

For every net (the five MobileNets at 96x96x1, the four PhiNet presets at their published
resolutions, 10 classes; the four MLPerf Tiny v1 reference models at their published sizes) with random weights livened
(tests/netutil.py: outputs that vary with the input), quantised by
TFLite's converter (64 random calibration images): our int8 arena (planned to the byte) next to
our float32 arena and TFLM's smallest working int8 arena (bisection, one child process per probe);
int8 weight bytes (weights + biases + per-channel multipliers and shifts, biases and shifts in the
layout each layer chose: int16 biases, bias and shift packed in one int32, or int32 + int8) per parameter; the
largest difference, in LSB, of the header's raw int8 outputs (g++ on this machine) from TFLM's
and, built with reference="tflite-ref", from TFLite's BUILTIN_REF kernels, on random int8 inputs;
and Cortex-M4 instructions per MAC under QEMU (DSP path), with its outputs checked against the host.
The same figures, in a section of their own, for the published fully-int8 .tflite files of
tests/data/published (trained weights, as MLPerf Tiny and TFLM ship them), except the float arena.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Dict, List

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from int8_reference import tflite_reference, tflm_reference  # noqa: E402
from sections import markers, write_section  # noqa: E402

NETS = ["pico", "nano", "micro", "milli", "base", "phinet-2m", "phinet-5m", "phinet-10m", "phinet-20m"]
#: MLPerf Tiny v1's four reference models (tests/public_models.py, built from their published
#: definitions at their published sizes)
MLPERF = ["mlperf_resnet8", "mlperf_vww_mobilenet_v1", "mlperf_kws_ds_cnn", "mlperf_ad_autoencoder"]
#: other public architectures (tests/public_models.py): keras.applications, Keras examples, classics, a Conv1D,
#: a transformer, LeNet-5 (TANH), MobileFaceNet (PRELU), YOLOv2-tiny (LEAKY_RELU) (not ConvMixer nor ConvNeXt:
#: TFLM has no GELU kernel to compare with)
PUBLIC = ["keras_mobilenet_v2", "keras_mobilenet_v3_small", "keras_mobilenet_v3_small_preproc",
          "keras_efficientnet_tiny", "keras_example_xception_small", "keras_example_mnist_convnet", "squeezenet_v1_1",
          "shufflenet_v2_stage", "conv1d_accelerometer", "keras_resnet_small", "keras_resnet_v2_small",
          "keras_densenet_small", "keras_efficientnet_v2_tiny", "keras_nasnet_tiny", "keras_inception_resnet_tiny",
          "keras_mobilenet_v3_large", "keras_example_timeseries_transformer", "lenet5", "mobilefacenet", "yolov2_tiny",
          "tf_simple_audio"]
#: published fully-int8 .tflite files with trained weights (MLPerf Tiny's reference models, TFLM's
#: examples), byte for byte as their authors ship them: tests/data/published (provenance in its README)
PUBLISHED_DIR = os.path.join(os.path.dirname(HERE), "tests", "data", "published")
#: (not TFLM's memory_footprint example, an ADD of two inputs: no MACs to count per instruction,
#: no uint8 entry; tests/test_published_models.py runs it)
PUBLISHED = sorted(f[:-7] for f in os.listdir(PUBLISHED_DIR)
                   if f.endswith(".tflite") and f != "tflm_simple_add_model.tflite")
TAG = "int8.py"
BEGIN, END = markers(TAG)
PUB_TAG = "int8.py published"
#: the accuracy table is its own section, so a run with --no-accuracy leaves the last one in place
ACC_TAG = "int8.py accuracy"


def bench_model(name: str, rng=None):
    """(Keras model, its .tflite bytes) of the benchmark net ``name``: a micronets architecture or a
    tests/public_models.py name, quantised on 64 random images drawn from ``rng`` (default: a
    generator seeded 0), uniform over the model's input range ([0, 1], or [0, 255] where the
    model rescales pixels itself). Its weights are the test suite's livened ones (tests/netutil.py
    ``liven`` on those images: each channel scaled to unit spread, the head to logits of spread 2),
    so that outputs vary with the input: a bit-exact comparison over a handful of saturated
    output levels would prove little."""
    import keras

    from micronets.compiler.int8 import quantize_keras
    from micronets.models import make_net
    from netutil import liven

    keras.utils.set_random_seed(0)  # the weights liven leaves as initialised (attention's) depend on it
    import public_models

    options = {}
    if name in public_models.MODELS:
        model, options = public_models.build(name)
    elif "_" in name:  # micronets architectures have none
        raise ValueError(f"unknown net {name!r}: a micronets architecture or one of tests/public_models.py's")
    else:
        net = make_net(name)
        net.build()
        model = net.model
    shape = tuple(int(d) for d in model.input_shape[1:])
    rng = np.random.default_rng(0) if rng is None else rng
    calibration = rng.uniform(0, options.get("input_range", 1.0), (64,) + shape).astype(np.float32)
    liven(model, calibration, seed=1)
    return model, quantize_keras(model, calibration)


def bench(name: str, tflm, n_inputs: int, work: str) -> Dict:
    """One benchmark net: built, given random weights and quantised here (bench_model), then measured."""
    from micronets.compiler import compile_model

    t0 = time.time()
    rng = np.random.default_rng(0)
    model, data = bench_model(name, rng)  # calibration first, then the test inputs, from one generator
    shape = tuple(int(d) for d in model.input_shape[1:])
    xs = rng.integers(-128, 128, (n_inputs,) + shape).astype(np.int8)
    row = measure(name, data, xs, tflm, work, rng)
    row["arena_float"] = compile_model(model).plan.arena_size
    row["seconds"] = round(time.time() - t0, 1)
    return row


def bench_published(name: str, tflm, n_inputs: int, work: str) -> Dict:
    """One published .tflite of tests/data/published, as its authors ship it (trained weights), on
    random inputs of its input type around its zero point, each of another amplitude (a trained
    model saturates on full-range noise)."""
    t0 = time.time()
    with open(os.path.join(PUBLISHED_DIR, name + ".tflite"), "rb") as fh:
        data = fh.read()
    from test_published_models import random_inputs

    row = measure(name, data, random_inputs(data, n_inputs, seed=0), tflm, work, np.random.default_rng(0))
    row["seconds"] = round(time.time() - t0, 1)
    return row


def measure(name: str, data: bytes, xs: np.ndarray, tflm, work: str, rng) -> Dict:
    """The int8 figures of one .tflite: ours (arena, weights, MACs), TFLM's smallest arena, the
    largest LSB difference over every output from TFLM and (reference="tflite-ref" build) from
    BUILTIN_REF on inputs ``xs`` (their real values for a float input; None where TFLite's
    interpreter refuses the file), and the Cortex-M4 cost of one uint8 input drawn from ``rng``."""
    from micronets import host
    from micronets.compiler.int8 import compile_tflite

    path = os.path.join(work, f"{name}.tflite")
    with open(path, "wb") as fh:
        fh.write(data)
    compiled = compile_tflite(data, classname="Net")
    shape = tuple(compiled.graph.input.shape)
    entry = "uint8" if compiled.graph.input.dtype == "uint8" else "int8"
    row = dict(net=name, input="x".join(map(str, shape)))
    s = compiled.summary()
    row.update(macs=s["macs"], params=s["params"], weights_bytes=s["weights_bytes"], arena_int8=s["arena_bytes"])
    header = os.path.join(work, f"{name}.h")
    with open(header, "w") as fh:
        fh.write(compiled.header)
    # the file's own edges: a float input (TinyEngine's detector) takes the inputs' real values,
    # which quantise back exactly; every output compared, a float one at its raw int8 level
    qi = compiled.graph.input.quant
    real = ((xs.astype(np.float32) - np.float32(qi.zero_point)) * np.float32(qi.scale)).astype(np.float32)
    float_in = compiled.edges.input_types[0] == "float32"
    feed, host_entry = (real, "float") if float_in else (xs, entry)
    raw, _ = host.run_header_int8(header, "Net", feed, entry=host_entry)
    ref_build = compile_tflite(data, classname="Net", reference="tflite-ref")
    header_ref = os.path.join(work, f"{name}_ref.h")
    with open(header_ref, "w") as fh:
        fh.write(ref_build.header)
    raw_ref, _ = host.run_header_int8(header_ref, "Net", feed, entry=host_entry)

    def as_raw(values: np.ndarray) -> np.ndarray:
        """A reference's outputs (every one, in the file's output types) as raw int8 levels."""
        values, out, start = values.reshape(raw.shape), np.empty(raw.shape, np.int64), 0
        for t in compiled.graph.outputs:
            part = values[:, start:start + t.size]
            if np.issubdtype(part.dtype, np.floating):  # a DEQUANTIZE's q: (q - zero) * scale
                part = np.round(part / np.float32(t.quant.scale)) + t.quant.zero_point
            out[:, start:start + t.size] = part
            start += t.size
        return out

    try:
        reference = tflite_reference(data, feed)
    except ValueError:  # TFLite's interpreter refuses the file (TFLM need not)
        row["lsb_vs_ref"] = None
    else:
        row["lsb_vs_ref"] = int(np.abs(raw_ref.astype(int) - as_raw(reference)).max())
    row["arena_tflm"] = tflm.smallest_arena(path, start=1 << 14)["arena"]
    row["lsb_vs_tflm"] = int(np.abs(raw.astype(int) - as_raw(tflm_reference({name: (data, feed)})[name])).max())
    row["levels"] = int(len(np.unique(raw)))
    try:  # Cortex-M4 (QEMU, DSP path): instructions per MAC, outputs against the host build
        from micronets.embedded import qemu

        pixels = rng.integers(0, 256, (1,) + shape).astype(np.uint8)
        elf = qemu.build_firmware(header, "Net", pixels, os.path.join(work, f"fw_{name}"), entry="uint8")
        result = qemu.run_firmware(elf, timeout=600)
        _, on_host = host.run_header_int8(header, "Net", pixels, entry="uint8")
        row["m4_per_mac"] = result.instructions / s["macs"]
        row["m4_stack"] = result.stack_bytes
        row["m4_same"] = bool(np.array_equal(result.outputs, on_host))
    except Exception as exc:  # no toolchain / emulator: reported as n/a
        row["m4_per_mac"], row["m4_stack"], row["m4_same"] = None, None, f"n/a ({type(exc).__name__})"
    return row


#: (architecture, input shape, epochs) trained on scikit-learn's digits for the accuracy table
ACCURACY_NETS = [("pico", (32, 32, 1), 15), ("phinet-2m", (32, 32, 1), 15)]


def accuracy_row(arch: str, shape, epochs: int, work: str) -> Dict:
    """Float vs int8 test accuracy on real data: ``arch`` trained on scikit-learn's digits (1,347
    training, 450 test images, upsampled to ``shape``; Adam 0.01, batch 32), quantised by TFLite's
    converter with 300 training images; the int8 header (g++) classifies the test split from
    float inputs."""
    import keras

    from micronets import data, host
    from micronets.compiler.int8 import compile_keras_int8
    from micronets.models import make_net

    t0 = time.time()
    (xtr, ytr), (xte, yte) = data.load_digits(input_shape=shape)
    keras.utils.set_random_seed(0)
    net = make_net(arch, num_classes=10, input_shape=shape)
    net.build()
    model = net.model
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(xtr, ytr, epochs=epochs, batch_size=32, verbose=0)
    float_acc = float((np.argmax(model.predict(xte, verbose=0), 1) == yte).mean())
    calib = xtr[np.random.default_rng(0).permutation(len(xtr))[:300]]
    compiled = compile_keras_int8(model, calib, classname="Acc")
    header = os.path.join(work, f"acc_{arch}.h")
    with open(header, "w") as fh:
        fh.write(compiled.header)
    raw, _ = host.run_header_int8(header, "Acc", xte, entry="float")
    int8_acc = float((np.argmax(raw, 1) == yte).mean())
    return dict(net=arch, input="x".join(map(str, shape)), epochs=epochs, params=compiled.summary()["params"],
                images=int(len(yte)), float_acc=float_acc, int8_acc=int8_acc, seconds=round(time.time() - t0, 1))


def accuracy_table(rows: List[Dict]) -> str:
    begin, end = markers(ACC_TAG)
    lines = [begin, "### int8 accuracy on real data (scikit-learn digits)", "",
             "Each net trained on 1,347 digits (8x8 upsampled to its input; Adam 0.01, batch 32), quantised with "
             "300 training images as calibration; test accuracy on the other 450 (1 image = 0.22 points): Keras "
             "float32 vs the int8 header (g++, predict(const float*)). Target: int8 within 1 point of float.", "",
             "| net | input | epochs | params | test images | float32 (Keras) | int8 header | int8 - float (points) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['net']} | | | | | error: {r['error']} | | |")
            continue
        lines.append(f"| {r['net']} | {r['input']} | {r['epochs']} | {r['params']:,} | {r['images']} | "
                     f"{r['float_acc'] * 100:.1f}% | {r['int8_acc'] * 100:.1f}% | "
                     f"{(r['int8_acc'] - r['float_acc']) * 100:+.1f} |")
    lines.append(end)
    return "\n".join(lines) + "\n"


def table(rows: List[Dict], n_inputs: int) -> str:
    lines = [BEGIN, "## int8 (benchmarks/int8.py)", "",
             f"Random weights livened as the test suite's (tests/netutil.py: each channel at unit spread, logits at spread 2, so "
             f"outputs vary with the input), TFLite's converter with 64 random calibration images, "
             f"{n_inputs} random int8 inputs per net. Arena bytes: ours planned to the byte; TFLM's smallest working "
             f"arena (bisection to 16 B). Weights: int8 weights + biases + per-channel multipliers/shifts (biases "
             f"int16 where a layer's all fit, else packed with the shift in one int32 where they fit 24 bits) "
             f"+ the 256-byte uint8 input table where one is needed (none here: calibrated over [0, 1] or [0, 255], a pixel p "
             f"quantises to exactly p - 128); each distinct array counted once, as the header stores it "
             f"(benchmarks/int8_flash.py: by array kind, and the floor of an exact store). LSB: largest difference of raw int8 outputs (default build vs TFLM; "
             f"reference='tflite-ref' build vs TFLite BUILTIN_REF).", "",
             "| net | input | MACs | params | int8 weights (B/param) | int8 arena | float32 arena | TFLM int8 arena "
             "| ours / TFLM | LSB vs TFLM | LSB vs BUILTIN_REF | output levels | M4 instructions / MAC | M4 stack | M4 = host |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    lines += [_table_row(r, with_float=True) for r in rows]
    lines += ["", "M4: QEMU mps2-an386 (Cortex-M4, DSP path: SXTB16 unpacking, SMLAD / SMLABB / SMLATT, SMMLAR + SSAT "
              "requantisation), -O2, one uint8 input, instructions of one "
              "predict() (-icount); 'M4 stack': the firmware's measured peak stack (harness included: RAM besides the "
              "arena, where the kernels keep their unpacked inputs; TFLM's int8 arena holds its scratch buffers); 'M4 = host': its dequantised outputs equal the host build's bit for bit. "
              "mlperf_*: MLPerf Tiny v1's reference models at their published sizes (tests/public_models.py). keras_*, squeezenet, shufflenet: "
              "the other public architectures of tests/public_models.py at its (reduced) sizes."]
    lines.append(END)
    return "\n".join(lines) + "\n"


def _table_row(r: Dict, with_float: bool) -> str:
    """One net's row of the int8 table (with our float32 arena) or of the published one (without)."""
    if "error" in r:
        return f"| {r['net']} | " + "| " * (8 if with_float else 7) + f"error: {r['error']} | | | | | |"
    cells = [r["net"], r["input"], f"{r['macs']:,}", f"{r['params']:,}",
             f"{r['weights_bytes']:,} ({r['weights_bytes'] / max(r['params'], 1):.2f})", f"{r['arena_int8']:,}"]
    cells += [f"{r['arena_float']:,}"] if with_float else []
    cells += [f"{r['arena_tflm']:,}", f"{r['arena_int8'] / r['arena_tflm']:.2f}", r["lsb_vs_tflm"],
              "refused" if r["lsb_vs_ref"] is None else r["lsb_vs_ref"], r["levels"],
              "n/a" if r["m4_per_mac"] is None else format(r["m4_per_mac"], ".2f"),
              "n/a" if r["m4_stack"] is None else f"{r['m4_stack']:,}", r["m4_same"]]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def published_table(rows: List[Dict], n_inputs: int) -> str:
    begin, end = markers(PUB_TAG)
    lines = [begin, "## int8, published models (benchmarks/int8.py)", "",
             f"Fully-int8 .tflite files with trained weights, byte for byte as their authors publish them "
             f"(MLPerf Tiny's reference models, TFLM's examples, MIT's TinyEngine detector and MCUNet; "
             f"tests/data/published, provenance in its README), through `micronets gen`. {n_inputs} random inputs "
             f"per model around the input zero point, of amplitudes from 4 levels to the type's whole range (their "
             f"real values where the file takes floats); LSB over every output. Columns as in the int8 table above; "
             f"'refused': TFLite's interpreter does not load the file (TFLM does).", "",
             "| model | input | MACs | params | int8 weights (B/param) | int8 arena | TFLM int8 arena | ours / TFLM "
             "| LSB vs TFLM | LSB vs BUILTIN_REF | output levels | M4 instructions / MAC | M4 stack | M4 = host |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    lines += [_table_row(r, with_float=False) for r in rows]
    lines.append(end)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default=",".join(NETS + MLPERF + PUBLIC + PUBLISHED),
                   help="comma-separated nets: micronets architectures, tests/public_models.py names or "
                        "tests/data/published files (without .tflite) (default: the nine micronets nets, "
                        "MLPerf Tiny's four, PUBLIC and the published files)")
    p.add_argument("--inputs", type=int, default=16, help="random inputs per net (default 16)")
    p.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"), help="Markdown file to update, or -")
    p.add_argument("--no-accuracy", action="store_true", help="skip the float vs int8 accuracy table (training)")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tflm_side import TflmRunner

    tflm = TflmRunner()
    rows, pub_rows = [], []
    with tempfile.TemporaryDirectory(prefix="micronets-int8-bench-") as work:
        for name in (n.strip() for n in args.nets.split(",")):
            print(f"{name} ...", file=sys.stderr, flush=True)
            target, run = (pub_rows, bench_published) if name in PUBLISHED else (rows, bench)
            try:
                target.append(run(name, tflm, args.inputs, work))
            except Exception as exc:  # one net's failure is reported in the table, not fatal
                target.append(dict(net=name, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"))
            print(f"  {target[-1]}", file=sys.stderr, flush=True)
        acc_rows = []
        for arch, shape, epochs in ([] if args.no_accuracy else ACCURACY_NETS):
            print(f"accuracy {arch} ...", file=sys.stderr, flush=True)
            try:
                acc_rows.append(accuracy_row(arch, shape, epochs, work))
            except Exception as exc:
                acc_rows.append(dict(net=arch, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"))
            print(f"  {acc_rows[-1]}", file=sys.stderr, flush=True)
    sections = [(TAG, table(rows, args.inputs)) if rows else None,
                (PUB_TAG, published_table(pub_rows, args.inputs)) if pub_rows else None,
                (ACC_TAG, accuracy_table(acc_rows)) if acc_rows else None]
    for tag, text in filter(None, sections):
        if args.out == "-":
            print(text)
        else:
            write_section(args.out, text, tag)
    if args.out != "-":
        print(f"wrote {args.out}", file=sys.stderr)
    exact = all("error" not in r and r["lsb_vs_tflm"] == 0 and r["lsb_vs_ref"] in (0, None) and r["m4_same"] is not False
                for r in rows + pub_rows)
    return 0 if exact and all("error" not in r for r in acc_rows) else 1


if __name__ == "__main__":
    sys.exit(main())
