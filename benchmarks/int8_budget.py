#!/usr/bin/env python
"""What issue #11's 1.5 Cortex-M4 instructions/MAC leaves for the multiply-accumulates, per net.

    python benchmarks/int8_budget.py                       # fit on phinet-5m,phinet-10m; the nine nets
    python benchmarks/int8_budget.py --fit phinet-10m --nets micro,base --out -   # print only

Every output value of a convolution, depthwise or dense layer is requantised (TFLite's
fixed-point multiply, rounding shift, zero point, clamp, store), whatever its number of MACs.
Step 1 measures what our kernels pay for each: the standalone 1x1 convolutions of the --fit nets
(benchmarks/int8_profile.py's per-layer Cortex-M4 counts under QEMU; layers of <= 256 inputs,
whose tiles hold 2 or 4 pixels) fitted by least squares as ``a * MACs + r * outputs``. Step 2
counts, in each net's .tflite (built as benchmarks/int8.py builds it), its MACs and the outputs
of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED, and prints
  - "at the 1x1 rate": a + r * outputs / MACs, the net's instructions/MAC if every MAC and every
    output cost what they cost in our best-blocked kernel (elementwise ops not counted);
  - "left for MACs at 1.5": 1.5 - r * outputs / MACs, what each MAC may cost for the net to meet
    1.5 with requantisation at r (our 1x1 layers pay a per MAC).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from int8_profile import profile, tflite_for  # noqa: E402

NETS = "micro,milli,base,phinet-2m,phinet-5m,phinet-10m,phinet-20m"
_CALL = re.compile(r"    // \[(\d+)\] [^\n]*\n[^\n]*\n[^\n]*\n    int8_pointwise(?:_split)?<(\d+), (\d+), (\d+), ")


def fit(names, cache: str):
    """(a, r, layers): instructions = a * MACs + r * outputs over the --fit nets' standalone 1x1
    convolutions of <= 256 inputs."""
    from micronets.compiler.int8 import compile_tflite

    xs, ys = [], []
    for name in names:
        header = compile_tflite(tflite_for(name, cache), classname="Net").header
        with tempfile.TemporaryDirectory(prefix="mn-budget-") as work:
            rows = {row["idx"]: row for row in profile(name, cache, work)["rows"]}
        for m in _CALL.finditer(header):
            idx, hw, cin, cout = map(int, m.groups())
            if cin <= 256 and idx in rows:
                xs.append((hw * cin * cout, hw * cout))
                ys.append(rows[idx]["instr"])
    (a, r), *_ = np.linalg.lstsq(np.array(xs, float), np.array(ys, float), rcond=None)
    worst = max(abs(y - a * x[0] - r * x[1]) / y for x, y in zip(xs, ys))
    return float(a), float(r), len(xs), worst


def counts(data: bytes):
    """(MACs, requantised outputs) of a .tflite's CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED."""
    import tensorflow as tf

    it = tf.lite.Interpreter(model_content=data)
    it.allocate_tensors()
    shapes = {t["index"]: t["shape"] for t in it.get_tensor_details()}
    macs = outs = 0
    for op in it._get_ops_details():
        kind = op["op_name"]
        if kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        n = int(np.prod(shapes[op["outputs"][0]]))
        w = shapes[op["inputs"][1]]
        per = int(np.prod(w[1:])) if kind == "CONV_2D" else (int(w[1] * w[2]) if kind == "DEPTHWISE_CONV_2D" else int(w[1]))
        macs += n * per
        outs += n
    return macs, outs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fit", default="phinet-5m,phinet-10m", help="nets whose 1x1 layers give the fit")
    p.add_argument("--nets", default=NETS)
    p.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "micronets-int8-profile"))
    p.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"),
                   help="markdown file whose int8_budget.py section is rewritten ('-': print only)")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    a, r, n, worst = fit(args.fit.split(","), args.cache)
    lines = [f"Fit over the {n} standalone 1x1 layers (<= 256 inputs) of {args.fit}: M4 instructions = "
             f"{a:.3f} x MACs + {r:.2f} x outputs (largest residual {100 * worst:.1f}%). \"at the 1x1 rate\": "
             f"a net's instructions/MAC if all its MACs and outputs cost that (elementwise ops not counted); "
             f"\"left for MACs\": what each MAC may cost for 1.5/MAC with every output at {r:.2f}.", "",
             "| net | MACs | requantised outputs | MACs per output | at the 1x1 rate (/MAC) | left for MACs at 1.5 (/MAC) |",
             "|---|--:|--:|--:|--:|--:|"]
    for name in args.nets.split(","):
        macs, outs = counts(tflite_for(name, args.cache))
        share = r * outs / macs
        lines.append(f"| {name} | {macs:,} | {outs:,} | {macs / outs:.2f} | {a + share:.2f} | {1.5 - share:.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.out != "-":
        from sections import markers, write_section

        begin, end = markers("int8_budget.py")
        write_section(args.out, f"{begin}\n## int8: what 1.5 M4 instructions/MAC leaves for the MACs "
                                f"(benchmarks/int8_budget.py)\n\n{text}\n{end}\n", "int8_budget.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
