"""int8 depth to space and space to depth (TFLite DEPTH_TO_SPACE: ``tf.nn.depth_to_space``, the
sub-pixel upscaling of keras.io's EDSR and of super-resolution nets generally; SPACE_TO_DEPTH:
``tf.nn.space_to_depth``, YOLOv2's passthrough "reorg"): a copy, no arithmetic (TFLite requires
the output to keep the input's quantisation). With block b and C channels on the deep side, in
TensorFlow's order (NHWC, the block's rows, then its columns, then the channels):
deep[h, w, (i*b + j)*C + c] = wide[h*b + i, w*b + j, c]. Either way a gather over five axes,
merged where the input stays contiguous (``collapse_gather``)."""

from __future__ import annotations

from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.int8_base import Int8Op
from micronets.compiler.ops.int8_transpose import collapse_gather


class _BlockMove(Int8Op):
    template = "kernels/int8_depth_space.h.j2"
    requires = ("kernels/int8_transpose.h.j2",)
    #: True: the input is the deep side (depth to space)
    to_space = True

    def __init__(self, name, x, out, block: int):
        super().__init__(name, [x], out, 0)
        b = int(block)
        deep, wide = (x, out) if self.to_space else (out, x)
        if len(x.shape) != 3 or b < 2:
            raise UnsupportedModelError(f"'{name}' moves blocks of {b} in a {list(x.shape)} tensor; HxWxC and a block >= 2 expected")
        h, w, cb = deep.shape
        if cb % (b * b) or tuple(wide.shape) != (h * b, w * b, cb // (b * b)):
            raise UnsupportedModelError(f"'{name}': {list(x.shape)} with block {b} does not give the {list(out.shape)} it writes")
        if x.quant != out.quant or x.dtype != out.dtype:
            raise UnsupportedModelError(f"'{name}' changes the quantisation")
        c = cb // (b * b)
        self.block = b
        if self.to_space:  # output walked as (h, i, w, j, c) over the deep input
            dims, strides = (h, b, w, b, c), (w * cb, b * c, cb, c, 1)
        else:  # output walked as (h, w, i, j, c) over the wide input
            dims, strides = (h, w, b, b, c), (b * w * b * c, b * c, w * b * c, c, 1)
        self.dims, self.strides = collapse_gather(dims, strides, name)

    def describe(self):
        return f"{self.inputs[0].shape_str()} -> {self.output.shape_str()} block {self.block}"


class Int8DepthToSpace(_BlockMove):
    kind = "DepthToSpace"
    to_space = True


class Int8SpaceToDepth(_BlockMove):
    kind = "SpaceToDepth"
    to_space = False
