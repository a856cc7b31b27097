"""Elementwise activations as values: a name plus its parameters, rendering its own C++.

An :class:`Act` is what an op applies to each value it produces (a fused activation) or what a
standalone Activation op applies. It carries its parameters (``ReLU(max_value=4, threshold=0.5)``,
``LeakyReLU(0.1)``, ``ELU(alpha)``...) and renders one small C++ struct the kernels take as a
template argument: ``ACT::f(x)`` computes it, ``ACT::put(d, x)`` stores it (ReLU and ReLU6 work on
the float's bits on Arm, cheaper than FPU compares there). No integer ID table to keep in step:
the struct is the contract between this module and the kernels.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Dict, Optional, Tuple

import numpy as np


def c_float(value: float) -> str:
    """A float32 as a C++ literal with 9 significant digits (round-trips exactly)."""
    v = float(np.float32(value))
    if np.isinf(v):
        return "HUGE_VALF" if v > 0 else "(-HUGE_VALF)"
    s = "%.9g" % v
    if "e" not in s and "." not in s and "n" not in s:
        s += ".0"
    return s + "f"


def c_double(value: float) -> str:
    """A double as a C++ floating literal with 17 significant digits (round-trips exactly): never
    an integer literal (a scale of 5.5e15 printed as 5499090368462848 is a long long in C++98)."""
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"not a finite double: {v!r}")
    s = "%.17g" % v
    return s if ("e" in s or "." in s) else s + ".0"


# name -> (label, C body computing from float x, with params substituted)
def _relu_body(p: Dict[str, float]) -> str:
    t, m, a = p.get("threshold", 0.0), p.get("max_value"), p.get("negative_slope", 0.0)
    # Keras: y = x > t ? x : 0 (t != 0) or relu(x); clip to [0, max]; minus slope * relu(t - x)
    y = f"(x > {c_float(t)} ? x : 0.0f)"
    if m is not None:
        y = f"mn_clamp({y}, 0.0f, {c_float(m)})"
    if a:
        y = f"{y} - {c_float(a)} * ({c_float(t)} - x > 0.0f ? {c_float(t)} - x : 0.0f)"
    return f"return {y};"


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

_BODIES: Dict[str, Callable[[Dict[str, float]], str]] = {
    "linear": lambda p: "return x;",
    "relu": _relu_body,
    "relu6": lambda p: "return x > 0.0f ? (x < 6.0f ? x : 6.0f) : 0.0f;",
    "leaky_relu": lambda p: f"return x > 0.0f ? x : {c_float(p['negative_slope'])} * x;",
    "elu": lambda p: f"return x > 0.0f ? x : {c_float(p['alpha'])} * expm1f(x);",
    "selu": lambda p: f"return {c_float(_SELU_SCALE)} * (x > 0.0f ? x : {c_float(_SELU_ALPHA)} * expm1f(x));",
    "celu": lambda p: (f"return (x > 0.0f ? x : 0.0f) + {c_float(p['alpha'])} * "
                       f"expm1f((x < 0.0f ? x : 0.0f) / {c_float(p['alpha'])});"),
    # exact GELU as TensorFlow writes it, with erfc: 1 + erf(x / sqrt 2) cancels below -3
    "gelu": lambda p: ("return 0.5f * x * (1.0f + tanhf(0.797884561f * (x + 0.044715f * x * x * x)));"
                       if p.get("approximate") else "return 0.5f * x * erfcf(x * -0.707106781f);"),
    "silu": lambda p: "return x / (1.0f + mn_expf(-x));",
    "sigmoid": lambda p: "return 1.0f / (1.0f + mn_expf(-x));",
    "hard_sigmoid": lambda p: "return mn_clamp(x + 3.0f, 0.0f, 6.0f) / 6.0f;",
    "hard_silu": lambda p: "return x * (mn_clamp(x + 3.0f, 0.0f, 6.0f) / 6.0f);",
    "tanh": lambda p: "return tanhf(x);",
    "softplus": lambda p: "return x > 0.0f ? x + log1pf(mn_expf(-x)) : log1pf(mn_expf(x));",
    "softsign": lambda p: "return x / (1.0f + fabsf(x));",
    "exponential": lambda p: "return mn_expf(x);",
    "mish": lambda p: "return x * tanhf(x > 0.0f ? x + log1pf(mn_expf(-x)) : log1pf(mn_expf(x)));",
    "hard_tanh": lambda p: "return mn_clamp(x, -1.0f, 1.0f);",
    "log_sigmoid": lambda p: "return x > 0.0f ? -log1pf(mn_expf(-x)) : x - log1pf(mn_expf(x));",
    "tanh_shrink": lambda p: "return x - tanhf(x);",
    "soft_shrink": lambda p: "return x > 0.5f ? x - 0.5f : (x < -0.5f ? x + 0.5f : 0.0f);",
    "hard_shrink": lambda p: "return fabsf(x) > 0.5f ? x : 0.0f;",
    "sparse_plus": lambda p: "return x <= -1.0f ? 0.0f : (x < 1.0f ? 0.25f * (x + 1.0f) * (x + 1.0f) : x);",
    "sparse_sigmoid": lambda p: "return x <= -1.0f ? 0.0f : (x >= 1.0f ? 1.0f : 0.5f * (x + 1.0f));",
    "squareplus": lambda p: "return (x + sqrtf(x * x + 4.0f)) / 2.0f;",
    # elementwise keras.ops of one tensor (ops/activation.py): run and fused as activations
    "square": lambda p: "return x * x;",
    "abs": lambda p: "return fabsf(x);",
    "sqrt": lambda p: "return sqrtf(x);",
    "rsqrt": lambda p: "return 1.0f / sqrtf(x);",
    "reciprocal": lambda p: "return 1.0f / x;",
    "log": lambda p: "return logf(x);",
    "log1p": lambda p: "return log1pf(x);",
    "expm1": lambda p: "return expm1f(x);",
    "sin": lambda p: "return sinf(x);",
    "cos": lambda p: "return cosf(x);",
    "sign": lambda p: "return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x);",  # (0 and NaN as they are)
    "floor": lambda p: "return floorf(x);",
    "ceil": lambda p: "return ceilf(x);",
    "round": lambda p: "return rintf(x);",  # halves to even, as TensorFlow (the default rounding mode)
    "erf": lambda p: "return erff(x);",
    "clip": lambda p: f"return mn_clamp(x, {c_float(p['x_min'])}, {c_float(p['x_max'])});",
    "power": lambda p: f"return powf(x, {c_float(p['exponent'])});",
}

LABELS = {"linear": "", "relu": "ReLU", "relu6": "ReLU6", "leaky_relu": "LeakyReLU", "elu": "ELU", "selu": "SELU",
          "celu": "CELU", "gelu": "GELU", "silu": "SiLU", "sigmoid": "sigmoid", "hard_sigmoid": "hard-sigmoid",
          "hard_silu": "hard-swish", "tanh": "tanh", "softplus": "softplus", "softsign": "softsign",
          "exponential": "exp", "mish": "mish", "hard_tanh": "hard-tanh", "log_sigmoid": "log-sigmoid",
          "tanh_shrink": "tanh-shrink", "soft_shrink": "soft-shrink", "hard_shrink": "hard-shrink",
          "sparse_plus": "sparse-plus", "sparse_sigmoid": "sparse-sigmoid", "squareplus": "squareplus",
          "square": "square", "abs": "abs", "sqrt": "sqrt", "rsqrt": "rsqrt", "reciprocal": "reciprocal", "log": "log",
          "log1p": "log1p", "expm1": "expm1", "sin": "sin", "cos": "cos", "sign": "sign", "floor": "floor",
          "ceil": "ceil", "round": "round", "erf": "erf", "clip": "clip", "power": "power"}

#: Keras names that mean the same function
ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}

#: activations applied over the last axis (ops of their own, see ops/softmax.py)
ROW_ACTIVATIONS = ("softmax", "log_softmax")


@dataclasses.dataclass(frozen=True)
class Act:
    """An elementwise activation with its parameters (sorted (name, value) pairs)."""

    name: str = "linear"
    params: Tuple[Tuple[str, object], ...] = ()

    def __post_init__(self):
        if self.name not in _BODIES:
            raise ValueError(f"unknown activation {self.name!r}")

    @property
    def is_linear(self) -> bool:
        return self.name == "linear"

    def param(self, key, default=None):
        return dict(self.params).get(key, default)

    @property
    def label(self) -> str:
        text = LABELS[self.name]
        if self.params:
            text += "(" + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params) + ")"
        return text

    @property
    def cname(self) -> str:
        """C++ struct name, unique per (name, params)."""
        if not self.params:
            return f"act_{self.name}"
        digest = "_".join(re.sub(r"[^0-9A-Za-z]", "_", f"{k}{v}") for k, v in self.params)
        return f"act_{self.name}_{digest}"

    def body(self) -> str:
        return _BODIES[self.name](dict(self.params))

    def uses_bit_trick(self) -> bool:
        return self.name in ("relu", "relu6") and (self.name == "relu6" or not self.params)


LINEAR = Act("linear")


def make(name: str, **params) -> Act:
    """An Act from a Keras name and parameters; drops parameters at their neutral value so equal
    functions get equal structs (``relu(max_value=6)`` is ``relu6``)."""
    name = ALIASES.get(name, name)
    if name == "relu":
        t = float(params.get("threshold") or 0.0)
        m = params.get("max_value")
        m = None if m is None else float(m)
        a = float(params.get("negative_slope") or 0.0)
        if t == 0.0 and a == 0.0 and m == 6.0:
            return Act("relu6")
        if t == 0.0 and m is None and a != 0.0:
            return Act("leaky_relu", (("negative_slope", a),))
        items = [("threshold", t)] if t else []
        if m is not None:
            items.append(("max_value", m))
        if a:
            items.append(("negative_slope", a))
        return Act("relu", tuple(items))
    if name == "leaky_relu":
        return Act("leaky_relu", (("negative_slope", float(params.get("negative_slope", 0.2))),))
    if name in ("elu", "celu"):
        return Act(name, (("alpha", float(params.get("alpha", 1.0))),))
    if name == "gelu":
        return Act("gelu", (("approximate", int(bool(params.get("approximate", False)))),))
    if name == "clip":
        return Act("clip", (("x_max", float(params["x_max"])), ("x_min", float(params["x_min"]))))
    if name == "power":
        return Act("power", (("exponent", float(np.float32(params["exponent"]))),))
    return Act(name)


#: bodies of keras.ops that are no Keras activation name
OPS_ONLY = ("square", "abs", "sqrt", "rsqrt", "reciprocal", "log", "log1p", "expm1", "sin", "cos", "sign", "floor",
            "ceil", "round", "erf", "clip", "power")


def supported() -> Tuple[str, ...]:
    return tuple(sorted((set(_BODIES) - set(OPS_ONLY)) | set(ALIASES) | set(ROW_ACTIVATIONS)))


#: keras.ops functions whose defaults differ from the keras.activations function of their name
#: (keras.ops.gelu is the tanh approximation, keras.activations.gelu the exact one)
_OPS_DEFAULTS: Dict[str, Dict[str, object]] = {"gelu": {"approximate": True}}
#: keras.ops functions named other than their activation
_OPS_NAMES = {"exp": "exponential"}


#: TensorFlow's functions older Keras code passes as ``activation=`` (tf.nn.relu), with their
#: defaults: tf.nn.gelu is the exact GELU, tf.nn.leaky_relu's slope 0.2
_TF_NN = {"relu": ("relu", {}), "relu6": ("relu6", {}), "sigmoid": ("sigmoid", {}), "tanh": ("tanh", {}),
          "elu": ("elu", {}), "selu": ("selu", {}), "softplus": ("softplus", {}), "softsign": ("softsign", {}),
          "silu": ("silu", {}), "swish": ("silu", {}), "gelu": ("gelu", {"approximate": False}),
          "leaky_relu": ("leaky_relu", {"negative_slope": 0.2}), "softmax": ("softmax", {}),
          "log_softmax": ("log_softmax", {})}


def from_keras_function(fn) -> Optional[Tuple[str, Dict[str, object]]]:
    """(name, parameters) of a layer's ``activation=`` function when it is one of Keras' own, in
    keras.activations or keras.ops (with keras.ops' defaults), or one of tf.nn's above, matched by
    identity: a function of the user's that happens to be called 'swish' is not Keras' swish. None
    for any other callable."""
    import sys

    import keras

    name = getattr(fn, "__name__", None)
    if isinstance(name, str) and getattr(keras.activations, name, None) is fn:
        return ALIASES.get(name, name), {}
    if isinstance(name, str) and getattr(keras.ops, name, None) is fn:
        act = _OPS_NAMES.get(name, name)
        return ALIASES.get(act, act), dict(_OPS_DEFAULTS.get(name, {}))
    tf = sys.modules.get("tensorflow")  # a tf.nn function exists only where TensorFlow is imported
    for attr, (act, params) in _TF_NN.items() if tf is not None else ():
        if getattr(tf.nn, attr, None) is fn:
            return act, dict(params)
    return None


def render_struct(act: Act) -> str:
    """The C++ struct for ``act`` (emitted once per header for each activation it uses)."""
    lines = [f"// {act.label or 'linear (identity)'}",
             f"struct {act.cname} {{",
             f"    static MICRONETS_INLINE float f(float x) {{ {act.body()} }}",
             "    static MICRONETS_INLINE void put(float* d, float x)",
             "    {"]
    if act.uses_bit_trick():
        limit = "\n        i = i > 0x40C00000 ? 0x40C00000 : i;" if act.name == "relu6" else ""
        lines += ["#if defined(__arm__)",
                  "        // a negative float has the sign bit set; non-negative floats order like their bits",
                  "        // (written as conditionals, GCC makes them one bic with a shifted operand and one",
                  "        // compare with a conditional move)",
                  "        int32_t i;",
                  "        memcpy(&i, &x, sizeof i);",
                  "        i = i < 0 ? 0 : i;" + limit,
                  "        memcpy(d, &i, sizeof i);",
                  "#else",
                  "        *d = f(x);",
                  "#endif"]
    else:
        lines.append("        *d = f(x);")
    lines += ["    }", "};"]
    return "\n".join(lines)
