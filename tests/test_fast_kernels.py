"""The fast kernel layers (conv GEMM, SIMD depthwise, FC GEMM) against the Python reference.

Every case is one CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED op on hypothesis-drawn
shapes: odd widths, channel counts that are not multiples of 4 (the SIMD tails), strides,
dilations, SAME / VALID / explicit padding, depth multipliers, zero points at the extremes
(-128 and 127), planned for speed (im2col and padded-plane scratch) or memory (the direct
loops). The generated C must equal ``emulate()`` (the numpy reference kernels, which TFLM
agrees with: tests/test_exactness.py) on every input:

- the host build runs the portable C99 path (x86 has no ARM DSP extension), also once with
  AddressSanitizer/UBSan, so a scratch buffer smaller than the kernel's reach is caught;
- the Cortex-M4 build under QEMU runs the DSP path (``__smlad`` GEMM, ``__smlabb`` depthwise),
  many inputs per image (slow);
- the Cortex-M0 build (microbit under QEMU) selects the portable path (no DSP
  instructions in the object) and runs it on a core without the extension (slow).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from patch_graphs import _quant
from test_codegen import CC, SANITIZE, build, run_c
from test_fusion import bottleneck_stack

from tinymcu.mcu_runtime.codegen import generate
from tinymcu.mcu_runtime.emulator import emulate
from tinymcu.mcu_runtime.ir import Graph, Op, Tensor
from tinymcu.mcu_runtime.ops.conv import set_optimize
from tinymcu.mcu_runtime.passes import FUSED_KIND, fold_pads, fuse_expand_depthwise
from tinymcu.mcu_runtime.planner import plan
from tinymcu.mcu_runtime.schedule import layer_schedule

#: inputs per drawn case on the host (examples x inputs >= 200 per kernel)
HOST_INPUTS = 12
ZPS = st.one_of(st.sampled_from([-128, 127, 0]), st.integers(-128, 127))


@dataclass(frozen=True)
class Case:
    """One op's geometry and quantization."""

    kind: str
    h: int
    w: int
    cin: int
    cout: int
    kh: int
    kw: int
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: str
    pads: tuple[int, int, int, int]
    in_zp: int
    out_zp: int
    activation: str
    optimize: str
    seed: int


def _out(size: int, k: int, s: int, d: int, padding: str, before: int, after: int) -> int:
    eff = (k - 1) * d + 1
    if padding == "SAME":
        return (size + s - 1) // s
    if padding == "EXPLICIT":
        return (size + before + after - eff) // s + 1
    return (size - eff) // s + 1


