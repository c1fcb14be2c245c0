"""Firmware: board projects built with arm-none-eabi-gcc, measured from the map, run on QEMU.

The slow tests are the proof the C runtime works on a Cortex-M4: real models are generated,
linked for the emulated mps2-an386 board and run under QEMU, and the output bytes must
equal our emulator's for the same graph and plan; the arena array in the linker map must be
exactly the planner's arena; an arena the board cannot hold must fail to link (exit 1); the
stack the run really used must stay within the call-graph bound the linker script reserves.
The fast tests cover the parts that need no cross toolchain (templates, budgets, bad input,
the stack-bound arithmetic).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tinymcu.boards import BOARDS
from tinymcu.cli import main
from tinymcu.errors import OverBudget, TinymcuError, VerificationError
from tinymcu.firmware_templates.build import build_firmware, read_header, render_project
from tinymcu.firmware_templates.linkmap import elf_sections, read_map
from tinymcu.firmware_templates.pipeline import FirmwareReport, make_firmware
from tinymcu.firmware_templates.qemu import parse_run, run_qemu
from tinymcu.firmware_templates.stack import (
    EXCEPTION_FRAME,
    LIBC_LEAVES,
    pretend_args,
    stack_bound,
)
from tinymcu.firmware_templates.targets import TARGETS, get_target

DATA = Path(__file__).parent / "data"
KWS = DATA / "kws_ref_model.tflite"
VWW = DATA / "vww_96_int8.tflite"
REAL_BOARDS = [b for b in TARGETS if TARGETS[b].qemu_machine is None]

needs_toolchain = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm (installed in CI)")

#: A minimal model implementing the codegen's model.h contract, so the board projects,
#: linker enforcement and the QEMU runner are tested apart from the generated kernels:
#: output[i] = saturate(2 * input[i] + 1), in an arena of any size, with a constant
#: "weights" array of any size in flash. ``{body}`` makes it misbehave on purpose: spin
#: forever, write to an unmapped address (a bus fault) or store a word unaligned (a fault
#: on Cortex-M0).
FIXTURE_H = """#ifndef TINYMCU_MODEL_H
#define TINYMCU_MODEL_H
#include <stdint.h>
#define TINYMCU_ARENA_BYTES {arena}
#define TINYMCU_INPUT_BYTES 40
#define TINYMCU_OUTPUT_BYTES 40
int8_t *tinymcu_input(void);
const int8_t *tinymcu_output(void);
int tinymcu_run(void);
int tinymcu_invoke(const int8_t *input, int8_t *output);
#endif
"""
FIXTURE_C = """#include <string.h>
#include "model.h"
static uint8_t fixture_arena[TINYMCU_ARENA_BYTES] __attribute__((aligned(4)));
static const int8_t fixture_weights[{weights}] = {{0}};
int8_t *tinymcu_input(void) {{ return (int8_t *)fixture_arena; }}
const int8_t *tinymcu_output(void) {{ return (const int8_t *)fixture_arena + 64; }}
int tinymcu_run(void)
{{
  int i;
  volatile int last = {weights} - 1;
  {body}
  if (fixture_weights[last] != 0) {{
    return 1;
  }}
  for (i = 0; i < TINYMCU_OUTPUT_BYTES; i++) {{
    int v = 2 * (int)(int8_t)fixture_arena[i] + 1;
    fixture_arena[64 + i] = (uint8_t)(int8_t)(v > 127 ? 127 : (v < -128 ? -128 : v));
  }}
  return 0;
}}
int tinymcu_invoke(const int8_t *input, int8_t *output)
{{
  memcpy(tinymcu_input(), input, TINYMCU_INPUT_BYTES);
  if (tinymcu_run() != 0) {{
    return 1;
  }}
  memcpy(output, tinymcu_output(), TINYMCU_OUTPUT_BYTES);
  return 0;
}}
"""


MISBEHAVE = {"ok": "", "spin": "for (;;) {\n  }",
             "fault": "*(volatile uint8_t *)0x24000022u = 1u;",
             "unaligned": "*(volatile uint32_t *)(fixture_arena + (uintptr_t)last % 2u + 1u) = 1u;"}


def fixture_model(root: Path, arena: int = 128, body: str = "ok", weights: int = 1) -> Path:
    d = root / f"fixture_{arena}_{body}_{weights}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.h").write_text(FIXTURE_H.format(arena=arena))
    (d / "model.c").write_text(FIXTURE_C.format(body=MISBEHAVE[body], weights=weights))
    return d


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


# ---------------------------------------------------------------- no toolchain needed


@pytest.mark.parametrize("board", list(TARGETS))
def test_linker_script_enforces_the_board_budget(board: str) -> None:
    t = get_target(board)
    files = render_project(t, "m", np.zeros(4, np.int8))
    ld = files["link.ld"]
    ram = re.search(r"RAM\s+\(rwx\)\s*:\s*ORIGIN = (0x[0-9A-F]+), LENGTH = (\d+)", ld)
    flash = re.search(r"FLASH\s+\(rx\)\s*:\s*ORIGIN = (0x[0-9A-F]+), LENGTH = (\d+)", ld)
    assert ram and flash
    assert int(ram.group(2)) == BOARDS[board].sram_bytes
    # the Nano 33 BLE's stock bootloader keeps its first 64 KiB of flash
    reserved = 64 * 1024 if board == "arduino-nano-33-ble" else 0
    assert int(flash.group(2)) == BOARDS[board].flash_bytes - reserved
    assert int(flash.group(1), 16) == t.flash_origin
    assert f"16 + {t.irqs}" in files["startup.c"]
    # every board prints the same report on its console; only QEMU boards exit through
    # semihosting (a BKPT without a debugger would fault a real board)
    assert 'put_line("TINYMCU_END", 0u)' in files["main.c"]
    assert ("bkpt 0xAB" in files["main.c"]) == (t.qemu_machine is not None)


def test_main_template_embeds_the_input_exactly() -> None:
    x = np.arange(-128, 128, dtype=np.int8)
    text = render_project(get_target("qemu-mps2-an386"), "m", x)["main.c"]
    body = text.split("test_input[TINYMCU_INPUT_BYTES] = {")[1].split("};")[0]
    assert [int(v) for v in body.replace("\n", " ").split(",") if v.strip()] == x.tolist()


def test_sram_override_shrinks_ram_and_is_validated() -> None:
    assert get_target("qemu-mps2-an386", 64 * 1024).ram_bytes == 64 * 1024
    with pytest.raises(TinymcuError, match="between"):
        get_target("nucleo-f411re", 256 * 1024)


@pytest.mark.parametrize("board,match", [("no-such-board", "unknown board"),
                                         ("rpi-pico", "is check only")])
def test_bad_board_is_one_line_exit_2(board: str, match: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(["firmware", str(KWS), "--board", board, "--out",
                          str(tmp_path / "fw")], capsys)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "fw").exists()


def test_run_on_a_build_only_board_is_exit_2(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["firmware", str(KWS), "--board", "nucleo-f412zg", "--run", "--out",
                        str(tmp_path / "fw")], capsys)
    assert code == 2 and "build-only" in err


@pytest.mark.parametrize("args,match", [
    (["--input", str(DATA / "kws_sample_input_int8.npy"), str(VWW)], "shape"),
    ([str(DATA / "no-such.tflite")], "no such file"),
])
def test_bad_model_or_input_is_one_line_exit_2(args: list[str], match: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["firmware", *args, "--out", str(tmp_path / "fw")], capsys)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "fw").exists()


def test_missing_toolchain_is_a_clear_error(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    model = fixture_model(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(TinymcuError, match="arm-none-eabi-gcc not found"):
        build_firmware(model, "qemu-mps2-an386", tmp_path / "fw")
    with pytest.raises(TinymcuError, match="qemu-system-arm not found"):
        run_qemu(model / "model.c", timeout=5)
    assert not (tmp_path / "fw").exists()


def test_not_a_codegen_dir_and_wrong_input_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(TinymcuError, match="no model.h"):
        build_firmware(tmp_path, "qemu-mps2-an386", tmp_path / "fw")
    model = fixture_model(tmp_path)
    assert read_header(model).input_bytes == 40
    with pytest.raises(TinymcuError, match="wants 40 B"):
        build_firmware(model, "qemu-mps2-an386", tmp_path / "fw", np.zeros(3, np.int8))
    with pytest.raises(TinymcuError, match=r"40 float32 values \(160 B\)"):
        build_firmware(model, "qemu-mps2-an386", tmp_path / "fw", np.zeros(40, np.float32))


def _ci(tmp_path: Path, frames: dict[str, str], edges: list[tuple[str, str]]) -> Path:
    """A call-graph file as ``gcc -fcallgraph-info=su`` writes it."""
    lines = ['graph: { title: "a.c"']
    lines += [f'node: {{ title: "{f}" label: "{f}\\na.c:1:1\\n{v}" }}' for f, v in frames.items()]
    lines += [f'edge: {{ sourcename: "{a}" targetname: "{b}" label: "a.c:2:3" }}'
              for a, b in edges]
    path = tmp_path / f"g{len(list(tmp_path.glob('*.ci')))}.ci"
    path.write_text("\n".join([*lines, "}"]) + "\n")
    return path


def test_stack_bound_is_the_deepest_path_plus_one_interrupt(tmp_path: Path) -> None:
    frames = {"Reset_Handler": "8 bytes (static)", "main": "88 bytes (static)",
              "a.c:shallow": "16 bytes (static)", "tinymcu_run": "400 bytes (static)",
              "a.c:kernel": "96 bytes (dynamic,bounded)", "SysTick_Handler": "0 bytes (static)"}
    edges = [("Reset_Handler", "main"), ("main", "a.c:shallow"), ("main", "tinymcu_run"),
             ("tinymcu_run", "a.c:kernel"), ("a.c:kernel", "memcpy"), ("a.c:shallow", "memset")]
    deepest = 8 + 88 + 400 + 96 + LIBC_LEAVES["memcpy"]
    assert stack_bound([_ci(tmp_path, frames, edges)]) == deepest + EXCEPTION_FRAME
    # the same graph split over two objects (a declaration has no frame) gives the same bound
    split = [_ci(tmp_path, {k: frames[k] for k in ("Reset_Handler", "main", "a.c:shallow",
                                                  "SysTick_Handler")}, edges[:3] + edges[5:]),
             _ci(tmp_path, {"tinymcu_run": frames["tinymcu_run"],
                            "a.c:kernel": frames["a.c:kernel"]}, edges[3:5])]
    assert stack_bound(split) == deepest + EXCEPTION_FRAME


def test_pretend_arguments_are_charged_to_their_frames(tmp_path: Path) -> None:
    """A function taking a box by value partly in registers spills them below its stacked
    part (``sub sp, #16`` before the push), bytes GCC's frame size leaves out: read from
    the disassembly and added to the frame; a leaf that only makes room for locals is not
    charged twice."""
    dis = """
00000000 <tm_kernel.constprop.0>:
   0:	sub	sp, #16
   2:	stmdb	sp!, {r4, r5, r6, r7, r8, r9, sl, fp, lr}
   6:	sub	sp, #412	@ 0x19c

00000000 <tm_leaf>:
   0:	sub	sp, #8
   2:	movs	r3, #0

00000000 <tinymcu_run>:
   0:	push	{r4, lr}
   2:	sub	sp, #24
"""
    assert pretend_args(dis) == {"tm_kernel.constprop.0": 16}
    frames = {"Reset_Handler": "8 bytes (static)", "main": "8 bytes (static)",
              "a.c:tm_kernel.constprop.0": "448 bytes (static)"}
    edges = [("Reset_Handler", "main"), ("main", "a.c:tm_kernel.constprop.0")]
    ci = _ci(tmp_path, frames, edges)
    assert stack_bound([ci], pretend=pretend_args(dis)) == stack_bound([ci]) + 16 == 8 + 8 + 464


@pytest.mark.parametrize("frames,edges,match", [
    ({"Reset_Handler": "8 bytes (static)", "main": "8 bytes (static)"},
     [("Reset_Handler", "main"), ("main", "main")], "recursion through main"),
    ({"Reset_Handler": "8 bytes (static)", "main": "8 bytes (dynamic)"},
     [("Reset_Handler", "main")], "unbounded dynamic frame"),
    ({"Reset_Handler": "8 bytes (static)"}, [("Reset_Handler", "main")],
     "no call-graph info for main"),
    ({"Reset_Handler": "8 bytes (static)"}, [("Reset_Handler", "__indirect_call")],
     "indirect call"),
])
def test_unprovable_stack_depth_is_refused(frames: dict[str, str],
                                           edges: list[tuple[str, str]], match: str,
                                           tmp_path: Path) -> None:
    with pytest.raises(TinymcuError, match=match):
        stack_bound([_ci(tmp_path, frames, edges)])


def test_truncated_firmware_report_is_rejected() -> None:
    good = ("TINYMCU_STATUS 0\nTINYMCU_TICKS 5\nTINYMCU_STACK 300\nTINYMCU_OUTPUT_BYTES 3\n"
            "ff0180\nTINYMCU_END 0\n")
    assert parse_run(good).output.tolist() == [-1, 1, -128]
    with pytest.raises(TinymcuError, match="TINYMCU_END"):
        parse_run(good.replace("TINYMCU_END 0\n", ""))
    with pytest.raises(TinymcuError, match="2 output bytes"):
        parse_run(good.replace("ff0180", "ff01"))


# ---------------------------------------------------------------- cross toolchain + QEMU


@pytest.mark.slow
@needs_toolchain
def test_fixture_builds_runs_and_map_matches_the_elf(tmp_path: Path) -> None:
    x = np.arange(-20, 20, dtype=np.int8) * 5
    fw = build_firmware(fixture_model(tmp_path, arena=1000), "qemu-mps2-an386",
                        tmp_path / "fw", x)
    assert fw.arena_symbol == "fixture_arena" and fw.arena_symbol_bytes == 1000
    run = parse_run(run_qemu(fw.elf, timeout=30))
    assert run.status == 0
    assert run.output.tolist() == np.clip(2 * x.astype(int) + 1, -128, 127).tolist()
    assert 0 < run.stack_used <= fw.stack_bound <= fw.stack_bytes < fw.stack_bound + 8
    # the map's sections agree with the ELF (arm-none-eabi-size -A reads the ELF)
    size = subprocess.run(["arm-none-eabi-size", "-A", str(fw.elf)], capture_output=True,
                          text=True, check=True).stdout
    sizes = {p[0]: int(p[1]) for p in (ln.split() for ln in size.splitlines()[2:]) if len(p) == 3}
    link = read_map(fw.map_path)
    for s in link.sections:
        if s.name in sizes:
            assert s.size == sizes[s.name], s.name
    assert fw.flash_bytes == sizes[".isr_vector"] + sizes[".text"] + sizes[".rodata"] \
        + sizes.get(".ARM.exidx", 0) + sizes[".data"]
    assert fw.sram_bytes == sizes[".data"] + sizes[".bss"] + sizes[".stack"]
    assert elf_sections(fw.elf)[".isr_vector"].address == 0
    # the comparisons behind `tinymcu firmware --run` (exit 3) can fail
    expected = np.clip(2 * x.astype(int) + 1, -128, 127).astype(np.int8)
    report = FirmwareReport(Path("fixture"), "layer", 1000, fw, x, 0, qemu=run,
                            expected=expected)
    report.verify()
    wrong = expected.copy()
    wrong[7] ^= 1
    with pytest.raises(VerificationError, match="differs from the emulator in 1 of 40"):
        replace(report, expected=wrong).verify()
    with pytest.raises(VerificationError, match="arena sizes disagree"):
        replace(report, planner_arena_bytes=996).verify()
    assert VerificationError.exit_code == 3
    if shutil.which("make") is None:
        return
    # the emitted Makefile rebuilds the same image by hand
    shutil.rmtree(fw.out_dir / "build")
    (fw.elf).unlink()
    subprocess.run(["make", "-s", "-C", str(fw.out_dir)], check=True, capture_output=True)
    assert parse_run(run_qemu(fw.elf, timeout=30)).output.tolist() == run.output.tolist()


@pytest.mark.slow
@needs_toolchain
def test_arena_larger_than_the_ram_fails_to_link(tmp_path: Path) -> None:
    ram = BOARDS["nucleo-f411re"].sram_bytes
    with pytest.raises(OverBudget, match=r"nucleo-f411re: does not fit: SRAM overflowed"):
        build_firmware(fixture_model(tmp_path, arena=ram), "nucleo-f411re", tmp_path / "fw")
    assert not (tmp_path / "fw").exists()
    # the same arena links once the RAM region can hold it and the stack
    fw = build_firmware(fixture_model(tmp_path, arena=ram), "nucleo-f412zg", tmp_path / "fw")
    assert fw.arena_symbol_bytes == ram and fw.sram_bytes > ram


@pytest.mark.slow
@needs_toolchain
def test_weights_larger_than_the_flash_fail_to_link(tmp_path: Path) -> None:
    flash = BOARDS["nucleo-f411re"].flash_bytes
    with pytest.raises(OverBudget, match=r"nucleo-f411re: does not fit: flash overflowed"):
        build_firmware(fixture_model(tmp_path, weights=flash), "nucleo-f411re", tmp_path / "fw")
    fw = build_firmware(fixture_model(tmp_path, weights=flash), "nucleo-f412zg",
                        tmp_path / "fw")
    assert fw.model_rodata_bytes == flash < fw.flash_bytes <= 1024 * 1024


@pytest.mark.slow
@needs_toolchain
def test_a_hung_firmware_is_killed_at_the_timeout(tmp_path: Path) -> None:
    fw = build_firmware(fixture_model(tmp_path, body="spin"), "qemu-mps2-an386",
                        tmp_path / "fw")
    t0 = time.monotonic()
    with pytest.raises(TinymcuError, match="did not finish"):
        run_qemu(fw.elf, timeout=2)
    assert time.monotonic() - t0 < 10


@pytest.mark.slow
@needs_toolchain
def test_faults_are_reported_not_waited_for(tmp_path: Path) -> None:
    fw = build_firmware(fixture_model(tmp_path, body="fault"), "qemu-mps2-an386",
                        tmp_path / "fault")
    with pytest.raises(TinymcuError, match=r"exception 3 \(HardFault\).*BFAR 0x24000022"):
        run_qemu(fw.elf, timeout=20)
    # a stack smaller than the proven bound runs off the bottom of RAM: a reported fault,
    # not a silently corrupted arena
    fw = build_firmware(fixture_model(tmp_path), "qemu-mps2-an386", tmp_path / "small",
                        stack_bytes=64)
    assert fw.stack_bound > 64 and fw.stack_bytes == 64
    with pytest.raises(TinymcuError, match=r"stack overflow \(\d+ B deep\)"):
        run_qemu(fw.elf, timeout=20)


@pytest.mark.slow
@needs_toolchain
def test_kws_on_qemu_is_bit_exact_and_the_map_arena_is_the_planners(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tinymcu.mcu_runtime.check import Budget, check_model

    out = tmp_path / "kws"
    code, text, err = cli(["firmware", str(KWS), "--board", "qemu-mps2-an386", "--out",
                           str(out), "--input", str(DATA / "kws_sample_input_int8.npy"),
                           "--run"], capsys)
    assert code == 0, err
    assert "emulator: bit-exact" in text
    report = json.loads((out / "firmware.json").read_text())
    assert report["bit_exact"] is True
    assert int(np.argmax(report["output"])) == 5  # the sample is "on"
    planner = check_model(KWS, Budget(256 * 1024, 1024 * 1024)).chosen.arena_bytes
    assert report["map_arena_bytes"] == report["planner_arena_bytes"] == planner
    assert planner < report["sram_bytes"] <= 256 * 1024
    # deterministic time under -icount shift=0: the same tick count twice
    again = parse_run(run_qemu(out / "app.elf", timeout=60))
    assert again.ticks == report["systick_ticks"] > 0
    assert 0 < again.stack_used <= report["stack_bound_bytes"] <= report["stack_reserved_bytes"]


@pytest.mark.slow
@needs_toolchain
def test_vww_patch_schedule_on_qemu_fits_where_layer_does_not(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    budget = ["--sram", "54KiB"]
    code, _, err = cli(["firmware", str(VWW), "--out", str(tmp_path / "layer"), *budget],
                       capsys)
    assert code == 1 and "SRAM overflowed" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "layer").exists()
    out = tmp_path / "patch"
    code, text, err = cli(["firmware", str(VWW), "--schedule", "patch", "--out", str(out),
                           "--run", *budget], capsys)
    assert code == 0, err
    report = json.loads((out / "firmware.json").read_text())
    assert report["schedule"] == "patch" and report["bit_exact"] is True
    assert report["map_arena_bytes"] == report["planner_arena_bytes"] < 55_296
    assert report["sram_bytes"] <= 54 * 1024
    assert report["stack_used_bytes"] <= report["stack_bound_bytes"]


@pytest.mark.slow
@needs_toolchain
def test_fused_vww_on_qemu_is_bit_exact_in_less_sram(tmp_path: Path) -> None:
    report = make_firmware(VWW, "qemu-mps2-an386", tmp_path / "fused", fuse=True, run=True)
    report.verify()
    assert report.fused_ops > 0 and report.bit_exact
    assert report.firmware.arena_symbol_bytes == report.planner_arena_bytes < 55_296


@pytest.mark.slow
@needs_toolchain
def test_sparse_filters_on_qemu_are_bit_exact_in_less_flash(tmp_path: Path) -> None:
    """VWW's filters are mostly zeros: stored as mask + non-zero values the image shrinks,
    and the outputs stay those of the emulator."""
    dense = make_firmware(VWW, "qemu-mps2-an386", tmp_path / "dense")
    sparse = make_firmware(VWW, "qemu-mps2-an386", tmp_path / "sparse", sparse=True, run=True)
    sparse.verify()
    assert sparse.bit_exact
    assert sparse.firmware.flash_bytes < dense.firmware.flash_bytes / 2
    assert sparse.codegen_const_bytes < dense.codegen_const_bytes / 2


@pytest.mark.slow
@needs_toolchain
@pytest.mark.parametrize("board,uart", [("nucleo-f412zg", 2), ("nucleo-f411re", 1)])
def test_stm32_projects_boot_on_qemus_stm32f4(board: str, uart: int, tmp_path: Path) -> None:
    """The STM32 projects (vector table and flash at 0x08000000, RAM at 0x20000000) boot
    and run KWS on QEMU's netduinoplus2, an STM32F405 Cortex-M4 with the same flash and
    SRAM origins and the same USARTs: the report arrives over the Nucleo's own console
    (F412ZG: USART3, QEMU's third -serial; F411RE: USART2, the second), register-level
    code included. Only the semihosting exit is added."""
    from tinymcu.mcu_runtime.codegen import codegen_model
    from tinymcu.mcu_runtime.emulator import emulate

    cg = codegen_model(KWS, tmp_path / "kws")
    x = np.load(DATA / "kws_sample_input_int8.npy")
    fw = build_firmware(tmp_path / "kws", board, tmp_path / "fw", x, semihosting=True)
    assert elf_sections(fw.elf)[".isr_vector"].address == 0x0800_0000
    with pytest.raises(TinymcuError, match="incomplete"):  # nothing on the wrong UART
        parse_run(run_qemu(fw.elf, timeout=60, machine="netduinoplus2", serial=0))
    run = parse_run(run_qemu(fw.elf, timeout=60, machine="netduinoplus2", serial=uart),
                    "netduinoplus2")
    assert run.status == 0 and run.instructions is not None
    assert run.output.tolist() == emulate(cg.graph, cg.plan, [x]).outputs[0].ravel().tolist()
    assert run.stack_used <= fw.stack_bound


@pytest.mark.slow
@needs_toolchain
@pytest.mark.parametrize("board", REAL_BOARDS)
def test_real_board_projects_link(board: str, tmp_path: Path) -> None:
    report = make_firmware(KWS, board, tmp_path / board)
    report.verify()
    fw = report.firmware
    t = TARGETS[board]
    vectors = elf_sections(fw.elf)[".isr_vector"]
    assert vectors.address == t.flash_origin and vectors.size == 4 * (16 + t.irqs)
    assert fw.arena_symbol_bytes == report.planner_arena_bytes
    assert fw.sram_bytes <= t.ram_bytes and fw.flash_bytes <= t.flash_bytes
