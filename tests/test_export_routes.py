"""--converter: the fail-fast op check, the post-conversion runtime check, auto's fallback.

The op check runs on ONNX before TensorFlow is imported; the runtime's op set is monkeypatched
where a test needs an op to be missing, so the tests keep their meaning as the runtime grows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tinymcu.cli import main  # noqa: E402
from tinymcu.export import route_check  # noqa: E402


def _model(path: Path, ops: list[str]) -> Path:
    """Conv(1→4, 3×3, pad 1) followed by the unary ``ops`` in a chain, input (1, 1, 8, 8)."""
    w = numpy_helper.from_array(np.full((4, 1, 3, 3), 0.1, np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["t0"], pads=[1, 1, 1, 1], name="conv")]
    for i, op in enumerate(ops):
        nodes.append(helper.make_node(op, [f"t{i}"], [f"t{i + 1}"], name=f"act{i}"))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info(f"t{len(ops)}", TensorProto.FLOAT, [1, 4, 8, 8])],
        initializer=[w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _calib(tmp_path: Path) -> Path:
    path = tmp_path / "calib.npy"
    np.save(path, np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32))
    return path


def test_all_offending_ops_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Three problems, three names, one line, exit 2 — before any conversion."""
    monkeypatch.setattr(route_check, "runtime_ops",
                        lambda: frozenset({"CONV_2D", "RELU", "MUL", "ADD"}))
    model = _model(tmp_path / "m.onnx", ["Erf", "Sigmoid", "Relu", "Erf", "Round"])
    with pytest.raises(SystemExit) as exc:
        main(["export", str(model), "--calib", str(_calib(tmp_path)), "--out",
              str(tmp_path / "out"), "--converter", "mcu"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert "3 op kind(s)" in err
    assert "ONNX op Erf (nodes 'act0', 'act3'): the mcu builder has no lowering" in err
    assert "ONNX op Round (node 'act4')" in err
    assert "ONNX op Sigmoid (node 'act1'): lowers to TFLite LOGISTIC, which our runtime " \
           "does not run" in err
    assert "Relu" not in err and "tensorflow" not in err.lower()
    assert not (tmp_path / "out").exists()


def test_op_check_follows_the_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """An op the runtime gains stops being an offender, with no change to export."""
    import tempfile

    from tinymcu.export.onnx_to_tf import mcu_offenders
    from tinymcu.export.to_onnx import check_onnx

    with tempfile.TemporaryDirectory() as d:
        check = check_onnx(_model(Path(d) / "m.onnx", ["Sigmoid"]))
    base = route_check.runtime_ops()
    monkeypatch.setattr(route_check, "runtime_ops", lambda: base - {"LOGISTIC"})
    assert "LOGISTIC" in " ".join(mcu_offenders(check.model, check.input_name,
                                                check.input_shape))
    monkeypatch.setattr(route_check, "runtime_ops", lambda: base | {"LOGISTIC"})
    assert mcu_offenders(check.model, check.input_name, check.input_shape) == []


def test_runtime_ops_come_from_the_runtime() -> None:
    from tinymcu.mcu_runtime import tflite_reader

    ops = route_check.runtime_ops()
    assert {"CONV_2D", "FULLY_CONNECTED", "ADD"} <= ops <= tflite_reader.SUPPORTED_OPS


def test_clip_lowering_by_bounds(tmp_path: Path) -> None:
    from tinymcu.export.to_onnx import check_onnx

    model = _model(tmp_path / "m.onnx", ["Relu"])
    node = helper.make_node("Clip", ["a", "lo", "hi"], ["b"])
    consts = {"lo": np.float32(0), "hi": np.float32(6)}
    assert route_check.mcu_lowering(node, consts) == ("RELU6",)
    consts["hi"] = np.float32(2)
    assert route_check.mcu_lowering(node, consts) == ("MINIMUM", "MAXIMUM")
    assert check_onnx(model).input_shape == (1, 1, 8, 8)


def test_post_check_refuses_and_names_the_op(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A converted model with an op our reader does not take is refused inside export,
    with the op's name, even when the op check let it through."""
    pytest.importorskip("tensorflow")
    from tinymcu.errors import TinymcuError
    from tinymcu.export.pipeline import export_model
    from tinymcu.mcu_runtime import tflite_reader

    everything = frozenset(tflite_reader.SUPPORTED_OPS)
    monkeypatch.setattr(route_check, "runtime_ops", lambda: everything)
    monkeypatch.setattr(tflite_reader, "SUPPORTED_OPS", everything - {"LOGISTIC"})
    model = _model(tmp_path / "m.onnx", ["Sigmoid"])
    with pytest.raises(TinymcuError, match=r"the mcu route produced a \.tflite our runtime "
                                           r"rejects: op \d+ is LOGISTIC"):
        export_model(str(model), str(_calib(tmp_path)), tmp_path / "out", converter="mcu",
                     tflm_samples=2)
    assert not (tmp_path / "out").exists()


def test_post_check_refuses_float_models(tmp_path: Path) -> None:
    """litert-torch's stock PT2E leaves float ops; the post-check is what catches them."""
    from tinymcu.errors import TinymcuError

    data = Path(__file__).parent / "data"
    # a custom op tinymcu does not run (the audio front end with one op renamed)
    float_model = tmp_path / "renamed_custom_op.tflite"
    float_model.write_bytes((data / "audio_preprocessor_int8.tflite").read_bytes().replace(
        b"SignalWindow", b"SignalWindoX"))
    with pytest.raises(TinymcuError, match="the litert route produced a .tflite our runtime "
                                           "rejects"):
        route_check.post_check(float_model, "litert")


torch = pytest.importorskip("torch")


class SwapHW(torch.nn.Module):
    """A transpose of H and W between two convolutions; with Transpose taken out of the mcu
    builder's op set, auto takes the litert route (TRANSPOSE is an op our runtime runs)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(4, 4, (1, 3))
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(torch.relu(self.conv(x)).transpose(2, 3))
        y = y + torch.sigmoid(y)
        return self.fc(y.mean((2, 3)))


def swap_hw() -> torch.nn.Module:
    torch.manual_seed(0)
    return SwapHW().eval()


@pytest.mark.slow
def test_auto_falls_back_to_litert_full_int8(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("litert_torch")
    from tinymcu.export import onnx_to_tf
    from tinymcu.export.pipeline import export_model

    # the mcu builder lowers Transpose itself; without it the fallback is what is tested
    monkeypatch.setattr(onnx_to_tf, "SUPPORTED_OPS", onnx_to_tf.SUPPORTED_OPS - {"Transpose"})
    from tinymcu.mcu_runtime.tflite_reader import load_tflite

    res = export_model("test_export_routes:swap_hw", str(_calib(tmp_path)),
                       tmp_path / "out", tflm_samples=8)
    route = res.report["route"]
    assert route["used"] == "litert" and "Transpose" in route["why"], route
    graph = load_tflite(res.tflite_path)  # our reader: no float tensor anywhere
    assert all(t.dtype == "int8" for t in graph.activations())
    assert {"LOGISTIC", "ADD", "FULLY_CONNECTED"} <= {op.kind for op in graph.ops}
    assert res.report["tflm"]["bit_exact"]
    assert res.report["parity"]["max_abs_error"] < 0.1 * res.report["parity"]["float_max_abs"]


class Lstm(torch.nn.Module):
    """torch's LSTM as exported: Transpose, Expand of zero states, LSTM, Squeeze, Gather."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(3, 4, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x.transpose(1, 2))[0][:, -1]


def test_lstm_op_check_follows_the_runtime(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Every node of an exported LSTM is lowered (the constant Expand folded away), and the
    unrolled cell's ops are asked of the runtime: without SPLIT the LSTM node is named."""
    from tinymcu.export.onnx_to_tf import mcu_offenders
    from tinymcu.export.to_onnx import torch_to_onnx

    x = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(np.float32)
    check = torch_to_onnx(Lstm().eval(), (1, 3, 5), tmp_path / "l.onnx", x)
    assert {"Expand", "LSTM", "Gather"} <= {n.op_type for n in check.model.graph.node}
    assert mcu_offenders(check.model, check.input_name, check.input_shape) == []
    base = route_check.runtime_ops()
    monkeypatch.setattr(route_check, "runtime_ops", lambda: base - {"SPLIT"})
    found = mcu_offenders(check.model, check.input_name, check.input_shape)
    assert len(found) == 1 and "ONNX op LSTM" in found[0] and "SPLIT" in found[0], found


@pytest.mark.parametrize("attrs, why", [
    ({"activations": ["Relu", "Tanh", "Tanh"]}, "activations"),
    ({"clip": 1.0}, "clip"),
    ({"input_forget": 1}, "input_forget"),
])
def test_lstm_refuses_what_it_cannot_unroll(tmp_path: Path, attrs: dict, why: str) -> None:
    """An LSTM variant the unrolled cell does not compute is refused by node and reason."""
    pytest.importorskip("tensorflow")
    from tinymcu.errors import TinymcuError
    from tinymcu.export.onnx_to_tf import build_tf
    from tinymcu.export.to_onnx import check_onnx

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((1, 8, 3)).astype(np.float32), "w")
    r = numpy_helper.from_array(rng.standard_normal((1, 8, 2)).astype(np.float32), "r")
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[2, 0, 1], name="tr"),
             helper.make_node("LSTM", ["xt", "w", "r"], ["y"], hidden_size=2, name="cell",
                              **attrs)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 1, 1, 2])],
        initializer=[w, r])
    path = tmp_path / "l.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    check = check_onnx(path)
    with pytest.raises(TinymcuError, match=rf"ONNX LSTM node 'cell': {why}"):
        build_tf(check.model, check.input_name, check.input_shape)
