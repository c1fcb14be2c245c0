"""Board consoles and the QEMU boards that prove the real-peripheral paths.

Every board prints the same "key value" report on its own console, from a named template
(``firmware_templates/templates/console/``) with register-level code: semihosting on
mps2-an386, an STM32 USART on the Nucleo boards and netduinoplus2, the nRF51 UART on the
micro:bit, the nRF52 UARTE on the Nano 33 BLE. The fast tests pin each board's register
facts (peripheral base, clock-enable bit, pins, baud divisor) as rendered; the slow ones
run real models on QEMU's netduinoplus2 (STM32F405, report over USART1) and microbit
(nRF51822, Cortex-M0: no DSP, unaligned access faults) bit-exact with the emulator.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_firmware import fixture_model

from tinymcu.cli import main
from tinymcu.commands.boards import firmware_support
from tinymcu.errors import TinymcuError
from tinymcu.firmware_templates.build import build_firmware, render_project
from tinymcu.firmware_templates.qemu import parse_run, qemu_command, run_qemu
from tinymcu.firmware_templates.targets import CHECK_ONLY, TARGETS, get_target

DATA = Path(__file__).parent / "data"
KWS = DATA / "kws_ref_model.tflite"
MICRO_SPEECH = DATA / "micro_speech_quantized.tflite"

needs_toolchain = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm (installed in CI)")


def _main_c(board: str) -> str:
    return render_project(get_target(board), "m", np.zeros(4, np.int8))["main.c"]


def _define(text: str, name: str) -> int:
    m = re.search(rf"#define {name} \(?\*?\(?(?:volatile uint32_t \*\))?(0x[0-9A-F]+)u", text)
    assert m, name
    return int(m.group(1), 16)


@pytest.mark.parametrize("board,usart,rcc_en,bit,gpio,pins,brr,sr", [
    # Nucleo-64: USART2 on PA2/PA3; Nucleo-144: USART3 on PD8/PD9 (ST-LINK VCP)
    ("nucleo-f411re", 0x4000_4400, 0x4002_3840, 17, 0x4002_0000, (2, 3), 139, 0x00),
    ("nucleo-f412zg", 0x4000_4800, 0x4002_3840, 18, 0x4002_0C00, (8, 9), 139, 0x00),
    ("nucleo-f746zg", 0x4000_4800, 0x4002_3840, 18, 0x4002_0C00, (8, 9), 139, 0x1C),
    ("nucleo-h743zi", 0x4000_4800, 0x5802_44E8, 18, 0x5802_0C00, (8, 9), 556, 0x1C),
    ("qemu-netduinoplus2", 0x4001_1000, 0x4002_3844, 4, 0x4002_0000, (9, 10), 139, 0x00),
])
def test_stm32_usart_console_registers(board: str, usart: int, rcc_en: int, bit: int,
                                       gpio: int, pins: tuple[int, int], brr: int,
                                       sr: int) -> None:
    """HSI after reset (16 MHz on F4/F7, 64 MHz on H7) / 115200 baud → BRR; the F7/H7
    USART has the newer register layout (status in ISR at 0x1C, data in TDR at 0x28)."""
    text = _main_c(board)
    assert _define(text, "CON_USART") == usart
    assert _define(text, "CON_RCC_USART") == rcc_en
    assert _define(text, "CON_GPIO") == gpio
    assert f"CON_RCC_USART |= 1u << {bit};" in text
    assert f"con_pin_af({pins[0]}u);" in text and f"con_pin_af({pins[1]}u);" in text
    assert f"CON_BRR = {brr}u;" in text
    assert f"(CON_USART + 0x{sr:02X}u)" in text.split("#define CON_SR ")[1].splitlines()[0]
    assert "| (7u << (4u * (pin % 8u)))" in text  # alternate function 7


def test_nrf_consoles_registers() -> None:
    nano = _main_c("arduino-nano-33-ble")
    assert "CON_ENABLE = 8u;" in nano  # UARTE
    assert "CON_PSEL_TXD = 35u;" in nano and "CON_PSEL_RXD = 42u;" in nano  # P1.03 / P1.10
    assert "CON_BAUDRATE = 0x01D60000u;" in nano
    bit = get_target("qemu-microbit")
    assert bit.armv6m and bit.qemu_serial == 0
    text = _main_c("qemu-microbit")
    assert "CON_ENABLE = 4u;" in text and "CON_PSELTXD = 24u;" in text  # UART, P0.24
    assert "CON_BAUDRATE = 0x01D7E000u;" in text
    # ARMv6-M has no fault status registers: the fault report must not read them
    assert "0xE000ED28" not in text and "0xE000ED28" in _main_c("qemu-netduinoplus2")


def test_qemu_wires_the_console_uart_to_stdout(tmp_path: Path) -> None:
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("needs qemu-system-arm")
    elf = tmp_path / "a.elf"
    # the third UART (USART3 on the STM32F405) is the console: the first two go nowhere
    assert "-serial null -serial null -serial stdio " in " ".join(
        qemu_command(elf, "netduinoplus2", serial=2))
    assert "-serial none " in " ".join(qemu_command(elf))  # semihosting console


def test_check_only_boards_are_listed_and_refused(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    assert "rpi-pico" in CHECK_ONLY and "rpi-pico" not in TARGETS
    with pytest.raises(SystemExit):
        main(["boards"])
    out = capsys.readouterr().out
    assert re.search(r"rpi-pico .*check only", out)
    assert firmware_support("qemu-microbit") == "QEMU run, UART0 P0.24/P0.25"
    assert firmware_support("nucleo-f411re") == "build, USART2 PA2/PA3"
    with pytest.raises(TinymcuError, match="check only"):
        get_target("rpi-pico")


# ---------------------------------------------------------------- cross toolchain + QEMU


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


@pytest.mark.slow
@needs_toolchain
@pytest.mark.parametrize("board,model,inp", [
    ("qemu-netduinoplus2", KWS, DATA / "kws_sample_input_int8.npy"),
    ("qemu-microbit", MICRO_SPEECH, None),
])
def test_uart_boards_run_real_models_bit_exact(board: str, model: Path, inp: Path | None,
                                               tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The report travels over the board's UART (QEMU's stdout), the run ends through
    semihosting; the output bytes equal the emulator's."""
    out = tmp_path / board
    args = ["firmware", str(model), "--board", board, "--out", str(out), "--run"]
    code, text, err = _cli(args + (["--input", str(inp)] if inp else []), capsys)
    assert code == 0, err
    assert "emulator: bit-exact" in text
    report = json.loads((out / "firmware.json").read_text())
    assert report["bit_exact"] is True and report["qemu_machine"] == get_target(board).qemu_machine
    assert report["map_arena_bytes"] == report["planner_arena_bytes"]
    assert report["sram_bytes"] <= get_target(board).ram_bytes
    if inp is not None:
        assert int(np.argmax(report["output"])) == 5  # the KWS sample is "on"
    # the UART, not semihosting, carried the report: stdout alone holds all of it
    t = get_target(board)
    res = subprocess.run(qemu_command(out / "app.elf", t.qemu_machine, serial=t.qemu_serial),
                         capture_output=True, text=True, timeout=60, check=True)
    assert parse_run(res.stdout).output.tolist() == report["output"]
    assert "TINYMCU" not in res.stderr


