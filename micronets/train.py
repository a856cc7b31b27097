"""Train on a folder of images and report honestly how well the result works.

    import micronets
    result = micronets.train_folder("photos/", arch="pico", input_shape=(32, 32, 1), output="model.h")
    print(result.report.accuracy, result.report.cpp_accuracy)

The folder holds one subfolder of images per class (see :func:`micronets.data.load_image_folder`).
Its images are split, stratified by class, into training, validation (picks the best epoch) and
test images; the test images are used for nothing but the final report: Keras accuracy, the
accuracy of the compiled C++ header (built with the host's g++), per-class precision and recall
and a confusion matrix. Next to the header ``model.h`` go ``model.json`` (the model card),
``model_confusion.png`` and ``model_training.png``; with ``save=`` also the trained ``.keras`` net
(class names included). Every file is written by the package's one atomic writer; when anything
fails (or the run is interrupted) the files this run created are removed.

A test accuracy near chance is not an error here: the files are written and
``result.report.near_chance`` is True (``micronets train`` then exits non-zero with the reason).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import math
import os
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from micronets.models import ARCHS, default_input_shape, make_net
from micronets.models.base import MicroNet, TrainingConfig

#: Default epoch budget of ``micronets train`` (with the cosine schedule and the best epoch kept)
DEFAULT_EPOCHS = 30
#: Default shares of each class held out for validation and for the final test
DEFAULT_VAL_FRACTION = 0.15
DEFAULT_TEST_FRACTION = 0.15
#: training images given to TFLite's converter as the representative dataset with int8=True
DEFAULT_CALIBRATION_IMAGES = 300


# ---------------------------------------------------------------------------- splitting
def split_indices(y, val_fraction: float = DEFAULT_VAL_FRACTION, test_fraction: float = DEFAULT_TEST_FRACTION,
                  seed: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified ``(train, val, test)`` index arrays: ``round(n * fraction)`` of each class, at
    least one image per class in each part with a non-zero fraction. ValueError when a class has
    too few images for that."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    parts: Tuple[List[int], List[int], List[int]] = ([], [], [])
    need = 1 + (val_fraction > 0) + (test_fraction > 0)
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n = len(idx)
        if n < need:
            raise ValueError(f"class {int(label)} has {n} image(s); splitting into training, validation and test "
                             f"images needs at least {need} per class")
        n_test = max(int(round(n * test_fraction)), 1) if test_fraction > 0 else 0
        n_val = max(int(round(n * val_fraction)), 1) if val_fraction > 0 else 0
        while n - n_test - n_val < 1:  # keep at least one training image
            if n_val >= n_test and n_val > 1:
                n_val -= 1
            else:
                n_test -= 1
        parts[2].extend(idx[:n_test])
        parts[1].extend(idx[n_test:n_test + n_val])
        parts[0].extend(idx[n_test + n_val:])
    return tuple(np.array(sorted(p), dtype=np.int64) for p in parts)  # type: ignore[return-value]


def split_train_val(y, val_split: float, seed: int = 0):
    """Stratified ``(train, val)`` index split (no test part)."""
    train, val, _ = split_indices(y, val_split, 0.0, seed)
    return train, val


# ---------------------------------------------------------------------------- the report
@dataclasses.dataclass
class Report:
    """How a classifier did on labelled test images."""

    class_names: List[str]
    n: int
    accuracy: float  # Keras
    confusion: List[List[int]]  # [true][predicted]
    precision: List[float]
    recall: List[float]
    support: List[int]
    chance: float  # accuracy of always answering the most frequent test class
    near_chance: bool
    cpp_accuracy: Optional[float] = None  # the compiled header (host g++), float input
    cpp_agreement: Optional[float] = None  # share of images where C++ and Keras give the same class
    cpp_max_diff: Optional[float] = None
    cpp_error: Optional[str] = None  # why the C++ check could not run
    int8_accuracy: Optional[float] = None  # the int8 header (host g++), float input quantised by the header
    int8_agreement: Optional[float] = None  # share of images where the int8 header and Keras give the same class
    int8_error: Optional[str] = None  # why the int8 check could not run

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def lines(self) -> List[str]:
        """The report as plain text lines (class names shown escaped, one line each)."""
        out = [f"Test accuracy (Keras): {self.accuracy * 100:.1f}% on {self.n} test images "
               f"(chance: {self.chance * 100:.1f}%)"]
        if self.cpp_accuracy is not None:
            out.append(f"Test accuracy (compiled C++ header, g++): {self.cpp_accuracy * 100:.1f}% "
                       f"(same class as Keras on {self.cpp_agreement * 100:.1f}% of images, "
                       f"max probability difference {self.cpp_max_diff:.1e})")
        elif self.cpp_error:
            out.append(f"Test accuracy (compiled C++ header): not measured ({self.cpp_error})")
        if self.int8_accuracy is not None:
            cpp = "not measured" if self.cpp_accuracy is None else f"{self.cpp_accuracy * 100:.1f}%"
            out.append(f"Test accuracy side by side: Keras float {self.accuracy * 100:.1f}%, C++ float {cpp}, "
                       f"C++ int8 {self.int8_accuracy * 100:.1f}% (int8 gives Keras's class on "
                       f"{self.int8_agreement * 100:.1f}% of images)")
        elif self.int8_error:
            out.append(f"Test accuracy (int8 header): not measured ({self.int8_error})")
        names = [display_name(n) for n in self.class_names]
        width = max(12, *(len(n) for n in names))
        out.append(f"{'class':<{width}}  precision  recall  images")
        for name, p, r, s in zip(names, self.precision, self.recall, self.support):
            out.append(f"{name:<{width}}  {p * 100:8.1f}%  {r * 100:5.1f}%  {s:6d}")
        out.append("Confusion matrix (rows: true class, columns: predicted, in class order):")
        cell = max(4, len(str(max(max(r) for r in self.confusion))) + 1)
        for name, row in zip(names, self.confusion):
            out.append(f"{name:<{width}}  " + "".join(f"{v:>{cell}d}" for v in row))
        return out

    def verdict(self) -> Optional[str]:
        """Why the model is not worth flashing, or None."""
        if not self.near_chance:
            return None
        return (f"test accuracy {self.accuracy * 100:.1f}% is near chance ({self.chance * 100:.1f}% for always "
                f"answering the most frequent class, {self.n} test images): the model has not learned to tell "
                "the classes apart and is not worth flashing; try more images per class, more epochs, a "
                "larger --input or another architecture")


def display_name(name: str) -> str:
    """A class name for a terminal line or a plot label: control characters escaped, one line."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(name))


