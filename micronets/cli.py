"""The ``micronets`` command line: generate, inspect, train and evaluate models, check board fit.

A thin layer of commands: the boards live in :mod:`micronets.boards`, the architectures in
:mod:`micronets.models`, training and evaluation in :mod:`micronets.train`.

Every command prints a short human summary (rich) on stdout; errors exit non-zero with one line
``Error: ...`` on stderr and never leave a partial output file behind; Ctrl-C exits 130 with
``Error: interrupted``. TensorFlow is imported only by the commands that need it, so
``micronets --help`` and ``micronets boards`` answer at once. Set ``MICRONETS_DEBUG=1`` to see the
full traceback of an unexpected error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import sys
import warnings
from typing import Any, Dict, List, Optional, Tuple

import click

import micronets
from micronets.boards import BOARD_HELP, BOARD_NAMES, BOARDS, KB, MB, Board, board_verdict, find_board  # noqa: F401
from micronets.data import shape_text
from micronets.models import ARCHS, MOBILENET_ARCHS

MODEL_FILE_SUFFIXES = (".keras", ".h5")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    from micronets.compiler.export import check_writable

    try:
        return check_writable(path)
    except OSError as exc:
        raise fail(one_line(exc))


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
    input_shape: Tuple[int, ...]  # (H, W, C) for an image model; (L, C) or (N,) for sequences and vectors (the first input's)
    num_classes: int  # the first output's size



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


def _make_net(arch, classes, input_shape, batch_norm):
    from micronets.models import make_net

    try:
        return make_net(arch, classes, input_shape, batch_norm)
    except ImportError as exc:
        raise fail(f"{arch} is not available in this installation ({one_line(exc)})")


def _load_model_file(path, classes, input_shape):
    keras = import_keras()
    from micronets.compiler.compile import model_shapes
    from micronets.train import describe_model_file_error

    net = None
    try:
        net = micronets.load(path)
        model = net.model
    except ValueError as exc:
        if "not a net saved by micronets" not in str(exc):
            raise fail(f"cannot load {path}: {one_line(exc)}")
        try:  # not saved by micronets: any Keras model file
            model = keras.models.load_model(path, compile=False)
        except Exception as err:
            raise fail(f"cannot load {path}: {describe_model_file_error(path, err)}")
    except Exception as exc:
        raise fail(f"cannot load {path}: {describe_model_file_error(path, exc)}")
    shapes = model_shapes(model)
    n_out = int(model_shapes(model, "output")[0][-1])
    if input_shape is not None and [tuple(input_shape)] != shapes:
        raise fail(f"{path} is a saved model with input{'s' if len(shapes) > 1 else ''} "
                   f"{', '.join(map(shape_text, shapes))}; --input {shape_text(input_shape)} cannot change it")
    if classes is not None and classes != n_out:
        raise fail(f"{path} is a saved model with {n_out} classes; --classes {classes} cannot change it")
    return net, model


def _saved_net(arch, weights, classes, input_shape, batch_norm):
    """``--weights FILE.keras`` saved by micronets: the net it records (hyperparameters included),
    checked against ``--arch`` and any --input/--classes/--batch-norm given; None for other files."""
    import zipfile

    from micronets.models import arch_class

    if not zipfile.is_zipfile(weights):
        return None
    try:
        with zipfile.ZipFile(weights) as zf:
            if "micronets.json" not in zf.namelist():
                return None
    except (zipfile.BadZipFile, OSError):
        return None
    try:
        net = micronets.load(weights)
    except Exception as exc:
        raise fail(f"cannot load {weights}: {one_line(exc)}")
    if type(net) is not arch_class(arch):
        raise fail(f"{weights} holds a {type(net).__name__} ({net.describe()}), not {arch}; "
                   f"use --arch {weights} to export it as it is")
    if input_shape is not None and tuple(input_shape) != tuple(net.input_shape):
        raise fail(f"{weights} records input {shape_text(net.input_shape)}; --input {shape_text(input_shape)} "
                   "does not match it")
    if classes is not None and classes != net.num_classes:
        raise fail(f"{weights} records {net.num_classes} classes; --classes {classes} does not match it")
    recorded_bn = getattr(net, "batch_norm", None)
    if batch_norm is not None and recorded_bn is not None and bool(batch_norm) != recorded_bn:
        raise fail(f"{weights} records batch_norm={recorded_bn}; --{'no-' if not batch_norm else ''}batch-norm "
                   "does not match it")
    return net


def resolve(arch: str, classes: Optional[int] = None, input_shape=None, batch_norm: Optional[bool] = None,
            weights: Optional[str] = None) -> Resolved:
    """Build (or load) the model that ``--arch`` names, optionally with ``--weights`` loaded."""
    arch = check_arch(arch)
    if weights is not None and not os.path.isfile(weights):
        raise fail(f"weights file not found: {weights}")
    import_keras()
    saved = None
    if weights is not None and arch in ARCHS:
        saved = _saved_net(arch, weights, classes, input_shape, batch_norm)
    if saved is not None:  # a .keras file saved by micronets: its recorded hyperparameters and weights
        net, model = saved, saved.model
    elif arch in ARCHS:
        try:
            net = _make_net(arch, classes, input_shape, batch_norm)
            net.build()
        except click.ClickException:
            raise
        except (ValueError, TypeError) as exc:
            raise fail(f"cannot build {arch}: {one_line(exc)}")
        model = net.model
    else:
        net, model = _load_model_file(arch, classes, input_shape)

    if weights is not None and saved is None:
        net, model = _load_weights(arch, net, model, weights, classes, input_shape, batch_norm)

    from micronets.compiler.compile import model_shapes

    shape = model_shapes(model)[0]
    if net is not None:
        label, classname = net.describe(), net.arch_name
    else:
        base = os.path.basename(arch)
        label = f"{base} ({model.name})"
        classname = "Net"
    return Resolved(model, net, label, classname, shape, int(model_shapes(model, "output")[0][-1]))


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
        other = _make_net(arch, classes, input_shape, True)
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
    return result, result.summary()


def export_header(resolved: Resolved, path: str, classname: Optional[str]):
    """Write the header (atomically: nothing is left behind on error), with the class names the
    net records."""
    names = getattr(resolved.net, "class_names", None) if resolved.net is not None else None
    options = {"class_names": list(names)} if names else {}
    try:
        result = micronets.export(resolved.model, path, classname=classname or resolved.classname,
                                  arch=resolved.label, **options)
    except ValueError as exc:
        raise fail(one_line(exc))
    except OSError as exc:
        raise fail(f"cannot write {path}: {exc.strerror or one_line(exc)}")
    return result, result.summary()


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
    shapes = summary.get("input_shapes") or [summary["input_shape"]]
    table.add_row("Inputs" if len(shapes) > 1 else "Input", ", ".join(map(shape_text, shapes)))
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
    # the name folds (a .tflite's fused TensorFlow names run to 100 characters); the figures never do
    table.add_column("#", justify="right", footer="", no_wrap=True)
    table.add_column("name", overflow="fold", footer="total")
    table.add_column("op", footer="")
    table.add_column("output", footer="", no_wrap=True)
    table.add_column("MACs", justify="right", footer=f"{int(summary['macs']):,}", no_wrap=True)
    table.add_column("params", justify="right", footer=f"{int(summary['params']):,}", no_wrap=True)
    table.add_column("arena offset", justify="right", footer="", no_wrap=True)
    table.add_column("bytes", justify="right", footer=f"{int(summary['arena_bytes']):,}", no_wrap=True)
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
        for k, stage in enumerate(layer.get("stages") or []):  # a stream's layers: each its ring, no whole map
            ring = stage.get("ring_offset")
            table.add_row(
                f"{i}.{k}",
                "  " + str(stage.get("name")),
                str(stage.get("op")) + (f", ring of {stage['ring_rows']} row{'s' if stage['ring_rows'] > 1 else ''}"
                                        if stage.get("ring_rows") else ", int32 accumulators" if stage.get("sums_bytes") else ""),
                shape_text(stage.get("output_shape") or []),
                f"{int(stage.get('macs') or 0):,}",
                f"{int(stage.get('params') or 0):,}",
                "-" if ring is None else f"{int(ring):,}",
                f"{int(stage.get('ring_bytes') or stage.get('sums_bytes') or 0):,}",
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
    if v.get("note"):
        console.print(f"  Note: {v['note']}", markup=False)


def print_boards(console):
    from rich.table import Table

    table = Table(title="Known boards (micronets info --arch ARCH --board NAME)")
    table.add_column("name", no_wrap=True)
    table.add_column("board")
    table.add_column("RAM for the model", justify="right")
    table.add_column("flash", justify="right")
    table.add_column("code allowance", justify="right")
    table.add_column("FPU")
    table.add_column("also accepted")
    for b in BOARDS.values():
        table.add_row(b.key, b.name, f"{b.ram_bytes // KB:,} KB", f"{b.flash_bytes // KB:,} KB",
                      f"{b.code_allowance // KB:,} KB", "yes" if b.fpu else "no (float emulated)", ", ".join(b.aliases))
    console.print(table)
    console.print("Assumptions:", markup=False)
    for b in BOARDS.values():
        console.print(f"  {b.key}: RAM {b.ram_note}; flash {b.flash_note}.", markup=False)
    console.print("RAM needed = the model object (arena + outputs, sizeof(net)) + one uint8 HxWxC input "
                  "frame; flash needed = weights + the code allowance.", markup=False)


# ---------------------------------------------------------------------------- the group
class Interrupted(click.ClickException):
    """Ctrl-C: one line on stderr and the shell's exit status for SIGINT."""

    exit_code = 130

    def __init__(self):
        super().__init__("interrupted")


