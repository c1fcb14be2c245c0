"""Streamed input for patch schedules: the image is read tile by tile, never resident.

``patch.streamed_schedule`` gives every step that reads the graph input its own tile
buffer, alive for that step only; the planner places those tiles like any buffer, the
emulator fills them from the caller's image right before their step (after the junk fill),
and the generated ``tinymcu_run_streamed(read, ctx)`` asks the caller's read function for
the rows of each tile. The proofs: the emulator and the host-compiled C equal op-by-op
execution (and TFLM) on many inputs; the C asks for exactly the planned rows; the
firmware's map arena equals the planner's streamed arena on QEMU, bit-exact, for VWW and
a MobileNetV2 patch schedule.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from patch_graphs import mobilenet_like

from tinymcu import cli
from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import oracle, patch
from tinymcu.mcu_runtime.codegen import codegen_model, generate
from tinymcu.mcu_runtime.emulator import emulate
from tinymcu.mcu_runtime.pipeline import load_graph, streamed_plan
from tinymcu.mcu_runtime.planner import buffer_lifetimes, plan
from tinymcu.mcu_runtime.schedule import Schedule, layer_schedule

DATA = Path(__file__).parent / "data"
VWW = DATA / "vww_96_int8.tflite"
CC = shutil.which("gcc") or shutil.which("cc")
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]
needs_qemu = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm")


def _streamed(graph, split: str | None = None, grid: int = 3):
    """A patch schedule of ``graph`` (searched without the input, or at the ``first`` /
    ``last`` legal split with a ``grid``² tiling), streamed and planned."""
    if split is None:
        sched = patch.search(graph, objective="peak", count_input=False).schedule
    else:
        splits = patch.split_candidates(graph)
        sched = patch.patch_schedule(graph, splits[0 if split == "first" else -1], grid)
    return sched, plan(graph, patch.streamed_schedule(graph, sched))


def test_streamed_schedule_tiles_live_one_step_and_replace_the_input() -> None:
    g = mobilenet_like(size=23, seed=1)
    sched, p = _streamed(g)
    s = p.schedule
    inp = g.inputs[0]
    assert not any(b.tensor == inp and not b.stream for b in s.buffers.values())
    streams = {n: b for n, b in s.buffers.items() if b.stream}
    readers = [i for i, st in enumerate(s.steps) if inp in st.io]
    assert readers and len(streams) == len(readers)
    life = buffer_lifetimes(g, s)
    for i in readers:
        name = s.steps[i].io[inp]
        buf = s.buffers[name]
        assert life[name] == (i, i)  # filled right before its step, dead after it
        r = s.steps[i].in_region
        assert buf.region == r and buf.nbytes == r.h * r.w * g.tensors[inp].shape[3]
    # JSON keeps the flag; the full-input plan is larger by (at least) the tiles' savings
    assert Schedule.from_json(s.to_json()).to_json() == s.to_json()
    assert p.arena_bytes == patch.arena_bytes(g, sched, count_input=False)
    assert p.arena_bytes < plan(g, sched).arena_bytes


@pytest.mark.parametrize("seed", range(4))
def test_emulated_streamed_plans_equal_op_by_op(seed: int) -> None:
    g = mobilenet_like(size=19 + 2 * seed, seed=seed)
    _, p = _streamed(g)
    ref = plan(g, layer_schedule(g))
    rng = np.random.default_rng(seed)
    for k in range(5):
        x = rng.integers(-128, 128, g.tensors[g.inputs[0]].shape).astype(np.int8)
        np.testing.assert_array_equal(emulate(g, p, [x], seed=k).outputs[0],
                                      emulate(g, ref, [x]).outputs[0])


HARNESS = r"""
#include <stdio.h>
#include <string.h>
#include "model.h"

static long rows;
static long fail_after = -1;

