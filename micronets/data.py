"""Real image data that ships inside installable packages (no downloads at run time)."""

from __future__ import annotations

from typing import Tuple

import numpy as np


def resize_images(images: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (N, H, W, C) float images to (N, size[0], size[1], C) (Keras' resize:
    any backend)."""
    import keras

    out = keras.ops.image.resize(np.asarray(images, np.float32), tuple(size), interpolation="bilinear")
    return np.asarray(keras.ops.convert_to_numpy(out), np.float32)


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


FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def _read_idx(path: str) -> np.ndarray:
    import gzip
    import struct

    with gzip.open(path, "rb") as fh:
        data = fh.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    dims = struct.unpack(">" + "I" * ndim, data[4: 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(path: str = FASHION_MNIST_DIR):
    """Fashion-MNIST from its IDX files (Debian: ``apt-get install dataset-fashion-mnist``).

    Returns ``(train_x, train_y), (test_x, test_y)``: uint8 images (N, 28, 28) and int64 labels;
    class names are :data:`FASHION_MNIST_CLASSES`. Raises FileNotFoundError when absent.
    """
    import os

    def part(name):
        file = os.path.join(path, name)
        if not os.path.exists(file):
            raise FileNotFoundError(f"Fashion-MNIST not found ({file}); install the Debian package "
                                    "dataset-fashion-mnist")
        return _read_idx(file)

    train = part("train-images-idx3-ubyte.gz"), part("train-labels-idx1-ubyte.gz").astype(np.int64)
    test = part("t10k-images-idx3-ubyte.gz"), part("t10k-labels-idx1-ubyte.gz").astype(np.int64)
    return train, test


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: Pillow modes holding more than 8 bits per sample: scaled by their full range, never clipped at 255
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _fit(image, width: int, height: int):
    """The resize policy: centre-crop to the target aspect ratio, then resize (bilinear)."""
    from PIL import Image, ImageOps

    if image.size == (width, height):
        return image
    return ImageOps.fit(image, (width, height), method=Image.Resampling.BILINEAR, centering=(0.5, 0.5))


def load_image(path: str, input_shape) -> np.ndarray:
    """One image file as float32 ``(H, W, C)`` in [0, 1] (see :func:`load_image_folder`)."""
    from PIL import Image, ImageOps

    height, width, channels = (int(d) for d in input_shape)
    with Image.open(path) as image:
        image.load()
        image = ImageOps.exif_transpose(image)  # camera photos: upright as the camera saw them
        if image.mode in _WIDE_MODES or image.mode == "F":
            array = np.asarray(image, dtype=np.float64)
            if image.mode == "F":  # float TIFFs: taken as [0, 1] when they are, else as 0..255
                array = array if array.max(initial=0) <= 1.0 else array / 255.0
            elif image.mode == "I" and array.max(initial=0) > 65535:
                array = array / float(2 ** 32 - 1)
            else:
                array = array / 65535.0
            plane = _fit(Image.fromarray(np.clip(array, 0, 1).astype(np.float32), mode="F"), width, height)
            out = np.asarray(plane, dtype=np.float32)[..., None]
            return np.repeat(out, channels, axis=-1) if channels == 3 else out
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info) \
                or image.mode == "La" or image.mode == "RGBa":
            # transparency: composited onto black (a transparent pixel reads as 0)
            rgba = image.convert("RGBA")
            black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
            image = Image.alpha_composite(black, rgba)
        image = image.convert("L" if channels == 1 else "RGB")
        out = np.asarray(_fit(image, width, height), dtype=np.float32) / 255.0
    return out.reshape(height, width, channels)


def image_files(folder: str):
    """Image files of one class folder, sorted; hidden files (``.name``) and other files skipped."""
    import os

    return sorted(
        f for f in os.listdir(folder)
        if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
        and os.path.isfile(os.path.join(folder, f))
    )


def image_files_under(path: str):
    """Paths of the image files in ``path`` and in its subfolders one level down (class folders or
    not): the inputs ``verify --inputs DIR`` and ``--calibration DIR`` read."""
    import os

    files = [os.path.join(path, f) for f in image_files(path)]
    for sub in sorted(os.listdir(path)):
        folder = os.path.join(path, sub)
        if not sub.startswith(".") and os.path.isdir(folder):
            files += [os.path.join(folder, f) for f in image_files(folder)]
    return files


def class_folders(path: str):
    """The class subfolders of ``path``, sorted (hidden folders skipped); ValueError when there
    are fewer than two."""
    import os

    if not os.path.isdir(path):
        raise ValueError(f"data folder not found: {path}")
    names = sorted(
        entry for entry in os.listdir(path)
        if not entry.startswith(".") and os.path.isdir(os.path.join(path, entry))
    )
    if not names:
        raise ValueError(f"no class subfolders in {path} (expected one subfolder of images per class)")
    if len(names) < 2:
        raise ValueError(f"{path} has only one class subfolder ({names[0]!r}); a classifier needs at least two")
    return names


def load_image_folder(path, input_shape, class_names=None):
    """Images from a folder holding one subfolder per class: ``(x, y, class_names)``.

    ``class_names`` are the subfolder names, sorted (hidden folders skipped); ``y[i]`` indexes them.
    Pass ``class_names`` to read a folder against a model's classes (evaluation): then the folder
    must have exactly those subfolders.

    Every image file (png, jpg/jpeg, bmp, gif, tif/tiff, webp; hidden files and other files are
    skipped) is decoded by Pillow, turned upright by its EXIF orientation, and converted to gray
    (``C == 1``) or RGB (``C == 3``): palette images through their palette, transparent pixels
    composited onto black, 16-bit images scaled by 65535 (not clipped at 255). Resize policy, for
    any mix of sizes: centre-crop to the target aspect ratio, then resize bilinearly to
    ``input_shape[:2]``. ``x`` is float32 ``(N, H, W, C)`` in [0, 1] (8-bit pixel / 255).

    Raises ``ValueError`` with a one-line reason for a missing folder, fewer than two classes, a
    class without images, or an image Pillow cannot read (naming the file).
    """
    import os

    height, width, channels = (int(d) for d in input_shape)
    if channels not in (1, 3):
        raise ValueError(f"images can be loaded as 1 (gray) or 3 (RGB) channels, not {channels}")
    found = class_folders(path)
    if class_names is not None:
        class_names = list(class_names)
        if sorted(found) != sorted(class_names):
            missing = [n for n in class_names if n not in found]
            extra = [n for n in found if n not in class_names]
            raise ValueError(f"the class folders of {path} do not match the model's classes "
                             f"(missing: {missing or 'none'}; not in the model: {extra or 'none'})")
    else:
        class_names = found
    images, labels = [], []
    for label, name in enumerate(class_names):
        folder = os.path.join(path, name)
        files = image_files(folder)
        if not files:
            raise ValueError(f"class folder {folder!r} has no images ({', '.join(IMAGE_EXTENSIONS)})")
        for filename in files:
            file_path = os.path.join(folder, filename)
            try:
                images.append(load_image(file_path, (height, width, channels)))
            except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError, DecompressionBombError...
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ValueError(f"cannot read image {file_path!r}: {reason}") from exc
            labels.append(label)
    x = np.stack(images).astype(np.float32)
    y = np.asarray(labels, dtype=np.int64)
    return x, y, list(class_names)


def shape_text(shape) -> str:
    """A shape as people write it: 8x8x3 (an unknown axis as ?)."""
    return "x".join("?" if d is None else str(int(d)) for d in shape)


def load_input_arrays(path, model) -> list:
    """Inputs of a model of several inputs from an .npz holding one array (N, *shape) per input,
    named as the model's inputs are (or arr_0, arr_1, ... in their order: ``np.savez(path, *xs)``):
    a list of float32 arrays in ``model.inputs`` order, of the same N. ValueError starting with
    ``path`` and naming what does not fit."""
    from micronets.compiler.compile import model_shapes

    names = [t.name for t in model.inputs]
    why = f"a model of {len(names)} inputs takes an .npz of one array per input (np.savez)"
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a numpy array file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                         f"{why}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: one array; {why}")
    with archive:
        stored = {k: np.asarray(archive[k], np.float32) for k in archive.files}
    if set(stored) not in (set(names), {f"arr_{k}" for k in range(len(names))}):
        raise ValueError(f"{path}: a model of {len(names)} inputs takes an .npz of one array per input, named "
                         f"{', '.join(names)} (or arr_0.. arr_{len(names) - 1} in that order); it holds "
                         f"{', '.join(sorted(stored)) or 'nothing'}")
    arrays = [stored[n] if n in stored else stored[f"arr_{k}"] for k, n in enumerate(names)]
    for name, a, shape in zip(names, arrays, model_shapes(model)):
        if a.shape[1:] != tuple(shape) or len(a) == 0:
            raise ValueError(f"{path}: array {name} of shape {a.shape} does not hold inputs of shape {shape_text(shape)}")
    if len({len(a) for a in arrays}) != 1:
        raise ValueError(f"{path}: the arrays hold different numbers of samples ({', '.join(str(len(a)) for a in arrays)})")
    return arrays
