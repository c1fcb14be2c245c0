"""Board presets: the SRAM and flash budgets `tinymcu check` and `tinymcu prune --board` use.

Sizes are the on-chip memory a model may use. KB/KiB both mean 1024 bytes, as in vendor
datasheets and linker scripts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import TinymcuError


@dataclass(frozen=True)
class Board:
    name: str
    core: str
    sram_bytes: int
    flash_bytes: int
    note: str = ""


KIB = 1024
MIB = 1024 * KIB

BOARDS: dict[str, Board] = {b.name: b for b in (
    Board("qemu-mps2-an386", "Cortex-M4", 256 * KIB, 1 * MIB,
          "QEMU mps2-an386 with tinymcu's linker script (RAM LENGTH = 256K); the CI board"),
    Board("arduino-nano-33-ble", "Cortex-M4F (nRF52840)", 256 * KIB, 1 * MIB),
    Board("nucleo-f746zg", "Cortex-M7 (STM32F746ZG)", 320 * KIB, 1 * MIB),
    Board("nucleo-f412zg", "Cortex-M4 (STM32F412ZG), MCUNet's board", 256 * KIB, 1 * MIB),
    Board("nucleo-f411re", "Cortex-M4 (STM32F411RE)", 128 * KIB, 512 * KIB),
    Board("nucleo-h743zi", "Cortex-M7 (STM32H743ZI), AXI SRAM", 512 * KIB, 2 * MIB),
    Board("rpi-pico", "Cortex-M0+ (RP2040)", 264 * KIB, 2 * MIB, "external QSPI flash"),
)}

DEFAULT_BOARD = "qemu-mps2-an386"


def get_board(name: str) -> Board:
    """Look up a preset; unknown names are bad input (exit 2) and list the choices."""
    try:
        return BOARDS[name]
    except KeyError:
        raise TinymcuError(f"unknown board {name!r}; choose from {', '.join(BOARDS)}") from None


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Parse ``256KiB``, ``256k``, ``1MiB``, ``1.5MB`` or a byte count into bytes."""
    m = _SIZE.match(text)
    if not m:
        raise TinymcuError(f"cannot read memory size {text!r} (examples: 256KiB, 1MiB, 262144)")
    unit = (m.group(2) or "b").lower()
    mult = {"b": 1, "k": KIB, "kb": KIB, "kib": KIB, "m": MIB, "mb": MIB, "mib": MIB}[unit]
    return int(float(m.group(1)) * mult)
