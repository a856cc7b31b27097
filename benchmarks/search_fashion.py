"""Budget-driven search on Fashion-MNIST vs the hand-picked presets at the same budget.

    python benchmarks/search_fashion.py                       # 64 KB RAM, 256 KB flash, float
    python benchmarks/search_fashion.py --per-class 100 --trials 4 --epochs-per-trial 1 --final-epochs 2

Data: ``--per-class`` images of each of the 10 classes from the official Fashion-MNIST training set
(Debian package ``dataset-fashion-mnist``), written as a PNG folder; ``micronets.search`` splits it
(70 / 15 / 15, stratified) exactly as ``micronets train`` does, so the chosen candidate and every
preset are scored on the same held-out test images, after the same ``--final-epochs``. Limits: RAM =
model object + one uint8 input frame, flash = weights (``micronets info --board`` counting).
Writes ``benchmarks/SEARCH.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


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
    ap.add_argument("--out", default=os.path.join(HERE, "SEARCH.json"))
    args = ap.parse_args(argv)

    import micronets
    from micronets.compiler.export import write_atomic
    from micronets.search import make_limits, measure
    from micronets.train import train_folder

    limits = make_limits(None, args.max_ram, args.max_flash)
    rows = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="micronets-search-bench-") as work:
        data = fashion_folder(os.path.join(work, "data"), args.per_class)
        res = micronets.search(data, os.path.join(work, "best.h"), max_ram=limits.ram_bytes,
                               max_flash=limits.flash_bytes, family=args.family, trials=args.trials,
                               epochs_per_trial=args.epochs_per_trial, final_epochs=args.final_epochs,
                               resolutions=[int(r) for r in args.resolutions.split(",")], sampler_seed=0,
                               plots=False, log=lambda line: print(line, flush=True))
        s = res.train.summary
        rows.append(dict(net=f"search: trial {res.chosen.trial}", hyperparameters=res.chosen.params,
                         input=s["input_shape"], val_accuracy=res.chosen.val_accuracy,
                         test_accuracy=res.train.report.accuracy, cpp_test_accuracy=res.train.report.cpp_accuracy,
                         macs=s["macs"], ram=s["object_bytes"] + int(np.prod(s["input_shape"])),
                         flash=s["weights_bytes"], fits=True))
        front = [c.to_dict() for c in res.front]
        search_seconds = time.time() - started
        shape = tuple(s["input_shape"])
        for arch in [a for a in args.presets.split(",") if a]:
            t = time.time()
            from micronets.models import make_net

            probe = make_net(arch, 10, (32, 32, 1), True).build()
            fig = measure(probe.model)
            fits = fig.why_not(limits) is None
            row = dict(net=arch, input=[32, 32, 1], macs=fig.macs, ram=fig.ram_bytes, flash=fig.flash_bytes,
                       fits=fits, test_accuracy=None, cpp_test_accuracy=None)
            if fits:
                tr = train_folder(data, arch, os.path.join(work, f"{arch}.h"), input_shape=(32, 32, 1),
                                  epochs=args.final_epochs, plots=False, card=False)
                row.update(test_accuracy=tr.report.accuracy, cpp_test_accuracy=tr.report.cpp_accuracy)
            row["seconds"] = round(time.time() - t, 1)
            rows.append(row)
            print(row, flush=True)
    out = dict(limits=limits.to_dict(), per_class=args.per_class, family=args.family, trials=args.trials,
               epochs_per_trial=args.epochs_per_trial, final_epochs=args.final_epochs, counts=res.counts,
               search_seconds=round(search_seconds, 1), front=front, rows=rows, shape=list(shape))
    write_atomic(args.out, json.dumps(out, indent=2) + "\n")
    print(f"\nLimits: {limits.text()}; {args.per_class} images per class; search {args.trials} trials x "
          f"{args.epochs_per_trial} epochs, final {args.final_epochs} epochs ({search_seconds:.0f} s)\n")
    print("| net | input | test acc (Keras) | test acc (C++) | MACs | RAM (B) | flash (B) | fits |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        acc = "-" if r["test_accuracy"] is None else f"{r['test_accuracy'] * 100:.1f}%"
        cpp = "-" if r["cpp_test_accuracy"] is None else f"{r['cpp_test_accuracy'] * 100:.1f}%"
        print(f"| {r['net']} | {'x'.join(map(str, r['input']))} | {acc} | {cpp} | {r['macs']:,} | {r['ram']:,} | "
              f"{r['flash']:,} | {'yes' if r['fits'] else 'no'} |")
    print("\nFront (validation accuracy after the trial epochs):")
    for c in front:
        print(f"  trial {c['trial']}: {c['val_accuracy'] * 100:.1f}%  MACs {c['macs']:,}  RAM {c['ram_bytes']:,}  "
              f"flash {c['flash_bytes']:,}  {c['params']}")


if __name__ == "__main__":
    main()
