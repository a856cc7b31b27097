"""Build and run a generated header, float or int8, on this machine with g++ (tests, demo, benchmarks).

One small driver includes the header, reads inputs as raw float32 / uint8 (and int8, for an int8
header) from stdin, and writes per input the model's outputs as raw bytes to stdout, so values come
back bit-exact: a float header's output arrays (``outputs``, ``outputs1``, ...) as float32; an int8
header's raw outputs (``rawOutputs``, int8 or uint8) followed by its dequantised float32 ``outputs``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from typing import Optional, Sequence, Tuple

import numpy as np

STRICT_FLAGS = ["-std=c++98", "-pedantic", "-Wall", "-Wextra", "-Werror"]
#: The kernels' forced inlining (MICRONETS_INLINE: always_inline, for speed) relaxed to plain
#: ``inline``: the same code and the same arithmetic (no fast-math, so float results are equal bit
#: for bit), but g++ no longer builds one predict() of every kernel body. For checks of what a
#: header computes, not of the build users ship: MobileNetV3-Large's float header (32x32, 0.85M
#: weights) compiles at -O2 in 12.8 s instead of 28.5 s, and runs 35% slower.
RELAXED_INLINE = ["-DMICRONETS_INLINE=inline"]
#: ASan + UBSan, inlining relaxed (an instrumented small PhiNet: 160 s to compile -> 28 s). The
#: tests build these at -O0: every access and operation still checked (none optimised away), and
#: the same PhiNet compiles in 11 s instead of 41 s at -O1; only the run is slower.
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g",
                  *RELAXED_INLINE]

_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "%(header)s"

static %(cls)s net;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

enum { MnRecord = %(record_size)s }; // one sample: every input's values, in the model's order

template <typename MnPixel> // (not T: a network class may be called T)
static int classify(void)
{
    static MnPixel image[MnRecord];
    while (fread(image, sizeof(MnPixel), MnRecord, stdin) == (size_t)MnRecord) {
        const unsigned long cls = (unsigned long)net.predict(%(args)s);
        if (cls != (unsigned long)net.output || net.proba != net.outputs[cls])
            return 3;%(record)s
    }
    return 0;
}

int main(int argc, char** argv)
{
    const char* mode = argc > 1 ? argv[1] : "float";
    if (!strcmp(mode, "float"))
        return classify<float>();
%(uint8_entry)s%(int8_entry)s
    if (!strcmp(mode, "sizeof")) {
        printf("%%lu\n", (unsigned long)sizeof(%(cls)s));
        return 0;
    }
    if (!strcmp(mode, "time")) {
        // time <runs> <batch>: median-free raw samples, one line each (seconds per inference)
        const int runs = argc > 2 ? atoi(argv[2]) : 20, batch = argc > 3 ? atoi(argv[3]) : 10;
        static float image[MnRecord];
        for (int i = 0; i < MnRecord; ++i)
            image[i] = (float)((i * 37) %% 101) / 101.0f;
        net.predict(%(args)s);
        for (int r = 0; r < runs; ++r) {
            const double t0 = now();
            for (int b = 0; b < batch; ++b)
                net.predict(%(args)s);
            printf("%%.9g\n", (now() - t0) / batch);
        }
        return 0;
    }
    return 2;
}
"""


def compiler() -> str:
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise RuntimeError(f"C++ compiler '{cxx}' not found; install g++ (apt-get install g++)")
    return cxx


