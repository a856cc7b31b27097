"""The compiler: ``keras.Model --trace--> Graph[Op] --plan--> arena offsets --emit--> model.h``."""

from micronets.compiler.compile import CompiledModel, check_classname, compile_model
from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.trace import supported_layers, supported_operations, trace

__all__ = ["CompiledModel", "compile_model", "check_classname", "UnsupportedModelError",
           "supported_layers", "supported_operations", "trace"]
