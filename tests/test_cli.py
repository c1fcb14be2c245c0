"""The CLI shell: help texts with examples, board presets, sizes, exit codes, atomic outputs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinymcu.boards import BOARDS, get_board, parse_size
from tinymcu.cli import COMMANDS, cli
from tinymcu.errors import TinymcuError
from tinymcu.outputs import atomic_dir, write_atomic


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help_with_an_example(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output


def test_version_and_command_list() -> None:
    runner = CliRunner()
    assert "tinymcu, version" in runner.invoke(cli, ["--version"]).output
    listing = runner.invoke(cli, ["--help"]).output
    for name in COMMANDS:
        assert name in listing


@pytest.mark.parametrize("text,expected", [
    ("256KiB", 262144), ("256k", 262144), ("1MiB", 1048576), ("1.5MB", 1572864),
    ("4096", 4096), (" 2 mib ", 2097152)])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "lots", "-1k", "12 parsecs"])
def test_parse_size_rejects_garbage(bad: str) -> None:
    with pytest.raises(TinymcuError):
        parse_size(bad)


def test_boards() -> None:
    assert get_board("arduino-nano-33-ble").sram_bytes == 256 * 1024
    assert all(b.sram_bytes > 0 and b.flash_bytes > 0 for b in BOARDS.values())
    with pytest.raises(TinymcuError, match="unknown board"):
        get_board("nope")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinymcu", *args], capture_output=True,
                          text=True, timeout=120)


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    r = _run("check", str(tmp_path / "missing.tflite"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert "no such file" in r.stderr
    r = _run("check", str(tmp_path), "--board", "nope")
    assert r.returncode == 2 and "unknown board" in r.stderr


def test_write_atomic_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    write_atomic(target, "one")
    write_atomic(target, "two")
    assert target.read_text() == "two"

    def fail(p: Path) -> None:
        p.write_text("partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_atomic(target, writer=fail)
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_atomic_dir_leaves_nothing_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_dir(out) as d:
        (d / "half.txt").write_text("x")
        raise RuntimeError("boom")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(out) as d:
        (d / "a.txt").write_text("new")
    assert (out / "a.txt").read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # an ordinary folder, not mkdtemp's 0700
    (tmp_path / "file").write_text("")
    with pytest.raises(TinymcuError, match="not a directory"), atomic_dir(tmp_path / "file"):
        pass


def test_atomic_dir_creates_missing_parents(tmp_path: Path) -> None:
    with atomic_dir(tmp_path / "build" / "demo") as d:
        (d / "model.tflite").write_bytes(b"x")
    assert (tmp_path / "build" / "demo" / "model.tflite").read_bytes() == b"x"
    assert sorted(p.name for p in (tmp_path / "build").iterdir()) == ["demo"]
