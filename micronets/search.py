"""Budget-driven architecture search: the most accurate PhiNet or MobileNet that fits a board.

    import micronets
    result = micronets.search("photos/", "best.h", board="stm32f446re", max_ram="64KB", trials=30)
    for c in result.front:
        print(c.val_accuracy, c.macs, c.ram_bytes, c.flash_bytes, c.params)

The engine is Optuna: one multi-objective study (maximise validation accuracy, minimise MACs)
sampled by TPE. Each trial builds the Keras model of one candidate and compiles it with our own
compiler *before any training*: RAM = the model object (arena + outputs, ``sizeof(net)``) + one
uint8 input frame, flash = the weights, exactly as ``micronets info --board`` counts them. A
candidate over a limit is rejected in well under a second: its trial is set the constraint values
(bytes over each limit) and ends PRUNED, so it never enters the front (only complete trials do)
while the sampler still learns how far off it was (Optuna's constraint handling ranks infeasible
trials by their violation). Rejected candidates do not count against ``trials``.

Pruning: Optuna cannot prune multi-objective trials (``trial.report`` is single-objective), so
this module applies its own rule at the end of every epoch but the last: a candidate stops when
``prune_peers`` (2) finished candidates with no more MACs already had a higher validation accuracy
after the same epoch; it is then unlikely to reach the front. Its trial ends PRUNED (no values).

Storage: an Optuna RDB URL; the default is a SQLite file beside the output (``best_search.db``),
which makes a search resumable after an interrupt (``resume=True``). Several processes (or
machines, with a ``postgresql://`` URL) given the same storage and study run one search together:
``trials`` is a total for the study, every worker stops when it is reached, and a trial that would
exceed it is dropped before training (it ends FAIL, marked ``surplus``).

int8 (``quantize="int8"``): the figures are the int8 header's, from our int8 compiler on each
untrained candidate quantised by TFLite's converter with ``CALIBRATION_SAMPLES`` training images
(arena and object bytes depend on the graph and shapes, not on weight values; weight bytes are
counted at each layer's widest parameter layout, a bound from the shapes that the header, which
may store a layer's biases and shifts narrower, never exceeds; the input table depends on the
calibration's min and max, which match the final export's); a candidate
whose int8 kernels alone exceed the flash limit is rejected before the converter runs. The study
records its quantisation; the chosen net is exported as an int8 header.

Cortex-M4 (``m4=True``, when ``arm-none-eabi-g++`` and ``qemu-system-arm`` are found): each
front candidate's header is built into bare-metal firmware and run once under QEMU with
``-icount``; its instructions per inference (and MACs per instruction) join the table and JSON.

Outputs beside ``best.h``: ``best_front.png`` (accuracy vs MACs, marker area = RAM),
``best_front.json`` (limits and every front candidate's hyperparameters and figures) and, after
the chosen candidate (the front's most accurate) is trained for ``final_epochs``, the header, its
model card and plots exactly as :func:`micronets.train.train_folder` writes them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import socket
import sys
import time
import types
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from micronets.boards import KB, MB, Board, find_board

FAMILIES = ("phinet", "mobilenet")
DEFAULT_RESOLUTIONS = (24, 32, 48, 64)
DEFAULT_TRIALS = 20
DEFAULT_EPOCHS_PER_TRIAL = 3
#: a worker gives up after this many candidates in a row that do not fit (milliseconds each)
MAX_REJECTIONS_IN_A_ROW = 200
PRUNE_PEERS = 2
#: a trial whose worker sent no heartbeat (every 30 s) for this long is failed, so a study
#: outlives a killed worker
STALE_AFTER_S = 120
#: training images given to TFLite's converter to quantise each candidate of an int8 search (the
#: sizes do not depend on them; a few suffice and keep a candidate's check near a second)
CALIBRATION_SAMPLES = 32


# ---------------------------------------------------------------------------- limits
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")
_BYTE_UNITS = {"": 1, "b": 1, "k": KB, "kb": KB, "kib": KB, "m": MB, "mb": MB, "mib": MB}
_COUNT_UNITS = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


def parse_bytes(text, what: str = "size") -> int:
    """``"64KB"``, ``"64 KB"``, ``"64k"``, ``"1.5MB"`` or ``"65536"`` -> bytes (KB = 1024 bytes, as
    the board table counts). ValueError with a one-line reason for anything else."""
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        m = _SIZE.match(str(text))
        if not m or m.group(2).lower() not in _BYTE_UNITS:
            raise ValueError(f"{what} {text!r} is not a size: give bytes as 65536, 64KB, 64 KB or 1.5MB")
        value, unit = float(m.group(1)), m.group(2).lower()
    n = value * _BYTE_UNITS[unit]
    if n != int(n) or n <= 0:
        raise ValueError(f"{what} {text!r} must be a positive whole number of bytes")
    return int(n)


def parse_count(text, what: str = "count") -> int:
    """``"5M"``, ``"500k"``, ``"2.5M"`` or ``"5000000"`` -> an integer (K/M/G are powers of 1000)."""
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        m = _SIZE.match(str(text))
        if not m or m.group(2).lower() not in _COUNT_UNITS:
            raise ValueError(f"{what} {text!r} is not a count: give it as 5000000, 500K or 5M")
        value, unit = float(m.group(1)), m.group(2).lower()
    n = value * _COUNT_UNITS[unit]
    if n != int(n) or n <= 0:
        raise ValueError(f"{what} {text!r} must be a positive whole number")
    return int(n)


@dataclasses.dataclass(frozen=True)
class Limits:
    """What a candidate may use: RAM (object + uint8 input frame), flash (weights), MACs."""

    ram_bytes: int
    flash_bytes: int
    macs: Optional[int] = None
    board: Optional[str] = None
    note: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def text(self) -> str:
        out = f"RAM {self.ram_bytes:,} B, flash {self.flash_bytes:,} B"
        if self.macs is not None:
            out += f", MACs {self.macs:,}"
        return out + (f" ({self.note})" if self.note else "")


def make_limits(board=None, max_ram=None, max_flash=None, max_macs=None) -> Limits:
    """The limits of a search: a board's RAM and flash (flash less its code allowance, as
    ``micronets info --board`` counts), lowered by any explicit limit. Without a board both
    ``max_ram`` and ``max_flash`` are needed."""
    b: Optional[Board] = None
    if board is not None:
        b = board if isinstance(board, Board) else find_board(board)
        if b is None:
            raise ValueError(f"unknown board {board!r} (see 'micronets boards')")
    ram = None if max_ram is None else parse_bytes(max_ram, "RAM limit")
    flash = None if max_flash is None else parse_bytes(max_flash, "flash limit")
    macs = None if max_macs is None else parse_count(max_macs, "MAC limit")
    notes = []
    if b is not None:
        board_flash = b.flash_bytes - b.code_allowance
        notes.append(f"{b.key}: {b.ram_bytes:,} B RAM, {board_flash:,} B flash after the "
                     f"{b.code_allowance:,} B code allowance")
        ram = b.ram_bytes if ram is None else min(ram, b.ram_bytes)
        flash = board_flash if flash is None else min(flash, board_flash)
    elif ram is None or flash is None:
        raise ValueError("give a board, or both a RAM and a flash limit (e.g. --max-ram 64KB --max-flash 256KB)")
    return Limits(int(ram), int(flash), macs, None if b is None else b.key, "; ".join(notes))


# ---------------------------------------------------------------------------- search spaces
class Space:
    """One family's knobs: how a trial samples them and how they build a net."""

    family = ""

    def __init__(self, resolutions: Sequence[int], channels: int):
        self.resolutions = tuple(int(r) for r in resolutions)
        self.channels = int(channels)

    def sample(self, trial) -> Dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def smallest(self) -> List[Dict[str, Any]]:  # pragma: no cover - abstract
        """Parameter sets of the smallest candidates (tried in order until one builds)."""
        raise NotImplementedError

    def net(self, params: Dict[str, Any], num_classes: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> Dict[str, Any]:
        return {"family": self.family, "resolutions": list(self.resolutions), "channels": self.channels}


class PhiNetSpace(Space):
    """The PhiNet paper's knobs: width alpha, expansion t0 and its growth beta, block count, the
    stem and block widths, the share of 5x5 depthwise kernels, stem stride and input resolution."""

    family = "phinet"
    ranges = dict(alpha=(0.1, 1.0), beta=(0.5, 2.0), t0=(2, 8), num_layers=(4, 12),
                  first_conv_filters=(16, 96), b1_filters=(16, 112), b2_filters=(32, 192),
                  conv5_percent=(0.0, 0.6), first_conv_stride=(1, 2, 3))

    def sample(self, trial):
        r = self.ranges
        return dict(
            resolution=trial.suggest_categorical("resolution", list(self.resolutions)),
            alpha=trial.suggest_float("alpha", *r["alpha"], log=True),
            beta=trial.suggest_float("beta", *r["beta"]),
            t0=trial.suggest_int("t0", *r["t0"]),
            num_layers=trial.suggest_int("num_layers", *r["num_layers"]),
            first_conv_filters=trial.suggest_int("first_conv_filters", *r["first_conv_filters"], step=8),
            b1_filters=trial.suggest_int("b1_filters", *r["b1_filters"], step=8),
            b2_filters=trial.suggest_int("b2_filters", *r["b2_filters"], step=8),
            conv5_percent=trial.suggest_float("conv5_percent", *r["conv5_percent"]),
            first_conv_stride=trial.suggest_categorical("first_conv_stride", list(r["first_conv_stride"])),
        )

    def smallest(self):
        r = self.ranges
        return [dict(resolution=min(self.resolutions), alpha=r["alpha"][0], beta=r["beta"][0], t0=r["t0"][0],
                     num_layers=r["num_layers"][0], first_conv_filters=r["first_conv_filters"][0],
                     b1_filters=r["b1_filters"][0], b2_filters=r["b2_filters"][0], conv5_percent=0.0,
                     first_conv_stride=stride) for stride in sorted(r["first_conv_stride"], reverse=True)]

    def net(self, params, num_classes):
        from micronets.models.phinet import PhiNet

        p = dict(params)
        res = p.pop("resolution")
        return PhiNet(num_classes=num_classes, input_shape=(res, res, self.channels), name="PhiNetSearched", **p)


class MobileNetSpace(Space):
    """MobileNet's knobs: the block list (pico ... base), the width multiplier, the stem stride and
    the input resolution."""

    family = "mobilenet"
    ranges = dict(depth=("pico", "nano", "micro", "milli", "base"), width=(0.25, 3.0), stem_stride=(1, 2, 3))

    def sample(self, trial):
        r = self.ranges
        return dict(
            resolution=trial.suggest_categorical("resolution", list(self.resolutions)),
            depth=trial.suggest_categorical("depth", list(r["depth"])),
            width=trial.suggest_float("width", *r["width"], log=True),
            stem_stride=trial.suggest_categorical("stem_stride", list(r["stem_stride"])),
        )

    def smallest(self):
        r = self.ranges
        return [dict(resolution=min(self.resolutions), depth="pico", width=r["width"][0], stem_stride=stride)
                for stride in sorted(r["stem_stride"], reverse=True)]

    def net(self, params, num_classes):
        from micronets.models.mobilenet import MobileNetV1

        p = dict(params)
        res = p.pop("resolution")
        return MobileNetV1(num_classes=num_classes, input_shape=(res, res, self.channels), batch_norm=True,
                           name="MobileNetSearched", **p)


def make_space(family: str, resolutions: Sequence[int], channels: int) -> Space:
    family = str(family).lower()
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}: choose one of {', '.join(FAMILIES)}")
    return (PhiNetSpace if family == "phinet" else MobileNetSpace)(resolutions, channels)


