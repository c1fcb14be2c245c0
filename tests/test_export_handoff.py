"""prune → export handoff and the export frictions a new user hits first.

The pruned run is written by the pruner's own writer (``Server.finish``) without a federated
simulation, so the test stays seconds long; the printed command is run exactly as written.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("flwr")

from tinymcu.cli import main  # noqa: E402


def _finished_run(out: Path) -> Path:
    """A `tinymcu prune --out OUT` result with 70% of the demo CNN's weights zeroed."""
    from tinymcu.prune.apps import Server
    from tinymcu.prune.config import PruneConfig

    server = Server(PruneConfig(model="demo_cnn", data="digits", clients=2, rounds=1,
                                density=0.3, out=str(out)))
    model = server.build(0)
    state = model.state_dict()
    for k, v in state.items():
        if k.endswith("weight") and v.dim() > 1:
            v[v.abs() < v.abs().flatten().kthvalue(int(0.7 * v.numel())).values] = 0
    server.work.mkdir(parents=True)
    server.finish({"state": state, "masks": {}, "history": [], "bytes_up": 0, "bytes_down": 0,
                   "topk_bytes_up": 0, "mask_bytes_down": 0, "client_peak_bytes": 0,
                   "moved": 0, "selection": None,
                   "excluded": [], "elapsed": 0.0})
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _finished_run(tmp_path_factory.mktemp("prune") / "run")


def _cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    cap = capsys.readouterr()
    return int(exc.value.code or 0), cap.out, cap.err


def test_printed_command_runs_as_written(run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    """What `tinymcu prune` prints after a run is a working `tinymcu export` line: it
    rebuilds the factory model from model.json, calibrates on the run's data, and the
    pruned zeros survive; stderr (no terminal here) logs one line per stage with its time."""
    from tinymcu.commands.prune import export_command

    line = export_command(run_dir, "digits")
    argv = shlex.split(line)
    assert argv[:2] == ["tinymcu", "export"]
    code, out, err = _cli([*argv[1:], "--tflm-samples", "4"], capsys)
    assert code == 0, err
    rep = json.loads((run_dir / "export" / "export_report.json").read_text())
    assert rep["name"] == "demo_cnn"  # the factory's name, not "model"
    assert rep["route"]["used"] == "mcu" and rep["route"]["requested"] == "auto"
    assert rep["tflm"]["bit_exact"]
    assert all(layer["zeros_preserved"] for layer in rep["layers"])
    assert 0.25 < np.mean([x["int8_density"] for x in rep["layers"]]) < 0.35
    stages = [ln for ln in err.splitlines() if ln.startswith("export: ")]
    assert len(stages) >= 4 and all(ln.endswith(" s") for ln in stages), err
    assert "Warning:" not in err and "Warning:" not in out


def test_model_json_is_accepted_too(run_dir: Path) -> None:
    from tinymcu.export.load import load_model

    src = load_model(str(run_dir / "model.json"))
    assert src.from_prune and src.name == "demo_cnn" and src.default_input_shape == (1, 1, 8, 8)
    state = torch.load(run_dir / "model_state.pt", weights_only=True)
    for k, v in src.module.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_directory_without_model_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = _cli(["export", str(tmp_path), "--calib", "digits", "--out",
                         str(tmp_path / "o")], capsys)
    assert code == 2 and "no model.json" in err and len(err.strip().splitlines()) == 1


def test_wrong_calibration_shape_names_both_shapes(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    """A TorchScript model has no declared input shape: the model is run on one sample first,
    so the error says what the samples are and what the first layer takes — not
    "torch.onnx.export failed: ... TorchScript interpreter"."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.LazyLinear(2))
    net(torch.zeros(1, 3, 32, 32))
    ts = tmp_path / "net.pt"
    torch.jit.save(torch.jit.trace(net.eval(), torch.zeros(1, 3, 32, 32)), str(ts))
    np.save(tmp_path / "c.npy", np.zeros((4, 1, 8, 8), np.float32))
    code, _, err = _cli(["export", str(ts), "--calib", str(tmp_path / "c.npy"), "--out",
                         str(tmp_path / "o")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "calibration samples are 1×8×8" in err and "takes 3×H×W" in err
    assert "onnx" not in err.lower()


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def test_torchscript_name_and_captured_warnings(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    """The default name is the traced class; torch's own warnings land in the report."""
    ts = tmp_path / "model.pt"
    torch.jit.save(torch.jit.trace(Tiny().eval(), torch.zeros(1, 1, 8, 8)), str(ts))
    np.save(tmp_path / "c.npy", np.random.default_rng(0).random((8, 1, 8, 8), np.float32))
    code, out, err = _cli(["export", str(ts), "--calib", str(tmp_path / "c.npy"), "--out",
                           str(tmp_path / "o"), "--tflm-samples", "2"], capsys)
    assert code == 0, err
    rep = json.loads((tmp_path / "o" / "export_report.json").read_text())
    assert rep["name"] == "Tiny" and "tinymcu export: Tiny" in out
    assert "Warning:" not in err
    assert any("Warning" in w for w in rep["warnings"]), rep["warnings"]
