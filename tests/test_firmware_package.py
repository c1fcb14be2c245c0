"""Drop-in packaging: the generated model as a CMake library target and an Arduino library.

The CMake target is built the way a user's project would build it (``add_subdirectory`` +
``target_link_libraries``) with the host compiler, and the program's outputs must equal the
emulator's; the same directory configures and builds for Cortex-M0 and M4 with the shipped
arm-none-eabi toolchain file. The Arduino library's sources compile with the nRF52840
(Nano 33 BLE) flags, from C and from a C++ sketch-like translation unit.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinymcu.cli import main
from tinymcu.firmware_templates.package import package_arduino, package_cmake

DATA = Path(__file__).parent / "data"
KWS = DATA / "kws_ref_model.tflite"

needs_cmake = pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("cc") is None,
                                 reason="needs cmake and a host C compiler")
needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                               reason="needs arm-none-eabi-gcc (installed in CI)")

APP_CMAKE = """cmake_minimum_required(VERSION 3.13)
project(app C)
add_subdirectory(model)
add_executable(app main.c)
target_link_libraries(app PRIVATE tinymcu_model)
"""
#: reads raw int8 inputs (TINYMCU_INPUT_BYTES each) from argv[1], prints each output in hex
APP_MAIN = """#include <stdio.h>
#include "model.h"
int main(int argc, char **argv)
{
  static int8_t in[TINYMCU_INPUT_BYTES];
  static int8_t out[TINYMCU_OUTPUT_BYTES];
  FILE *f = argc > 1 ? fopen(argv[1], "rb") : NULL;
  if (f == NULL) {
    return 2;
  }
  while (fread(in, 1, sizeof in, f) == sizeof in) {
    unsigned i;
    if (tinymcu_invoke(in, out) != 0) {
      return 1;
    }
    for (i = 0; i < TINYMCU_OUTPUT_BYTES; i++) {
      printf("%02x", (unsigned)(unsigned char)out[i]);
    }
    printf("\\n");
  }
  fclose(f);
  return 0;
}
"""
#: the nRF52840 flags of the Arduino mbed core for the Nano 33 BLE
NRF52840_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=softfp", "-mfpu=fpv4-sp-d16",
                  "-Os", "-ffunction-sections", "-fdata-sections", "-Wall", "-Wextra", "-Werror"]


@pytest.fixture(scope="module")
def kws_codegen(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from tinymcu.mcu_runtime.codegen import codegen_model

    root = tmp_path_factory.mktemp("package")
    return codegen_model(KWS, root / "kws_c"), root / "kws_c"


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


@needs_cmake
def test_cmake_target_links_into_a_host_program_bit_exact(kws_codegen, tmp_path: Path) -> None:  # noqa: ANN001
    from tinymcu.mcu_runtime.emulator import emulate

    cg, model_dir = kws_codegen
    app = tmp_path / "app"
    app.mkdir()
    (app / "CMakeLists.txt").write_text(APP_CMAKE)
    (app / "main.c").write_text(APP_MAIN)
    package_cmake(model_dir, app / "model")
    build = tmp_path / "build"
    _run(["cmake", "-S", str(app), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"])
    _run(["cmake", "--build", str(build)])
    rng = np.random.default_rng(7)
    x = [np.load(DATA / "kws_sample_input_int8.npy")]
    x += [rng.integers(-128, 128, x[0].shape).astype(np.int8) for _ in range(30)]
    (tmp_path / "in.bin").write_bytes(b"".join(v.tobytes() for v in x))
    lines = _run([str(build / "app"), str(tmp_path / "in.bin")]).split()
    assert len(lines) == len(x)
    for line, v in zip(lines, x, strict=True):
        expected = emulate(cg.graph, cg.plan, [v]).outputs[0].reshape(-1)
        assert np.frombuffer(bytes.fromhex(line), np.int8).tolist() == expected.tolist()


@needs_cmake
@needs_arm
@pytest.mark.parametrize("cpu", ["cortex-m0", "cortex-m4"])
def test_cmake_target_builds_with_the_arm_toolchain_file(kws_codegen, cpu: str,  # noqa: ANN001
                                                         tmp_path: Path) -> None:
    _, model_dir = kws_codegen
    pkg = package_cmake(model_dir, tmp_path / "model", cpu=cpu)
    build = tmp_path / "build"
    _run(["cmake", "-S", str(pkg), "-B", str(build),
          f"-DCMAKE_TOOLCHAIN_FILE={pkg / 'cmake' / 'arm-none-eabi.cmake'}"])
    _run(["cmake", "--build", str(build)])
    lib = build / "libtinymcu_model.a"
    attrs = _run(["arm-none-eabi-readelf", "-A", str(lib)])
    assert ("v6S-M" if cpu == "cortex-m0" else "v7E-M") in attrs


@needs_arm
def test_arduino_library_compiles_with_the_nano_33_ble_flags(kws_codegen,  # noqa: ANN001
                                                             tmp_path: Path) -> None:
    _, model_dir = kws_codegen
    lib = package_arduino(model_dir, tmp_path / "kws_lib", name="kws_lib")
    props = dict(ln.split("=", 1) for ln in (lib / "library.properties").read_text().splitlines())
    assert props["name"] == "kws_lib" and props["includes"] == "model.h"
    assert "kws_ref_model.tflite" in props["sentence"] and props["architectures"] == "*"
    assert {p.name for p in (lib / "src").iterdir()} >= {"model.c", "model.h", "tm_common.h"}
    assert (lib / "examples" / "kws_lib_run" / "kws_lib_run.ino").is_file()
    for src in (lib / "src").glob("*.c"):
        _run(["arm-none-eabi-gcc", *NRF52840_FLAGS, "-std=gnu11", "-c", str(src), "-o",
              str(tmp_path / f"{src.stem}.o")])
    # a sketch is C++: the header must declare C linkage
    (tmp_path / "sketch.cpp").write_text('#include "model.h"\nint run(const int8_t *x, int8_t *y)'
                                         ' { return tinymcu_invoke(x, y); }\n')
    if shutil.which("arm-none-eabi-g++"):
        _run(["arm-none-eabi-g++", *NRF52840_FLAGS, "-std=gnu++17", f"-I{lib / 'src'}", "-c",
              str(tmp_path / "sketch.cpp"), "-o", str(tmp_path / "sketch.o")])
        syms = _run(["arm-none-eabi-nm", str(tmp_path / "sketch.o")])
        assert " U tinymcu_invoke" in syms  # unmangled: links against model.o


def test_bad_package_requests_are_one_line_exit_2(tmp_path: Path, kws_codegen,  # noqa: ANN001
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _, model_dir = kws_codegen
    for args, match in ((["package", str(tmp_path), "--format", "cmake"], "no model.h"),
                        (["package", str(model_dir), "--format", "arduino", "--name", "9x"],
                         "library name")):
        with pytest.raises(SystemExit) as e:
            main([*args, "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert e.value.code == 2 and match in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "out").exists()
