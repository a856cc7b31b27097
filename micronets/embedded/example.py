"""Regenerate the library's example sketch, ``examples/Classify`` (Arduino IDE and PlatformIO).

    python -m micronets.embedded.example                  # Pico, 32x32 digits, 30 epochs
    python -m micronets.embedded.example --arch nano --epochs 50 --out examples/Classify

Trains a micronets net on scikit-learn's bundled 8x8 handwritten digits (no download), upscaled
to the chosen input size, and writes the sketch folder with :mod:`micronets.sketch` (the same
writer as ``micronets gen --sketch``): ``Classify.ino``, ``model.h`` (class ``Classifier``, class
names "0".."9"), ``sample_image.h`` (one held-out digit as a uint8 frame, with its label) and
``platformio.ini``. ``--epochs 0`` skips training (a freshly initialised net: for build checks).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

ARCHS = {
    "pico": "PicoMobileNet",
    "nano": "NanoMobileNet",
    "micro": "MicroMobileNet",
    "milli": "MilliMobileNet",
    "base": "BaseMobileNet",
}
CLASSNAME = "Classifier"
DEFAULT_OUT = Path("examples/Classify")


def digits(size: int = 32, channels: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits as (N, size, size, channels) float32 in [0, 1], and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32) / 16.0
    # nearest-neighbour upscaling by an integer factor, then pad/crop to exactly `size`
    factor = max(1, size // 8)
    x = np.kron(x, np.ones((factor, factor), np.float32))
    out = np.zeros((x.shape[0], size, size), np.float32)
    h = min(size, x.shape[1])
    off = (size - h) // 2
    out[:, off : off + h, off : off + h] = x[:, :h, :h]
    out = np.repeat(out[..., None], channels, axis=-1)
    return out, d.target.astype(np.int64)


def generate(
    out_dir: Path = DEFAULT_OUT,
    arch: str = "pico",
    size: int = 32,
    epochs: int = 30,
    seed: int = 0,
    verbose: bool = True,
) -> List[Path]:
    """Train (optionally) and write the sketch folder ``out_dir``; returns the paths written."""
    import keras

    import micronets

    from micronets.sketch import check_sketch_dir

    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    check_sketch_dir(out_dir)  # before the training: a bad folder fails at once
    keras.utils.set_random_seed(seed)
    x, y = digits(size)
    rng = np.random.RandomState(seed)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    n_test = len(x) // 5
    test_x, test_y, train_x, train_y = x[:n_test], y[:n_test], x[n_test:], y[n_test:]

    net = getattr(micronets, ARCHS[arch])(num_classes=10, input_shape=(size, size, 1))
    net.build()
    accuracy = None
    if epochs > 0:
        net.config.learning_rate = 0.01
        net.compile()
        net.fit(train_x, train_y, test_x, test_y, epochs=epochs)
        accuracy = float(np.mean(np.argmax(net.predict(test_x), axis=1) == test_y))
        if verbose:
            print(f"{ARCHS[arch]} on {size}x{size} digits: test accuracy {accuracy:.3f} after {epochs} epochs")

    from micronets.sketch import render_sketch, write_sketch

    frame = np.round(test_x[0] * 255.0).astype(np.uint8)
    probs = net.predict(frame[None].astype(np.float32) / 255.0)[0]
    source = (
        f"a held-out handwritten digit (scikit-learn's digits, upscaled to {size}x{size}); {ARCHS[arch]} "
        + (f"trained {epochs} epochs, test accuracy {accuracy:.3f}; " if accuracy is not None else "untrained; ")
        + f"Keras predicts class {int(np.argmax(probs))} with probability {float(np.max(probs)):.4f}"
    )
    from micronets.compiler import compile_model

    compiled = compile_model(net.model, classname=CLASSNAME, arch=net.describe(),
                             class_names=[str(i) for i in range(10)])
    out_dir = Path(out_dir)
    sketch = render_sketch(compiled, out_dir.resolve().name, frame, int(test_y[0]), source)
    paths = write_sketch(sketch, out_dir)
    if verbose:
        print(f"wrote {', '.join(str(p) for p in paths)} ({source})")
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m micronets.embedded.example", description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="pico", choices=sorted(ARCHS))
    p.add_argument("--size", type=int, default=32, help="input height and width (default 32)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs; 0 = untrained (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    args = p.parse_args(argv)
    try:
        generate(args.out, args.arch, args.size, args.epochs, args.seed)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