def is_near_chance(accuracy: float, y_true) -> Tuple[bool, float]:
    """Is ``accuracy`` within noise of the majority-class rate? Returns ``(near, chance)``.

    Near chance: not above chance by at least max(10 points of the headroom, two binomial
    standard errors)."""
    y_true = np.asarray(y_true)
    counts = np.bincount(y_true) if len(y_true) else np.array([1])
    chance = float(counts.max() / max(len(y_true), 1))
    margin = max(0.1 * (1.0 - chance), 2.0 * math.sqrt(chance * (1.0 - chance) / max(len(y_true), 1)))
    return bool(accuracy < chance + margin), chance


def make_report(y_true, probs, class_names: Sequence[str]) -> Report:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = np.asarray(y_true).reshape(-1)
    pred = np.argmax(np.asarray(probs), axis=1)
    labels = list(range(len(class_names)))
    cm = confusion_matrix(y_true, pred, labels=labels)
    p, r, _, s = precision_recall_fscore_support(y_true, pred, labels=labels, zero_division=0)
    accuracy = float(np.mean(pred == y_true))
    near, chance = is_near_chance(accuracy, y_true)
    return Report(list(class_names), int(len(y_true)), accuracy, cm.astype(int).tolist(),
                  [float(v) for v in p], [float(v) for v in r], [int(v) for v in s], chance, near)


