"""Real image data that ships inside installable packages (no downloads at run time)."""

from __future__ import annotations

from typing import Tuple

import numpy as np


def resize_images(images: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (N, H, W, C) float images to (N, size[0], size[1], C)."""
    import tensorflow as tf

    return tf.image.resize(images, size, method="bilinear").numpy().astype(np.float32)


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Convert (N, H, W, 1|3) images to the requested channel count (gray <-> RGB)."""
    have = images.shape[-1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return np.repeat(images, 3, axis=-1)
    if have == 3 and channels == 1:
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return (images @ weights)[..., None].astype(np.float32)
    raise ValueError(f"cannot convert {have}-channel images to {channels} channels")


def load_digits(input_shape=(32, 32, 1), test_fraction: float = 0.25, seed: int = 0):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes).

    Upsampled to ``input_shape[:2]``, scaled to [0, 1] (as a camera pixel / 255 would be), split
    into a stratified train/test pair: ``(train_x, train_y), (test_x, test_y)`` with integer labels.
    """
    from sklearn.datasets import load_digits as _load
    from sklearn.model_selection import train_test_split

    digits = _load()
    x = (digits.images.astype(np.float32) / 16.0)[..., None]
    x = to_channels(resize_images(x, tuple(input_shape[:2])), int(input_shape[2]))
    x = np.clip(x, 0.0, 1.0)
    y = digits.target.astype(np.int64)
    tx, vx, ty, vy = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return (tx, ty), (vx, vy)


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def load_image_folder(path, input_shape):
    """Images from a folder holding one subfolder per class: ``(x, y, class_names)``.

    ``class_names`` are the subfolder names, sorted; ``y[i]`` indexes them. Every image (png,
    jpg, bmp, gif, tif, webp; other files are skipped) is converted to gray (``C == 1``) or RGB
    (``C == 3``), resized bilinearly to ``input_shape[:2]`` and scaled to [0, 1]: ``x`` is float32
    ``(N, H, W, C)``. Raises ``ValueError`` with a one-line reason for a missing folder, fewer than
    two classes, a class without images, or an image Pillow cannot read.
    """
    import os

    from PIL import Image, UnidentifiedImageError

    height, width, channels = (int(d) for d in input_shape)
    if channels not in (1, 3):
        raise ValueError(f"images can be loaded as 1 (gray) or 3 (RGB) channels, not {channels}")
    if not os.path.isdir(path):
        raise ValueError(f"data folder not found: {path}")
    class_names = sorted(
        entry for entry in os.listdir(path)
        if not entry.startswith(".") and os.path.isdir(os.path.join(path, entry))
    )
    if not class_names:
        raise ValueError(f"no class subfolders in {path} (expected one subfolder of images per class)")
    if len(class_names) < 2:
        raise ValueError(
            f"{path} has only one class subfolder ({class_names[0]}); a classifier needs at least two"
        )
    mode = "L" if channels == 1 else "RGB"
    images, labels = [], []
    for label, name in enumerate(class_names):
        folder = os.path.join(path, name)
        files = sorted(
            f for f in os.listdir(folder)
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
            and os.path.isfile(os.path.join(folder, f))
        )
        if not files:
            raise ValueError(f"class folder {folder} has no images ({', '.join(IMAGE_EXTENSIONS)})")
        for filename in files:
            file_path = os.path.join(folder, filename)
            try:
                with Image.open(file_path) as image:
                    image = image.convert(mode).resize((width, height), Image.BILINEAR)
                    array = np.asarray(image, dtype=np.float32) / 255.0
            except (OSError, UnidentifiedImageError, ValueError) as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ValueError(f"cannot read image {file_path}: {reason}") from exc
            images.append(array.reshape(height, width, channels))
            labels.append(label)
    x = np.stack(images).astype(np.float32)
    y = np.asarray(labels, dtype=np.int64)
    return x, y, class_names
