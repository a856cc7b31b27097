"""What every op kind provides, and the registry the tracer looks Keras layers up in.

An op module holds everything about one kind of computation: the converter from its Keras
layer(s) (``@converter``), its shape rule (in the converter / constructor), its MAC count, its
weights in C layout, how it may work in place, and the name of its kernel template under
``templates/kernels/``. Adding an op means one module here and one template there.
"""

from __future__ import annotations

import collections
import copy
import functools
import re
import types
from typing import Callable, ClassVar, Dict, List, Optional, Tuple

import numpy as np

from micronets.compiler import activations
from micronets.compiler.graph import FLOAT_BYTES, Tensor

#: Keras class name -> converter(layer, inputs: List[Tensor], ctx) -> Tensor
CONVERTERS: Dict[str, Callable] = {}


#: Keras classes whose converters take constants among their inputs (numpy arrays: the output of
#: a layer that does not depend on the model's input, such as a learned position embedding)
TAKES_CONSTANTS: set = set()

#: Keras classes with several outputs whose converters return one value per output, in order
MULTI_OUTPUT: set = set()

#: Keras classes whose converters read the ``mask`` a call passes (any other call with one is
#: refused: computed without it, the result would be silently wrong)
READS_MASK: set = set()
#: converters of a layer's first output whose later outputs come from compiling its call()
LATER_OUTPUTS_TRACED: set = set()
#: converters that compute values whose first axis holds parts of one sample (Swin's windows, a
#: q/k/v stack moved in front): given tensors of Keras' whole shape, first axis included, they map
#: Keras' axes with ``ctx.axis`` / ``ctx.lead`` (the tracer's "parts" mode)
TAKES_PARTS: set = set()


def converter(*keras_classes: str, constants: bool = False, multi_output: bool = False, masks: bool = False,
              later_outputs_traced: bool = False, parts: bool = False):
    """Register a function turning one Keras layer into ops (or an alias of its input);
    ``constants``: it accepts numpy arrays among its inputs; ``multi_output``: the layer has
    several outputs and the function returns a tuple of their values; ``masks``: it computes
    what a call with a ``mask`` argument computes; ``later_outputs_traced``: it computes the first
    of the layer's outputs, and where a model output depends on a later one the layer is
    compiled through its ``call()`` instead (MultiHeadAttention's scores); ``parts``: it computes
    values of several parts of one sample in the batch axis too (``TAKES_PARTS``)."""

    def register(fn):
        for name in keras_classes:
            CONVERTERS[name] = fn
            if constants:
                TAKES_CONSTANTS.add(name)
            if multi_output:
                MULTI_OUTPUT.add(name)
            if masks:
                READS_MASK.add(name)
            if later_outputs_traced:
                LATER_OUTPUTS_TRACED.add(name)
            if parts:
                TAKES_PARTS.add(name)
        return fn

    return register


#: graph rewrites run after tracing, by stage then registration order: fn(ops, kept) -> ops
REWRITES: List[Callable] = []


def rewrite(stage: int):
    """Register a rewrite of the traced op list, ``fn(ops, kept) -> ops`` (``kept``: storages that
    must exist whole, e.g. the model outputs). Stage 0 folds constants into weights; stage 1 fuses
    kernels (after folding, so a folded conv can still fuse)."""

    def register(fn):
        fn.stage = stage
        REWRITES.append(fn)
        REWRITES.sort(key=lambda f: f.stage)  # stable: registration order within a stage
        return fn

    return register


def fuse_pairs(ops, kept, condition, make):
    """Replace each op ``a`` whose output is read only by the op ``b`` right after it (as that op's
    first input) and is not in ``kept``, where ``condition(a, b)`` holds, by ``make(a, b)``."""
    readers = collections.Counter(t.storage for op in ops for t in op.inputs)
    out, i = [], 0
    while i < len(ops):
        a = ops[i]
        b = ops[i + 1] if i + 1 < len(ops) else None
        if (b is not None and b.inputs and b.inputs[0] is a.output and readers[a.output] == 1
                and a.output not in kept and condition(a, b)):
            out.append(make(a, b))
            i += 2
        else:
            out.append(a)
            i += 1
    return out


class UnsupportedModelError(ValueError):
    """The model uses a layer, or a layer setting, the compiler cannot turn into C++."""


class TraceThrough(Exception):
    """Raised by a converter for a call its kernel does not take but the layer's own ``call()``
    expresses in layers and keras.ops the compiler converts: the tracer then compiles that call()
    instead (MultiHeadAttention with a mask computed from the input, or not a band). Ops the
    converter added before are read by nothing, and dropped. The message says why, for the refusal
    should the call() not compile either."""


class IntoParts(Exception):
    """Raised by a TAKES_PARTS converter handed a sample's values whose result moves parts of the
    sample into the batch axis (a window partition's reshape in a functional graph, where Keras
    declares that axis None): the tracer converts the call again with Keras' whole shapes."""