@pytest.mark.slow
@needs_toolchain
def test_cortex_m0_traps_unaligned_access_and_reports_it(tmp_path: Path) -> None:
    """QEMU's Cortex-M0 faults on an unaligned word store (as the silicon does), so the
    bit-exact microbit runs above prove the kernels make none. The fault report arrives
    over the UART without the ARMv7-M status registers."""
    t = get_target("qemu-microbit")
    fw = build_firmware(fixture_model(tmp_path, body="unaligned"), "qemu-microbit",
                        tmp_path / "fw")
    with pytest.raises(TinymcuError, match=r"exception 3 \(HardFault\) at pc 0x[0-9a-f]+"):
        run_qemu(fw.elf, timeout=20, machine=t.qemu_machine, serial=t.qemu_serial)
    # the same image on the Cortex-M4 board runs: unaligned stores are legal there
    fw = build_firmware(fixture_model(tmp_path, body="unaligned"), "qemu-netduinoplus2",
                        tmp_path / "m4")
    assert parse_run(run_qemu(fw.elf, timeout=20, machine="netduinoplus2", serial=0)).status == 0


@pytest.mark.slow
@needs_toolchain
def test_model_over_the_microbit_ram_is_exit_1(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(["firmware", str(KWS), "--board", "qemu-microbit", "--out",
                         str(tmp_path / "fw")], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "fw").exists()


@pytest.mark.slow
@needs_toolchain
def test_instruction_counts_agree_across_machines(tmp_path: Path) -> None:
    """The same Cortex-M4 code (KWS) executes the same instructions on mps2-an386 (SysTick at
    25 MHz) and netduinoplus2 (168 MHz): the per-machine tick lengths in NS_PER_TICK turn
    both SysTick counts into one instruction count (to a tick, under -icount shift=0)."""
    from tinymcu.mcu_runtime.codegen import codegen_model

    codegen_model(KWS, tmp_path / "kws")
    x = np.load(DATA / "kws_sample_input_int8.npy")
    counts = []
    for board in ("qemu-mps2-an386", "qemu-netduinoplus2"):
        t = get_target(board)
        fw = build_firmware(tmp_path / "kws", board, tmp_path / board, x)
        run = parse_run(run_qemu(fw.elf, timeout=60, machine=t.qemu_machine or "",
                                 serial=t.qemu_serial), t.qemu_machine or "")
        counts.append(run.instructions)
    assert counts[0] is not None and counts[1] is not None
    assert abs(counts[0] - counts[1]) <= 40  # one tick of the coarser clock


@pytest.mark.slow
@needs_toolchain
def test_cortex_m7_board_runs_kws_bit_exact(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """qemu-mps2-an500 is a Cortex-M7: the image is built for it (the DSP kernels, GCC's M7
    scheduling), runs on QEMU's AN500 machine and answers as the emulator and TFLM do."""
    t = get_target("qemu-mps2-an500")
    assert (t.cpu, t.qemu_machine, t.ram_bytes) == ("cortex-m7", "mps2-an500", 256 * 1024)
    out = tmp_path / "m7"
    code, text, err = _cli(["firmware", str(KWS), "--board", "qemu-mps2-an500", "--out",
                            str(out), "--input", str(DATA / "kws_sample_input_int8.npy"),
                            "--run"], capsys)
    assert code == 0, err
    assert "emulator: bit-exact" in text and "instructions" in text
    report = json.loads((out / "firmware.json").read_text())
    assert report["bit_exact"] is True and report["qemu_machine"] == "mps2-an500"
    assert int(np.argmax(report["output"])) == 5  # the KWS sample is "on"
    assert "-mcpu=cortex-m7" in (out / "Makefile").read_text()


# -- qemu-mps2-an386-4m: the same Cortex-M4 board with all of its SSRAM ------------------------

REALWORLD = Path(__file__).resolve().parents[2] / "shared" / "models" / "realworld"


def test_4m_board_memory_map_and_listing(capsys: pytest.CaptureFixture) -> None:
    """QEMU's mps2-an386 maps 4 MiB of ZBT SSRAM1 at 0x0 and 4 MiB of SSRAM2&3 at
    0x20000000 (hw/arm/mps2.c); the linker script takes exactly those regions."""
    t = get_target("qemu-mps2-an386-4m")
    assert (t.flash_origin, t.flash_bytes, t.ram_origin, t.ram_bytes) == \
        (0, 4 << 20, 0x2000_0000, 4 << 20)
    assert t.qemu_machine == "mps2-an386" and t.runnable
    ld = render_project(t, "m", np.zeros(4, np.int8))["link.ld"]
    assert "RAM   (rwx) : ORIGIN = 0x20000000, LENGTH = 4194304" in ld
    assert "FLASH (rx)  : ORIGIN = 0x00000000, LENGTH = 4194304" in ld
    with pytest.raises(SystemExit):
        main(["boards"])
    assert "qemu-mps2-an386-4m" in capsys.readouterr().out.replace("…", "")
    assert firmware_support("qemu-mps2-an386-4m") == "QEMU run, semihosting"


@pytest.mark.slow
@needs_toolchain
def test_4m_board_runs_an_arena_over_256k_bit_exact(tmp_path: Path) -> None:
    """A MobileNet-like graph whose arena (309,760 B) does not fit the 256 KiB board links
    and runs on the 4 MiB one, bit-exact with the emulator."""
    from patch_graphs import mobilenet_like

    from tinymcu.errors import OverBudget
    from tinymcu.mcu_runtime.codegen import generate
    from tinymcu.mcu_runtime.emulator import emulate
    from tinymcu.mcu_runtime.planner import plan
    from tinymcu.mcu_runtime.schedule import layer_schedule

    graph = mobilenet_like(size=176, seed=1)
    p = plan(graph, layer_schedule(graph))
    assert p.arena_bytes > 256 * 1024
    generate(graph, p, tmp_path / "m")
    x = np.random.default_rng(3).integers(-128, 128, graph.tensors[graph.inputs[0]].shape,
                                          dtype=np.int64).astype(np.int8)
    with pytest.raises(OverBudget, match="SRAM overflowed"):
        build_firmware(tmp_path / "m", "qemu-mps2-an386", tmp_path / "small", x)
    fw = build_firmware(tmp_path / "m", "qemu-mps2-an386-4m", tmp_path / "fw", x)
    assert fw.arena_symbol_bytes == p.arena_bytes
    run = parse_run(run_qemu(fw.elf, timeout=600))
    assert run.status == 0 and run.stack_used <= fw.stack_bound
    np.testing.assert_array_equal(run.output, emulate(graph, p, [x]).outputs[0].reshape(-1))


SHARED = REALWORLD.parent
#: every model of ../shared/models (MLPerf Tiny, TFLM examples, the realworld zoo)
SHARED_MODELS = sorted(p.relative_to(SHARED).with_suffix("").as_posix()
                       for p in SHARED.rglob("*.tflite"))


@pytest.mark.slow
@needs_toolchain
@pytest.mark.parametrize("name", SHARED_MODELS or ["(no ../shared)"])
def test_every_shared_model_runs_on_qemu_bit_exact(name: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    """Issue 9's bar: every shared model TFLM runs (LSTM, SVDF, Signal ops, detection,
    float and uint8 ends, BlazeFace's four outputs, arenas up to 1 MiB) builds for the 4 MiB
    QEMU board and runs there bit-exact with the emulator, map arena = planner arena."""
    model = SHARED / f"{name}.tflite"
    if not model.is_file():
        pytest.skip("needs ../shared/models")
    with pytest.raises(SystemExit) as exc:
        main(["firmware", str(model), "--board", "qemu-mps2-an386-4m", "--out",
              str(tmp_path / "fw"), "--run", "--timeout", "900"])
    out = capsys.readouterr().out
    assert exc.value.code == 0, out
    report = json.loads((tmp_path / "fw" / "firmware.json").read_text())
    assert report["bit_exact"] is True
    assert report["map_arena_bytes"] == report["planner_arena_bytes"]
