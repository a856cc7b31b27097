"""Budget-driven search on Fashion-MNIST vs the hand-picked presets at the same budget (float and int8).

    python benchmarks/search_fashion.py                       # 64 KB RAM, 256 KB flash, float
    python benchmarks/search_fashion.py --int8                # the same limits on the int8 header
    python benchmarks/search_fashion.py --both                # both reports, the presets trained once
    python benchmarks/search_fashion.py --per-class 100 --trials 4 --epochs-per-trial 1 --final-epochs 2

Data: ``--per-class`` images of each of the 10 classes from the official Fashion-MNIST training set
(Debian package ``dataset-fashion-mnist``), written as a PNG folder; ``micronets.search`` splits it
(70 / 15 / 15, stratified) exactly as ``micronets train`` does, so the chosen candidate and every
preset are scored on the same held-out test images, after the same ``--final-epochs``. Limits: RAM =
model object + one uint8 input frame, flash = weights (``micronets info --board`` counting), of the
float32 header for the float report and of the int8 header for the int8 one (``--int8``:
``micronets.search(..., quantize="int8")``, the chosen candidate exported as an int8 header).

Presets: each one is measured as float32 and as int8 (our compilers, before training) and judged
against each report's own limits (one that does not fit as float may fit as int8); every preset
that fits one of the reports run is trained once with ``train_folder(..., int8=True)``, which gives
Keras float, C++ float and C++ int8 test accuracy side by side, so one training fills both reports.

Writes ``benchmarks/SEARCH.json`` (float) and/or ``benchmarks/SEARCH_INT8.json`` (int8), each with
the command line, machine and wall times, and the section ``search_fashion.py`` of
``benchmarks/RESULTS.md`` (through ``benchmarks/sections.py``) from whichever of the two exist.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from sections import markers, write_section  # noqa: E402

TAG = "search_fashion.py"
BEGIN, END = markers(TAG)
JSON_NAMES = {"float32": "SEARCH.json", "int8": "SEARCH_INT8.json"}
JSON = {q: os.path.join(HERE, name) for q, name in JSON_NAMES.items()}
PRESET_SHAPE = (32, 32, 1)


def fashion_folder(root: str, per_class: int) -> str:
    from PIL import Image

    from micronets.data import FASHION_MNIST_CLASSES, load_fashion_mnist

    (x, y), _ = load_fashion_mnist()
    for c, name in enumerate(FASHION_MNIST_CLASSES):
        folder = os.path.join(root, f"{c}_{name.replace('/', '-')}")
        os.makedirs(folder, exist_ok=True)
        for i, k in enumerate(np.flatnonzero(y == c)[:per_class]):
            Image.fromarray(x[k]).save(os.path.join(folder, f"{i:05d}.png"))
    return root


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import tensorflow as tf

    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}, TensorFlow {tf.__version__}")


def preset_figures(arch: str, calib: np.ndarray) -> Dict[str, Dict[str, int]]:
    """A preset's MACs, RAM and flash as float32 and as int8, from our compilers (untrained)."""
    import keras

    from micronets.models import make_net
    from micronets.search import measure

    out = {}
    for q in ("float32", "int8"):
        keras.utils.set_random_seed(0)
        probe = make_net(arch, 10, PRESET_SHAPE, True).build()
        fig = measure(probe.model, q, calib if q == "int8" else None)
        out[q] = dict(macs=fig.macs, ram=fig.ram_bytes, flash=fig.flash_bytes, figures=fig)
        keras.backend.clear_session()
    return out


