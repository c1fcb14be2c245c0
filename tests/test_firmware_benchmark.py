"""The firmware benchmark's quick mode (``benchmarks/firmware/run.py --quick``), as CI runs it:
a convolutional (KWS) and a fully connected (AD01) model built, linked and run on QEMU
Cortex-M4 and M7, every output bit-exact with the emulator and TFLM, each row with its
TFLM + CMSIS-NN ratio and its flash next to the model file. The figures themselves are the
benchmark's to judge (``benchmarks/results/firmware.md``), not this test's."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_script import load_benchmark


@pytest.mark.slow
def test_quick_firmware_benchmark_is_bit_exact_with_every_column(tmp_path: Path) -> None:
    run = load_benchmark("firmware", "firmware_run")
    out = tmp_path / "firmware.md"
    assert run.main(["--quick", "--out", str(out)]) == 0
    text = out.read_text()
    rows = [line.strip("|").split(" | ") for line in text.splitlines()
            if line.startswith("| ") and line.split(" | ")[0] in ("| kws_ref_model",
                                                                  "| ad01_int8")]
    main = [r for r in rows if len(r) == len(run.HEADER)]
    assert [r[0].strip() for r in main] == run.QUICK_MODELS
    for r in main:
        cell = dict(zip(run.HEADER, (c.strip() for c in r)))
        assert cell["= emulator"] == "yes" and cell["= TFLM"] == "yes", cell
        assert cell["map arena"] == cell["planner arena"], cell
        assert cell["vs CMSIS-NN"].endswith("x") and cell[".tflite file"] != "0", cell
    m7 = [r for r in rows if len(r) == len(run.M7_HEADER)]
    assert len(m7) == 2 and all(r[-1].strip() == "yes" for r in m7), m7
    assert "geometric mean" in text and "Flash vs TFLM" in text
    assert "All bit-exact: yes." in text