def graph_of(c: Case) -> Graph:
    """The single-op graph of a case (per-channel weight scales, random int8 weights)."""
    rng = np.random.default_rng(c.seed)
    in_scale = float(rng.uniform(0.01, 0.1))
    # a third of the cases get a tiny output scale: multipliers >= 0.5 (left shifts, the
    # long requantization) instead of the usual right shifts (the short one)
    out_scale = 2e-4 if rng.random() < 0.33 else float(rng.uniform(0.05, 0.5))
    x = Tensor(0, "x", (1, c.h, c.w, c.cin), "int8", _quant(in_scale, c.in_zp))
    if c.kind == "FULLY_CONNECTED":
        wscale = np.float32(rng.uniform(0.002, 0.02))
        wdata = rng.integers(-127, 128, (c.cout, c.cin), dtype=np.int8)
        wt = Tensor(1, "w", wdata.shape, "int8", _quant(wscale, 0), wdata)
        bias = rng.integers(-3000, 3000, c.cout).astype(np.int32)
        bt = Tensor(2, "b", bias.shape, "int32", _quant(wscale * in_scale, 0), bias)
        x = Tensor(0, "x", (c.h, c.cin), "int8", _quant(in_scale, c.in_zp))
        y = Tensor(3, "y", (c.h, c.cout), "int8", _quant(out_scale, c.out_zp))
        op = Op(0, "FULLY_CONNECTED", (0, 1, 2), (3,), {"activation": c.activation,
                                                          "keep_num_dims": False})
        return Graph([x, wt, bt, y], [op], [0], [3], name="fc")
    dw = c.kind == "DEPTHWISE_CONV_2D"
    wscale = rng.uniform(0.002, 0.02, c.cout).astype(np.float32)
    if dw:
        wdata = rng.integers(-127, 128, (1, c.kh, c.kw, c.cout), dtype=np.int8)
        wq = _quant(wscale, np.zeros(c.cout, np.int64), 3)
    else:
        wdata = rng.integers(-127, 128, (c.cout, c.kh, c.kw, c.cin), dtype=np.int8)
        wq = _quant(wscale, np.zeros(c.cout, np.int64), 0)
    wt = Tensor(1, "w", wdata.shape, "int8", wq, wdata)
    bias = rng.integers(-3000, 3000, c.cout).astype(np.int32)
    bt = Tensor(2, "b", bias.shape, "int32",
                _quant(wscale * in_scale, np.zeros(c.cout, np.int64)), bias)
    top, bottom, left, right = c.pads
    oh = _out(c.h, c.kh, c.stride[0], c.dilation[0], c.padding, top, bottom)
    ow = _out(c.w, c.kw, c.stride[1], c.dilation[1], c.padding, left, right)
    y = Tensor(3, "y", (1, oh, ow, c.cout), "int8", _quant(out_scale, c.out_zp))
    attrs: dict[str, object] = {"stride": c.stride, "dilation": c.dilation,
                                "padding": c.padding, "activation": c.activation}
    if c.padding == "EXPLICIT":
        attrs["pads"] = c.pads
    if dw:
        attrs["depth_multiplier"] = c.cout // c.cin
    op = Op(0, c.kind, (0, 1, 2), (3,), attrs)
    return set_optimize(Graph([x, wt, bt, y], [op], [0], [3], name=c.kind.lower()), c.optimize)


@st.composite
def cases(draw: st.DrawFn, kind: str) -> Case:
    opt = draw(st.sampled_from(["speed", "speed", "memory"]))
    act = draw(st.sampled_from(["NONE", "RELU", "RELU6"]))
    zps = (draw(ZPS), draw(ZPS))
    seed = draw(st.integers(0, 10_000))
    if kind == "FULLY_CONNECTED":
        return Case(kind, draw(st.integers(1, 3)), 1, draw(st.integers(1, 70)),
                    draw(st.integers(1, 13)), 1, 1, (1, 1), (1, 1), "VALID", (0, 0, 0, 0),
                    *zps, act, opt, seed)
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if draw(st.booleans()):
        kh = kw = draw(st.sampled_from([1, 3, 3, 5]))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (1, 1) if draw(st.integers(0, 4)) else (2, 2)
    padding = draw(st.sampled_from(["SAME", "VALID", "EXPLICIT"]))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4)) if padding == "EXPLICIT" \
        else (0, 0, 0, 0)
    h = draw(st.integers((kh - 1) * dilation[0] + 1, 11))
    w = draw(st.integers((kw - 1) * dilation[1] + 1, 11))
    cin = draw(st.integers(1, 11))
    if kind == "DEPTHWISE_CONV_2D":
        cout = cin * draw(st.sampled_from([1, 1, 1, 2, 4, 8]))
    else:
        cout = draw(st.integers(1, 11))
    return Case(kind, h, w, cin, cout, kh, kw, stride, dilation, padding,
                pads, *zps, act, opt, seed)


def _inputs(c: Case, n: int) -> list[np.ndarray]:
    shape = (c.h, c.cin) if c.kind == "FULLY_CONNECTED" else (1, c.h, c.w, c.cin)
    rng = np.random.default_rng(c.seed + 1)
    xs = [rng.integers(-128, 128, shape).astype(np.int8) for _ in range(n - 2)]
    return xs + [np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)]