# ---------------------------------------------------------------------------- measuring a candidate
@dataclasses.dataclass
class Figures:
    """A candidate as our compiler sees it (exact bytes, before any training)."""

    macs: int
    params: int
    arena_bytes: int
    object_bytes: int
    input_frame_bytes: int
    weights_bytes: int

    @property
    def ram_bytes(self) -> int:
        return self.object_bytes + self.input_frame_bytes

    @property
    def flash_bytes(self) -> int:
        return self.weights_bytes

    def over(self, limits: Limits) -> Dict[str, int]:
        """Bytes (or MACs) over each limit; <= 0 where it fits."""
        out = {"ram": self.ram_bytes - limits.ram_bytes, "flash": self.flash_bytes - limits.flash_bytes}
        if limits.macs is not None:
            out["macs"] = self.macs - limits.macs
        return out

    def why_not(self, limits: Limits) -> Optional[str]:
        over = self.over(limits)
        parts = []
        if over["ram"] > 0:
            parts.append(f"RAM {self.ram_bytes:,} B > {limits.ram_bytes:,} B")
        if over["flash"] > 0:
            parts.append(f"flash {self.flash_bytes:,} B > {limits.flash_bytes:,} B")
        if over.get("macs", 0) > 0:
            parts.append(f"MACs {self.macs:,} > {limits.macs:,}")
        return "; ".join(parts) or None


