"""The generated C: valid identifiers, and files that compile with -Wall -Wextra -Werror into a
program proving the array holds exactly the .tflite bytes, 16-byte aligned, with the header's
shapes, quantization and op list consistent with the model."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinymcu.export.c_arrays import c_identifier, tflm_ops, write_c_arrays
from tinymcu.mcu_runtime.tflite_reader import load_tflite

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name,ident", [
    ("demo_cnn", "demo_cnn"), ("mnv2-0.35@96", "mnv2_0_35_96"), ("3layers", "model_3layers"),
    ("int", "model_int"), ("", "model"), ("a  b", "a_b"), ("__x", "x"), ("kws ref", "kws_ref")])
def test_c_identifier(name: str, ident: str) -> None:
    assert c_identifier(name) == ident


C_MAIN = r"""
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model_data.h"

#define COUNT(method) +1
int main(int argc, char **argv) {
    if (argc != 2) return 10;
    FILE *f = fopen(argv[1], "rb");
    if (!f) return 11;
    unsigned char *buf = malloc(MACRO_LEN + 1);
    size_t n = fread(buf, 1, MACRO_LEN + 1, f);
    fclose(f);
    if (n != MACRO_LEN || IDENT_len != n) return 12;
    if (memcmp(buf, IDENT, n) != 0) return 13;
    if (((uintptr_t)IDENT) % 16 != 0) return 14;
    if ((0 MACRO_OPS(COUNT)) != MACRO_NUM_OPS) return 15;
    printf("%u %d %.9g %d %d\n", IDENT_len, MACRO_INPUT_SIZE, (double)MACRO_INPUT_SCALE,
           MACRO_INPUT_ZERO_POINT, MACRO_OUTPUT_SIZE);
    free(buf);
    return 0;
}
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
@pytest.mark.parametrize("model", ["kws_ref_model.tflite", "hello_world_int8.tflite"])
def test_generated_c_compiles_and_holds_the_model(model: str, tmp_path: Path) -> None:
    path = DATA / model
    data = path.read_bytes()
    graph = load_tflite(path)
    files = write_c_arrays(data, graph, tmp_path, f"{path.stem} model", arena_bytes=12345,
                           source=str(path))
    assert [f.name for f in files] == ["model_data.h", "model_data.c"]
    ident = c_identifier(f"{path.stem} model")
    header = files[0].read_text()
    assert f"#define {ident.upper()}_ARENA_SIZE 12345u" in header
    for op in tflm_ops(graph):
        assert f"X({op.method})" in header and f"{op.builtin}" in header
    main_c = tmp_path / "main.c"
    main_c.write_text(C_MAIN.replace("MACRO", ident.upper()).replace("IDENT", ident))
    exe = tmp_path / "check"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic",
                    "-o", str(exe), str(main_c), str(files[1]), "-I", str(tmp_path)],
                   check=True, capture_output=True, text=True)
    run = subprocess.run([str(exe), str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.returncode
    length, in_size, in_scale, in_zp, out_size = run.stdout.split()
    t_in, t_out = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    assert int(length) == len(data)
    assert int(in_size) == t_in.size and int(out_size) == t_out.size
    assert np.float32(float(in_scale)) == np.float32(t_in.quant.scale.reshape(-1)[0])
    assert int(in_zp) == int(t_in.quant.zero_point.reshape(-1)[0])


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_header_is_valid_cpp(tmp_path: Path) -> None:
    """Firmware includes the header from C++ (TFLM is C++): it must compile there too."""
    path = DATA / "hello_world_int8.tflite"
    write_c_arrays(path.read_bytes(), load_tflite(path), tmp_path, "hello", 1024, str(path))
    src = tmp_path / "use.cc"
    src.write_text('#include "model_data.h"\nstruct R { int n = 0; void AddFullyConnected() '
                   '{ ++n; } };\nint main() { R resolver;\n#define ADD_OP(m) resolver.m();\n'
                   'HELLO_OPS(ADD_OP)\nreturn resolver.n == HELLO_NUM_OPS ? 0 : 1; }\n')
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-c", str(src),
                    "-I", str(tmp_path), "-o", str(tmp_path / "use.o")], check=True,
                   capture_output=True, text=True)
