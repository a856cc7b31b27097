#!/usr/bin/env python
"""Conformance benchmark: micronets' arena against TFLM's float arena on public architectures.

    python benchmarks/conformance.py                       # every model, writes benchmarks/CONFORMANCE.md
    python benchmarks/conformance.py --models mlperf_resnet8,squeezenet_v1_1 --out /tmp/C.md
    python benchmarks/conformance.py --list

For every configuration of tests/public_models.py (the models tests/test_conformance.py checks):
random weights scaled so the outputs vary (tests/netutil.py ``liven_conditioned``), then

* micronets: export, params and MACs, the arena (``summary()['arena_bytes']``) and the planner's
  lower bound for the ops as executed (``'inplace_bound'``), and max |C++ - Keras| (g++ -O2,
  strict C++98, float entry, 8 inputs);
* TFLM: the float32 .tflite of the same model (``tflm_side.convert``), its smallest working arena
  found by bisection (``TflmRunner.smallest_arena``, 16-byte resolution, one child process per
  probe), and TFLM's own max |diff| from Keras on the same inputs (first output).

Issue 10's targets: arena == planner bound, and arena <= 0.7 x TFLM's float arena, on every
model. A model that fails to export, build or convert is reported with its error, never fatal.
Needs the ``bench`` extra (tflite-micro).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))
sys.path.insert(2, str(HERE.parent / "tests"))

from run import fmt_e, fmt_int, log, machine_info, output_agreement, try_call  # noqa: E402
from tflm_side import TflmRunner, convert  # noqa: E402

TARGET_TFLM_RATIO = 0.7  # arena <= 0.7 x TFLM float arena


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:300]


def bench_model(name: str, tflm: TflmRunner, workdir: Path, seed: int = 1) -> Dict[str, Any]:
    """Everything the table reports for one public model; errors land in ``r['errors']``."""
    import keras

    import micronets
    import public_models
    from micronets import host
    from netutil import LIVEN_BATCH, flat_outputs, liven_conditioned, random_inputs

    r: Dict[str, Any] = {"name": name, "errors": []}
    keras.utils.set_random_seed(0)
    model, options = public_models.build(name)
    shapes = [tuple(int(d) for d in t.shape[1:]) for t in model.inputs]
    scale = np.float32(options.get("input_range", 1.0))

    def draw(count, at):  # as tests/netutil.check_against_keras draws them: one array per input
        xs = [random_inputs(shape, count, at + k) * scale for k, shape in enumerate(shapes)]
        return xs if len(xs) > 1 else xs[0]

    x = draw(8, seed)
    r.update(input_shape=list(shapes[0]), input_shapes=[list(shape) for shape in shapes],
             params=int(model.count_params()),
             output_sizes=[int(np.prod([int(d) for d in t.shape[1:]])) for t in model.outputs])
    t = time.time()
    r["keras_gap"] = liven_conditioned(model, [x], seed=seed, tries=options.get("tries", 6), limit=3e-6, relative=True,
                                       liven_x=draw(LIVEN_BATCH, seed + 1000), inner=options.get("liven_inner", True))
    ref = flat_outputs(model.predict(x, verbose=0)).astype(np.float64)

    # ---- micronets
    classname = "".join(part.capitalize() for part in name.split("_"))
    header = workdir / f"{classname}.h"
    compiled, why = try_call(micronets.export, model, str(header), classname=classname)
    if compiled is None:
        r["errors"].append(f"export: {why}")
    else:
        s = compiled.summary()
        r["ours"] = {k: s.get(k) for k in ("macs", "params", "weights_bytes", "arena_bytes", "inplace_bound",
                                           "layerwise_bound", "naive_bound", "object_bytes")}
        exe, why = try_call(host.build, str(header), classname, out_dir=str(workdir), opt="-O2")
        if exe is None:
            r["errors"].append(f"g++: {why}")
        else:
            sizes = list(getattr(compiled, "output_sizes", None) or [compiled.graph.output.size])
            out, why = try_call(host.run, exe, x, int(sum(sizes)), entry="float")
            if out is None:
                r["errors"].append(f"run: {why}")
            else:
                r["ours"]["max_abs_diff"] = output_agreement(ref, out)
                r["ours"]["max_rel_diff"] = r["ours"]["max_abs_diff"] / max(1.0, float(np.abs(ref).max()))
                r["ours"]["argmax_agree"] = bool((np.asarray(out).argmax(1) == ref.argmax(1)).all())
    log(f"{name}: ours: arena {fmt_int((r.get('ours') or {}).get('arena_bytes'))} B, bound "
        f"{fmt_int((r.get('ours') or {}).get('inplace_bound'))} B, max|diff| "
        f"{fmt_e((r.get('ours') or {}).get('max_abs_diff'))} [{time.time() - t:.1f}s]")

    # ---- TFLM float
    t = time.time()
    flat, why = try_call(convert, model)
    if flat is None:
        r["errors"].append(f"TFLite conversion: {why}")
        return r
    path = workdir / f"{name}_float.tflite"
    path.write_bytes(flat)
    found, why = try_call(tflm.smallest_arena, str(path))
    if found is None:
        r["errors"].append(f"TFLM arena: {why}")
        return r
    r["tflm_float"] = {"tflite_bytes": len(flat), "arena": found["arena"], "probes": found["probes"]}
    if len(shapes) > 1:  # (tflm_side feeds one input)
        log(f"{name}: TFLM float: arena {fmt_int(found['arena'])} B; outputs not compared (several inputs)")
        return r
    got, why = try_call(tflm.run, str(path), found["arena"], x, min_time=0.0, min_repeats=1)
    if got is None:
        r["errors"].append(f"TFLM run: {why}")
    else:
        first = r["output_sizes"][0]
        r["tflm_float"]["max_abs_diff"] = output_agreement(ref[:, :first], np.asarray(got[0]).reshape(len(x), -1))
    log(f"{name}: TFLM float: arena {fmt_int(found['arena'])} B ({found['probes']} probes) [{time.time() - t:.1f}s]")
    return r


def write_report(results: List[Dict[str, Any]], info: Dict[str, str], out: Path, elapsed: float) -> str:
    lines = [
        "# Conformance: public architectures, micronets arena vs TFLM float arena",
        "",
        f"Generated by `benchmarks/conformance.py` on {info.get('date', '?')} ({elapsed:.0f} s); "
        f"micronets {info.get('micronets', '?')} (commit {info.get('commit', '?')}), TensorFlow "
        f"{info.get('tensorflow', '?')}, Keras {info.get('keras', '?')}, tflite-micro {info.get('tflite-micro', '?')}.",
        "",
        "Models: `tests/public_models.py` (the configurations `tests/test_conformance.py` checks, and "
        "`BENCHMARK_ONLY` besides), random "
        "weights scaled so outputs vary (`tests/netutil.py`). Arena: `summary()['arena_bytes']`; bound: the "
        "planner's lower bound for the ops as executed (`inplace_bound`); TFLM float: the smallest arena "
        "with which the float32 .tflite of the same model allocates and runs (bisection, 16 B). Max |diff|: "
        "C++ (g++ -O2, strict C++98) against Keras on 8 inputs, absolute (relative to max(1, max |output|) "
        "in brackets). sizeof(net): the planned object (arena + output arrays + argmax + probability; "
        "`summary()['object_bytes']`). TFLM's arena also holds the input and output tensors and the "
        "interpreter's own allocations; micronets' arena holds neither the caller's input nor the "
        "outputs (those live in the object).",
        "",
        f"Targets (issue 10): arena == bound, and arena <= {TARGET_TFLM_RATIO} x TFLM float arena.",
        "",
        "| model | input | params | MACs | arena (B) | bound (B) | = bound | sizeof(net) (B) | TFLM float arena (B) "
        "| arena / TFLM | max \\|diff\\| ours | max \\|diff\\| TFLM |",
        "|---|---|---:|---:|---:|---:|:---:|---:|---:|---:|---:|---:|",
    ]
    n_ok = n_bound = n_ratio = 0
    for r in results:
        ours, tflm = r.get("ours") or {}, r.get("tflm_float") or {}
        arena, bound, tarena = ours.get("arena_bytes"), ours.get("inplace_bound"), tflm.get("arena")
        ratio = arena / tarena if arena is not None and tarena else None
        at_bound = None if arena is None or bound is None else arena == bound
        n_ok += ours.get("max_abs_diff") is not None
        n_bound += bool(at_bound)
        n_ratio += ratio is not None and ratio <= TARGET_TFLM_RATIO
        diff = ours.get("max_abs_diff")
        diff_s = "n/a" if diff is None else f"{diff:.1e} ({ours['max_rel_diff']:.1e})"
        lines.append(
            f"| {r['name']} | {', '.join('x'.join(str(d) for d in shape) for shape in r.get('input_shapes') or [r['input_shape']])} | {fmt_int(ours.get('params') or r['params'])} "
            f"| {fmt_int(ours.get('macs'))} | {fmt_int(arena)} | {fmt_int(bound)} "
            f"| {'n/a' if at_bound is None else ('yes' if at_bound else 'no')} | {fmt_int(ours.get('object_bytes'))} "
            f"| {fmt_int(tarena)} "
            f"| {'n/a' if ratio is None else f'{ratio:.2f}'} | {diff_s} | {fmt_e(tflm.get('max_abs_diff'))} |")
    lines += [
        "",
        f"{n_ok} of {len(results)} models exported, compiled and ran; arena == bound on {n_bound}; "
        f"arena <= {TARGET_TFLM_RATIO} x TFLM float on {n_ratio}.",
    ]
    failures = [r for r in results if r["errors"]]
    if failures:
        lines += ["", "## Not measured", ""]
        for r in failures:
            for e in r["errors"]:
                lines.append(f"- **{r['name']}**: {e.replace('|', '/')}")
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    return text


def main(argv=None) -> int:
    import public_models

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", help="comma-separated names (default: all; see --list)")
    ap.add_argument("--list", action="store_true", help="print the model names and exit")
    ap.add_argument("--out", default=str(HERE / "CONFORMANCE.md"))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(public_models.names()))
        return 0
    names = args.models.split(",") if args.models else public_models.names()
    unknown = [n for n in names if n not in public_models.MODELS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; --list shows them")

    t0 = time.time()
    tflm = TflmRunner()
    results = []
    with tempfile.TemporaryDirectory(prefix="micronets-conformance-") as tmp:
        for name in names:
            workdir = Path(tmp) / name
            workdir.mkdir()
            try:
                results.append(bench_model(name, tflm, workdir, seed=args.seed))
            except Exception as exc:  # noqa: BLE001 - one model's failure must not end the run
                log(f"{name}: failed: {_one_line(exc)}")
                results.append({"name": name, "errors": [_one_line(exc)], "input_shape": [], "params": None})
    info, why = try_call(machine_info)
    info = info or {"date": datetime.datetime.now().isoformat(timespec="minutes"), "note": why}
    text = write_report(results, info, Path(args.out), time.time() - t0)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
