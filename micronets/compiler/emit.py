"""emit: a planned Graph -> the text of one self-contained C++ header (Jinja templates).

The skeleton is ``templates/header.h.j2``; each op kind's kernel and call live in its own
``templates/kernels/<op>.h.j2`` (macros ``definition()`` and ``call(op)``). Output is
deterministic: the same model always renders the same bytes.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache


import numpy as np

from micronets.compiler.activations import c_float
from micronets.compiler.graph import FLOAT_BYTES, input_name


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


def c_float_block(values, per_line: int = 8, indent: str = "    ") -> str:
    flat = np.asarray(values, np.float32).reshape(-1)
    items = [c_float(v) for v in flat.tolist()]
    lines = [indent + ", ".join(items[i:i + per_line]) + "," for i in range(0, len(items), per_line)]
    return "\n".join(lines)


def c_string(text: str) -> str:
    """``text`` as a C string literal: UTF-8 bytes, printable ASCII as is (quotes, backslashes and
    '?' escaped: no trigraphs), everything else as three-digit octal escapes."""
    out = []
    for b in str(text).encode("utf-8"):
        ch = chr(b)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 32 <= b < 127:
            out.append(ch)
        else:
            out.append("\\%03o" % b)
    return '"' + "".join(out) + '"'


def comment(text) -> str:
    """User-derived text (layer, model and class names, notes) made safe for a // comment: one
    line, printable ASCII, no backslash (a trailing one would splice the next line in)."""
    return "".join(ch if 32 <= ord(ch) < 127 and ch != "\\" else "?" for ch in str(text))


_WHAT = {"w": "weights", "b": "bias", "s": "scale", "t": "shift", "a": "constants", "ab": "constants"}


def _what(suffix: str, names=_WHAT) -> str:
    """'w' -> 'weights'; a fused op's 'cw' / 'db' -> 'conv weights' / 'depthwise bias' (``names``:
    the header's table of weight-array suffixes)."""
    if suffix in names:
        return names[suffix]
    if len(suffix) == 2 and suffix[:1] in ("c", "d") and suffix[1:] in names:
        return ("conv " if suffix[0] == "c" else "depthwise ") + names[suffix[1:]]
    stage = re.fullmatch(r"s(\d+)(\w+)", suffix)  # a stream's stage k: 's2w'
    if stage and stage.group(2) in names:
        return f"stage {stage.group(1)} {names[stage.group(2)]}"
    return suffix


def _where(t, plan, output_names) -> str:
    """Where a tensor lives, for a layer's comment: the input, an output array, a channel slice or arena bytes."""
    if t.is_slice:
        return f"{t.shape_str()} as channels [{t.channel_offset}, {t.channel_offset + t.shape[-1]}) of {_where(t.base, plan, output_names)}"
    kind, value = plan.location(t)
    if kind == "input":
        return f"{t.shape_str()} {input_name(value)}"
    if kind == "output":
        return f"{t.shape_str()} {output_names[value]}[]"
    return f"{t.shape_str()} @ arena bytes [{value}, {value + t.storage.nbytes})"


def output_name(k: int) -> str:
    """Name of the class's array for model output k."""
    return "outputs" if k == 0 else f"outputs{k}"


def layer_sections(graph, plan, output_names, weight_entry, call_extra=None):
    """What every header has per op, float or int8: its weight arrays (``weight_entry(op)``: a list
    of dicts), the kernel definitions it needs (each once, in first-use order), and its call with
    the layer comment's fields (name, what it computes, where its inputs and output live, MACs;
    ``call_extra(op)``: more fields). ``output_names``: the class arrays the model outputs go to."""
    from micronets.compiler.plan import Placed

    env = environment()
    weights, kernels, calls, seen = [], [], [], []
    for source in graph.ops:
        op = plan.op(source)  # as it runs under the plan (the planner's scratch / workspace choice)
        weights.extend(weight_entry(op))
        module = env.get_template(op.template).module
        for template in (*op.requires, op.template):
            if template not in seen:
                seen.append(template)
                kernels.append(str(env.get_template(template).module.definition()).strip())
        placed = Placed(source, plan, output_names)
        calls.append(dict(index=op.index, name=comment(op.name), label=comment(op.label()),
                          inputs=", ".join(_where(t, plan, output_names) for t in op.inputs),
                          output=_where(op.output, plan, output_names), macs=op.macs(),
                          code=str(module.call(op, placed)).strip(),
                          out_ptr=placed.ptr(op.output), out_size=op.output.size,
                          **(call_extra(op) if call_extra else {})))
    return weights, kernels, calls


def render(graph, plan, *, classname: str, namespace: str, filename: str, arch: str, version: str,
           summary: dict, input_scale: float, input_offset: float, class_names=None, notes=None) -> str:
    from micronets.compiler.activations import render_struct

    env = environment()
    output_names = tuple(output_name(k) for k in range(len(graph.outputs)))
    weights, kernels, calls = layer_sections(
        graph, plan, output_names,
        lambda op: [dict(layer=comment(op.name), what=_what(suffix), cname=op.wname(suffix), count=int(array.size),
                         body=c_float_block(array)) for suffix, array in op.weights().items()])
    acts = []
    for op in graph.ops:
        for act in op.activations():
            if act not in acts:
                acts.append(act)
    arena_bytes = summary["arena_bytes"]
    outputs = [dict(name=output_names[k], count=int(t.size), shape=t.shape_str(),
                    size_name="numOutputs" if k == 0 else f"numOutputs{k}") for k, t in enumerate(graph.outputs)]
    inputs = [dict(name=input_name(k), count=int(t.size), shape=t.shape_str(),
                   size_name="numInputs" if k == 0 else f"numInputs{k}",
                   keras_name=comment(graph.input_names[k]) if graph.input_names else input_name(k), read=read)
              for k, (t, read) in enumerate(zip(graph.inputs, graph.inputs_read()))]
    return env.get_template("header.h.j2").render(
        filename=comment(filename),
        version=version,
        arch=comment(arch),
        classname=classname,
        namespace=namespace,
        guard=f"MICRONETS_{classname}_H",
        input_shape_str=graph.inputs[0].shape_str(),
        inputs=inputs,
        num_outputs=graph.output.size,
        outputs=outputs,
        index_type="uint16_t" if graph.output.size <= 65535 else "uint32_t",
        class_names=None if class_names is None else [c_string(c) for c in class_names],
        notes=[(comment(k), comment(v)) for k, v in (notes or {}).items()],
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
        activations=[render_struct(a) for a in acts],
        kernels=kernels,
        calls=calls,
    )
