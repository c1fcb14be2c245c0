"""Put a built firmware image on a real board: pyOCD's Python API, or OpenOCD / st-flash /
bossac where the user has them.

Each board knows its probe facts: the pyOCD target name, the OpenOCD config files, the
flash address of ``st-flash`` and ``bossac`` (the image's own start: 0x08000000 on STM32,
0x10000 above the Nano 33 BLE's bootloader). :func:`flash_plan` turns an image and a probe
into the exact commands (pure: what ``--dry-run`` prints and the tests check);
:func:`flash` runs them. Before anything touches a board the image is checked against it:
its vector table must sit at the board's flash origin, so an image built for another board
is refused instead of written. With a console port (:func:`flash_and_monitor`) the
board's report is read back and compared with the emulator's output the build recorded.
No probe attached, a tool not installed or a probe that
answers with an error are one line each (exit 2), never a traceback or a hang.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.firmware_templates.linkmap import elf_sections
from tinymcu.firmware_templates.qemu import QemuRun, parse_run
from tinymcu.firmware_templates.serial_console import BAUD, SerialConsole
from tinymcu.firmware_templates.targets import Target, get_target

PROBES = ("pyocd", "openocd", "st-flash", "bossac")
#: seconds one flashing tool may run
FLASH_TIMEOUT = 180


@dataclass(frozen=True)
class ProbeFacts:
    """How each tool reaches one board."""

    #: pyOCD target type (``pyocd list --targets``)
    pyocd_target: str
    #: True when pyOCD has the target built in; otherwise it comes from a CMSIS pack
    pyocd_builtin: bool
    #: OpenOCD ``-f`` configuration files
    openocd_cfg: tuple[str, ...]
    #: the tool used when --probe is not given
    default: str = "pyocd"
    st_flash: bool = False
    bossac: bool = False


BOARD_PROBES: dict[str, ProbeFacts] = {
    "nucleo-f412zg": ProbeFacts("stm32f412xg", True, ("board/st_nucleo_f4.cfg",), st_flash=True),
    "nucleo-f411re": ProbeFacts("stm32f411retx", False, ("board/st_nucleo_f4.cfg",),
                                st_flash=True),
    "nucleo-f746zg": ProbeFacts("stm32f746zgtx", False, ("board/st_nucleo_f7.cfg",),
                                st_flash=True),
    "nucleo-h743zi": ProbeFacts("stm32h743xx", True, ("board/st_nucleo_h743zi.cfg",),
                                st_flash=True),
    # the Nano 33 BLE has no on-board SWD probe: its USB port talks to the bootloader
    # (bossac); pyOCD/OpenOCD need a CMSIS-DAP probe on the SWD pads
    "arduino-nano-33-ble": ProbeFacts("nrf52840", True,
                                      ("interface/cmsis-dap.cfg", "target/nrf52.cfg"),
                                      default="bossac", bossac=True),
}


@dataclass(frozen=True)
class FlashPlan:
    """What flashing one image on one board runs: shell commands, or pyOCD's API."""

    board: str
    probe: str
    elf: Path
    #: commands in order (pyOCD: the CLI equivalent of the API call, for --dry-run)
    commands: tuple[tuple[str, ...], ...]
    pyocd_target: str | None = None

    def text(self) -> str:
        return "\n".join(" ".join(_quote(a) for a in cmd) for cmd in self.commands)


def _quote(arg: str) -> str:
    return f"'{arg}'" if any(c in arg for c in " \"$;&|") else arg


def resolve_image(path: Path) -> Path:
    """``app.elf`` itself, or the firmware directory ``tinymcu firmware --out`` wrote."""
    path = Path(path)
    elf = path / "app.elf" if path.is_dir() else path
    if not elf.is_file():
        raise TinymcuError(f"{path}: no firmware image (give app.elf or a `tinymcu firmware` "
                           f"output directory)")
    return elf


