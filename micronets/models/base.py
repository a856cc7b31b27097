"""The training wrapper shared by every network family.

A :class:`MicroNet` owns one ``keras.Model`` (``net.model``) plus a :class:`TrainingConfig`. Each
family (MobileNet sizes, PhiNet) only says how to build its Keras graph from its hyperparameters;
building, compiling, fitting with checkpoints, saving, loading and exporting live here once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import zipfile
from typing import Any, ClassVar, Dict, List, Optional, Tuple

import numpy as np

_SIDECAR = "micronets.json"  # extra entry in a saved .keras zip: which net, with which arguments
_REGISTRY: Dict[str, type] = {}

LOSSES = ("auto", "sparse_categorical_crossentropy", "categorical_crossentropy")


@dataclasses.dataclass
class TrainingConfig:
    """How ``compile()`` and ``fit()`` train the network.

    ``loss``: ``"auto"`` (default) accepts integer labels ``(N,)`` *and* one-hot labels
    ``(N, num_classes)`` and trains with sparse categorical cross-entropy; naming
    ``"sparse_categorical_crossentropy"`` requires integer labels and
    ``"categorical_crossentropy"`` requires one-hot labels.

    ``checkpoint_path``: when set, ``fit()`` saves the net there (a ``.keras`` file loadable with
    :func:`micronets.load`) each time validation accuracy improves and reaches
    ``checkpoint_min_accuracy``, and restores that best state when training ends.
    """

    learning_rate: float = 1e-3
    batch_size: int = 32
    verbosity: int = 0
    loss: str = "auto"
    metrics: List[str] = dataclasses.field(default_factory=lambda: ["accuracy"])
    checkpoint_path: Optional[str] = None
    checkpoint_min_accuracy: float = 0.0


class MicroNet:
    """Base class of every micronets network. Subclasses implement :meth:`_build_model`."""

    #: name used in saved files and as the default C++ class name
    arch_name: ClassVar[str] = "MicroNet"
    default_input_shape: ClassVar[Tuple[int, int, int]] = (96, 96, 1)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def __init__(self, num_classes: int = 10, input_shape: Optional[Tuple[int, int, int]] = None):
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        shape = tuple(input_shape) if input_shape is not None else tuple(self.default_input_shape)
        if len(shape) != 3 or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape):
            raise ValueError(f"input_shape must be (height, width, channels) of positive integers, got {input_shape!r}")
        self.num_classes = int(num_classes)
        self.input_shape = tuple(int(d) for d in shape)
        self.config = TrainingConfig()
        self.model = None
        self._compiled_loss: Optional[str] = None

    # ----------------------------------------------------------------- hyperparameters
    def hyperparameters(self) -> Dict[str, Any]:
        """Constructor arguments that rebuild this exact network (saved alongside the weights)."""
        return {"num_classes": self.num_classes, "input_shape": list(self.input_shape)}

    def _build_model(self):  # pragma: no cover - abstract
        raise NotImplementedError

    # ----------------------------------------------------------------- lifecycle
    def build(self) -> "MicroNet":
        """Create the Keras model (``self.model``). Safe to call again: it rebuilds from scratch."""
        self.model = self._build_model()
        self._compiled_loss = None
        return self

    def _require_model(self):
        if self.model is None:
            self.build()
        return self.model

    def compile(self) -> "MicroNet":
        """Compile with Adam at ``config.learning_rate`` and ``config.loss`` (see TrainingConfig)."""
        import keras

        if self.config.loss not in LOSSES:
            raise ValueError(f"config.loss must be one of {', '.join(LOSSES)}; got {self.config.loss!r}")
        model = self._require_model()
        loss = "sparse_categorical_crossentropy" if self.config.loss == "auto" else self.config.loss
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=self.config.learning_rate),
            loss=loss,
            metrics=list(self.config.metrics),
        )
        self._compiled_loss = loss
        return self

    # ----------------------------------------------------------------- data checks
    def _check_x(self, x, what: str) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 3 and self.input_shape[2] == 1 and x.shape[1:] == self.input_shape[:2]:
            x = x[..., None]  # (N, H, W) grayscale is unambiguous
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{what} must be shaped (N, {', '.join(map(str, self.input_shape))}) for this "
                f"{self.arch_name}; got {tuple(x.shape)}"
            )
        if x.shape[0] == 0:
            raise ValueError(f"{what} is empty")
        return x.astype(np.float32, copy=False)

    def _check_y(self, y, n: int, what: str) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 0 or y.shape[0] != n:
            raise ValueError(f"{what} has {y.shape[0] if y.ndim else 0} labels for {n} images")
        loss = self.config.loss
        if y.ndim == 2 and y.shape[1] == self.num_classes:
            if loss == "sparse_categorical_crossentropy":
                raise ValueError(f"{what} is one-hot {y.shape} but config.loss is sparse_categorical_crossentropy (integer labels)")
            if loss == "auto":
                return np.argmax(y, axis=1).astype(np.int64)
            return y.astype(np.float32)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim == 1:
            if loss == "categorical_crossentropy":
                raise ValueError(f"{what} holds integer labels but config.loss is categorical_crossentropy (one-hot labels)")
            if not np.all(np.equal(np.mod(y, 1), 0)):
                raise ValueError(f"{what} must hold integer class labels")
            if y.min() < 0 or y.max() >= self.num_classes:
                raise ValueError(
                    f"{what} has labels in [{int(y.min())}, {int(y.max())}] but the net has {self.num_classes} classes (0..{self.num_classes - 1})"
                )
            return y.astype(np.int64)
        raise ValueError(
            f"{what} must be integer labels (N,) or one-hot (N, {self.num_classes}); got shape {tuple(y.shape)}"
        )

    # ----------------------------------------------------------------- training
    def fit(self, train_x, train_y, val_x=None, val_y=None, epochs: int = 10, **fit_kwargs):
        """Train; returns the Keras ``History``. Inputs are float32 (N, H, W, C)."""
        x = self._check_x(train_x, "train_x")
        y = self._check_y(train_y, len(x), "train_y")
        validation = None
        if (val_x is None) != (val_y is None):
            raise ValueError("pass both val_x and val_y, or neither")
        if val_x is not None:
            vx = self._check_x(val_x, "val_x")
            validation = (vx, self._check_y(val_y, len(vx), "val_y"))
        if self.config.checkpoint_path and validation is None:
            raise ValueError("config.checkpoint_path keeps the best epoch by validation accuracy: pass val_x and val_y")
        if self.model is None or self._compiled_loss is None:
            self.compile()
        callbacks = list(fit_kwargs.pop("callbacks", []))
        keeper = None
        if self.config.checkpoint_path:
            keeper = _BestCheckpoint(self, self.config.checkpoint_path, self.config.checkpoint_min_accuracy)
            callbacks.append(keeper)
        history = self.model.fit(
            x,
            y,
            batch_size=self.config.batch_size,
            epochs=epochs,
            validation_data=validation,
            verbose=self.config.verbosity,
            callbacks=callbacks,
            **fit_kwargs,
        )
        if keeper is not None and keeper.best_weights is not None:
            self.model.set_weights(keeper.best_weights)
        return history

    def predict(self, x, batch_size: Optional[int] = None) -> np.ndarray:
        """Class probabilities, shape (N, num_classes)."""
        x = self._check_x(x, "x")
        return self._require_model().predict(x, batch_size=batch_size or self.config.batch_size, verbose=0)

    def evaluate(self, x, y) -> float:
        """Accuracy of ``predict(x)`` against integer or one-hot labels ``y``."""
        x = self._check_x(x, "x")
        labels = np.asarray(y)
        labels = np.argmax(labels, axis=1) if labels.ndim == 2 and labels.shape[1] > 1 else labels.reshape(-1)
        if len(labels) != len(x):
            raise ValueError(f"y has {len(labels)} labels for {len(x)} images")
        return float(np.mean(np.argmax(self.predict(x), axis=1) == labels))

    # ----------------------------------------------------------------- persistence
    def load_weights(self, path: str) -> "MicroNet":
        """Load weights saved by :meth:`save`, a checkpoint, or Keras' ``.weights.h5``."""
        if not os.path.exists(path):
            raise FileNotFoundError(f"weights file not found: {path}")
        model = self._require_model()
        try:
            model.load_weights(path)
        except Exception as exc:  # Keras raises several types for shape mismatches
            raise ValueError(f"cannot load weights from {path} into {self.describe()}: {exc}") from exc
        return self

    def save(self, path: str) -> str:
        """Save weights, Keras graph and this net's hyperparameters to one ``.keras`` file.

        Written to a temporary file first and renamed, so a failure leaves nothing behind.
        """
        if not str(path).endswith(".keras"):
            raise ValueError(f"save() writes a .keras file; got {path!r}")
        model = self._require_model()
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(suffix=".keras", dir=directory)
        os.close(fd)
        try:
            model.save(tmp)
            meta = {"arch": type(self).__name__, "hyperparameters": self.hyperparameters(),
                    "config": dataclasses.asdict(self.config)}
            with zipfile.ZipFile(tmp, "a") as zf:
                zf.writestr(_SIDECAR, json.dumps(meta, sort_keys=True))
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    # ----------------------------------------------------------------- export
    def export(self, path: str, classname: Optional[str] = None, **options):
        """Compile this net into a C++ header; the class name defaults to the architecture's."""
        from micronets.compiler.export import export as _export

        return _export(self._require_model(), path, classname=classname or self.arch_name,
                       arch=self.describe(), **options)

    # ----------------------------------------------------------------- info
    def count_params(self) -> int:
        return int(self._require_model().count_params())

    def describe(self) -> str:
        h, w, c = self.input_shape
        return f"{self.arch_name}({h}x{w}x{c}, {self.num_classes} classes)"

    def summary(self):
        return self._require_model().summary()

    def __repr__(self):
        return f"<{self.describe()}>"


