"""Firmware targets: where each board's flash and SRAM sit, for its linker script.

The SRAM and flash sizes come from :mod:`tinymcu.boards` (the budgets `tinymcu check`
gates), so the linker script enforces exactly the budget the planner was checked against:
an arena that does not fit fails to link ("region `RAM' overflowed"). Only the origins,
the CPU and the vector-table length are board facts added here (from the vendors' memory
maps), and the console each board prints its report on. A board that needs a boot
image of its own (RP2040's boot2) is check only (:data:`CHECK_ONLY`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tinymcu.boards import BOARDS, KIB, get_board
from tinymcu.errors import TinymcuError

#: stack reservation of a project rendered on its own; ``build_firmware`` replaces it with
#: the call graph's worst case (:mod:`.stack`)
STACK_BYTES = 8 * KIB


@dataclass(frozen=True)
class Console:
    """Where a board's report goes: a named template in ``templates/console/`` and the
    register-level facts it needs (peripheral base, clock-enable bit, pins, baud divisor),
    from the vendor's reference manual and the board's schematic. No vendor HAL."""

    #: template name: ``semihosting``, ``stm32_usart`` (F4's SR/DR or F7/H7's ISR/TDR
    #: register layout, by offsets), ``nrf_uart`` (nRF51), ``nrf_uarte`` (nRF52 EasyDMA)
    template: str
    #: what a user connects to, e.g. "USART2 PA2/PA3 (ST-LINK virtual COM port), 115200 8N1"
    description: str
    #: template parameters (addresses and values), all integers
    regs: tuple[tuple[str, int], ...] = ()

    def reg(self, name: str) -> int:
        return dict(self.regs)[name]


SEMIHOSTING = Console("semihosting", "semihosting (the debugger's or QEMU's console)")

#: STM32 reset clock: the HSI RC oscillator, APB prescalers 1 (F4/F7 16 MHz, H7 64 MHz)
BAUD = 115200
_RCC_F4 = 0x4002_3800
_GPIO_F4 = {"A": 0x4002_0000, "D": 0x4002_0C00}


def _stm32_usart(name: str, base: int, port: str, tx: int, rx: int, clk_off: int,
                 clk_bit: int, pclk: int, v2: bool = False, rcc: int = _RCC_F4,
                 gpio_en_off: int = 0x30, gpio: dict[str, int] = _GPIO_F4,
                 why: str = "ST-LINK virtual COM port") -> Console:
    """An STM32 USART console on pins ``P<port><tx>/<rx>`` (alternate function 7).

    ``v2``: the F7/H7 register layout (CR1 first, ISR/TDR) instead of F4's SR/DR/BRR/CR1."""
    layout = ((("sr", 0x1C), ("dr", 0x28), ("brr_off", 0x0C), ("cr1", 0x00), ("ue_bit", 0))
              if v2 else
              (("sr", 0x00), ("dr", 0x04), ("brr_off", 0x08), ("cr1", 0x0C), ("ue_bit", 13)))
    return Console("stm32_usart",
                   f"{name} P{port}{tx}/P{port}{rx} ({why}), {BAUD} 8N1",
                   (("base", base), ("rcc_usart_en", rcc + clk_off), ("usart_bit", clk_bit),
                    ("rcc_gpio_en", rcc + gpio_en_off), ("gpio_bit", ord(port) - ord("A")),
                    ("gpio", gpio[port]), ("tx", tx), ("rx", rx), ("af", 7),
                    ("brr", round(pclk / BAUD)), *layout))


@dataclass(frozen=True)
class Target:
    """One board project: memory map, CPU, console and how (if at all) we can run it."""

    board: str
    cpu: str
    flash_origin: int
    flash_bytes: int
    ram_origin: int
    ram_bytes: int
    #: external interrupt vectors after the 16 core exceptions (all go to Default_Handler)
    irqs: int
    console: Console = SEMIHOSTING
    #: QEMU machine that emulates this board, or None: build only
    qemu_machine: str | None = None
    #: index of QEMU's ``-serial`` the console UART is wired to (None: semihosting)
    qemu_serial: int | None = None
    stack_bytes: int = STACK_BYTES
    note: str = ""

    @property
    def runnable(self) -> bool:
        return self.qemu_machine is not None

    @property
    def armv6m(self) -> bool:
        """Cortex-M0/M0+: Thumb-1 only, no unaligned access, no fault status registers."""
        return self.cpu in ("cortex-m0", "cortex-m0plus")


def _target(board: str, cpu: str, flash_origin: int, ram_origin: int, irqs: int,
            console: Console = SEMIHOSTING, qemu_machine: str | None = None,
            qemu_serial: int | None = None, flash_reserved: int = 0,
            note: str = "") -> Target:
    b = BOARDS[board]
    return Target(board, cpu, flash_origin + flash_reserved, b.flash_bytes - flash_reserved,
                  ram_origin, b.sram_bytes, irqs, console, qemu_machine, qemu_serial,
                  note=note)


