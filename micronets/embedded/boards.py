"""Measure every architecture on the emulated Cortex-M4 and write ``docs/boards.md``.

    python -m micronets.embedded.boards                 # writes docs/boards.md
    python -m micronets.embedded.boards --out - --arch pico --arch nano

For each net (the five MobileNets at 96x96x1 with 10 classes, plus the PhiNet presets when
``micronets.PhiNet.preset`` exists) the generated header is built into the QEMU ``mps2-an386``
harness (``micronets.embedded.qemu``): flash (text + data) and static RAM (data + bss) are those
of the model alone (:func:`micronets.embedded.qemu.model_footprint`: the size-only firmware minus
the same firmware around a null model), the stack is the measured peak, and instructions are
those of one ``predict`` call under QEMU's deterministic ``-icount`` mode.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from micronets.embedded import qemu

MOBILENETS = ["PicoMobileNet", "NanoMobileNet", "MicroMobileNet", "MilliMobileNet", "BaseMobileNet"]
PHINET_PRESETS = ["2m", "5m", "10m", "20m"]
ARCH_ALIASES = {"pico": "PicoMobileNet", "nano": "NanoMobileNet", "micro": "MicroMobileNet",
                "milli": "MilliMobileNet", "base": "BaseMobileNet"}  # fmt: skip
COMMAND = "python -m micronets.embedded.boards"


def make_net(arch: str, num_classes: int = 10):
    """A built micronets net by architecture name (``PicoMobileNet`` ... or ``phinet-2m`` ...)."""
    import micronets

    arch = ARCH_ALIASES.get(arch, arch)
    if arch.startswith("phinet-"):
        net = micronets.PhiNet.preset(arch.split("-", 1)[1], num_classes=num_classes)
    else:
        net = getattr(micronets, arch)(num_classes=num_classes)
    net.build()
    return net


def default_archs() -> List[str]:
    archs = list(MOBILENETS)
    try:
        import micronets

        if hasattr(micronets.PhiNet, "preset"):
            archs += [f"phinet-{p}" for p in PHINET_PRESETS]
    except Exception:  # PhiNet not available in this checkout: MobileNets only
        pass
    return archs


def measure(arch: str, work: Path, opt: str = "-O2", seed: int = 0) -> Dict:
    """Build, size and run one architecture; returns one table row."""
    import keras

    from micronets.compiler import compile_model

    keras.utils.set_random_seed(seed)
    net = make_net(arch)
    model = net.model
    summary = compile_model(model, classname="Net").summary()
    d = work / arch
    d.mkdir(parents=True, exist_ok=True)
    header = d / "model.h"
    net.export(str(header), classname="Net")
    fp = qemu.model_footprint(header, "Net", d / "size", opt=opt)
    x = np.random.RandomState(seed).uniform(0, 1, (1,) + tuple(model.input_shape[1:])).astype(np.float32)
    run = qemu.run_firmware(qemu.build_firmware(header, "Net", x, d / "run", opt=opt), timeout=600)
    macs = int(summary["macs"])
    return {
        "arch": arch,
        "input": "x".join(str(v) for v in model.input_shape[1:]),
        "params": int(model.count_params()),
        "macs": macs,
        "flash": fp["flash"],
        "ram": fp["ram"],
        "arena": int(summary.get("arena_bytes", 0)),
        "stack": run.stack_bytes,
        "instructions": run.instructions,
        "per_mac": run.instructions / macs if macs else float("nan"),
    }


def render(rows: Sequence[Dict], versions: Dict[str, str], opt: str, date: Optional[str] = None) -> str:
    date = date or datetime.date.today().isoformat()
    lines = [
        "# Footprint and speed per architecture (emulated Cortex-M4F)",
        "",
        f"Generated on {date} by `{COMMAND}`; do not edit by hand.",
        "",
        "Each net is freshly initialised (10 classes; MobileNets at 96x96x1, PhiNet presets at their",
        f"published resolution), exported with micronets and built with `{opt}` into the bare-metal",
        "harness of `micronets.embedded` for QEMU's `mps2-an386` board (Cortex-M4 with FPU):",
        "",
        "- **flash**: the model alone: text + data of a firmware that links `predict()` without any",
        "  input image, minus those of the same firmware built around a null model (same interface,",
        "  no weights, no kernels), so the harness, its driver loop and test inputs cancel out. What",
        "  remains is the weights, the kernels' code and the library code (libm, libgcc) the model",
        "  pulls in.",
        "- **RAM**: data + bss of the same difference plus the null model's object: the `Net` object",
        "  (activation arena and outputs) plus any library data. **arena** is the planner's",
        "  activation arena alone.",
        "- **stack**: the measured peak stack of the whole test program (harness included).",
        "- **instructions**: Cortex-M4 instructions executed by one `predict()` call, counted by QEMU",
        "  (`-icount`, repeatable to the instruction). Real cycles are higher: multiply-accumulates,",
        "  loads and taken branches take 1-3 cycles, plus flash wait states on real parts.",
        "- **MACs**: multiply-accumulates of convolutions and dense layers (compiler summary).",
        "",
        "| architecture | input | params | MACs | flash (B) | RAM (B) | arena (B) | stack (B) | instructions | instr/MAC |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arch']} | {r['input']} | {r['params']:,} | {r['macs']:,} | {r['flash']:,} | {r['ram']:,} "
            f"| {r['arena']:,} | {r['stack']:,} | {r['instructions']:,} | {r['per_mac']:.2f} |"
        )
    lines += ["", "Toolchain:", ""]
    lines += [f"- `{name}`: {v}" for name, v in versions.items()]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/boards.md", help="output file, or - for stdout")
    p.add_argument("--arch", action="append", help="architecture (repeatable); default: all")
    p.add_argument("--opt", default="-O2", help="optimisation flag (default -O2)")
    args = p.parse_args(argv)
    archs = args.arch or default_archs()
    rows = []
    with tempfile.TemporaryDirectory(prefix="micronets-boards-") as tmp:
        work = Path(tmp)
        for arch in archs:
            print(f"measuring {arch} ...", file=sys.stderr)
            rows.append(measure(arch, work, opt=args.opt))
    text = render(rows, qemu.toolchain_versions(), args.opt)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        from micronets.compiler.export import write_atomic

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
