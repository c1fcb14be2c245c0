"""Several models in one firmware (`tinymcu codegen --prefix NAME`) and the float helpers.

Two different shared models (KWS: DS-CNN, IC: ResNet-8 with residual ADDs) are generated
with different prefixes and linked into one host executable and into one Cortex-M4 image
for QEMU's mps2-an386: each must stay bit-exact with the emulator while the other runs
between its inferences (each has its own arena; a shared or clobbered symbol would show).
Every global symbol the objects define carries its model's prefix, and every macro too.
``NAME_quantize_input`` / ``NAME_dequantize_output`` are checked against TFLM running
a QUANTIZE / DEQUANTIZE model with the same parameters, on values around every rounding
tie and the clamp edges.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tflite_build import Node, Tensor, write

from tinymcu import cli
from tinymcu.errors import TinymcuError
from tinymcu.firmware_templates.build import (
    _ENV,
    LDFLAGS,
    compile_flags,
    read_header,
    render_project,
)
from tinymcu.firmware_templates.build import (
    CC as ARM_CC,
)
from tinymcu.firmware_templates.qemu import parse_run, run_qemu
from tinymcu.firmware_templates.targets import get_target
from tinymcu.mcu_runtime import oracle
from tinymcu.mcu_runtime.codegen import CodegenResult, codegen_model
from tinymcu.mcu_runtime.emulator import emulate

DATA = Path(__file__).parent / "data"
MODELS = {"kws": DATA / "kws_ref_model.tflite", "ic": DATA / "pretrainedResnet_quant.tflite"}
CC = shutil.which("gcc") or shutil.which("cc")
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]

pytestmark = pytest.mark.skipif(CC is None, reason="needs a host C compiler")

#: both models junk-filled, then inference k of kws, inference k of ic, ... alternately
HOST_MAIN = r"""
#include <stdio.h>
#include "kws.h"
#include "ic.h"

static void junk(uint8_t *p, long n, uint32_t state) {
    long i;
    for (i = 0; i < n; ++i) {
        state = state * 1664525u + 1013904223u;
        p[i] = (uint8_t)(state >> 24);
    }
}

int main(int argc, char **argv) {
    static int8_t kin[KWS_INPUT_BYTES], kout[KWS_OUTPUT_BYTES];
    static int8_t iin[IC_INPUT_BYTES], iout[IC_OUTPUT_BYTES];
    FILE *fk, *fi, *fo;
    if (argc != 4) {
        return 2;
    }
    junk(kws_arena(), KWS_ARENA_BYTES, 0x2545F491u);
    junk(ic_arena(), IC_ARENA_BYTES, 0x9E3779B9u);
    fk = fopen(argv[1], "rb");
    fi = fopen(argv[2], "rb");
    fo = fopen(argv[3], "wb");
    if (!fk || !fi || !fo) {
        return 2;
    }
    while (fread(kin, 1, KWS_INPUT_BYTES, fk) == KWS_INPUT_BYTES &&
           fread(iin, 1, IC_INPUT_BYTES, fi) == IC_INPUT_BYTES) {
        if (kws_invoke(kin, kout) != 0 || ic_invoke(iin, iout) != 0) {
            return 3;
        }
        fwrite(kout, 1, KWS_OUTPUT_BYTES, fo);
        fwrite(iout, 1, IC_OUTPUT_BYTES, fo);
    }
    fclose(fk);
    fclose(fi);
    fclose(fo);
    return 0;
}
"""

#: the firmware report of main.c.j2, for two models: both outputs as one byte string
QEMU_MAIN = r"""#include <stdint.h>
#include <string.h>

#include "kws.h"
#include "ic.h"

#define TWO_OUTPUT_BYTES (KWS_OUTPUT_BYTES + IC_OUTPUT_BYTES)

static const int8_t kws_in[KWS_INPUT_BYTES] = { {{ kws_rows }} };
static const int8_t ic_in[IC_INPUT_BYTES] = { {{ ic_rows }} };
static int8_t both[TWO_OUTPUT_BYTES];

{% include "report.c.j2" %}