def check_header(report: Report, header_path: str, classname: str, x, y_true, keras_probs) -> Report:
    """Add the compiled header's accuracy on ``x`` (built and run with the host's g++) to ``report``."""
    from micronets import host

    try:
        with tempfile.TemporaryDirectory(prefix="micronets-check-") as work:
            exe = host.build(header_path, classname, out_dir=work)
            sizes = host.output_sizes(header_path)  # every output array, the classes first
            probs = host.run(exe, np.asarray(x, dtype=np.float32), sum(sizes), entry="float")[:, :sizes[0]]
    except RuntimeError as exc:  # no g++, a compile error or a crash: reported, not fatal
        report.cpp_error = str(exc).splitlines()[0][:300]
        return report
    pred = np.argmax(probs, axis=1)
    report.cpp_accuracy = float(np.mean(pred == np.asarray(y_true).reshape(-1)))
    report.cpp_agreement = float(np.mean(pred == np.argmax(keras_probs, axis=1)))
    report.cpp_max_diff = float(np.max(np.abs(probs.astype(np.float64) - keras_probs)))
    return report


def check_int8_header(report: Report, header_path: str, classname: str, x, y_true, keras_probs) -> Report:
    """Add the int8 header's accuracy on ``x`` (float inputs, quantised by the header's
    ``predict(const float*)``; built and run with the host's g++) to ``report``."""
    from micronets import host

    try:
        with tempfile.TemporaryDirectory(prefix="micronets-check8-") as work:
            exe = host.build(header_path, classname, out_dir=work)
            raw, _ = host.run_int8(exe, header_path, np.asarray(x, dtype=np.float32), entry="float")
    except RuntimeError as exc:  # no g++, a compile error or a crash: reported, not fatal
        report.int8_error = str(exc).splitlines()[0][:300]
        return report
    pred = np.argmax(raw, axis=1)  # the dequantised outputs are monotonic in the raw ones
    report.int8_accuracy = float(np.mean(pred == np.asarray(y_true).reshape(-1)))
    report.int8_agreement = float(np.mean(pred == np.argmax(keras_probs, axis=1)))
    return report


# ---------------------------------------------------------------------------- plots
def _pyplot():
    import warnings

    import matplotlib

    warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _plot_label(name: str, limit: int = 24) -> str:
    text = display_name(name).replace("$", r"\$")  # no mathtext from a folder name
    return text if len(text) <= limit else text[: limit - 1] + "…"


