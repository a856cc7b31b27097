"""PhiNet: structure against the published figures and hand-computed tiny configs, errors,
save/load, and a real learning run."""

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from micronets.models.base import load  # noqa: E402
from micronets.models.phinet import PHINET_PRESETS, PhiNet, phinet  # noqa: E402


# --------------------------------------------------------------------------- independent counters
def count_macs(model) -> int:
    """Conv/depthwise/dense multiply-accumulates from each layer's Keras input/output shapes.

    conv k x k: Ho*Wo*Cout*k*k*Cin; depthwise: Ho*Wo*C*k*k; dense: in*out. Nothing else counts."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.SeparableConv2D):
            _, ho, wo, cout = layer.output.shape
            cin = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            total += ho * wo * cin * kh * kw + ho * wo * cin * cout
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            _, ho, wo, c = layer.output.shape
            kh, kw = layer.kernel_size
            assert layer.depth_multiplier == 1
            total += ho * wo * c * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            _, ho, wo, cout = layer.output.shape
            cin = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            total += ho * wo * cout * kh * kw * cin
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)


def layers_of(model, cls):
    return [layer for layer in model.layers if isinstance(layer, cls)]


# --------------------------------------------------------------------------- published presets
# The README of the original repository: 39.9K / 88.9K / 175K / 358K parameters at 2M/5M/10M/20M MACs.
PRESET_FIGURES = {
    "2m": (68, 39_883, 2_062_649),
    "5m": (82, 88_944, 4_839_091),
    "10m": (96, 174_939, 9_872_012),
    "20m": (89, 357_764, 18_866_289),
}


@pytest.mark.parametrize("name", sorted(PRESET_FIGURES))
def test_preset_parameters_and_macs(name):
    res, params, macs = PRESET_FIGURES[name]
    net = PhiNet.preset(name).build()
    assert net.input_shape == (res, res, 3)
    assert net.model.output.shape[1:] == (10,)
    assert net.count_params() == params
    assert count_macs(net.model) == macs
    assert net.arch_name == f"PhiNet{name.upper()}" and net.arch_name.isidentifier()
    assert len(layers_of(net.model, keras.layers.Multiply)) == net.num_layers  # SE in blocks 1..L


def test_preset_names_and_table():
    assert set(PHINET_PRESETS) == {"2m", "5m", "10m", "20m"}
    net = PhiNet.preset("10M", num_classes=4)
    assert net.num_classes == 4 and net.arch_name == "PhiNet10M"
    assert (net.alpha, net.beta, net.t0, net.num_layers) == (0.1973, 0.854, 6, 10)
    assert net.squeeze_excite and not net.h_swish and net.first_conv_stride == 3
    assert PhiNet().arch_name == "PhiNet" and PhiNet.arch_name == "PhiNet"
    with pytest.raises(ValueError, match="unknown PhiNet preset.*2m"):
        PhiNet.preset("3m")


# --------------------------------------------------------------------------- hand-computed configs
# alpha = 0.125 is exact in binary: stem int(32a) = 4, b1 int(32a) = 4, b2 int(64a) = 8,
# head int(1280a) = 160; t0 = 2, beta = 1 makes every expansion t = 2.
TINY = dict(num_classes=10, alpha=0.125, beta=1.0, t0=2, first_conv_filters=32, b1_filters=32,
            b2_filters=64)


def tiny_a_figures():
    """Config A: 9x9x1, stem stride 3, num_layers 3 (blocks 0..3), SE off, 3x3 everywhere.

    Sizes: 9 (odd) pads 1+1 -> 11 -> stem 3x3/3 -> 3; block1 3 -> pad 1+1 -> 5 -> /2 -> 2;
    block3 2 (even) -> pad 0+1 -> 3 -> /2 -> 1. BN = 4 weights per channel."""
    params = [
        9 * 1, 1 * 4, 4 * 4,                                 # stem dw, pw, BN
        9 * 4, 4 * 4, 4 * 4, 4 * 4,                          # block0 dw, BN, project 4->4, BN
        4 * 8, 4 * 8, 9 * 8, 4 * 8, 8 * 4, 4 * 4,            # block1 expand 4->8, BN, dw, BN, project, BN
        4 * 8, 4 * 8, 9 * 8, 4 * 8, 8 * 4, 4 * 4,            # block2 (same widths)
        4 * 8, 4 * 8, 9 * 8, 4 * 8, 8 * 8, 4 * 8,            # block3 project 8->8
        8 * 160 + 160, 160 * 10 + 10,                        # head convs (with bias)
    ]
    macs = [
        9 * 9, 9 * 1 * 4,                                    # stem at 3x3: dw, pw
        9 * 4 * 9, 9 * 4 * 4,                                # block0 at 3x3
        9 * 4 * 8, 4 * 8 * 9, 4 * 8 * 4,                    # block1: expand at 3x3, dw/project at 2x2
        4 * 4 * 8, 4 * 8 * 9, 4 * 8 * 4,                     # block2 at 2x2
        4 * 4 * 8, 1 * 8 * 9, 1 * 8 * 8,                     # block3: expand at 2x2, dw/project at 1x1
        8 * 160, 160 * 10,                                   # head on 1x1
    ]
    return sum(params), sum(macs)


def test_tiny_config_without_se_matches_hand_count():
    net = PhiNet(input_shape=(9, 9, 1), num_layers=3, first_conv_stride=3, squeeze_excite=False, **TINY).build()
    params, macs = tiny_a_figures()
    assert net.count_params() == params == 3859
    assert count_macs(net.model) == macs
    m = net.model
    assert m.get_layer("stem_dw").output.shape[1:3] == (3, 3)
    assert m.get_layer("block1_dw").output.shape[1:3] == (2, 2)
    assert m.get_layer("block3_dw").output.shape[1:3] == (1, 1)
    assert m.get_layer("block1_pad").padding == ((1, 1), (1, 1))   # odd size 3
    assert m.get_layer("block3_pad").padding == ((0, 1), (0, 1))   # even size 2
    assert m.output.shape[1:] == (10,)
    # residual where C_in == C_out and stride 1: block0 (4 -> 4) and block2 (4 -> 4)
    assert sorted(layer.name for layer in layers_of(m, keras.layers.Add)) == ["block0_add", "block2_add"]
    assert not layers_of(m, keras.layers.Multiply)
    assert len(layers_of(m, keras.layers.ReLU)) == 1 + 1 + 2 * 3   # stem, block0 dw, 2 per block
    assert not layers_of(m, keras.layers.Dropout)


def test_tiny_config_with_se_and_hard_swish_matches_hand_count():
    """Config A plus SE: blocks 1-3 each take 4 input channels -> SE width max(1, int(0.25*4)) = 1
    on the 8 expanded channels: reduce 8*1 + 1 bias, expand 1*8 + 8 bias = 25 params, 8 + 8 MACs."""
    net = PhiNet(input_shape=(9, 9, 1), num_layers=3, first_conv_stride=3, squeeze_excite=True, h_swish=True,
                 **TINY).build()
    params, macs = tiny_a_figures()
    assert net.count_params() == params + 3 * 25
    assert count_macs(net.model) == macs + 3 * 16
    m = net.model
    assert m.get_layer("block2_se_reduce").filters == 1
    assert m.get_layer("block2_se_pool").output.shape[1:] == (1, 1, 8)
    assert not layers_of(m, keras.layers.ReLU)
    acts = [layer for layer in layers_of(m, keras.layers.Activation) if layer.name.endswith("_hswish")]
    assert len(acts) == 2 + 3 * 3   # stem, block0 dw, and expand/dw/SE in blocks 1-3
    x = np.linspace(-5, 5, 41, dtype=np.float32)
    expected = x * np.clip(x + 3, 0, 6) / 6
    np.testing.assert_allclose(keras.ops.convert_to_numpy(acts[0](x)), expected, atol=1e-6)


def test_rect_input_stride2_downsampling_and_5x5_match_hand_count():
    """Config C: 29x26x1, stem stride 2, num_layers 5, extra downsampling at block 5, conv5_percent
    0.4 (5x5 where id/5 > 0.6: blocks 4 and 5), SE off.

    Sizes: H 29 -> 31 -> 15 -> (17) 8 -> (9) 4; W 26 -> 27 -> 13 -> (15) 7 -> (9) 4. Block 4 (8 -> 8,
    5x5 'same') keeps 4x4; block 5 (base 64 doubled -> 16 filters) pads 4 by 0+1 (the kernel-3 rule
    even for 5x5) -> 5 -> 5x5/2 'valid' -> 1x1. Maps: stem 15*13 = 195, block1 8*7 = 56, block3 16."""
    net = PhiNet(input_shape=(29, 26, 1), num_layers=5, first_conv_stride=2, downsampling_layers=(5,),
                 conv5_percent=0.4, squeeze_excite=False, **TINY).build()
    params = sum([
        9, 4, 16,                                   # stem
        36, 16, 16, 16,                             # block0
        32, 32, 72, 32, 32, 16,                     # block1
        32, 32, 72, 32, 32, 16,                     # block2
        32, 32, 72, 32, 64, 32,                     # block3 (-> 8)
        8 * 16, 4 * 16, 25 * 16, 4 * 16, 16 * 8, 4 * 8,      # block4 expand 8->16, 5x5 dw, project -> 8
        8 * 16, 4 * 16, 25 * 16, 4 * 16, 16 * 16, 4 * 16,    # block5 project -> 16
        16 * 160 + 160, 160 * 10 + 10,
    ])
    macs = sum([
        195 * 9, 195 * 4,                           # stem dw, pw
        195 * 4 * 9, 195 * 4 * 4,                   # block0
        195 * 4 * 8, 56 * 8 * 9, 56 * 8 * 4,        # block1
        56 * 4 * 8, 56 * 8 * 9, 56 * 8 * 4,         # block2
        56 * 4 * 8, 16 * 8 * 9, 16 * 8 * 8,         # block3
        16 * 8 * 16, 16 * 16 * 25, 16 * 16 * 8,     # block4
        16 * 8 * 16, 1 * 16 * 25, 1 * 16 * 16,      # block5
        16 * 160, 160 * 10,
    ])
    assert net.count_params() == params
    assert count_macs(net.model) == macs
    m = net.model
    assert m.get_layer("stem_dw").output.shape[1:3] == (15, 13)
    assert m.get_layer("block1_dw").output.shape[1:3] == (8, 7)
    assert m.get_layer("block4_dw").kernel_size == (5, 5) and m.get_layer("block4_dw").output.shape[1:3] == (4, 4)
    assert m.get_layer("block3_dw").kernel_size == (3, 3)
    assert m.get_layer("block5_pad").padding == ((0, 1), (0, 1))
    assert m.get_layer("block5_dw").output.shape[1:] == (1, 1, 16)
    assert sorted(layer.name for layer in layers_of(m, keras.layers.Add)) == ["block0_add", "block2_add", "block4_add"]

    headless = phinet(input_shape=(29, 26, 1), num_layers=5, first_conv_stride=2, downsampling_layers=(5,),
                      conv5_percent=0.4, squeeze_excite=False, include_top=False, **TINY)
    assert headless.output.shape[1:] == (1, 1, 16)
    assert headless.count_params() == params - (16 * 160 + 160) - (160 * 10 + 10)


def test_minimum_input_size():
    """Config C needs 17: block5's 5x5/2 'valid' needs >= 3 before it (3 -> pad 1+1 -> 5), so block3
    needs >= 5 (pads to 7 at most -> 3) hence block1 >= 9 and the stride-2 stem >= 17 (17 -> 19 -> 9)."""
    kwargs = dict(num_layers=5, first_conv_stride=2, downsampling_layers=[5], conv5_percent=0.4, **TINY)
    assert PhiNet(input_shape=(17, 17, 1), **kwargs).min_input_size() == 17
    assert PhiNet(input_shape=(17, 17, 1), **kwargs).build().model.get_layer("block5_dw").output.shape[1:3] == (1, 1)
    with pytest.raises(ValueError, match="too small.*at least 17x17"):
        PhiNet(input_shape=(16, 17, 1), **kwargs)
    # with only 3x3 kernels the correct-pad rule lets even a 1x1 input through every stride
    assert PhiNet(input_shape=(1, 1, 3)).min_input_size() == 1


def test_residual_adds():
    # 2M preset: stem int(96*.138) = 13 -> block0 int(87*.138) = 12 (no add), block1 12 (stride 2),
    # block2 12 -> 12 (add), block3 -> int(129*.138) = 17 (stride 2), blocks 4..8 17 -> 17 (5 adds).
    adds = [layer.name for layer in layers_of(PhiNet.preset("2m").build().model, keras.layers.Add)]
    assert sorted(adds) == sorted(["block2_add"] + [f"block{i}_add" for i in range(4, 9)])
    off = PhiNet(input_shape=(9, 9, 1), num_layers=3, residuals=False, **TINY).build()
    assert not layers_of(off.model, keras.layers.Add)


def test_dropout_adds_layers_but_no_weights():
    kwargs = dict(input_shape=(9, 9, 1), num_layers=3, **TINY)
    plain = PhiNet(**kwargs).build()
    dropped = PhiNet(dropout=0.2, **kwargs).build()
    drops = layers_of(dropped.model, keras.layers.Dropout)
    assert len(drops) == 4 and all(d.rate == 0.2 for d in drops)
    assert dropped.count_params() == plain.count_params()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(alpha=0), "alpha"),
        (dict(alpha=-0.5), "alpha"),
        (dict(num_layers=2), "num_layers must be an integer >= 3"),
        (dict(conv5_percent=1.5), r"conv5_percent must be in \[0, 1\]"),
        (dict(downsampling_layers=[3]), "downsampling_layers"),
        (dict(downsampling_layers=[8]), "downsampling_layers"),
        (dict(downsampling_layers=[5, 5]), "downsampling_layers"),
        (dict(first_conv_stride=0), "first_conv_stride"),
        (dict(b1_filters=1), "b1_filters=1 times alpha=0.5 leaves no filters"),
        (dict(t0=0), "t0"),
        (dict(dropout=1.0), "dropout"),
        (dict(num_classes=1), "num_classes"),
        (dict(name="Phi Net"), "C\\+\\+ identifier"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PhiNet(**kwargs)


def test_hyperparameters_rebuild_and_save_load_round_trip(tmp_path):
    net = PhiNet.preset("2m", num_classes=3).build()
    hp = net.hyperparameters()
    assert json.loads(json.dumps(hp)) == hp  # JSON-safe, lists not tuples
    assert hp["downsampling_layers"] == [] and hp["input_shape"] == [68, 68, 3] and hp["name"] == "PhiNet2M"
    assert PhiNet(**hp).build().count_params() == net.count_params()
    rng = np.random.default_rng(0)
    # random weights (moving variances kept positive) so the comparison means something
    net.model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) if "variance" in v.path
                           else rng.normal(0, 0.3, w.shape).astype(np.float32)
                           for w, v in zip(net.model.get_weights(), net.model.weights)])
    x = rng.uniform(0, 1, (4, 68, 68, 3)).astype(np.float32)
    before = keras.ops.convert_to_numpy(net.model(x, training=False))  # eager: no predict() tracing
    path = net.save(str(tmp_path / "phi.keras"))
    again = load(path)
    assert isinstance(again, PhiNet) and again.arch_name == "PhiNet2M"
    assert again.hyperparameters() == hp
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(again.model(x, training=False)), before)

    # hard-swish, dropout and an extra downsampling id survive the trip too
    small = PhiNet(input_shape=(24, 20, 1), num_layers=5, downsampling_layers=(5,), h_swish=True, dropout=0.1,
                   name="TinyPhi", **{k: v for k, v in TINY.items() if k != "num_classes"}).build()
    x = rng.uniform(0, 1, (2, 24, 20, 1)).astype(np.float32)
    before = keras.ops.convert_to_numpy(small.model(x, training=False))
    again = load(small.save(str(tmp_path / "small.keras")))
    assert again.arch_name == "TinyPhi" and again.downsampling_layers == [5] and again.h_swish
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(again.model(x, training=False)), before)


def test_learns_digits():
    """scikit-learn digits at 32x32x1, a 15K-parameter PhiNet (alpha 0.25, 4 layers, SE on), 3 epochs.

    Observed held-out accuracy 0.94 on 450 test images (chance: 0.10; 0.6 needs 270 right). Most of
    the time is Keras tracing the training step (the first epoch), not the epochs themselves."""
    from micronets.data import load_digits

    keras.utils.set_random_seed(0)
    (tx, ty), (vx, vy) = load_digits((32, 32, 1))
    net = PhiNet(input_shape=(32, 32, 1), alpha=0.25, num_layers=4, first_conv_stride=2)
    net.config.learning_rate = 3e-3
    net.fit(tx, ty, epochs=3)
    assert net.evaluate(vx, vy) >= 0.6
