"""Firmware targets: where each board's flash and SRAM sit, for its linker script.

The SRAM and flash sizes come from :mod:`tinymcu.boards` (the budgets `tinymcu check`
gates), so the linker script enforces exactly the budget the planner was checked against:
an arena that does not fit fails to link ("region `RAM' overflowed"). Only the origins,
the CPU and the vector-table length are board facts added here (from the vendors' memory
maps). A board that needs a boot image of its own (RP2040's boot2) has no target yet.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..boards import BOARDS, KIB, get_board
from ..errors import TinymcuError

#: stack reservation of a project rendered on its own; ``build_firmware`` replaces it with
#: the call graph's worst case (:mod:`.stack`)
STACK_BYTES = 8 * KIB


@dataclass(frozen=True)
class Target:
    """One board project: memory map, CPU and how (if at all) we can run it."""

    board: str
    cpu: str
    flash_origin: int
    flash_bytes: int
    ram_origin: int
    ram_bytes: int
    #: external interrupt vectors after the 16 core exceptions (all go to Default_Handler)
    irqs: int
    #: QEMU machine that emulates this board, or None: build only
    qemu_machine: str | None = None
    stack_bytes: int = STACK_BYTES
    note: str = ""

    @property
    def runnable(self) -> bool:
        return self.qemu_machine is not None


def _target(board: str, cpu: str, flash_origin: int, ram_origin: int, irqs: int,
            qemu_machine: str | None = None, flash_reserved: int = 0, note: str = "") -> Target:
    b = BOARDS[board]
    return Target(board, cpu, flash_origin + flash_reserved, b.flash_bytes - flash_reserved,
                  ram_origin, b.sram_bytes, irqs, qemu_machine, note=note)


TARGETS: dict[str, Target] = {t.board: t for t in (
    _target("qemu-mps2-an386", "cortex-m4", 0x0000_0000, 0x2000_0000, 32, "mps2-an386",
            note="QEMU's Cortex-M4 MPS2 board; output over semihosting"),
    _target("nucleo-f412zg", "cortex-m4", 0x0800_0000, 0x2000_0000, 97,
            note="STM32F412ZG: 1 MiB flash at 0x08000000, 256 KiB SRAM1 at 0x20000000"),
    _target("nucleo-f411re", "cortex-m4", 0x0800_0000, 0x2000_0000, 86,
            note="STM32F411RE: 512 KiB flash at 0x08000000, 128 KiB SRAM at 0x20000000"),
    _target("arduino-nano-33-ble", "cortex-m4", 0x0000_0000, 0x2000_0000, 48,
            flash_reserved=64 * KIB,
            note="nRF52840: 1 MiB flash at 0x0, 256 KiB RAM at 0x20000000; the stock "
                 "Arduino bootloader keeps the first 64 KiB, so the image starts at 0x10000 "
                 "(flash with bossac --offset=0x10000)"),
    _target("nucleo-f746zg", "cortex-m7", 0x0800_0000, 0x2000_0000, 98,
            note="STM32F746ZG: 1 MiB flash at 0x08000000; DTCM 64 KiB + SRAM1 240 KiB + "
                 "SRAM2 16 KiB contiguous from 0x20000000"),
    _target("nucleo-h743zi", "cortex-m7", 0x0800_0000, 0x2400_0000, 150,
            note="STM32H743ZI: 2 MiB flash at 0x08000000, 512 KiB AXI SRAM at 0x24000000"),
)}


def get_target(board: str, sram_bytes: int | None = None) -> Target:
    """The firmware target for ``board``; ``sram_bytes`` shrinks its RAM (like ``--sram``).

    Unknown boards and boards without a firmware project are bad input (exit 2)."""
    get_board(board)
    if board not in TARGETS:
        raise TinymcuError(f"board {board!r} has no firmware project yet; choose from "
                           f"{', '.join(TARGETS)}")
    t = TARGETS[board]
    if sram_bytes is None:
        return t
    if not 0 < sram_bytes <= t.ram_bytes:
        raise TinymcuError(f"--sram {sram_bytes:,} B: must be between 1 B and the board's "
                           f"{t.ram_bytes:,} B")
    if sram_bytes % 8:
        raise TinymcuError(f"--sram {sram_bytes:,} B: must be a multiple of 8 bytes")
    return replace(t, ram_bytes=sram_bytes)
