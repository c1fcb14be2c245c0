"""`tinymcu flash`: the exact commands per board and probe, and every failure as one line.

No board is attached in CI, so the tests pin what would run (``--dry-run`` and
:func:`flash_plan`), run the external tools as stand-in scripts on PATH that record their
arguments (the command really executed is the planned one; a tool's error becomes one
line, exit 2), and take pyOCD's real no-probe path.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_firmware import fixture_model

from tinymcu.cli import main
from tinymcu.errors import TinymcuError
from tinymcu.firmware_templates.build import build_firmware
from tinymcu.firmware_templates.flash import BOARD_PROBES, _pyocd_has_target, flash_plan
from tinymcu.firmware_templates.targets import TARGETS

needs_gcc = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                               reason="needs arm-none-eabi-gcc (installed in CI)")


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


def test_every_real_board_has_probe_facts() -> None:
    assert set(BOARD_PROBES) == {b for b, t in TARGETS.items() if not t.runnable}


@pytest.mark.parametrize("board,probe,expected", [
    ("nucleo-f412zg", "pyocd", [["pyocd", "flash", "--target", "stm32f412xg", "/fw/app.elf"]]),
    ("nucleo-h743zi", None, [["pyocd", "flash", "--target", "stm32h743xx", "/fw/app.elf"]]),
    ("nucleo-f746zg", "openocd", [["openocd", "-f", "board/st_nucleo_f7.cfg", "-c",
                                   "program /fw/app.elf verify reset exit"]]),
    ("nucleo-f411re", "st-flash", [
        ["arm-none-eabi-objcopy", "-O", "binary", "/fw/app.elf", "/fw/app.bin"],
        ["st-flash", "--reset", "write", "/fw/app.bin", "0x08000000"]]),
    ("arduino-nano-33-ble", None, [
        ["arm-none-eabi-objcopy", "-O", "binary", "/fw/app.elf", "/fw/app.bin"],
        ["bossac", "--port=/dev/ttyACM0", "-U", "-i", "-e", "-w", "--offset=0x10000",
         "/fw/app.bin", "-R"]]),
    ("arduino-nano-33-ble", "openocd", [
        ["openocd", "-f", "interface/cmsis-dap.cfg", "-f", "target/nrf52.cfg", "-c",
         "program /fw/app.elf verify reset exit"]]),
])
def test_flash_commands_per_board_and_probe(board: str, probe: str | None,
                                            expected: list[list[str]]) -> None:
    plan = flash_plan(Path("/fw/app.elf"), board, probe, port="/dev/ttyACM0")
    assert [list(c) for c in plan.commands] == expected


@pytest.mark.parametrize("board,probe,match", [
    ("qemu-microbit", None, "QEMU board: nothing to flash"),
    ("nucleo-f412zg", "bossac", "has none"),
    ("arduino-nano-33-ble", "st-flash", "not one"),
    ("arduino-nano-33-ble", "bossac", "needs --port"),
    ("rpi-pico", None, "check only"),
    ("no-such", None, "unknown board"),
])
def test_impossible_flash_requests_are_bad_input(board: str, probe: str | None,
                                                 match: str) -> None:
    with pytest.raises(TinymcuError, match=match):
        flash_plan(Path("/fw/app.elf"), board, probe)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("needs arm-none-eabi-gcc")
    root = tmp_path_factory.mktemp("flash")
    fw = build_firmware(fixture_model(root), "nucleo-f412zg", root / "fw")
    expected = np.clip(2 * fw.input.astype(int) + 1, -128, 127)  # what the fixture computes
    (fw.out_dir / "firmware.json").write_text(json.dumps(
        {"board": "nucleo-f412zg", "expected_output": expected.tolist()}))
    return fw.out_dir


def _fake_tool(bin_dir: Path, name: str, code: int, message: str = "") -> Path:
    """A stand-in for ``name`` that records its argv and exits ``code``."""
    bin_dir.mkdir(exist_ok=True)
    log = bin_dir / f"{name}.args"
    script = bin_dir / name
    script.write_text(f'#!/bin/sh\nfor a in "$@"; do echo "$a"; done > "{log}"\n'
                      f'echo "{message}" >&2\nexit {code}\n')
    script.chmod(0o755)
    return log


@needs_gcc
def test_dry_run_prints_the_command_and_checks_the_image(
        image: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(["flash", str(image), "--board", "nucleo-f412zg", "--dry-run",
                          "--probe", "openocd"], capsys)
    assert code == 0, err
    assert out.strip() == (f"openocd -f board/st_nucleo_f4.cfg -c 'program {image}/app.elf "
                           f"verify reset exit'")
    # an image built for another board is refused before any tool runs
    code, _, err = cli(["flash", str(image / "app.elf"), "--board", "nucleo-h743zi",
                        "--dry-run"], capsys)
    assert code == 2 and "built for nucleo-f412zg" in err
    (image / "firmware.json").rename(image / "report.json")
    try:
        code, _, err = cli(["flash", str(image), "--board", "nucleo-h743zi", "--dry-run"],
                           capsys)
        assert code == 2 and "RAM at 0x20000000" in err and "0x24000000" in err
    finally:
        (image / "report.json").rename(image / "firmware.json")
    code, _, err = cli(["flash", str(image.parent / "nothing"), "--board", "nucleo-f412zg"],
                       capsys)
    assert code == 2 and "no firmware image" in err


@needs_gcc
def test_external_tools_run_the_planned_command_and_errors_are_one_line(
        image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    bin_dir = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    log = _fake_tool(bin_dir, "openocd", 0)
    code, out, err = cli(["flash", str(image), "--board", "nucleo-f412zg", "--probe",
                          "openocd"], capsys)
    assert code == 0, err
    assert log.read_text().splitlines() == [
        "-f", "board/st_nucleo_f4.cfg", "-c", f"program {image}/app.elf verify reset exit"]
    assert "USART3 PD8/PD9" in out
    _fake_tool(bin_dir, "openocd", 1, "Info : clock speed 2000 kHz\\nError: open failed")
    code, _, err = cli(["flash", str(image), "--board", "nucleo-f412zg", "--probe",
                        "openocd"], capsys)
    assert code == 2 and err.strip().splitlines() == [
        "error: openocd failed (exit 1): Error: open failed"]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code, _, err = cli(["flash", str(image), "--board", "nucleo-f412zg", "--probe",
                        "st-flash"], capsys)
    assert code == 2 and "arm-none-eabi-objcopy not found" in err


@needs_gcc
def test_no_probe_attached_is_one_line_exit_2(image: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pyocd")
    from pyocd.core.helpers import ConnectHelper

    if ConnectHelper.get_all_connected_probes(blocking=False):
        pytest.skip("a debug probe is attached")
    code, out, err = cli(["flash", str(image), "--board", "nucleo-f412zg"], capsys)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "error: no debug probe found for nucleo-f412zg (pyOCD saw none): connect the board's "
        "USB (ST-LINK) or a CMSIS-DAP/J-Link probe"]
    # targets pyOCD lacks built in (F411RE, F746ZG) need a CMSIS pack: checked before probes
    assert _pyocd_has_target("stm32f412xg") and _pyocd_has_target("nrf52840")
    assert BOARD_PROBES["nucleo-f411re"].pyocd_builtin is _pyocd_has_target("stm32f411retx")


def _report(output: list[int]) -> bytes:
    hexes = bytes(v & 0xFF for v in output).hex()
    return ("boot noise\r\nTINYMCU_STATUS 0\r\nTINYMCU_TICKS 1234\r\nTINYMCU_STACK 200\r\n"
            f"TINYMCU_OUTPUT_BYTES {len(output)}\r\n{hexes[:64]}\r\n{hexes[64:]}\r\n"
            "TINYMCU_END 0\r\n").encode()


@needs_gcc
def test_monitor_reads_the_report_from_the_console_and_compares(
        image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A pseudo-terminal stands in for the ST-LINK's virtual COM port: the "board" writes
    its report in pieces after the flash, as a real one does after its reset."""
    bin_dir = tmp_path / "bin"
    _fake_tool(bin_dir, "openocd", 0)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    expected = json.loads((image / "firmware.json").read_text())["expected_output"]
    args = ["flash", str(image), "--board", "nucleo-f412zg", "--probe", "openocd"]

    def board_says(data: bytes) -> tuple[str, threading.Thread]:
        master, slave = os.openpty()
        path = os.ttyname(slave)

        def write() -> None:
            time.sleep(0.3)
            for i in range(0, len(data), 17):
                os.write(master, data[i:i + 17])
                time.sleep(0.01)
        t = threading.Thread(target=write, daemon=True)
        t.start()
        return path, t

    port, t = board_says(_report(expected))
    code, out, err = cli([*args, "--monitor", port, "--timeout", "10"], capsys)
    t.join()
    assert code == 0, err
    assert "status 0, 1,234 SysTick ticks" in out and "emulator: bit-exact" in out
    wrong = list(expected)
    wrong[3] ^= 1
    port, t = board_says(_report(wrong))
    code, _, err = cli([*args, "--monitor", port, "--timeout", "10"], capsys)
    t.join()
    assert code == 3 and "differs from the emulator in 1 of 40 bytes" in err
    port, t = board_says(b"TINYMCU_STATUS 0\r\n")  # then silence
    t0 = time.monotonic()
    code, _, err = cli([*args, "--monitor", port, "--timeout", "1.5"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "no complete report within 1.5 s (18 bytes, no TINYMCU_END)" in err
    assert time.monotonic() - t0 < 5
    for bad, match in ((str(tmp_path / "ttyNONE"), "No such file"),
                       (str(image / "firmware.json"), "not a serial port")):
        code, _, err = cli([*args, "--monitor", bad], capsys)
        assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err
