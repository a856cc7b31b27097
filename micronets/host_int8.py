"""Build and run a generated int8 header on this machine with g++ (tests, benchmarks).

The driver reads inputs as raw int8 / uint8 / float32 from stdin and writes, per input, the raw
outputs (``rawOutputs``, the model's int8 or uint8 values) followed by the dequantised float32
``outputs``, so both come back bit-exact.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from typing import Optional, Sequence, Tuple

import numpy as np

from micronets.host import STRICT_FLAGS, compile_driver

_DRIVER = r"""
#include <stdio.h>
#include <string.h>
#include "%(header)s"

static %(cls)s net;

template <typename T>
static int classify(void)
{
    static T image[%(cls)s::numInputs];
    while (fread(image, sizeof(T), %(cls)s::numInputs, stdin) == (size_t)%(cls)s::numInputs) {
        const unsigned long cls = (unsigned long)net.predict(image);
        if (cls != (unsigned long)net.output || net.proba != net.outputs[cls])
            return 3;
        fwrite(net.rawOutputs, sizeof(net.rawOutputs[0]), %(cls)s::numOutputs, stdout);
        fwrite(net.outputs, sizeof(float), %(cls)s::numOutputs, stdout);
    }
    return 0;
}

int main(int argc, char** argv)
{
    const char* mode = argc > 1 ? argv[1] : "int8";
    if (!strcmp(mode, "int8"))
        return classify<int8_t>();
    if (!strcmp(mode, "uint8"))
        return classify<uint8_t>();
    if (!strcmp(mode, "float"))
        return classify<float>();
    if (!strcmp(mode, "sizeof")) {
        printf("%%lu\n", (unsigned long)sizeof(%(cls)s));
        return 0;
    }
    return 2;
}
"""


def build(header_path: str, classname: str, out_dir: str, opt: str = "-O2", flags: Sequence[str] = (),
          std_flags: Sequence[str] = STRICT_FLAGS) -> str:
    header_path = os.path.abspath(header_path)
    return compile_driver(_DRIVER % {"header": header_path, "cls": classname}, header_path,
                          os.path.join(out_dir, f"driver8_{classname}"), opt, flags, std_flags)


def _raw_type(header_path: str):
    with open(header_path) as fh:
        text = fh.read()
    m = re.search(r"^    (u?int8_t) rawOutputs\[numOutputs\];", text, flags=re.M)
    if not m:
        raise ValueError(f"{header_path} is not a micronets int8 header")
    n = re.search(r"\bnumOutputs = (\d+)", text)
    return (np.int8 if m.group(1) == "int8_t" else np.uint8), int(n.group(1))


def run(exe: str, header_path: str, x: np.ndarray, entry: str = "int8", timeout: float = 300) -> Tuple[np.ndarray, np.ndarray]:
    """(raw outputs (N, numOutputs) int8/uint8, dequantised outputs (N, numOutputs) float32)."""
    dtype = {"int8": np.int8, "uint8": np.uint8, "float": np.float32}[entry]
    raw_type, n_out = _raw_type(header_path)
    data = np.ascontiguousarray(np.asarray(x).astype(dtype, copy=False)).tobytes()
    proc = subprocess.run([exe, entry], input=data, capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{exe} exited with {proc.returncode}:\n{proc.stderr.decode(errors='replace')[-4000:]}")
    record = n_out + 4 * n_out
    buf = proc.stdout
    if len(buf) != record * len(x):
        raise RuntimeError(f"{exe} wrote {len(buf)} bytes for {len(x)} inputs ({record} each expected)")
    arr = np.frombuffer(buf, np.uint8).reshape(len(x), record)
    raw = arr[:, :n_out].copy().view(raw_type)
    out = arr[:, n_out:].copy().view(np.float32)
    return raw, out


def run_header(header_path: str, classname: str, x: np.ndarray, entry: str = "int8", opt: str = "-O2",
               out_dir: Optional[str] = None, flags: Sequence[str] = ()) -> Tuple[np.ndarray, np.ndarray]:
    """Compile ``header_path`` (strict C++98) and run it on inputs ``x``."""
    with tempfile.TemporaryDirectory(prefix="micronets-int8-") as tmp:
        exe = build(header_path, classname, out_dir or tmp, opt=opt, flags=flags)
        return run(exe, header_path, x, entry=entry)


def sizeof_net(header_path: str, classname: str) -> int:
    with tempfile.TemporaryDirectory(prefix="micronets-int8-") as tmp:
        exe = build(header_path, classname, tmp)
        return int(subprocess.run([exe, "sizeof"], capture_output=True, text=True, check=True).stdout)
