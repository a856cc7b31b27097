"""export: compile a Keras model and write its header atomically (temp file + rename)."""

from __future__ import annotations

import os
import tempfile
from typing import Optional

from micronets.compiler.compile import CompiledModel, compile_model


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename, so a
    failure never leaves a partial file behind."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise OSError(f"cannot write {path}: folder {directory} does not exist")
    if os.path.isdir(path):
        raise OSError(f"cannot write {path}: it is a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".micronets-", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise OSError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def export(model, path: str, classname: Optional[str] = "Net", arch: Optional[str] = None,
           input_scale: float = 1.0 / 255.0, input_offset: float = 0.0) -> CompiledModel:
    """Compile ``model`` (a keras.Model of supported layers) into one C++ header at ``path``.

    ``classname`` names the generated class (a C++ identifier); ``input_scale``/``input_offset``
    map a raw uint8 pixel p to the network input p * scale + offset for ``predict(const uint8_t*)``.
    Raises ValueError (unsupported layer, bad class name, NaN weights) or OSError (unwritable path);
    in every error case no file is written.
    """
    compiled = compile_model(model, classname="Net" if classname is None else classname, arch=arch,
                             input_scale=input_scale, input_offset=input_offset)
    text = compiled.render(filename=os.path.basename(path))
    write_atomic(path, text)
    compiled._header = text
    return compiled
