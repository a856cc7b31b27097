"""The TensorFlow Lite for Microcontrollers baseline: convert, find the smallest arena, run, time.

Conversion runs in the calling process (it needs TensorFlow). Everything that touches the TFLM
interpreter runs in a child process forked from a small fork server that has imported only numpy
and ``tflite_micro``: too small an arena can crash the interpreter, and a crash must cost one
probe, not the benchmark. Forking from that server takes milliseconds, so every probe of the
arena bisection gets its own fresh process.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import tempfile
import time
from typing import Dict, Optional, Tuple

import numpy as np

# TFLM aligns its allocations to 16 bytes: a finer bisection would only measure that rounding.
ARENA_RESOLUTION = 16
_MISSING = re.compile(r"missing:\s*(\d+)")


# --------------------------------------------------------------------------- conversion (TF)
def _concrete_function(model, batch: int = 1):
    import tensorflow as tf

    specs = [tf.TensorSpec([batch] + [int(d) for d in t.shape[1:]], tf.float32) for t in model.inputs]

    @tf.function(input_signature=specs)
    def infer(*xs):  # one argument per model input, in the model's order
        return model(list(xs) if len(xs) > 1 else xs[0], training=False)

    return infer.get_concrete_function()


def convert(model, representative: Optional[np.ndarray] = None) -> bytes:
    """The Keras model as a .tflite flatbuffer: float32, or full-integer int8 (int8 input and
    output) when ``representative`` images are given for post-training quantization (then exactly
    the conversion micronets' own int8 path makes: :func:`micronets.compiler.int8.quantize_keras`).

    Converted from a concrete function alone: passing the Keras model as well would keep the
    weights as variables.
    """
    import logging
    import warnings

    import tensorflow as tf

    if representative is not None:
        from micronets.compiler.int8 import quantize_keras

        return quantize_keras(model, np.asarray(representative, np.float32))
    logging.getLogger("absl").setLevel(logging.ERROR)  # the "trackable_obj" deprecation notice
    warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([_concrete_function(model)])
    # The converter's C++ side prints a "fully_quantize: ..." line per model on fd 2: keep it
    # out of the progress log, but show what it said if the conversion fails.
    saved = os.dup(2)
    sink = _capture_stderr()
    try:
        return converter.convert()
    except Exception:
        sink.seek(0)
        os.write(saved, sink.read())
        raise
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        sink.close()


# --------------------------------------------------------------------------- children (TFLM)
def _capture_stderr():
    """Point fd 2 at a temp file (TFLM reports allocation failures there from C++)."""
    sink = tempfile.TemporaryFile(mode="w+b")
    os.dup2(sink.fileno(), 2)
    return sink


def _quantize(x: np.ndarray, details) -> np.ndarray:
    dtype = details["dtype"]
    if np.issubdtype(dtype, np.floating):
        return x.astype(dtype)
    q = details["quantization_parameters"]
    scale, zero = float(q["scales"][0]), int(q["zero_points"][0])
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, details) -> np.ndarray:
    if np.issubdtype(details["dtype"], np.floating):
        return y.astype(np.float32)
    q = details["quantization_parameters"]
    scale, zero = float(q["scales"][0]), int(q["zero_points"][0])
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def _probe_child(conn, path: str, arena_size: int):
    """Child: does the model allocate and run once with ``arena_size`` bytes? Sends (ok, missing)."""
    sink = _capture_stderr()
    from tflite_micro import runtime

    ok = True
    try:
        interp = runtime.Interpreter.from_file(path, arena_size=arena_size)
        details = interp.get_input_details(0)
        interp.set_input(np.zeros(details["shape"], details["dtype"]), 0)
        interp.invoke()
        interp.get_output(0)
    except Exception:  # RuntimeError("TFLM failed to allocate tensors") and friends
        ok = False
    sink.seek(0)
    found = _MISSING.findall(sink.read().decode("utf-8", "replace"))
    conn.send((ok, int(found[-1]) if found else None))
    conn.close()


def _run_child(conn, path: str, arena_size: int, inputs: np.ndarray, min_time: float, min_repeats: int):
    """Child: outputs for ``inputs`` (float, dequantized) and per-invoke times (seconds)."""
    _capture_stderr()
    from tflite_micro import runtime

    interp = runtime.Interpreter.from_file(path, arena_size=arena_size)
    din, dout = interp.get_input_details(0), interp.get_output_details(0)
    outputs = []
    for x in inputs:
        interp.set_input(_quantize(x[None], din), 0)
        interp.invoke()
        outputs.append(_dequantize(np.array(interp.get_output(0)), dout).reshape(-1))
    times = []
    interp.set_input(_quantize(inputs[:1], din), 0)
    interp.invoke()  # warm-up
    start = time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        interp.invoke()
        times.append(time.perf_counter() - t0)
    conn.send((np.stack(outputs), times))
    conn.close()


class TflmRunner:
    """Runs TFLM work in children forked from a fork server that preloads ``tflite_micro``."""

    def __init__(self):
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload([__name__, "numpy", "tflite_micro"])
        self.probes = 0

    def _call(self, target, *args, timeout: float = 300.0):
        recv, send = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=target, args=(send,) + args)
        proc.start()
        send.close()
        result = None
        try:
            if recv.poll(timeout):
                result = recv.recv()
        except EOFError:  # the child died before sending (segfault, abort)
            result = None
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
            proc.join()
        return result, proc.exitcode

    def probe(self, path: str, arena_size: int) -> Tuple[bool, Optional[int]]:
        """(works, bytes TFLM said were missing) for one arena size, in a fresh child."""
        self.probes += 1
        result, code = self._call(_probe_child, path, int(arena_size), timeout=120)
        if result is None:
            return False, None  # crashed: counts as too small
        ok, missing = result
        return bool(ok and code == 0), missing

    def smallest_arena(self, path: str, start: int = 1 << 16, limit: int = 1 << 28) -> Dict[str, int]:
        """The smallest ``arena_size`` that allocates and invokes, to ARENA_RESOLUTION bytes.

        Grow from ``start`` until one works; then bisect. A failing probe's "missing: N" report
        is used as the next guess (failed size + N) when it falls inside the open interval, which
        usually lands within a few bytes of the answer.
        """
        probes0 = self.probes
        lo, hi = 0, None  # lo: largest size known to fail; hi: smallest known to work
        size = int(start)
        while hi is None:
            ok, missing = self.probe(path, size)
            if ok:
                hi = size
            else:
                lo = size
                if size >= limit:
                    raise RuntimeError(f"TFLM could not run {path} even with a {limit}-byte arena")
                size = min(limit, max(size * 2, size + (missing or 0) * 2))
        guess = None
        while hi - lo > ARENA_RESOLUTION:
            size = guess if guess is not None and lo < guess < hi else (lo + hi) // 2
            ok, missing = self.probe(path, size)
            if ok:
                hi = size
                guess = None
            else:
                lo = size
                guess = size + missing if missing else None
        return {"arena": hi, "probes": self.probes - probes0}

    def run(self, path: str, arena_size: int, inputs: np.ndarray, min_time: float = 0.5,
            min_repeats: int = 20, return_times: bool = False):
        """(outputs for ``inputs``, median seconds per invoke) with the given arena; with
        ``return_times`` the list of per-invoke seconds instead of their median."""
        result, code = self._call(_run_child, path, int(arena_size), np.asarray(inputs, np.float32),
                                  float(min_time), int(min_repeats), timeout=600)
        if result is None:
            raise RuntimeError(f"TFLM run of {path} failed (exit code {code})")
        outputs, times = result
        return outputs, (list(times) if return_times else float(np.median(times)))