_F4_HSI = 16_000_000
TARGETS: dict[str, Target] = {t.board: t for t in (
    _target("qemu-mps2-an386", "cortex-m4", 0x0000_0000, 0x2000_0000, 32,
            qemu_machine="mps2-an386",
            note="QEMU's Cortex-M4 MPS2 board; output over semihosting"),
    _target("qemu-mps2-an386-4m", "cortex-m4", 0x0000_0000, 0x2000_0000, 32,
            qemu_machine="mps2-an386",
            note="QEMU mps2-an386 with all of its ZBT SSRAM (QEMU hw/arm/mps2.c): SSRAM1, "
                 "4 MiB at 0x0, as flash; SSRAM2&3, 4 MiB at 0x20000000, as RAM; output over "
                 "semihosting"),
    _target("qemu-mps2-an500", "cortex-m7", 0x0000_0000, 0x2000_0000, 32,
            qemu_machine="mps2-an500",
            note="QEMU's Cortex-M7 MPS2 board (AN500): SSRAM1 at 0x0 as flash, SSRAM2&3 at "
                 "0x20000000 as RAM, as on mps2-an386; output over semihosting"),
    _target("qemu-netduinoplus2", "cortex-m4", 0x0800_0000, 0x2000_0000, 82,
            _stm32_usart("USART1", 0x4001_1000, "A", 9, 10, 0x44, 4, _F4_HSI,
                         why="QEMU -serial 0"),
            qemu_machine="netduinoplus2", qemu_serial=0,
            note="QEMU netduinoplus2 (STM32F405): 1 MiB flash at 0x08000000, 128 KiB SRAM "
                 "at 0x20000000; report over USART1, exit over semihosting"),
    _target("qemu-microbit", "cortex-m0", 0x0000_0000, 0x2000_0000, 32,
            Console("nrf_uart", f"UART0 P0.24/P0.25 (the micro:bit's USB serial), {BAUD} 8N1",
                    (("base", 0x4000_2000), ("tx", 24), ("rx", 25), ("baud", 0x01D7_E000))),
            qemu_machine="microbit", qemu_serial=0,
            note="QEMU microbit (nRF51822, Cortex-M0): 256 KiB flash at 0x0, 16 KiB RAM at "
                 "0x20000000; report over UART0, exit over semihosting"),
    _target("nucleo-f412zg", "cortex-m4", 0x0800_0000, 0x2000_0000, 97,
            _stm32_usart("USART3", 0x4000_4800, "D", 8, 9, 0x40, 18, _F4_HSI),
            note="STM32F412ZG: 1 MiB flash at 0x08000000, 256 KiB SRAM1 at 0x20000000"),
    _target("nucleo-f411re", "cortex-m4", 0x0800_0000, 0x2000_0000, 86,
            _stm32_usart("USART2", 0x4000_4400, "A", 2, 3, 0x40, 17, _F4_HSI),
            note="STM32F411RE: 512 KiB flash at 0x08000000, 128 KiB SRAM at 0x20000000"),
    _target("arduino-nano-33-ble", "cortex-m4", 0x0000_0000, 0x2000_0000, 48,
            Console("nrf_uarte", f"UARTE0 P1.03/P1.10 (TX/RX on header pins D1/D0), {BAUD} 8N1",
                    (("base", 0x4000_2000), ("tx", 32 + 3), ("rx", 32 + 10),
                     ("gpio", 0x5000_0300), ("tx_bit", 3), ("baud", 0x01D6_0000))),
            flash_reserved=64 * KIB,
            note="nRF52840: 1 MiB flash at 0x0, 256 KiB RAM at 0x20000000; the stock "
                 "Arduino bootloader keeps the first 64 KiB, so the image starts at 0x10000 "
                 "(flash with bossac --offset=0x10000)"),
    _target("nucleo-f746zg", "cortex-m7", 0x0800_0000, 0x2000_0000, 98,
            _stm32_usart("USART3", 0x4000_4800, "D", 8, 9, 0x40, 18, _F4_HSI, v2=True),
            note="STM32F746ZG: 1 MiB flash at 0x08000000; DTCM 64 KiB + SRAM1 240 KiB + "
                 "SRAM2 16 KiB contiguous from 0x20000000"),
    _target("nucleo-h743zi", "cortex-m7", 0x0800_0000, 0x2400_0000, 150,
            _stm32_usart("USART3", 0x4000_4800, "D", 8, 9, 0xE8, 18, 64_000_000, v2=True,
                         rcc=0x5802_4400, gpio_en_off=0xE0,
                         gpio={"D": 0x5802_0C00}),
            note="STM32H743ZI: 2 MiB flash at 0x08000000, 512 KiB AXI SRAM at 0x24000000"),
)}

#: presets ``tinymcu check`` gates but no firmware project builds, and why
CHECK_ONLY = {"rpi-pico": "RP2040 boots from external QSPI flash through a boot2 stage "
                          "tinymcu does not generate"}


def get_target(board: str, sram_bytes: int | None = None) -> Target:
    """The firmware target for ``board``; ``sram_bytes`` shrinks its RAM (like ``--sram``).

    Unknown boards and boards without a firmware project are bad input (exit 2)."""
    get_board(board)
    if board in CHECK_ONLY:
        raise TinymcuError(f"board {board!r} is check only: {CHECK_ONLY[board]}; firmware "
                           f"boards: {', '.join(TARGETS)}")
    if board not in TARGETS:
        raise TinymcuError(f"board {board!r} has no firmware project; choose from "
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
