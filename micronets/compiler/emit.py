"""emit: a planned Graph -> the text of one self-contained C++ header (Jinja templates).

The skeleton is ``templates/header.h.j2``; each op kind's kernel and call live in its own
``templates/kernels/<op>.h.j2`` (macros ``definition()`` and ``call(op)``). Output is
deterministic: the same model always renders the same bytes.
"""

from __future__ import annotations

import os
from functools import lru_cache


import numpy as np

from micronets.compiler.graph import FLOAT_BYTES


def templates_dir() -> str:
    """Installed wheels carry the templates as micronets/templates; a source checkout has them
    at the repository's top level."""
    import micronets

    here = os.path.dirname(os.path.abspath(micronets.__file__))
    for candidate in (os.path.join(here, "templates"), os.path.join(os.path.dirname(here), "templates")):
        if os.path.isfile(os.path.join(candidate, "header.h.j2")):
            return candidate
    raise FileNotFoundError("micronets templates not found (expected micronets/templates or ./templates)")


@lru_cache(maxsize=1)
def environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def c_float(value: float) -> str:
    """A float32 as a C++ literal with 9 significant digits (round-trips exactly)."""
    s = "%.9g" % float(np.float32(value))
    if "e" not in s and "." not in s and "n" not in s:
        s += ".0"
    return s + "f"


def c_float_block(values, per_line: int = 8, indent: str = "    ") -> str:
    flat = np.asarray(values, np.float32).reshape(-1)
    items = [c_float(v) for v in flat.tolist()]
    lines = [indent + ", ".join(items[i:i + per_line]) + "," for i in range(0, len(items), per_line)]
    return "\n".join(lines)


_WHAT = {"w": "weights", "b": "bias", "s": "scale", "t": "shift"}


def _where(t) -> str:
    if t.kind == "input":
        return f"{t.shape_str()} input"
    if t.kind == "output":
        return f"{t.shape_str()} outputs[]"
    return f"{t.shape_str()} @ arena bytes [{t.offset}, {t.offset + t.nbytes})"


def render(graph, *, classname: str, namespace: str, filename: str, arch: str, version: str,
           summary: dict, input_scale: float, input_offset: float) -> str:
    env = environment()
    weights, kernels, calls, seen = [], [], [], []
    for op in graph.ops:
        for suffix, array in op.weights().items():
            weights.append(dict(layer=op.name, what=_WHAT.get(suffix, suffix), cname=op.wname(suffix),
                                count=int(array.size), body=c_float_block(array)))
        module = env.get_template(op.template).module
        for template in (*op.requires, op.template):
            if template not in seen:
                seen.append(template)
                kernels.append(str(env.get_template(template).module.definition()).strip())
        ins = ", ".join(_where(t) for t in op.inputs)
        calls.append(dict(index=op.index, name=op.name, label=op.label(),
                          inputs=ins, output=_where(op.output), macs=op.macs(),
                          code=str(module.call(op)).strip()))
    arena_bytes = summary["arena_bytes"]
    return env.get_template("header.h.j2").render(
        filename=filename,
        version=version,
        arch=arch,
        classname=classname,
        namespace=namespace,
        guard=f"MICRONETS_{classname.upper()}_H",
        input_shape_str="x".join(map(str, graph.input.shape)),
        num_inputs=graph.input.size,
        num_outputs=graph.output.size,
        macs=summary["macs"],
        params=summary["params"],
        weight_floats=summary["weights"],
        weights_bytes=summary["weights_bytes"],
        arena_bytes=arena_bytes,
        arena_floats=max(1, arena_bytes // FLOAT_BYTES),
        inplace_bound=summary["inplace_bound"],
        naive_bound=summary["naive_bound"],
        layerwise_bound=summary["layerwise_bound"],
        object_bytes=summary["object_bytes"],
        input_scale_str="%.9g" % input_scale,
        input_offset_str="%.9g" % input_offset,
        input_offset=input_offset,
        input_lut=c_float_block(np.arange(256, dtype=np.float64) * input_scale + input_offset),
        weights=weights,
        kernels=kernels,
        calls=calls,
    )
