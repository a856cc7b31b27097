"""Build and run a generated header on this machine with g++ (tests, demo, benchmarks).

A small driver includes the header, reads images as raw float32/uint8 from stdin, and writes the
output probabilities as raw float32 to stdout, so values come back bit-exact.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from typing import Optional, Sequence

import numpy as np

STRICT_FLAGS = ["-std=c++98", "-pedantic", "-Wall", "-Wextra", "-Werror"]
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"]

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

template <typename T>
static int classify(void)
{
    static T image[%(cls)s::numInputs];
    while (fread(image, sizeof(T), %(cls)s::numInputs, stdin) == (size_t)%(cls)s::numInputs) {
        const unsigned long cls = (unsigned long)net.predict(image);
        if (cls != (unsigned long)net.output || net.proba != net.outputs[cls])
            return 3;
        fwrite(net.outputs, sizeof(float), %(cls)s::numOutputs, stdout);%(extra)s
    }
    return 0;
}

int main(int argc, char** argv)
{
    const char* mode = argc > 1 ? argv[1] : "float";
    if (!strcmp(mode, "float"))
        return classify<float>();
    if (!strcmp(mode, "uint8"))
        return classify<uint8_t>();
    if (!strcmp(mode, "sizeof")) {
        printf("%%lu\n", (unsigned long)sizeof(%(cls)s));
        return 0;
    }
    if (!strcmp(mode, "time")) {
        // time <runs> <batch>: median-free raw samples, one line each (seconds per inference)
        const int runs = argc > 2 ? atoi(argv[2]) : 20, batch = argc > 3 ? atoi(argv[3]) : 10;
        static float image[%(cls)s::numInputs];
        for (int i = 0; i < %(cls)s::numInputs; ++i)
            image[i] = (float)((i * 37) %% 101) / 101.0f;
        net.predict(image);
        for (int r = 0; r < runs; ++r) {
            const double t0 = now();
            for (int b = 0; b < batch; ++b)
                net.predict(image);
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
    """Compile the driver for ``header_path`` into ``out_dir`` (a new temporary folder, left for
    the caller to remove, when None); returns the executable's path."""
    header_path = os.path.abspath(header_path)
    out_dir = out_dir or tempfile.mkdtemp(prefix="micronets-host-")
    extra = "".join(f"\n        fwrite(net.outputs{k}, sizeof(float), {classname}::numOutputs{k}, stdout);"
                    for k in range(1, output_arrays(header_path)))
    return compile_driver(_DRIVER % {"header": header_path, "cls": classname, "extra": extra}, header_path,
                          os.path.join(out_dir, f"driver_{classname}" + ("_asan" if sanitize else "")), opt,
                          [*flags, *(SANITIZE_FLAGS if sanitize else [])], std_flags, link=["-lm"])


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


def run(exe: str, x: np.ndarray, num_outputs: int, entry: str = "float", timeout: float = 300) -> np.ndarray:
    """Run a built driver on inputs ``x`` (N, ...); returns (N, num_outputs) float32, every output
    array of the model (``outputs``, ``outputs1``, ...) concatenated per input."""
    dtype = np.float32 if entry == "float" else np.uint8
    data = np.ascontiguousarray(np.asarray(x).astype(dtype, copy=False)).tobytes()
    proc = subprocess.run([exe, entry], input=data, capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{exe} exited with {proc.returncode}:\n{proc.stderr.decode(errors='replace')[-6000:]}")
    out = np.frombuffer(proc.stdout, dtype=np.float32)
    return out.reshape(len(x), num_outputs)


def _workdir(out_dir: Optional[str]):
    """``out_dir`` as a context manager, or a temporary folder removed afterwards."""
    if out_dir:
        return contextlib.nullcontext(out_dir)
    return tempfile.TemporaryDirectory(prefix="micronets-host-")


def run_header(header_path: str, classname: str, x: np.ndarray, entry: str = "float",
               sanitize: bool = False, opt: str = "-O2", out_dir: Optional[str] = None) -> np.ndarray:
    """Compile ``header_path`` (strict C++98) and classify images ``x``; (N, num_classes) float32."""
    with _workdir(out_dir) as work:
        exe = build(header_path, classname, out_dir=work, opt=opt, sanitize=sanitize)
        total = sum(_enum_value(header_path, "numOutputs" + (str(k) if k else "")) for k in range(output_arrays(header_path)))
        return run(exe, x, total, entry=entry)


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


def _enum_value(header_path: str, name: str) -> int:
    import re

    with open(header_path) as fh:
        m = re.search(rf"\b{name} = (\d+)", fh.read())
    if not m:
        raise ValueError(f"{header_path} is not a micronets header ({name} not found)")
    return int(m.group(1))


def output_arrays(header_path: str) -> int:
    """How many output arrays the generated class has (one per model output)."""
    import re

    with open(header_path) as fh:
        text = fh.read()
    return len(re.findall(r"^    float outputs\d*\[numOutputs\d*\];", text, flags=re.M))
