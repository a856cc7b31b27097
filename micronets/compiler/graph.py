"""The compiler's intermediate form: typed ops over tensors with static shapes, in execution order.

A :class:`Tensor` is immutable: its shape is fixed when it is created and never changes. A
Reshape or Flatten that keeps the bytes in order (every reshape of a row-major array does) is a
*view*: a tensor of its own shape whose ``base`` is the tensor that owns the bytes. Kernels read
shapes from the tensors they were given, so a producer always writes the shape it computed.
Where a tensor lives (the caller's input, the arena, an output array) is decided by the planner
(:mod:`micronets.compiler.plan`), never stored on the tensor.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import numpy as np

FLOAT_BYTES = 4

#: element types a tensor may hold, and their sizes in bytes
DTYPE_BYTES = {"float32": 4, "int8": 1, "uint8": 1, "int32": 4}
#: element types that carry a quantisation (real = scale * (q - zero_point))
QUANTIZED = ("int8", "uint8")


def input_name(k: int) -> str:
    """Name of model input k: its tensor's, and the caller's pointer to it in the header."""
    return "input" if k == 0 else f"input{k}"


def is_input(tensor, graph_inputs) -> bool:
    """Whether ``tensor``'s bytes are one of ``graph_inputs``' (the caller's buffers)."""
    return any(tensor.storage is t.storage for t in graph_inputs)


@dataclasses.dataclass(frozen=True)
class Quant:
    """Per-tensor affine quantisation of an activation: real = scale * (q - zero_point). ``scale``
    is the float32 value stored in the .tflite (kept as a Python float holding that float32)."""

    scale: float
    zero_point: int

    def __post_init__(self):
        scale = float(np.float32(self.scale))
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"quantisation scale must be a positive finite number; got {self.scale!r}")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", int(self.zero_point))


@dataclasses.dataclass(frozen=True, eq=False)
class Tensor:
    """An activation. ``shape`` has no batch axis: (H, W, C) maps, (L, C) sequences, (N,) vectors,
    or any other rank a reshape makes. ``base`` is set on views. ``dtype`` is the element type
    (float32 unless an int8 graph made it); an int8/uint8 tensor always has its ``quant``, any other
    never does, and a view has its base's type and quantisation."""

    name: str
    shape: Tuple[int, ...]
    base: Optional["Tensor"] = None
    #: set on a channel slice: channels [channel_offset, channel_offset + shape[-1]) of ``base``
    #: (same leading axes), which its producer writes in place of a concatenation's copy
    channel_offset: Optional[int] = None
    dtype: str = "float32"
    quant: Optional[Quant] = None

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if self.dtype not in DTYPE_BYTES:
            raise ValueError(f"tensor {self.name!r} has unknown element type {self.dtype!r}; known: {', '.join(DTYPE_BYTES)}")
        if (self.dtype in QUANTIZED) != (self.quant is not None):
            raise ValueError(f"tensor {self.name!r}: a {self.dtype} tensor " +
                             ("needs its quantisation (scale, zero point)" if self.quant is None else "cannot carry a quantisation"))
        if self.base is not None and (self.base.dtype != self.dtype or self.base.quant != self.quant):
            raise ValueError(f"view {self.name!r} ({self.dtype}) must have the type and quantisation of its base {self.base.name!r}")
        if any(d < 1 for d in self.shape):
            raise ValueError(f"tensor {self.name!r} has an empty or unknown dimension: {self.shape}")
        if self.base is not None:
            if self.base.base is not None:
                raise ValueError("a view's base must own its bytes")
            if self.channel_offset is not None:
                if (self.shape[:-1] != self.base.shape[:-1] or self.channel_offset < 0
                        or self.channel_offset + self.shape[-1] > self.base.shape[-1]):
                    raise ValueError(f"slice {self.name!r} {self.shape} at channel {self.channel_offset} "
                                     f"does not fit {self.base.name!r} {self.base.shape}")
            elif self.base.size != self.size:
                raise ValueError(f"view {self.name!r} {self.shape} of {self.base.name!r} {self.base.shape} changes the size")
        elif self.channel_offset is not None:
            raise ValueError("a channel slice needs a base")

    @property
    def is_slice(self) -> bool:
        return self.channel_offset is not None

    @property
    def storage(self) -> "Tensor":
        """The tensor that owns these bytes (itself unless a view)."""
        return self.base if self.base is not None else self

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def itemsize(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    @property
    def hwc(self) -> Tuple[int, int, int]:
        """The shape seen as a map: (H, W, C) as is, a sequence (L, C) as 1 x L x C, a vector (N,)
        as 1 x 1 x N; higher ranks fold their leading axes into H."""
        s = self.shape
        if len(s) == 3:
            return s
        if len(s) == 2:
            return (1, s[0], s[1])
        if len(s) == 1:
            return (1, 1, s[0])
        return (int(np.prod(s[:-2])), s[-2], s[-1])

    def shape_str(self) -> str:
        return "x".join(str(d) for d in self.shape)


@dataclasses.dataclass(frozen=True)
class Graph:
    """Ops in execution order, the model's inputs and its outputs (each in Keras' order).

    ``keras_tensors`` maps each Keras layer name to the tensor holding that layer's output (for
    per-layer verification); layers folded into another op map to that op's output.
    ``input_names``: the Keras names of the inputs, where known (for the header's comments).
    """

    ops: Tuple["object", ...]
    inputs: Tuple[Tensor, ...]
    outputs: Tuple[Tensor, ...]
    keras_tensors: Tuple[Tuple[str, Tensor], ...] = ()
    input_names: Tuple[str, ...] = ()

    def __post_init__(self):
        if not self.inputs or any(t.base is not None for t in self.inputs):
            raise ValueError("a graph has at least one input, and each owns its bytes")
        if self.input_names and len(self.input_names) != len(self.inputs):
            raise ValueError(f"{len(self.input_names)} input names for {len(self.inputs)} inputs")

    def inputs_read(self) -> Tuple[bool, ...]:
        """Per input, whether an op reads it (an input no output depends on is an argument only)."""
        read = {x.storage for op in self.ops for x in op.inputs}
        return tuple(t in read for t in self.inputs)

    @property
    def input(self) -> Tensor:
        """The model's input, for the paths that take one (int8, per-layer verification)."""
        if len(self.inputs) != 1:
            raise ValueError(f"this graph has {len(self.inputs)} inputs; use .inputs")
        return self.inputs[0]

    @property
    def output(self) -> Tensor:
        return self.outputs[0]

    def producer(self, tensor: Tensor):
        """The op writing ``tensor``'s bytes, or None for a model input."""
        for op in self.ops:
            if op.output is tensor.storage:
                return op
        return None
