"""The training wrapper shared by every network family.

A :class:`MicroNet` owns one ``keras.Model`` (``net.model``) plus a :class:`TrainingConfig`. Each
family (MobileNet sizes, PhiNet) only says how to build its Keras graph from its hyperparameters;
building, compiling, fitting with checkpoints, saving, loading and exporting live here once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import signal
import tempfile
import threading
import zipfile
from typing import Any, ClassVar, Dict, List, Optional, Tuple, Union

import numpy as np

_SIDECAR = "micronets.json"  # extra entry in a saved .keras zip: which net, with which arguments
_REGISTRY: Dict[str, type] = {}

LOSSES = ("auto", "sparse_categorical_crossentropy", "categorical_crossentropy")


FLIPS = ("none", "horizontal", "vertical", "horizontal_and_vertical")
LR_SCHEDULES = ("cosine", "constant")
#: ``augment="auto"`` augments training sets with fewer images per class than this: between the
#: two sizes measured (170 per class, where augmentation helped or was neutral, and 5,100, where
#: it cost Pico 3 points)
AUGMENT_AUTO_PER_CLASS = 1000


@dataclasses.dataclass
class TrainingConfig:
    """How ``compile()`` and ``fit()`` train the network.

    The defaults are the ones ``micronets train`` uses, chosen by measurement on 3 Fashion-MNIST
    classes x 200 images at 32x32x1 with Pico (30 epochs, test accuracy on 90 held-out images,
    seeds 0/1): BatchNorm momentum 0.99 -> 33% (chance), 0.9 -> 81-96%; lr 3e-3 cosine without
    augmentation 91/96%; with strong augmentation (translate/zoom 0.1, contrast 0.2) 88/90%, with
    the mild default 92%+; label smoothing 0.1 (88/89%) and mixup 0.2 (90/89%) gave nothing on
    data this small, so they are off. Augmentation stays on for data that small, because real
    photos, unlike centred Fashion-MNIST, vary in position and scale.

    On large data augmentation costs these tiny nets accuracy they cannot spare: full
    Fashion-MNIST (5,100 training images per class, 10 epochs) gave Pico 81.4% test accuracy
    without augmentation against 78.3% with it (20 epochs). Hence ``augment="auto"`` (the
    default): on while the training set has fewer than :data:`AUGMENT_AUTO_PER_CLASS` images per
    class, off above.

    ``loss``: ``"auto"`` (default) accepts integer labels ``(N,)`` *and* one-hot labels
    ``(N, num_classes)``; naming ``"sparse_categorical_crossentropy"`` requires integer labels and
    ``"categorical_crossentropy"`` requires one-hot labels. Training always minimises categorical
    cross-entropy on one-hot targets (the same loss), which is what label smoothing and mixup need.

    ``lr_schedule``: ``"cosine"`` decays ``learning_rate`` to 0 over the ``fit()`` call (after
    ``warmup_epochs`` of linear warm-up); ``"constant"`` keeps it.

    ``augment``: ``True``, ``False`` or ``"auto"`` (see above): random translation, zoom, rotation
    and contrast (Keras preprocessing layers) applied to training batches only. They wrap ``net.model`` during ``fit()`` and never become part of it,
    so the saved model and the exported header hold no augmentation. ``translate`` and ``zoom`` are
    fractions of the image size, ``rotate`` a fraction of a full turn, ``contrast`` the contrast
    factor range; ``flip`` is off unless asked (``"horizontal"``, ``"vertical"`` or both), since a
    flipped digit or letter is another class.

    ``label_smoothing`` (0..1) and ``mixup_alpha`` (Beta(a, a) mixing of image pairs; 0 = off):
    the PhiNet authors' regularisers.

    ``keep_best``: with validation data, restore the weights of the epoch with the best validation
    accuracy when training ends. ``early_stopping_patience``: stop after that many epochs without a
    better validation accuracy (None = train all epochs).

    ``run_eagerly``: train without tracing a TensorFlow graph. Tracing costs seconds per new
    model (more with every layer), which dominates a run of a few dozen steps (architecture
    search trials on small data); for longer runs graph mode is faster.

    ``checkpoint_path``: when set, ``fit()`` also saves the net there (a ``.keras`` file loadable
    with :func:`micronets.load`) each time validation accuracy improves and reaches
    ``checkpoint_min_accuracy``.
    """

    learning_rate: float = 3e-3
    batch_size: int = 32
    verbosity: int = 0
    loss: str = "auto"
    metrics: List[str] = dataclasses.field(default_factory=lambda: ["accuracy"])
    lr_schedule: str = "cosine"
    warmup_epochs: int = 0
    augment: Union[bool, str] = "auto"
    translate: float = 0.05
    zoom: float = 0.05
    rotate: float = 0.02
    contrast: float = 0.1
    flip: str = "none"
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0
    keep_best: bool = True
    early_stopping_patience: Optional[int] = None
    checkpoint_path: Optional[str] = None
    checkpoint_min_accuracy: float = 0.0
    run_eagerly: bool = False

    def check(self) -> "TrainingConfig":
        """Raise ValueError with a one-line reason for an option out of range."""
        def number(name, lo, hi, lo_open=False, hi_open=False):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
                raise ValueError(f"config.{name} must be a number, got {v!r}")
            if v < lo or v > hi or (lo_open and v == lo) or (hi_open and v == hi):
                raise ValueError(f"config.{name} must be in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}, "
                                 f"got {v!r}")

        number("learning_rate", 0, 10, lo_open=True)
        if not (isinstance(self.augment, bool) or self.augment == "auto"):
            raise ValueError(f"config.augment must be True, False or 'auto'; got {self.augment!r}")
        number("translate", 0, 1)
        number("zoom", 0, 1, hi_open=True)
        number("rotate", 0, 1)
        number("contrast", 0, 1)
        number("label_smoothing", 0, 1, hi_open=True)
        number("mixup_alpha", 0, 100)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise ValueError(f"config.batch_size must be a positive integer, got {self.batch_size!r}")
        if isinstance(self.warmup_epochs, bool) or not isinstance(self.warmup_epochs, (int, np.integer)) \
                or self.warmup_epochs < 0:
            raise ValueError(f"config.warmup_epochs must be an integer >= 0, got {self.warmup_epochs!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"config.lr_schedule must be one of {', '.join(LR_SCHEDULES)}; got {self.lr_schedule!r}")
        if self.flip not in FLIPS:
            raise ValueError(f"config.flip must be one of {', '.join(FLIPS)}; got {self.flip!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"config.loss must be one of {', '.join(LOSSES)}; got {self.loss!r}")
        p = self.early_stopping_patience
        if p is not None and (isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 1):
            raise ValueError(f"config.early_stopping_patience must be None or an integer >= 1, got {p!r}")
        return self

    def augments(self, images: int, classes: int) -> bool:
        """Whether ``fit()`` augments a training set of ``images`` images of ``classes`` classes."""
        if self.augment == "auto":
            return images < AUGMENT_AUTO_PER_CLASS * max(int(classes), 1)
        return bool(self.augment)

    def augmentation_layers(self, seed: Optional[int] = None) -> list:
        """The Keras preprocessing layers ``fit()`` applies to training batches when it augments
        (see :meth:`augments`)."""
        if self.augment is False:
            return []
        from keras import layers

        out = []
        if self.flip != "none":
            out.append(layers.RandomFlip(self.flip, seed=seed, name="augment_flip"))
        if self.rotate > 0:
            out.append(layers.RandomRotation(self.rotate, fill_mode="nearest", seed=seed, name="augment_rotate"))
        if self.zoom > 0:
            out.append(layers.RandomZoom(self.zoom, fill_mode="nearest", seed=seed, name="augment_zoom"))
        if self.translate > 0:
            out.append(layers.RandomTranslation(self.translate, self.translate, fill_mode="nearest", seed=seed,
                                                name="augment_translate"))
        if self.contrast > 0:
            out.append(layers.RandomContrast(self.contrast, value_range=(0.0, 1.0), seed=seed,
                                             name="augment_contrast"))
        return out


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
        #: names of the output classes (e.g. the class folders ``train`` learned from); saved with
        #: the net and emitted into the header by :meth:`export`
        self.class_names: Optional[List[str]] = None

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
        """Compile ``net.model`` with Adam at ``config.learning_rate`` and ``config.loss`` (for users
        who call ``net.model.evaluate``); ``fit()`` trains through its own compiled wrapper."""
        import keras

        self.config.check()
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
        """Train; returns the Keras ``History``. Inputs are float32 (N, H, W, C).

        Batches are shuffled every epoch, augmented and mixed up as ``config`` says; the learning
        rate follows ``config.lr_schedule`` over the ``epochs`` of this call. With validation data
        and ``config.keep_best`` the best epoch's weights are restored at the end.
        """
        import keras

        self.config.check()
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
        x = self._check_x(train_x, "train_x")
        y = self._one_hot(self._check_y(train_y, len(x), "train_y"))
        validation = None
        if (val_x is None) != (val_y is None):
            raise ValueError("pass both val_x and val_y, or neither")
        if val_x is not None:
            vx = self._check_x(val_x, "val_x")
            validation = (vx, self._one_hot(self._check_y(val_y, len(vx), "val_y")))
        if self.config.checkpoint_path and validation is None:
            raise ValueError("config.checkpoint_path keeps the best epoch by validation accuracy: pass val_x and val_y")
        if "accuracy" not in self.config.metrics and validation is not None and (
                self.config.keep_best or self.config.checkpoint_path or self.config.early_stopping_patience):
            raise ValueError("keeping the best epoch needs the 'accuracy' metric in config.metrics")
        if self.model is None or self._compiled_loss is None:
            self.compile()

        cfg = self.config
        batch = int(min(cfg.batch_size, len(x)))
        steps = int(np.ceil(len(x) / batch))
        trainer = self._training_model(cfg.augments(len(x), self.num_classes))
        trainer.compile(
            optimizer=_adam(self._learning_rate(epochs, steps)),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=float(cfg.label_smoothing)),
            # metric objects, so their variables exist before the first step, as the optimizer's
            # do after build(): a variable made while TensorFlow traces the step makes it trace
            # the step twice (a default PhiNet's first epoch at 16x16: 19.7 s -> 10.5 s)
            metrics=[_metric(m) for m in cfg.metrics],
            run_eagerly=bool(cfg.run_eagerly),
        )
        trainer.optimizer.build(trainer.trainable_variables)
        data = _Batches(x, y, batch, float(cfg.mixup_alpha))

        callbacks = list(fit_kwargs.pop("callbacks", []))
        if any(type(layer).__name__ == "BatchNormalization" for layer in self.model.layers):
            # first, so validation, checkpoints and early stopping see the recalibrated statistics
            callbacks.insert(0, _PreciseBatchNorm(self.model, x))
        keeper = None
        if validation is not None and (cfg.keep_best or cfg.checkpoint_path):
            keeper = _BestCheckpoint(self, cfg.checkpoint_path, cfg.checkpoint_min_accuracy)
            callbacks.append(keeper)
        if validation is not None and cfg.early_stopping_patience:
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                                           patience=int(cfg.early_stopping_patience)))
        with catching_interrupts():
            history = trainer.fit(
                data,
                epochs=epochs,
                validation_data=validation,
                validation_batch_size=max(batch, 64),
                shuffle=False,  # the dataset reshuffles every epoch itself
                verbose=cfg.verbosity,
                callbacks=callbacks + [_stop_on_interrupt()],
                **fit_kwargs,
            )
        if keeper is not None and keeper.best_weights is not None and cfg.keep_best:
            self.model.set_weights(keeper.best_weights)
        history.best_epoch = None if keeper is None else keeper.best_epoch
        return history

    def _one_hot(self, y: np.ndarray) -> np.ndarray:
        if y.ndim == 2:
            return y.astype(np.float32)
        return np.eye(self.num_classes, dtype=np.float32)[y]

    def _training_model(self, augment: bool):
        """``net.model`` behind the augmentation layers (when ``augment``): what ``fit()`` trains
        (weights shared)."""
        import keras

        model = self._require_model()
        inputs = keras.Input(shape=self.input_shape, name="train_input")
        h = inputs
        for layer in (self.config.augmentation_layers() if augment else []):
            h = layer(h)
        return keras.Model(inputs, model(h), name=f"{model.name}_training")

    def _learning_rate(self, epochs: int, steps: int):
        import keras

        cfg = self.config
        lr = float(cfg.learning_rate)
        if cfg.lr_schedule == "constant":
            return lr
        warmup = int(min(cfg.warmup_epochs, max(epochs - 1, 0)) * steps)
        decay = max(epochs * steps - warmup, 1)
        if warmup:
            return keras.optimizers.schedules.CosineDecay(0.0, decay, warmup_target=lr, warmup_steps=warmup)
        return keras.optimizers.schedules.CosineDecay(lr, decay)

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
        """Save weights, Keras graph, this net's hyperparameters, training config and class names
        to one ``.keras`` file (the package's atomic writer: a failure leaves nothing behind)."""
        from micronets.compiler.export import write_atomic

        if not str(path).endswith(".keras"):
            raise ValueError(f"save() writes a .keras file; got {path!r}")
        write_atomic(path, self.to_bytes())
        return path

    def to_bytes(self) -> bytes:
        """The ``.keras`` file :meth:`save` writes, as bytes."""
        import micronets

        model = self._require_model()
        with tempfile.TemporaryDirectory(prefix="micronets-save-") as tmp:
            tmp_path = os.path.join(tmp, "net.keras")
            model.save(tmp_path)
            meta = {"arch": type(self).__name__, "hyperparameters": self.hyperparameters(),
                    "config": dataclasses.asdict(self.config), "class_names": self.class_names,
                    "micronets_version": micronets.__version__}
            with zipfile.ZipFile(tmp_path, "a") as zf:
                zf.writestr(_SIDECAR, json.dumps(meta, sort_keys=True))
            with open(tmp_path, "rb") as fh:
                return fh.read()

    # ----------------------------------------------------------------- export
    def export(self, path: str, classname: Optional[str] = None, **options):
        """Compile this net into a C++ header; the class name defaults to the architecture's."""
        from micronets.compiler.export import export as _export

        if self.class_names is not None:
            options.setdefault("class_names", list(self.class_names))
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


def _Batches(x: np.ndarray, y: np.ndarray, batch: int, mixup_alpha: float):
    """The training batches of one ``fit()``: reshuffled every epoch and, with ``mixup_alpha`` > 0,
    each batch mixed with a shuffled copy of itself, weights ~ Beta(alpha, alpha). Plain numpy in a
    ``keras.utils.PyDataset``, so training needs no tf.data (run on the TensorFlow and JAX backends);
    the random draws come from numpy's global generator, which ``keras.utils.set_random_seed``
    seeds."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.order = np.random.permutation(len(x))

        def __len__(self):
            return int(np.ceil(len(x) / batch))

        def __getitem__(self, index):
            pick = self.order[index * batch:(index + 1) * batch]
            bx, by = x[pick], y[pick]
            if mixup_alpha > 0:
                lam = np.random.beta(mixup_alpha, mixup_alpha, size=len(pick)).astype(np.float32)
                perm = np.random.permutation(len(pick))
                lx = lam.reshape(-1, *([1] * (bx.ndim - 1)))
                bx = lx * bx + (1.0 - lx) * bx[perm]
                by = lam[:, None] * by + (1.0 - lam[:, None]) * by[perm]
            return bx, by

        def on_epoch_end(self):
            self.order = np.random.permutation(len(x))

    return Batches()


def _metric(identifier):
    """The metric object Keras' compile() would make of ``identifier`` (a name, a function or a
    Metric), made now rather than while the first step is traced: "accuracy" / "acc" are
    categorical (the labels are one-hot), another name is keras.metrics.get's, and a function is
    averaged over batches (MeanMetricWrapper); named as given."""
    import keras

    if isinstance(identifier, keras.metrics.Metric):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        return keras.metrics.CategoricalAccuracy(name=identifier)
    found = keras.metrics.get(identifier)
    if isinstance(found, keras.metrics.Metric):
        found.name = identifier if isinstance(identifier, str) else found.name
        return found
    return keras.metrics.MeanMetricWrapper(found, name=identifier if isinstance(identifier, str) else found.__name__)


def _adam(learning_rate):
    """Keras' Adam at ``learning_rate``. On the TensorFlow backend each variable's update is
    TensorFlow's fused Adam kernel (``ResourceApplyAdam``), the formula of Keras' own
    ``update_step``: m += (g - m)(1 - b1), v += (g^2 - v)(1 - b2), var -= a m / (sqrt(v) + eps) with
    a = lr sqrt(1 - b2^t) / (1 - b1^t), but 1 - b taken in single precision (Keras: double), as if
    b2 were 0.99900001 (v's steps 1.3e-5 smaller, relative). One graph op where Keras' update traces
    about 20, whose tracing cost seconds at the start of every fit(): a default PhiNet's first
    epoch at 16x16 went from 11.4 s to 6.2 s. Other backends, and sparse gradients, take Keras'
    update."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    import tensorflow as tf

    class Adam(keras.optimizers.Adam):
        def update_step(self, gradient, variable, learning_rate):
            if not isinstance(gradient, tf.Tensor):  # e.g. IndexedSlices
                return super().update_step(gradient, variable, learning_rate)
            dtype = variable.dtype
            step = keras.ops.cast(self.iterations + 1, dtype)
            b1 = keras.ops.cast(self.beta_1, dtype)
            b2 = keras.ops.cast(self.beta_2, dtype)
            i = self._get_variable_index(variable)
            tf.raw_ops.ResourceApplyAdam(
                var=variable.handle, m=self._momentums[i].handle, v=self._velocities[i].handle,
                beta1_power=keras.ops.power(b1, step), beta2_power=keras.ops.power(b2, step),
                lr=keras.ops.cast(learning_rate, dtype), beta1=b1, beta2=b2,
                epsilon=keras.ops.cast(self.epsilon, dtype), grad=keras.ops.cast(gradient, dtype))

    return Adam(learning_rate=learning_rate)


#: the largest activation one recalibration batch may hold (float32 bytes): sets its batch size
RECALIBRATION_BATCH_BYTES = 64 * 1024 * 1024


def _recalibration_batch(model, n: int) -> int:
    """Samples per eager probe call: all ``n`` where the model's largest activation for them fits
    RECALIBRATION_BATCH_BYTES. Each probe call costs about a millisecond per layer beyond its
    arithmetic, so a tiny net's recalibration is that overhead unless its batches are large."""
    import keras

    def largest(layers):
        size = 1
        for layer in layers:
            size = max(size, largest(getattr(layer, "layers", None) or []))  # a model used as a layer
            try:
                outputs = keras.tree.flatten(layer.output)
            except (AttributeError, ValueError):  # a layer used at several places has no single output
                continue
            for t in outputs:
                size = max(size, int(np.prod([d or 1 for d in t.shape[1:]])))
        return size

    return int(max(1, min(n, RECALIBRATION_BATCH_BYTES // (4 * largest(model.layers)))))


def recalibrate_batchnorm(model, x, max_samples: int = 1024, batch_size: Optional[int] = None, probes=None):
    """Set every BatchNormalization's moving statistics to the exact mean and variance of its
    input over ``x`` (a random ``max_samples`` of it), layer by layer in graph order, each with the
    layers before it already recalibrated ("precise BatchNorm"). On small data the moving averages
    see only a few dozen steps and trail the weights (validation at chance while training
    accuracy is high); exact statistics make inference match what training learned. ``probes``: a
    dict kept across calls (one per ``fit()``) so each layer's probe model is built once rather
    than every epoch. ``batch_size``: samples per probe call (default: as many as fit
    RECALIBRATION_BATCH_BYTES, see :func:`_recalibration_batch`)."""
    import keras

    x = np.asarray(x)
    if len(x) > max_samples:  # an even spread over the data (it may be ordered by class)
        x = x[np.random.default_rng(0).choice(len(x), max_samples, replace=False)]
    x = np.asarray(x, np.float32)
    if batch_size is None:
        batch_size = _recalibration_batch(model, len(x))
    source = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    for layer in model.layers:
        if type(layer).__name__ != "BatchNormalization" or not layer.weights:
            continue
        probe = probes.get(layer.name) if probes is not None else None
        if probe is None:
            probe = keras.Model(source, layer.input)
            if probes is not None:
                probes[layer.name] = probe
        # called eagerly, batch by batch: predict() would trace a new function for every probe
        # (a PhiNet has dozens of BatchNorms; that tracing cost ~10x the arithmetic)
        h = np.concatenate([keras.ops.convert_to_numpy(probe(x[i:i + batch_size], training=False))
                            for i in range(0, len(x), batch_size)]).astype(np.float64)
        axes = tuple(i for i in range(h.ndim) if i not in [a % h.ndim for a in np.atleast_1d(layer.axis)])
        stats = {"moving_mean": h.mean(axis=axes), "moving_variance": h.var(axis=axes)}
        layer.set_weights([stats[w.path.split("/")[-1]].reshape(w.shape).astype(np.float32)
                           if w.path.split("/")[-1] in stats else np.asarray(w.numpy()) for w in layer.weights])


#: set by catching_interrupts()' SIGINT handler; read by fit()'s StopOnInterrupt callback
_INTERRUPTED = threading.Event()


@contextlib.contextmanager
def catching_interrupts():
    """While active, SIGINT is recorded as well as handled as before (Python's handler raises
    KeyboardInterrupt wherever the main thread is). That KeyboardInterrupt can land in code that
    swallows it: seen with three trainings on two cores, inside JAX's garbage-collection callback
    (an exception there is printed and dropped), and ``micronets train`` went on training. So a
    SIGINT that arrives in a garbage-collection callback is only recorded, and ``fit()`` stops at
    its next batch or epoch boundary once one is recorded. Raised inside TensorFlow's C++ calls
    back into Python, the KeyboardInterrupt can come out as another error (seen in CI: "pybind11::
    error_already_set: MISMATCH of original and normalized active exception types: ORIGINAL
    InvalidArgumentError REPLACED BY KeyboardInterrupt", and ``micronets train`` exited 1, not
    130): any error leaving this block after a recorded SIGINT is raised as KeyboardInterrupt
    (from it). ``fit()`` and the command line use this; a nested use keeps the outer one's
    record. An ignored or default-action SIGINT, or a thread other than the main one, is left as
    it is."""
    previous = signal.getsignal(signal.SIGINT)
    if (threading.current_thread() is not threading.main_thread() or not callable(previous)
            or getattr(previous, "micronets_records", False)):
        yield
        return

    def handler(signum, frame):
        _INTERRUPTED.set()
        if frame is not None and any(getattr(cb, "__code__", None) is frame.f_code for cb in gc.callbacks):
            return  # raised there it would be printed and dropped; fit() raises it at its next boundary
        previous(signum, frame)

    handler.micronets_records = True
    _INTERRUPTED.clear()
    signal.signal(signal.SIGINT, handler)
    try:
        yield
    except Exception as exc:
        if _INTERRUPTED.is_set():
            raise KeyboardInterrupt from exc
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        _INTERRUPTED.clear()  # not to stop a later fit() under an ignored SIGINT (where nothing clears it)


def _stop_on_interrupt():
    """A Keras callback raising KeyboardInterrupt at fit()'s batch and epoch boundaries once
    catching_interrupts() has recorded a SIGINT."""
    import keras

    class StopOnInterrupt(keras.callbacks.Callback):
        def _check(self, *args, **kwargs):
            if _INTERRUPTED.is_set():
                raise KeyboardInterrupt

        on_train_begin = on_train_batch_end = on_test_batch_end = on_epoch_begin = on_epoch_end = on_test_begin = _check

    return StopOnInterrupt()


class _PreciseBatchNorm:
    """Keras callback: recalibrate BatchNorm statistics (see :func:`recalibrate_batchnorm`) just
    before each validation inside ``fit()`` and when training ends, each time only if a training
    step ran since the last recalibration. Validation starts after
    every backend has written its training state back to the variables (JAX keeps it apart
    during the epoch), and each epoch's training reads the variables afresh, so this works on
    every Keras backend."""

    def __new__(cls, model, x):
        import keras

        class PreciseBatchNorm(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.probes = {}  # this fit's probe models, built once
                self.trained = False  # a training step since the last recalibration

            def on_train_batch_end(self, batch, logs=None):
                self.trained = True

            def _recalibrate(self, logs=None):
                if self.trained:  # the last epoch's validation already did it for train end
                    recalibrate_batchnorm(model, x, probes=self.probes)
                    self.trained = False

            on_test_begin = on_train_end = _recalibrate

        return PreciseBatchNorm()


class _BestCheckpoint:
    """Keras callback (built lazily so this module imports without Keras) keeping the best epoch."""

    def __new__(cls, net, path, min_accuracy):
        import keras

        class BestCheckpoint(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.best = -np.inf
                self.best_weights = None
                self.best_epoch = None

            def on_epoch_end(self, epoch, logs=None):
                acc = (logs or {}).get("val_accuracy")
                if acc is None:
                    raise ValueError("checkpointing needs the 'accuracy' metric in config.metrics")
                if acc > self.best and acc >= min_accuracy:
                    self.best = acc
                    self.best_epoch = epoch
                    self.best_weights = net.model.get_weights()
                    if path:
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
        if hasattr(net.config, key) and key != "checkpoint_path":
            setattr(net.config, key, value)
    names = meta.get("class_names")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(names) != net.num_classes:
            raise ValueError(f"{path} records class names that do not match its {net.num_classes} classes")
        net.class_names = list(names)
    net.build()
    net.model.load_weights(path)
    return net