def run_search(data: str, work: str, quantize: str, limits, args, log) -> Dict:
    import micronets

    started = time.time()
    res = micronets.search(data, os.path.join(work, f"best_{quantize}.h"), max_ram=limits.ram_bytes,
                           max_flash=limits.flash_bytes, family=args.family, trials=args.trials,
                           epochs_per_trial=args.epochs_per_trial, final_epochs=args.final_epochs,
                           resolutions=[int(r) for r in args.resolutions.split(",")], sampler_seed=0,
                           plots=False, log=log, quantize=None if quantize == "float32" else "int8",
                           m4=not args.no_m4, resume=args.resume)
    s, rep = res.train.summary, res.train.report
    row = dict(net=f"search: trial {res.chosen.trial}", hyperparameters=res.chosen.params, input=s["input_shape"],
               val_accuracy=res.chosen.val_accuracy, test_accuracy=rep.accuracy, cpp_test_accuracy=rep.cpp_accuracy,
               int8_test_accuracy=rep.int8_accuracy, macs=s["macs"],
               ram=s["object_bytes"] + int(np.prod(s["input_shape"])), flash=s["weights_bytes"], fits=True,
               m4_instructions=res.chosen.m4_instructions, seconds=round(res.train.seconds, 1))
    return dict(rows=[row], front=[c.to_dict() for c in res.front], counts=res.counts, m4_note=res.m4_note,
                search_seconds=round(time.time() - started, 1), split=res.train.split,
                final_seconds=round(res.train.seconds, 1))


def write_json(path: str, obj) -> None:
    from micronets.compiler.export import write_atomic

    write_atomic(path, json.dumps(obj, indent=2) + "\n")


def pct(v: Optional[float]) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def report_lines(rep: Dict) -> List[str]:
    q = rep["quantize"]
    lim = rep["limits"]
    split = rep.get("split") or {}
    command = rep["command"]
    if rep.get("note"):  # shown once, after the run's description
        command = command.replace(shlex.quote(rep["note"]), "NOTE (below)")
    lines = [f"### {'int8' if q == 'int8' else 'float32'} header: RAM <= {lim['ram_bytes']:,} B, "
             f"flash <= {lim['flash_bytes']:,} B", "",
             f"Run: `{command}` on {rep['machine']}, started {rep['started']} UTC"
             f"{'' if rep.get('presets_from') else ' (presets, then the searches)'}, this report done {rep['finished']} UTC "
             f"(nice 5, the CPU shared with other jobs). Data: {rep['per_class']:,} images per class "
             f"({rep['per_class'] * 10:,}) from the Fashion-MNIST training set (Debian dataset-fashion-mnist), "
             f"split {split.get('train', '?'):,} train / {split.get('validation', '?'):,} validation / "
             f"{split.get('test', '?'):,} test (stratified, seed 0). Search: {rep['family']}, "
             f"{rep['trials']} trained candidates x {rep['epochs_per_trial']} epochs (resolutions "
             f"{rep['resolutions']}), TPE sampler seed 0; rejected before training by the compiler's "
             f"{'int8 ' if q == 'int8' else ''}figures: {rep['counts'].get('rejected', 0)}, pruned: "
             f"{rep['counts'].get('pruned', 0)}; {rep['search_seconds']:,.0f} s including the final "
             f"training of the pick ({rep['final_seconds']:,.0f} s); "
             + (f"the presets: {rep['presets_from']}. " if rep.get("presets_from")
                else f"the presets took {rep['presets_seconds']:,.0f} s. ")
             + f"The pick and every preset that fits these limits: {rep['final_epochs']} epochs on the same split, "
             f"scored on the same test images; presets at {'x'.join(map(str, PRESET_SHAPE))}, trained once for "
             f"every report of their run with int8=True "
             f"(Keras float, C++ float and C++ int8 side by side)."
             + (" RAM, flash and MACs here are the int8 header's." if q == "int8" else
                " RAM, flash and MACs here are the float32 header's.")
             + (f" {rep['note']}" if rep.get("note") else ""), "",
             "| net | input | test acc Keras float | C++ float | C++ int8 | MACs | RAM (B) | flash (B) | fits | train s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rep["rows"]:
        lines.append(f"| {r['net']} | {'x'.join(map(str, r['input']))} | {pct(r.get('test_accuracy'))} | "
                     f"{pct(r.get('cpp_test_accuracy'))} | {pct(r.get('int8_test_accuracy'))} | {r['macs']:,} | "
                     f"{r['ram']:,} | {r['flash']:,} | {'yes' if r['fits'] else 'no'} | "
                     f"{'-' if r.get('seconds') is None else format(r['seconds'], ',.0f')} |")
    pick = rep["rows"][0]
    lines += ["", "Pick's hyperparameters: " + ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in pick["hyperparameters"].items()), "",
              "Front (validation accuracy after the trial epochs):", "",
              "| trial | val acc | MACs | RAM (B) | flash (B) | M4 instructions |", "|---:|---:|---:|---:|---:|---:|"]
    for c in rep["front"]:
        m4 = c.get("m4_instructions")
        lines.append(f"| {c['trial']} | {c['val_accuracy'] * 100:.1f}% | {c['macs']:,} | {c['ram_bytes']:,} | "
                     f"{c['flash_bytes']:,} | {'-' if m4 is None else format(m4, ',')} |")
    if rep.get("m4_note"):
        lines += ["", rep["m4_note"] + "."]
    return lines


