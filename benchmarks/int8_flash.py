#!/usr/bin/env python
"""Where an int8 header's flash goes: its static const bytes per net, by array kind and op kind.

    python benchmarks/int8_flash.py --nets pico,nano,mlperf_kws_ds_cnn
    python benchmarks/int8_flash.py --nets pico --layers        # one line per array too

Each net is built as benchmarks/int8.py builds it (same random weights, same converter call; the
.tflite is cached in --cache). Every array the header stores (each op's ``typed_weights()``, the
uint8 input table where one is needed) is counted as the header stores it (identical arrays once); params are the model's
int8 weights and biases (the B/param of benchmarks/int8.py, whose "int8 weights" column is the
same total). "floor" is ``floor_bits`` over the parameters: the fewest bytes an exact store of
the values today's kernels use can take, each layer bit-packed to its own widths (weights 8 bits;
per output channel the folded bias's width, 30 bits of multiplier, log2 of the layer's shift
range; tables their span between the saturated ends, identical ones once): where it is above 1.15, no layout of these values meets issue
#11's 1.15 B/param.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

#: array suffix (the last letter of a weights name) -> what it is
KINDS = {"w": "weights", "b": "bias", "f": "bias", "q": "bias+shift", "m": "multiplier",
         "s": "shift", "d": "double scales", "t": "tables", "k": "constants"}


from int8_profile import tflite_for  # noqa: E402  (the .tflite as benchmarks/int8.py makes it, cached)


def breakdown(compiled):
    """(rows, total bytes): one row per emitted array (op kind, kind, C name, bytes)."""
    rows = []
    aliased = compiled.array_aliases()  # the same values as an earlier array: not stored again
    for op in compiled.graph.ops:
        for suffix, array in op.typed_weights().items():
            if op.wname(suffix) not in aliased:
                rows.append((op.kind, KINDS.get(suffix[-1], suffix), op.wname(suffix), int(array.nbytes)))
    if compiled.input_table_bytes():
        rows.append(("input", "tables", "input_lut", 256))
    return rows


def signed_bits(values) -> int:
    """Fewest bits of a two's complement integer that hold every value (0 for none / all zero)."""
    values = np.asarray(values, np.int64)
    if values.size == 0 or not values.any():
        return 0
    lo, hi = int(values.min()), int(values.max())
    return max((lo < 0) + max(abs(lo) - (lo < 0), hi).bit_length(), 1)


def table_span(table) -> int:
    """Entries of a 256-entry table between its saturated ends: the rest equal its first entry
    (below) or its last (above); at least 1."""
    t = np.asarray(table).astype(np.int64)
    inner = np.nonzero(t != t[0])[0]
    if inner.size == 0:
        return 1
    return max(int(np.nonzero(t != t[-1])[0][-1]) - int(inner[0]) + 1, 1)


def channel_parts(op):
    """The per-output-channel parts of an op: (filter or weights array, folded biases, multipliers,
    shifts) for each conv / depthwise / dense it holds (a fused op: both)."""
    for part in ([op.conv, op.dw] if hasattr(op, "conv") else [op]):
        if hasattr(part, "folded_bias") and hasattr(part, "mult"):
            yield part, (part.filt if hasattr(part, "filt") else part.w), part.folded_bias(), part.mult, part.shift


def floor_bits(compiled) -> int:
    """The bits an exact store of today's kernel operands needs at the least, each layer packed to
    its own widths: 8 a weight; per output channel the folded bias in the layer's widest
    two's complement width, the multiplier's 30 bits (it lies in [2^30, 2^31): bit 31 clear, bit 30
    set) and the shift's offset from the layer's smallest (log2 of its range); tables once per
    distinct content; other arrays as stored. A staged op (a stream) counts each stage as its own
    op, and the arrays it adds for a stage as stored."""
    seen = set()

    def op_bits(op) -> int:
        if hasattr(op, "stages"):
            return sum(op_bits(stage) + sum(8 * a.nbytes for a in op.stage_arrays(k).values())
                       for k, stage in enumerate(op.stages))
        parts = list(channel_parts(op))
        if parts:
            bits = 0
            for part, filt, f, mult, shift in parts:
                mbits = 30 if np.all(mult >= 1 << 30) else 31
                srange = int(shift.max()) - int(shift.min()) + 1 if shift.size else 1
                bits += 8 * filt.size + f.size * (signed_bits(f) + mbits + int(np.ceil(np.log2(srange))))
            return bits
        bits = 0
        for suffix, array in op.typed_weights().items():
            if suffix[-1] == "t":  # a table: its span between the saturated ends, once per content
                key = (array.dtype.str, op.table.tobytes())
                if key not in seen:
                    bits += 8 * table_span(op.table)
                seen.add(key)
                continue
            bits += 8 * array.nbytes
        return bits

    return sum(op_bits(op) for op in compiled.graph.ops) + 8 * compiled.input_table_bytes()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default="pico,nano,micro,milli,base,phinet-2m,phinet-5m,phinet-10m,phinet-20m,"
                                     "mlperf_resnet8,mlperf_vww_mobilenet_v1,mlperf_kws_ds_cnn,mlperf_ad_autoencoder")
    p.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "micronets-int8-flash"))
    p.add_argument("--layers", action="store_true", help="one line per array")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from micronets.compiler.int8 import compile_tflite

    kinds = list(dict.fromkeys(KINDS.values()))
    print("| net | params | bytes | B/param | floor B/param | " + " | ".join(kinds) + " |")
    print("|---|--:|--:|--:|--:|" + "--:|" * len(kinds))
    for name in args.nets.split(","):
        compiled = compile_tflite(tflite_for(name.strip(), args.cache), classname="Net")
        s = compiled.summary()
        rows = breakdown(compiled)
        per = collections.Counter()
        for _, kind, _, n in rows:
            per[kind] += n
        total = s["weights_bytes"]
        print(f"| {name} | {s['params']:,} | {total:,} | {total / s['params']:.3f} | "
              f"{floor_bits(compiled) / 8 / s['params']:.3f} | " + " | ".join(f"{per[k]:,}" for k in kinds) + " |")
        if args.layers:
            for op_kind, kind, cname, n in rows:
                print(f"    {cname:<16} {op_kind:<28} {kind:<14} {n:>8,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