def check_image(elf: Path, target: Target) -> None:
    """Refuse an image built for another board: the ``firmware.json`` beside it names its
    board, and its vector table and stack must sit at this board's flash and RAM origins."""
    report = elf.parent / "firmware.json"
    if report.is_file():
        try:
            built_for = json.loads(report.read_text()).get("board")
        except (OSError, ValueError):
            built_for = None
        if built_for not in (None, target.board):
            raise TinymcuError(f"{elf} was built for {built_for}, not {target.board}")
    sections = elf_sections(elf)
    vectors, stack = sections.get(".isr_vector"), sections.get(".stack")
    if vectors is None or stack is None:
        raise TinymcuError(f"{elf}: no .isr_vector/.stack section (not a tinymcu firmware "
                           f"image)")
    if (vectors.address, stack.address) != (target.flash_origin, target.ram_origin):
        raise TinymcuError(f"{elf}: vector table at 0x{vectors.address:08x}, RAM at "
                           f"0x{stack.address:08x}, but {target.board} has flash at "
                           f"0x{target.flash_origin:08x} and RAM at 0x{target.ram_origin:08x}: "
                           f"the image was built for another board")


def flash_plan(elf: Path, board: str, probe: str | None = None,
               port: str | None = None) -> FlashPlan:
    """The exact commands that flash ``elf`` on ``board`` with ``probe`` (pure)."""
    target = get_target(board)
    if target.runnable:
        raise TinymcuError(f"{board} is a QEMU board: nothing to flash; run the image with "
                           f"`tinymcu firmware --board {board} --run`")
    facts = BOARD_PROBES[board]
    probe = probe or facts.default
    if probe not in PROBES:
        raise TinymcuError(f"unknown probe {probe!r}; choose from {', '.join(PROBES)}")
    elf = Path(elf)
    binary = str(elf.with_suffix(".bin"))
    to_bin = ("arm-none-eabi-objcopy", "-O", "binary", str(elf), binary)
    if probe == "pyocd":
        cmds: tuple[tuple[str, ...], ...] = (
            ("pyocd", "flash", "--target", facts.pyocd_target, str(elf)),)
        return FlashPlan(board, probe, elf, cmds, facts.pyocd_target)
    if probe == "openocd":
        cfg = tuple(a for f in facts.openocd_cfg for a in ("-f", f))
        cmds = (("openocd", *cfg, "-c", f"program {elf} verify reset exit"),)
    elif probe == "st-flash":
        if not facts.st_flash:
            raise TinymcuError(f"st-flash programs STM32 parts over ST-LINK; {board} is not "
                               f"one (use --probe {facts.default})")
        cmds = (to_bin, ("st-flash", "--reset", "write", binary,
                         f"0x{target.flash_origin:08x}"))
    else:
        if not facts.bossac:
            raise TinymcuError(f"bossac talks to the Arduino bootloader; {board} has none "
                               f"(use --probe {facts.default})")
        if not port:
            raise TinymcuError("bossac needs --port (the board's serial port, e.g. "
                               "/dev/ttyACM0; double-tap reset for the bootloader)")
        cmds = (to_bin, ("bossac", f"--port={port}", "-U", "-i", "-e", "-w",
                         f"--offset=0x{target.flash_origin:x}", binary, "-R"))
    return FlashPlan(board, probe, elf, cmds)


def flash(elf: Path, board: str, probe: str | None = None, port: str | None = None,
          unique_id: str | None = None) -> FlashPlan:
    """Flash ``elf`` (checked against ``board``) and reset the board; returns the plan run."""
    elf = resolve_image(elf)
    check_image(elf, get_target(board))
    plan = flash_plan(elf, board, probe, port)
    if plan.pyocd_target is not None:
        _flash_pyocd(plan, plan.pyocd_target, unique_id)
        return plan
    for cmd in plan.commands:
        _run_tool(cmd)
    return plan