def _expected(graph: Graph, p, xs: list[np.ndarray]) -> list[np.ndarray]:
    return [emulate(graph, p, [x], seed=k).outputs[0] for k, x in enumerate(xs)]


def _host(c: Case, out: Path, extra: tuple[str, ...] = ()) -> None:
    graph = graph_of(c)
    p = plan(graph, layer_schedule(graph))
    xs = _inputs(c, HOST_INPUTS)
    generate(graph, p, out)
    got = run_c(build(out, extra), xs, graph.tensors[graph.outputs[0]].shape)
    for k, (y, want) in enumerate(zip(got, _expected(graph, p, xs), strict=True)):
        np.testing.assert_array_equal(y, want, err_msg=f"{c} input {k}")


pytestmark = pytest.mark.skipif(CC is None, reason="needs a host C compiler")
HOST = settings(max_examples=20, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@HOST
@given(c=cases("CONV_2D"))
def test_conv_portable_path_equals_reference(c: Case, tmp_path: Path) -> None:
    _host(c, tmp_path / "m")


@HOST
@given(c=cases("DEPTHWISE_CONV_2D"))
def test_depthwise_portable_path_equals_reference(c: Case, tmp_path: Path) -> None:
    _host(c, tmp_path / "m")


@HOST
@given(c=cases("FULLY_CONNECTED"))
def test_fully_connected_portable_path_equals_reference(c: Case, tmp_path: Path) -> None:
    _host(c, tmp_path / "m")


@pytest.mark.slow
@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(c=st.one_of(cases("CONV_2D"), cases("DEPTHWISE_CONV_2D")))
def test_kernels_under_sanitizers(c: Case, tmp_path: Path) -> None:
    """ASan/UBSan: no access past a planned scratch buffer or the arena, no UB."""
    _host(c, tmp_path / "m", tuple(SANITIZE))


# -- ARM builds under QEMU --------------------------------------------------------------------

QEMU_INPUTS = 40


def _qemu(c: Case, board: str, out: Path) -> None:
    graph = graph_of(c)
    _qemu_graph(graph, _inputs(c, QEMU_INPUTS), board, out, str(c))


def _qemu_graph(graph: Graph, xs: list[np.ndarray], board: str, out: Path, what: str) -> None:
    """The graph's layer schedule built for `board` and run under QEMU on every input."""
    from tinymcu.firmware_templates.build import build_firmware
    from tinymcu.firmware_templates.qemu import run_qemu
    from tinymcu.firmware_templates.targets import get_target
    from tinymcu.firmware_templates.validate import parse_batch

    p = plan(graph, layer_schedule(graph))
    generate(graph, p, out / "model")
    rows = np.stack([x.reshape(-1) for x in xs])
    fw = build_firmware(out / "model", board, out / "fw", batch=rows)
    target = get_target(board)
    assert target.qemu_machine is not None
    text = run_qemu(fw.elf, machine=target.qemu_machine, serial=target.qemu_serial)
    size = int(np.prod(graph.tensors[graph.outputs[0]].shape))
    ys, _, _ = parse_batch(text, len(xs), size)
    for k, (y, want) in enumerate(zip(ys, _expected(graph, p, xs), strict=True)):
        np.testing.assert_array_equal(y, want.reshape(-1), err_msg=f"{what} input {k}")


needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None
                               or shutil.which("qemu-system-arm") is None,
                               reason="needs arm-none-eabi-gcc and qemu-system-arm")