def build(header_path: str, classname: str, out_dir: Optional[str] = None, opt: str = "-O2",
          flags: Sequence[str] = (), sanitize: bool = False, std_flags: Sequence[str] = STRICT_FLAGS) -> str:
    """Compile the driver for ``header_path`` (float or int8) into ``out_dir`` (a new temporary
    folder, left for the caller to remove, when None); returns the executable's path."""
    header_path = os.path.abspath(header_path)
    out_dir = out_dir or tempfile.mkdtemp(prefix="micronets-host-")
    w = "\n        fwrite(net.%s, sizeof(net.%s[0]), %s::%s, stdout);"
    if raw_output_type(header_path) is None:
        record = "".join(w % (f"outputs{k or ''}", f"outputs{k or ''}", classname, f"numOutputs{k or ''}")
                         for k in range(output_arrays(header_path)))
        int8_entry = ""
    else:
        # every raw output array, then every dequantised one
        record = "".join(w % (f"{kind}{k or ''}", f"{kind}{k or ''}", classname, f"numOutputs{k or ''}")
                         for kind in ("rawOutputs", "outputs") for k in range(output_arrays(header_path)))
        int8_entry = '\n    if (!strcmp(mode, "int8"))\n        return classify<int8_t>();'
    record_size, args = predict_arguments(header_path, classname, "image")
    # a header of several inputs has no uint8 entry (float, and int8 for an int8 header)
    uint8_entry = '    if (!strcmp(mode, "uint8"))\n        return classify<uint8_t>();' if "," not in args else ""
    return compile_driver(_DRIVER % {"header": header_path, "cls": classname, "record": record, "int8_entry": int8_entry,
                                     "uint8_entry": uint8_entry, "record_size": record_size, "args": args},
                          header_path, os.path.join(out_dir, f"driver_{classname}" + ("_asan" if sanitize else "")), opt,
                          [*flags, *(SANITIZE_FLAGS if sanitize else [])], std_flags, link=["-lm"])


def predict_arguments(header_path: str, classname: str, buffer: str) -> Tuple[str, str]:
    """For a driver holding one sample in ``buffer`` (every input's values, in the model's order):
    the C expression of the sample's size, and predict()'s arguments (one pointer per input)."""
    sizes = [f"{classname}::numInputs{k or ''}" for k in range(input_arrays(header_path))]
    args = [buffer] + [f"{buffer} + {' + '.join(sizes[:k])}" for k in range(1, len(sizes))]
    return " + ".join(sizes), ", ".join(args)


def compile_driver(source: str, header_path: str, exe: str, opt: str = "-O2", flags: Sequence[str] = (),
                   std_flags: Sequence[str] = STRICT_FLAGS, link: Sequence[str] = ()) -> str:
    """Write a driver's C++ ``source`` beside ``exe`` and compile it with the host's g++ (the
    header it includes is ``header_path``); one line of error with g++'s output on failure."""
    src = exe + ".cpp"
    with open(src, "w") as fh:
        fh.write(source)
    cmd = [compiler(), *std_flags, opt, *flags, src, "-o", exe, *link]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"g++ failed on {header_path}:\n{' '.join(cmd)}\n{proc.stderr[-6000:]}")
    return exe


_ENTRY_TYPES = {"float": np.float32, "uint8": np.uint8, "int8": np.int8}


def samples(x) -> np.ndarray:
    """Inputs as the driver reads them: ``x`` (N, ...) as is, or for a model of several inputs a
    list of arrays (N, ...) each, one per input in the model's order, as (N, all their values)."""
    if not isinstance(x, (list, tuple)):
        return np.asarray(x)
    arrays = [np.asarray(a) for a in x]
    if not arrays or len({len(a) for a in arrays}) != 1:
        raise ValueError(f"one array per model input, each with the same number of samples; got {[a.shape for a in arrays]}")
    return np.concatenate([a.reshape(len(a), -1) for a in arrays], axis=1)


