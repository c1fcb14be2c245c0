"""Board presets: the SRAM and flash budgets `tinymcu check` and `tinymcu prune --board` use.

Sizes are the on-chip memory a model may use. KB/KiB both mean 1024 bytes, as in vendor
datasheets and linker scripts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tinymcu.errors import TinymcuError


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
    Board("qemu-mps2-an386-4m", "Cortex-M4", 4 * MIB, 4 * MIB,
          "the same QEMU board with all of its ZBT SSRAM: 4 MiB 'flash' (SSRAM1 at 0x0) and "
          "4 MiB RAM (SSRAM2&3 at 0x20000000), for models over 256 KiB"),
    Board("qemu-mps2-an500", "Cortex-M7", 256 * KIB, 1 * MIB,
          "QEMU mps2-an500 (AN500 FPGA image, Cortex-M7) with the same 256 KiB / 1 MiB "
          "linker budget: the Cortex-M7 figures"),
    Board("arduino-nano-33-ble", "Cortex-M4F (nRF52840)", 256 * KIB, 1 * MIB),
    Board("nucleo-f746zg", "Cortex-M7 (STM32F746ZG)", 320 * KIB, 1 * MIB),
    Board("nucleo-f412zg", "Cortex-M4 (STM32F412ZG), MCUNet's board", 256 * KIB, 1 * MIB),
    Board("nucleo-f411re", "Cortex-M4 (STM32F411RE)", 128 * KIB, 512 * KIB),
    Board("nucleo-h743zi", "Cortex-M7 (STM32H743ZI), AXI SRAM", 512 * KIB, 2 * MIB),
    Board("rpi-pico", "Cortex-M0+ (RP2040)", 264 * KIB, 2 * MIB,
          "external QSPI flash; no firmware project (needs a boot2 stage)"),
    Board("qemu-netduinoplus2", "Cortex-M4 (STM32F405)", 128 * KIB, 1 * MIB,
          "QEMU netduinoplus2: report over USART1, the STM32 console path in CI"),
    Board("qemu-microbit", "Cortex-M0 (nRF51822)", 16 * KIB, 256 * KIB,
          "QEMU microbit: report over UART0; no DSP, no unaligned access"),
)}

DEFAULT_BOARD = "qemu-mps2-an386"


def get_board(name: str) -> Board:
    """Look up a preset; unknown names are bad input (exit 2) and list the choices."""
    try:
        return BOARDS[name]
    except KeyError:
        raise TinymcuError(f"unknown board {name!r}; choose from {', '.join(BOARDS)}") from None


_SIZE = re.compile(r"^\s*(\d{1,12})(?:\.(\d{1,12}))?\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$",
                   re.IGNORECASE)
_UNITS = {"b": 1, "k": KIB, "kb": KIB, "kib": KIB, "m": MIB, "mb": MIB, "mib": MIB,
          "g": 1024 * MIB, "gb": 1024 * MIB, "gib": 1024 * MIB}
#: the largest budget accepted: the C runtime addresses its arena with 32-bit offsets
MAX_SIZE = 1 << 32
EXAMPLES = "examples: 256KiB, 1MiB, 1.5MB, 262144"


def parse_size(text: str, what: str = "memory size") -> int:
    """Parse ``256KiB``, ``256k``, ``1MiB``, ``1.5MB`` or a byte count into bytes.

    The one rule every command's --sram/--flash follows: the value, rounded down to whole
    bytes, must be from 1 B to 4 GiB. ``0``, ``0.5`` and ``""`` are bad input, not "no
    budget" or a silent default. Arithmetic is exact (no float rounding of ``1.1MiB``).
    """
    shown = repr(text if len(text) <= 40 else text[:37] + "...")
    m = _SIZE.match(text)
    if not m:
        raise TinymcuError(f"{what} {shown}: not a size ({EXAMPLES})")
    whole, frac, unit = m.group(1), m.group(2) or "", (m.group(3) or "b").lower()
    num = int(whole + frac) * _UNITS[unit]
    size = num // 10 ** len(frac)
    if not 1 <= size <= MAX_SIZE:
        raise TinymcuError(f"{what} {shown}: must be between 1 B and 4 GiB ({EXAMPLES})")
    return size