int main(void)
{
  uint32_t start;
  uint32_t ticks;
  int status;

  console_init();
  paint_stack();
  systick_start();
  start = ticks_now();
  status = kws_invoke(kws_in, both);
  status |= ic_invoke(ic_in, both + KWS_OUTPUT_BYTES) << 1;
  ticks = ticks_now() - start;
  SYST_CSR = 0u;
  put_line("TINYMCU_STATUS", (uint32_t)status);
  put_line("TINYMCU_TICKS", ticks);
  put_line("TINYMCU_STACK", stack_used());
  put_line("TINYMCU_OUTPUT_BYTES", TWO_OUTPUT_BYTES);
  put_output(both);
  put_line("TINYMCU_END", 0u);
  finish(0u);
  return 0;
}
"""


def _generate(tmp_path: Path) -> dict[str, CodegenResult]:
    return {name: codegen_model(path, tmp_path / name, prefix=name)
            for name, path in MODELS.items()}


def _inputs(result: CodegenResult, n: int, seed: int) -> list[np.ndarray]:
    t = result.graph.tensors[result.graph.inputs[0]]
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, t.shape).astype(np.int8) for _ in range(n)]


def _expected(result: CodegenResult, x: np.ndarray, seed: int = 0) -> np.ndarray:
    return emulate(result.graph, result.plan, [x], seed=seed).outputs[0].reshape(-1)


def test_prefixed_files_symbols_and_macros(tmp_path: Path) -> None:
    gen = _generate(tmp_path)
    for name in MODELS:
        d = tmp_path / name
        assert (d / f"{name}.h").is_file() and (d / f"{name}.c").is_file()
        assert not (d / "model.h").exists()
        header = read_header(d)
        assert (header.prefix, header.stem) == (name, name)
        assert header.arena_bytes == gen[name].arena_bytes
        text = (d / f"{name}.h").read_text()
        macros = re.findall(r"^#define\s+(\w+)", text, re.MULTILINE)
        assert macros and all(m.startswith(f"{name.upper()}_") or m.startswith("TINYMCU_")
                              for m in macros), macros
        assert "tinymcu_" not in re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
        obj = tmp_path / f"{name}.o"
        subprocess.run([CC, *CFLAGS, "-c", "-I", str(d), str(d / f"{name}.c"), "-o", str(obj)],
                       check=True)
        nm = subprocess.run(["nm", "-g", "--defined-only", str(obj)], capture_output=True,
                            text=True, check=True).stdout.split("\n")
        exported = sorted(line.split()[-1] for line in nm if line.strip())
        assert exported == sorted(f"{name}_{f}" for f in (
            "input", "input_at", "output", "output_at", "run", "invoke", "arena",
            "quantize_input", "dequantize_output")), exported


def test_default_prefix_keeps_todays_names(tmp_path: Path) -> None:
    codegen_model(MODELS["kws"], tmp_path / "m")
    text = (tmp_path / "m" / "model.h").read_text()
    for name in ("TINYMCU_ARENA_BYTES", "int tinymcu_run(void);", "tinymcu_invoke(",
                 "tinymcu_input(void)", "tinymcu_quantize_input("):
        assert name in text
    assert read_header(tmp_path / "m").prefix == "tinymcu"


def test_two_models_in_one_host_executable_are_bit_exact(tmp_path: Path) -> None:
    gen = _generate(tmp_path)
    (tmp_path / "main.c").write_text(HOST_MAIN)
    exe = tmp_path / "two"
    subprocess.run([CC, *CFLAGS, "-I", str(tmp_path / "kws"), "-I", str(tmp_path / "ic"),
                    str(tmp_path / "kws" / "kws.c"), str(tmp_path / "ic" / "ic.c"),
                    str(tmp_path / "main.c"), "-o", str(exe)], check=True)
    _run_both(gen, exe, tmp_path, 12)


TWO_CMAKE = """cmake_minimum_required(VERSION 3.13)
project(app C)
add_subdirectory(kws)
add_subdirectory(ic)
add_executable(app main.c)
target_link_libraries(app PRIVATE kws_model ic_model)
"""


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")
def test_two_prefixed_cmake_packages_in_one_app(tmp_path: Path) -> None:
    """`tinymcu package --format cmake` of two prefixed models: two add_subdirectory()
    targets linked into one program."""
    from tinymcu.firmware_templates.package import package_cmake

    gen = _generate(tmp_path / "gen")
    app = tmp_path / "app"
    for name in MODELS:
        package_cmake(tmp_path / "gen" / name, app / name, name=f"{name}_model")
        assert "STATIC " + name + ".c" in (app / name / "CMakeLists.txt").read_text()
    (app / "CMakeLists.txt").write_text(TWO_CMAKE)
    (app / "main.c").write_text(HOST_MAIN)
    for cmd in (["cmake", "-S", str(app), "-B", str(tmp_path / "build"),
                 "-DCMAKE_BUILD_TYPE=Release"], ["cmake", "--build", str(tmp_path / "build")]):
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
    _run_both(gen, tmp_path / "build" / "app", tmp_path, 4)


def _run_both(gen: dict[str, CodegenResult], exe: Path, tmp_path: Path, n: int) -> None:
    """Run ``exe`` (HOST_MAIN) on n inputs per model; each output equals the emulator's and
    TFLM's."""
    xs = {name: _inputs(gen[name], n, seed) for seed, name in enumerate(MODELS)}
    for name in MODELS:
        (tmp_path / f"{name}.bin").write_bytes(b"".join(x.tobytes() for x in xs[name]))
    subprocess.run([str(exe), str(tmp_path / "kws.bin"), str(tmp_path / "ic.bin"),
                    str(tmp_path / "out.bin")], check=True, timeout=120)
    out = np.frombuffer((tmp_path / "out.bin").read_bytes(), np.int8)
    sizes = [gen[name].graph.tensors[gen[name].graph.outputs[0]].nbytes for name in MODELS]
    assert out.size == n * sum(sizes)
    records = out.reshape(n, sum(sizes))
    tflm = {name: oracle.tflm_invoke_batch(MODELS[name], [[x] for x in xs[name]])
            for name in MODELS}
    for k in range(n):
        got = {"kws": records[k, :sizes[0]], "ic": records[k, sizes[0]:]}
        for name in MODELS:
            np.testing.assert_array_equal(got[name], _expected(gen[name], xs[name][k], k),
                                          err_msg=f"{name} input {k}")
            np.testing.assert_array_equal(got[name], tflm[name][k][0].reshape(-1))