def confusion_png(report: Report, title: str = "") -> bytes:
    """The confusion matrix as PNG bytes (rows: true class, columns: predicted)."""
    plt = _pyplot()
    cm = np.asarray(report.confusion)
    k = len(cm)
    size = min(3.0 + 0.45 * k, 14.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    try:
        ax.imshow(cm, cmap="Blues")
        labels = [_plot_label(n) for n in report.class_names]
        ax.set_xticks(range(k), labels, rotation=45, ha="right")
        ax.set_yticks(range(k), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if k <= 30:
            top = cm.max() if cm.size else 0
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if cm[i, j] > top / 2 else "black")
        ax.set_title((_plot_label(title, 60) + "\n" if title else "")
                     + f"test accuracy {report.accuracy * 100:.1f}% ({report.n} images)", fontsize=10)
        return _png_bytes(fig)
    finally:
        plt.close(fig)


def _png_bytes(fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def curves_png(history: Dict[str, List[float]], best_epoch: Optional[int] = None, title: str = "") -> bytes:
    """Training curves (loss and accuracy, training vs validation) as PNG bytes."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    try:
        for ax, key, label in ((left, "loss", "loss"), (right, "accuracy", "accuracy")):
            for prefix, style in (("", "-"), ("val_", "--")):
                values = history.get(prefix + key)
                if values:
                    epochs = range(1, len(values) + 1)
                    ax.plot(epochs, values, style, label=("validation " if prefix else "training ") + label)
            if best_epoch is not None:
                ax.axvline(best_epoch + 1, color="gray", linewidth=0.8, label="kept epoch")
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.legend()
            ax.grid(alpha=0.3)
        if title:
            fig.suptitle(_plot_label(title, 80), fontsize=10)
        return _png_bytes(fig)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------- the result
@dataclasses.dataclass
class TrainResult:
    net: MicroNet
    class_names: List[str]
    report: Report
    summary: Dict[str, Any]  # the compiler's summary of the exported header
    history: Dict[str, List[float]]
    best_epoch: Optional[int]
    files: Dict[str, str]  # what was written: header, card, confusion_png, curves_png, keras
    split: Dict[str, int]
    seconds: float


def companion_paths(output: str) -> Dict[str, str]:
    """The files written beside a header ``model.h``: model.json, model_confusion.png,
    model_training.png, and with int8 training model_float.h (the float32 header)."""
    stem, ext = os.path.splitext(output)
    return {"card": stem + ".json", "confusion_png": stem + "_confusion.png", "curves_png": stem + "_training.png",
            "float_header": stem + "_float" + (ext or ".h")}


def _check_writable(path: str):
    from micronets.compiler.export import check_writable

    try:
        check_writable(path)
    except OSError as exc:
        raise ValueError(str(exc)) from None


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def model_card(net: MicroNet, summary: Dict[str, Any], report: Report, split: Dict[str, int],
               extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The JSON model card written beside the header."""
    import micronets

    card = {
        "micronets_version": micronets.__version__,
        "architecture": net.describe(),
        "arch_class": type(net).__name__,
        "classname": summary.get("classname"),
        "classes": list(report.class_names),
        "input_shape": [int(d) for d in net.input_shape],
        "normalisation": {"input": "pixel / 255 (8-bit images; 16-bit images: value / 65535), range [0, 1]",
                          "input_scale": 1.0 / 255.0, "input_offset": 0.0,
                          "resize": "centre-crop to the input's aspect ratio, then bilinear resize",
                          "channels": "gray" if net.input_shape[2] == 1 else "RGB"},
        "test": {"images": report.n, "accuracy_keras": report.accuracy, "accuracy_cpp": report.cpp_accuracy,
                 "cpp_agreement": report.cpp_agreement, "cpp_error": report.cpp_error,
                 "accuracy_int8": report.int8_accuracy, "int8_agreement": report.int8_agreement,
                 "int8_error": report.int8_error,
                 "chance": report.chance, "near_chance": report.near_chance,
                 "precision": report.precision, "recall": report.recall, "confusion": report.confusion},
        "split": split,
        "macs": summary.get("macs"),
        "params": summary.get("params"),
        "flash_weights_bytes": summary.get("weights_bytes"),
        "ram_arena_bytes": summary.get("arena_bytes"),
        "ram_object_bytes": summary.get("object_bytes"),
        "hyperparameters": net.hyperparameters(),
        "training": dataclasses.asdict(net.config),
    }
    card["training"].pop("checkpoint_path", None)
    card["training"].pop("verbosity", None)
    if extra:
        card.update(extra)
    return _plain(card)


def _write_files(files: Dict[str, Any], created: List[str]):
    """Write every ``path -> str|bytes`` with the package's atomic writer; ``created`` collects the
    paths that did not exist before (removed again by the caller if anything fails)."""
    from micronets.compiler.export import write_atomic

    for path, content in files.items():
        existed = os.path.lexists(path)
        write_atomic(path, content)
        if not existed:
            created.append(path)


def _remove(paths: Sequence[str]):
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass


def _render_sketch(compiled, directory, board, x_test, y_test, keras_probs, class_names, data_dir):
    """The sketch of ``compiled`` (in memory): its sample frame is the first held-out test image
    that Keras classifies correctly (else the first), as raw 8-bit pixels, with its true class."""
    from micronets.sketch import render_sketch

    y_test = np.asarray(y_test).reshape(-1)
    right = np.flatnonzero(np.argmax(keras_probs, axis=1) == y_test)
    k = int(right[0]) if len(right) else 0
    frame = np.clip(np.round(np.asarray(x_test[k]) * 255.0), 0, 255).astype(np.uint8)
    label = int(y_test[k])
    source = (f"held-out test image {k + 1} of {len(y_test)} from {os.path.basename(os.path.abspath(data_dir))}/ "
              f"(class {display_name(class_names[label])}), as 8-bit pixels")
    return render_sketch(compiled, directory.resolve().name, frame, label, source, board)


# ---------------------------------------------------------------------------- train
def train_folder(data_dir: str, arch: str = "pico", output: str = "model.h", *,
                 input_shape: Optional[Tuple[int, int, int]] = None, epochs: int = DEFAULT_EPOCHS,
                 config: Optional[TrainingConfig] = None, batch_norm: bool = True,
                 val_fraction: float = DEFAULT_VAL_FRACTION, test_fraction: float = DEFAULT_TEST_FRACTION,
                 seed: int = 0, classname: Optional[str] = None, save: Optional[str] = None,
                 plots: bool = True, card: bool = True, check_cpp: bool = True, int8: bool = False,
                 calibration_images: int = DEFAULT_CALIBRATION_IMAGES,
                 log: Optional[Callable[[str], None]] = None, card_extra: Optional[Dict[str, Any]] = None,
                 trained_by: str = "micronets train", sketch=None, board: Optional[str] = None) -> TrainResult:
    """Train ``arch`` on the image folder ``data_dir``, export ``output`` and report on the test split.

    ``arch``: an architecture name (``pico`` ... ``base``, ``phinet-2m`` ...), a ``.keras`` file
    saved by micronets to train further (its shape and classes must match the folder), or a
    :class:`MicroNet` instance (e.g. a candidate found by :func:`micronets.search.search`).
    ``input_shape`` (H, W, C with C 1 or 3): the images are loaded at it (default: the
    architecture's). ``config``: a :class:`TrainingConfig` (default: ``TrainingConfig()``, the
    measured defaults; augmentation on for a few hundred images per class). ``batch_norm``: MobileNets only.
    ``card_extra``: more keys for the model card; ``trained_by``: who trained it (header and card).
    ``int8``: ``output`` is the int8 header (TFLite's converter calibrated on up to
    ``calibration_images`` training images, drawn with ``seed``), the float32 header goes beside it
    as MODEL_float.h, and the report holds Keras float, C++ float and C++ int8 test accuracy.
    ``sketch``: also write an Arduino/PlatformIO sketch folder of ``output``'s model (see
    :mod:`micronets.sketch`; ``board`` as there) whose sample frame is a held-out test image with
    its true class.
    Raises ValueError with a one-line reason for bad data or arguments; writes nothing then.
    """
    import keras

    from micronets.compiler.export import export
    from micronets.data import load_image_folder

    say = log or (lambda message: None)
    started = time.time()
    float_output = companion_paths(output)["float_header"] if int8 else None
    for path in [output] + ([float_output] if int8 else []) + ([save] if save else []):
        _check_writable(path)
    if sketch is not None or board is not None:
        from micronets import sketch as sketches

        if sketch is None:
            raise ValueError("board goes with sketch (a header alone does not depend on the board)")
        try:
            sketch = sketches.check_sketch_dir(sketch)
        except OSError as exc:
            raise ValueError(str(exc)) from None
        sketches.board_envs(board)
    if int8:
        from micronets.compiler.int8 import MIN_CALIBRATION_SAMPLES

        if (isinstance(calibration_images, bool) or not isinstance(calibration_images, (int, np.integer))
                or calibration_images < MIN_CALIBRATION_SAMPLES):
            raise ValueError(f"calibration_images must be an integer >= {MIN_CALIBRATION_SAMPLES}, "
                             f"got {calibration_images!r}")
    if save is not None and not str(save).endswith(".keras"):
        raise ValueError(f"save= writes a .keras file; got {save}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    config = copy.deepcopy(config) if config is not None else TrainingConfig()
    config.check()

    arch_l = str(arch).lower()
    base_net = None
    if isinstance(arch, MicroNet):
        base_net = arch
        shape = base_net.input_shape
        if input_shape is not None and tuple(input_shape) != tuple(shape):
            raise ValueError(f"{arch.describe()} takes {'x'.join(map(str, shape))} images; input_shape cannot change that")
    elif arch_l in ARCHS:
        shape = tuple(int(d) for d in (input_shape or default_input_shape(arch_l)))
    else:
        import micronets

        if not os.path.isfile(arch):
            raise ValueError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHS)}, or give a .keras "
                             "file saved by micronets")
        base_net = micronets.load(arch)
        shape = base_net.input_shape
        if input_shape is not None and tuple(input_shape) != tuple(shape):
            raise ValueError(f"{arch} takes {'x'.join(map(str, shape))} images; input_shape cannot change that")
    if len(shape) != 3 or shape[2] not in (1, 3):
        raise ValueError(f"input shape {'x'.join(map(str, shape))}: training images load as 1 (gray) or 3 (RGB) "
                         "channels")

    x, y, class_names = load_image_folder(data_dir, shape)
    say(f"Loaded {len(x):,} images of {'x'.join(map(str, shape))} in {len(class_names)} classes: "
        + ", ".join(f"{i}={display_name(n)}" for i, n in enumerate(class_names)))
    train_idx, val_idx, test_idx = split_indices(y, val_fraction, test_fraction, seed)
    split = {"train": int(len(train_idx)), "validation": int(len(val_idx)), "test": int(len(test_idx))}
    if int8:
        if split["train"] < MIN_CALIBRATION_SAMPLES:
            raise ValueError(f"int8 needs at least {MIN_CALIBRATION_SAMPLES} training images to calibrate with; "
                             f"{data_dir} leaves {split['train']} for training")
        rng = np.random.default_rng(seed)
        calib_idx = np.sort(rng.permutation(train_idx)[:calibration_images])

    keras.utils.set_random_seed(seed)
    if base_net is not None:
        net = base_net
        if net.num_classes != len(class_names):
            raise ValueError(f"{net.describe() if isinstance(arch, MicroNet) else arch} has {net.num_classes} classes but {data_dir} holds {len(class_names)}")
        if net.class_names is not None and list(net.class_names) != list(class_names):
            raise ValueError(f"{arch} was trained on classes {net.class_names} but {data_dir} holds {class_names}")
    else:
        net = make_net(arch_l, len(class_names), shape, batch_norm)
        net.build()
    net.class_names = list(class_names)
    net.config = config
    say(f"Training {net.describe()} ({net.count_params():,} parameters) on {split['train']:,} images "
        f"({split['validation']:,} for validation, {split['test']:,} kept for the test) for {epochs} epochs; "
        f"augmentation {'on' if config.augments(split['train'], len(class_names)) else 'off'}"
        f"{' (auto)' if config.augment == 'auto' else ''}, lr {config.learning_rate:g} ({config.lr_schedule})")
    history = net.fit(x[train_idx], y[train_idx], x[val_idx], y[val_idx], epochs=epochs)
    best_epoch = getattr(history, "best_epoch", None)
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}

    keras_probs = net.predict(x[test_idx]).astype(np.float64)
    report = make_report(y[test_idx], keras_probs, class_names)
    name = classname or net.arch_name
    notes = {
        "trained by": f"{trained_by} ({net.describe()}, {len(hist.get('loss', []))} epochs)",
        "test accuracy (Keras)": f"{report.accuracy * 100:.1f}% on {report.n} held-out images "
                                 f"(chance {report.chance * 100:.1f}%)",
    }
    created: List[str] = []
    float_summary = None
    try:
        with tempfile.TemporaryDirectory(prefix="micronets-train-") as work:
            staged = os.path.join(work, os.path.basename(float_output or output))
            compiled = export(net.model, staged, classname=name, arch=net.describe(),
                              class_names=list(class_names), notes=notes)
            summary = compiled.summary()  # plain JSON types already
            if check_cpp:
                report = check_header(report, staged, summary["classname"], x[test_idx], y[test_idx], keras_probs)
            with open(staged, "rb") as fh:
                header = fh.read()
            if int8:
                from micronets.compiler.int8 import compile_keras_int8

                say(f"Quantising to int8 with TFLite's converter ({len(calib_idx)} training images as calibration)")
                float_header, float_summary = header, summary
                compiled8 = compile_keras_int8(net.model, x[calib_idx], classname=name, arch=net.describe(),
                                               class_names=list(class_names), notes=notes)
                staged8 = os.path.join(work, os.path.basename(output))
                with open(staged8, "w", encoding="utf-8") as fh:
                    fh.write(compiled8.render(filename=os.path.basename(output) or "model.h"))
                summary = compiled8.summary()
                if check_cpp:
                    report = check_int8_header(report, staged8, summary["classname"], x[test_idx], y[test_idx],
                                               keras_probs)
                    if report.int8_accuracy is not None:
                        compiled8.notes["test accuracy (int8 header, g++)"] = (
                            f"{report.int8_accuracy * 100:.1f}% on the same {report.n} images")
                header = compiled8.render(filename=os.path.basename(output) or "model.h").encode("utf-8")
                compiled = compiled8
        if sketch is not None:
            sketch_files = _render_sketch(compiled, sketch, board, x[test_idx], y[test_idx], keras_probs,
                                          class_names, data_dir)
        files: Dict[str, Any] = {output: header}
        written = {"header": output}
        extra = companion_paths(output)
        if int8:
            files[float_output] = float_header
            written["float_header"] = float_output
        if card:
            more = {"data": os.path.abspath(data_dir), "epochs": epochs,
                    "best_epoch": None if best_epoch is None else best_epoch + 1, "seed": seed, "history": hist,
                    "quantize": "int8" if int8 else "float32"}
            if int8:
                more["int8"] = {"calibration_images": int(len(calib_idx)), "calibration_from": "training split",
                                "converter": "TFLite post-training full-integer quantisation",
                                "input_scale": summary["input_scale"], "input_zero_point": summary["input_zero_point"]}
                more["float_header"] = {"file": os.path.basename(float_output),
                                        "flash_weights_bytes": float_summary.get("weights_bytes"),
                                        "ram_arena_bytes": float_summary.get("arena_bytes"),
                                        "ram_object_bytes": float_summary.get("object_bytes")}
            more.update(card_extra or {})
            text = json.dumps(model_card(net, summary, report, split, more), indent=2, ensure_ascii=False)
            files[extra["card"]] = text + "\n"
            written["card"] = extra["card"]
        if plots:
            files[extra["confusion_png"]] = confusion_png(report, net.describe())
            files[extra["curves_png"]] = curves_png(hist, best_epoch, net.describe())
            written["confusion_png"] = extra["confusion_png"]
            written["curves_png"] = extra["curves_png"]
        if save is not None:
            files[save] = net.to_bytes()
            written["keras"] = save
        _write_files(files, created)
        if sketch is not None:
            from micronets.sketch import write_sketch

            write_sketch(sketch_files, sketch)  # a new folder appears whole or not at all
            written["sketch"] = str(sketch)
    except BaseException:
        _remove(created)
        raise
    return TrainResult(net, list(class_names), report, summary, hist, best_epoch, written, split,
                       time.time() - started)


