"""export: compile a Keras model and write its header; the package's one atomic file writer."""

from __future__ import annotations

import os
import tempfile
from typing import Dict, Optional, Sequence, Union

from micronets.compiler.compile import CompiledModel, compile_model


def check_writable(path) -> str:
    """Raise OSError (naming ``path``) when ``write_atomic(path, ...)`` cannot succeed: no file
    name, a folder, a missing or read-only folder. For failing early, before any heavy work."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise OSError(f"cannot write {path!r}: an output file name is required")
    path = os.fspath(path)
    if path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):
        raise OSError(f"cannot write {path}: it names a folder, not a file")
    target = os.path.realpath(path)
    if os.path.isdir(target):
        raise OSError(f"cannot write {path}: it is a folder")
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise OSError(f"cannot write {path}: folder {os.path.dirname(os.path.abspath(path))} does not exist")
    if not os.access(directory, os.W_OK):
        raise OSError(f"cannot write {path}: folder {directory} is not writable")
    return path


def write_atomic(path, data: Union[str, bytes], mode: int = 0o644) -> str:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` through a temporary file in the same
    folder and a rename, so a failure never leaves a partial or half-written file. A symlink is
    followed (its target is replaced, the link stays); permissions are ``mode`` less the umask.
    Returns the path written. Raises OSError naming ``path`` (never the temporary file)."""
    path = check_writable(path)
    target = os.path.realpath(path)  # write through symlinks
    directory = os.path.dirname(target)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".micronets-", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise OSError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, mode & ~umask)
        os.replace(tmp, target)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OSError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    return path


def export(model, path, classname: Optional[str] = "Net", arch: Optional[str] = None,
           input_scale: Optional[float] = None, input_offset: float = 0.0,
           class_names: Optional[Sequence[str]] = None, notes: Optional[Dict[str, str]] = None,
           quantize: Optional[str] = None, calibration=None, stream: Optional[bool] = None) -> CompiledModel:
    """Compile ``model`` (a keras.Model of supported layers) into one C++ header at ``path``.

    ``classname`` names the generated class (a C++ identifier); ``input_scale``/``input_offset``
    map a raw uint8 value p to the network input p * scale + offset for ``predict(const uint8_t*)``
    (default: p / 255, or p itself when the model takes integers or starts with Rescaling/Normalization);
    ``class_names`` become ``classNames[]``; ``notes`` (str -> str) are extra lines in the top comment.
    ``quantize="int8"`` writes an int8 header instead (:mod:`micronets.compiler.int8`): TFLite's
    converter quantises the model with ``calibration`` (representative inputs, (N, H, W, C), at
    least ``MIN_CALIBRATION_SAMPLES``) and the header reproduces TFLite's int8 reference kernels.
    ``stream`` (int8 only): chains of layers run depth first, row by row, where that plans a quarter
    less arena or more (the default, True); False runs every layer whole: a larger arena, a few per
    cent fewer instructions on some nets (the choice is the user's: RAM or speed).
    Raises TypeError (not a Keras model, ``stream`` not a bool), ValueError (unsupported layer, bad
    class name, NaN weights, missing / too few / wrongly shaped calibration) or OSError (unwritable
    path); in every error case no file is written.
    """
    check_writable(path)
    if stream is not None and not isinstance(stream, bool):
        raise TypeError(f"stream= takes True or False; got {stream!r}")
    if quantize not in (None, "float32", "int8"):
        raise ValueError(f"quantize={quantize!r} is not supported; use 'int8' (or None for float32)")
    if quantize == "int8":
        from micronets.compiler.int8 import compile_keras_int8

        compiled = compile_keras_int8(model, calibration, classname="Net" if classname is None else classname, arch=arch,
                                      input_scale=input_scale, input_offset=input_offset, class_names=class_names,
                                      notes=notes, stream=True if stream is None else bool(stream))
        text = compiled.render(filename=os.path.basename(os.fspath(path)) or "model.h")
        write_atomic(path, text)
        compiled._header = text
        return compiled
    if calibration is not None:
        raise ValueError("calibration= is only used with quantize='int8'")
    if stream is not None:
        raise ValueError("stream= is only used with quantize='int8' (the float32 path has no streams)")
    compiled = compile_model(model, classname="Net" if classname is None else classname, arch=arch,
                             input_scale=input_scale, input_offset=input_offset, class_names=class_names, notes=notes)
    text = compiled.render(filename=os.path.basename(os.fspath(path)) or "model.h")
    write_atomic(path, text)
    compiled._header = text
    return compiled
