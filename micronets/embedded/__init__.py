"""Run generated headers on (emulated) microcontrollers.

:mod:`micronets.embedded.qemu` builds a header into bare-metal firmware for QEMU's
``mps2-an386`` board (Cortex-M4 with FPU), runs it and reads back bit-exact outputs and
instruction counts; :mod:`micronets.embedded.boards` writes ``docs/boards.md`` from those
measurements; :mod:`micronets.embedded.example` retrains and rewrites the library example
(``examples/Classify``, an Arduino / PlatformIO sketch).
"""

from micronets.embedded.qemu import (
    RunResult,
    build_baseline_firmware,
    build_empty_firmware,
    build_firmware,
    footprint,
    model_footprint,
    run_firmware,
    size,
    toolchain_versions,
    xtensa_compile,
)

__all__ = [
    "RunResult",
    "build_firmware",
    "build_empty_firmware",
    "build_baseline_firmware",
    "model_footprint",
    "run_firmware",
    "size",
    "footprint",
    "xtensa_compile",
    "toolchain_versions",
]