class OneLineErrors:
    """Mixin for click commands and groups: errors are one line on stderr (no usage block, no
    traceback) and a non-zero exit status; Ctrl-C exits 130 with ``Error: interrupted``."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # before click turns it into Abort (and echoes a blank line)
            raise Interrupted() from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        from micronets.models.base import catching_interrupts

        try:
            with catching_interrupts():  # a Ctrl-C that library code swallows still stops training
                rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            click.echo(f"Error: {one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort as exc:
            if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
                click.echo("Error: interrupted", err=True)
                sys.exit(130)
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


# ---------------------------------------------------------------------------- int8
def _int8_options(fn):
    fn = click.option("--layer-by-layer", is_flag=True,
                      help="int8: run every layer whole, never chains of layers row by row (depth first): a "
                           "larger arena, a few per cent fewer instructions on some nets.")(fn)
    fn = click.option("--calibration", type=click.Path(exists=True), default=None,
                      help="int8: representative inputs, a .npy array (N, H, W, C) as the model takes them or a "
                           "folder of images (pixel / 255; the pixels 0..255 for a model that starts with its "
                           "own Rescaling); for a model of several inputs an .npz of one array per input (np.savez).")(fn)
    return click.option("--int8", is_flag=True, help="Quantise to int8 with TFLite's converter (needs --calibration); "
                                                     "a .tflite model is always int8.")(fn)


def _check_layer_by_layer(layer_by_layer, int8_header):
    if layer_by_layer and not int8_header:
        raise fail("--layer-by-layer is for int8 headers (a .tflite model, or --int8 --calibration); "
                   "float32 layers are never streamed")


def _positional_model(arch, model):
    """(arch, tflite) from gen's / info's MODEL argument: a saved Keras model (.keras, .h5) stands
    for --arch; any other file is read as an int8 .tflite flatbuffer (whatever its suffix)."""
    if model is None or not model.lower().endswith(MODEL_FILE_SUFFIXES):
        return arch, model
    if arch:
        raise fail(f"give the model once: --arch {arch} and {model}")
    return model, None


def _int8_cli(command, tflite, **options):
    """The int8 work of gen / info (micronets.compiler.int8.cli_run), its errors as one line."""
    from micronets.compiler.int8 import cli_run

    try:
        return cli_run(command, tflite, **options)
    except (ValueError, FileNotFoundError) as exc:
        raise fail(one_line(exc))
    except OSError as exc:
        raise fail(one_line(exc))


# ---------------------------------------------------------------------------- gen
@main.command()
@_arch_option(required=False)
@_classes_option()
@_input_option()
@click.option("--weights", "-w", type=click.Path(dir_okay=False), default=None,
              help="Trained weights to load (.weights.h5, or a .keras file/checkpoint saved by micronets). "
                   "Without it the model is freshly initialised.")
@_batch_norm_option(extra=" With --weights and neither flag given, both variants are tried.")
@_name_option()
@click.option("--output", "-o", default="model.h", show_default=True, type=click.Path(dir_okay=False),
              help="Header file to write (written atomically: nothing is left behind on error).")
@click.option("--sketch", "sketch_dir", type=click.Path(file_okay=False), default=None,
              help="Write a ready-to-build Arduino/PlatformIO sketch folder instead of one header (float32, or "
                   "int8 from a .tflite or with --int8 --calibration): "
                   "DIR/DIR.ino, DIR/model.h, DIR/sample_image.h, DIR/platformio.ini (see docs/device.md).")
@click.option("--board", "-b", default=None, metavar="NAME",
              help="With --sketch: the board the sketch's platformio.ini builds for (a key of `micronets boards` "
                   "or a PlatformIO name such as nucleo_f446re); default: every listed board.")
@click.argument("tflite", metavar="[MODEL.tflite|MODEL.keras]", required=False, type=click.Path(dir_okay=False))
@_int8_options
def gen(arch, classes, input_shape, weights, batch_norm, classname, output, sketch_dir, board, tflite, int8,
        calibration, layer_by_layer):
    """Generate the C++ header of a model (float32, or int8 from a .tflite or with --int8), or a whole
    sketch folder (--sketch).

    \b
    Examples:
      micronets gen --arch pico -o model.h
      micronets gen --arch milli --classes 4 --input 64x64x3 --weights best.weights.h5 --name Gesture -o gesture.h
      micronets gen --arch my_model.keras -o model.h
      micronets gen --arch pico --input 32x32x1 --sketch Digits --board nucleo_f446re
      micronets gen model.tflite -o model.h                 # a fully-int8 .tflite, TFLM-exact
      micronets gen --arch pico --int8 --calibration images/ -o model.h
      micronets gen model.tflite --sketch Digits8 --board pico   # an int8 sketch (also with --int8 --calibration)
      micronets gen model.tflite --layer-by-layer -o model.h  # int8, more RAM for a little more speed
      micronets gen my_model.keras -o model.h              # same as --arch my_model.keras
    """
    arch, tflite = _positional_model(arch, tflite)
    is_tflite = bool(tflite or (arch and arch.lower().endswith(".tflite")))
    _check_layer_by_layer(layer_by_layer, is_tflite or int8 or calibration is not None)
    if sketch_dir is not None or board is not None:
        from micronets import sketch

        tflite = tflite or (arch if arch and arch.lower().endswith(".tflite") else None)
        if tflite is None:
            if not arch:
                raise fail("give --arch ARCH, or a .tflite model file")
            check_arch(arch)
        sketch.gen_command(click.get_current_context(), arch, classes, input_shape, weights, batch_norm,
                           classname, sketch_dir, board, tflite=tflite, int8=int8, calibration=calibration,
                           layer_by_layer=layer_by_layer)
        return
    if tflite or (arch and arch.lower().endswith(".tflite")):
        _check_output(output)
        summary = _int8_cli("gen", tflite or arch, output=output, classname=classname, stream=not layer_by_layer)
        print_summary(_console(), summary, output, title=f"Wrote {output} (int8)")
        return
    if not arch:
        raise fail("give --arch ARCH, or a .tflite model file")
    check_arch(arch)
    _check_output(output)
    resolved = resolve(arch, classes, input_shape, batch_norm, weights)
    if int8 or calibration:
        summary = _int8_cli("gen", None, output=output, classname=classname or resolved.classname, int8=int8,
                            calibration=calibration, model=resolved.model, arch=resolved.label,
                            stream=not layer_by_layer)
        print_summary(_console(), summary, output, title=f"Wrote {output} (int8)")
        return
    _, summary = export_header(resolved, output, classname)
    print_summary(_console(), summary, output, title=f"Wrote {output}")


# ---------------------------------------------------------------------------- info
def _board_eager(ctx, param, value):
    if value is not None and value.lower() == "list":
        print_boards(_console())
        ctx.exit(0)
    return value.lower() if value else None


def supported_text() -> str:
    """What the compiler converts: Keras layers, keras.ops operations, activations, and the
    operators of a fully-int8 .tflite."""
    import textwrap

    from micronets.compiler import supported_layers, supported_operations
    from micronets.compiler.activations import supported as supported_activations
    from micronets.compiler.tflite import SUPPORTED as tflite_operators

    parts = [("Keras layers", supported_layers()), ("keras.ops in functional graphs", supported_operations()),
             ("activations (activation= and Activation layers)", supported_activations())]
    traced = ("Lambda layers and your own Layer subclasses: their function / call() is traced through the keras.ops "
              "and layers above.")
    int8 = ("int8 (the operators of a fully-int8 .tflite: a file's, or those TFLite's converter makes of a Keras "
            "model with --int8)", sorted(tflite_operators))

    def listed(title, names):
        return f"{title}:\n" + textwrap.fill(", ".join(names), 100, initial_indent="  ", subsequent_indent="  ")

    return "\n\n".join([listed(*part) for part in parts] + [textwrap.fill(traced, 100), listed(*int8)])


def _layers_eager(ctx, param, value):
    if value:
        click.echo(supported_text())
        ctx.exit(0)
    return value


@main.command()
@click.option("--layers", is_flag=True, is_eager=True, expose_value=False, callback=_layers_eager,
              help="List the Keras layers, keras.ops and activations the compiler supports, and exit.")
@_arch_option(required=False)
@_classes_option()
@_input_option()
@click.option("--weights", "-w", type=click.Path(dir_okay=False), default=None,
              help="Trained weights to load first (changes nothing in the sizes, but checks they fit).")
@_batch_norm_option()
@_name_option()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the compiler's summary, plus "
                                                      "'board' with --board) instead of tables.")
@click.option("--board", "-b", type=click.Choice(list(BOARD_NAMES) + ["list"], case_sensitive=False), default=None,
              is_eager=True, callback=_board_eager, help=BOARD_HELP)
@click.argument("tflite", metavar="[MODEL.tflite|MODEL.keras]", required=False, type=click.Path(dir_okay=False))
@_int8_options
def info(arch, classes, input_shape, weights, batch_norm, classname, as_json, board, tflite, int8, calibration,
         layer_by_layer):
    """Show a model's layers, MACs, parameters and memory plan (and whether it fits a board).

    \b
    Examples:
      micronets info --arch pico
      micronets info --arch base --input 64x64x1 --board stm32f446re
      micronets info --arch phinet-5m --classes 4 --json
      micronets info --board list
      micronets info --layers
      micronets info model.tflite                 # int8: weights, arena, per-layer scales
      micronets info model.tflite --layer-by-layer   # the arena without depth-first streams
      micronets info my_model.keras               # same as --arch my_model.keras
    """
    arch, tflite = _positional_model(arch, tflite)
    is_tflite = bool(tflite or (arch and arch.lower().endswith(".tflite")))
    _check_layer_by_layer(layer_by_layer, is_tflite or int8 or calibration is not None)
    if is_tflite:
        summary = _int8_cli("info", tflite or arch, classname=classname, stream=not layer_by_layer)
    elif not arch:
        raise fail("give --arch ARCH, or a .tflite model file")
    else:
        check_arch(arch)
        resolved = resolve(arch, classes, input_shape, batch_norm, weights)
        if int8 or calibration:
            summary = _int8_cli("info", None, classname=classname or resolved.classname, int8=int8,
                                calibration=calibration, model=resolved.model, arch=resolved.label,
                                stream=not layer_by_layer)
        else:
            _, summary = compile_summary(resolved, classname)
    verdict = board_verdict(summary, find_board(board)) if board else None
    if as_json:
        out = dict(summary)
        if verdict is not None:
            out["board"] = verdict
        click.echo(json.dumps(out, indent=2))
        return
    console = _console()
    print_layers(console, summary)
    if summary.get("quantize") == "int8":
        from micronets.compiler.int8 import scales_text

        console.print(scales_text(summary), markup=False, soft_wrap=True)
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


# ---------------------------------------------------------------------------- train / eval
def _print_report(console, report):
    for line in report.lines():
        console.print(line, markup=False, soft_wrap=True)


def _near_chance(report):
    verdict = report.verdict()
    if verdict is not None:  # the files are written; the exit status says they are not worth flashing
        raise click.ClickException(verdict) from None


_DEFAULTS = micronets.TrainingConfig()


@main.command()
@click.option("--arch", "-a", required=True, metavar="ARCH",
              help=f"Architecture: {', '.join(ARCHS)}, or a .keras file saved by micronets to train further.")
@click.option("--data", "-d", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False, readable=True),
              help="Folder with one subfolder of images per class (png, jpg, bmp, gif, tif, webp; any mix of "
                   "sizes, gray, RGB, RGBA, palette or 16-bit); the sorted subfolder names are the class names.")
@click.option("--epochs", "-e", type=click.IntRange(min=1), default=None,
              help="Training epochs (default 30); the epoch with the best validation accuracy is kept.")
@_input_option(extra=" Images are centre-cropped to its aspect ratio, resized, and converted to gray (C=1) "
                     "or RGB (C=3).")
@click.option("--batch-size", type=click.IntRange(min=1), default=_DEFAULTS.batch_size, show_default=True,
              help="Batch size.")
@click.option("--lr", type=click.FloatRange(min=0, max=10, min_open=True), default=_DEFAULTS.learning_rate,
              show_default=True, help="Adam's (peak) learning rate.")
@click.option("--lr-schedule", type=click.Choice(["cosine", "constant"]), default=_DEFAULTS.lr_schedule,
              show_default=True, help="Cosine decay to 0 over the epochs, or a constant learning rate.")
@click.option("--augment/--no-augment", default=None,
              help="Random translation, zoom, rotation and contrast of training images (never part of the "
                   "exported model). Default: on below 1,000 training images per class, off above (measured: "
                   "tiny nets lose accuracy to it on large, centred data).")
@click.option("--flip", type=click.Choice(["none", "horizontal", "vertical", "horizontal_and_vertical"]),
              default="none", show_default=True,
              help="Random flips (with --augment); only when a flipped image is still the same class.")
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=_DEFAULTS.label_smoothing,
              show_default=True, help="Label smoothing of the cross-entropy targets.")
@click.option("--mixup", type=click.FloatRange(min=0, max=100), default=_DEFAULTS.mixup_alpha, show_default=True,
              help="Mixup alpha (images mixed in pairs with Beta(alpha, alpha) weights); 0 turns it off.")
@click.option("--val-split", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.15,
              show_default=True, help="Share of each class held out to pick the best epoch.")
@click.option("--test-split", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.15,
              show_default=True, help="Share of each class held out for the final test report only.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (split, initialisation, shuffling).")
@_batch_norm_option(default=True, extra=" On by default for training.")
@_name_option()
@click.option("--save", "save_path", type=click.Path(dir_okay=False), default=None,
              help="Also save the trained net (class names included) as a .keras file; reload with "
                   "'micronets gen --arch FILE' or 'micronets eval FILE'.")
@click.option("--plots/--no-plots", default=True, show_default=True,
              help="Write MODEL_confusion.png and MODEL_training.png beside the header.")
@click.option("--int8", is_flag=True,
              help="Write an int8 header (TFLite's converter, calibrated on 300 training images) to -o and the "
                   "float32 one beside it as MODEL_float.h; the report gives Keras float, C++ float and C++ int8 "
                   "test accuracy side by side.")
@click.option("--output", "-o", default="model.h", show_default=True, type=click.Path(dir_okay=False),
              help="Header file to write after training; MODEL.json (the model card) goes beside it.")
@click.option("--sketch", "sketch_dir", type=click.Path(file_okay=False), default=None,
              help="Also write an Arduino/PlatformIO sketch folder of the exported model (int8 with --int8), "
                   "its sample frame a held-out test image with its true class (see docs/device.md).")
@click.option("--board", "-b", default=None, metavar="NAME",
              help="With --sketch: the board the sketch's platformio.ini builds for (as for gen --sketch).")
def train(arch, data_dir, epochs, input_shape, batch_size, lr, lr_schedule, augment, flip, label_smoothing, mixup,
          val_split, test_split, seed, batch_norm, classname, save_path, plots, int8, output, sketch_dir, board):
    """Train a model on a folder of images, export its header and report its test accuracy.

    Each class is split into training, validation (keeps the best epoch) and test images; the test
    images are used only for the final report: accuracy of the Keras model and of the compiled C++
    header (g++), per-class precision and recall, and a confusion matrix. Beside the header go
    MODEL.json (classes, input, normalisation, accuracy, MACs, RAM, flash) and two PNGs. When the
    test accuracy is near chance the files are still written, but the command says why the model is
    not worth flashing and exits with status 1.

    \b
    Examples:
      micronets train --arch pico --data photos/ --input 32x32x1 -o model.h
      micronets train --arch phinet-2m --data flowers/ --input 64x64x3 --flip horizontal --save flowers.keras -o flowers.h
      micronets train --arch pico --data photos/ --input 32x32x1 --int8 -o model.h   # + model_float.h
      micronets train --arch pico --data photos/ --input 32x32x1 --int8 --sketch Photos8 --board pico
    """
    from micronets.train import DEFAULT_EPOCHS, companion_paths, train_folder

    if val_split + test_split >= 1:
        raise fail(f"--val-split {val_split} and --test-split {test_split} leave no training images")
    arch_l = check_arch(arch)
    _check_output(output)
    if int8:
        _check_output(companion_paths(output)["float_header"])
    if board is not None and sketch_dir is None:
        raise fail("--board goes with --sketch DIR (a header alone does not depend on the board)")
    if sketch_dir is not None:
        from micronets.sketch import board_envs, check_sketch_dir

        try:
            check_sketch_dir(sketch_dir)
            board_envs(board)
        except (ValueError, OSError) as exc:
            raise fail(one_line(exc))
    if save_path is not None:
        if not save_path.endswith(".keras"):
            raise fail(f"--save writes a .keras file; got {save_path}")
        _check_output(save_path)
    if input_shape is not None and input_shape[2] not in (1, 3):
        raise fail(f"--input {shape_text(input_shape)}: training images load as 1 (gray) or 3 (RGB) channels")
    console = _console()
    import_keras()
    config = micronets.TrainingConfig(
        learning_rate=lr, batch_size=batch_size, lr_schedule=lr_schedule, augment="auto" if augment is None else augment, flip=flip,
        label_smoothing=label_smoothing, mixup_alpha=mixup, verbosity=1 if sys.stdout.isatty() else 2)
    try:
        result = train_folder(data_dir, arch_l, output, input_shape=input_shape, epochs=epochs or DEFAULT_EPOCHS,
                              config=config, batch_norm=batch_norm, val_fraction=val_split,
                              test_fraction=test_split, seed=seed, classname=classname, save=save_path,
                              plots=plots, int8=int8, sketch=sketch_dir, board=board,
                              log=lambda line: console.print(line, markup=False, soft_wrap=True))
    except ValueError as exc:
        raise fail(one_line(exc))
    except OSError as exc:
        raise fail(f"cannot write: {exc.strerror or one_line(exc)}")
    _print_report(console, result.report)
    print_summary(console, result.summary, output, title=f"Wrote {output}" + (" (int8)" if int8 else ""))
    for key, label in (("float_header", "Float header"), ("card", "Model card"), ("confusion_png", "Confusion PNG"),
                       ("curves_png", "Training PNG"), ("keras", "Saved net"), ("sketch", "Sketch folder")):
        if key in result.files:
            console.print(f"{label:<17}{os.path.abspath(result.files[key])}", markup=False, soft_wrap=True)
    if board is not None:
        from micronets.sketch import print_board_verdict

        print_board_verdict(console, result.summary, board)
    _near_chance(result.report)


@main.command(name="eval")
@click.argument("model_file", metavar="MODEL", type=click.Path(dir_okay=False))
@click.option("--data", "-d", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False, readable=True),
              help="Folder with one subfolder of images per class (the classes the model was trained on).")
@click.option("--cpp/--no-cpp", default=True, show_default=True,
              help="Also compile the model's header with g++ and report its accuracy.")
@click.option("--confusion", "confusion_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the confusion matrix as a PNG to this file (as train writes beside the header).")
def eval_(model_file, data_dir, cpp, confusion_path):
    """Report a saved model's accuracy on a folder of labelled images (same report as train).

    \b
    Examples:
      micronets eval model.keras --data test_photos/
      micronets eval model.keras --data test_photos/ --confusion confusion.png
    """
    from micronets.train import evaluate_folder

    if not os.path.isfile(model_file):
        raise fail(f"model file not found: {model_file}")
    if confusion_path:
        _check_output(confusion_path)
    console = _console()
    import_keras()
    try:
        result = evaluate_folder(model_file, data_dir, check_cpp=cpp,
                                 log=lambda line: console.print(line, markup=False, soft_wrap=True))
    except ValueError as exc:
        raise fail(one_line(exc))
    _print_report(console, result.report)
    if confusion_path:
        from micronets.compiler.export import write_atomic
        from micronets.train import confusion_png

        write_atomic(confusion_path, confusion_png(result.report, os.path.basename(model_file)))
        console.print(f"Wrote {confusion_path}", markup=False)
    _near_chance(result.report)


# ---------------------------------------------------------------------------- verify
def _verify_inputs(path, shape, raw):
    """``--inputs``: an .npy array (N, *shape) or (shape), or a folder of images (searched one
    level of class subfolders deep) loaded as the model's input, pixel / 255 (raw pixel values
    when the model starts with its own Rescaling/Normalization)."""
    import numpy as np

    from micronets.compiler.compile import pixels_as_input
    from micronets.data import IMAGE_EXTENSIONS, image_files_under, load_image

    if os.path.isdir(path):
        if len(shape) != 3 or shape[2] not in (1, 3):
            raise fail(f"--inputs {path}: a folder of images fits only an image model; this one takes {shape_text(shape)}")
        files = image_files_under(path)
        if not files:
            raise fail(f"--inputs {path}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in it or its subfolders")
        try:
            x = np.stack([load_image(f, shape) for f in files])
        except (OSError, ValueError) as exc:
            raise fail(f"--inputs {path}: {one_line(exc)}")
        return pixels_as_input(x, raw)
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise fail(f"--inputs {path}: not a numpy .npy array ({one_line(exc)})")
    x = np.asarray(x, np.float32)
    if x.shape == tuple(shape):
        x = x[None]
    if x.shape[1:] != tuple(shape) or len(x) == 0:
        raise fail(f"--inputs {path}: array of shape {x.shape} does not hold inputs of shape {shape_text(shape)}")
    return x


@main.command()
@click.argument("model_file", metavar="MODEL", type=click.Path(dir_okay=False))
@click.option("--inputs", "-i", "inputs_path", type=click.Path(exists=True), default=None,
              help="Inputs to run: an .npy array (N, ...) or a folder of images; for a model of several inputs, an "
                   ".npz of one array per input (np.savez). Default: 8 random inputs.")
@_name_option()
@click.option("--tolerance", "-t", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True,
              help="Largest difference allowed per layer, relative to max(1, largest |Keras value|) of that layer.")
def verify(model_file, inputs_path, classname, tolerance):
    """Check the compiled C++ against Keras layer by layer, on your inputs.

    Builds a debug version of the header that records every op's output, runs it with g++,
    compares each op with the Keras layer it computes and prints one row per op. Exits non-zero
    and names the first layer that diverges when any exceeds the tolerance.

    \b
    Examples:
      micronets verify model.keras
      micronets verify model.keras --inputs photos/ --tolerance 1e-5
    """
    from micronets.compiler.compile import model_shapes, takes_raw_input
    from micronets.data import load_input_arrays
    from micronets.verification import verify as run_verify

    if not os.path.isfile(model_file):
        raise fail(f"model file not found: {model_file}")
    _, model = _load_model_file(model_file, None, None)
    shapes = model_shapes(model)
    if not inputs_path:
        x = None
    elif len(shapes) > 1:
        try:
            x = load_input_arrays(inputs_path, model)
        except ValueError as exc:
            raise fail(f"--inputs {exc}")
    else:
        x = _verify_inputs(inputs_path, shapes[0], takes_raw_input(model))
    try:
        report = run_verify(model, x, classname=classname or "Net", tolerance=tolerance)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise fail(one_line(exc))
    click.echo(report.table())
    if not report.ok:
        raise SystemExit(1)


# ---------------------------------------------------------------------------- search
class _Amount(click.ParamType):
    """``--max-ram 64KB`` / ``--max-macs 5M``: text parsed by :mod:`micronets.search`."""

    def __init__(self, kind):
        self.kind = kind
        self.name = "SIZE" if kind == "bytes" else "COUNT"

    def convert(self, value, param, ctx):
        from micronets.search import parse_bytes, parse_count

        try:
            return (parse_bytes if self.kind == "bytes" else parse_count)(value, param.opts[0] if param else "value")
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _resolutions(ctx, param, value):
    try:
        out = tuple(int(v) for v in str(value).replace(" ", "").split(",") if v)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of sizes, e.g. 24,32,48")
    if not out or any(r < 4 or r > 1024 for r in out):
        raise click.BadParameter(f"{value!r}: give input sizes in 4..1024, e.g. 24,32,48")
    return out


@main.command()
@click.option("--data", "-d", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, readable=True),
              help="Folder with one subfolder of images per class; split as 'train' splits it (the test part is "
                   "used only by the final report).")
@click.option("--board", "-b", type=click.Choice(list(BOARD_NAMES), case_sensitive=False), default=None,
              help="Fit this board's RAM and flash (flash less its code allowance), as 'info --board' counts them.")
@click.option("--max-ram", type=_Amount("bytes"), default=None,
              help="RAM limit: model object (arena + outputs) + one uint8 input frame, e.g. 64KB, '64 KB' or 65536 "
                   "(KB = 1024 B). With --board, the lower of the two.")
@click.option("--max-flash", type=_Amount("bytes"), default=None, help="Flash limit for the weights, e.g. 256KB.")
@click.option("--max-macs", type=_Amount("count"), default=None, help="MAC limit, e.g. 5M or 500K.")
@click.option("--family", type=click.Choice(["phinet", "mobilenet"]), default="phinet", show_default=True,
              help="Architecture family to search.")
@click.option("--trials", type=click.IntRange(min=1), default=20, show_default=True,
              help="Candidates that fit to train, in the whole study (all workers); rejected ones do not count.")
@click.option("--epochs-per-trial", type=click.IntRange(min=1), default=3, show_default=True,
              help="Training epochs of each candidate (poor ones stop earlier).")
@click.option("--final-epochs", type=click.IntRange(min=0), default=30, show_default=True,
              help="Training epochs of the chosen candidate; 0 only reports the front (extra workers).")
@click.option("--resolutions", callback=_resolutions, default="24,32,48,64", show_default=True,
              help="Input sizes (square) to search.")
@click.option("--channels", type=click.Choice(["1", "3"]), default="1", show_default=True,
              help="Input channels: 1 (gray) or 3 (RGB).")
@click.option("--storage", default=None, metavar="URL",
              help="Optuna storage URL (default: sqlite:///OUTPUT_search.db beside the output); the same "
                   "postgresql://user:pass@host/db on several machines makes one distributed search.")
@click.option("--study", "study_name", default=None, help="Study name (default: the output's file name).")
@click.option("--resume", is_flag=True, help="Continue (or join) the study if it exists; without it an existing "
                                             "study is an error.")
@click.option("--seed", type=int, default=0, show_default=True, help="Data split and training seed.")
@click.option("--int8", is_flag=True, help="Search int8 nets: RAM and flash as the int8 header needs them (each "
                                           "candidate quantised by TFLite's converter with a few training images), "
                                           "and the chosen one exported as an int8 header.")
@click.option("--no-m4", "no_m4", is_flag=True, help="Do not measure the front's Cortex-M4 instructions per inference "
                                                     "(measured under QEMU when arm-none-eabi-g++ and "
                                                     "qemu-system-arm are installed).")
@_name_option()
@click.option("--output", "-o", default="best.h", show_default=True, type=click.Path(dir_okay=False),
              help="Header of the chosen candidate; OUTPUT_front.png and OUTPUT_front.json (the front) and the "
                   "model card go beside it.")
def search(data_dir, board, max_ram, max_flash, max_macs, family, trials, epochs_per_trial, final_epochs,
           resolutions, channels, storage, study_name, resume, seed, int8, no_m4, classname, output):
    """Search a family for the most accurate nets that fit a board, and train the best one.

    Optuna samples candidates (maximising validation accuracy, minimising MACs); each is compiled
    by micronets before training, and one that exceeds the RAM, flash or MAC limit is rejected at
    once. The Pareto front is printed and plotted (OUTPUT_front.png); the most accurate candidate
    of the front is trained for --final-epochs and exported as 'train' does (--int8: as an int8
    header, and every RAM/flash figure is the int8 header's). The front's Cortex-M4 instructions
    per inference are measured under QEMU when the emulator is installed (--no-m4: not).

    \b
    Examples:
      micronets search --data photos/ --board stm32f446re --max-ram 64KB -o best.h
      micronets search --data photos/ --max-ram 64KB --max-flash 256KB --family mobilenet --trials 40 -o best.h
      micronets search --data photos/ --board esp32-s3 --storage postgresql://u:p@db/search --study s1 --resume
      micronets search --data photos/ --board stm32f446re --max-ram 32KB --int8 -o best.h
    """
    from micronets.search import make_limits
    from micronets.search import search as run_search

    if board is None and (max_ram is None or max_flash is None):
        raise fail("give --board, or both --max-ram and --max-flash")
    try:
        make_limits(board, max_ram, max_flash, max_macs)
    except ValueError as exc:
        raise fail(one_line(exc))
    _check_output(output)
    console = _console()
    import_keras()
    try:
        result = run_search(data_dir, output, board=board, max_ram=max_ram, max_flash=max_flash, max_macs=max_macs,
                            family=family, trials=trials, epochs_per_trial=epochs_per_trial,
                            final_epochs=final_epochs, storage=storage, study=study_name, resume=resume,
                            channels=int(channels), resolutions=resolutions, seed=seed, classname=classname,
                            quantize="int8" if int8 else None, m4=not no_m4, log=lambda line: console.print(line, markup=False, soft_wrap=True))
    except ValueError as exc:
        raise fail(one_line(exc))
    except OSError as exc:
        raise fail(f"cannot write: {exc.strerror or one_line(exc)}")
    print_front(console, result)
    if result.train is not None:
        _print_report(console, result.train.report)
        print_summary(console, result.train.summary, output,
                      title=f"Wrote {output}" + (" (int8)" if result.quantize == "int8" else ""))
    for key, label in (("card", "Model card"), ("front_png", "Front PNG"), ("front_json", "Front JSON")):
        if key in result.files:
            console.print(f"{label:<17}{os.path.abspath(result.files[key])}", markup=False, soft_wrap=True)
    if result.train is not None:
        _near_chance(result.train.report)


def print_front(console, result):
    """The Pareto front of a search as a table (best first; the chosen one marked)."""
    from rich.table import Table

    lim = result.limits
    q = result.quantize
    table = Table(title=f"Pareto front of study {result.study} ({result.family}, {q}; {result.counts['trained']} "
                        f"trained, {result.counts['rejected']} rejected before training, "
                        f"{result.counts['pruned']} pruned)")
    m4 = any(c.m4_instructions is not None for c in result.front)
    for col, justify in (("trial", "right"), ("val acc", "right"), ("MACs", "right"),
                         (f"{q} RAM of {lim.ram_bytes:,}", "right"), (f"{q} flash of {lim.flash_bytes:,}", "right"),
                         *((("M4 instr.", "right"), ("MACs/instr.", "right")) if m4 else ()),
                         ("params", "right"), ("hyperparameters", "left")):
        table.add_column(col, justify=justify)
    for c in result.front:
        mark = " *" if c is result.chosen else ""
        m4_cells = ()
        if m4:
            m4_cells = ("n/a", "n/a") if c.m4_instructions is None else (
                f"{c.m4_instructions:,}", f"{c.macs_per_instruction:.3f}")
        table.add_row(f"{c.trial}{mark}", f"{c.val_accuracy * 100:.1f}%", f"{c.macs:,}", f"{c.ram_bytes:,}",
                      f"{c.flash_bytes:,}", *m4_cells, f"{c.model_params:,}", c.describe())
    console.print(table)
    console.print(f"* chosen (most accurate). Limits: {lim.text()}. Every row compiled again ({q}) and fits.",
                  markup=False)
    if result.m4_note:
        console.print(result.m4_note + ".", markup=False, soft_wrap=True)


if __name__ == "__main__":
    main()
