#!/usr/bin/env python
"""Where a float model's Cortex-M4 instructions go: per op and per op kind, under QEMU -icount.

    python benchmarks/m4_layers.py pico phinet-5m          # per-kind table per net
    python benchmarks/m4_layers.py --ops phinet-5m         # and one line per op
    python benchmarks/m4_layers.py --cache /tmp/m4l pico   # reuse the randomised Keras models

The nets are benchmarks/run.py's (same construction, same weight randomisation and first input).
Three firmwares per net: the plain one (whole-network instructions, as run.py counts them), the
same with ``MICRONETS_TRACE_OP`` defined to read the board timer after every op (per-op
instructions; the printing between ops is left out of the counts), and the model-only flash
(``qemu.model_footprint``).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

#: included before the model: prints "MN_OP <index> <ticks since the last op ended>" after each op
PROFILE_HEADER = r"""
#include <stdint.h>
extern "C" void mn_write0(const char* s);
static uint32_t mn_prof_last __attribute__((unused));
static void mn_prof(int index) __attribute__((unused, noinline));
static void mn_prof(int index)
{
    volatile uint32_t* timer = (volatile uint32_t*)0x40002004u;
    const uint32_t ticks = mn_prof_last - *timer;
    char buf[40], tmp[12];
    int n = 0, k = 0;
    uint32_t v = (uint32_t)index;
    buf[n++] = 'M'; buf[n++] = 'N'; buf[n++] = '_'; buf[n++] = 'O'; buf[n++] = 'P'; buf[n++] = ' ';
    do { tmp[k++] = (char)('0' + v % 10u); v /= 10u; } while (v != 0u);
    while (k > 0) buf[n++] = tmp[--k];
    buf[n++] = ' ';
    v = ticks;
    do { tmp[k++] = (char)('0' + v % 10u); v /= 10u; } while (v != 0u);
    while (k > 0) buf[n++] = tmp[--k];
    buf[n++] = '\n';
    buf[n] = 0;
    mn_write0(buf);
    mn_prof_last = *timer;
}
#define MICRONETS_TRACE_OP(index, values, count) mn_prof(index)
"""


def load_net(name: str, cache: Path):
    """(keras model, class name, first input) as benchmarks/run.py makes them; cached as .keras."""
    import keras

    from run import build_net, randomize_weights, real_images

    path, xpath = cache / f"{name}.keras", cache / f"{name}.npy"
    keras.utils.set_random_seed(0)
    model, classname = build_net(name)
    if path.exists() and xpath.exists():
        model.load_weights(path)
        return model, classname, np.load(xpath)
    shape = tuple(int(d) for d in model.input_shape[1:])
    x, _ = real_images(16, shape, 0)
    rep, _ = real_images(64, shape, 1)
    randomize_weights(model, rep[:16], 0)
    cache.mkdir(parents=True, exist_ok=True)
    model.save(path)
    np.save(xpath, x[:1])
    return model, classname, x[:1]


def profile(name: str, cache: Path, work: Path, show_ops: bool, flash: bool) -> dict:
    from micronets.compiler.compile import compile_model
    from micronets.embedded import qemu

    model, classname, x = load_net(name, cache)
    compiled = compile_model(model, classname=classname)
    s = compiled.summary()
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    header = d / "model.h"
    header.write_text(compiled.header)
    (d / "prof.h").write_text(PROFILE_HEADER)
    ref = np.asarray(model(x, training=False))

    t = time.time()
    plain = qemu.run_firmware(qemu.build_firmware(header, classname, x, d / "plain"), timeout=600)
    prof_elf = qemu.build_firmware(header, classname, x, d / "prof", extra_flags=["-include", str(d / "prof.h")])
    proc = subprocess.run(["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
                           "-semihosting-config", "enable=on,target=native",
                           "-icount", f"shift={qemu.DEFAULT_SHIFT},align=off,sleep=off", "-kernel", str(prof_elf)],
                          capture_output=True, text=True, timeout=600)
    ticks = collections.OrderedDict()
    for m in re.finditer(r"MN_OP (\d+) (\d+)", proc.stdout + proc.stderr):
        ticks.setdefault(int(m.group(1)), int(m.group(2)))  # first input only
    fp = qemu.model_footprint(header, classname, d / "footprint") if flash else None

    macs = s["macs"]
    rows = []
    for op in compiled.graph.ops:
        i = compiled.graph.ops.index(op)
        ins = ticks.get(i, 0) * qemu.TIMER_NS_PER_TICK / float(1 << qemu.DEFAULT_SHIFT)
        rows.append((i, op, ins))
    total = plain.instructions
    if rows:  # the first op's count runs from the timer's start: give it what the others leave
        rows[0] = (rows[0][0], rows[0][1], total - sum(ins for _, _, ins in rows[1:]))
    by_kind = collections.defaultdict(lambda: [0, 0.0, 0])
    for i, op, ins in rows:
        key = op.kind
        by_kind[key][0] += op.macs()
        by_kind[key][1] += ins
        by_kind[key][2] += 1
    diff = float(np.abs(plain.outputs[0] - ref[0]).max())
    print(f"\n== {name} ({classname}): {total:,} instructions, {macs:,} MACs, {total / macs:.3f}/MAC; "
          f"arena {s['arena_bytes']:,} B; M4 max|diff| vs Keras {diff:.1e}"
          + (f"; model flash {fp['flash']:,} B" if fp else "") + f" [{time.time() - t:.0f}s]")
    print(f"{'kind':<24} {'ops':>4} {'MACs':>11} {'instructions':>13} {'share':>6} {'/MAC':>6}")
    for kind, (m, ins, n) in sorted(by_kind.items(), key=lambda kv: -kv[1][1]):
        print(f"{kind:<24} {n:>4} {m:>11,} {ins:>13,.0f} {ins / total:>6.1%} {ins / m if m else 0:>6.2f}")
    if show_ops:
        for i, op, ins in rows:
            print(f"  {i:>3} {op.name[:28]:<28} {op.label()[:60]:<60} {op.macs():>9,} {ins:>10,.0f} "
                  f"{ins / op.macs() if op.macs() else 0:6.2f}  {op.inputs[0].shape} -> {op.output.shape}")
    return dict(name=name, instructions=total, macs=macs, arena=s["arena_bytes"],
                flash=fp["flash"] if fp else None, max_abs_diff=diff)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("nets", nargs="+")
    ap.add_argument("--ops", action="store_true", help="one line per op too")
    ap.add_argument("--no-flash", action="store_true", help="skip the model-only flash build")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "m4_layers_models"))
    ap.add_argument("--work", default=None, help="build folder (default: a temporary one)")
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="m4_layers_"))
    results = [profile(n, Path(args.cache), work, args.ops, not args.no_flash) for n in args.nets]
    print("\nnet instructions MACs /MAC arena flash")
    for r in results:
        print(f"{r['name']} {r['instructions']} {r['macs']} {r['instructions'] / r['macs']:.3f} {r['arena']} {r['flash']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
