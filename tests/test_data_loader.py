"""The image-folder loader on what people's folders hold: formats, modes, sizes, hidden files,
hostile folder names, and a clear error (naming the file) for everything it cannot use."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from micronets.data import load_image, load_image_folder

HOSTILE = ["new\nline", "back\\slash\\", 'dou"ble', "sin'gle", "naïve ünïcödé 猫", "end* #error x", "??=define", "%s%n"]


def save(img: Image.Image, path, **kw):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img.save(path, **kw)
    return str(path)


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    arr = np.array([[1000, 40000], [0, 65535]], dtype=np.uint16)
    path = save(Image.fromarray(arr), tmp_path / "wide.png")
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # Pillow reads it as 16-bit, not 8-bit
    x = load_image(path, (2, 2, 1))[..., 0]
    np.testing.assert_allclose(x, arr / 65535.0, atol=1e-6)
    rgb = load_image(path, (2, 2, 3))
    assert rgb.shape == (2, 2, 3) and np.allclose(rgb[..., 0], rgb[..., 2])


def test_modes_gray_rgb_rgba_palette(tmp_path):
    gray = save(Image.fromarray(np.full((4, 4), 51, np.uint8)), tmp_path / "g.png")
    assert np.allclose(load_image(gray, (4, 4, 1)), 0.2)
    assert np.allclose(load_image(gray, (4, 4, 3)), 0.2)
    rgb = save(Image.fromarray(np.tile(np.array([255, 0, 0], np.uint8), (4, 4, 1))), tmp_path / "r.png")
    np.testing.assert_allclose(load_image(rgb, (4, 4, 3))[0, 0], [1, 0, 0])
    assert np.allclose(load_image(rgb, (4, 4, 1)), 0.299, atol=0.01)  # ITU-R 601 luma
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[:2, :, 3] = 255  # top half opaque white, bottom half fully transparent white
    x = load_image(save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png"), (4, 4, 1))[..., 0]
    assert np.allclose(x[:2], 1.0) and np.allclose(x[2:], 0.0)  # transparency composited onto black
    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    pal.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    x = load_image(save(pal, tmp_path / "p.png"), (2, 2, 3))
    np.testing.assert_allclose(x[0, 1], [0, 1, 0])
    np.testing.assert_allclose(x[0, 0], [0, 0, 0])
    la = Image.fromarray(np.stack([np.full((2, 2), 200, np.uint8), np.full((2, 2), 255, np.uint8)], -1), "LA")
    assert np.allclose(load_image(save(la, tmp_path / "la.png"), (2, 2, 1)), 200 / 255, atol=1e-6)


def test_jpeg_and_mixed_sizes_centre_crop_then_resize(tmp_path):
    # a 30x10 (W x H) image: left and right thirds black, the centre 10x10 white
    wide = np.zeros((10, 30), np.uint8)
    wide[:, 10:20] = 255
    x = load_image(save(Image.fromarray(wide), tmp_path / "wide.png"), (5, 5, 1))
    assert x.min() > 0.8  # the square target keeps only the centre (squashing would give black edges)
    tall = np.zeros((40, 8), np.uint8)
    tall[16:24] = 255
    x = load_image(save(Image.fromarray(tall), tmp_path / "tall.png"), (4, 4, 1))
    assert x.min() > 0.8
    photo = np.random.default_rng(0).integers(0, 255, (37, 53, 3)).astype(np.uint8)
    x = load_image(save(Image.fromarray(photo), tmp_path / "p.jpg", quality=90), (16, 16, 3))
    assert x.shape == (16, 16, 3) and 0 <= x.min() and x.max() <= 1


def test_folder_mixed_files_hidden_entries_and_hostile_names(tmp_path):
    rng = np.random.default_rng(0)
    for k, name in enumerate(HOSTILE):
        d = tmp_path / name
        for i, size in enumerate([(12, 12), (20, 9), (7, 31)]):
            img = Image.fromarray(rng.integers(0, 255, size[::-1]).astype(np.uint8))
            save(img if i != 1 else img.convert("RGB"), d / f"{i}.{['png', 'jpg', 'bmp'][i]}")
        (d / ".DS_Store").write_bytes(b"\x00\x01junk")
        (d / ".hidden.png").write_bytes(b"not an image at all")
        (d / "notes.txt").write_text("skipped")
    (tmp_path / ".git").mkdir()
    save(Image.new("L", (4, 4)), tmp_path / ".thumbs" / "0.png")
    x, y, names = load_image_folder(str(tmp_path), (8, 8, 1))
    assert names == sorted(HOSTILE)
    assert x.shape == (3 * len(HOSTILE), 8, 8, 1) and x.dtype == np.float32
    assert list(np.bincount(y)) == [3] * len(HOSTILE)


@pytest.mark.parametrize("case", ["empty", "single", "no images", "unreadable", "truncated", "wrong classes"])
def test_folder_errors_are_clear(case, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    if case != "empty":
        save(Image.new("L", (4, 4)), root / "cats" / "0.png")
    if case not in ("empty", "single"):
        (root / "dogs\nx").mkdir()
    if case in ("unreadable", "truncated", "wrong classes"):
        save(Image.new("L", (4, 4)), root / "dogs\nx" / "0.png")
    if case == "unreadable":
        (root / "dogs\nx" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    if case == "truncated":
        good = save(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64)).astype(np.uint8)),
                    tmp_path / "big.png")
        data = open(good, "rb").read()
        (root / "dogs\nx" / "cut.png").write_bytes(data[: len(data) // 2])
    expected = {
        "empty": "no class subfolders",
        "single": "only one class subfolder",
        "no images": "has no images",
        "unreadable": "bad.png",
        "truncated": "cut.png",
        "wrong classes": "do not match",
    }[case]
    kwargs = {"class_names": ["cats", "birds"]} if case == "wrong classes" else {}
    with pytest.raises(ValueError) as info:
        load_image_folder(str(root), (8, 8, 1), **kwargs)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message  # one line, even with a newline in a folder name
    if case in ("unreadable", "truncated"):
        assert "cannot read image" in message


def test_folder_read_against_model_classes_keeps_their_order(tmp_path):
    for name in ("b", "a"):
        save(Image.new("L", (4, 4), 255 if name == "b" else 0), tmp_path / name / "0.png")
    x, y, names = load_image_folder(str(tmp_path), (4, 4, 1), class_names=["b", "a"])
    assert names == ["b", "a"]
    assert x[y == 0].min() == 1.0 and x[y == 1].max() == 0.0
