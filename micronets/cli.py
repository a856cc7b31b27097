"""The ``micronets`` command line: generate, inspect and train models, and check board fit.

Every command prints a short human summary (rich) on stdout; errors exit non-zero with one line
``Error: ...`` on stderr and never leave a partial output file behind. TensorFlow is imported only
by the commands that need it, so ``micronets --help`` and ``micronets boards`` answer at once.
Set ``MICRONETS_DEBUG=1`` to see the full traceback of an unexpected error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import sys
import tempfile
import warnings
from typing import Any, Dict, List, Optional, Tuple

import click

import micronets

MOBILENET_ARCHS = ("pico", "nano", "micro", "milli", "base")
PHINET_ARCHS = ("phinet-2m", "phinet-5m", "phinet-10m", "phinet-20m")
ARCHS = MOBILENET_ARCHS + PHINET_ARCHS
MODEL_FILE_SUFFIXES = (".keras", ".h5")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ---------------------------------------------------------------------------- boards
@dataclasses.dataclass(frozen=True)
class Board:
    """What one board offers a model: data RAM and flash, and the assumptions behind them."""

    key: str
    name: str
    ram_bytes: int  # RAM assumed free for the model's object (arena + outputs) and the input frame
    ram_note: str
    flash_bytes: int
    flash_note: str
    code_allowance: int  # flash reserved for the application, runtime and inference code

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


KB = 1024
MB = 1024 * 1024

BOARDS: Dict[str, Board] = {
    board.key: board
    for board in (
        Board(
            "esp32-s3", "Espressif ESP32-S3-DevKitC-1 N8",
            320 * KB, "assumes ~320 KB of the 512 KB internal SRAM is free for data "
            "(the rest goes to cache, IRAM code, FreeRTOS and Wi-Fi); no PSRAM",
            8 * MB, "8 MB quad-SPI flash (N8 module)",
            1 * MB,
        ),
        Board(
            "stm32f446re", "ST NUCLEO-F446RE (Cortex-M4F, 180 MHz)",
            128 * KB, "128 KB SRAM (SRAM1 112 KB + SRAM2 16 KB, contiguous)",
            512 * KB, "512 KB internal flash",
            64 * KB,
        ),
        Board(
            "stm32h743", "ST STM32H743 (Cortex-M7, 480 MHz), e.g. NUCLEO-H743ZI",
            512 * KB, "uses the 512 KB AXI SRAM (the faster 128 KB DTCM and the 288 KB of "
            "D2/D3 SRAM are not counted)",
            2 * MB, "2 MB internal flash",
            64 * KB,
        ),
        Board(
            "nrf52840", "Nordic nRF52840 (Cortex-M4F, 64 MHz), e.g. Arduino Nano 33 BLE",
            192 * KB, "assumes 192 KB of the 256 KB SRAM is free (the BLE SoftDevice and the "
            "stack take the rest)",
            1 * MB, "1 MB internal flash",
            192 * KB,
        ),
        Board(
            "rp2040", "Raspberry Pi RP2040 (dual Cortex-M0+, 133 MHz), e.g. Raspberry Pi Pico",
            256 * KB, "uses the 256 KB striped main SRAM (the two 4 KB banks are left to the stacks)",
            2 * MB, "2 MB QSPI flash (Raspberry Pi Pico)",
            64 * KB,
        ),
    )
}

BOARD_HELP = (
    "Check the model against a board: RAM needed = the model object (arena + outputs, i.e. "
    "sizeof(net)) + one uint8 H x W x C input frame; flash needed = the weights + a per-board "
    "code allowance (64 KB on the STM32s and RP2040, 192 KB on the nRF52840, 1 MB on the "
    "ESP32-S3). ESP32-S3: ~320 KB of its 512 KB SRAM counted as free for data, 8 MB flash "
    "(DevKitC-1 N8). STM32H743: the 512 KB AXI SRAM, 2 MB flash. STM32F446RE: 128 KB SRAM, "
    "512 KB flash. 'list' shows all boards."
)


def board_verdict(summary: Dict[str, Any], board: Board) -> Dict[str, Any]:
    """How ``summary`` (from ``compile_model(...).summary()``) fits ``board``; margins in bytes."""
    h, w, c = (int(d) for d in summary["input_shape"])
    frame = h * w * c
    ram_needed = int(summary["object_bytes"]) + frame
    flash_needed = int(summary["weights_bytes"]) + board.code_allowance
    ram_margin = board.ram_bytes - ram_needed
    flash_margin = board.flash_bytes - flash_needed
    return {
        "board": board.key,
        "name": board.name,
        "ram_available": board.ram_bytes,
        "ram_needed": ram_needed,
        "ram_object_bytes": int(summary["object_bytes"]),
        "ram_input_frame_bytes": frame,
        "ram_margin": ram_margin,
        "fits_ram": ram_margin >= 0,
        "flash_available": board.flash_bytes,
        "flash_needed": flash_needed,
        "flash_weights_bytes": int(summary["weights_bytes"]),
        "flash_code_allowance": board.code_allowance,
        "flash_margin": flash_margin,
        "fits_flash": flash_margin >= 0,
        "fits": ram_margin >= 0 and flash_margin >= 0,
    }


# ---------------------------------------------------------------------------- helpers
def one_line(exc, limit: int = 400) -> str:
    """An exception's (or a string's) message squeezed onto one line (Keras errors span many)."""
    text = str(exc).strip()
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        text = str(exc.args[0])
    text = " ".join(part.strip() for part in text.splitlines() if part.strip()) or type(exc).__name__
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fail(message: str) -> "click.ClickException":
    return click.ClickException(message)


@contextlib.contextmanager
def _quiet_stderr_fd():
    """Silence C++ logging on file descriptor 2 (TensorFlow's oneDNN banner on import)."""
    if os.environ.get("MICRONETS_DEBUG"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters)
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def import_keras():
    """Import TensorFlow and Keras quietly (no C++ banners, no Python warnings)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not os.environ.get("MICRONETS_DEBUG"):
        warnings.filterwarnings("ignore")
    if "keras" not in sys.modules:
        with _quiet_stderr_fd():
            import tensorflow  # noqa: F401
            import keras  # noqa: F401
    import keras

    return keras


class InputShape(click.ParamType):
    """``HxWxC``: three positive integers, e.g. ``96x96x1``."""

    name = "HxWxC"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        text = str(value).strip().lower()
        parts = text.split("x")
        example = "e.g. 96x96x1 (height x width x channels)"
        if len(parts) != 3:
            self.fail(f"{value!r} is not HxWxC: give three positive integers joined by 'x', {example}", param, ctx)
        try:
            dims = tuple(int(p) for p in parts)
        except ValueError:
            self.fail(f"{value!r} is not HxWxC: {', '.join(repr(p) for p in parts)} must be integers, {example}",
                      param, ctx)
        if any(d <= 0 for d in dims):
            self.fail(f"{value!r} is not HxWxC: every dimension must be a positive integer, {example}", param, ctx)
        if dims[0] > 4096 or dims[1] > 4096 or dims[2] > 64:
            self.fail(f"{value!r} is too large for a microcontroller model (at most 4096x4096x64)", param, ctx)
        return dims


INPUT_SHAPE = InputShape()


def _check_classname(ctx, param, value):
    if value is not None and not _IDENTIFIER.match(value):
        raise click.BadParameter(
            f"{value!r} is not a valid C++ class name (letters, digits and '_', not starting with a digit)"
        )
    return value


def _check_output(path: str) -> str:
    """Fail early (before any heavy work) when ``path`` cannot be written."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise fail(f"cannot write {path}: it is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise fail(f"cannot write {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise fail(f"cannot write {path}: directory {directory} is not writable")
    return path


def shape_text(shape) -> str:
    return "x".join(str(int(d)) for d in shape)


def human_bytes(n: int) -> str:
    n = int(n)
    if abs(n) >= MB:
        return f"{n:,} B ({n / MB:.2f} MB)"
    if abs(n) >= KB:
        return f"{n:,} B ({n / KB:.1f} KB)"
    return f"{n:,} B"


def _console():
    from rich.console import Console

    console = Console(highlight=False, emoji=False)
    if not console.is_terminal:  # pipes and test runners: wide enough for the layer table
        console = Console(highlight=False, emoji=False, width=max(console.width, 110))
    return console


def _compiler():
    try:
        from micronets.compiler import compile_model
    except ImportError as exc:
        raise fail(f"the micronets compiler is not available in this installation ({one_line(exc)})")
    return compile_model


# ---------------------------------------------------------------------------- model resolution
@dataclasses.dataclass
class Resolved:
    model: Any  # keras.Model
    net: Any  # MicroNet or None for a plain Keras model file
    label: str  # architecture description for the header / summary
    classname: str  # default C++ class name
    input_shape: Tuple[int, int, int]
    num_classes: int


def is_model_file(arch: str) -> bool:
    return arch.lower().endswith(MODEL_FILE_SUFFIXES) or os.path.isfile(arch)


def check_arch(arch: str) -> str:
    """Validate ``--arch`` cheaply (before TensorFlow is imported)."""
    if arch.lower() in ARCHS:
        return arch.lower()
    if is_model_file(arch):
        if not os.path.isfile(arch):
            raise fail(f"model file not found: {arch}")
        return arch
    raise fail(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHS)}, or give a saved .keras model file")


def _mobilenet(arch, classes, input_shape, batch_norm):
    from micronets.models.mobilenet import MOBILENETS

    cls = MOBILENETS[arch]
    return cls(num_classes=classes or 10, input_shape=input_shape, batch_norm=bool(batch_norm))


def _phinet(arch, classes, input_shape):
    try:
        from micronets.models.phinet import PhiNet
    except ImportError as exc:
        raise fail(f"PhiNet is not available in this installation ({one_line(exc)})")
    preset = arch.split("-", 1)[1]
    net = PhiNet.preset(preset, num_classes=classes or 10)
    if input_shape is not None and tuple(input_shape) != tuple(net.input_shape):
        hp = dict(net.hyperparameters())
        hp["input_shape"] = tuple(input_shape)
        hp["num_classes"] = classes or 10
        net = PhiNet(**hp)
    return net


def _load_model_file(path, classes, input_shape):
    keras = import_keras()
    net = None
    try:
        net = micronets.load(path)
        model = net.model
    except ValueError:  # not saved by micronets: any Keras model file
        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as exc:
            raise fail(f"cannot load Keras model {path}: {one_line(exc)}")
    except Exception as exc:
        raise fail(f"cannot load {path}: {one_line(exc)}")
    shape = tuple(int(d) for d in model.input_shape[1:])
    n_out = int(model.output_shape[-1])
    if input_shape is not None and tuple(input_shape) != shape:
        raise fail(f"{path} is a saved model with input {shape_text(shape)}; --input {shape_text(input_shape)} cannot change it")
    if classes is not None and classes != n_out:
        raise fail(f"{path} is a saved model with {n_out} classes; --classes {classes} cannot change it")
    return net, model


def resolve(arch: str, classes: Optional[int] = None, input_shape=None, batch_norm: Optional[bool] = None,
            weights: Optional[str] = None) -> Resolved:
    """Build (or load) the model that ``--arch`` names, optionally with ``--weights`` loaded."""
    arch = check_arch(arch)
    if weights is not None and not os.path.isfile(weights):
        raise fail(f"weights file not found: {weights}")
    import_keras()
    if arch in MOBILENET_ARCHS or arch in PHINET_ARCHS:
        try:
            if arch in MOBILENET_ARCHS:
                net = _mobilenet(arch, classes, input_shape, batch_norm)
            else:
                net = _phinet(arch, classes, input_shape)
            net.build()
        except click.ClickException:
            raise
        except (ValueError, TypeError) as exc:
            raise fail(f"cannot build {arch}: {one_line(exc)}")
        model = net.model
    else:
        net, model = _load_model_file(arch, classes, input_shape)

    if weights is not None:
        net, model = _load_weights(arch, net, model, weights, classes, input_shape, batch_norm)

    shape = tuple(int(d) for d in model.input_shape[1:])
    if len(shape) != 3:
        raise fail(f"{arch}: micronets needs an image input (H, W, C); this model takes {model.input_shape}")
    if net is not None:
        label, classname = net.describe(), net.arch_name
    else:
        base = os.path.basename(arch)
        label = f"{base} ({model.name})"
        classname = "Net"
    return Resolved(model, net, label, classname, shape, int(model.output_shape[-1]))


def count_weight_arrays(path: str) -> Optional[int]:
    """How many arrays a Keras weights file (``.weights.h5``, or a ``.keras`` zip) holds; None if unknown.

    Keras silently ignores arrays a model has no place for (e.g. BatchNorm weights loaded into
    a net built without BatchNorm), so the CLI compares this count with the model's.
    """
    import io
    import zipfile

    try:
        import h5py

        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                source = io.BytesIO(zf.read("model.weights.h5"))
        else:
            source = path
        names: List[str] = []
        with h5py.File(source, "r") as fh:
            fh.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        return sum(1 for name in names if not name.startswith("optimizer"))
    except Exception:  # not an HDF5 layout we know: let Keras decide
        return None


def _load_into(net, model, weights):
    found = count_weight_arrays(weights)
    expected = len(model.weights)
    if found is not None and found != expected:
        what = net.describe() if net is not None else model.name
        raise ValueError(f"cannot load weights from {weights} into {what}: the file holds {found} weight "
                         f"arrays, the model has {expected}")
    if net is not None:
        net.load_weights(weights)
    else:
        model.load_weights(weights)


def _load_weights(arch, net, model, weights, classes, input_shape, batch_norm):
    try:
        _load_into(net, model, weights)
        return net, model
    except FileNotFoundError:
        raise fail(f"weights file not found: {weights}")
    except Exception as exc:
        first_error = exc
    # MobileNet weights saved with the other batch-norm setting: try it when the user left it open.
    if arch in MOBILENET_ARCHS and batch_norm is None:
        other = _mobilenet(arch, classes, input_shape, True)
        other.build()
        try:
            _load_into(other, other.model, weights)
            return other, other.model
        except Exception:
            pass
    what = net.describe() if net is not None else arch
    message = one_line(first_error)
    prefix = f"cannot load weights from {weights} into {what}: "
    if message.startswith("cannot load weights from"):  # MicroNet already said it
        prefix = ""
    raise fail(prefix + message + " (does --arch/--input/--classes match the training run?)")


def compile_summary(resolved: Resolved, classname: Optional[str]):
    compile_model = _compiler()
    try:
        result = compile_model(resolved.model, classname=classname or resolved.classname, arch=resolved.label)
    except ValueError as exc:
        raise fail(one_line(exc))
    return result, _plain(result.summary())


def _plain(value):
    """Summary values as plain JSON types (numpy integers and tuples converted)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def export_header(resolved: Resolved, path: str, classname: Optional[str], comment: Optional[List[str]] = None):
    """Write the header atomically (optionally with extra ``//`` comment lines before the guard)."""
    existed = os.path.exists(path)
    try:
        if not comment:
            result = micronets.export(resolved.model, path, classname=classname or resolved.classname,
                                      arch=resolved.label)
        else:
            compile_model = _compiler()
            result = compile_model(resolved.model, classname=classname or resolved.classname, arch=resolved.label)
            render = getattr(result, "render", None)  # the header names its file in its first line
            header = render(filename=os.path.basename(path)) if render is not None else result.header
            _write_atomic(path, _with_comment(header, comment))
    except click.ClickException:
        raise
    except ValueError as exc:
        _cleanup(path, existed)
        raise fail(one_line(exc))
    except OSError as exc:
        _cleanup(path, existed)
        raise fail(f"cannot write {path}: {exc.strerror or one_line(exc)}")
    except BaseException:
        _cleanup(path, existed)
        raise
    return result, _plain(result.summary())


def _with_comment(header: str, lines: List[str]) -> str:
    block = "".join(f"// {line}\n" for line in lines)
    match = re.search(r"^#ifndef\b", header, flags=re.M)
    if match is None:
        return block + header
    return header[: match.start()] + block + header[match.start():]


def _write_atomic(path: str, text: str):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".micronets-", suffix=".h.tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _cleanup(path: str, existed: bool):
    if not existed and os.path.exists(path):
        with contextlib.suppress(OSError):
            os.unlink(path)


# ---------------------------------------------------------------------------- printing
def print_summary(console, summary: Dict[str, Any], output: Optional[str] = None, title: Optional[str] = None):
    from rich.table import Table

    if title:
        console.print(title, markup=False, soft_wrap=True)
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Architecture", str(summary.get("arch")))
    table.add_row("C++ class", str(summary.get("classname")))
    table.add_row("Input", shape_text(summary["input_shape"]))
    table.add_row("Classes", str(summary["num_classes"]))
    table.add_row("MACs", f"{int(summary['macs']):,}")
    table.add_row("Parameters", f"{int(summary['params']):,}")
    table.add_row("Weights (flash)", human_bytes(summary["weights_bytes"]))
    table.add_row("Arena (RAM)", human_bytes(summary["arena_bytes"]))
    if "object_bytes" in summary:
        table.add_row("Object (sizeof)", human_bytes(summary["object_bytes"]))
    console.print(table)
    if output:
        console.print(f"Header           {os.path.abspath(output)}", markup=False, soft_wrap=True)


def print_layers(console, summary: Dict[str, Any]):
    from rich.table import Table

    table = Table(title=f"{summary.get('arch')}: layers", title_justify="left", show_footer=True)
    table.add_column("#", justify="right", footer="")
    table.add_column("name", no_wrap=True, footer="total")
    table.add_column("op", footer="")
    table.add_column("output", footer="")
    table.add_column("MACs", justify="right", footer=f"{int(summary['macs']):,}")
    table.add_column("params", justify="right", footer=f"{int(summary['params']):,}")
    table.add_column("arena offset", justify="right", footer="")
    table.add_column("bytes", justify="right", footer=f"{int(summary['arena_bytes']):,}")
    for i, layer in enumerate(summary.get("layers", [])):
        offset = layer.get("arena_offset")
        table.add_row(
            str(i),
            str(layer.get("name")),
            str(layer.get("op")),
            shape_text(layer.get("output_shape") or []),
            f"{int(layer.get('macs') or 0):,}",
            f"{int(layer.get('params') or 0):,}",
            "-" if offset is None else f"{int(offset):,}",
            f"{int(layer.get('arena_bytes') or 0):,}",
        )
    console.print(table)


def print_verdict(console, v: Dict[str, Any]):
    def line(kind, needed, available, margin, detail):
        if margin >= 0:
            return f"  {kind}: fits, needs {needed:,} of {available:,} bytes ({detail}); margin {margin:,} bytes"
        return f"  {kind}: does NOT fit, needs {needed:,} of {available:,} bytes ({detail}); short by {-margin:,} bytes"

    head = "fits" if v["fits"] else "does NOT fit"
    console.print(f"[bold]{v['name']}[/bold] ({v['board']}): the model {head}")
    console.print(line("RAM", v["ram_needed"], v["ram_available"], v["ram_margin"],
                       f"object {v['ram_object_bytes']:,} + uint8 input frame {v['ram_input_frame_bytes']:,}"),
                  markup=False)
    console.print(line("Flash", v["flash_needed"], v["flash_available"], v["flash_margin"],
                       f"weights {v['flash_weights_bytes']:,} + code allowance {v['flash_code_allowance']:,}"),
                  markup=False)


def print_boards(console):
    from rich.table import Table

    table = Table(title="Known boards (micronets info --arch ARCH --board NAME)")
    table.add_column("name", no_wrap=True)
    table.add_column("board")
    table.add_column("RAM for the model", justify="right")
    table.add_column("flash", justify="right")
    table.add_column("code allowance", justify="right")
    for b in BOARDS.values():
        table.add_row(b.key, b.name, f"{b.ram_bytes // KB:,} KB", f"{b.flash_bytes // KB:,} KB",
                      f"{b.code_allowance // KB:,} KB")
    console.print(table)
    console.print("Assumptions:", markup=False)
    for b in BOARDS.values():
        console.print(f"  {b.key}: RAM {b.ram_note}; flash {b.flash_note}.", markup=False)
    console.print("RAM needed = the model object (arena + outputs, sizeof(net)) + one uint8 HxWxC input "
                  "frame; flash needed = weights + the code allowance.", markup=False)


# ---------------------------------------------------------------------------- the group
class OneLineErrors:
    """Mixin for click commands and groups: errors are one line on stderr (no usage block, no
    traceback) and a non-zero exit status."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            click.echo(f"Error: {one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Error: aborted", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # a bug or an unforeseen failure: still one line
            if os.environ.get("MICRONETS_DEBUG"):
                raise
            click.echo(f"Error: {type(exc).__name__}: {one_line(exc)} (set MICRONETS_DEBUG=1 for the traceback)",
                       err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


class MicronetsGroup(OneLineErrors, click.Group):
    """The ``micronets`` command group."""


class OneLineCommand(OneLineErrors, click.Command):
    """A stand-alone command (e.g. ``python -m micronets.demo``) with the CLI's error style."""


ARCH_HELP = (
    f"Architecture: {', '.join(ARCHS)}, or a saved Keras model file (.keras; one saved by "
    "micronets keeps its hyperparameters)."
)


def _arch_option(required=True):
    return click.option("--arch", "-a", required=required, metavar="ARCH", help=ARCH_HELP)


def _input_option(extra=""):
    return click.option("--input", "input_shape", type=INPUT_SHAPE, default=None,
                        help="Input shape HxWxC, e.g. 32x32x1 (default: the architecture's own, 96x96x1 for "
                             "the MobileNets, the preset's resolution for PhiNet)." + extra)


def _classes_option():
    return click.option("--classes", "-c", type=click.IntRange(min=2), default=None,
                        help="Number of classes (default 10).")


def _batch_norm_option(default=None, extra=""):
    return click.option("--batch-norm/--no-batch-norm", "batch_norm", default=default,
                        help="MobileNet sizes only: build with BatchNormalization after each conv "
                             "(folded into the weights by the compiler)." + extra)


def _name_option():
    return click.option("--name", "-n", "classname", callback=_check_classname, default=None,
                        help="C++ class name (default: the architecture's, e.g. PicoMobileNet).")


@click.group(cls=MicronetsGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(micronets.__version__, "--version", "-V", prog_name="micronets",
                      message="%(prog)s %(version)s")
def main():
    """Tiny Keras image classifiers compiled to one ANSI C++ header for microcontrollers.

    \b
    Examples:
      micronets gen --arch pico -o model.h
      micronets info --arch phinet-2m --board esp32-s3
      micronets train --arch pico --data photos/ --input 48x48x1 -o model.h
    """
    if not os.environ.get("MICRONETS_DEBUG"):
        warnings.filterwarnings("ignore")


# ---------------------------------------------------------------------------- gen
@main.command()
@_arch_option()
@_classes_option()
@_input_option()
@click.option("--weights", "-w", type=click.Path(dir_okay=False), default=None,
              help="Trained weights to load (.weights.h5, or a .keras file/checkpoint saved by micronets). "
                   "Without it the model is freshly initialised.")
@_batch_norm_option(extra=" With --weights and neither flag given, both variants are tried.")
@_name_option()
@click.option("--output", "-o", default="model.h", show_default=True, type=click.Path(dir_okay=False),
              help="Header file to write (written atomically: nothing is left behind on error).")
def gen(arch, classes, input_shape, weights, batch_norm, classname, output):
    """Generate the C++ header of a model.

    \b
    Examples:
      micronets gen --arch pico -o model.h
      micronets gen --arch milli --classes 4 --input 64x64x3 --weights best.weights.h5 --name Gesture -o gesture.h
      micronets gen --arch my_model.keras -o model.h
    """
    check_arch(arch)
    _check_output(output)
    resolved = resolve(arch, classes, input_shape, batch_norm, weights)
    _, summary = export_header(resolved, output, classname)
    print_summary(_console(), summary, output, title=f"Wrote {output}")


# ---------------------------------------------------------------------------- info
def _board_eager(ctx, param, value):
    if value is not None and value.lower() == "list":
        print_boards(_console())
        ctx.exit(0)
    return value.lower() if value else None


@main.command()
@_arch_option()
@_classes_option()
@_input_option()
@click.option("--weights", "-w", type=click.Path(dir_okay=False), default=None,
              help="Trained weights to load first (changes nothing in the sizes, but checks they fit).")
@_batch_norm_option()
@_name_option()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the compiler's summary, plus "
                                                      "'board' with --board) instead of tables.")
@click.option("--board", "-b", type=click.Choice(list(BOARDS) + ["list"], case_sensitive=False), default=None,
              is_eager=True, callback=_board_eager, help=BOARD_HELP)
def info(arch, classes, input_shape, weights, batch_norm, classname, as_json, board):
    """Show a model's layers, MACs, parameters and memory plan (and whether it fits a board).

    \b
    Examples:
      micronets info --arch pico
      micronets info --arch base --input 64x64x1 --board stm32f446re
      micronets info --arch phinet-5m --classes 4 --json
      micronets info --board list
    """
    check_arch(arch)
    resolved = resolve(arch, classes, input_shape, batch_norm, weights)
    _, summary = compile_summary(resolved, classname)
    verdict = board_verdict(summary, BOARDS[board]) if board else None
    if as_json:
        out = dict(summary)
        if verdict is not None:
            out["board"] = verdict
        click.echo(json.dumps(out, indent=2))
        return
    console = _console()
    print_layers(console, summary)
    print_summary(console, summary, title="Totals")
    if verdict is not None:
        print_verdict(console, verdict)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the boards as one JSON object.")
def boards(as_json):
    """List the boards that 'micronets info --board' knows, with the RAM and flash assumed.

    \b
    Examples:
      micronets boards
      micronets info --arch pico --board stm32f446re
    """
    if as_json:
        click.echo(json.dumps({k: b.to_dict() for k, b in BOARDS.items()}, indent=2))
    else:
        print_boards(_console())


# ---------------------------------------------------------------------------- train
def split_train_val(y, val_split: float, seed: int = 0):
    """Stratified index split: ``round(n * val_split)`` of each class (at least one when n >= 2)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_val = int(round(len(idx) * val_split))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        else:
            n_val = 0
        val_idx.extend(idx[:n_val])
        train_idx.extend(idx[n_val:])
    return np.array(sorted(train_idx), dtype=np.int64), np.array(sorted(val_idx), dtype=np.int64)


@main.command()
@click.option("--arch", "-a", required=True, metavar="ARCH",
              help=f"Architecture: {', '.join(ARCHS)}, or a .keras file saved by micronets to train further.")
@click.option("--data", "-d", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False, readable=True),
              help="Folder with one subfolder of images per class (png, jpg, bmp, ...); the sorted subfolder "
                   "names are the class names.")
@click.option("--epochs", "-e", type=click.IntRange(min=1), default=10, show_default=True, help="Training epochs.")
@_input_option(extra=" Images are resized to it and converted to gray (C=1) or RGB (C=3).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Batch size.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="Adam learning rate.")
@click.option("--val-split", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.2,
              show_default=True, help="Share of each class held out to pick the best epoch and report accuracy.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (split, initialisation, shuffling).")
@_batch_norm_option(default=True, extra=" On by default for training.")
@_name_option()
@click.option("--save", "save_path", type=click.Path(dir_okay=False), default=None,
              help="Also save the trained net as a .keras file (reload with 'micronets gen --arch FILE').")
@click.option("--output", "-o", default="model.h", show_default=True, type=click.Path(dir_okay=False),
              help="Header file to write after training.")
def train(arch, data_dir, epochs, input_shape, batch_size, lr, val_split, seed, batch_norm, classname,
          save_path, output):
    """Train a model on a folder of images and export its header.

    The best epoch by held-out accuracy is kept (checkpointed in a temporary folder), its accuracy
    printed, and the header written with the class names in a comment at its top.

    \b
    Examples:
      micronets train --arch pico --data photos/ --input 48x48x1 --epochs 20 -o model.h
      micronets train --arch phinet-2m --data flowers/ --input 64x64x3 --save flowers.keras -o flowers.h
    """
    from micronets.data import load_image_folder

    arch = check_arch(arch)
    _check_output(output)
    if save_path is not None:
        if not save_path.endswith(".keras"):
            raise fail(f"--save writes a .keras file; got {save_path}")
        _check_output(save_path)
    console = _console()

    # The shape to load images at: --input, else the architecture's default.
    if arch in MOBILENET_ARCHS or arch in PHINET_ARCHS:
        if input_shape is None:
            input_shape = _default_shape(arch)
        shape = tuple(input_shape)
    else:
        shape = None
    if shape is not None and shape[2] not in (1, 3):
        raise fail(f"--input {shape_text(shape)}: training images load as 1 (gray) or 3 (RGB) channels")

    keras = import_keras()
    if shape is None:  # a saved micronets net: its own shape and classes
        resolved = resolve(arch, None, input_shape, batch_norm)
        if resolved.net is None:
            raise fail(f"{arch} was not saved by micronets; train needs an architecture name or a micronets .keras file")
        shape = resolved.input_shape
    try:
        x, y, class_names = load_image_folder(data_dir, shape)
    except ValueError as exc:
        raise fail(one_line(exc))
    console.print(f"Loaded {len(x):,} images of {shape_text(shape)} in {len(class_names)} classes: "
                  + ", ".join(f"{i}={name}" for i, name in enumerate(class_names)), markup=False)
    train_idx, val_idx = split_train_val(y, val_split, seed)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise fail(f"too few images in {data_dir} to hold out a validation split (need at least 2 per class)")

    keras.utils.set_random_seed(seed)
    if arch in MOBILENET_ARCHS or arch in PHINET_ARCHS:
        resolved = resolve(arch, len(class_names), shape, batch_norm)
    elif resolved.num_classes != len(class_names):
        raise fail(f"{arch} has {resolved.num_classes} classes but {data_dir} holds {len(class_names)}")
    net = resolved.net
    net.config.learning_rate = lr
    net.config.batch_size = batch_size
    net.config.verbosity = 1 if sys.stdout.isatty() else 2
    console.print(f"Training {net.describe()} ({net.count_params():,} parameters) on {len(train_idx):,} images, "
                  f"holding out {len(val_idx):,}, for {epochs} epochs", markup=False)
    with tempfile.TemporaryDirectory(prefix="micronets-train-") as tmp:
        net.config.checkpoint_path = os.path.join(tmp, "best.keras")
        try:
            net.fit(x[train_idx], y[train_idx], x[val_idx], y[val_idx], epochs=epochs)
        except ValueError as exc:
            raise fail(f"training failed: {one_line(exc)}")
        net.config.checkpoint_path = None
        accuracy = net.evaluate(x[val_idx], y[val_idx])
    console.print(f"Held-out accuracy: {accuracy * 100:.1f}% ({len(val_idx)} images)", markup=False)

    comment = [
        f"Trained by 'micronets train' on {data_dir}: held-out accuracy {accuracy * 100:.1f}% "
        f"({len(val_idx)} images)",
        "Classes (output index: name): " + ", ".join(f"{i}: {name}" for i, name in enumerate(class_names)),
    ]
    _, summary = export_header(resolved, output, classname, comment=comment)
    if save_path is not None:
        try:
            net.save(save_path)
        except OSError as exc:
            raise fail(f"cannot write {save_path}: {exc.strerror or one_line(exc)}")
        console.print(f"Saved the trained net to {save_path}", markup=False)
    print_summary(console, summary, output, title=f"Wrote {output}")
    console.print("Classes: " + ", ".join(f"{i}={name}" for i, name in enumerate(class_names)), markup=False)


def _default_shape(arch):
    if arch in MOBILENET_ARCHS:
        from micronets.models.mobilenet import MOBILENETS

        return tuple(MOBILENETS[arch].default_input_shape)
    import_keras()
    return tuple(_phinet(arch, 10, None).input_shape)


if __name__ == "__main__":
    main()
