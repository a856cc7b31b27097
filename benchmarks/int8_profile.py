#!/usr/bin/env python
"""Per-layer Cortex-M4 instruction counts of an int8 header, and per-layer output checksums.

    python benchmarks/int8_profile.py --nets micro,phinet-2m            # table per net
    python benchmarks/int8_profile.py --nets micro --save-ref           # record per-layer checksums
    python benchmarks/int8_profile.py --nets micro --check              # compare with them
    python benchmarks/int8_profile.py --nets tflm_person_detect --layer-by-layer   # a published file, no streams

Each net is built as benchmarks/int8.py builds it (same random weights, same converter call; the
.tflite is cached in --cache). The header is compiled for QEMU's Cortex-M4 (DSP path, -O2) with
MICRONETS_TRACE_OP defined to a hook that reads the board's timer after every layer, hashes the
layer's output (FNV-1a) and prints both; the host build (g++) prints the same hashes. The first
layer's count is the whole predict() of an uninstrumented build minus the other layers'. A
layer whose hash differs between M4 and host, or from the recorded reference, is flagged.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

HOOK = r"""
#ifndef MN_PROF_HOOK_H
#define MN_PROF_HOOK_H
#include <stdint.h>
#ifdef __arm__
#include "semihosting.h"
#else
#include <stdio.h>
#endif
static uint32_t mn_prof_last __attribute__((unused));
static inline __attribute__((unused)) uint32_t mn_prof_now(void)
{
#ifdef __arm__
    return *(volatile uint32_t*)0x40002004u;
#else
    return 0u;
#endif
}
static __attribute__((unused)) void mn_prof_put(char*& p, uint32_t v)
{
    char tmp[11];
    int i = 0;
    do { tmp[i++] = (char)('0' + v % 10u); v /= 10u; } while (v);
    while (i) *p++ = tmp[--i];
}
static __attribute__((noinline, unused)) void mn_prof_hook(int idx, const void* values, long bytes)
{
    const uint32_t now = mn_prof_now();
    const uint32_t ticks = mn_prof_last - now;
    uint32_t h = 2166136261u;
    const uint8_t* v = (const uint8_t*)values;
    for (long i = 0; i < bytes; ++i)
        h = (h ^ v[i]) * 16777619u;
    char buf[64];
    char* p = buf;
    *p++ = 'M'; *p++ = 'N'; *p++ = 'P'; *p++ = ' ';
    mn_prof_put(p, (uint32_t)idx); *p++ = ' ';
    mn_prof_put(p, ticks); *p++ = ' ';
    mn_prof_put(p, h); *p++ = '\n'; *p = 0;
#ifdef __arm__
    mn_write0(buf);
#else
    fputs(buf, stderr);
#endif
    mn_prof_last = mn_prof_now();
}
#endif
"""
TRACE = "MICRONETS_TRACE_OP(i,v,n)=mn_prof_hook((i),(const void*)(v),(long)(n)*(long)sizeof(*(v)))"


def tflite_for(name: str, cache: str) -> bytes:
    """The net's .tflite exactly as benchmarks/int8.py makes it (cached), or a published file of
    tests/data/published as it is."""
    from int8 import PUBLISHED, PUBLISHED_DIR

    path = os.path.join(PUBLISHED_DIR if name in PUBLISHED else cache, f"{name}.tflite")
    if os.path.exists(path):
        with open(path, "rb") as fh:
            return fh.read()
    from int8 import bench_model

    _, data = bench_model(name)
    os.makedirs(cache, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    return data


def layers_of(header: str):
    """[(index, label, macs)] from the header's per-call comments."""
    out = []
    lines = header.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"\s*// \[(\d+)\] (.*)$", line)
        if m:
            macs = re.search(r"([\d,]+) MACs", lines[i + 1])
            out.append((int(m.group(1)), m.group(2), int(macs.group(1).replace(",", "")) if macs else 0))
    return out


def hashes(text: str, tag: str = "MNP"):
    res = {}
    for line in text.splitlines():
        parts = line.strip().split()
        if len(parts) == 4 and parts[0] == tag:
            res[int(parts[1])] = (int(parts[2]), int(parts[3]))
    return res