def brief(exc: BaseException, width: int = 240) -> str:
    """What ``exc`` says, in one line of at most ``width`` characters, to quote inside a message of
    our own: Keras' wrapping of an error raised inside a layer's call() ('Exception encountered
    when calling ...', 'Could not automatically infer the output shape ...', the arguments it
    received, terminal colour codes) is dropped, whitespace
    is collapsed, and a longer text is cut at a word boundary, marked with '...'."""
    import textwrap

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split("Arguments received by")[0]
    text = re.sub(r"Exception encountered when calling [^\n]*\n", "", text)
    text = re.split(r"compute_output_shape\(\)` method\. Error encountered:", text)[-1]  # Keras' preamble to the cause
    text = " ".join(text.split()) or "(no message)"
    return textwrap.shorten(text, width, placeholder=" ...") if len(text) > width else text


def merged_kernel(layer) -> np.ndarray:
    """A Dense or Conv layer's kernel as Keras computes with it: with LoRA enabled (``lora_rank``,
    ``enable_lora``), the base kernel plus alpha / rank x A B; ``get_weights()[0]`` is the base
    kernel alone."""
    import keras

    if not getattr(layer, "lora_enabled", False):
        return layer.get_weights()[0]
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.convert_to_tensor(layer.kernel)))


# ------------------------------------------------------------------------- activations
def keras_activation(fn, layer, traceable: bool = False) -> "activations.Act | str":
    """The Act of a Keras layer's ``activation=`` argument ('softmax'/'log_softmax' as names: they
    are ops over the last axis), or a clear error naming the layer. ``traceable``: the layer's
    call() is made of keras.ops the compiler converts (Activation, Dense), so a function of the
    user's (keras-hub's ConvNormAct: ``Activation(lambda x: gelu(x, approximate=False))``) is
    compiled through that call(), the function through the keras.ops it calls (TraceThrough)."""
    known = activations.from_keras_function(fn)
    if known is None:
        what = getattr(fn, "__qualname__", None) or type(fn).__name__
        if traceable and isinstance(fn, (types.FunctionType, functools.partial)):
            raise TraceThrough(f"its activation {what} is a function of its own, not one of Keras'")
        raise UnsupportedModelError(
            f"layer '{layer.name}' ({type(layer).__name__}) uses activation {what} from "
            f"{getattr(fn, '__module__', None) or 'unknown module'}, which is not one of Keras' own (keras.activations or "
            f"keras.ops): give it by name (activation=\"gelu\") or as a Keras function, or apply your own "
            f"function in an Activation layer after it; supported activations: {', '.join(activations.supported())}")
    name, params = known
    if name in activations.ROW_ACTIVATIONS:
        return name
    try:
        return activations.make(name, **params)
    except ValueError:
        raise UnsupportedModelError(
            f"layer '{layer.name}' ({type(layer).__name__}) uses activation '{name}'; supported activations: "
            f"{', '.join(activations.supported())}"
        ) from None


class Op:
    """One computation of the compiled model. Subclasses set ``kind`` and ``template``."""

    kind: ClassVar[str] = "Op"
    template: ClassVar[str] = ""
    #: other kernel templates whose definitions this op's kernel calls
    requires: ClassVar[Tuple[str, ...]] = ()
    #: an activation following this op can be computed by its kernel
    fuses_activation: ClassVar[bool] = False

    def __init__(self, name: str, inputs: List[Tensor], output: Tensor):
        if output.base is not None and not output.is_slice:
            raise ValueError(f"op '{name}' must write a tensor that owns its bytes (or a channel slice), not a view")
        self.name = name
        self.inputs = list(inputs)
        self.output = output
        self.act = activations.LINEAR
        self.index = -1  # position in the graph, set by the tracer
        self.ident = ""  # C identifier stem for this op's weights, set by the tracer

    def evolve(self, **changes) -> "Op":
        """A copy of this op with some attributes replaced (rewrites never edit an op in place)."""
        new = copy.copy(self)
        for key, value in changes.items():
            if not hasattr(new, key):
                raise AttributeError(f"{type(self).__name__} has no attribute {key!r}")
            setattr(new, key, value)
        return new

    # ---- facts
    def macs(self) -> int:
        return 0

    def weights(self) -> "collections.OrderedDict[str, np.ndarray]":
        """Arrays emitted as ``static const float`` (flash), in the layout the kernel reads."""
        return collections.OrderedDict()

    def params(self) -> int:
        return int(sum(w.size for w in self.weights().values()))

    def describe(self) -> str:
        """Short detail for comments and tables, e.g. '3x3 /2 pad 1,1,1,1'."""
        return ""

    def label(self) -> str:
        """Kind, detail and fused activation, e.g. 'DepthwiseConv2D 3x3 /2 pad 1,1,1,1 + ReLU6'."""
        text = f"{self.kind} {self.describe()}".strip()
        act = self.act.label
        return f"{text} + {act}" if act else text

    # ---- in-place execution (see micronets.compiler.planner)
    def inplace_gap(self, input_index: int) -> Optional[int]:
        """Smallest ``offset(input) - offset(output)`` at which this op may overwrite its input
        while it runs, or None when the two must not share bytes."""
        return None

    def inplace_gap_reverse(self, input_index: int) -> Optional[int]:
        """For kernels that can also walk their output backwards: largest ``offset(input) -
        offset(output)`` at which that walk may overwrite the input; None when they cannot."""
        return None

    def scratch_bytes(self) -> int:
        """Bytes of per-op scratch the kernel needs when it overwrites its own input."""
        return 0

    def workspace_bytes(self) -> int:
        """Bytes of arena the kernel always needs while it runs (e.g. a ring of rows)."""
        return 0

    # ---- emission helpers for templates
    def wname(self, suffix: str) -> str:
        return f"{self.ident}_{suffix}"

    def activations(self):
        """Every Act this op's kernel instantiates (the header emits one struct for each)."""
        return [self.act]