@pytest.mark.skipif(shutil.which(ARM_CC) is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_two_models_in_one_qemu_image_are_bit_exact(tmp_path: Path) -> None:
    gen = _generate(tmp_path)
    target = get_target("qemu-mps2-an386")
    xs = {name: _inputs(gen[name], 1, 7 + seed)[0] for seed, name in enumerate(MODELS)}
    files = render_project(target, "kws+ic", xs["kws"])
    (tmp_path / "link.ld").write_text(files["link.ld"])
    (tmp_path / "startup.c").write_text(files["startup.c"])
    main = _ENV.from_string(QEMU_MAIN).render(
        target=target, semihosting=True, samples=None, API="TWO",
        kws_rows=", ".join(str(int(v)) for v in xs["kws"].ravel()),
        ic_rows=", ".join(str(int(v)) for v in xs["ic"].ravel()))
    (tmp_path / "main.c").write_text(main)
    flags = compile_flags(target)
    subprocess.run([ARM_CC, *flags, "-Ikws", "-Iic", "-Tlink.ld", *LDFLAGS, "main.c",
                    "startup.c", "kws/kws.c", "ic/ic.c", "-o", "two.elf"], cwd=tmp_path,
                   check=True, timeout=300)
    run = parse_run(run_qemu(tmp_path / "two.elf", timeout=300))
    assert run.status == 0
    expected = np.concatenate([_expected(gen[name], xs[name]) for name in MODELS])
    np.testing.assert_array_equal(run.output, expected)
    syms = subprocess.run(["arm-none-eabi-nm", str(tmp_path / "two.elf")], capture_output=True,
                          text=True, check=True).stdout
    assert re.search(r"\btm_arena\b", syms) and syms.count(" tm_arena") == 2  # one per model


def test_bad_prefix_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for bad in ("9lives", "tm_x", "a-b", "x_", ""):
        with pytest.raises(TinymcuError, match="--prefix"):
            codegen_model(MODELS["kws"], tmp_path / "x", prefix=bad)
    with pytest.raises(SystemExit) as exc:
        cli.main(["codegen", str(MODELS["kws"]), "--out", str(tmp_path / "y"),
                  "--prefix", "1bad"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--prefix" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "y").exists()


def test_cli_prefix(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["codegen", str(MODELS["kws"]), "--out", str(tmp_path / "k"),
                  "--prefix", "kws"])
    assert exc.value.code == 0
    assert "kws.h" in capsys.readouterr().out
    assert "int kws_run(void);" in (tmp_path / "k" / "kws.h").read_text()


# -- the float helpers against TFLM's QUANTIZE / DEQUANTIZE ------------------------------------

HELPER_MAIN = r"""
#include <stdio.h>
#include "kws.h"

/* argv[1]: KWS_INPUT_BYTES floats per record -> int8; argv[2]: KWS_OUTPUT_BYTES int8 per
 * record -> floats */
int main(int argc, char **argv) {
    static float x[KWS_INPUT_BYTES];
    static int8_t q[KWS_INPUT_BYTES];
    static int8_t o[KWS_OUTPUT_BYTES];
    static float y[KWS_OUTPUT_BYTES];
    FILE *fx, *fq, *fo, *fy;
    if (argc != 5) {
        return 2;
    }
    fx = fopen(argv[1], "rb");
    fq = fopen(argv[2], "wb");
    fo = fopen(argv[3], "rb");
    fy = fopen(argv[4], "wb");
    if (!fx || !fq || !fo || !fy) {
        return 2;
    }
    while (fread(x, sizeof x[0], KWS_INPUT_BYTES, fx) == KWS_INPUT_BYTES) {
        kws_quantize_input(x, q);
        fwrite(q, 1, KWS_INPUT_BYTES, fq);
    }
    while (fread(o, 1, KWS_OUTPUT_BYTES, fo) == KWS_OUTPUT_BYTES) {
        kws_dequantize_output(o, y);
        fwrite(y, sizeof y[0], KWS_OUTPUT_BYTES, fy);
    }
    fclose(fx);
    fclose(fq);
    fclose(fo);
    fclose(fy);
    return 0;
}
"""


def _edge_model(path: Path, kind: str, shape: tuple[int, ...], quant: tuple[float, int]) -> Path:
    """A one-op float32 -> int8 QUANTIZE or int8 -> float32 DEQUANTIZE model."""
    src, dst = (Tensor(shape, "float32"), Tensor(shape, "int8", quant)) if kind == "QUANTIZE" \
        else (Tensor(shape, "int8", quant), Tensor(shape, "float32"))
    return write(path, [src, dst], [Node(kind, [0], [1])], [0], [1])


def _tie_values(scale: float, zp: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """float32 values at, just below and just above (k + 0.5) * scale for k across and past
    the int8 range, plus random ones: where a wrong rounding or clamp shows."""
    k = np.arange(-140 - zp, 140 - zp, dtype=np.float64)
    ties = ((k + 0.5) * scale).astype(np.float32)
    near = np.concatenate([ties, np.nextafter(ties, np.float32(np.inf)),
                           np.nextafter(ties, np.float32(-np.inf)),
                           (k * scale).astype(np.float32)])
    rand = rng.uniform(-200 * scale, 200 * scale, n).astype(np.float32)
    # far past the clamp but inside int32 (beyond it, TFLM's float->int32 cast is undefined)
    far = np.array([0.0, -0.0, 1e9 * scale, -1e9 * scale], np.float32)
    return np.concatenate([near, rand, far])


def test_quantize_and_dequantize_helpers_equal_tflm(tmp_path: Path) -> None:
    gen = codegen_model(MODELS["kws"], tmp_path / "kws", prefix="kws")
    g = gen.graph
    tin, tout = g.tensors[g.inputs[0]], g.tensors[g.outputs[0]]
    (tmp_path / "main.c").write_text(HELPER_MAIN)
    exe = tmp_path / "helpers"
    subprocess.run([CC, *CFLAGS, "-I", str(tmp_path / "kws"), str(tmp_path / "kws" / "kws.c"),
                    str(tmp_path / "main.c"), "-o", str(exe)], check=True)
    rng = np.random.default_rng(11)
    s_in, zp_in = float(tin.quant.scale[0]), int(tin.quant.zero_point[0])
    values = _tie_values(s_in, zp_in, 4 * tin.size, rng)
    pad = -len(values) % tin.size
    values = np.concatenate([values, rng.uniform(-3, 3, pad).astype(np.float32)])
    records = values.reshape(-1, tin.size)
    assert len(records) >= 4
    codes = np.resize(np.arange(-128, 128, dtype=np.int8), (-(-256 // tout.size), tout.size))
    (tmp_path / "x.bin").write_bytes(records.astype(np.float32).tobytes())
    (tmp_path / "o.bin").write_bytes(codes.tobytes())
    subprocess.run([str(exe), *(str(tmp_path / f) for f in ("x.bin", "q.bin", "o.bin",
                                                             "y.bin"))], check=True, timeout=60)
    q = np.frombuffer((tmp_path / "q.bin").read_bytes(), np.int8).reshape(records.shape)
    y = np.frombuffer((tmp_path / "y.bin").read_bytes(), np.float32).reshape(codes.shape)

    qmodel = _edge_model(tmp_path / "q.tflite", "QUANTIZE", (1, tin.size), (s_in, zp_in))
    want_q = oracle.tflm_invoke_batch(qmodel, [[r.reshape(1, -1)] for r in records])
    np.testing.assert_array_equal(q, np.stack([w[0].reshape(-1) for w in want_q]))
    s_out, zp_out = float(tout.quant.scale[0]), int(tout.quant.zero_point[0])
    dmodel = _edge_model(tmp_path / "d.tflite", "DEQUANTIZE", (1, tout.size), (s_out, zp_out))
    want_y = oracle.tflm_invoke_batch(dmodel, [[c.reshape(1, -1)] for c in codes])
    np.testing.assert_array_equal(y.view(np.uint32),
                                  np.stack([w[0].reshape(-1) for w in want_y]).view(np.uint32))