def profile(name: str, cache: str, work: str, ref: dict = None, cflags=(), stream: bool = True):
    from micronets.compiler.int8 import compile_tflite
    from micronets.embedded import qemu

    data = tflite_for(name, cache)
    compiled = compile_tflite(data, classname="Net", stream=stream)
    header = os.path.join(work, f"{name}.h")
    with open(header, "w") as fh:
        fh.write(compiled.header)
    hook = os.path.join(work, "mn_prof_hook.h")
    with open(hook, "w") as fh:
        fh.write(HOOK)
    shape = tuple(compiled.graph.input.shape)[1:] if len(compiled.graph.input.shape) == 4 else tuple(compiled.graph.input.shape)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (1,) + tuple(int(d) for d in shape)).astype(np.uint8)
    # uninstrumented: the total
    elf = qemu.build_firmware(header, "Net", pixels, os.path.join(work, f"fw_{name}"), entry="uint8",
                               extra_flags=list(cflags))
    total = qemu.run_firmware(elf, timeout=900).instructions
    sz = qemu.size(elf)
    flash = sz["text"] + sz["data"]
    # instrumented
    elf2 = qemu.build_firmware(header, "Net", pixels, os.path.join(work, f"fwp_{name}"), entry="uint8",
                               extra_flags=["-include", hook, "-D" + TRACE, *cflags])
    cmd = [shutil.which(qemu.QEMU), "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
           "-semihosting-config", "enable=on,target=native", "-icount", "shift=7,align=off,sleep=off", "-kernel", str(elf2)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    m4 = hashes(proc.stdout + proc.stderr)
    # host: the same hashes
    src = os.path.join(work, f"host_{name}.cpp")
    with open(src, "w") as fh:
        fh.write(f'#include "{hook}"\n#include "{header}"\n#include <stdio.h>\nstatic Net net;\n'
                 f"int main() {{ static uint8_t x[Net::numInputs]; if (fread(x, 1, Net::numInputs, stdin) != (size_t)Net::numInputs) return 2;"
                 f" net.predict(x); return 0; }}\n")
    exe = os.path.join(work, f"host_{name}")
    subprocess.run(["g++", "-O2", "-std=c++98", "-D" + TRACE, *cflags, "-o", exe, src], check=True)
    hp = subprocess.run([exe], input=pixels.tobytes(), capture_output=True, check=True)
    host = hashes(hp.stderr.decode())
    rows = []
    layers = layers_of(compiled.header)
    ticks_rest = sum(t for i, (t, _) in m4.items() if i != layers[0][0])
    for idx, label, macs in layers:
        ins = (total - ticks_rest * 40 / 128) if idx == layers[0][0] else m4[idx][0] * 40 / 128
        flags = []
        if m4[idx][1] != host[idx][1]:
            flags.append("M4!=host")
        if ref is not None and ref.get(str(idx)) != host[idx][1]:
            flags.append("!=REF")
        rows.append(dict(idx=idx, label=label, macs=macs, instr=ins, flags=flags))
    return dict(net=name, total=total, macs=compiled.summary()["macs"], rows=rows, flash=flash, arena=compiled.summary()["arena_bytes"],
                hashes={str(k): v[1] for k, v in host.items()})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default="micro")
    p.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "micronets-int8-profile"))
    p.add_argument("--save-ref", action="store_true", help="record the per-layer host hashes as the reference")
    p.add_argument("--check", action="store_true", help="compare per-layer hashes with the recorded reference")
    p.add_argument("--brief", action="store_true", help="only the totals")
    p.add_argument("--layer-by-layer", action="store_true", help="profile the build without row streams")
    p.add_argument("--cflags", default="", help="extra compiler flags for both builds (e.g. -DMICRONETS_NO_DSP)")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.makedirs(args.cache, exist_ok=True)
    bad = 0
    for name in args.nets.split(","):
        refpath = os.path.join(args.cache, f"{name}.ref.json")
        ref = None
        if args.check:
            with open(refpath) as fh:
                ref = json.load(fh)
        with tempfile.TemporaryDirectory(prefix="mn-prof-") as work:
            r = profile(name, args.cache, work, ref, args.cflags.split(), stream=not args.layer_by_layer)
        if args.save_ref:
            with open(refpath, "w") as fh:
                json.dump(r["hashes"], fh)
        nflag = sum(1 for row in r["rows"] if row["flags"])
        bad += nflag
        print(f"== {name}: {r['total']:,.0f} instructions, {r['macs']:,} MACs, {r['total'] / r['macs']:.3f} /MAC, firmware flash {r['flash']:,} B, arena {r['arena']:,} B"
              f"{'' if not nflag else f'  {nflag} LAYERS DIFFER'}")
        if args.brief:
            continue
        for row in r["rows"]:
            per = row["instr"] / row["macs"] if row["macs"] else float("nan")
            print(f"  [{row['idx']:2d}] {row['instr']:12,.0f} {100 * row['instr'] / r['total']:5.1f}%  {row['macs']:10,} MACs "
                  f"{per:6.2f}/MAC  {row['label'][:90]} {' '.join(row['flags'])}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
