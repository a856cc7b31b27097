"""The float conv kernels on the shapes that pick their code paths: a conv fused with the
depthwise conv after it through a ring of rows (pointwise or 3x3 /2 stem), and the depthwise conv
alone; thin channel counts (1, 3, 5, 7, 13), strides 1, 2 and 3 over even and odd widths, 'same'
and 'valid' padding, with and without biases (a sum without a bias starts at its first product);
a pointwise conv in place through a wider scratch."""

from __future__ import annotations

import re

import pytest

from test_layers import assert_matches_keras, randomise, seq

keras = pytest.importorskip("keras")
layers = keras.layers

# (input shape, conv kernel and stride (0: no conv), conv bias, depthwise channels (the conv's
# outputs), depthwise stride, padding, depthwise bias[, depthwise kernel (3)])
CASES = [
    ((11, 9, 2), (1, 1), False, 3, 1, "same", False),
    ((11, 10, 3), (1, 1), True, 5, 2, "same", True),
    ((9, 13, 2), (1, 1), False, 13, 2, "valid", False),
    ((12, 7, 4), (1, 1), False, 1, 1, "same", False),
    ((10, 17, 2), (1, 1), True, 13, 1, "same", False),
    ((23, 21, 1), (3, 2), False, 3, 1, "same", False),
    ((13, 11, 3), (0, 0), False, 3, 1, "same", False),
    ((12, 14, 13), (0, 0), True, 13, 2, "same", True),
    ((9, 19, 5), (0, 0), False, 5, 2, "valid", False),
    ((14, 20, 3), (0, 0), False, 3, 3, "valid", False),
    ((5, 23, 6), (1, 1), False, 7, 1, "same", True, (1, 3)),
    ((11, 12, 4), (0, 0), True, 4, 1, "same", False, (3, 2)),
    ((10, 10, 6), (1, 1), False, 6, 1, "same", False, 5),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0][0]}x{c[0][1]}x{c[0][2]}-k{c[1][0]}s{c[1][1]}"
                         f"-c{c[3]}-s{c[4]}-{c[5]}-b{int(c[2])}{int(c[6])}" + (f"-dw{c[7]}" if len(c) > 7 else ""))
def test_depthwise_matches_keras(case, tmp_path):
    shape, (k, s), conv_bias, channels, stride, padding, dw_bias = case[:7]
    dw_kernel = case[7] if len(case) > 7 else 3
    stack = []
    if k:
        stack.append(layers.Conv2D(channels, k, strides=s, use_bias=conv_bias,
                                   activation="relu6" if k == 1 else None))
    stack += [layers.DepthwiseConv2D(dw_kernel, strides=stride, padding=padding, use_bias=dw_bias, activation="relu6"),
              layers.Flatten()]
    model = randomise(seq(shape, *stack), spread=3.0)
    compiled = assert_matches_keras(model, tmp_path, live=False)
    kinds = [op.kind for op in compiled.graph.ops]
    assert kinds == (["Conv2D+DepthwiseConv2D"] if k else ["DepthwiseConv2D"])
    if not (conv_bias or dw_bias):
        assert "(const float*)0" in open(tmp_path / "Net.h").read()


def test_pointwise_in_place_runs_four_pixels_through_a_wider_scratch(tmp_path):
    """A 1x1 conv written over its own input (16 -> 16 channels, 42 pixels: 4-pixel groups, then 2)
    gets a four-pixel scratch where the arena does not grow (the wider conv after it sets the
    arena), and runs four pixels at a time through it."""
    model = randomise(seq((6, 7, 3), layers.Conv2D(16, 1, activation="relu6"), layers.Conv2D(16, 1, activation="relu6"),
                          layers.Conv2D(24, 1, activation="relu"), layers.Conv2D(4, 1), layers.Flatten()), spread=3.0)
    assert_matches_keras(model, tmp_path, live=False)
    header = open(tmp_path / "Net.h").read()
    assert re.search(r"conv1x1_sp<42, 16, 16, 16, 4, act_relu6>\(arena \+ (\d+), arena \+ \1, \w+, \w+, arena \+ \d+\)",
                     header)


def test_depthwise_rows_wholly_in_absorbed_padding(tmp_path):
    """Zero padding absorbed into a 1 x 3 depthwise conv: its first two output rows read only
    padding (the bias alone), the rows after them the map."""
    model = randomise(seq((6, 9, 3), layers.ZeroPadding2D(((2, 1), (1, 0))),
                          layers.DepthwiseConv2D((1, 3), activation="relu6"), layers.Flatten()), spread=3.0)
    compiled = assert_matches_keras(model, tmp_path, live=False)
    assert [op.kind for op in compiled.graph.ops] == ["DepthwiseConv2D"]