def per_pixel_gap(in_hwc: Tuple[int, int, int], out_hwc: Tuple[int, int, int],
                  strides: Tuple[int, int], pads: Tuple[int, int, int, int], itemsize: int = FLOAT_BYTES) -> int:
    """In-place gap of a kernel that computes one output pixel (all its channels) into a scratch,
    then stores it, walking output pixels in row-major order.

    Storing pixel q is safe when it does not reach input bytes that a later pixel still reads:
    ``out_end(q) <= offset_gap + min_{q' > q} first_read(q')``. The result is the smallest such gap.
    ``itemsize``: bytes per element (4 for float32, 1 for int8).
    """
    h, w, cin = in_hwc
    ho, wo, cout = out_hwc
    sh, sw = strides
    top, _, left, _ = pads
    oy, ox = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
    iy = np.clip(oy * sh - top, 0, h - 1)
    ix = np.clip(ox * sw - left, 0, w - 1)
    first_read = ((iy * w + ix) * cin * itemsize).reshape(-1)
    n = first_read.size
    if n == 1:
        return -(h * w * cin + ho * wo * cout) * itemsize  # one store after every read
    later_min = np.minimum.accumulate(first_read[::-1])[::-1][1:]  # min over q' > q, q = 0..n-2
    out_end = (np.arange(1, n) * cout * itemsize)
    return int(np.max(out_end - later_min))


def per_pixel_gap_reverse(in_hwc: Tuple[int, int, int], out_hwc: Tuple[int, int, int],
                          strides: Tuple[int, int], pads: Tuple[int, int, int, int], kernel: Tuple[int, int]) -> int:
    """The reverse walk of :func:`per_pixel_gap`: output pixels stored last to first. Storing pixel
    q is safe when it starts at or after the end of the input that earlier pixels q' < q (still
    to come) read: ``offset_gap <= q * cout * 4 - max_{q' < q} last_read_end(q')``. Returns the
    largest such gap (the planner's ``max_gap``)."""
    h, w, cin = in_hwc
    ho, wo, cout = out_hwc
    sh, sw = strides
    top, _, left, _ = pads
    oy, ox = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
    iy = np.clip(oy * sh - top + kernel[0] - 1, 0, h - 1)
    ix = np.clip(ox * sw - left + kernel[1] - 1, 0, w - 1)
    last_end = ((iy * w + ix + 1) * cin * FLOAT_BYTES).reshape(-1)
    n = last_end.size
    if n == 1:
        return h * w * cin * FLOAT_BYTES  # one store after every read: anywhere at or below the input's end
    earlier_max = np.maximum.accumulate(last_end)[:-1]  # max over q' < q, q = 1 .. n-1
    return int(np.min(np.arange(1, n) * cout * FLOAT_BYTES - earlier_max))


def spatial_detail(kernel: Tuple[int, int], strides: Tuple[int, int], pads: Tuple[int, int, int, int]) -> str:
    """'3x3 /2 pad 1,1,1,1' style summary of a windowed op."""
    s = f"{kernel[0]}x{kernel[1]}"
    if tuple(strides) != (1, 1):
        s += f" /{strides[0]}" if strides[0] == strides[1] else f" /{tuple(strides)}"
    if any(pads):
        s += " pad " + ",".join(map(str, pads))
    return s


def one_sample(value: np.ndarray, rank: int) -> np.ndarray:
    """A constant operand of ops on samples of ``rank`` axes: one with a leading batch axis of 1
    (a table the model computes for a batch of one, e.g. an Embedding of arange(n), or a class
    token tiled to the batch) is that one sample's value."""
    return value[0] if value.ndim == rank + 1 and value.shape[0] == 1 else value


def same_pads(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """TensorFlow's 'same' padding: (before, after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_output(size: int, kernel: int, stride: int, before: int, after: int) -> int:
    return (size + before + after - kernel) // stride + 1


def tile_period(shape: Tuple[int, ...], *arrays: np.ndarray) -> int:
    """The shortest trailing block of ``shape`` (last axis, last two axes, ...) whose values repeat
    unchanged across the rest of every array (each flattened over ``shape``): per-channel constants
    give the channel count, constants that vary everywhere give the full size."""
    size = int(np.prod(shape))
    for k in range(len(shape) - 1, -1, -1):
        p = int(np.prod(shape[k:]))
        if all(np.array_equal(a.reshape(-1, p), np.broadcast_to(a[:p], (size // p, p))) for a in arrays):
            return p
    return size
