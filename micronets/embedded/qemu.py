"""Build a generated model header into bare-metal Cortex-M4 firmware and run it on QEMU.

The firmware is our own small harness (no vendor SDK): ``startup.cpp`` (vector table, reset
handler that enables the FPU, copies ``.data``, zeroes ``.bss`` and runs static constructors),
``mps2_an386.ld`` (memory map of QEMU's ``mps2-an386`` board), ``semihosting.cpp`` (print and exit
through the debugger interface QEMU emulates) and ``driver.cpp`` (runs ``predict`` on inputs
embedded at build time and prints the results).

>>> elf = build_firmware("model.h", "Net", x, "build/")     # x: (N, H, W, C) float32
>>> result = run_firmware(elf)
>>> result.outputs                                          # (N, all outputs' values) float32, bit-exact
>>> result.instructions                                     # instructions of one predict()
>>> size(elf)                                               # {"text": ..., "data": ..., "bss": ...}

Instruction counts come from QEMU's ``-icount shift=N`` mode, in which every guest instruction
advances virtual time by exactly 2**N ns; the driver reads the board's 25 MHz CMSDK timer around
each ``predict`` call, so ``instructions = ticks * 40 / 2**N``. They are repeatable (same ELF, same
input, same count) and are a fair proxy for Cortex-M4 cycles, not an exact cycle count (loads,
multiply-accumulates and branches take 1-3 cycles on real silicon, and flash wait states add more).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

HERE = Path(__file__).resolve().parent

CXX = "arm-none-eabi-g++"
SIZE = "arm-none-eabi-size"
QEMU = "qemu-system-arm"
XTENSA_CXX = "xtensa-lx106-elf-g++"

#: Debian packages that provide each tool (named in the error when one is missing)
PACKAGES = {
    CXX: "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib",
    SIZE: "binutils-arm-none-eabi (pulled in by gcc-arm-none-eabi)",
    QEMU: "qemu-system-arm",
    XTENSA_CXX: "gcc-xtensa-lx106",
}

CPU_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]
WARN_FLAGS = ["-Wall", "-Wextra", "-Werror"]
CXX_FLAGS = ["-fno-exceptions", "-fno-rtti", "-fno-threadsafe-statics", "-ffunction-sections", "-fdata-sections"]
LINK_FLAGS = ["-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections"]
HARNESS_SOURCES = ["startup.cpp", "semihosting.cpp", "driver.cpp"]
LINKER_SCRIPT = "mps2_an386.ld"

#: default ``-icount`` shift: 128 ns per instruction, i.e. 3.2 timer ticks per instruction, so the
#: 25 MHz timer resolves single instructions; its 32-bit counter wraps after ~1.3e9 instructions.
DEFAULT_SHIFT = 7
TIMER_NS_PER_TICK = 40  # 25 MHz


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found on PATH; on Debian/Ubuntu install: apt-get install {PACKAGES.get(name, name)}")
    return path


def _run(cmd: Sequence[str], what: str, timeout: Optional[float] = None, cwd=None) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        raise RuntimeError(f"{what} timed out after {timeout} s: {' '.join(cmd)}\n{out}") from None
    if proc.returncode != 0:
        output = "\n".join(part for part in (proc.stderr.strip(), proc.stdout.strip()) if part)
        raise RuntimeError(f"{what} failed (exit status {proc.returncode}):\n{output}\ncommand: {' '.join(cmd)}")
    return proc


def toolchain_versions() -> Dict[str, str]:
    """First line of ``--version`` of each tool the harness uses (missing tools say so)."""
    versions = {}
    for name in (CXX, QEMU, XTENSA_CXX):
        path = shutil.which(name)
        if path is None:
            versions[name] = "not installed"
            continue
        out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
        versions[name] = out.splitlines()[0].strip() if out else "unknown"
    return versions


# --------------------------------------------------------------------------- building
def _c_float(v: float) -> str:
    """A C float literal that parses back to exactly this float32 (9 significant digits)."""
    v = float(np.float32(v))
    if not np.isfinite(v):
        raise ValueError("inputs must be finite")
    s = f"{v:.9e}"
    return s + "f"


#: the C type of a sample's values for each entry
_ENTRY_CTYPES = {"float": "float", "uint8": "uint8_t", "int8": "int8_t"}


def _samples_header(classname: str, header_name: str, inputs: Optional[np.ndarray], entry: str,
                    size_expr: str, args: str, output_arrays: int = 1) -> str:
    """The firmware's configuration: the model, its class, the sample type, how one sample
    (every input's values back to back, ``size_expr`` of them) is passed to predict() (``args``,
    of a pointer ``sample``: one pointer per input), and the output arrays the driver prints
    (``outputs``, ``outputs1``, ...: ``output_arrays`` of them)."""
    each = " ".join(f"X(outputs{k or ''}, numOutputs{k or ''})" for k in range(output_arrays))
    head = [
        "/* generated by micronets.embedded.qemu: model under test and its inputs */",
        "#ifndef MN_CONFIG_H",
        "#define MN_CONFIG_H",
        f'#include "{header_name}"',
        f"#define MN_CLASS {classname}",
        f"#define MN_SAMPLE_TYPE {_ENTRY_CTYPES[entry]}",
        f"#define MN_INPUT_SIZE ({size_expr})",
        f"#define MN_PREDICT_ARGS {args}",
        f"#define MN_FOR_EACH_OUTPUT(X) {each}",
    ]
    if inputs is None:
        tail = ["#define MN_SIZE_ONLY 1", "#define MN_SAMPLE_SIZE MN_INPUT_SIZE", "#endif"]
        return "\n".join(head + tail) + "\n"
    n = inputs.shape[0]
    flat = inputs.reshape(n, -1)
    lines = head + [f"#define MN_NUM_SAMPLES {n}", f"#define MN_SAMPLE_SIZE {flat.shape[1]}"]
    lines.append(f"static const {_ENTRY_CTYPES[entry]} mn_samples[MN_NUM_SAMPLES][MN_SAMPLE_SIZE] = {{")
    for row in flat:
        if entry == "float":
            vals = [_c_float(v) for v in row]
        else:
            vals = [str(int(v)) for v in row]
        body = ",\n    ".join(", ".join(vals[i : i + 12]) for i in range(0, len(vals), 12))
        lines.append("  {\n    " + body + "\n  },")
    lines.append("};")
    lines.append("#endif")
    return "\n".join(lines) + "\n"


def _check_classname(classname: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", classname or ""):
        raise ValueError(f"classname must be a C++ identifier, got {classname!r}")


def build_firmware(
    header_path: Optional[Union[str, Path]],
    classname: str = "Net",
    inputs: Optional[np.ndarray] = None,
    out_dir: Union[str, Path] = "build/firmware",
    opt: str = "-O2",
    entry: str = "float",
    extra_flags: Sequence[str] = (),
) -> Path:
    """Compile and link ``header_path`` into an mps2-an386 ELF that runs ``predict`` on ``inputs``.

    ``inputs``: (N, H, W, C) array (float32 for ``entry="float"``, integers 0..255 for
    ``entry="uint8"``, -128..127 for an int8 header's ``entry="int8"``), or for a model of several
    inputs a list of one such array per input (``host.samples``: each sample's values back to
    back, passed as one pointer per input), embedded in the firmware's read-only data. ``inputs=None`` builds a
    *size-only* firmware (``predict`` linked but never called, no inputs embedded) and
    ``header_path=None`` the *empty firmware* (the same harness without any model): the size of
    the first minus the second is the model's footprint (:func:`footprint`).
    Returns the path of ``firmware.elf`` in ``out_dir``. Raises ``RuntimeError`` carrying the
    compiler's messages when the build fails.
    """
    if entry not in _ENTRY_CTYPES:
        raise ValueError(f"entry must be one of {', '.join(_ENTRY_CTYPES)}, got {entry!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if header_path is None:
        config = "/* generated by micronets.embedded.qemu: empty firmware (no model) */\n#define MN_NO_MODEL 1\n"
    else:
        _check_classname(classname)
        header_path = Path(header_path)
        if not header_path.is_file():
            raise FileNotFoundError(f"model header not found: {header_path}")
        from micronets import host

        x = None
        if inputs is not None:
            x = host.samples(inputs)
            if x.ndim < 2 or x.shape[0] < 1:
                raise ValueError(f"inputs must be shaped (N, H, W, C) with N >= 1, got {x.shape}")
            if entry == "float":
                x = x.astype(np.float32)
            else:
                low, high = (0, 255) if entry == "uint8" else (-128, 127)
                if x.min() < low or x.max() > high:
                    raise ValueError(f"{entry} inputs must lie in {low}..{high}")
                x = x.astype(np.uint8 if entry == "uint8" else np.int8)
        shutil.copyfile(header_path, out / "model.h")
        size_expr, args = host.predict_arguments(str(header_path), classname, "sample")
        config = _samples_header(classname, "model.h", x, entry, size_expr, args, host.output_arrays(str(header_path)))
    (out / "mn_config.h").write_text(config)

    elf = out / "firmware.elf"
    cmd = [
        _tool(CXX),
        *CPU_FLAGS,
        opt,
        *WARN_FLAGS,
        *CXX_FLAGS,
        *extra_flags,
        f"-I{out}",
        f"-I{HERE}",
        *[str(HERE / s) for s in HARNESS_SOURCES],
        f"-T{HERE / LINKER_SCRIPT}",
        *LINK_FLAGS,
        f"-Wl,-Map={out / 'firmware.map'}",
        "-o",
        str(elf),
        "-lm",
    ]
    _run(cmd, "firmware build")
    return elf


def build_empty_firmware(out_dir: Union[str, Path], opt: str = "-O2", extra_flags: Sequence[str] = ()) -> Path:
    """The harness alone (no model, no driver loop): the RAM baseline of :func:`model_footprint`."""
    return build_firmware(None, out_dir=out_dir, opt=opt, extra_flags=extra_flags)


#: A model with the generated-header interface that computes nothing. Linked into the same
#: size-only driver as a real model, it makes a firmware that differs from the real one only by
#: the model: the flash baseline of :func:`model_footprint`.
NULL_MODEL_HEADER = """\
/* generated by micronets.embedded.qemu: a null model (same interface, no weights, no kernels) */
#ifndef MN_NULL_MODEL_H
#define MN_NULL_MODEL_H
#include <stdint.h>
#include <string.h>
class MN_NullModel {{
public:
    enum {{ numInputs = {num_inputs}, numOutputs = {num_outputs} }};
    float outputs[numOutputs];
    uint16_t output;
    float proba;
    MN_NullModel() : output(0), proba(0.0f) {{ memset(outputs, 0, sizeof(outputs)); }}
    __attribute__((noinline)) uint16_t predict(const float* input) {{ (void)input; return 0; }}
    __attribute__((noinline)) uint16_t predict(const uint8_t* input) {{ (void)input; return 0; }}
}};
#endif
"""


def model_interface(header_path: Union[str, Path], classname: str) -> Dict[str, int]:
    """``numInputs`` and ``numOutputs`` of class ``classname`` as declared in ``header_path``."""
    text = Path(header_path).read_text(encoding="utf-8", errors="replace")
    found = re.search(r"\bclass\s+" + re.escape(classname) + r"\b[^;{]*\{.*?\bnumInputs\s*=\s*(\d+)"
                      r".*?\bnumOutputs\s*=\s*(\d+)", text, re.S)
    if found is None:
        raise ValueError(f"{header_path}: no class {classname} declaring numInputs and numOutputs")
    return {"numInputs": int(found.group(1)), "numOutputs": int(found.group(2))}


def build_baseline_firmware(
    out_dir: Union[str, Path],
    num_inputs: int,
    num_outputs: int,
    opt: str = "-O2",
    entry: str = "float",
    extra_flags: Sequence[str] = (),
) -> Path:
    """The size-only firmware of a null model with ``num_inputs`` inputs and ``num_outputs``
    outputs: the same harness and driver loop as a real model's, no weights, no kernels."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header = out / "null_model.h"
    header.write_text(NULL_MODEL_HEADER.format(num_inputs=int(num_inputs), num_outputs=int(num_outputs)))
    return build_firmware(header, "MN_NullModel", None, out / "fw", opt=opt, entry=entry, extra_flags=extra_flags)


def model_footprint(
    header_path: Union[str, Path],
    classname: str,
    out_dir: Union[str, Path],
    opt: str = "-O2",
    entry: str = "float",
    extra_flags: Sequence[str] = (),
) -> Dict[str, int]:
    """Flash and RAM of the model alone, measured on three firmwares built with the same flags.

    ``flash``: text + data of the size-only firmware (``predict`` linked, never run, no inputs
    embedded) minus those of the same firmware around a null model (:data:`NULL_MODEL_HEADER`):
    the weights, the kernels' code and the library code (libm, libgcc) the model pulls in; the
    harness, its driver loop and any test input cancel out. ``ram``: data + bss of the same
    difference plus the null model's object (``4 * numOutputs + 8`` bytes under the ARM EABI:
    outputs, a padded uint16 and a float): the model object (``sizeof(net)``) plus the library
    data the model pulls in. Also returns the size-only and null firmwares' ``text``/``data``/``bss``
    as ``model_*`` and ``null_*``.
    """
    out = Path(out_dir)
    iface = model_interface(header_path, classname)
    model = size(build_firmware(header_path, classname, None, out / "model", opt=opt, entry=entry,
                                extra_flags=extra_flags))
    null = size(build_baseline_firmware(out / "null", iface["numInputs"], iface["numOutputs"], opt=opt,
                                        entry=entry, extra_flags=extra_flags))
    null_object = 4 * iface["numOutputs"] + 8
    result = {
        "flash": model["text"] + model["data"] - null["text"] - null["data"],
        "ram": model["data"] + model["bss"] - null["data"] - null["bss"] + null_object,
    }
    for name, sizes in (("model", model), ("null", null)):
        result.update({f"{name}_{key}": value for key, value in sizes.items()})
    return result


# --------------------------------------------------------------------------- running
@dataclasses.dataclass
class RunResult:
    """What one QEMU run of a firmware printed, decoded.

    ``outputs``: (N, all outputs' values) float32, bit-exact copies of ``net.outputs`` after each
    input, then of ``outputs1``, ... for a model of several outputs (as ``host.run`` lays them out).
    ``classes``, ``output``, ``proba``: the return value of ``predict``, ``net.output`` and
    ``net.proba`` per input. ``instructions``: instructions of the first input's ``predict`` call
    (``instructions_per_input`` has all of them; they differ slightly with the data, e.g. in
    ``expf``). ``calibration``: the measured count of a 2-instruction-per-iteration loop, next to
    its true count. ``stack_bytes``: the program's peak stack use. ``object_bytes``:
    ``sizeof(net)``.
    """

    outputs: np.ndarray
    classes: np.ndarray
    output: np.ndarray
    proba: np.ndarray
    instructions: Optional[int]
    instructions_per_input: List[int]
    calibration: Dict[str, int]
    stack_bytes: int
    object_bytes: int
    stdout: str


def _bits_to_float(hexes: Sequence[str]) -> np.ndarray:
    return np.array([int(h, 16) for h in hexes], dtype=np.uint32).view(np.float32)


def _ticks_to_instructions(ticks: int, shift: int) -> int:
    return int(round(ticks * TIMER_NS_PER_TICK / float(1 << shift)))


def parse_output(stdout: str, shift: int = DEFAULT_SHIFT) -> RunResult:
    """Decode the driver's lines (see ``driver.cpp``) into a :class:`RunResult`."""
    fields: Dict[str, Dict[str, str]] = {}
    runs: Dict[int, Dict[str, str]] = {}
    outs: Dict[int, List[str]] = {}
    for raw in stdout.splitlines():
        line = raw.strip()
        if not line.startswith("MN_"):
            continue
        tag, _, rest = line.partition(" ")
        if tag == "MN_OUT":
            idx, _, vals = rest.partition(" ")
            i = int(idx.split("=")[1])
            outs.setdefault(i, []).extend(v for v in vals.split(",") if v)
            continue
        kv = dict(p.split("=", 1) for p in rest.split() if "=" in p)
        if tag == "MN_RUN":
            runs[int(kv["i"])] = kv
        else:
            fields[tag] = kv
    if "MN_FAULT" in stdout or "MN_ERROR" in stdout:
        raise RuntimeError(f"firmware reported an error:\n{stdout}")
    if "MN_END" not in fields:
        raise RuntimeError(f"firmware output is incomplete (no MN_END line):\n{stdout}")
    begin = fields["MN_BEGIN"]
    n, k = int(begin["samples"]), int(begin["outputs"])
    null_ticks = int(fields["MN_NULL"]["ticks"])
    per_input = [_ticks_to_instructions(int(runs[i]["ticks"]) - null_ticks, shift) for i in range(n)]
    cal = fields["MN_CAL"]
    calibration = {
        "expected": int(cal["instructions"]),
        "measured": _ticks_to_instructions(int(cal["ticks"]) - null_ticks, shift),
    }
    outputs = np.stack([_bits_to_float(outs[i]) for i in range(n)]) if n else np.zeros((0, k), np.float32)
    if outputs.shape != (n, k):
        raise RuntimeError(f"expected {n}x{k} outputs, parsed {outputs.shape}:\n{stdout}")
    return RunResult(
        outputs=outputs,
        classes=np.array([int(runs[i]["cls"]) for i in range(n)], dtype=np.int64),
        output=np.array([int(runs[i]["output"]) for i in range(n)], dtype=np.int64),
        proba=_bits_to_float([runs[i]["proba"] for i in range(n)]) if n else np.zeros(0, np.float32),
        instructions=per_input[0] if per_input else None,
        instructions_per_input=per_input,
        calibration=calibration,
        stack_bytes=int(fields["MN_STACK"]["bytes"]),
        object_bytes=int(begin["sizeof"]),
        stdout=stdout,
    )


def run_firmware(elf: Union[str, Path], timeout: float = 60, shift: int = DEFAULT_SHIFT) -> RunResult:
    """Run ``elf`` on QEMU's mps2-an386 with semihosting and deterministic ``-icount``."""
    if not 0 <= shift <= 10:
        raise ValueError("shift must be in 0..10")
    elf = Path(elf)
    if not elf.is_file():
        raise FileNotFoundError(f"firmware not found: {elf}")
    cmd = [
        _tool(QEMU),
        "-M", "mps2-an386",
        "-nographic",
        "-monitor", "none",
        "-serial", "none",
        "-semihosting-config", "enable=on,target=native",
        "-icount", f"shift={shift},align=off,sleep=off",
        "-kernel", str(elf),
    ]  # fmt: skip
    proc = _run(cmd, "QEMU run", timeout=timeout)
    # QEMU writes semihosting console output to its stderr (target=native, no chardev given)
    return parse_output(proc.stdout + proc.stderr, shift)


# --------------------------------------------------------------------------- sizes
def size(elf: Union[str, Path]) -> Dict[str, int]:
    """``arm-none-eabi-size`` of an ELF: text (code + read-only data), data, bss, in bytes.

    Flash use is ``text + data`` (``.data`` has its initial image in flash), RAM use is
    ``data + bss`` (plus the stack, which :class:`RunResult` reports separately).
    """
    proc = _run([_tool(SIZE), "-B", str(elf)], "arm-none-eabi-size")
    lines = proc.stdout.strip().splitlines()
    text, data, bss = (int(v) for v in lines[-1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def footprint(elf: Union[str, Path], empty_elf: Union[str, Path]) -> Dict[str, int]:
    """Flash and RAM of a model: ``size(elf)`` minus the empty firmware's, as flash/ram bytes."""
    a, b = size(elf), size(empty_elf)
    d = {key: a[key] - b[key] for key in a}
    return {"flash": d["text"] + d["data"], "ram": d["data"] + d["bss"], **d}


# --------------------------------------------------------------------------- xtensa
def xtensa_compile(
    header_path: Union[str, Path],
    classname: str = "Net",
    out_dir: Optional[Union[str, Path]] = None,
    extra_flags: Sequence[str] = (),
) -> None:
    """Compile-only check of a header for an Xtensa core (``xtensa-lx106-elf-g++``, ESP8266).

    The ESP32-S3's LX7 toolchain is not packaged by Debian; the lx106 one still proves the header
    builds with a bare newlib and no C++ standard library. Raises ``RuntimeError`` with the
    compiler's messages on failure.
    """
    import tempfile

    _check_classname(classname)
    header_path = Path(header_path).resolve()
    if not header_path.is_file():
        raise FileNotFoundError(f"model header not found: {header_path}")
    tu = (
        f'#include "{header_path}"\n'
        f"static {classname} mn_net;\n"
        f"static float mn_input[{classname}::numInputs];\n"
        "int mn_classify(void);\n"
        "int mn_classify(void)\n{\n"
        "    const uint16_t cls = mn_net.predict(mn_input);\n"
        "    return (int)cls + (mn_net.proba > 0.5f ? 1 : 0) + (int)mn_net.output + (int)mn_net.outputs[0];\n"
        "}\n"
    )
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        src = Path(tmp) / "xtensa_check.cpp"
        src.write_text(tu)
        cmd = [
            _tool(XTENSA_CXX),
            "-isystem", "/usr/include/newlib",
            "-O2",
            *WARN_FLAGS,
            "-fno-exceptions",
            "-fno-rtti",
            *extra_flags,
            "-c", str(src),
            "-o", str(Path(tmp) / "xtensa_check.o"),
        ]  # fmt: skip
        _run(cmd, "xtensa-lx106 compile")


__all__ = [
    "RunResult",
    "build_firmware",
    "build_empty_firmware",
    "run_firmware",
    "parse_output",
    "size",
    "footprint",
    "model_footprint",
    "build_baseline_firmware",
    "xtensa_compile",
    "toolchain_versions",
]
