"""The compiler's intermediate form: typed ops over tensors with static shapes, in execution order."""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

import numpy as np

FLOAT_BYTES = 4


@dataclasses.dataclass(eq=False)
class Tensor:
    """A float32 activation. ``shape`` has no batch axis: (H, W, C) for maps, (N,) for vectors.

    ``kind`` says where it lives at run time: ``"input"`` (the caller's buffer, read in place),
    ``"arena"`` (planned into the static arena) or ``"output"`` (the object's ``outputs[]``).
    """

    name: str
    shape: Tuple[int, ...]
    kind: str = "arena"
    producer: Optional["object"] = None
    #: remaining readers in the Keras graph (aliases such as Reshape/Dropout pass their readers on)
    uses: int = 0
    is_model_output: bool = False
    #: set on ZeroPadding2D results: (source tensor, (top, bottom, left, right)); never materialised
    pad_of: Optional[Tuple["Tensor", Tuple[int, int, int, int]]] = None
    offset: Optional[int] = None  # byte offset in the arena once planned

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * FLOAT_BYTES

    @property
    def hwc(self) -> Tuple[int, int, int]:
        """The shape seen as a map; vectors are 1x1xN."""
        if len(self.shape) == 3:
            return tuple(self.shape)
        return (1, 1, self.size)

    def shape_str(self) -> str:
        return "x".join(str(d) for d in self.shape)


@dataclasses.dataclass
class Graph:
    """Ops in execution order, the model's input and output tensors."""

    ops: List["object"]
    input: Tensor
    output: Tensor
