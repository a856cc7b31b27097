"""The pipeline in one place: Keras model -> trace -> plan -> emit.

``compile_model`` returns a :class:`CompiledModel` holding the graph, the memory plan, the figures
(``summary()``) and the rendered header (``header``).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Dict, List, Optional, Sequence

import numpy as np

from micronets.compiler.graph import FLOAT_BYTES, Graph
from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.plan import MemoryPlan, plan_memory
from micronets.compiler.trace import half_precision_layers, trace

CPP_KEYWORDS = frozenset("""
alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t
char32_t class compl concept const consteval constexpr constinit const_cast continue co_await
co_return co_yield decltype default delete do double dynamic_cast else enum explicit export extern
false float for friend goto if inline int long mutable namespace new noexcept not not_eq nullptr
operator or or_eq private protected public register reinterpret_cast requires return short signed
sizeof static static_assert static_cast struct switch template this thread_local throw true try
typedef typeid typename union unsigned using virtual void volatile wchar_t while xor xor_eq
final override import module main
""".split())
#: members of the generated class: a class may not be named like one of its members
MEMBER_NAMES = frozenset("""outputs output proba predict numInputs numOutputs arenaBytes classNames arena finish
rawOutputs""".split())
MEMBER_PATTERN = re.compile(r"(outputs|numOutputs|numInputs)\d+")


@lru_cache(maxsize=1)
def std_names() -> frozenset:
    """Identifiers <stdint.h>, <string.h> and <math.h> declare or define (host g++, Arm and Xtensa
    newlib; see scripts/std_names.sh)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "std_names.txt")
    with open(path, encoding="ascii") as fh:
        return frozenset(line.strip() for line in fh if line.strip() and not line.startswith("#"))


def check_classname(name) -> str:
    """A class name the header can use as is: a C++ identifier that is not a keyword, not reserved
    for the implementation, not a name the standard headers declare, not a member of the class,
    and not in micronets' own prefix (its namespaces and macros)."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"class name {name!r} is not a valid C++ identifier (letters, digits, '_'; not starting with a digit)")
    if name in CPP_KEYWORDS:
        raise ValueError(f"class name {name!r} is a C++ keyword")
    if name.startswith("_") or "__" in name:
        raise ValueError(f"class name {name!r} is reserved in C++ (a leading '_' or a double '__')")
    if name.lower().startswith("micronets"):
        raise ValueError(f"class name {name!r} starts with 'micronets', which the generated code reserves for its own names")
    if name in MEMBER_NAMES or MEMBER_PATTERN.fullmatch(name):
        raise ValueError(f"class name {name!r} is the name of one of the generated class's members")
    if name in std_names():
        raise ValueError(f"class name {name!r} is declared or defined by <stdint.h>, <string.h> or <math.h>")
    return name


class CompiledModel:
    """A model compiled for one class name: graph, memory plan, figures and header text."""

    def __init__(self, keras_model, graph: Graph, plan: MemoryPlan, classname: str, arch: str,
                 input_scale: float, input_offset: float, layerwise: Graph, layerwise_plan: MemoryPlan,
                 class_names: Optional[Sequence[str]] = None, notes: Optional[Dict[str, str]] = None):
        self.keras_model = keras_model
        self.graph = graph
        self.plan = plan
        #: the same model with one op per layer (no fusion): the baseline the bounds refer to
        self.layerwise = layerwise
        self.layerwise_plan = layerwise_plan
        self.classname = classname
        self.arch = arch
        self.input_scale = float(input_scale)
        self.input_offset = float(input_offset)
        self.class_names = None if class_names is None else tuple(class_names)
        self.notes = dict(notes or {})
        self._header: Optional[str] = None

    @property
    def output_sizes(self) -> List[int]:
        """Flattened size of each model output, in Keras' order (``outputs``, ``outputs1``, ...)."""
        return [int(t.size) for t in self.graph.outputs]

    # ---------------------------------------------------------------- figures
    def summary(self) -> Dict:
        """The figures as plain JSON types (what ``micronets info --json`` prints)."""
        g, p = self.graph, self.plan
        weights = sum(op.params() for op in g.ops)
        arena = p.arena_size
        outputs = sum(self.output_sizes) * FLOAT_BYTES
        layers = []
        for op in g.ops:
            t = op.output
            layers.append(dict(
                name=op.name, op=op.kind, detail=op.label(), output_shape=list(t.shape),
                macs=int(op.macs()), params=int(op.params()),
                arena_offset=p.offset(t),
                arena_bytes=t.nbytes if p.in_arena(t) else 0,
                input_offsets=[p.offset(x) for x in op.inputs],
            ))
        index_bytes = 2 if g.output.size <= 65535 else 4
        return dict(
            arch=self.arch,
            classname=self.classname,
            input_shape=list(g.inputs[0].shape),
            input_shapes=[list(t.shape) for t in g.inputs],
            output_shapes=[list(t.shape) for t in g.outputs],
            num_classes=int(g.output.size),
            class_names=list(self.class_names) if self.class_names is not None else None,
            macs=int(sum(op.macs() for op in g.ops)),
            params=int(self.keras_model.count_params()),
            weights=int(weights),
            weights_bytes=int(weights * FLOAT_BYTES),
            arena_bytes=int(arena),
            # bounds: layer by layer with no op writing over its input (max in + out); layer by
            # layer with every op working in place where it can; and for the ops as executed here
            naive_bound=int(naive_bound(self.layerwise, self.layerwise_plan)),
            layerwise_bound=int(self.layerwise_plan.lower_bound),
            inplace_bound=int(p.lower_bound),
            # arena + outputs + argmax + float proba, padded to float alignment
            object_bytes=int(max(arena, FLOAT_BYTES) + outputs + _align(index_bytes, FLOAT_BYTES) + FLOAT_BYTES),
            layers=layers,
        )

    # ---------------------------------------------------------------- header
    def render(self, filename: str = "model.h") -> str:
        from micronets import __version__
        from micronets.compiler.emit import render

        return render(self.graph, self.plan, classname=self.classname, namespace=f"micronets_{self.classname}",
                      filename=filename, arch=self.arch, version=__version__, summary=self.summary(),
                      input_scale=self.input_scale, input_offset=self.input_offset,
                      class_names=self.class_names, notes=self.notes)

    @property
    def header(self) -> str:
        if self._header is None:
            self._header = self.render()
        return self._header