# ---------------------------------------------------------------------------- eval
@dataclasses.dataclass
class EvalResult:
    model_path: str
    class_names: List[str]
    report: Report
    input_shape: Tuple[int, int, int]


def load_for_eval(model_path: str):
    """``(keras_model, class_names or None, label)`` from a .keras file (micronets or plain Keras)."""
    import keras

    import micronets

    if not os.path.isfile(model_path):
        raise ValueError(f"model file not found: {model_path}")
    try:
        net = micronets.load(model_path)
        return net.model, net.class_names, net.describe()
    except ValueError as exc:
        if "not a net saved by micronets" not in str(exc):
            raise
    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception as exc:
        raise ValueError(f"cannot load {model_path}: {describe_model_file_error(model_path, exc)}") from exc
    return model, None, f"{os.path.basename(model_path)} ({model.name})"


def describe_model_file_error(path: str, exc: BaseException) -> str:
    """What is wrong with a model file Keras could not load (empty, truncated, not a model...)."""
    import zipfile

    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as err:
        return f"cannot read it ({err.strerror or err})"
    if size == 0:
        return "the file is empty (0 bytes)"
    if head.startswith(b"PK"):
        if not zipfile.is_zipfile(path):
            return f"the file is a truncated or damaged .keras (zip) archive ({size:,} bytes)"
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            return f"the file is a damaged .keras (zip) archive: {err}"
        if bad is not None:
            return f"the .keras archive is damaged (entry {bad} fails its checksum)"
        if "config.json" not in names:
            return "the zip archive is not a Keras model (no config.json inside)"
        return "Keras cannot rebuild the model it holds: " + " ".join(str(exc).split())[:300]
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "Keras cannot load this HDF5 file: " + " ".join(str(exc).split())[:300]
    return f"the file is not a Keras model (a .keras file is a zip archive, a .h5 file HDF5; this one starts with {head[:4]!r})"