def compile_candidate(model, quantize: str = "float32", calibration=None, classname: str = "Net"):
    """``model`` compiled by micronets: a CompiledModel (float32) or an Int8Model (int8: quantised by
    TFLite's converter with ``calibration``, a few training images at the model's input size)."""
    if quantize == "int8":
        from micronets.compiler.int8 import compile_keras_int8

        return compile_keras_int8(model, calibration, classname=classname)
    from micronets.compiler import compile_model

    return compile_model(model, classname=classname)


def measure(model, quantize: str = "float32", calibration=None) -> Figures:
    """Compile ``model`` with micronets' compiler and read its exact RAM and flash.

    int8: the arena and object sizes depend on the graph and the tensor shapes only, not on the
    weight values, so an untrained candidate gives its trained header's exact figures (checked
    again on the exported header, and by the tests). The weights are counted as
    ``weights_bytes_bound``: each layer with its widest parameter layout (the header may store a
    layer's biases and shifts in fewer bytes when its values allow, never in more). The calibration
    matters in one way: the 256-byte uint8 input table is left out when the calibration inputs span
    exactly [0, 1]."""
    s = compile_candidate(model, quantize, calibration).summary()
    h, w, c = (int(d) for d in s["input_shape"])
    return Figures(int(s["macs"]), int(s["params"]), int(s["arena_bytes"]), int(s["object_bytes"]), h * w * c,
                   int(s.get("weights_bytes_bound", s["weights_bytes"])))


def int8_weights_floor(model) -> int:
    """A lower bound of the int8 header's weight bytes, from the Keras model alone: one byte per
    conv/dense kernel element (BatchNorm folds into them; biases, requantisation constants and
    any input table are extra). Rejects a candidate far over the flash limit without running TFLite's converter
    (seconds on a large net)."""
    return sum(int(np.prod(w.shape)) for w in model.weights if len(w.shape) >= 2)


class _OverFlash(ValueError):
    """An int8 candidate whose weights alone exceed the flash limit (no conversion was run)."""

    def __init__(self, floor: int, limit: int):
        super().__init__(f"flash >= {floor:,} B (int8 kernels alone) > {limit:,} B")
        self.floor, self.limit = floor, limit


def build_and_measure(space: Space, params: Dict[str, Any], num_classes: int, quantize: str = "float32",
                      calibration: Optional[Callable[[int], np.ndarray]] = None, limits: Optional[Limits] = None):
    """``(net, figures)`` of one candidate; ValueError (one line) when it cannot be built.
    ``calibration(resolution)``: calibration images for int8. With ``limits``, an int8 candidate
    whose kernels alone exceed the flash limit raises ``_OverFlash`` before any conversion."""
    net = space.net(params, num_classes)
    net.build()
    if quantize == "int8" and limits is not None:
        floor = int8_weights_floor(net.model)
        if floor > limits.flash_bytes:
            raise _OverFlash(floor, limits.flash_bytes)
    calib = calibration(int(params["resolution"])) if quantize == "int8" else None
    return net, measure(net.model, quantize, calib)


# ---------------------------------------------------------------------------- Cortex-M4 instructions
def m4_tools_missing() -> List[str]:
    """The emulator's tools (``arm-none-eabi-g++``, ``qemu-system-arm``) not found on PATH."""
    import shutil

    from micronets.embedded import qemu

    return [tool for tool in (qemu.CXX, qemu.QEMU) if shutil.which(tool) is None]


def m4_instructions(model, pixels: np.ndarray, quantize: str = "float32", calibration=None,
                    timeout: float = 300) -> int:
    """Cortex-M4 instructions of one inference of ``model``'s header (float32 or int8): built with
    ``arm-none-eabi-g++ -O2`` into bare-metal firmware and run once under QEMU (``-icount``) on
    ``pixels`` (H, W, C uint8, through ``predict(const uint8_t*)``). RuntimeError when a tool is
    missing or the build or run fails."""
    import tempfile

    from micronets.embedded import qemu

    compiled = compile_candidate(model, quantize, calibration)
    with tempfile.TemporaryDirectory(prefix="micronets-m4-") as work:
        header = os.path.join(work, "candidate.h")
        with open(header, "w", encoding="utf-8") as fh:
            fh.write(compiled.render(filename="candidate.h"))
        elf = qemu.build_firmware(header, "Net", np.asarray(pixels, np.uint8)[None], os.path.join(work, "fw"),
                                  entry="uint8")
        result = qemu.run_firmware(elf, timeout=timeout)
    if not result.instructions or result.instructions <= 0:
        raise RuntimeError("the emulator reported no instruction count")
    return int(result.instructions)


