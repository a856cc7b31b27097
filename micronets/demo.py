"""End-to-end demo: train a PicoMobileNet on real digits, export ``model.h``, check it in C++.

Run ``python -m micronets.demo [-o model.h]``. It trains on scikit-learn's bundled 8x8
handwritten digits (1,797 images, upsampled to 32x32x1) for a short run, reports the held-out
accuracy, writes the header, compiles it on this machine with g++ and checks that the C++
predictions match Keras on every held-out image. Exits non-zero when they disagree.
"""

from __future__ import annotations

import os
import tempfile
import time

import click

from micronets.cli import OneLineCommand

#: Largest difference of any class probability between C++ (float32) and Keras we accept.
TOLERANCE = 1e-4


@click.command(cls=OneLineCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--output", "-o", default="model.h", show_default=True, type=click.Path(dir_okay=False),
              help="Header file to write.")
@click.option("--epochs", "-e", type=click.IntRange(min=1), default=12, show_default=True,
              help="Training epochs (a few seconds each on a laptop).")
@click.option("--input", "size", type=click.IntRange(min=8, max=96), default=32, show_default=True,
              help="Side of the square gray input the 8x8 digits are upsampled to.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
def main(output, epochs, size, seed):
    """Train PicoMobileNet on scikit-learn's digits, export it and check the C++ against Keras.

    \b
    Example:
      python -m micronets.demo -o model.h
    """
    from micronets.cli import _check_output, import_keras

    _check_output(output)
    keras = import_keras()
    import numpy as np

    from micronets import PicoMobileNet
    from micronets.data import load_digits

    say = click.echo
    shape = (size, size, 1)
    (train_x, train_y), (test_x, test_y) = load_digits(shape, test_fraction=0.25, seed=seed)
    # the best epoch is picked on a validation slice of the training images; the test images stay unseen
    from micronets.train import split_train_val

    fit_idx, val_idx = split_train_val(train_y, 0.15, seed)
    val_x, val_y = train_x[val_idx], train_y[val_idx]
    train_x, train_y = train_x[fit_idx], train_y[fit_idx]
    say(f"Digits: {len(train_x)} training, {len(val_x)} validation and {len(test_x)} held-out test images "
        f"of {size}x{size}x1, 10 classes")

    keras.utils.set_random_seed(seed)
    net = PicoMobileNet(num_classes=10, input_shape=shape, batch_norm=True)
    net.config.learning_rate = 0.01
    net.config.batch_size = 32
    net.config.verbosity = 2
    net.build()
    say(f"Training {net.describe()}: {net.count_params():,} parameters, {epochs} epochs")
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="micronets-demo-") as tmp:
        net.config.checkpoint_path = os.path.join(tmp, "best.keras")
        net.fit(train_x, train_y, val_x, val_y, epochs=epochs)
        net.config.checkpoint_path = None
    accuracy = net.evaluate(test_x, test_y)
    say(f"Held-out test accuracy (Keras): {accuracy * 100:.1f}% on {len(test_x)} images "
        f"after {time.time() - started:.0f} s of training")

    try:
        result = net.export(output)
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"export failed: {exc}")
    summary = result.summary()
    say(f"Wrote {output}: {summary['macs']:,} MACs, {summary['weights_bytes']:,} bytes of weights (flash), "
        f"{summary['object_bytes']:,} bytes of RAM (sizeof {summary['classname']})")

    from micronets.host import run_header

    try:
        cpp = np.asarray(run_header(output, summary["classname"], test_x), dtype=np.float64)
    except Exception as exc:  # a compiler error or a crash of the compiled program
        raise click.ClickException(f"building or running {output} with g++ failed: {exc}")
    keras_probs = net.predict(test_x).astype(np.float64)
    max_diff = float(np.max(np.abs(cpp - keras_probs)))
    same = np.argmax(cpp, axis=1) == np.argmax(keras_probs, axis=1)
    agree = float(np.mean(same))
    # a flipped argmax only counts against the header where Keras' top two are not a near tie
    top2 = np.sort(keras_probs, axis=1)[:, -2:]
    real_flips = int(np.sum(~same & (top2[:, 1] - top2[:, 0] > 2 * TOLERANCE)))
    cpp_accuracy = float(np.mean(np.argmax(cpp, axis=1) == test_y))
    say(f"C++ vs Keras on {len(test_x)} held-out images: max |probability difference| = {max_diff:.2e}, "
        f"argmax agreement {agree * 100:.1f}%, C++ accuracy {cpp_accuracy * 100:.1f}%")
    if max_diff > TOLERANCE or real_flips:
        raise click.ClickException(
            f"the C++ header disagrees with Keras: max probability difference {max_diff:.2e} "
            f"(tolerance {TOLERANCE:g}), {real_flips} images with a different class"
        )
    say("OK: the C++ header predicts what Keras predicts.")


if __name__ == "__main__":
    main(prog_name="python -m micronets.demo")
