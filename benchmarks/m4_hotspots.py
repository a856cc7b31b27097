#!/usr/bin/env python
"""Where an int8 header's Cortex-M4 instructions go, per kernel function and per basic block.

    python benchmarks/m4_hotspots.py --nets phinet-10m                    # per kernel, per instance
    python benchmarks/m4_hotspots.py --nets micro --blocks int8_dw_row_dsp # and that kernel's blocks
    python benchmarks/m4_hotspots.py --nets phinet-10m,micro --out benchmarks/RESULTS.md

benchmarks/int8_profile.py counts per layer (a timer read between layers). This counts per
function of the firmware: the nets are built as benchmarks/int8.py builds them (.tflite cached in
--cache, as int8_profile.py does), the header compiled for QEMU's Cortex-M4 (DSP path, -O2, row
streams on) and run once under QEMU with its translation-block trace (``-d in_asm,exec,nochain``):
every executed block is logged, and each block's instructions are credited to the function
(``arm-none-eabi-nm``) holding them. Kernels inlined into their caller are credited to it
(``run<...>``: the generated predict). Functions of the test harness (its calibration loop, stack
painting, printing, start-up) are counted apart; ``main`` holds harness code and anything inlined
into it. --blocks PATTERN: for each function whose name contains PATTERN, the runs of
instructions executed equally often (a loop body is one such run), with their counts.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

#: functions of the QEMU harness (micronets/embedded), not of the model
HARNESS = re.compile(r"calibration_loop|stack_paint|Line::|^mn_(reset|fault|default)_handler|^mn_write0|^mn_exit|"
                     r"_GLOBAL__sub_I_main|^__aeabi_|^__(add|sub|mul|div|trunc|extend|float|fix)\w*[sd]f")
_TRACE = re.compile(r"^Trace \d+: (0x[0-9a-f]+) \[[0-9a-f]+/([0-9a-f]+)/")


def functions(elf: str):
    """[(start, size, demangled name)] of the ELF's code symbols, by address."""
    out = subprocess.run(["arm-none-eabi-nm", "-S", "-C", "--defined-only", elf], capture_output=True, text=True,
                         check=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[2] in "tTwW":
            syms.append((int(parts[0], 16), int(parts[1], 16), parts[3]))
    return sorted(syms)


def executed(log: str):
    """{instruction address: times executed} from a ``-d in_asm,exec,nochain`` log: each logged
    block execution ("Trace N: HOST [flags/pc/...]") credits the instructions its translation
    listed. A translation ("IN:") is tied to the host code of the first execution that follows it,
    so two translations starting at one address (other CPU state, e.g. inside an IT block) count
    apart; the host address is reused only after QEMU translates anew, which logs again."""
    by_host, by_pc, cur, pending = {}, {}, None, None
    counts = collections.Counter()
    with open(log, errors="replace") as fh:
        for line in fh:
            if line.startswith("IN:"):
                cur = []
            elif cur is not None and line.startswith("0x"):
                cur.append(int(line.split(":", 1)[0], 16))
            elif cur is not None and not line.strip():
                if cur:
                    by_pc[cur[0]] = pending = cur
                cur = None
            elif line.startswith("Trace"):
                m = _TRACE.match(line)
                if m:
                    host, pc = m.group(1), int(m.group(2), 16)
                    if pending is not None and pending[0] == pc:
                        by_host[host] = pending
                    pending = None
                    for a in by_host.get(host) or by_pc.get(pc, ()):
                        counts[a] += 1
    return counts


def trace(elf: str, work: str):
    """Run the firmware once under QEMU with the block trace; its {address: count}."""
    from micronets.embedded import qemu

    log = os.path.join(work, "trace.log")
    cmd = [qemu.QEMU, "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
           "-semihosting-config", "enable=on,target=native", "-icount", f"shift={qemu.DEFAULT_SHIFT},align=off,sleep=off",
           "-kernel", elf, "-d", "in_asm,exec,nochain", "-D", log]
    subprocess.run(cmd, capture_output=True, timeout=1800, check=True)
    try:
        return executed(log)
    finally:
        os.remove(log)


def per_function(counts, syms):
    starts = [s[0] for s in syms]
    per = collections.Counter()
    for a, c in counts.items():
        i = bisect.bisect_right(starts, a) - 1
        per[syms[i][2] if i >= 0 and a < syms[i][0] + syms[i][1] else "?"] += c
    return per


def kernel(name: str) -> str:
    """A function's kernel: its name without class, template arguments and parameters."""
    name = re.sub(r"\(.*$", "", name.replace("micronets_Net::", ""))
    depth, out = 0, []
    for ch in name:
        depth += ch == "<"
        if depth == 0:
            out.append(ch)
        depth -= ch == ">"
    return re.sub(r"^.* ", "", "".join(out).strip()) or name


def blocks(elf: str, counts, pattern: str):
    """Lines: for each function matching pattern, its runs of equally executed instructions."""
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", "-C", "--no-show-raw-insn", elf], capture_output=True, text=True,
                         check=True).stdout
    lines, rows, name = [], [], None

    def flush():
        if not rows:
            return
        total = sum(c for _, c, _ in rows) or 1
        lines.append(f"{name[:160]}")
        i = 0
        while i < len(rows):
            j = i
            while j + 1 < len(rows) and rows[j + 1][1] == rows[i][1]:
                j += 1
            n, c = j - i + 1, rows[i][1]
            if c:
                lines.append(f"  {rows[i][0]:6x}-{rows[j][0]:6x} {n:4d} instructions x {c:9,d} = {n * c:11,d} "
                             f"({100 * n * c / total:4.1f}%)  first: {rows[i][2]}")
            i = j + 1

    for line in dis.splitlines():
        head = re.match(r"^[0-9a-f]{8} <(.*)>:$", line)
        if head:
            flush()
            rows, name = [], (head.group(1) if pattern in head.group(1) else None)
            continue
        m = re.match(r"\s+([0-9a-f]+):\s+(.*)", line)
        if name and m:
            a = int(m.group(1), 16)
            rows.append((a, counts.get(a, 0), re.sub(r"\s*<.*>", "", m.group(2))[:48]))
    flush()
    return lines