def measure_front_m4(front: Sequence["Candidate"], space: Space, num_classes: int, quantize: str,
                     calibration: Callable[[int], np.ndarray], pixels: Callable[[int], np.ndarray], seed: int,
                     say: Callable[[str], None]) -> str:
    """Fill ``m4_instructions`` and ``macs_per_instruction`` of each front candidate; returns the
    note that goes under the table (how they were measured, or why not)."""
    import keras

    missing = m4_tools_missing()
    if missing:
        from micronets.embedded import qemu

        return (f"Cortex-M4 instructions not measured: {' and '.join(missing)} not found (Debian: apt-get install "
                + " ".join(qemu.PACKAGES[t].split(" (")[0] for t in missing) + ")")
    failed = []
    for c in front:
        keras.utils.set_random_seed(seed)
        try:
            net = space.net(c.params, num_classes)
            net.build()
            res = int(c.params["resolution"])
            calib = calibration(res) if quantize == "int8" else None
            c.m4_instructions = m4_instructions(net.model, pixels(res), quantize, calib)
            c.macs_per_instruction = c.macs / c.m4_instructions
            say(f"trial {c.trial}: {c.m4_instructions:,} Cortex-M4 instructions per inference "
                f"({c.macs_per_instruction:.3f} MACs per instruction)")
        except (RuntimeError, ValueError, OSError) as exc:
            from micronets.compiler.ops.base import brief

            failed.append(f"trial {c.trial}: {brief(exc, 200)}")
            say(f"trial {c.trial}: Cortex-M4 run failed: {failed[-1]}")
        finally:
            keras.backend.clear_session()
    note = ("Cortex-M4 instructions: each front candidate's " + quantize + " header (untrained weights: our "
            "kernels' instruction counts do not depend on the weight values) built with arm-none-eabi-g++ -O2 and "
            "run once under QEMU mps2-an386 (-icount) on a validation image through predict(const uint8_t*)")
    return note + ("; failed for " + "; ".join(failed) if failed else "")


# ---------------------------------------------------------------------------- results
@dataclasses.dataclass
class Candidate:
    """One trained candidate of the study (a trial that fitted and finished)."""

    trial: int
    params: Dict[str, Any]
    val_accuracy: float
    macs: int
    ram_bytes: int
    object_bytes: int
    arena_bytes: int
    flash_bytes: int
    model_params: int
    worker: str = ""
    m4_instructions: Optional[int] = None  # Cortex-M4 instructions per inference (QEMU), front only
    macs_per_instruction: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        return ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


@dataclasses.dataclass
class SearchResult:
    study: str
    storage: str  # password hidden
    family: str
    limits: Limits
    front: List[Candidate]  # best first (highest validation accuracy), every one re-checked by compiling
    chosen: Optional[Candidate]
    counts: Dict[str, int]  # trained, rejected, pruned, failed, surplus
    train: Any  # micronets.train.TrainResult of the chosen candidate, or None (final_epochs=0)
    files: Dict[str, str]
    class_names: List[str]
    seconds: float
    quantize: str = "float32"  # what RAM/flash were computed for and the header is exported as
    m4_note: str = ""  # how the front's Cortex-M4 instructions were measured, or why not

    def table_rows(self) -> List[Dict[str, Any]]:
        return [dict(c.to_dict(), chosen=c is self.chosen) for c in self.front]


def pareto_front(candidates: Sequence[Candidate]) -> List[Candidate]:
    """The candidates no other beats on both objectives (higher accuracy, fewer MACs); best first."""
    front = []
    for c in candidates:
        dominated = any(
            o is not c and o.val_accuracy >= c.val_accuracy and o.macs <= c.macs
            and (o.val_accuracy > c.val_accuracy or o.macs < c.macs)
            for o in candidates)
        if not dominated:
            front.append(c)
    return sorted(front, key=lambda c: (-c.val_accuracy, c.macs, c.trial))


def front_png(candidates: Sequence[Candidate], front: Sequence[Candidate], chosen: Optional[Candidate],
              limits: Limits, title: str = "") -> bytes:
    """Validation accuracy vs MACs of every trained candidate; the front joined and coloured;
    marker area proportional to RAM; the chosen one circled."""
    from micronets.train import _plot_label, _png_bytes, _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    try:
        def area(c):
            return 20 + 400 * c.ram_bytes / max(limits.ram_bytes, 1)

        others = [c for c in candidates if c not in front]
        if others:
            ax.scatter([c.macs for c in others], [c.val_accuracy * 100 for c in others],
                       s=[area(c) for c in others], color="lightgray", edgecolor="gray", label="dominated")
        pts = sorted(front, key=lambda c: c.macs)
        if pts:
            ax.plot([c.macs for c in pts], [c.val_accuracy * 100 for c in pts], "-", color="tab:blue", alpha=0.5)
            ax.scatter([c.macs for c in pts], [c.val_accuracy * 100 for c in pts], s=[area(c) for c in pts],
                       color="tab:blue", alpha=0.8, edgecolor="navy", label="Pareto front")
            for c in pts:
                ax.annotate(f"#{c.trial}\n{c.ram_bytes / KB:.1f} KB", (c.macs, c.val_accuracy * 100),
                            textcoords="offset points", xytext=(6, 4), fontsize=7)
        if chosen is not None:
            ax.scatter([chosen.macs], [chosen.val_accuracy * 100], s=area(chosen) * 2.2, facecolor="none",
                       edgecolor="red", linewidth=1.5, label=f"chosen (#{chosen.trial})")
        if candidates and max(c.macs for c in candidates) / max(min(c.macs for c in candidates), 1) > 20:
            ax.set_xscale("log")
        ax.set_xlabel("MACs")
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        head = _plot_label(title, 80) + "\n" if title else ""
        budget = f"RAM <= {limits.ram_bytes:,} B, flash <= {limits.flash_bytes:,} B" + (
            f", MACs <= {limits.macs:,}" if limits.macs is not None else "") + (
            f" ({limits.board})" if limits.board else "")
        ax.set_title(head + budget + "; marker area = RAM", fontsize=9)
        return _png_bytes(fig)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------- storage
def default_storage(output: str) -> str:
    """The SQLite file beside the output: ``best.h`` -> ``best_search.db``."""
    stem, _ = os.path.splitext(os.path.abspath(output))
    return "sqlite:///" + stem + "_search.db"


