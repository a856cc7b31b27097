"""The boards ``micronets info --board`` checks a model against: RAM and flash offered, and the
assumptions behind those numbers."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class Board:
    """What one board offers a model: data RAM and flash, and the assumptions behind them."""

    key: str
    name: str
    ram_bytes: int  # RAM assumed free for the model's object (arena + outputs) and the input frame
    ram_note: str
    flash_bytes: int
    flash_note: str
    code_allowance: int  # flash reserved for the application, runtime and inference code
    fpu: bool = True  # a single-precision FPU: float inference runs in hardware
    aliases: Tuple[str, ...] = ()  # other names: PlatformIO board ids and platformio.ini env names

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


KB = 1024
MB = 1024 * 1024

BOARDS: Dict[str, Board] = {
    board.key: board
    for board in (
        Board(
            "esp32-s3", "Espressif ESP32-S3-DevKitC-1 N8",
            320 * KB, "assumes ~320 KB of the 512 KB internal SRAM is free for data "
            "(the rest goes to cache, IRAM code, FreeRTOS and Wi-Fi); no PSRAM",
            8 * MB, "8 MB quad-SPI flash (N8 module)",
            1 * MB, aliases=("esp32-s3-devkitc-1",),
        ),
        Board(
            "stm32f446re", "ST NUCLEO-F446RE (Cortex-M4F, 180 MHz)",
            128 * KB, "128 KB SRAM (SRAM1 112 KB + SRAM2 16 KB, contiguous)",
            512 * KB, "512 KB internal flash",
            64 * KB, aliases=("nucleo_f446re", "stm32f446"),
        ),
        Board(
            "stm32h743", "ST STM32H743 (Cortex-M7, 480 MHz), e.g. NUCLEO-H743ZI",
            512 * KB, "uses the 512 KB AXI SRAM (the faster 128 KB DTCM and the 288 KB of "
            "D2/D3 SRAM are not counted)",
            2 * MB, "2 MB internal flash",
            64 * KB, aliases=("nucleo_h743zi", "stm32h743zi"),
        ),
        Board(
            "nrf52840", "Nordic nRF52840 (Cortex-M4F, 64 MHz), e.g. Arduino Nano 33 BLE",
            192 * KB, "assumes 192 KB of the 256 KB SRAM is free (the BLE SoftDevice and the "
            "stack take the rest)",
            1 * MB, "1 MB internal flash",
            192 * KB, aliases=("nano33ble", "nrf52840_dk"),
        ),
        Board(
            "rp2040", "Raspberry Pi RP2040 (dual Cortex-M0+, 133 MHz), e.g. Raspberry Pi Pico",
            256 * KB, "uses the 256 KB striped main SRAM (the two 4 KB banks are left to the stacks)",
            2 * MB, "2 MB QSPI flash (Raspberry Pi Pico)",
            64 * KB, fpu=False, aliases=("pico", "rpipico"),
        ),
    )
}

#: every name a board answers to (lower case): its key and its aliases
BOARD_NAMES: Dict[str, str] = {name.lower(): b.key for b in BOARDS.values() for name in (b.key, *b.aliases)}


def find_board(name: str) -> Optional[Board]:
    """The board called ``name`` (its key, a PlatformIO board id or env name; any case), or None."""
    key = BOARD_NAMES.get(str(name).lower())
    return None if key is None else BOARDS[key]


NO_FPU_NOTE = ("no floating-point unit: float inference is emulated in software, typically 10-50x slower "
               "than on a Cortex-M4F at the same clock; an int8 header (--int8 --calibration, or a .tflite) "
               "runs in integer arithmetic instead")

#: the note for an int8 model on a board without an FPU: no warning, it is the right choice there
NO_FPU_INT8_NOTE = ("no floating-point unit: int8 is the right choice here, every layer runs in integer "
                    "arithmetic (only the numOutputs results are dequantised to float, once per inference)")

BOARD_HELP = (
    "Check the model against a board: RAM needed = the model object (arena + outputs, i.e. "
    "sizeof(net)) + one uint8 H x W x C input frame; flash needed = the weights + a per-board "
    "code allowance (64 KB on the STM32s and RP2040, 192 KB on the nRF52840, 1 MB on the "
    "ESP32-S3). ESP32-S3: ~320 KB of its 512 KB SRAM counted as free for data, 8 MB flash "
    "(DevKitC-1 N8). STM32H743: the 512 KB AXI SRAM, 2 MB flash. STM32F446RE: 128 KB SRAM, "
    "512 KB flash. PlatformIO board and env names (e.g. nucleo_f446re) work too. 'list' shows all boards."
)


def board_verdict(summary: Dict[str, Any], board: Board) -> Dict[str, Any]:
    """How ``summary`` (from ``compile_model(...).summary()``) fits ``board``; margins in bytes."""
    h, w, c = (int(d) for d in summary["input_shape"])
    frame = h * w * c
    ram_needed = int(summary["object_bytes"]) + frame
    flash_needed = int(summary["weights_bytes"]) + board.code_allowance
    ram_margin = board.ram_bytes - ram_needed
    flash_margin = board.flash_bytes - flash_needed
    return {
        "board": board.key,
        "name": board.name,
        "ram_available": board.ram_bytes,
        "ram_needed": ram_needed,
        "ram_object_bytes": int(summary["object_bytes"]),
        "ram_input_frame_bytes": frame,
        "ram_margin": ram_margin,
        "fits_ram": ram_margin >= 0,
        "flash_available": board.flash_bytes,
        "flash_needed": flash_needed,
        "flash_weights_bytes": int(summary["weights_bytes"]),
        "flash_code_allowance": board.code_allowance,
        "flash_margin": flash_margin,
        "fits_flash": flash_margin >= 0,
        "fits": ram_margin >= 0 and flash_margin >= 0,
        "float_hardware": board.fpu,
        "note": None if board.fpu else (NO_FPU_INT8_NOTE if summary.get("quantize") == "int8" else NO_FPU_NOTE),
    }
