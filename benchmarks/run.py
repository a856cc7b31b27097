#!/usr/bin/env python
"""micronets benchmark: RAM, flash, speed and output agreement against TFLM, in one run.

    python benchmarks/run.py                 # all nets, writes benchmarks/RESULTS.md (+ .png, .json)
    python benchmarks/run.py --quick         # Pico, Micro and PhiNet 2M, fewer inputs and repeats
    python benchmarks/run.py --out /tmp/R.md --models pico,phinet-2m

For every net (the five MobileNetV1 sizes at 96x96x1 and the four PhiNet presets at their
published resolutions, 10 classes) it measures:

* RAM: our arena and sizeof(net); the lower bounds from our planner (layer-wise in+out, live set);
  the naive ping-pong plan (2 x the largest float32 tensor, ZeroPadding2D outputs materialised);
  TFLM's smallest working arena for the float32 and int8 .tflite of the same model (bisection,
  one child process per probe).
* Flash: our weight bytes, .tflite sizes, Cortex-M4 flash of the model alone (when the emulator helper
  exists; the test harness and its test image are not counted).
* Speed: host latency of our header (-O2) and of TFLM float, same run; Cortex-M4 instructions
  per inference and per MAC under QEMU (when available).
* Agreement: max |difference| of ours and TFLM's outputs from Keras on the same real images,
  with weights rescaled so the nets do not output uniform probabilities.

Needs the ``bench`` extra (tflite-micro, matplotlib). Pieces of micronets that are missing
(compiler, host runner, emulator, PhiNet) are reported as "n/a" with the reason.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from tflm_side import TflmRunner, convert  # noqa: E402  (TensorFlow is imported lazily)

MOBILENETS = ["pico", "nano", "micro", "milli", "base"]
PHINETS = ["phinet-2m", "phinet-5m", "phinet-10m", "phinet-20m"]
QUICK = ["pico", "micro", "phinet-2m"]
# Nets the Cortex-M4 instructions/MAC target applies to (issue 7 leaves out Pico and Nano, whose
# fixed costs weigh more per MAC).
IPM_TARGET_NETS = {"micro", "milli", "base"} | set(PHINETS)
TARGET_RAM_RATIO = 0.5  # uint8 frame + sizeof(net) <= 0.5 x TFLM float arena
TARGET_ARENA_SLACK = 1.1  # arena <= 1.1 x live-set bound
TARGET_LATENCY_RATIO = 0.2  # ours <= 0.2 x TFLM float
TARGET_IPM = 4.0  # Cortex-M4 instructions per MAC
# Issue 14's tighter Cortex-M4 targets, per net: <= 2.2 instructions/MAC on Micro, Milli, Base and
# the PhiNets, <= 3.0 on Pico and Nano
TARGET_IPM_FAST = {"pico": 3.0, "nano": 3.0, "micro": 2.2, "milli": 2.2, "base": 2.2,
                   **{n: 2.2 for n in PHINETS}}

T0 = time.time()


def log(msg: str) -> None:
    print(f"[{time.time() - T0:6.1f}s] {msg}", flush=True)


# --------------------------------------------------------------------------- nets and data
def build_net(name: str):
    """(keras model, C++ class name) for one benchmark net."""
    import micronets

    if name in MOBILENETS:
        cls = getattr(micronets, f"{name.capitalize()}MobileNet")
        net = cls(num_classes=10)
        classname = cls.__name__
    else:
        preset = name.split("-", 1)[1]
        net = micronets.PhiNet.preset(preset, num_classes=10)
        classname = f"PhiNet{preset.upper()}"
    net.build()
    return net.model, classname


def randomize_weights(model, images: np.ndarray, seed: int, hidden_std: float = 1.0,
                      logit_std: float = 3.0) -> None:
    """Non-degenerate weights (Keras' default init makes these nets output ~uniform probabilities).

    He-normal kernels (std sqrt(2 / fan_in)), small random biases and BatchNorm statistics away
    from identity (so BN folding is exercised); then, layer by layer in graph order, each conv /
    dense kernel (and bias) is rescaled so its output on ``images`` has std ``hidden_std``: with
    few channels and ReLU6, plain He init lets the signal fade to nothing within a few blocks. The
    last layer's logits are centred per class and scaled to an input-to-input std ``logit_std``.
    """
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    linear = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "DepthwiseConv2D", "Dense", "SeparableConv2D"):
            linear.append(layer)
        for var in layer.weights:
            shape = tuple(int(d) for d in var.shape)
            vname = var.name.split("/")[-1]
            if vname in ("kernel", "depthwise_kernel", "pointwise_kernel"):
                if kind == "DepthwiseConv2D" or vname == "depthwise_kernel":
                    fan_in = shape[0] * shape[1]
                else:
                    fan_in = int(np.prod(shape[:-1]))
                value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
            elif vname == "bias":
                value = rng.normal(0.0, 0.05, shape)
            elif vname == "gamma":
                value = rng.uniform(0.7, 1.3, shape)
            elif vname == "beta":
                value = rng.normal(0.0, 0.1, shape)
            elif vname == "moving_mean":
                value = rng.normal(0.0, 0.1, shape)
            elif vname == "moving_variance":
                value = rng.uniform(0.6, 1.4, shape)
            else:
                continue
            var.assign(value.astype(np.float32))

    probe_model = keras.Model(model.input, [layer.output for layer in linear])

    @tf.function(autograph=False)  # graph mode: ~10x faster than eager calls
    def probe(t):
        return probe_model(t, training=False)

    for i, layer in enumerate(linear):
        out = np.asarray(probe(images)[i])
        if i < len(linear) - 1:
            std = float(np.std(out))
            if std > 0:
                for var in layer.weights:
                    var.assign(var.numpy() * (hidden_std / std))
            continue
        # The logits: centred per class through the bias (so different inputs win different
        # classes) and scaled so that what varies from input to input has std ``logit_std``.
        out = out.reshape(len(images), -1)
        mean = out.mean(axis=0)
        std = float(np.std(out - mean))
        scale = logit_std / std if std > 0 else 1.0
        layer.kernel.assign(layer.kernel.numpy() * scale)
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign((layer.bias.numpy() - mean.reshape(layer.bias.shape)) * scale)


_FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def real_images(count: int, shape, seed: int) -> tuple[np.ndarray, str]:
    """``count`` real images in [0, 1] at ``shape`` (Fashion-MNIST from Debian's package, else
    scikit-learn's bundled digits), resized with bilinear interpolation."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    if _FASHION.exists():
        with gzip.open(_FASHION, "rb") as f:
            raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
        source = "Fashion-MNIST test images"
    else:
        from sklearn.datasets import load_digits

        raw = (load_digits().images * (255.0 / 16.0)).astype(np.uint8)
        source = "scikit-learn digits"
    pick = rng.choice(len(raw), size=count, replace=False)
    x = raw[pick].astype(np.float32)[..., None] / 255.0
    x = tf.image.resize(x, shape[:2], method="bilinear").numpy()
    if shape[2] == 3:  # tint each image so the three channels differ
        x = x * rng.uniform(0.5, 1.0, size=(count, 1, 1, 3))
    # Quantise to what a camera would deliver, so float and uint8 entry points see the same image.
    x = np.round(np.clip(x, 0.0, 1.0) * 255.0) / 255.0
    return x.astype(np.float32), source


# --------------------------------------------------------------------------- our own counts
def pingpong_bytes(model) -> Dict[str, Any]:
    """Naive ping-pong plan: two buffers, each as large as the largest float32 tensor of the
    Keras graph (input included, every ZeroPadding2D output materialised)."""
    largest, where = 0, ""
    for layer in model.layers:
        outs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
        for t in outs:
            n = int(np.prod([int(d) for d in t.shape[1:]])) * 4
            if n > largest:
                largest, where = n, layer.name
    return {"bytes": 2 * largest, "largest": largest, "largest_layer": where}


def count_macs(model) -> int:
    """MACs of conv, depthwise and dense layers (DESIGN.md section 3's formulas)."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in ("Conv2D", "DepthwiseConv2D", "Dense"):
            continue
        out = [int(d) for d in layer.output.shape[1:]]
        kshape = [int(d) for d in layer.kernel.shape]
        if kind == "Dense":
            total += kshape[0] * kshape[1]
        elif kind == "DepthwiseConv2D":
            total += out[0] * out[1] * out[2] * kshape[0] * kshape[1]
        else:
            total += out[0] * out[1] * out[2] * kshape[0] * kshape[1] * kshape[2]
    return total


def output_agreement(ref: np.ndarray, got: Optional[np.ndarray]) -> Optional[float]:
    if got is None:
        return None
    return float(np.max(np.abs(np.asarray(got, np.float64).reshape(ref.shape) - ref)))


# --------------------------------------------------------------------------- optional pieces
def optional_import(module: str):
    """(module, None) or (None, reason)."""
    import importlib

    try:
        return importlib.import_module(module), None
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return None, f"{module} not importable ({type(exc).__name__}: {exc})"


def try_call(fn, *args, **kwargs):
    """(result, None) or (None, one-line reason)."""
    try:
        return fn(*args, **kwargs), None
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        return None, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


def elf_sizes(raw) -> Dict[str, int]:
    """Normalise whatever ``qemu.size`` returns (mapping, named tuple, object) to text/data/bss."""
    out = {}
    for key in ("text", "data", "bss"):
        if isinstance(raw, dict):
            val = raw.get(key)
        else:
            val = getattr(raw, key, None)
        if val is not None:
            out[key] = int(val)
    if not out and isinstance(raw, (tuple, list)) and len(raw) >= 3:
        out = {"text": int(raw[0]), "data": int(raw[1]), "bss": int(raw[2])}
    return out


# --------------------------------------------------------------------------- one net
def bench_net(name: str, args, tflm, pieces, workdir: Path) -> Dict[str, Any]:
    import keras

    r: Dict[str, Any] = {"name": name, "notes": []}
    keras.utils.set_random_seed(args.seed)
    model, classname = build_net(name)
    shape = tuple(int(d) for d in model.input_shape[1:])
    x, source = real_images(args.images, shape, args.seed)
    rep, _ = real_images(args.calibration, shape, args.seed + 1)
    randomize_weights(model, rep[:16], args.seed)
    r.update(classname=classname, input_shape=list(shape), params=int(model.count_params()),
             macs_keras=count_macs(model), pingpong=pingpong_bytes(model))
    log(f"{name}: {classname} {shape}, {r['params']:,} params, {r['macs_keras']:,} MACs")

    r["data_source"] = source
    ref = np.asarray(model(x, training=False)).astype(np.float64)
    top = ref.max(axis=1)
    r["top_prob"] = {"min": float(top.min()), "median": float(np.median(top)), "max": float(top.max()),
                     "classes": int(len(set(ref.argmax(axis=1).tolist())))}

    # ---- TFLM, float32 and int8: size, smallest arena, outputs
    tflite = {}
    for kind in ("float", "int8"):
        t = time.time()
        flat = convert(model, rep if kind == "int8" else None)
        path = workdir / f"{name}_{kind}.tflite"
        path.write_bytes(flat)
        found = tflm.smallest_arena(str(path))
        outs, _ = tflm.run(str(path), found["arena"], x, min_time=0.0, min_repeats=1)
        tflite[kind] = (str(path), found["arena"])
        r[f"tflm_{kind}"] = {"tflite_bytes": len(flat), "arena": found["arena"], "probes": found["probes"],
                             "max_abs_diff": output_agreement(ref, outs),
                             "argmax_agree": float(np.mean(outs.argmax(1) == ref.argmax(1)))}
        log(f"{name}: TFLM {kind}: .tflite {len(flat):,} B, arena {found['arena']:,} B "
            f"({found['probes']} probes), max|diff| {r[f'tflm_{kind}']['max_abs_diff']:.2e} [{time.time() - t:.1f}s]")

    # ---- ours: compile, sizeof, outputs
    compiler, host = pieces["compiler"], pieces["host"]
    ours_exe = None
    header = None
    if compiler is None:
        r["notes"].append(pieces["compiler_why"])
    else:
        t = time.time()
        compiled, why = try_call(compiler.compile_model, model, classname=classname)
        if compiled is None:
            r["notes"].append(f"compile_model failed: {why}")
        else:
            s = compiled.summary()
            r["ours"] = {k: s.get(k) for k in ("macs", "params", "weights_bytes", "arena_bytes", "naive_bound",
                                               "inplace_bound", "object_bytes")}
            header = workdir / f"{classname}.h"
            header.write_text(compiled.header)
            r["ours"]["header_bytes"] = len(compiled.header.encode())
            if host is None:
                r["notes"].append(pieces["host_why"])
            else:
                hdir = workdir / f"host_{name}"
                hdir.mkdir(exist_ok=True)
                ours_exe, why = try_call(host.build, str(header), classname, out_dir=str(hdir), opt="-O2")
                if ours_exe is None:
                    r["notes"].append(f"host build (g++ -O2) failed: {why}")
                else:
                    num_out = int(s.get("num_classes") or ref.shape[1])
                    size, why = try_call(lambda: int(subprocess.run([ours_exe, "sizeof"], capture_output=True,
                                                                    text=True, check=True).stdout))
                    if size is None:
                        size, why = try_call(host.sizeof_net, str(header), classname, out_dir=str(hdir))
                    if size is None:
                        r["notes"].append(f"sizeof(net) failed: {why}")
                    r["ours"]["sizeof"] = size
                    for entry, key, xin in (("float", "max_abs_diff", x),
                                            ("uint8", "max_abs_diff_uint8", np.round(x * 255).astype(np.uint8))):
                        got, why = try_call(host.run, ours_exe, xin, num_out, entry=entry)
                        if got is None:
                            r["notes"].append(f"host run (entry={entry}) failed: {why}")
                            continue
                        got = np.asarray(got).reshape(ref.shape)
                        r["ours"][key] = output_agreement(ref, got)
                        if entry == "float":
                            r["ours"]["argmax_agree"] = float(np.mean(got.argmax(1) == ref.argmax(1)))
            log(f"{name}: ours: arena {fmt_int(r['ours'].get('arena_bytes'))} B, sizeof {fmt_int(r['ours'].get('sizeof'))} B, "
                f"max|diff| {fmt_e(r['ours'].get('max_abs_diff'))} [{time.time() - t:.1f}s]")

    # ---- host latency: TFLM float, TFLM int8 and ours interleaved in rounds, so that a change in
    # the machine's load during the run hits all three alike; each gets about ``min_time`` seconds
    # in all; medians over all samples.
    t = time.time()
    samples: Dict[str, List[float]] = {"float": [], "int8": [], "ours": []}
    per_round = args.min_time / args.rounds

    def time_ours(runs: int, batch: int) -> List[float]:
        out = subprocess.run([ours_exe, "time", str(runs), str(batch)], capture_output=True, text=True,
                             check=True, timeout=600).stdout
        return [float(v) for v in out.split()]

    if ours_exe is not None:
        guess, why = try_call(time_ours, 3, 1)
        if guess is None:
            r["notes"].append(f"host timing failed: {why}")
            ours_exe = None
        else:  # batches of ~2 ms, enough of them to fill a round
            one = max(float(np.median(guess)), 1e-7)
            batch = int(min(10000, max(1, 2e-3 / one)))
            runs = int(min(10000, max(5, per_round / (batch * one))))
    for _ in range(args.rounds):
        for kind in ("float", "int8"):
            path, arena = tflite[kind]
            _, times = tflm.run(path, arena, x[:1], min_time=per_round, min_repeats=5, return_times=True)
            samples[kind] += times
        if ours_exe is not None:
            samples["ours"] += time_ours(runs, batch)
    for kind in ("float", "int8"):
        r[f"tflm_{kind}"]["latency_s"] = float(np.median(samples[kind]))
        r[f"tflm_{kind}"]["latency_samples"] = len(samples[kind])
    if samples["ours"]:
        r["ours"]["latency_s"] = float(np.median(samples["ours"]))
        r["ours"]["latency_samples"] = len(samples["ours"])
        r["ours"]["latency_batch"] = batch  # predictions per timed sample
    log(f"{name}: host latency: ours {fmt_ms(get(r, 'ours', 'latency_s'))}, TFLM float "
        f"{fmt_ms(r['tflm_float']['latency_s'])}, TFLM int8 {fmt_ms(r['tflm_int8']['latency_s'])} "
        f"[{time.time() - t:.1f}s]")

    # ---- Cortex-M4 under QEMU: instructions per inference, firmware size, stack
    qemu = pieces["qemu"]
    if header is None or args.no_m4:
        pass
    elif qemu is None:
        r["notes"].append(pieces["qemu_why"])
    else:
        t = time.time()
        m4 = {}
        fw_dir = workdir / f"fw_{name}"
        fw_dir.mkdir(exist_ok=True)
        elf, why = try_call(qemu.build_firmware, str(header), classname, x[:1], str(fw_dir), opt="-O2")
        if elf is None:
            r["notes"].append(f"build_firmware failed: {why}")
        else:
            res, why = try_call(qemu.run_firmware, elf)
            if res is None:
                r["notes"].append(f"run_firmware failed: {why}")
            else:
                m4["instructions"] = int(res.instructions)
                m4["stack_bytes"] = getattr(res, "stack_bytes", None)
                out = getattr(res, "outputs", None)
                if out is not None:
                    m4["max_abs_diff"] = output_agreement(ref[:1], np.asarray(out, np.float64)[:1])
            sizes, why = try_call(qemu.size, elf)
            if sizes is None:
                r["notes"].append(f"size(elf) failed: {why}")
            else:
                m4.update(elf_sizes(sizes))
        # The model alone: a firmware without the test image, minus the same around a null model
        # (the running firmware above embeds a 4 x H x W x C byte image, which is not the model's).
        fp, why = try_call(qemu.model_footprint, str(header), classname, str(fw_dir / "footprint"), opt="-O2")
        if fp is None:
            r["notes"].append(f"model_footprint failed: {why}")
        else:
            m4["model_flash"], m4["model_ram"] = fp["flash"], fp["ram"]
        r["m4"] = m4
        ipm = m4["instructions"] / (get(r, "ours", "macs") or r["macs_keras"]) if "instructions" in m4 else None
        log(f"{name}: Cortex-M4: {fmt_int(m4.get('instructions'))} instructions ({fmt_ratio(ipm)}/MAC), "
            f"text+data {fmt_int(m4['text'] + m4.get('data', 0) if 'text' in m4 else None)} B, "
            f"stack {fmt_int(m4.get('stack_bytes'))} B [{time.time() - t:.1f}s]")
    return r


# --------------------------------------------------------------------------- report
def fmt_int(v) -> str:
    return "n/a" if v is None else f"{int(v):,}"


def fmt_ms(v) -> str:
    return "n/a" if v is None else f"{v * 1e3:.3f} ms"


def fmt_e(v) -> str:
    return "n/a" if v is None else f"{v:.1e}"


def fmt_ratio(v, digits=2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def get(d: Dict, *keys):
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def derived(r: Dict[str, Any]) -> Dict[str, Any]:
    """Ratios and target checks of one net (None where an input is missing)."""
    h, w, c = r["input_shape"]
    frame = h * w * c
    sizeof = get(r, "ours", "sizeof") or get(r, "ours", "object_bytes")
    tflm_f = get(r, "tflm_float", "arena")
    arena = get(r, "ours", "arena_bytes")
    inplace = get(r, "ours", "inplace_bound")
    lat_o, lat_t = get(r, "ours", "latency_s"), get(r, "tflm_float", "latency_s")
    macs = get(r, "ours", "macs") or r["macs_keras"]
    instr = get(r, "m4", "instructions")
    d = {
        "frame": frame,
        "sizeof": sizeof,
        "ram_total": None if sizeof is None else frame + sizeof,
        "ram_ratio": None if sizeof is None or not tflm_f else (frame + sizeof) / tflm_f,
        "arena_slack": None if arena is None or not inplace else arena / inplace,
        "latency_ratio": None if lat_o is None or not lat_t else lat_o / lat_t,
        "ipm": None if instr is None or not macs else instr / macs,
        "macs": macs,
    }
    return d


def verdict(values: List[Optional[float]], limit: float) -> str:
    if not values:
        return "n/a (no net in this run)"
    measured = [v for v in values if v is not None]
    if not measured:
        return "n/a (not measured)"
    worst = max(measured)
    ok = worst <= limit and len(measured) == len(values)
    tail = "" if len(measured) == len(values) else f", {len(values) - len(measured)} net(s) not measured"
    return f"{'PASS' if ok else 'FAIL'} (worst {worst:.3f}{tail})"


def machine_info() -> Dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def first_line(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.splitlines()[0].strip()
        except Exception:  # noqa: BLE001
            return "not found"

    import keras
    import tensorflow as tf
    import tflite_micro

    import micronets

    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "os": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tflite-micro": tflite_micro.__version__,
        "micronets": micronets.__version__,
        "commit": first_line(["git", "-C", str(HERE.parent), "describe", "--always", "--dirty"]),
        "load": "%.1f / %.1f / %.1f" % os.getloadavg(),
        "g++": first_line(["g++", "--version"]),
        "arm-none-eabi-g++": first_line(["arm-none-eabi-g++", "--version"]),
        "qemu-system-arm": first_line(["qemu-system-arm", "--version"]),
    }


def write_report(results: List[Dict], info: Dict[str, str], args, out: Path, chart: Optional[Path],
                 elapsed: float, pieces) -> str:
    D = {r["name"]: derived(r) for r in results}
    L: List[str] = []
    L.append("# micronets benchmark results\n")
    L.append(f"Generated by `python benchmarks/run.py{' --quick' if args.quick else ''}` "
             f"on {info['date']} in {elapsed / 60:.1f} min. Raw numbers: `{out.with_suffix('.json').name}`.\n")
    L.append(f"- Machine: {info['cpu']}, {info['cores']} cores; {info['os']}; load average at start "
             f"{info['load']} (1/5/15 min), at end {'%.1f / %.1f / %.1f' % os.getloadavg()}: host timings "
             f"are medians of samples interleaved ours/TFLM in {args.rounds} rounds, so shared load hits both")
    L.append(f"- Versions: Python {info['python']}, TensorFlow {info['tensorflow']}, Keras {info['keras']}, "
             f"tflite-micro {info['tflite-micro']}, micronets {info['micronets']} (git {info['commit']})")
    L.append(f"- Compilers: {info['g++']}; {info['arm-none-eabi-g++']}; {info['qemu-system-arm']}")
    src = results[0]["data_source"] if results else "n/a"
    L.append(f"- Models: 10 classes; MobileNets at 96x96x1, PhiNets at their published resolutions (RGB). "
             f"Weights: random (seed {args.seed}): He-normal kernels, small biases, BatchNorm statistics "
             f"away from identity; each conv kernel then rescaled in graph order so its output has std 1 "
             f"on the calibration images (logits: centred per class, input-to-input std 3), so the outputs are far from uniform. Inputs: {args.images} {src}, resized, 8-bit levels; "
             f"int8 calibration on {args.calibration} others.")
    missing = [why for why in (pieces["compiler_why"], pieces["host_why"], pieces["qemu_why"], pieces["phinet_why"])
               if why]
    if missing:
        L.append("- Not measured in this run: " + "; ".join(missing))
    L.append("")

    # ---- targets
    L.append("## Targets\n")
    L.append("| target | result |")
    L.append("|---|---|")
    names = [r["name"] for r in results]
    L.append(f"| RAM: uint8 input frame + sizeof(net) <= {TARGET_RAM_RATIO} x TFLM float arena, every net | "
             f"{verdict([D[n]['ram_ratio'] for n in names], TARGET_RAM_RATIO)} |")
    L.append(f"| Arena <= {TARGET_ARENA_SLACK} x live-set (in-place) bound, every net | "
             f"{verdict([D[n]['arena_slack'] for n in names], TARGET_ARENA_SLACK)} |")
    L.append(f"| Host latency <= {TARGET_LATENCY_RATIO} x TFLM float, every net | "
             f"{verdict([D[n]['latency_ratio'] for n in names], TARGET_LATENCY_RATIO)} |")
    ipm_names = [n for n in names if n in IPM_TARGET_NETS]
    L.append(f"| Cortex-M4 instructions/MAC <= {TARGET_IPM:g} on Micro, Milli, Base and PhiNets | "
             f"{verdict([D[n]['ipm'] for n in ipm_names], TARGET_IPM)} |")
    for limit in sorted(set(TARGET_IPM_FAST.values())):
        group = [r for r in results if TARGET_IPM_FAST.get(r["name"]) == limit]
        if group:
            per_net = ", ".join(f"{r['classname']} {fmt_ratio(D[r['name']]['ipm'])} "
                                f"{'met' if D[r['name']]['ipm'] is not None and D[r['name']]['ipm'] <= limit else 'not met'}"
                                for r in group)
            L.append(f"| Cortex-M4 instructions/MAC <= {limit:g} (issue 14) on "
                     f"{', '.join(r['classname'] for r in group)} | "
                     f"{verdict([D[r['name']]['ipm'] for r in group], limit)}: {per_net} |")
    L.append("")

    # ---- RAM
    L.append("## RAM (bytes)\n")
    L.append("Ours: `arena` is the planned activation arena, `sizeof` is `sizeof(net)` measured with g++ "
             "(arena + outputs; the input frame is the caller's). Bounds from our planner: `in+out` = "
             "largest input+output of one layer (layer-wise execution), `live set` = largest set of "
             "simultaneously live tensors with in-place ops. `ping-pong` = 2 x largest float32 tensor "
             "(ZeroPadding2D outputs materialised). TFLM: smallest `arena_size` that allocates and "
             "invokes (bisection to 16 B, one child process per probe; TFLM's arena holds the input and "
             "output tensors too). `ratio` = (uint8 frame + sizeof) / TFLM float arena. `M4 stack` = peak stack "
             "of the Cortex-M4 firmware (whole program, measured under QEMU).\n")
    L.append("| net | input | frame (uint8) | ours arena | sizeof(net) | live set | in+out | ping-pong | "
             "TFLM float | TFLM int8 | ratio | M4 stack |")
    L.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in results:
        d = D[r["name"]]
        L.append(f"| {r['classname']} | {'x'.join(map(str, r['input_shape']))} | {fmt_int(d['frame'])} | "
                 f"{fmt_int(get(r, 'ours', 'arena_bytes'))} | {fmt_int(get(r, 'ours', 'sizeof'))} | "
                 f"{fmt_int(get(r, 'ours', 'inplace_bound'))} | {fmt_int(get(r, 'ours', 'naive_bound'))} | "
                 f"{fmt_int(r['pingpong']['bytes'])} | {fmt_int(get(r, 'tflm_float', 'arena'))} | "
                 f"{fmt_int(get(r, 'tflm_int8', 'arena'))} | {fmt_ratio(d['ram_ratio'], 3)} | "
                 f"{fmt_int(get(r, 'm4', 'stack_bytes'))} |")
    L.append("")

    # ---- flash
    L.append("## Flash (bytes)\n")
    L.append("`weights` = our float32 weight arrays; `.tflite` = the flatbuffer TFLM needs in flash (plus "
             "the TFLM library itself, not counted); `M4 model` = flash of the model alone on the Cortex-M4 "
             "(arm-none-eabi-g++ -O2, `predict(const float*)`): text + data of a firmware that links predict() "
             "without any input image, minus the same firmware built around a null model with the same "
             "interface (`micronets.embedded.qemu.model_footprint`), i.e. the weights, the kernels' code and the "
             "library code (libm, libgcc) the model pulls in; the test harness and the test image cancel out. "
             "`M4 model RAM` = static RAM the same way: sizeof(net) plus library data.\n")
    L.append("| net | params | MACs | ours weights | header (source) | .tflite float | .tflite int8 | "
             "M4 model | M4 model RAM |")
    L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in results:
        d = D[r["name"]]
        L.append(f"| {r['classname']} | {fmt_int(r['params'])} | {fmt_int(d['macs'])} | "
                 f"{fmt_int(get(r, 'ours', 'weights_bytes'))} | {fmt_int(get(r, 'ours', 'header_bytes'))} | "
                 f"{fmt_int(get(r, 'tflm_float', 'tflite_bytes'))} | {fmt_int(get(r, 'tflm_int8', 'tflite_bytes'))} | "
                 f"{fmt_int(get(r, 'm4', 'model_flash'))} | {fmt_int(get(r, 'm4', 'model_ram'))} |")
    L.append("")

    # ---- speed
    L.append("## Speed\n")
    L.append(f"Host: median time per inference on this machine, same run, about {args.min_time:g} s of "
             f"samples per engine and net taken in {args.rounds} interleaved rounds; ours = the generated "
             "header compiled with g++ -O2 (micronets.host's driver, `predict(const float*)`, batches of "
             "~2 ms per sample), TFLM = `Interpreter.invoke()` of the tflite-micro wheel (reference "
             "kernels; Python call overhead of a few microseconds included). Cortex-M4: instructions "
             "per inference under QEMU (`-icount`, first input), /MAC = per multiply-accumulate "
             "(our compiler's MAC count).\n")
    L.append("| net | ours host | TFLM float host | TFLM int8 host | ours / TFLM float | M4 instructions | "
             "M4 instr/MAC |")
    L.append("|---|--:|--:|--:|--:|--:|--:|")
    for r in results:
        d = D[r["name"]]
        L.append(f"| {r['classname']} | {fmt_ms(get(r, 'ours', 'latency_s'))} | "
                 f"{fmt_ms(get(r, 'tflm_float', 'latency_s'))} | {fmt_ms(get(r, 'tflm_int8', 'latency_s'))} | "
                 f"{fmt_ratio(d['latency_ratio'], 3)} | {fmt_int(get(r, 'm4', 'instructions'))} | "
                 f"{fmt_ratio(d['ipm'])} |")
    L.append("")

    # ---- agreement
    L.append("## Agreement with Keras\n")
    L.append("Max |difference| of the softmax outputs from Keras' on the same inputs. `top prob` = "
             "min / median / max over the inputs of Keras' largest class probability, and how many "
             "distinct classes Keras predicts, to show the outputs are not uniform. `argmax` = share "
             "of inputs whose predicted class matches Keras'.\n")
    L.append("| net | top prob (classes) | ours float | ours uint8 entry | ours argmax | TFLM float | "
             "TFLM int8 | TFLM int8 argmax | M4 |")
    L.append("|---|---|--:|--:|--:|--:|--:|--:|--:|")
    for r in results:
        tp = r["top_prob"]
        L.append(f"| {r['classname']} | {tp['min']:.2f} / {tp['median']:.2f} / {tp['max']:.2f} ({tp['classes']}) | "
                 f"{fmt_e(get(r, 'ours', 'max_abs_diff'))} | {fmt_e(get(r, 'ours', 'max_abs_diff_uint8'))} | "
                 f"{fmt_ratio(get(r, 'ours', 'argmax_agree'))} | {fmt_e(get(r, 'tflm_float', 'max_abs_diff'))} | "
                 f"{fmt_e(get(r, 'tflm_int8', 'max_abs_diff'))} | {fmt_ratio(get(r, 'tflm_int8', 'argmax_agree'))} | "
                 f"{fmt_e(get(r, 'm4', 'max_abs_diff'))} |")
    L.append("")

    notes = [(r["classname"], n) for r in results for n in r["notes"]
             if n not in (pieces["compiler_why"], pieces["host_why"], pieces["qemu_why"])]
    if notes:
        L.append("## Notes\n")
        for cls, n in notes:
            L.append(f"- {cls}: {n}")
        L.append("")
    if chart is not None:
        L.append(f"![RAM, flash and latency per net]({chart.name})\n")
    return "\n".join(L)


def draw_chart(results: List[Dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["classname"] for r in results]
    D = [derived(r) for r in results]
    x = np.arange(len(results))
    fig, axes = plt.subplots(2, 2, figsize=(15, 10))
    axes = axes.ravel()

    def bars(ax, series, title, ylabel, log=True):
        width = 0.8 / len(series)
        for i, (label, vals) in enumerate(series):
            v = [np.nan if a is None else a for a in vals]
            ax.bar(x + (i - (len(series) - 1) / 2) * width, v, width, label=label)
        ax.set_xticks(x, names, rotation=35, ha="right")
        if log:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8)

    bars(axes[0], [
        ("ours: uint8 frame + sizeof(net)", [d["ram_total"] for d in D]),
        ("live-set bound", [get(r, "ours", "inplace_bound") for r in results]),
        ("naive ping-pong", [r["pingpong"]["bytes"] for r in results]),
        ("TFLM float arena", [get(r, "tflm_float", "arena") for r in results]),
        ("TFLM int8 arena", [get(r, "tflm_int8", "arena") for r in results]),
    ], "RAM", "bytes")
    bars(axes[1], [
        ("ours weights", [get(r, "ours", "weights_bytes") for r in results]),
        (".tflite float", [get(r, "tflm_float", "tflite_bytes") for r in results]),
        (".tflite int8", [get(r, "tflm_int8", "tflite_bytes") for r in results]),
        ("ours on Cortex-M4, model alone", [get(r, "m4", "model_flash") for r in results]),
    ], "Flash", "bytes")
    bars(axes[2], [
        ("ours (g++ -O2)", [None if get(r, "ours", "latency_s") is None else r["ours"]["latency_s"] * 1e3
                            for r in results]),
        ("TFLM float", [r["tflm_float"]["latency_s"] * 1e3 for r in results]),
        ("TFLM int8", [r["tflm_int8"]["latency_s"] * 1e3 for r in results]),
    ], "Host latency per inference", "ms")
    bars(axes[3], [("ours, Cortex-M4 (QEMU)", [d["ipm"] for d in D])],
         "Cortex-M4 instructions per MAC", "instructions / MAC", log=False)
    axes[3].axhline(TARGET_IPM, color="k", linestyle="--", linewidth=1)
    axes[3].text(len(results) - 0.5, TARGET_IPM, f" target {TARGET_IPM:g}", va="bottom", ha="right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="Pico, Micro and PhiNet 2M; fewer inputs and repeats")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"), help="report path (chart and JSON go beside it)")
    ap.add_argument("--models", default=None, help="comma-separated subset, e.g. pico,milli,phinet-2m")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-m4", action="store_true", help="skip the Cortex-M4 emulator runs")
    args = ap.parse_args(argv)
    args.images = 4 if args.quick else 16
    args.calibration = 16 if args.quick else 64
    args.min_time = 0.3 if args.quick else 1.0  # seconds of timing per engine and net
    args.rounds = 2 if args.quick else 5
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)

    tflm = TflmRunner()

    pieces: Dict[str, Any] = {}
    for key, module in (("compiler", "micronets.compiler"), ("host", "micronets.host"),
                        ("qemu", "micronets.embedded.qemu")):
        mod, why = optional_import(module)
        if mod is not None and key == "compiler" and not hasattr(mod, "compile_model"):
            mod, why = None, "micronets.compiler.compile_model not available yet"
        pieces[key], pieces[f"{key}_why"] = mod, why
    if pieces["qemu"] is not None and not all(hasattr(pieces["qemu"], f) for f in
                                              ("build_firmware", "run_firmware", "size", "model_footprint")):
        pieces["qemu"], pieces["qemu_why"] = None, ("micronets.embedded.qemu lacks build_firmware/run_firmware/size/"
                                                    "model_footprint")
    import micronets

    try:
        micronets.PhiNet.preset
        pieces["phinet_why"] = None
    except Exception as exc:  # noqa: BLE001
        pieces["phinet_why"] = f"PhiNet not importable ({type(exc).__name__}: {exc})"

    if args.models:
        names = [n.strip().lower() for n in args.models.split(",") if n.strip()]
        unknown = [n for n in names if n not in MOBILENETS + PHINETS]
        if unknown:
            ap.error(f"unknown model(s) {unknown}; choose from {MOBILENETS + PHINETS}")
    else:
        names = QUICK if args.quick else MOBILENETS + PHINETS
    if pieces["phinet_why"]:
        names = [n for n in names if n not in PHINETS]
    for key in ("compiler", "host", "qemu"):
        if pieces[f"{key}_why"]:
            log(f"note: {pieces[f'{key}_why']}")

    info = machine_info()
    log(f"{len(names)} nets: {', '.join(names)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="micronets-bench-") as tmp:
        for name in names:
            t = time.time()
            results.append(bench_net(name, args, tflm, pieces, Path(tmp)))
            log(f"{name}: done in {time.time() - t:.1f}s")

    elapsed = time.time() - T0
    chart = out.with_suffix(".png")
    draw_chart(results, chart)
    from sections import sections, write_section

    from micronets.compiler.export import write_atomic

    previous = out.read_text(encoding="utf-8") if out.exists() else ""
    write_atomic(out.with_suffix(".json"), json.dumps({"machine": info, "results": results}, indent=1, default=float))
    write_atomic(out, write_report(results, info, args, out, chart, elapsed, pieces))
    for tag, section in sections(previous):  # the other scripts' sections (accuracy.py, int8.py, ...) stay
        write_section(str(out), section, tag)
    log(f"wrote {out}, {chart.name}, {out.with_suffix('.json').name} ({elapsed / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