def hotspots(name: str, cache: str, work: str, top: int = 12):
    from int8_profile import tflite_for

    from micronets.compiler.int8 import compile_tflite
    from micronets.embedded import qemu

    compiled = compile_tflite(tflite_for(name, cache), classname="Net")
    header = os.path.join(work, f"{name}.h")
    with open(header, "w") as fh:
        fh.write(compiled.header)
    shape = tuple(int(d) for d in compiled.graph.input.shape)
    shape = shape[1:] if len(shape) == 4 else shape
    pixels = np.random.default_rng(0).integers(0, 256, (1,) + shape).astype(np.uint8)
    elf = str(qemu.build_firmware(header, "Net", pixels, os.path.join(work, f"fw_{name}"), entry="uint8"))
    predict = qemu.run_firmware(elf, timeout=900).instructions
    counts = trace(elf, work)
    per = per_function(counts, functions(elf))
    model = {f: c for f, c in per.items() if not HARNESS.search(f)}
    fams = collections.Counter()
    for f, c in model.items():
        fams[kernel(f)] += c
    total = sum(model.values())
    macs = compiled.summary()["macs"]
    lines = [f"### {name}: {predict:,} instructions in predict(), {macs:,} MACs ({predict / macs:.3f}/MAC); "
             f"{total:,} traced in model code (main and memset include harness work)", "",
             "| kernel | instructions | share | instances |", "|---|--:|--:|--:|"]
    n_inst = collections.Counter(kernel(f) for f in model)
    for k, c in fams.most_common():
        if c >= total / 500:
            lines.append(f"| `{k}` | {c:,} | {100 * c / total:.1f}% | {n_inst[k]} |")
    lines += ["", f"Top {top} instances:", "", "| function | instructions | share |", "|---|--:|--:|"]
    for f, c in collections.Counter(model).most_common(top):
        short = re.sub(r"\(.*$", "", f.replace("micronets_Net::", "")).replace("micronets_Net::", "")
        short = re.sub(r"^void |^static ", "", short)
        lines.append(f"| `{short}` | {c:,} | {100 * c / total:.1f}% |")
    return lines, counts, elf


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default="phinet-10m")
    p.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "micronets-int8-profile"))
    p.add_argument("--blocks", default=None, help="also the basic blocks of functions whose name contains this")
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--out", default="-", help="markdown file whose m4_hotspots.py section is rewritten ('-': print only)")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    text = []
    with tempfile.TemporaryDirectory(prefix="mn-hot-") as work:
        for name in args.nets.split(","):
            lines, counts, elf = hotspots(name, args.cache, work, args.top)
            print("\n".join(lines), flush=True)
            text += lines + [""]
            if args.blocks:
                print("\n".join(blocks(elf, counts, args.blocks)), flush=True)
    if args.out != "-":
        from sections import markers, write_section

        begin, end = markers("m4_hotspots.py")
        write_section(args.out, f"{begin}\n## int8: where the Cortex-M4 instructions go, per kernel "
                                f"(benchmarks/m4_hotspots.py)\n\n" + "\n".join(text).rstrip() + f"\n{end}\n",
                      "m4_hotspots.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