/* The provider: rows of the image in ctx; a request outside the image is a bug. */
static int read_rows(void *ctx, int row, int x0, int x1, int8_t *dst) {
    const int8_t *image = (const int8_t *)ctx;
    if (row < 0 || row >= TINYMCU_INPUT_HEIGHT || x0 < 0 || x1 > TINYMCU_INPUT_WIDTH ||
        x0 >= x1) {
        return 7;
    }
    memcpy(dst, image + ((long)row * TINYMCU_INPUT_WIDTH + x0) * TINYMCU_INPUT_CHANNELS,
           (size_t)(x1 - x0) * TINYMCU_INPUT_CHANNELS);
    rows++;
    return fail_after >= 0 && rows > fail_after;
}

int main(int argc, char **argv) {
    static int8_t image[TINYMCU_INPUT_BYTES];
    uint32_t state = 0x2545F491u;
    uint8_t *arena = tinymcu_arena();
    FILE *fi, *fo;
    long i, runs = 0;
    if (argc != 3) {
        return 2;
    }
    for (i = 0; i < TINYMCU_ARENA_BYTES; ++i) {
        state = state * 1664525u + 1013904223u;
        arena[i] = (uint8_t)(state >> 24);
    }
    fi = fopen(argv[1], "rb");
    fo = fopen(argv[2], "wb");
    if (!fi || !fo) {
        return 2;
    }
    while (fread(image, 1, TINYMCU_INPUT_BYTES, fi) == TINYMCU_INPUT_BYTES) {
        if (tinymcu_run_streamed(read_rows, image) != 0) {
            return 3;
        }
        fwrite(tinymcu_output(), 1, TINYMCU_OUTPUT_BYTES, fo);
        runs++;
    }
    printf("ROWS %ld\n", rows / (runs ? runs : 1));
    fail_after = rows + 2;  /* the provider fails on its third row: the run must stop */
    printf("ABORT %d\n", tinymcu_run_streamed(read_rows, image));
    printf("READ_AFTER_FAIL %ld\n", rows - fail_after);
    fclose(fi);
    fclose(fo);
    return 0;
}
"""


def _build(src: Path) -> Path:
    (src / "main.c").write_text(HARNESS)
    exe = src / "streamed.bin"
    subprocess.run([CC, *CFLAGS, "-I", str(src), str(src / "model.c"), str(src / "main.c"),
                    "-o", str(exe)], check=True)
    return exe


@pytest.mark.skipif(CC is None, reason="needs a host C compiler")
@pytest.mark.parametrize("seed,split,grid", [(0, None, 0), (1, None, 0), (2, "first", 4),
                                             (3, "last", 2)])
def test_c_streamed_run_equals_op_by_op_and_asks_the_planned_rows(
        seed: int, split: str | None, grid: int, tmp_path: Path) -> None:
    """The streamed C (junk-filled arena, inputs back to back) equals op-by-op execution."""
    g = mobilenet_like(size=23, seed=seed)
    _, p = _streamed(g, split, grid)
    ref = plan(g, layer_schedule(g))
    files = generate(g, p, tmp_path)
    header = files[0].read_text()
    assert "tinymcu_run_streamed(tinymcu_read_fn read, void *ctx);" in header
    assert "tinymcu_input(void)" not in header  # nothing to write: no resident input
    exe = _build(tmp_path)
    rng = np.random.default_rng(seed)
    xs = [rng.integers(-128, 128, g.tensors[g.inputs[0]].shape).astype(np.int8)
          for _ in range(40)]
    (tmp_path / "in.bin").write_bytes(b"".join(x.tobytes() for x in xs))
    out = subprocess.run([str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    ys = np.frombuffer((tmp_path / "out.bin").read_bytes(), np.int8).reshape(len(xs), -1)
    for k, x in enumerate(xs):
        np.testing.assert_array_equal(ys[k], emulate(g, ref, [x], junk=False).outputs[0].ravel())
    planned_rows = sum(b.region.h for b in p.schedule.buffers.values() if b.stream)
    assert f"ROWS {planned_rows}\n" in out
    assert "ABORT 1\n" in out and "READ_AFTER_FAIL 1\n" in out  # no row after the failing one


def test_stream_auto_streams_op_by_op_when_it_fits_else_patch() -> None:
    """``--stream --schedule auto``: the fewest MACs that fit, as without ``--stream``."""
    _, g = load_graph(VWW)
    layer = streamed_plan(g, "layer")
    patched = streamed_plan(g, "patch")
    assert patched.arena_bytes < layer.arena_bytes
    roomy = streamed_plan(g, "auto", layer.arena_bytes)
    assert roomy.schedule.kind == "layer" and roomy.arena_bytes == layer.arena_bytes
    tight = streamed_plan(g, "auto", layer.arena_bytes - 1)
    assert tight.schedule.kind == "patch" and tight.arena_bytes == patched.arena_bytes
    assert any(b.stream for b in tight.schedule.buffers.values())


def test_stream_bad_requests_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # a 2-D input cannot be read row by row as an image
    with pytest.raises(TinymcuError, match="streamed input needs a batch-1 NHWC"):
        codegen_model(DATA / "ad01_int8.tflite", tmp_path / "b", stream=True)


def _firmware(model: Path, out: Path, *extra: str) -> dict:
    with pytest.raises(SystemExit) as exc:
        cli.main(["firmware", str(model), "--schedule", "patch", "--stream", "--out", str(out),
                  "--run", "--timeout", "900", *extra])
    assert exc.value.code == 0
    return json.loads((out / "firmware.json").read_text())


@pytest.mark.slow
@needs_qemu
@pytest.mark.parametrize("fuse", [False, True])
def test_vww_streamed_on_qemu(fuse: bool, tmp_path: Path) -> None:
    """VWW (MobileNetV1-0.25@96): the map arena is the planner's streamed arena, the output
    is the emulator's and TFLM's."""
    extra = ("--fuse",) if fuse else ()
    report = _firmware(VWW, tmp_path / "fw", *extra)
    _, g = load_graph(VWW, fuse=fuse)
    p = streamed_plan(g, "patch")
    assert report["streamed_input"] is True and report["bit_exact"] is True
    assert report["map_arena_bytes"] == report["planner_arena_bytes"] == p.arena_bytes
    resident = plan(g, patch.search(g, objective="peak", max_overhead=0.15).schedule)
    assert p.arena_bytes < resident.arena_bytes  # the image is not in SRAM any more
    x = np.load(tmp_path / "fw" / "input.npy").reshape(g.tensors[g.inputs[0]].shape)
    tflm = oracle.tflm_invoke(VWW, [x])[0].ravel()
    np.testing.assert_array_equal(np.array(report["output"], np.int8), tflm)


@pytest.mark.slow
@needs_qemu
def test_mobilenetv2_streamed_on_qemu(tmp_path: Path) -> None:
    """MobileNetV2-0.35@144 (the zoo's PyTorch model through `tinymcu export`), fused patch
    schedule: the 40.5 kB "image streamed" figure is the firmware's arena, in 64 KiB of RAM."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks" / "patch"))
    from patch_models import torch_mobilenetv2_tflite

    model = torch_mobilenetv2_tflite(144)
    report = _firmware(model, tmp_path / "fw", "--fuse", "--board", "qemu-mps2-an386-4m",
                       "--sram", "64KiB")
    assert report["bit_exact"] is True
    assert report["map_arena_bytes"] == report["planner_arena_bytes"] == 41_472
    assert report["sram_bytes"] <= 64 * 1024
    out = np.array(report["output"], np.int8)
    assert np.unique(out).size > 10  # a real output, not a saturated constant
    _, g = load_graph(model)
    x = np.load(tmp_path / "fw" / "input.npy").reshape(g.tensors[g.inputs[0]].shape)
    np.testing.assert_array_equal(out, emulate(g, plan(g, layer_schedule(g)), [x]).outputs[0]
                                  .ravel())
