"""Run a firmware image on QEMU's emulated Cortex-M and read what it printed.

The image (``main.c.j2`` with semihosting) prints ``KEY value`` lines and the output bytes
in hex, then leaves QEMU through SYS_EXIT_EXTENDED with its status. ``-icount shift=0``
ties virtual time to the instruction count (one instruction per virtual nanosecond), so the
SysTick reading repeats exactly from run to run; without it SysTick follows host time.
QEMU does not model caches, wait states or the DWT cycle counter: ticks measure executed
instructions, not cycles of a real chip. Every run has a timeout; QEMU never outlives it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinymcu.errors import TinymcuError

QEMU = "qemu-system-arm"
#: nanoseconds per SysTick tick (the core clock QEMU gives each machine), i.e. instructions
#: per tick under -icount shift=0: mps2-an386 and mps2-an500 25 MHz, netduinoplus2
#: 168 MHz, microbit 16 MHz (QEMU hw/arm/mps2.c, stm32f405_soc.c, nrf51_soc.c). Checked by
#: running the same code on two machines: the instruction counts agree (tests/test_boards.py)
NS_PER_TICK = {"mps2-an386": 40.0, "mps2-an500": 40.0, "netduinoplus2": 1e9 / 168e6,
               "microbit": 62.5}

_KEY = re.compile(r"^(TINYMCU_[A-Z_]+) (\d+)$")
_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass
class QemuRun:
    """What the firmware reported: tinymcu_run()'s status, SysTick ticks around it, the
    stack bytes it used (painted-stack high-water) and the output tensor's bytes."""

    status: int
    ticks: int
    stack_used: int
    output: np.ndarray
    machine: str

    @property
    def instructions(self) -> int | None:
        """Instructions executed (to one tick) under ``-icount shift=0``, on machines whose
        SysTick clock we know."""
        ns = NS_PER_TICK.get(self.machine)
        return None if ns is None else round(self.ticks * ns)


def qemu_command(elf: Path, machine: str = "mps2-an386", icount: bool = True,
                 serial: int | None = None) -> list[str]:
    """The QEMU command line; ``serial`` is the index of the machine's UART the firmware's
    console uses (its output goes to stdout; the UARTs before it are not connected)."""
    exe = shutil.which(QEMU)
    if exe is None:
        raise TinymcuError(f"{QEMU} not found (Debian: apt-get install qemu-system-arm)")
    uarts = ["-serial", "none"] if serial is None else \
        [*["-serial", "null"] * serial, "-serial", "stdio"]
    cmd = [exe, "-M", machine, "-nographic", "-monitor", "none", *uarts,
           "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    if icount:
        cmd[1:1] = ["-icount", "shift=0"]
    return cmd


def run_qemu(elf: Path, timeout: float = 60.0, machine: str = "mps2-an386",
             icount: bool = True, serial: int | None = None,
             cwd: Path | None = None) -> str:
    """Run ``elf`` under QEMU and return everything it printed (semihosting writes go to
    QEMU's stderr, the console UART ``serial`` to stdout: both streams are returned, stdout
    first). ``cwd`` is where semihosting opens the files the image names. A run that does
    not exit within ``timeout`` seconds is killed and reported as an error; so is a
    non-zero exit."""
    elf = Path(elf).resolve()
    if not elf.is_file():
        raise TinymcuError(f"{elf}: no such firmware image")
    try:
        res = subprocess.run(qemu_command(elf, machine, icount, serial), capture_output=True,
                             text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False,
                             cwd=cwd)
    except subprocess.TimeoutExpired:
        raise TinymcuError(f"QEMU did not finish {elf.name} within {timeout:g} s "
                           f"(killed)") from None
    text = res.stdout + res.stderr
    if res.returncode != 0:
        raise TinymcuError(f"QEMU run of {elf.name} exited {res.returncode}: "
                           f"{fault_message(text)}")
    return text


_EXCEPTIONS = {2: "NMI", 3: "HardFault", 4: "MemManage", 5: "BusFault", 6: "UsageFault"}


def fault_message(text: str) -> str:
    """One line from the fault report the firmware's handler printed (or QEMU's last lines)."""
    values = {m.group(1): int(m.group(2)) for m in map(_KEY.match, text.splitlines()) if m}
    if "TINYMCU_FAULT" not in values:
        lockup = re.search(r"Lockup: .*", text)
        if lockup:
            sp = re.search(r"R13=([0-9a-f]+)", text)
            return (f"CPU lockup, a fault while entering the fault handler (the stack ran off "
                    f"RAM?): sp 0x{sp.group(1) if sp else '?'}; QEMU: {lockup.group(0).strip()}")
        return " | ".join(text.strip().splitlines()[-3:]) or "no output"
    n = values["TINYMCU_FAULT"]
    pc, cfsr, bfar = (values.get(f"TINYMCU_FAULT_{k}", 0) for k in ("PC", "CFSR", "BFAR"))
    msg = (f"firmware fault: exception {n} ({_EXCEPTIONS.get(n, 'interrupt')}) at pc "
           f"0x{pc:x}, CFSR 0x{cfsr:x}, BFAR 0x{bfar:x}")
    if "TINYMCU_STACK_OVERFLOW" in values:
        msg = f"stack overflow ({values['TINYMCU_STACK_OVERFLOW']:,} B deep); {msg}"
    return msg


def parse_run(text: str, machine: str = "mps2-an386") -> QemuRun:
    """Read the firmware's report; a truncated or garbled one is an error, never a guess."""
    values: dict[str, int] = {}
    hex_lines: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        m = _KEY.match(line)
        if m:
            values[m.group(1)] = int(m.group(2))
        elif "TINYMCU_OUTPUT_BYTES" in values and "TINYMCU_END" not in values \
                and _HEX.match(line):
            hex_lines.append(line)
    missing = [k for k in ("TINYMCU_STATUS", "TINYMCU_TICKS", "TINYMCU_STACK",
                           "TINYMCU_OUTPUT_BYTES", "TINYMCU_END") if k not in values]
    if missing:
        raise TinymcuError(f"firmware output incomplete (missing {', '.join(missing)})")
    raw = bytes.fromhex("".join(hex_lines))
    if len(raw) != values["TINYMCU_OUTPUT_BYTES"]:
        raise TinymcuError(f"firmware printed {len(raw)} output bytes, announced "
                           f"{values['TINYMCU_OUTPUT_BYTES']}")
    return QemuRun(values["TINYMCU_STATUS"], values["TINYMCU_TICKS"], values["TINYMCU_STACK"],
                   np.frombuffer(raw, dtype=np.int8).copy(), machine)