def _exchange(exe: str, x, entry: str, record_bytes: int, timeout: float) -> np.ndarray:
    """Feed inputs ``x`` (N, ...), or one such array per model input, to a built driver as ``entry``
    values; its output as (N, record_bytes) bytes."""
    x = samples(x)
    data = np.ascontiguousarray(x.astype(_ENTRY_TYPES[entry], copy=False)).tobytes()
    proc = subprocess.run([exe, entry], input=data, capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{exe} exited with {proc.returncode}:\n{proc.stderr.decode(errors='replace')[-6000:]}")
    if len(proc.stdout) != record_bytes * len(x):
        raise RuntimeError(f"{exe} wrote {len(proc.stdout)} bytes for {len(x)} inputs ({record_bytes} each expected)")
    return np.frombuffer(proc.stdout, np.uint8).reshape(len(x), record_bytes)


def run(exe: str, x: np.ndarray, num_outputs: int, entry: str = "float", timeout: float = 300) -> np.ndarray:
    """Run a built float driver on inputs ``x`` (N, ...); returns (N, num_outputs) float32, every
    output array of the model (``outputs``, ``outputs1``, ...) concatenated per input."""
    return _exchange(exe, x, entry, 4 * num_outputs, timeout).copy().view(np.float32)


def run_int8(exe: str, header_path: str, x: np.ndarray, entry: str = "int8",
             timeout: float = 300) -> Tuple[np.ndarray, np.ndarray]:
    """Run a built int8 driver on inputs ``x`` (N, ...) given as ``entry`` ("int8", "uint8" or
    "float"); returns (raw outputs (N, all outputs' values) int8/uint8, dequantised outputs (N, the
    same) float32): every output array (``rawOutputs``, ``rawOutputs1``, ...) concatenated per input."""
    raw_type = raw_output_type(header_path)
    if raw_type is None:
        raise ValueError(f"{header_path} is not a micronets int8 header")
    n_out = sum(output_sizes(header_path))
    out = _exchange(exe, x, entry, 5 * n_out, timeout)
    return out[:, :n_out].copy().view(raw_type), out[:, n_out:].copy().view(np.float32)


def _workdir(out_dir: Optional[str]):
    """``out_dir`` as a context manager, or a temporary folder removed afterwards."""
    if out_dir:
        return contextlib.nullcontext(out_dir)
    return tempfile.TemporaryDirectory(prefix="micronets-host-")


def run_header(header_path: str, classname: str, x: np.ndarray, entry: str = "float",
               sanitize: bool = False, opt: str = "-O2", out_dir: Optional[str] = None) -> np.ndarray:
    """Compile ``header_path`` (strict C++98) and classify images ``x`` (N, ...; for a model of
    several inputs, one such array per input); (N, all outputs' values) float32."""
    with _workdir(out_dir) as work:
        exe = build(header_path, classname, out_dir=work, opt=opt, sanitize=sanitize)
        return run(exe, x, sum(output_sizes(header_path)), entry=entry)


def run_header_int8(header_path: str, classname: str, x: np.ndarray, entry: str = "int8", opt: str = "-O2",
                    out_dir: Optional[str] = None, flags: Sequence[str] = ()) -> Tuple[np.ndarray, np.ndarray]:
    """Compile int8 header ``header_path`` (strict C++98) and run it on inputs ``x``; see :func:`run_int8`."""
    with _workdir(out_dir) as work:
        exe = build(header_path, classname, out_dir=work, opt=opt, flags=flags)
        return run_int8(exe, header_path, x, entry=entry)


def sizeof_net(header_path: str, classname: str, out_dir: Optional[str] = None) -> int:
    """``sizeof(classname)`` as the compiler lays the object out."""
    with _workdir(out_dir) as work:
        exe = build(header_path, classname, out_dir=work)
        return int(subprocess.run([exe, "sizeof"], capture_output=True, text=True, check=True).stdout)


def time_header(header_path: str, classname: str, runs: int = 30, batch: int = 10, opt: str = "-O2",
                out_dir: Optional[str] = None) -> float:
    """Median host latency of one ``predict(const float*)`` in seconds."""
    with _workdir(out_dir) as work:
        exe = build(header_path, classname, out_dir=work, opt=opt)
        out = subprocess.run([exe, "time", str(runs), str(batch)], capture_output=True, text=True, check=True).stdout
    return float(np.median([float(v) for v in out.split()]))


def _header_text(header_path: str) -> str:
    with open(header_path) as fh:
        return fh.read()


def _enum_value(header_path: str, name: str) -> int:
    m = re.search(rf"\b{name} = (\d+)", _header_text(header_path))
    if not m:
        raise ValueError(f"{header_path} is not a micronets header ({name} not found)")
    return int(m.group(1))


def input_arrays(header_path: str) -> int:
    """How many inputs the generated class's predict() takes (one per model input)."""
    return len(re.findall(r"\bnumInputs\d* = \d+", _header_text(header_path)))


def output_arrays(header_path: str) -> int:
    """How many output arrays the generated class has (one per model output)."""
    return len(re.findall(r"^    float outputs\d*\[numOutputs\d*\];", _header_text(header_path), flags=re.M))


def output_sizes(header_path: str):
    """The size of each output array of a header, float or int8 (``numOutputs``, ``numOutputs1``, ...)."""
    return [_enum_value(header_path, "numOutputs" + (str(k) if k else "")) for k in range(output_arrays(header_path))]


def raw_output_type(header_path: str):
    """np.int8 or np.uint8 for an int8 header (the type of its ``rawOutputs``); None for a float header."""
    m = re.search(r"^    (u?int8_t) rawOutputs\[numOutputs\];", _header_text(header_path), flags=re.M)
    return None if m is None else (np.int8 if m.group(1) == "int8_t" else np.uint8)