class _BestCheckpoint:
    """Keras callback (built lazily so this module imports without Keras) keeping the best epoch."""

    def __new__(cls, net, path, min_accuracy):
        import keras

        class BestCheckpoint(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.best = -np.inf
                self.best_weights = None

            def on_epoch_end(self, epoch, logs=None):
                acc = (logs or {}).get("val_accuracy")
                if acc is None:
                    raise ValueError("checkpointing needs the 'accuracy' metric in config.metrics")
                if acc > self.best and acc >= min_accuracy:
                    self.best = acc
                    self.best_weights = self.model.get_weights()
                    net.save(path)

        return BestCheckpoint()


def load(path: str) -> MicroNet:
    """Load a net saved by :meth:`MicroNet.save` (or a ``fit`` checkpoint) back, weights included."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"saved net not found: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read(_SIDECAR))
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{path} is not a net saved by micronets (no {_SIDECAR} inside)") from exc
    # make sure every family has registered itself
    import micronets.models.mobilenet  # noqa: F401
    try:
        import micronets.models.phinet  # noqa: F401
    except ImportError:
        pass
    cls = _REGISTRY.get(meta["arch"])
    if cls is None:
        raise ValueError(f"{path} holds an unknown architecture {meta['arch']!r}")
    hp = dict(meta["hyperparameters"])
    net = cls(**hp)
    for key, value in meta.get("config", {}).items():
        if hasattr(net.config, key):
            setattr(net.config, key, value)
    net.build()
    net.model.load_weights(path)
    return net
