"""Test accuracy of every architecture on Fashion-MNIST with the default training settings.

    python benchmarks/accuracy.py                      # the full budget (about an hour on 2 cores)
    python benchmarks/accuracy.py --arch pico --per-class 100 --epochs 2 --test 500 --out -   # a smoke run

Data: Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (10 classes, 28x28 gray),
resized to 32x32x1 by the loader's policy (bilinear; the images are square so nothing is cropped).
``--per-class`` images of each class are taken from the official training set and split, stratified,
into training and validation images (15% validation, to keep the best epoch); accuracy is measured on
the official test set, which training never sees. Every net is trained with ``TrainingConfig()``
(the defaults of ``micronets train``: augmentation, cosine learning rate, best epoch kept) for the
same ``--epochs``, then exported and compiled with the host's g++; the table gives the accuracy of
the Keras model and of the compiled C++ header (float input).

The results go into their own section of ``benchmarks/RESULTS.md`` (between the markers below,
replacing an earlier run) and into ``benchmarks/ACCURACY.json``. Floors from the issue: Pico >= 80%,
the best PhiNet >= 90% on full Fashion-MNIST; the table says whether this run meets them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from sections import markers, write_section  # noqa: E402

TAG = "accuracy.py"
FLOORS = {"pico": 0.80, "best phinet": 0.90}
ALL_ARCHS = ("pico", "nano", "micro", "milli", "base", "phinet-2m", "phinet-5m", "phinet-10m", "phinet-20m")
SHAPE = (32, 32, 1)


def load_data(per_class: int, test: Optional[int], seed: int):
    """(train x, y), (val x, y), (test x, y) as float32 (N, 32, 32, 1) in [0, 1]."""
    import keras

    from micronets.data import load_fashion_mnist
    from micronets.train import split_indices

    (tx, ty), (sx, sy) = load_fashion_mnist()
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.permutation(np.flatnonzero(ty == c))[:per_class] for c in range(10)])
    tx, ty = tx[keep], ty[keep]
    if test:
        pick = np.concatenate([rng.permutation(np.flatnonzero(sy == c))[: max(test // 10, 1)] for c in range(10)])
        sx, sy = sx[np.sort(pick)], sy[np.sort(pick)]

    def prep(x):  # the loader's policy for square 28x28 images: bilinear resize, pixel / 255
        x = x.astype(np.float32)[..., None] / 255.0
        out = keras.ops.image.resize(x, SHAPE[:2], interpolation="bilinear", antialias=True)
        return np.asarray(keras.ops.convert_to_numpy(out)).clip(0, 1)

    train_idx, val_idx, _ = split_indices(ty, 0.15, 0.0, seed)
    x = prep(tx)
    return (x[train_idx], ty[train_idx]), (x[val_idx], ty[val_idx]), (prep(sx), sy)


def section_tag(name: str) -> str:
    """The RESULTS.md section a run writes: ``accuracy.py`` or ``accuracy.py NAME``."""
    return TAG + (f" {name}" if name else "")


def config_overrides(pairs: Sequence[str]) -> Dict:
    """``--set name=value`` pairs as TrainingConfig field values (Python literals: 1e-2, False, 'x')."""
    import ast
    import dataclasses

    from micronets.models.base import TrainingConfig

    fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    out = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in fields:
            raise SystemExit(f"--set {pair!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(fields))}")
        try:
            out[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[name] = text
    return out


def measure(arch: str, data, epochs: int, seed: int, work: str, overrides: Optional[Dict] = None) -> Dict:
    import keras

    from micronets.data import FASHION_MNIST_CLASSES
    from micronets.models import make_net
    from micronets.train import DEFAULT_CALIBRATION_IMAGES, check_header, check_int8_header, make_report

    (tx, ty), (vx, vy), (sx, sy) = data
    keras.utils.set_random_seed(seed)
    net = make_net(arch, 10, SHAPE, batch_norm=True)
    for name, value in (overrides or {}).items():
        setattr(net.config, name, value)
    net.config.check()
    net.build()
    net.class_names = list(FASHION_MNIST_CLASSES)
    started = time.time()
    history = net.fit(tx, ty, vx, vy, epochs=epochs)
    seconds = time.time() - started
    probs = net.predict(sx).astype(np.float64)
    report = make_report(sy, probs, net.class_names)
    header = os.path.join(work, f"{arch}.h")
    summary = net.export(header).summary()
    report = check_header(report, header, summary["classname"], sx, sy, probs)
    # int8 as `micronets train --int8` makes it: TFLite's converter calibrated on training images
    calib = tx[np.random.default_rng(seed).permutation(len(tx))[:DEFAULT_CALIBRATION_IMAGES]]
    header8 = os.path.join(work, f"{arch}_int8.h")
    summary8 = net.export(header8, quantize="int8", calibration=calib).summary()
    report = check_int8_header(report, header8, summary8["classname"], sx, sy, probs)
    return {
        "arch": arch, "net": net.describe(), "params": int(net.count_params()), "macs": int(summary["macs"]),
        "epochs": epochs, "best_epoch": None if history.best_epoch is None else history.best_epoch + 1,
        "train_seconds": round(seconds, 1), "test_images": int(len(sy)),
        "keras": report.accuracy, "cpp": report.cpp_accuracy, "cpp_error": report.cpp_error,
        "agreement": report.cpp_agreement,
        "int8": report.int8_accuracy, "int8_error": report.int8_error, "int8_agreement": report.int8_agreement,
    }


def render(rows: Sequence[Dict], args, versions: Dict[str, str]) -> str:
    from micronets.models.base import TrainingConfig

    cfg = TrainingConfig(**config_overrides(args.set))
    begin, end = markers(section_tag(args.section))
    lines = [
        begin,
        "## Test accuracy on Fashion-MNIST (default training settings)",
        "",
        f"Generated on {datetime.date.today().isoformat()} by `python benchmarks/accuracy.py"
        f"{' ' + ' '.join(args.argv) if args.argv else ''}`; do not edit by hand."
        + ("".join(f" Rows from `{run}`." for run in getattr(args, "runs", []))),
        "",
        f"{args.per_class} training images per class (85% to train, 15% to keep the best epoch), "
        f"{rows[0]['test_images'] if rows else 0} images of the official test set, 32x32x1, "
        f"{args.epochs} epochs, seed {args.seed}; "
        f"{'`TrainingConfig()` defaults' if not args.set else 'TrainingConfig with ' + ', '.join(args.set)}: Adam lr {cfg.learning_rate:g} "
        f"({cfg.lr_schedule}), batch {cfg.batch_size}, augmentation {cfg.augment!s} "
        f"({'on' if cfg.augments(int(args.per_class * 0.85) * 10, 10) else 'off'} at this size), "
        f"label smoothing {cfg.label_smoothing:g}, mixup {cfg.mixup_alpha:g}. **C++** is the exported header "
        "compiled with g++ (float input) on the same test images; **int8** the int8 header (TFLite's converter "
        "calibrated on 300 training images, as `micronets train --int8` does) on them, its `predict(const float*)`.",
        "",
        "| architecture | params | MACs | train s | best epoch | Keras | C++ | same class | C++ int8 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cpp = f"{r['cpp'] * 100:.1f}%" if r["cpp"] is not None else f"n/a ({r['cpp_error']})"
        agree = f"{r['agreement'] * 100:.1f}%" if r["agreement"] is not None else "n/a"
        if r.get("int8") is not None:
            int8 = f"{r['int8'] * 100:.1f}%"
        else:
            int8 = f"n/a ({r['int8_error']})" if r.get("int8_error") else "not run"
        lines.append(f"| {r['net']} | {r['params']:,} | {r['macs']:,} | {r['train_seconds']:.0f} | "
                     f"{r['best_epoch']} | {r['keras'] * 100:.1f}% | {cpp} | {agree} | {int8} |")
    lines += ["", "Floors (issue #12, full Fashion-MNIST):"]
    by = {r["arch"]: r for r in rows}
    if "pico" in by:
        ok = by["pico"]["keras"] >= FLOORS["pico"]
        lines.append(f"- Pico >= 80%: {'met' if ok else 'NOT met'} ({by['pico']['keras'] * 100:.1f}%)")
    phis = [r for r in rows if r["arch"].startswith("phinet")]
    if phis:
        best = max(phis, key=lambda r: r["keras"])
        ok = best["keras"] >= FLOORS["best phinet"]
        lines.append(f"- best PhiNet >= 90%: {'met' if ok else 'NOT met'} ({best['arch']}, {best['keras'] * 100:.1f}%)")
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), end]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", action="append", choices=ALL_ARCHS, help="architecture (repeatable); default: all")
    p.add_argument("--epochs", type=int, default=10, help="epochs per architecture (default 10)")
    p.add_argument("--per-class", type=int, default=1000, help="training images per class (default 1000)")
    p.add_argument("--test", type=int, default=None, help="test images (default: the whole official test set)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--section", default="", help="write into RESULTS.md's section 'accuracy.py NAME' instead of "
                   "'accuracy.py' (e.g. 'floors' for the full-dataset run), leaving the other in place")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a TrainingConfig default (repeatable), e.g. --set augment=False")
    p.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"), help="Markdown file to update, or -")
    p.add_argument("--json", default=os.path.join(HERE, "ACCURACY.json"), help="JSON results file ('' for none)")
    p.add_argument("--merge", nargs="+", metavar="JSON", default=None,
                   help="train nothing: render the section from the JSON files of earlier runs made with the same "
                        "--per-class, --epochs, --test, --seed and --set (e.g. one architecture per run; a later "
                        "file's row for an architecture replaces an earlier one's)")
    args = p.parse_args(argv)
    args.argv = argv
    if args.merge:
        return merge(p, args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    import micronets

    data = load_data(args.per_class, args.test, args.seed)
    rows: List[Dict] = []
    with tempfile.TemporaryDirectory(prefix="micronets-accuracy-") as work:
        for arch in args.arch or ALL_ARCHS:
            print(f"training {arch} ...", file=sys.stderr, flush=True)
            row = measure(arch, data, args.epochs, args.seed, work, config_overrides(args.set))
            cpp = "n/a" if row["cpp"] is None else f"{row['cpp'] * 100:.1f}%"
            print(f"  {row['net']}: Keras {row['keras'] * 100:.1f}%, C++ {cpp} ({row['train_seconds']:.0f} s)",
                  file=sys.stderr, flush=True)
            rows.append(row)
    versions = {"micronets": micronets.__version__, "keras": keras.__version__,
                "backend": keras.backend.backend(), "python": platform.python_version()}
    publish(rows, args, versions)
    if args.json:
        from micronets.compiler.export import write_atomic

        write_atomic(args.json, json.dumps({"rows": rows, "versions": versions, "args": argv}, indent=2) + "\n")
    return 0


def merge(parser, args) -> int:
    """The section of several earlier runs' JSON files, which must agree on the settings."""
    same = ("per_class", "epochs", "test", "seed", "set")
    rows: List[Dict] = []
    first = versions = None
    for path in args.merge:
        with open(path, encoding="utf-8") as fh:
            run = json.load(fh)
        ran = parser.parse_args(run["args"])
        if first is None:
            first, versions = ran, run["versions"]
        elif any(getattr(ran, k) != getattr(first, k) for k in same):
            raise SystemExit(f"{path} was run with other settings than {args.merge[0]} ({', '.join(same)} must agree)")
        rows = [r for r in rows if r["arch"] not in {n["arch"] for n in run["rows"]}] + run["rows"]  # later runs win
        args.runs = getattr(args, "runs", []) + [" ".join(["python benchmarks/accuracy.py"] + run["args"])]
    for k in same:
        setattr(args, k, getattr(first, k))
    publish(rows, args, versions)
    return 0


def publish(rows: Sequence[Dict], args, versions: Dict[str, str]) -> None:
    section = render(rows, args, versions)
    if args.out == "-":
        sys.stdout.write(section)
    else:
        write_section(args.out, section, section_tag(args.section))
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