def _align(n: int, a: int) -> int:
    return -(-n // a) * a


def naive_bound(graph: Graph, plan: MemoryPlan) -> int:
    """Max over ops of the arena bytes of its inputs plus its output (layer-by-layer execution
    with no op writing over its input)."""
    best = 0
    for op in graph.ops:
        tensors = {t.storage: None for t in op.inputs + [op.output]}
        best = max(best, sum(t.nbytes for t in tensors if plan.in_arena(t)))
    return best


def check_weights(graph: Graph):
    for op in graph.ops:
        for suffix, w in op.weights().items():
            if not np.all(np.isfinite(w)):
                bad = "NaN" if np.isnan(w).any() else "infinite"
                raise UnsupportedModelError(
                    f"'{op.name}' ({op.kind}) has {bad} values in its weights or constants ({suffix}, after folding); "
                    f"a header holds finite numbers only" + ("" if bad == "NaN" else
                                                             ": for a mask, add a large negative number such as -1e9 "
                                                             "rather than -inf"))
            if np.any(np.abs(w) > np.finfo(np.float32).max):
                raise UnsupportedModelError(f"'{op.name}' ({op.kind}) has weights beyond float32 range")


def _number(value, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number; got {value!r}") from None
    if not np.isfinite(number):
        raise ValueError(f"{what} must be a finite number; got {value!r}")
    return number


def model_shapes(model, which: str = "input") -> List[Tuple]:
    """Each input (``which="input"``) or output of a Keras model, without the batch axis, in the
    model's order: one for most models, several for a model of several inputs or outputs."""
    from micronets.compiler.trace import _functional_view

    if not getattr(model, "inputs", None):  # a subclassed model: as the compiler sees it, called on Inputs
        with _functional_view(model) as functional:
            return model_shapes(functional, which) if getattr(functional, "inputs", None) else []
    return [tuple(t.shape[1:]) for t in getattr(model, which + "s")]


def layers_in_order(model):
    """The model's layers, those of a nested model (a Sequential of preprocessing steps) in its place."""
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "layers"):
            yield from layers_in_order(layer)
        else:
            yield layer


def takes_raw_input(model) -> bool:
    """True when the model takes integers (an Input of an integer dtype) or its first step is its
    own preprocessing (Rescaling / Normalization; a resize, crop or random augmentation before it
    keeps the values): it expects raw values, so a raw uint8 value is passed through unscaled.
    (Token ids, an input only Embeddings read, also inside a user's layer, ``compile_model`` finds
    in the traced graph: ``reads_ids``.)"""
    import keras

    from micronets.compiler.ops.reshape import INFERENCE_IDENTITY

    inputs = getattr(model, "inputs", None) or []
    if inputs and "int" in keras.backend.standardize_dtype(inputs[0].dtype):
        return True
    for layer in layers_in_order(model):
        name = type(layer).__name__
        if name in ("Rescaling", "Normalization"):
            return True
        if name not in ("InputLayer", "Resizing", "CenterCrop") + INFERENCE_IDENTITY:
            return False
    return False


def reads_ids(graph) -> bool:
    """Whether every op reading the graph's (first) input is an Embedding: the input holds ids."""
    readers = [op for op in graph.ops if any(t is graph.inputs[0] for t in op.inputs)]
    return bool(readers) and all(op.kind == "Embedding" for op in readers)


def pixels_as_input(images: np.ndarray, raw: bool) -> np.ndarray:
    """Images loaded as micronets' training data (pixel / 255: ``data.load_image``) as a model
    takes them: unchanged, or for a model that takes raw values (``raw``: ``takes_raw_input``) the
    pixels themselves, 0..255, as its ``predict(const uint8_t*)`` receives them."""
    images = np.asarray(images, np.float32)
    return np.round(images * np.float32(255.0)) if raw else images


def compile_model(model, classname: str = "Net", arch: Optional[str] = None,
                  input_scale: Optional[float] = None, input_offset: float = 0.0,
                  class_names: Optional[Sequence[str]] = None, notes: Optional[Dict[str, str]] = None) -> CompiledModel:
    """Compile a Keras model. ``input_scale``/``input_offset`` say how a raw uint8 pixel maps to the
    network's input (default pixel / 255, how micronets nets are trained, or the pixel itself when
    the model takes integers or starts with its own Rescaling/Normalization). ``class_names`` (one
    per output of the first output) become ``classNames[]``; ``notes`` are extra lines for the
    header's top comment."""
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"expected a keras.Model to compile; got {type(model).__name__}"
                        + (" (to compile a saved file, load it first with keras.models.load_model)" if isinstance(model, (str, os.PathLike)) else ""))
    check_classname(classname)
    graph = trace(model)
    if input_scale is None:
        input_scale = 1.0 if takes_raw_input(model) or reads_ids(graph) else 1.0 / 255.0
    input_scale = _number(input_scale, "input_scale")
    input_offset = _number(input_offset, "input_offset")
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if len(class_names) != graph.output.size:
            raise ValueError(f"{len(class_names)} class names for a model with {graph.output.size} outputs")
    if notes is not None and (not isinstance(notes, dict) or not all(isinstance(k, str) for k in notes)):
        raise TypeError("notes must be a dict of str keys to values")
    half = half_precision_layers(model)
    if half:  # Keras' own outputs differ from the header's by 16-bit rounding: say why in the header
        notes = {**(notes or {}), "dtype policy": f"Keras computes {len(half)} layers in 16 bits "
                 f"({', '.join(sorted(set(half.values())))}); this header computes them in float32 from the same weights"}
    check_weights(graph)
    plan = plan_memory(graph)
    if any(op.output.is_slice for op in graph.ops):
        # writing a concatenation's slices in place keeps it alive longer: keep it only where it pays
        copying = trace(model, without=("concatenate_in_place",))
        copying_plan = plan_memory(copying)
        if copying_plan.arena_size < plan.arena_size:
            graph, plan = copying, copying_plan
    layerwise = trace(model, fuse=False)
    return CompiledModel(model, graph, plan, classname, arch or model.name, input_scale, input_offset,
                         layerwise, plan_memory(layerwise), class_names, notes)