def evaluate_folder(model_path: str, data_dir: str, *, check_cpp: bool = True,
                    log: Optional[Callable[[str], None]] = None) -> EvalResult:
    """The test report of a saved model on every image of ``data_dir`` (one subfolder per class).

    The folder's subfolders must be the classes the model records (any order); for a plain Keras
    model without recorded names, the sorted subfolders must be as many as its outputs."""
    from micronets.compiler.compile import model_shapes, pixels_as_input, takes_raw_input
    from micronets.compiler.export import export
    from micronets.data import class_folders, load_image_folder

    say = log or (lambda message: None)
    model, names, label = load_for_eval(model_path)
    shapes = model_shapes(model)
    if len(shapes) != 1:
        raise ValueError(f"{model_path} takes {len(shapes)} inputs ({', '.join('x'.join(map(str, s)) for s in shapes)}); "
                         f"eval feeds a model one image per sample")
    shape = tuple(int(d) for d in shapes[0])
    n_out = int(np.prod(model_shapes(model, "output")[0]))  # the first output holds the classes
    if len(shape) != 3 or shape[2] not in (1, 3):
        raise ValueError(f"{model_path} takes input {model.input_shape}; eval reads images as HxWx1 or HxWx3")
    if names is None:
        found = class_folders(data_dir)
        if len(found) != n_out:
            raise ValueError(f"{model_path} has {n_out} outputs but {data_dir} holds {len(found)} class folders")
    x, y, names = load_image_folder(data_dir, shape, class_names=names)
    x = pixels_as_input(x, takes_raw_input(model))  # a model with its own Rescaling takes the pixels
    say(f"Evaluating {label} on {len(x):,} images of {'x'.join(map(str, shape))} in {len(names)} classes")
    probs = model.predict(x, batch_size=64, verbose=0)
    probs = np.asarray(probs[0] if isinstance(probs, (list, tuple)) else probs, np.float64).reshape(len(x), -1)
    report = make_report(y, probs, names)
    if check_cpp:
        with tempfile.TemporaryDirectory(prefix="micronets-eval-") as work:
            header = os.path.join(work, "model.h")
            try:
                compiled = export(model, header, classname="Net", arch=label, class_names=list(names))
            except ValueError as exc:  # a layer the compiler does not support: Keras report only
                report.cpp_error = "cannot compile the model: " + " ".join(str(exc).split())[:300]
            else:
                report = check_header(report, header, compiled.summary()["classname"], x, y, probs)
    return EvalResult(model_path, list(names), report, shape)
