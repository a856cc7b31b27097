"""micronets verify: the per-layer comparison of the compiled header with Keras, from Python and
the CLI, on a model that matches and on one made to diverge."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import micronets
from micronets.cli import main
from netutil import liven, random_images

keras = pytest.importorskip("keras")
layers = keras.layers


def small_model():
    inp = keras.Input((10, 10, 1))
    x = layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Flatten(name="flat")(x)
    x = layers.Dense(8, activation="relu", name="hidden")(x)
    model = keras.Model(inp, layers.Dense(3, activation="softmax", name="classes")(x))
    liven(model, random_images((10, 10, 1), 8))
    return model


def test_verify_matches_every_layer():
    model = small_model()
    report = micronets.verify(model, random_images((10, 10, 1), 6))
    assert report.ok and report.first_divergence is None and report.inputs == 6
    compared = [c.keras_layer for c in report.layers if c.keras_layer]
    # pool is compared through its Flatten view (same bytes); the Dense before its softmax has no twin
    assert compared == ["conv", "bn", "flat", "hidden", "classes"]
    assert all(c.max_abs < 1e-4 for c in report.layers if c.keras_layer)
    assert "all 6 ops match Keras" in report.table()


def test_verify_names_the_first_layer_that_diverges(monkeypatch):
    """A compiler bug (here: the hidden Dense's bias emitted wrong) is pinned to its layer."""
    from micronets.compiler.ops.dense import Dense

    original = Dense.weights

    def broken(self):
        w = original(self)
        if self.name == "hidden":
            w["b"] = w["b"] + 0.5
        return w

    monkeypatch.setattr(Dense, "weights", broken)
    report = micronets.verify(small_model())
    assert not report.ok
    first = report.first_divergence
    assert first.keras_layer == "hidden" and first.max_abs >= 0.4
    assert [c.ok for c in report.layers[:3]] == [True, True, True]
    assert "first divergence: op [3] hidden" in report.table()


def test_verify_cli(tmp_path, monkeypatch):
    model = small_model()
    path = tmp_path / "m.keras"
    model.save(path)
    x = random_images((10, 10, 1), 5)
    np.save(tmp_path / "x.npy", x)
    runner = CliRunner()
    ok = runner.invoke(main, ["verify", str(path), "--inputs", str(tmp_path / "x.npy")])
    assert ok.exit_code == 0, ok.output
    assert "all 6 ops match Keras" in ok.output and "on 5 inputs" in ok.output

    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 3)))
    bad = runner.invoke(main, ["verify", str(path), "--inputs", str(tmp_path / "bad.npy")])
    assert bad.exit_code != 0 and "does not hold inputs of shape 10x10x1" in bad.output

    from micronets.compiler.ops.dense import Dense

    original = Dense.weights
    monkeypatch.setattr(Dense, "weights", lambda self: {k: v * (1.5 if self.name == "classes" else 1.0)
                                                         for k, v in original(self).items()})
    diverged = runner.invoke(main, ["verify", str(path)])
    assert diverged.exit_code == 1 and "DIVERGES" in diverged.output and "'classes'" in diverged.output
