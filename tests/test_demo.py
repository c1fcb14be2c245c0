"""The main job end to end from the CLI: prune (Flower) → export → check → emulate == TFLM
→ C runtime firmware run under QEMU == emulator."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "tinymcu", "demo", "--out", str(out)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    emu = s["emulation"]
    assert emu["samples"] > 300
    for kind in ("layer", "patch"):
        assert emu[kind]["bit_exact"] == emu["samples"], kind
    assert s["sram_patch_bytes"] <= s["sram_layer_bytes"] <= s["sram_budget_bytes"]
    assert abs(s["density"] - 0.1) < 0.01
    assert s["int8_accuracy"] > 0.9 and abs(s["int8_accuracy"] - s["float_accuracy"]) < 0.02
    assert s["flash_sparse_bytes"] < s["flash_dense_bytes"] / 2
    for f in ("export/model.tflite", "export/model_data.h", "export/model_data.c",
              "export/export_report.json", "check.json", "check.svg", "prune/model.json"):
        assert (out / f).is_file(), f
    fw = s["firmware"]
    assert fw["bit_exact"] is True and fw["board"] == "qemu-mps2-an386"
    assert fw["map_arena_bytes"] == fw["planner_arena_bytes"] == s["sram_patch_bytes"]
    assert (out / "firmware" / "app.elf").is_file()
    assert "emulator == TFLM" in r.stdout and "QEMU Cortex-M4 output == emulator" in r.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # nothing half-written beside it
