"""Bad input to `tinymcu export`: one line on stderr, exit 2, no traceback, --out untouched.

These inputs are all rejected before TensorFlow is imported, so the file runs in seconds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinymcu.cli import cli, main
from tinymcu.errors import TinymcuError

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _conv_model(path: Path, batch: int | str = 1, op: str = "Relu") -> Path:
    """A small valid ONNX: Conv(1→4, 3×3, pad 1) → op, input (batch, 1, 8, 8)."""
    w = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node(op, ["c"], ["y"], name="act")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4, 8, 8])], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


@pytest.fixture
def calib(tmp_path: Path) -> Path:
    path = tmp_path / "calib.npy"
    np.save(path, np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32))
    return path


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An existing export directory that a failed export must leave exactly as it was."""
    d = tmp_path / "out"
    d.mkdir()
    (d / "keep.txt").write_text("previous export")
    return d


def _run(args: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run the real entry point (error → exit-code mapping included); return stderr."""
    with pytest.raises(SystemExit) as exc:
        main(["export", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def _untouched(out: Path) -> None:
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "previous export"
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".out")] == []


def _cases(tmp_path: Path, calib: Path) -> dict[str, tuple[list[str], str]]:
    good = _conv_model(tmp_path / "good.onnx")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[:60])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\xffnot a protobuf at all" * 20)
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((4, 3, 8, 8), np.float32))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return {
        "missing model": ([str(tmp_path / "nope.onnx"), "--calib", str(calib)], "not found"),
        "missing calib": ([str(good), "--calib", str(tmp_path / "nope.npy")], "not found"),
        "truncated onnx": ([str(truncated), "--calib", str(calib)], "not a valid ONNX"),
        "garbage onnx": ([str(garbage), "--calib", str(calib)], "not a valid ONNX"),
        "dynamic batch": ([str(_conv_model(tmp_path / "dyn.onnx", batch="N")), "--calib",
                           str(calib)], "dynamic dimensions (N)"),
        "unsupported op": ([str(_conv_model(tmp_path / "lrn.onnx", op="Erf")), "--calib",
                            str(calib)], "ONNX op Erf"),
        "calib shape": ([str(good), "--calib", str(wrong)], "calibration samples are 3×8×8"),
        "bad input shape": ([str(good), "--calib", str(calib), "--input-shape", "2,1,8,8"],
                            "batch 1"),
        "model spec": (["nosuchpkg.mod:factory", "--calib", str(calib)], "nosuchpkg"),
        "out is a file": ([str(good), "--calib", str(calib), "--out", str(a_file)],
                          "not a directory"),
    }


CASE_NAMES = ["missing model", "missing calib", "truncated onnx", "garbage onnx",
              "dynamic batch", "unsupported op", "calib shape", "bad input shape", "model spec",
              "out is a file"]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_input_exits_2_with_one_line(case: str, tmp_path: Path, calib: Path, out: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    args, expected = _cases(tmp_path, calib)[case]
    if "--out" not in args:
        args = [*args, "--out", str(out)]
    err = _run(args, capsys)
    assert err.startswith("error: ") and expected in err, err
    _untouched(out)


@pytest.mark.parametrize("case", ["truncated onnx", "unsupported op", "calib shape"])
def test_cli_runner_raises_the_library_error(case: str, tmp_path: Path, calib: Path,
                                             out: Path) -> None:
    """Through click's CliRunner the command raises TinymcuError (main() maps it to exit 2)."""
    args, expected = _cases(tmp_path, calib)[case]
    result = CliRunner().invoke(cli, ["export", *args, "--out", str(out)])
    assert isinstance(result.exception, TinymcuError)
    assert result.exception.exit_code == 2
    assert expected in str(result.exception) and "\n" not in str(result.exception)
    _untouched(out)


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(cli, ["export", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "--calib" in result.output


def test_subprocess_unsupported_op(tmp_path: Path, calib: Path, out: Path) -> None:
    """The installed entry point, in a fresh process: exit 2, exactly one stderr line."""
    model = _conv_model(tmp_path / "erf.onnx", op="Erf")
    proc = subprocess.run([sys.executable, "-m", "tinymcu", "export", str(model), "--calib",
                           str(calib), "--out", str(out)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        proc.stderr.strip()] and "ONNX op Erf (node 'act')" in proc.stderr
    assert proc.stdout == ""
    _untouched(out)


def test_input_shape_pins_a_dynamic_batch(tmp_path: Path) -> None:
    """The way out of the dynamic-shape error: --input-shape fixes the free dimension."""
    from tinymcu.export.to_onnx import check_onnx

    check = check_onnx(_conv_model(tmp_path / "dyn.onnx", batch="N"), (1, 1, 8, 8))
    assert check.input_shape == (1, 1, 8, 8)
    out = check.model.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in out] == [1, 4, 8, 8]
    with pytest.raises(TinymcuError, match="contradicts"):
        check_onnx(_conv_model(tmp_path / "dyn2.onnx", batch="N"), (1, 3, 8, 8))


def test_log_handlers_made_while_quiet_keep_working() -> None:
    """A library that creates a logging handler while export silences stderr (torchao on
    import inside litert's conversion) must not turn its later messages into
    "--- Logging error ---" tracebacks on a closed stream."""
    import subprocess
    import sys

    code = ("import logging, sys\n"
            "from tinymcu.export.quiet import quiet_fd, captured\n"
            "with quiet_fd(2):\n"
            "    logging.getLogger('a').addHandler(logging.StreamHandler(sys.stderr))\n"
            "with captured([]):\n"
            "    logging.getLogger('b').addHandler(logging.StreamHandler(sys.stderr))\n"
            "logging.getLogger('a').warning('a-line')\n"
            "logging.getLogger('b').warning('b-line')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == ["a-line", "b-line"], r.stderr