def _run_tool(cmd: tuple[str, ...]) -> None:
    exe = shutil.which(cmd[0])
    if exe is None:
        raise TinymcuError(f"{cmd[0]} not found: install it or choose another --probe")
    try:
        res = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True,
                             timeout=FLASH_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise TinymcuError(f"{cmd[0]} did not finish within {FLASH_TIMEOUT} s "
                           f"(killed)") from None
    if res.returncode != 0:
        lines = [ln.strip() for ln in (res.stderr + res.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower()] or lines or ["no message"]
        raise TinymcuError(f"{cmd[0]} failed (exit {res.returncode}): {errors[0]}")


def _pyocd_has_target(name: str) -> bool:
    from pyocd.target import TARGET
    from pyocd.target.pack.pack_target import ManagedPacks

    if name in TARGET:
        return True
    return any(t.part_number.lower() == name for t in ManagedPacks.get_installed_targets())


def _flash_pyocd(plan: FlashPlan, target: str, unique_id: str | None) -> None:
    """Program and reset through pyOCD's API; no probe attached is one line (exit 2)."""
    try:
        from pyocd.core.helpers import ConnectHelper
        from pyocd.core.session import Session
        from pyocd.flash.file_programmer import FileProgrammer
    except ImportError:
        raise TinymcuError("pyOCD is not installed: pip install 'tinymcu[flash]'") from None
    if not _pyocd_has_target(target):
        raise TinymcuError(f"pyOCD has no target {target} built in: install its CMSIS pack "
                           f"once (pyocd pack install {target}) or use --probe openocd / "
                           f"st-flash")
    try:  # the probe list, not session_with_chosen_probe: that one prints and prompts
        probes = ConnectHelper.get_all_connected_probes(blocking=False, unique_id=unique_id)
    except Exception as e:  # pyOCD raises its own errors for USB/permission problems
        raise TinymcuError(f"pyOCD could not list the probes: {e}") from None
    if not probes:
        which = f" matching {unique_id!r}" if unique_id else ""
        raise TinymcuError(f"no debug probe{which} found for {plan.board} (pyOCD saw none): "
                           f"connect the board's USB (ST-LINK) or a CMSIS-DAP/J-Link probe")
    if len(probes) > 1 and unique_id is None:
        raise TinymcuError(f"{len(probes)} debug probes attached: choose one with --probe-id "
                           f"({', '.join(p.unique_id for p in probes)})")
    try:
        with Session(probes[0], options={"target_override": target}) as session:
            FileProgrammer(session).program(str(plan.elf))
            session.board.target.reset()
    except Exception as e:  # a probe that stops answering mid-way: one line, not a trace
        raise TinymcuError(f"pyOCD flashing {plan.elf.name} failed: {e}") from None


def expected_output(elf: Path) -> np.ndarray | None:
    """The emulator's output for the image's embedded input (``firmware.json`` beside it)."""
    report = Path(elf).parent / "firmware.json"
    if not report.is_file():
        return None
    try:
        values = json.loads(report.read_text()).get("expected_output")
    except (OSError, ValueError):
        return None
    return None if values is None else np.array(values, dtype=np.int8)


def flash_and_monitor(elf: Path, board: str, port: str, probe: str | None = None,
                      bootloader_port: str | None = None, unique_id: str | None = None,
                      baud: int = BAUD, timeout: float = 30.0
                      ) -> tuple[FlashPlan, QemuRun, np.ndarray | None]:
    """Flash, then read the board's report from its console ``port`` (opened first: the
    board prints right after its reset). Returns the plan, the report and the expected
    output (None when the image has no ``firmware.json``)."""
    plan, text = flash_and_read(elf, board, port, probe, bootloader_port, unique_id, baud,
                                timeout)
    return plan, parse_run(text, board), expected_output(plan.elf)


def flash_and_read(elf: Path, board: str, port: str, probe: str | None = None,
                   bootloader_port: str | None = None, unique_id: str | None = None,
                   baud: int = BAUD, timeout: float = 30.0) -> tuple[FlashPlan, str]:
    """Flash, then return everything the board printed on ``port`` up to TINYMCU_END."""
    with SerialConsole(port, baud) as console:
        plan = flash(elf, board, probe, bootloader_port, unique_id)
        return plan, console.read_report(timeout)
