"""`tinymcu check` as a user and a CI job see it: verdicts, exit codes, reports, baselines."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tinymcu.mcu_runtime.check import Budget, apply_baseline, check_model
from tinymcu.mcu_runtime.emulator import emulate
from tinymcu.mcu_runtime.planner import plan
from tinymcu.mcu_runtime.schedule import layer_schedule
from tinymcu.mcu_runtime.tflite_reader import load_tflite

DATA = Path(__file__).parent / "data"
KWS = DATA / "kws_ref_model.tflite"
VWW = DATA / "vww_96_int8.tflite"
BOARD = Budget(256 * 1024, 1024 * 1024, "qemu-mps2-an386")


def tinymcu(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinymcu", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def test_arena_printed_is_the_arena_the_emulator_runs_in() -> None:
    """The figure check reports is the planner's, and the emulator proves that plan works."""
    report = check_model(KWS, BOARD)
    graph = load_tflite(KWS.read_bytes())
    p = plan(graph, layer_schedule(graph))
    assert report.chosen.arena_bytes == p.arena_bytes
    x = [np.random.default_rng(0).integers(-128, 128, graph.tensors[graph.inputs[0]].shape,
                                            dtype=np.int8)]
    result = emulate(graph, p, x)
    assert result.high_water <= report.chosen.arena_bytes
    assert report.chosen.lower_bound_bytes <= report.chosen.arena_bytes
    assert report.fits and report.verdict == "fits"


def test_over_budget_exits_1_with_the_reason(tmp_path: Path) -> None:
    r = tinymcu("check", str(VWW), "--sram", "32KiB", "--flash", "1MiB",
                "--json", str(tmp_path / "r.json"))
    assert r.returncode == 1, r.stderr
    assert "SRAM" in r.stderr and "32,768" in r.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["schema_version"] == 1 and doc["fits"] is False


def test_fits_writes_json_markdown_and_svg(tmp_path: Path) -> None:
    r = tinymcu("check", str(KWS), "--board", "arduino-nano-33-ble", "--json", "r.json",
                "--markdown", "r.md", "--plot", "r.svg", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "FITS" in r.stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["budget"]["board"] == "arduino-nano-33-ble"
    assert doc["chosen"]["arena_bytes"] <= doc["budget"]["sram_bytes"]
    assert len(doc["chosen"]["ops"]) == 13
    assert "✅ fits" in (tmp_path / "r.md").read_text()
    svg = ET.parse(tmp_path / "r.svg").getroot()
    assert svg.tag.endswith("svg")
    assert len(svg.findall("{http://www.w3.org/2000/svg}polyline")) == 1


def test_baseline_regression_gate(tmp_path: Path) -> None:
    report = check_model(KWS, BOARD)
    base = report.to_dict()
    base["chosen"]["arena_bytes"] = int(report.chosen.arena_bytes / 1.10)
    gated = apply_baseline(check_model(KWS, BOARD), base, 0.05)
    assert not gated.fits and "regression" in gated.verdict
    assert gated.regression["arena_change"] == pytest.approx(0.10, abs=0.01)
    assert apply_baseline(check_model(KWS, BOARD), base, 0.15).fits
    (tmp_path / "base.json").write_text(json.dumps(base))
    r = tinymcu("check", str(KWS), "--baseline", str(tmp_path / "base.json"),
                "--max-regression", "5%")
    assert r.returncode == 1 and "regression" in r.stderr


def test_patch_and_auto_schedules_are_reported_side_by_side() -> None:
    patch = check_model(VWW, BOARD, schedule="patch")
    assert set(patch.schedules) == {"layer", "patch"}
    assert patch.chosen.kind == "patch"
    assert patch.chosen.arena_bytes < patch.schedules["layer"].arena_bytes
    assert patch.chosen.macs > patch.schedules["layer"].macs
    roomy = check_model(VWW, BOARD, schedule="auto")
    assert roomy.chosen.kind == "layer"
    tight = check_model(VWW, Budget(patch.chosen.arena_bytes, 1 << 20), schedule="auto")
    assert tight.chosen.kind == "patch" and tight.fits


def test_tflm_target_counts_the_whole_model_as_flash() -> None:
    report = check_model(VWW, BOARD, target="tflm")
    assert report.flash_bytes == VWW.stat().st_size
    assert report.chosen.arena_bytes > check_model(VWW, BOARD).chosen.arena_bytes


def test_check_path_imports_neither_tensorflow_nor_torch() -> None:
    code = ("import sys; from tinymcu.cli import main\n"
            "try:\n    main(['check', sys.argv[1]])\nexcept SystemExit as e:\n    code = e.code\n"
            "heavy = [m for m in ('tensorflow', 'torch', 'tflite_micro', 'onnx')"
            " if m in sys.modules]\n"
            "print('HEAVY', heavy, code)")
    r = subprocess.run([sys.executable, "-c", code, str(VWW)], capture_output=True, text=True,
                       timeout=300)
    assert "HEAVY [] 0" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("content,needle", [
    (b"", "0 bytes"), (b"\x00" * 64, ""), (b"not a model at all" * 10, "")])
def test_garbage_models_exit_2(tmp_path: Path, content: bytes, needle: str) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(content)
    r = tinymcu("check", str(bad))
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: {bad}: ") and r.stderr.count("\n") == 1
    assert needle in r.stderr.lower()
