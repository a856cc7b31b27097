#!/usr/bin/env python
"""Per-layer Cortex-M4 instruction counts of an int8 header, and per-layer output checksums.

    python benchmarks/int8_profile.py --nets micro,phinet-2m            # table per net
    python benchmarks/int8_profile.py --nets micro --save-ref           # record per-layer checksums
    python benchmarks/int8_profile.py --nets micro --check              # compare with them
    python benchmarks/int8_profile.py --nets tflm_person_detect --layer-by-layer   # a published file, no streams
    python benchmarks/int8_profile.py --nets micro --stages             # and each row stream's stages

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

# --stages: the timer read around each ring's computing of its producer's rows (mn_sx_ring::fill)
# and around each plain stream's last call, accumulated per ring depth (depth d: the d-th ring
# back from the stream's end, whose fills nest inside the d - 1-th's), printed after the stream
STAGE_HOOK = r"""
static uint32_t mn_sxp_incl[64] __attribute__((unused));
static int mn_sxp_depth __attribute__((unused));
static __attribute__((noinline, unused)) void mn_sxp_dump(int idx, uint32_t total)
{
    char buf[64];
    for (int d = 0; d <= 64; ++d) {
        if (d < 64 && !mn_sxp_incl[d])
            continue;
        char* p = buf;
        *p++ = 'M'; *p++ = 'N'; *p++ = 'S'; *p++ = ' ';
        mn_prof_put(p, (uint32_t)idx); *p++ = ' ';
        mn_prof_put(p, (uint32_t)d); *p++ = ' ';
        mn_prof_put(p, d < 64 ? mn_sxp_incl[d] : total); *p++ = '\n'; *p = 0;
#ifdef __arm__
        mn_write0(buf);
#else
        fputs(buf, stderr);
#endif
        if (d < 64)
            mn_sxp_incl[d] = 0;
    }
}
"""
RING_FILL = "            next += mn_sx_rows<B>::fill(st, next, H, buf + (next % N) * SS + PL);"


def stage_header(header: str):
    """``header`` with each plain stream's (mn_sx_ring) stages timed (STAGE_HOOK), and per such
    stream its layer index, its stages' labels and how many rings it has: {index: (labels, rings)}."""
    if "workspace (rings, sums)" not in header:
        return header, {}
    if RING_FILL not in header:
        raise RuntimeError("int8_stream.h.j2's ring fill changed: update benchmarks/int8_profile.py's RING_FILL")
    header = header.replace(RING_FILL, "        { const int d_ = mn_sxp_depth++; const uint32_t t_ = mn_prof_now();\n" + RING_FILL +
                            "\n          mn_sxp_incl[d_ < 64 ? d_ : 63] += t_ - mn_prof_now(); --mn_sxp_depth; }")
    out, streams, pos = [], {}, 0
    for m in re.finditer(r"// \[(\d+)\] [^\n]*\n(?:\s*//[^\n]*\n)*\s*\{ // \d+ stages row by row; workspace \(rings, sums\)(.*?)\n(\s*)(int8_sx_(?:store|close)<[^;]*;)",
                         header, re.S):
        idx, body = int(m.group(1)), m.group(2)
        labels = re.findall(r"// (s\d+: [^:\n]*)", body)  # (a closing stage's too)
        streams[idx] = (labels, body.count("typedef mn_sx_ring<"))
        out.append(header[pos:m.start(4)])
        out.append("{ const uint32_t T0_ = mn_prof_now(); " + m.group(4) + f" mn_sxp_dump({idx}, T0_ - mn_prof_now()); }}")
        pos = m.end(4)
    out.append(header[pos:])
    return "".join(out), streams


def stage_counts(text: str, streams: dict):
    """{layer index: [(stage label, instructions)]} from a --stages run's MNS lines: depth d's fills
    run stage (rings - 1 - d), less the deeper fills nested in them; the stage after the last ring
    (the last row stage, or the closing one) the whole call less depth 0's fills."""
    incl = {}
    for line in text.splitlines():
        parts = line.strip().split()
        if len(parts) == 4 and parts[0] == "MNS":
            incl.setdefault(int(parts[1]), {})[int(parts[2])] = int(parts[3]) * 40 / 128
    res = {}
    for idx, (labels, rings) in streams.items():
        got = incl.get(idx, {})
        depth = [got.get(d, 0.0) for d in range(rings)]
        per = [0.0] * len(labels)
        for d in range(rings):
            per[rings - 1 - d] = depth[d] - (depth[d + 1] if d + 1 < rings else 0.0)
        per[rings] = got.get(64, 0.0) - (depth[0] if rings else 0.0)
        res[idx] = list(zip(labels, per))
    return res


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


def profile(name: str, cache: str, work: str, ref: dict = None, cflags=(), stream: bool = True, stages: bool = False):
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
    run = qemu.run_firmware(elf, timeout=900)
    total, stack = run.instructions, run.stack_bytes
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
    per_stage = {}
    if stages:  # a third build, its plain streams' stages timed
        text, streams = stage_header(compiled.header)
        sheader = os.path.join(work, f"{name}_stages.h")
        with open(sheader, "w") as fh:
            fh.write(text)
        shook = os.path.join(work, "mn_prof_stages.h")
        with open(shook, "w") as fh:
            fh.write(HOOK + STAGE_HOOK)
        elf3 = qemu.build_firmware(sheader, "Net", pixels, os.path.join(work, f"fws_{name}"), entry="uint8",
                                   extra_flags=["-include", shook, *cflags])
        proc3 = subprocess.run(cmd[:-1] + [str(elf3)], capture_output=True, text=True, timeout=900)
        per_stage = stage_counts(proc3.stdout + proc3.stderr, streams)
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
        rows.append(dict(idx=idx, label=label, macs=macs, instr=ins, flags=flags, stages=per_stage.get(idx, [])))
    return dict(net=name, total=total, macs=compiled.summary()["macs"], rows=rows, flash=flash, stack=stack, arena=compiled.summary()["arena_bytes"],
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
    p.add_argument("--stages", action="store_true",
                   help="also each plain row stream's stages (a build timing them; approximate: the timer reads add a few instructions a row)")
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
            r = profile(name, args.cache, work, ref, args.cflags.split(), stream=not args.layer_by_layer, stages=args.stages)
        if args.save_ref:
            with open(refpath, "w") as fh:
                json.dump(r["hashes"], fh)
        nflag = sum(1 for row in r["rows"] if row["flags"])
        bad += nflag
        print(f"== {name}: {r['total']:,.0f} instructions, {r['macs']:,} MACs, {r['total'] / r['macs']:.3f} /MAC, firmware flash {r['flash']:,} B, arena {r['arena']:,} B, stack {r['stack']:,} B"
              f"{'' if not nflag else f'  {nflag} LAYERS DIFFER'}")
        if args.brief:
            continue
        for row in r["rows"]:
            per = row["instr"] / row["macs"] if row["macs"] else float("nan")
            print(f"  [{row['idx']:2d}] {row['instr']:12,.0f} {100 * row['instr'] / r['total']:5.1f}%  {row['macs']:10,} MACs "
                  f"{per:6.2f}/MAC  {row['label'][:90]} {' '.join(row['flags'])}")
            for label, ins in row["stages"]:
                print(f"       {ins:12,.0f}  {label[:90]}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
