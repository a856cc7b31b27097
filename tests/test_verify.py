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


def _policy_model(policy, name="policy"):
    """Conv, BN, a user layer (a Dense sublayer plus a position embedding) and pooling in ``policy``
    (Keras' mixed-precision guide keeps the softmax in float32); the same names whatever the policy."""

    class Offset(layers.Layer):  # the position embedding of keras.io's ViT: a constant computed in call()
        def __init__(self, **kw):
            super().__init__(**kw)
            self.proj = layers.Dense(6, name="proj", dtype=kw.get("dtype"))
            self.position = layers.Embedding(10, 6, embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
                                             name="position", dtype=kw.get("dtype"))

        def call(self, x):
            return self.proj(x) + self.position(keras.ops.arange(10))

    inp = keras.Input((12, 12, 3))
    x = layers.Conv2D(8, 3, activation="relu", name="conv", dtype=policy)(inp)
    x = layers.BatchNormalization(name="bn", dtype=policy)(x)
    x = Offset(name="offset", dtype=policy)(x)
    x = layers.GlobalAveragePooling2D(name="gap", dtype=policy)(x)
    return keras.Model(inp, layers.Dense(5, activation="softmax", name="classes", dtype="float32")(x), name=name)


def test_mixed_precision_models_compile_verify_and_quantise_as_their_float32_twin(tmp_path):
    """Under a mixed policy (mixed_float16: float32 weights, float16 arithmetic; keras.io's FCN
    example sets it) Keras' own outputs carry float16 rounding the float32 header does not have:
    verify said DIVERGES at the first conv (5.9e-4 > 1e-4), blaming the compiler, and the int8 path
    failed in TFLite's converter with pages of MLIR ('tf.Conv2D' op is neither a custom op nor a
    flex op). Now Keras is run in float32 for both, as the header computes: the header, verify and
    the int8 header are those of the same model built in float32 with the same weights, the header
    says why Keras differs, and the user's model keeps its policy. A float16 policy (16-bit weights)
    cannot run in float32: verify says so beside its table; int8 is refused naming the layer."""
    from micronets import host

    mixed, twin = _policy_model("mixed_float16"), _policy_model("float32")
    liven(twin, random_images((12, 12, 3), 8))
    mixed.set_weights(twin.get_weights())
    x = random_images((12, 12, 3), 6)
    policies = [layer.dtype_policy.name for layer in mixed._flatten_layers()]

    compiled = micronets.export(mixed, str(tmp_path / "mixed.h"))
    got = host.run_header(str(tmp_path / "mixed.h"), "Net", x)
    want = np.asarray(twin(x, training=False))
    assert np.abs(got - want).max() < 1e-6, np.abs(got - want).max()
    assert np.abs(np.asarray(mixed(x, training=False), np.float32) - want).max() > 1e-5  # Keras' own: float16
    assert "dtype policy : Keras computes 6 layers in 16 bits (mixed_float16); this header computes them in " \
           "float32 from the same weights" in compiled.header
    assert "dtype policy" not in micronets.export(twin, str(tmp_path / "twin.h")).header

    report = micronets.verify(mixed, x)
    assert report.ok and report.table().count("6 layers of dtype policy mixed_float16") == 1

    calibration = random_images((12, 12, 3), 128)
    int8 = [micronets.export(m, str(tmp_path / f"{m.dtype_policy.name}8.h"), quantize="int8", calibration=calibration)
            for m in (mixed, twin)]
    assert int8[0].tflite == int8[1].tflite
    assert [layer.dtype_policy.name for layer in mixed._flatten_layers()] == policies

    half = _policy_model("float16", name="half")
    half.set_weights(twin.get_weights())
    notes = micronets.verify(half, x).notes
    assert len(notes) == 1 and notes[0].startswith("Keras computed 6 layers in 16 bits (dtype policy float16: "
                                                   "16-bit weights, which Keras cannot run in float32)")
    target = tmp_path / "half8.h"
    with pytest.raises(ValueError, match=r"layer 'conv' holds float16 weights \(dtype policy 'float16'\): TFLite's "
                                         r"converter quantises float32 models"):
        micronets.export(half, str(target), quantize="int8", calibration=calibration)
    assert not target.exists()


def test_verify_draws_token_ids_for_a_model_of_embeddings(monkeypatch):
    """Without --inputs, verify drew values in [0, 1]: for a model of token ids every one was id 0,
    so every Embedding row but the first went unchecked. It draws ids from the whole table."""
    import keras

    from micronets import verification

    L = keras.layers
    i = keras.Input((12,), dtype="int32")
    model = keras.Model(i, L.Dense(4)(L.GlobalAveragePooling1D()(L.Embedding(200, 8)(i))))
    drawn = []
    real = verification.default_inputs
    monkeypatch.setattr(verification, "default_inputs", lambda shape, **kw: drawn.append(real(shape, **kw)) or drawn[-1])
    report = verification.verify(model)
    assert report.ok and len(drawn) == 1, report.table()
    ids = drawn[0]
    assert ids.shape == (8, 12) and np.array_equal(ids, np.round(ids)) and ids.min() >= 0 and ids.max() < 200
    assert len(np.unique(ids)) > 50
    assert [check.keras_layer for check in report.layers if check.kind == "Embedding"] == [model.layers[1].name]