def section() -> str:
    lines = [BEGIN, "## Budget-driven search vs the presets on Fashion-MNIST (benchmarks/search_fashion.py)", "",
             "The search (`micronets.search`, Optuna TPE, limits checked by compiling each candidate before "
             "training) against the hand-picked MobileNet presets at the same budget. 'fits': within this "
             "report's limits as computed by our compiler; presets that do not fit are not trained for it (their "
             "accuracy columns may still be filled when they fit the other report's limits). C++ columns: the "
             "exported header compiled with g++ on this machine, on the same test images (a float search exports a float32 header "
             "only, so its pick has no int8 column)."]
    for q in ("float32", "int8"):
        if os.path.exists(JSON[q]):
            with open(JSON[q], encoding="utf-8") as fh:
                rep = json.load(fh)
            if "command" not in rep:  # written by an older version of this script
                continue
            lines += [""] + report_lines(rep)
    lines.append(END)
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=300)
    ap.add_argument("--max-ram", default="64KB")
    ap.add_argument("--max-flash", default="256KB")
    ap.add_argument("--family", default="phinet")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--epochs-per-trial", type=int, default=3)
    ap.add_argument("--final-epochs", type=int, default=10)
    ap.add_argument("--resolutions", default="28,32")
    ap.add_argument("--presets", default="pico,nano,micro,milli,base")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--int8", action="store_true", help="the int8 report only (limits on the int8 header)")
    mode.add_argument("--both", action="store_true", help="the float and the int8 report, presets trained once")
    ap.add_argument("--presets-from", help="a JSON of preset rows trained earlier (keys per_class, final_epochs, "
                    "limits, source, rows: {float32: [...], int8: [...]}) to use instead of training them again; "
                    "it must match this run's --per-class, --final-epochs and limits; read after the search")
    ap.add_argument("--work", help="keep the data folder and the studies (SQLite) here instead of a temporary "
                    "folder, so an interrupted run can be continued with --resume")
    ap.add_argument("--resume", action="store_true", help="continue the studies found in --work (micronets.search "
                    "resume=True); --trials is the study's total, so the number already trained ends the search")
    ap.add_argument("--note", default="", help="a sentence for the report (e.g. how an interrupted run was resumed)")
    ap.add_argument("--section-only", action="store_true", help="only rewrite the RESULTS.md section from the JSONs")
    ap.add_argument("--no-m4", action="store_true", help="skip the front's Cortex-M4 instruction counts (QEMU)")
    ap.add_argument("--results", default=os.path.join(HERE, "RESULTS.md"), help="Markdown file to update, or -")
    ap.add_argument("--json-dir", default=HERE, help="where SEARCH.json / SEARCH_INT8.json go (default benchmarks/)")
    args = ap.parse_args(argv)
    JSON.update({q: os.path.join(args.json_dir, name) for q, name in JSON_NAMES.items()})
    if args.section_only:
        write_section(args.results, section(), TAG)
        return
    reports = ["float32", "int8"] if args.both else ["int8"] if args.int8 else ["float32"]

    import keras

    from micronets.search import make_limits
    from micronets.train import train_folder

    command = "python benchmarks/search_fashion.py " + " ".join(shlex.quote(a) for a in (
        sys.argv[1:] if argv is None else argv))
    where = machine()
    limits = make_limits(None, args.max_ram, args.max_flash)
    log = lambda line: print(time.strftime("%H:%M:%S ") + line, flush=True)  # noqa: E731
    out: Dict[str, Dict] = {q: dict(quantize=q, command=command, machine=where, limits=limits.to_dict(),
                                     per_class=args.per_class, family=args.family, trials=args.trials,
                                     epochs_per_trial=args.epochs_per_trial, final_epochs=args.final_epochs,
                                     resolutions=args.resolutions, note=args.note, started=time.strftime("%Y-%m-%d %H:%M", time.gmtime()))
                            for q in reports}
    presets: Dict[str, List[Dict]] = {q: [] for q in reports}
    import contextlib

    with (contextlib.nullcontext(args.work) if args.work else
          tempfile.TemporaryDirectory(prefix="micronets-search-bench-")) as work:
        data = fashion_folder(os.path.join(work, "data"), args.per_class)
        # the presets first (a fixed cost): measured both ways, trained once (int8=True) if they fit
        # any report run here; each report's JSON is written after its search with them
        from micronets.data import load_image_folder

        xc, _, _ = load_image_folder(data, PRESET_SHAPE)
        flat = xc.reshape(len(xc), -1)
        rng = np.random.default_rng(0)  # a few images, the darkest and brightest among them, as train_folder's
        calib = xc[np.unique(np.r_[rng.permutation(len(xc))[:30], np.argmin(flat.min(1)), np.argmax(flat.max(1))])]
        presets_started = time.time()
        for arch in ([] if args.presets_from else [a for a in args.presets.split(",") if a]):
            figs = preset_figures(arch, calib)
            fits = {q: figs[q]["figures"].why_not(limits) is None for q in reports}
            t = time.time()
            acc = dict(test_accuracy=None, cpp_test_accuracy=None, int8_test_accuracy=None, seconds=None)
            if any(fits.values()):
                log(f"=== preset {arch}: training ("
                    + ", ".join(f"{q} {'fits' if f else 'does not fit'}" for q, f in fits.items()) + ")")
                keras.backend.clear_session()
                tr = train_folder(data, arch, os.path.join(work, f"{arch}.h"), input_shape=PRESET_SHAPE,
                                  epochs=args.final_epochs, plots=False, card=False, int8=True)
                acc.update(test_accuracy=tr.report.accuracy, cpp_test_accuracy=tr.report.cpp_accuracy,
                           int8_test_accuracy=tr.report.int8_accuracy, seconds=round(time.time() - t, 1))
                s8 = tr.summary  # the trained int8 header's sizes must be those measured untrained
                got = (s8["object_bytes"] + int(np.prod(s8["input_shape"])), s8["weights_bytes"])
                if got != (figs["int8"]["ram"], figs["int8"]["flash"]):
                    log(f"WARNING {arch}: trained int8 header RAM/flash {got} != untrained "
                        f"{(figs['int8']['ram'], figs['int8']['flash'])}")
            for q in reports:
                f = figs[q]
                row = dict(net=arch, input=list(PRESET_SHAPE), macs=f["macs"], ram=f["ram"], flash=f["flash"],
                           fits=fits[q], **acc)
                if not fits[q]:
                    row["why_not"] = f["figures"].why_not(limits)
                presets[q].append(row)
                log(f"{q} {row}")
        presets_seconds = round(time.time() - presets_started, 1)
        for q in reports:
            log(f"=== {q} search")
            out[q]["presets_seconds"] = presets_seconds
            out[q].update(run_search(data, work, q, limits, args, log))
            if args.presets_from:  # read only now: it may be written while this search runs
                with open(args.presets_from, encoding="utf-8") as fh:
                    earlier = json.load(fh)
                for key, want in (("per_class", args.per_class), ("final_epochs", args.final_epochs),
                                  ("limits", limits.to_dict())):
                    if earlier[key] != want:
                        raise SystemExit(f"{args.presets_from}: {key} {earlier[key]!r} is not this run's {want!r}")
                presets[q] = earlier["rows"][q]
                out[q]["presets_from"] = earlier["source"]
            out[q]["rows"] += presets[q]
            out[q]["finished"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
            write_json(JSON[q], out[q])
            log(f"wrote {JSON[q]}")
    text = section()
    if args.results == "-":
        print(text)
    else:
        write_section(args.results, text, TAG)
        log(f"wrote {args.results}")
    print(text)


if __name__ == "__main__":
    main()