QEMU = settings(max_examples=6, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.slow
@needs_arm
@QEMU
@given(c=st.one_of(cases("CONV_2D"), cases("DEPTHWISE_CONV_2D"), cases("FULLY_CONNECTED")))
def test_dsp_path_on_cortex_m4_equals_reference(c: Case, tmp_path: Path) -> None:
    _qemu(c, "qemu-mps2-an386", tmp_path)


@pytest.mark.slow
@needs_arm
@settings(max_examples=3, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(c=st.one_of(cases("CONV_2D"), cases("DEPTHWISE_CONV_2D"), cases("FULLY_CONNECTED")))
def test_portable_path_on_cortex_m0_equals_reference(c: Case, tmp_path: Path) -> None:
    _qemu(c, "qemu-microbit", tmp_path)


@needs_arm
def test_dsp_path_is_chosen_at_compile_time(tmp_path: Path) -> None:
    """The same generated model compiles to SIMD MACs for a Cortex-M4 and to none for a
    Cortex-M0 (the portable loops), and TM_DSP says which."""
    c = Case("CONV_2D", 7, 9, 6, 5, 3, 3, (1, 1), (1, 1), "SAME", (0, 0, 0, 0), -128, 5,
             "RELU", "speed", 3)
    graph = graph_of(c)
    generate(graph, plan(graph, layer_schedule(graph)), tmp_path)
    for cpu, dsp, opt in (("cortex-m4", True, "-Os"), ("cortex-m0", False, "-Os"),
                          ("cortex-m7", True, "-O2"), ("cortex-m4", True, "-O0")):
        # -O0 keeps the frame pointer: the DSP path then runs as C intrinsics, not assembly
        obj = tmp_path / f"{cpu}{opt}.o"
        cmd = ["arm-none-eabi-gcc", f"-mcpu={cpu}", "-mthumb", opt, "-std=c99", "-Wall",
               "-Wextra", "-Werror", "-I", str(tmp_path), "-c", str(tmp_path / "model.c"),
               "-o", str(obj)]
        subprocess.run(cmd, check=True)
        macro = subprocess.run(["arm-none-eabi-gcc", f"-mcpu={cpu}", "-mthumb", "-dM", "-E",
                                "-include", str(tmp_path / "tm_common.h"), "-x", "c",
                                "/dev/null"], capture_output=True, text=True, check=True).stdout
        assert f"#define TM_DSP {int(dsp)}" in macro, cpu
        asm = subprocess.run(["arm-none-eabi-objdump", "-d", str(obj)], capture_output=True,
                             text=True, check=True).stdout
        assert ("smlad" in asm) is dsp, cpu


# -- the specialised fast paths (fast_rq ops): each case is chosen to take one of them -------

#: (case, what it exercises). Depthwise VALID windows never leave the box, so multiplier 1
#: with the whole int8 clamp (activation NONE) runs tm_dw_group4_inside: the unrolled 9-tap
#: body for 3x3 (strides 1 and 2), the tap loop for 5x5; a channel count that is not a
#: multiple of 4 adds the per-channel tail. Convs and FC run tm_gemm2_fast with the SSAT clamp
#: (NONE) and the [lo, hi] clamp (RELU6), odd row counts (the plain last row) and odd pixel
#: counts (the single-column tail).
FAST_CASES = [
    (Case("DEPTHWISE_CONV_2D", 9, 7, 8, 8, 3, 3, (1, 1), (1, 1), "VALID", (0, 0, 0, 0),
          -128, 127, "NONE", "speed", 0), "dw 3x3 s1 inside"),
    (Case("DEPTHWISE_CONV_2D", 9, 9, 10, 10, 3, 3, (2, 2), (1, 1), "VALID", (0, 0, 0, 0),
          127, -128, "NONE", "speed", 0), "dw 3x3 s2 inside + tail"),
    (Case("DEPTHWISE_CONV_2D", 8, 7, 4, 4, 5, 5, (1, 2), (1, 1), "VALID", (0, 0, 0, 0),
          3, -7, "NONE", "speed", 0), "dw 5x5 tap loop inside"),
    (Case("DEPTHWISE_CONV_2D", 7, 7, 8, 8, 3, 3, (1, 1), (1, 1), "SAME", (0, 0, 0, 0),
          -128, -128, "NONE", "speed", 0), "dw 3x3 SAME (padded plane)"),
    (Case("CONV_2D", 5, 3, 9, 7, 1, 1, (1, 1), (1, 1), "VALID", (0, 0, 0, 0),
          -128, 127, "NONE", "speed", 0), "1x1 GEMM, ssat clamp, odd rows and pixels"),
    (Case("CONV_2D", 5, 5, 6, 5, 3, 3, (2, 1), (1, 1), "SAME", (0, 0, 0, 0),
          127, -128, "RELU6", "speed", 0), "im2col GEMM, [lo, hi] clamp"),
    (Case("FULLY_CONNECTED", 1, 1, 37, 11, 1, 1, (1, 1), (1, 1), "VALID", (0, 0, 0, 0),
          -128, 0, "NONE", "speed", 0), "FC one row: 4-row, 2-row and last-row steps"),
    (Case("FULLY_CONNECTED", 2, 1, 20, 6, 1, 1, (1, 1), (1, 1), "VALID", (0, 0, 0, 0),
          5, 2, "RELU", "speed", 0), "FC two rows, [lo, hi] clamp"),
]


def _fast_case(c: Case, tmp: Path) -> Case:
    """The case with the first seed whose op the generator proves bounded (`fast_rq = 1`):
    the specialised paths only run for such ops, so the test must not drift off them."""
    for seed in range(50):
        cand = Case(**{**c.__dict__, "seed": seed})
        graph = graph_of(cand)
        generate(graph, plan(graph, layer_schedule(graph)), tmp / f"probe{seed}")
        if ".fast_rq = 1" in (tmp / f"probe{seed}" / "model.c").read_text():
            return cand
    raise AssertionError(f"no seed gives a fast_rq op for {c}")


@pytest.mark.parametrize(("c", "what"), FAST_CASES, ids=[w for _, w in FAST_CASES])
def test_fast_paths_portable_equal_reference(c: Case, what: str, tmp_path: Path) -> None:
    _host(_fast_case(c, tmp_path), tmp_path / "m")


@pytest.mark.slow
@needs_arm
@pytest.mark.parametrize(("c", "what"), FAST_CASES, ids=[w for _, w in FAST_CASES])
def test_fast_paths_on_cortex_m4_equal_reference(c: Case, what: str, tmp_path: Path) -> None:
    _qemu(_fast_case(c, tmp_path), "qemu-mps2-an386", tmp_path)


# -- the fused expand + depthwise (EXPAND_DEPTHWISE) kernel: pixel pairs, one-channel planes ---


def _fused_bottlenecks(seed: int) -> Graph:
    """Random inverted bottlenecks (odd sizes, channel counts that are not multiples of 4,
    stride 2, 3x3 and 5x5 SAME/VALID) with every fusable pair fused."""
    g = fuse_expand_depthwise(fold_pads(bottleneck_stack(np.random.default_rng(seed))))
    assume(any(op.kind == FUSED_KIND for op in g.ops))
    return g


def _graph_inputs(graph: Graph, seed: int, n: int) -> list[np.ndarray]:
    shape = graph.tensors[graph.inputs[0]].shape
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, shape).astype(np.int8) for _ in range(n)]


@HOST
@given(seed=st.integers(0, 2**32 - 1))
def test_fused_expand_depthwise_portable_equals_reference(seed: int, tmp_path: Path) -> None:
    graph = _fused_bottlenecks(seed)
    p = plan(graph, layer_schedule(graph))
    xs = _graph_inputs(graph, seed, 6)
    generate(graph, p, tmp_path / "m")
    got = run_c(build(tmp_path / "m"), xs, graph.tensors[graph.outputs[0]].shape)
    for k, (y, want) in enumerate(zip(got, _expected(graph, p, xs), strict=True)):
        np.testing.assert_array_equal(y, want, err_msg=f"seed {seed} input {k}")


@pytest.mark.slow
@needs_arm
@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_fused_expand_depthwise_on_cortex_m4_equals_reference(seed: int,
                                                              tmp_path: Path) -> None:
    graph = _fused_bottlenecks(seed)
    _qemu_graph(graph, _graph_inputs(graph, seed, 8), "qemu-mps2-an386", tmp_path,
                f"seed {seed}")