def safe_url(url: str) -> str:
    """A storage URL fit for messages: the password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", str(url))


def open_storage(url: str):
    """An Optuna RDB storage with heartbeats (a worker killed mid-trial gets its trial failed)."""
    import optuna

    kwargs: Dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 60}  # several local workers wait for the file's lock
    else:
        kwargs["pool_pre_ping"] = True
    for attempt in range(6):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=30, grace_period=STALE_AFTER_S)
        except ImportError as exc:
            raise ValueError(f"cannot open the storage {safe_url(url)}: a database driver is missing ({exc})") from None
        except Exception as exc:
            reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
            # workers started together race to create Optuna's tables: the loser retries and finds them
            if attempt < 5 and re.search(r"already exists|duplicate key|UniqueViolation|UNIQUE constraint failed", reason, re.I):
                time.sleep(0.2 * (attempt + 1))
                continue
            raise ValueError(f"cannot open the storage {safe_url(url)}: {reason}") from None


def _signature(space: Space, limits: Limits, class_names, n_images, epochs_per_trial, val_fraction,
               test_fraction, seed, quantize: str = "float32") -> Dict[str, Any]:
    """What a study is a search *of*: a worker or a resume must search the same thing."""
    return _plain(dict(space.to_dict(), limits=limits.to_dict(), classes=list(class_names), images=int(n_images),
                       epochs_per_trial=int(epochs_per_trial), val_fraction=float(val_fraction),
                       test_fraction=float(test_fraction), seed=int(seed), quantize=quantize))


def _plain(v):
    return json.loads(json.dumps(v))


# ---------------------------------------------------------------------------- study bookkeeping
class _Surplus(Exception):
    """The study already has its trials: this one is dropped before training."""


def _trained(trials) -> int:
    """Candidates that fitted and were (or are being) trained: what ``trials`` counts."""
    from optuna.trial import TrialState

    return sum(1 for t in trials if t.user_attrs.get("status") == "candidate"
               and t.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.PRUNED))


def _claimed_before(trials, number: int) -> int:
    """Candidates among the trials numbered below ``number``, counting a running trial that has
    not decided yet as one (so the total never exceeds the budget, whatever the timing)."""
    from optuna.trial import TrialState

    n = 0
    for t in trials:
        if t.number >= number:
            continue
        status = t.user_attrs.get("status")
        if t.state == TrialState.RUNNING and status is None:
            n += 1
        elif status == "candidate" and t.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.PRUNED):
            n += 1
    return n


def candidates_of(study) -> List[Candidate]:
    """Every finished, fitting, trained candidate of ``study``."""
    from optuna.trial import TrialState

    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        a = t.user_attrs
        if a.get("status") != "candidate" or t.values is None:
            continue
        out.append(Candidate(t.number, dict(t.params), float(t.values[0]), int(a["macs"]), int(a["ram_bytes"]),
                             int(a["object_bytes"]), int(a["arena_bytes"]), int(a["flash_bytes"]),
                             int(a["model_params"]), str(a.get("worker", ""))))
    return out


def study_counts(study) -> Dict[str, int]:
    from optuna.trial import TrialState

    counts = {"trained": 0, "completed": 0, "pruned": 0, "rejected": 0, "surplus": 0, "failed": 0, "running": 0}
    for t in study.get_trials(deepcopy=False):
        status = t.user_attrs.get("status")
        if t.state == TrialState.RUNNING:
            counts["running"] += 1
        elif status == "rejected":
            counts["rejected"] += 1
        elif status == "surplus":
            counts["surplus"] += 1
        elif t.state == TrialState.FAIL:
            counts["failed"] += 1
        elif t.state == TrialState.PRUNED:
            counts["pruned"] += 1
        elif t.state == TrialState.COMPLETE:
            counts["completed"] += 1
    counts["trained"] = _trained(study.get_trials(deepcopy=False))
    return counts


def _pruning_callback(trial, study, macs: int, epochs: int, peers: int, say):
    """Keras callback: record the validation curve; stop a candidate that ``peers`` finished
    candidates with no more MACs beat after the same epoch (see the module docstring)."""
    import keras
    from optuna.trial import TrialState

    class PrunePoorCandidates(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.curve: List[float] = []
            self.pruned_at: Optional[int] = None

        def on_epoch_end(self, epoch, logs=None):
            acc = (logs or {}).get("val_accuracy")
            if acc is None:
                return
            self.curve.append(float(acc))
            trial.set_user_attr("val_accuracy_curve", self.curve)
            if peers <= 0 or epoch >= epochs - 1:
                return
            better = 0
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
                curve = t.user_attrs.get("val_accuracy_curve") or []
                if t.user_attrs.get("status") == "candidate" and len(curve) > epoch \
                        and int(t.user_attrs.get("macs", 1 << 62)) <= macs and curve[epoch] > acc:
                    better += 1
            if better >= peers:
                self.pruned_at = epoch + 1
                self.model.stop_training = True

    return PrunePoorCandidates()


# ---------------------------------------------------------------------------- the search
def search(data_dir: str, output: str = "best.h", *, board=None, max_ram=None, max_flash=None, max_macs=None,
           family: str = "phinet", trials: int = DEFAULT_TRIALS, epochs_per_trial: int = DEFAULT_EPOCHS_PER_TRIAL,
           final_epochs: int = 30, storage: Optional[str] = None, study: Optional[str] = None,
           resume: bool = False, channels: int = 1, resolutions: Optional[Sequence[int]] = None,
           val_fraction: Optional[float] = None, test_fraction: Optional[float] = None, seed: int = 0,
           sampler_seed: Optional[int] = None, prune_peers: int = PRUNE_PEERS, config=None,
           classname: Optional[str] = None, plots: bool = True, check_cpp: bool = True,
           log: Optional[Callable[[str], None]] = None, quantize: Optional[str] = None,
           m4: bool = True) -> SearchResult:
    """Search ``family`` for the candidates that fit the limits, report the front, train the best.

    ``data_dir``: one subfolder of images per class; it is split (stratified, ``seed``) exactly as
    :func:`micronets.train.train_folder` splits it, trials train on the training part and are
    scored on the validation part, and the test part is touched only by the final report.
    Limits: ``board`` (a name from ``micronets boards``) and/or ``max_ram``/``max_flash`` (bytes or
    text such as ``"64KB"``; both needed without a board) and ``max_macs`` (``"5M"``).
    ``trials``: candidates that fit to train in the whole study (rejected ones do not count);
    ``epochs_per_trial`` each. ``storage``: an Optuna RDB URL (default: a SQLite file beside
    ``output``); ``study``: its name (default: the output's file name without extension);
    ``resume``: continue (or join) the study of that name if it exists, else create it; without it
    an existing study is an error. ``final_epochs``: training of the chosen candidate (0: report
    the front only). ``resolutions``: input sizes to search (default 24, 32, 48, 64); ``channels``
    1 (gray) or 3 (RGB). ``sampler_seed``: makes one worker's sampling repeatable (leave it None
    for several workers, or they propose the same candidates).
    ``quantize="int8"``: RAM and flash are those of the int8 header (each candidate quantised by
    TFLite's converter with ``CALIBRATION_SAMPLES`` training images, untrained: the sizes do not
    depend on the weights) and the chosen one is exported as an int8 header; a study records its
    quantisation and cannot be resumed with the other. ``m4``: measure the front's Cortex-M4
    instructions per inference under QEMU when ``arm-none-eabi-g++`` and ``qemu-system-arm`` are
    installed (one inference per candidate; skipped with a note otherwise).
    Raises ValueError (one line) for bad arguments, a storage it cannot open, or limits that
    not even the smallest candidate fits; writes nothing then.
    """
    started = time.time()
    say = log or (lambda message: None)
    try:
        import optuna
    except ImportError:
        raise ValueError("the search needs Optuna: pip install 'micronets-mcu[search]' (or optuna>=5)") from None
    from micronets.compiler.export import check_writable, write_atomic
    from micronets.data import load_image_folder
    from micronets.models.base import TrainingConfig
    from micronets.train import DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION, split_indices

    # ---- arguments (cheap checks first, nothing written)
    for name, value, low in (("trials", trials, 1), ("epochs_per_trial", epochs_per_trial, 1),
                             ("final_epochs", final_epochs, 0), ("prune_peers", prune_peers, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {channels!r}")
    if quantize not in (None, "float32", "int8"):
        raise ValueError(f"quantize={quantize!r} is not supported; use 'int8' (or None for float32)")
    quantize = quantize or "float32"
    resolutions = tuple(DEFAULT_RESOLUTIONS if resolutions is None else resolutions)
    if not resolutions or not all(isinstance(r, (int, np.integer)) and not isinstance(r, bool) and 4 <= r <= 1024
                                  for r in resolutions):
        raise ValueError(f"resolutions must be integers in 4..1024, got {resolutions!r}")
    resolutions = tuple(sorted(set(int(r) for r in resolutions)))
    val_fraction = DEFAULT_VAL_FRACTION if val_fraction is None else float(val_fraction)
    test_fraction = DEFAULT_TEST_FRACTION if test_fraction is None else float(test_fraction)
    if not 0 < val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction {val_fraction} and test_fraction {test_fraction} must leave training images")
    limits = make_limits(board, max_ram, max_flash, max_macs)
    space = make_space(family, resolutions, channels)
    stem, _ = os.path.splitext(output)
    front_png_path, front_json_path = stem + "_front.png", stem + "_front.json"
    for path in (output, front_png_path, front_json_path):
        try:
            check_writable(path)
        except OSError as exc:
            raise ValueError(str(exc)) from None
    config = TrainingConfig() if config is None else config
    config.check()
    storage_url = storage or default_storage(output)
    study_name = study or os.path.splitext(os.path.basename(output))[0] or "micronets"

    # ---- data: one load per resolution, one split for all (the final training's split)
    cache: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}

    def images(res: int):
        if res not in cache:
            x, y, _names = load_image_folder(data_dir, (res, res, channels), class_names=class_names)
            cache[res] = (x, y)
        return cache[res]

    x0, y0, class_names = load_image_folder(data_dir, (resolutions[0], resolutions[0], channels))
    cache[resolutions[0]] = (x0, y0)
    train_idx, val_idx, _test_idx = split_indices(y0, val_fraction, test_fraction, seed)
    num_classes = len(class_names)
    from micronets.compiler.int8 import MIN_CALIBRATION_SAMPLES

    if quantize == "int8" and len(train_idx) < MIN_CALIBRATION_SAMPLES:
        raise ValueError(f"an int8 search calibrates with training images: {len(train_idx)} in {data_dir}'s training "
                         f"split, at least {MIN_CALIBRATION_SAMPLES} needed")

    # int8 calibration: the exported header's sizes depend on the calibration in one way only, the
    # 256-byte uint8 input table (left out when the inputs' range is exactly [0, 1]), which TFLite
    # derives from the inputs' min and max: a few of the images train_folder will calibrate the
    # final header with, including its darkest and brightest, give the same input quantisation
    from micronets.train import DEFAULT_CALIBRATION_IMAGES

    final_calib = np.sort(np.random.default_rng(seed).permutation(train_idx)[:DEFAULT_CALIBRATION_IMAGES])
    calib_cache: Dict[int, np.ndarray] = {}

    def calibration(res: int) -> np.ndarray:
        if res not in calib_cache:
            xs = images(res)[0][final_calib].reshape(len(final_calib), -1)
            keep = set(final_calib[:CALIBRATION_SAMPLES - 2].tolist())
            keep |= {int(final_calib[np.argmin(xs.min(axis=1))]), int(final_calib[np.argmax(xs.max(axis=1))])}
            calib_cache[res] = images(res)[0][np.array(sorted(keep))]
        return calib_cache[res]

    def pixels(res: int) -> np.ndarray:  # one validation image as the uint8 frame a device would pass
        return np.clip(np.round(images(res)[0][val_idx[0]] * 255.0), 0, 255).astype(np.uint8)

    say(f"Searching {space.family} ({quantize}) for {num_classes} classes ({len(y0):,} images: {len(train_idx):,} train, "
        f"{len(val_idx):,} validation, {len(_test_idx):,} kept for the final test) within {limits.text()}")

    # ---- the smallest candidate must fit, or no search makes sense
    import keras

    smallest = None
    build_errors = []
    for params in space.smallest():
        try:
            _, figures = build_and_measure(space, params, num_classes, quantize, calibration)
        except ValueError as exc:
            build_errors.append(str(exc).splitlines()[0])
            continue
        finally:
            keras.backend.clear_session()
        if smallest is None or figures.ram_bytes < smallest[1].ram_bytes:
            smallest = (params, figures)
        if figures.why_not(limits) is None:
            smallest = (params, figures)
            break
    if smallest is None:
        raise ValueError(f"the smallest {space.family} candidates do not build at {resolutions[0]}x{resolutions[0]}: "
                         f"{build_errors[0] if build_errors else 'unknown reason'}")
    why = smallest[1].why_not(limits)
    if why is not None:
        where = f"board {limits.board}" if limits.board else "the limits"
        raise ValueError(f"{where} cannot fit even the smallest {space.family} candidate "
                         f"({', '.join(f'{k}={_fmt(v)}' for k, v in smallest[0].items())}): {why}")

    # ---- the study
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    rdb = open_storage(storage_url)
    signature = _signature(space, limits, class_names, len(y0), epochs_per_trial, val_fraction, test_fraction, seed,
                           quantize)
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, multivariate=True,
                                         n_startup_trials=max(3, min(10, trials // 3)))
    existing = set(optuna.get_all_study_names(rdb))
    if study_name in existing and not resume:
        raise ValueError(f"study {study_name!r} already exists in {safe_url(storage_url)}: pass resume "
                         "(--resume) to continue it, or choose another study name (--study)")
    st = optuna.create_study(storage=rdb, study_name=study_name, directions=["maximize", "minimize"],
                             sampler=sampler, load_if_exists=True)
    if "search" not in st.user_attrs:
        st.set_user_attr("search", signature)
    recorded = dict(st.user_attrs.get("search"))
    recorded.setdefault("quantize", "float32")  # studies made before int8 searches were float32
    if recorded != signature:
        diff = sorted(k for k in set(recorded) | set(signature) if recorded.get(k) != signature.get(k))
        raise ValueError(f"study {study_name!r} in {safe_url(storage_url)} is a different search "
                         f"(it differs in: {', '.join(diff)}); choose another study name (--study)")
    st.set_metric_names(["val_accuracy", "macs"])
    worker = f"{socket.gethostname()}:{os.getpid()}"
    from optuna.trial import TrialState

    before = st.get_trials(deepcopy=False)
    running_before = sum(1 for t in before if t.state == TrialState.RUNNING and t.user_attrs.get("status") == "candidate")
    done_before = _trained(before) - running_before
    say(f"Study {study_name!r} in {safe_url(storage_url)}: {done_before} of {trials} candidates trained so far"
        + (f", {running_before} in training (other workers' or, if theirs stopped, failed "
           f"{STALE_AFTER_S} s after their last heartbeat)" if running_before else ""))

    # ---- one trial
    rejections = [0]

    def objective(trial):
        params = space.sample(trial)
        desc = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
        try:
            try:
                net, fig = build_and_measure(space, params, num_classes, quantize, calibration, limits)
            except _OverFlash as exc:
                trial.set_user_attr("status", "rejected")
                trial.set_user_attr("reason", str(exc))
                trial.set_user_attr("flash_floor_bytes", exc.floor)
                trial.set_constraint("builds", 0.0)
                trial.set_constraint("flash", float(exc.floor - exc.limit))
                rejections[0] += 1
                say(f"trial {trial.number}: rejected before training ({exc}): {desc}")
                raise optuna.TrialPruned(str(exc))
            except ValueError as exc:
                from micronets.compiler.ops.base import brief

                reason = "does not build: " + brief(exc, 200)
                trial.set_user_attr("status", "rejected")
                trial.set_user_attr("reason", reason)
                trial.set_constraint("builds", 1.0)
                rejections[0] += 1
                say(f"trial {trial.number}: rejected, {reason}")
                raise optuna.TrialPruned(reason)
            for key, value in (("macs", fig.macs), ("ram_bytes", fig.ram_bytes), ("object_bytes", fig.object_bytes),
                               ("arena_bytes", fig.arena_bytes), ("flash_bytes", fig.flash_bytes),
                               ("model_params", fig.params), ("worker", worker)):
                trial.set_user_attr(key, value)
            trial.set_constraint("builds", 0.0)
            for key, value in fig.over(limits).items():
                trial.set_constraint(key, float(value))
            why_not = fig.why_not(limits)
            if why_not is not None:
                trial.set_user_attr("status", "rejected")
                trial.set_user_attr("reason", why_not)
                rejections[0] += 1
                say(f"trial {trial.number}: rejected before training ({why_not}): {desc}")
                raise optuna.TrialPruned(why_not)
            rejections[0] = 0
            if _claimed_before(st.get_trials(deepcopy=False), trial.number) >= trials:
                trial.set_user_attr("status", "surplus")
                raise _Surplus(f"the study already has its {trials} candidates")
            trial.set_user_attr("status", "candidate")
            say(f"trial {trial.number}: training {desc} (RAM {fig.ram_bytes:,} B, flash {fig.flash_bytes:,} B, "
                f"MACs {fig.macs:,})")
            x, y = images(params["resolution"])
            keras.utils.set_random_seed(seed * 100_003 + trial.number)
            net.config = _trial_config(config, len(train_idx), epochs_per_trial)
            pruner = _pruning_callback(trial, st, fig.macs, epochs_per_trial, prune_peers, say)
            net.fit(x[train_idx], y[train_idx], x[val_idx], y[val_idx], epochs=epochs_per_trial,
                    callbacks=[pruner])
            if pruner.pruned_at is not None:
                trial.set_user_attr("pruned_after_epoch", pruner.pruned_at)
                say(f"trial {trial.number}: pruned after epoch {pruner.pruned_at} (validation accuracy "
                    f"{pruner.curve[-1] * 100:.1f}%: {prune_peers} cheaper candidates were better at that epoch)")
                raise optuna.TrialPruned(f"pruned after epoch {pruner.pruned_at}")
            accuracy = net.evaluate(x[val_idx], y[val_idx])
            say(f"trial {trial.number}: validation accuracy {accuracy * 100:.1f}% at {fig.macs:,} MACs")
            return accuracy, float(fig.macs)
        finally:
            keras.backend.clear_session()

    while True:
        while _trained(st.get_trials(deepcopy=False)) < trials:
            if rejections[0] >= MAX_REJECTIONS_IN_A_ROW:
                raise ValueError(f"{MAX_REJECTIONS_IN_A_ROW} candidates in a row did not fit {limits.text()}: "
                                 "the limits leave too little room for this family; loosen them or search smaller "
                                 "resolutions")
            st.optimize(objective, n_trials=1, catch=(_Surplus,), gc_after_trial=False)
        # the other workers' last trials: the front is reported once they have finished; one that
        # fails (its worker interrupted, or killed and found stale by its missing heartbeat) leaves
        # the study short, and this worker trains more
        waited = False
        while True:
            optuna.storages.fail_stale_trials(st)
            running = [t for t in st.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                       if t.user_attrs.get("status") in (None, "candidate")]
            if not running:
                break
            if not waited:
                say(f"waiting for {len(running)} trial(s) of other workers to finish")
                waited = True
            time.sleep(2.0)
        if _trained(st.get_trials(deepcopy=False)) >= trials:
            break

    # ---- the front, each member re-checked by compiling it
    everyone = candidates_of(st)
    front = pareto_front(everyone)
    for c in front:
        _, fig = build_and_measure(space, c.params, num_classes, quantize, calibration)
        keras.backend.clear_session()
        if fig.why_not(limits) is not None or fig.ram_bytes != c.ram_bytes or fig.flash_bytes != c.flash_bytes:
            raise RuntimeError(f"trial {c.trial} of the front no longer compiles to what it recorded "
                               f"({fig.why_not(limits) or 'different sizes'}); was the study made by another "
                               "micronets version?")
    counts = study_counts(st)
    if not front:
        raise ValueError(f"study {study_name!r} has no finished candidate ({counts['trained']} trained, "
                         f"{counts['pruned']} pruned, {counts['failed']} failed)")
    chosen = front[0]
    say(f"Front: {len(front)} of {len(everyone)} finished candidates; chosen trial {chosen.trial} "
        f"({chosen.val_accuracy * 100:.1f}% validation accuracy, {chosen.macs:,} MACs)")
    if m4:
        m4_note = measure_front_m4(front, space, num_classes, quantize, calibration, pixels, seed, say)
    else:
        m4_note = "Cortex-M4 instructions not measured (turned off: m4=False / --no-m4)"
    say(m4_note)

    search_card = {"study": study_name, "storage": safe_url(storage_url), "family": space.family,
                   "quantize": quantize, "limits": limits.to_dict(), "m4_note": m4_note, "counts": counts, "chosen_trial": chosen.trial,
                   "front": [c.to_dict() for c in front], "search_space": space.to_dict(),
                   "epochs_per_trial": epochs_per_trial}
    png = front_png(everyone, front, chosen, limits, f"{space.family} {quantize} search, study {study_name}")
    front_text = json.dumps(_plain(search_card), indent=2, ensure_ascii=False) + "\n"

    # ---- the chosen candidate trained to the end, exported by train_folder
    files: Dict[str, str] = {}
    train_result = None
    created: List[str] = []
    try:
        if final_epochs > 0:
            from micronets.train import train_folder

            net = space.net(chosen.params, num_classes)
            say(f"Training the chosen candidate (trial {chosen.trial}) for {final_epochs} epochs")
            train_result = train_folder(
                data_dir, net, output, epochs=final_epochs, config=_eager_if_short(config, len(train_idx), final_epochs),
                val_fraction=val_fraction,
                test_fraction=test_fraction, seed=seed, classname=classname, plots=plots, check_cpp=check_cpp,
                log=log, card_extra={"search": search_card}, trained_by="micronets search", int8=quantize == "int8")
            created.extend(p for p in train_result.files.values())
            files.update(train_result.files)
            exported = train_result.summary
            ram = int(exported["object_bytes"]) + int(np.prod(exported["input_shape"]))
            if ram > limits.ram_bytes or int(exported["weights_bytes"]) > limits.flash_bytes:
                raise RuntimeError(f"the exported {quantize} header needs RAM {ram:,} B and flash "
                                   f"{exported['weights_bytes']:,} B, over {limits.text()}")
            flash = int(exported.get("weights_bytes_bound", exported["weights_bytes"]))  # int8: as measured
            if (ram, flash) != (chosen.ram_bytes, chosen.flash_bytes):
                raise RuntimeError(f"the exported {quantize} header needs RAM {ram:,} B and flash "
                                   f"{exported['weights_bytes']:,} B, not the {chosen.ram_bytes:,} B and "
                                   f"{chosen.flash_bytes:,} B measured on the untrained candidate")
        for path, content in ((front_png_path, png), (front_json_path, front_text)):
            existed = os.path.lexists(path)
            write_atomic(path, content)
            if not existed:
                created.append(path)
        files["front_png"] = front_png_path
        files["front_json"] = front_json_path
    except BaseException:
        for path in created:
            try:
                os.unlink(path)
            except OSError:
                pass
        raise
    return SearchResult(study_name, safe_url(storage_url), space.family, limits, front, chosen, counts,
                        train_result, files, list(class_names), time.time() - started, quantize, m4_note)


#: a run of at most this many training steps trains eagerly: graph tracing costs seconds, an eager
#: step 0.3-1 s, and one epoch of 16 steps breaks even (512 digits, batch 32: a search MobileNet at
#: 12x12 10.5 s graph vs 11.3 s eager, a PhiNet at 16x16 20.6 vs 21.2 s; 8 steps: 7.8 vs 6.9 s and
#: 14.6 vs 10.7 s; 32 steps: 10.0 vs 22.3 s and 20.0 vs 29.1 s)
EAGER_STEPS = 16


def _eager_if_short(config, n_train: int, epochs: int):
    """A copy of ``config`` that trains eagerly when the run is too short to repay graph tracing."""
    import copy

    cfg = copy.deepcopy(config)
    steps = epochs * math.ceil(n_train / max(1, min(cfg.batch_size, n_train)))
    cfg.run_eagerly = bool(cfg.run_eagerly or steps <= EAGER_STEPS)
    return cfg


def _trial_config(config, n_train: int, epochs: int):
    cfg = _eager_if_short(config, n_train, epochs)
    cfg.checkpoint_path = None
    cfg.early_stopping_patience = None
    cfg.verbosity = 0
    return cfg


class _CallableModule(types.ModuleType):
    """``micronets.search`` is this module *and* the function: importing a submodule sets the
    package attribute of the same name to the module, so a plain function in ``micronets/__init__``
    would be replaced by the module on first import; a callable module keeps ``micronets.search(...)``
    working either way (as does ``from micronets.search import search``)."""

    def __call__(self, *args, **kwargs):
        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
