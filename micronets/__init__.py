"""micronets: tiny Keras image classifiers compiled to one self-contained ANSI C++ header.

Pipeline: ``keras.Model --trace--> Graph[Op] --plan--> arena offsets --emit--> model.h``.
"""

__version__ = "0.1.0"

import os as _os

# TensorFlow is chatty on import; keep the CLI and tests quiet unless the user asks otherwise.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from micronets import data  # noqa: E402,F401
from micronets.models.base import MicroNet, TrainingConfig, load  # noqa: E402
from micronets.models.mobilenet import (  # noqa: E402
    BaseMobileNet,
    MicroMobileNet,
    MilliMobileNet,
    NanoMobileNet,
    PicoMobileNet,
)


def export(model, path, classname="Net", **options):
    """Compile any Keras model built from supported layers into one C++ header at ``path``.

    See :func:`micronets.compiler.export.export` for the options.
    """
    from micronets.compiler.export import export as _export

    return _export(model, path, classname=classname, **options)


def verify(model, x=None, classname="Net", tolerance=1e-4):
    """Compile ``model``, run the header (g++) on ``x`` (default: 8 random inputs) and compare every
    op with the Keras layer it computes; returns a report (``ok``, ``table()``,
    ``first_divergence``). See :func:`micronets.verification.verify`."""
    from micronets.verification import verify as _verify

    return _verify(model, x, classname=classname, tolerance=tolerance)


def train_folder(data_dir, arch="pico", output="model.h", **options):
    """Train ``arch`` on a folder of images (one subfolder per class), export the header and report
    its test accuracy. See :func:`micronets.train.train_folder` for the options."""
    from micronets.train import train_folder as _train_folder

    return _train_folder(data_dir, arch, output, **options)


def evaluate_folder(model_path, data_dir, **options):
    """Accuracy report of a saved ``.keras`` model on a folder of labelled images.
    See :func:`micronets.train.evaluate_folder`."""
    from micronets.train import evaluate_folder as _evaluate_folder

    return _evaluate_folder(model_path, data_dir, **options)


def __getattr__(name):
    # PhiNet pulls in the same Keras code; import it lazily so a missing optional piece never
    # breaks the MobileNet family.
    if name == "PhiNet":
        from micronets.models.phinet import PhiNet

        return PhiNet
    if name == "search":
        # micronets.search(data_dir, output, board=..., ...): the module is callable (see
        # micronets/search.py); Optuna is imported only when a search runs
        import importlib

        return importlib.import_module("micronets.search")
    raise AttributeError(f"module 'micronets' has no attribute {name!r}")


__all__ = [
    "__version__",
    "MicroNet",
    "TrainingConfig",
    "load",
    "export",
    "verify",
    "train_folder",
    "evaluate_folder",
    "search",
    "PicoMobileNet",
    "NanoMobileNet",
    "MicroMobileNet",
    "MilliMobileNet",
    "BaseMobileNet",
    "PhiNet",
]
