#!/usr/bin/env python
"""What a Resizing front end costs on a Cortex-M4: Cortex-M4 instructions per output value.

    python benchmarks/resize_m4.py                         # print only
    python benchmarks/resize_m4.py --out benchmarks/RESULTS.md

A camera frame (QQVGA, 120x160x3 raw pixels through ``predict(const uint8_t*)``) resized to the
network's 96x96x3 by Keras' Resizing, bilinear and nearest, float32 header and int8 header (TFLite's
converter, calibrated on [0, 1]). Each model is the resize plus a global average pooling and a
Dense of 2; the same head on a 96x96x3 input is built and run too, and its instructions are
subtracted, so the figure is the resize's own (QEMU mps2-an386, -O2, -icount, one frame).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

FRAME, SIZE = (120, 160, 3), (96, 96)


def _models(mode):
    import keras
    from keras import layers as L

    def head(x):
        return L.Dense(2)(L.GlobalAveragePooling2D()(x))

    i = keras.Input(FRAME)
    j = keras.Input(SIZE + (FRAME[2],))
    return keras.Model(i, head(L.Resizing(*SIZE, interpolation=mode)(i))), keras.Model(j, head(j))


def instructions(header_text, classname, pixels, work):
    from micronets.embedded import qemu

    path = os.path.join(work, f"{classname}.h")
    with open(path, "w") as fh:
        fh.write(header_text)
    elf = qemu.build_firmware(path, classname, pixels, os.path.join(work, f"fw_{classname}"), entry="uint8")
    return qemu.run_firmware(elf, timeout=300).instructions


def measure(work):
    import tensorflow as tf

    from micronets.compiler import compile_model
    from micronets.compiler.int8 import compile_tflite

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (1,) + FRAME).astype(np.uint8)
    cal = rng.uniform(0, 1, (32,) + FRAME).astype(np.float32)
    rows = []
    for mode in ("bilinear", "nearest"):
        resized, plain = _models(mode)
        for kind in ("float32", "int8"):
            if kind == "float32":
                a, b = compile_model(resized, "R").header, compile_model(plain, "B").header
            else:
                def tflite(model, x):
                    conv = tf.lite.TFLiteConverter.from_keras_model(model)
                    conv.optimizations = [tf.lite.Optimize.DEFAULT]
                    conv.representative_dataset = lambda: ([v[None]] for v in x)
                    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                    conv.inference_input_type = conv.inference_output_type = tf.int8
                    return conv.convert()
                a = compile_tflite(tflite(resized, cal), classname="R").header
                b = compile_tflite(tflite(plain, cal[:, :SIZE[0], :SIZE[1]]), classname="B").header
            n = instructions(a, "R", pixels, work) - instructions(b, "B", pixels[:, :SIZE[0], :SIZE[1]], work)
            rows.append((mode, kind, n, n / (SIZE[0] * SIZE[1] * FRAME[2])))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="-", help="markdown file whose resize_m4.py section is rewritten ('-': print only)")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory(prefix="mn-resize-") as work:
        rows = measure(work)
    lines = [f"## Resizing on a Cortex-M4 (benchmarks/resize_m4.py)", "",
             f"A {FRAME[0]}x{FRAME[1]}x{FRAME[2]} frame of raw pixels resized to {SIZE[0]}x{SIZE[1]}x{FRAME[2]} inside the "
             "model (Keras' Resizing), QEMU mps2-an386, -O2, one frame; the same head on a "
             f"{SIZE[0]}x{SIZE[1]}x{FRAME[2]} input subtracted.", "",
             "| interpolation | header | M4 instructions | per output value |", "|---|---|--:|--:|"]
    lines += [f"| {m} | {k} | {n:,} | {v:.1f} |" for m, k, n, v in rows]
    print("\n".join(lines))
    if args.out != "-":
        from sections import markers, write_section

        begin, end = markers("resize_m4.py")
        write_section(args.out, begin + "\n" + "\n".join(lines) + "\n" + end + "\n", "resize_m4.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
