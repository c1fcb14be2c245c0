"""End-to-end export: a magnitude-pruned demo CNN through torch → ONNX → int8 TFLite → C.

One export is shared by the module (TensorFlow import + conversion + TFLM probes take
seconds); each test checks one promise against an independent source (the torch weights, the
.tflite read back, the TFLM interpreter), not against the report's own claims.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinymcu.export.onnx_to_tf import same_or_explicit

torch = pytest.importorskip("torch")
pytest.importorskip("tensorflow")

SPARSITY = 0.8


def _prune_(module: torch.nn.Module, sparsity: float) -> None:
    """Zero the smallest-magnitude weights of every conv/linear layer (per layer)."""
    for m in module.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            w = m.weight.data
            k = int(sparsity * w.numel())
            thresh = w.abs().flatten().kthvalue(k).values
            w[w.abs() <= thresh] = 0.0


@pytest.fixture(scope="module")
def pruned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from tinymcu.prune import zoo

    model = zoo.build("demo_cnn")
    _prune_(model, SPARSITY)
    d = tmp_path_factory.mktemp("pruned")
    torch.save(model.state_dict(), d / "pruned.pt")
    return d / "pruned.pt", {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def exported(pruned: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory):
    from tinymcu.export.pipeline import export_model

    out = tmp_path_factory.mktemp("export") / "demo"
    return export_model("tinymcu.prune.zoo:demo_cnn", "digits", out, name="demo-cnn pruned",
                        state_dict=pruned[0])


def test_output_files_and_report_schema(exported) -> None:
    out = exported.out_dir
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["model.onnx", "model.tflite", "model_data.h", "model_data.c", "export_report.json",
         "export_report.md"])
    rep = json.loads((out / "export_report.json").read_text())
    assert rep["schema_version"] == 1
    assert rep["layout"] == "NHWC"
    assert rep["input"]["shape"] == [1, 8, 8, 1] and rep["input"]["shape_nchw"] == [1, 1, 8, 8]
    assert rep["c_identifier"] == "demo_cnn_pruned"
    assert rep["tflite_bytes"] == (out / "model.tflite").stat().st_size
    assert "NHWC" in (out / "export_report.md").read_text()


def test_tflite_is_fully_int8_without_shape_plumbing(exported) -> None:
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_path=str(exported.tflite_path))
    ops = [o["op_name"] for o in interp._get_ops_details()]
    assert not {"SHAPE", "STRIDED_SLICE", "PACK", "TRANSPOSE", "QUANTIZE", "DEQUANTIZE"} & set(ops)
    assert interp.get_input_details()[0]["dtype"] == np.int8
    assert interp.get_output_details()[0]["dtype"] == np.int8
    # stride-1 3×3 convs with padding=1 became SAME; only the stride-2 conv on an even
    # 8×8 map needs an explicit PAD (PyTorch pads top/left where SAME pads bottom/right)
    assert ops.count("PAD") == 1 == exported.report["explicit_pads"]


def test_float_graphs_agree(exported) -> None:
    onnx_diffs = exported.report["onnx"]
    assert onnx_diffs["torch_max_abs_diff"] < 1e-4
    assert onnx_diffs["tf_float_max_abs_diff"] < 1e-4


def test_int8_outputs_match_float(exported) -> None:
    p = exported.report["parity"]
    assert p["samples"] == 359  # the digits test split
    assert p["top1_agreement"] >= 0.95
    scale = exported.report["output"]["scale"]
    assert p["mean_abs_error"] < 4 * scale


def test_tflm_bit_exact_and_smallest_arena(exported) -> None:
    from tinymcu.export.data import digits_split
    from tinymcu.export.parity import quantize_input
    from tinymcu.mcu_runtime import oracle
    from tinymcu.mcu_runtime.tflite_reader import load_tflite

    t = exported.report["tflm"]
    assert t["bit_exact"] and t["samples"] == 256 and t["mismatched_samples"] == 0
    arena = t["min_arena_bytes"]
    path = exported.tflite_path
    assert oracle.tflm_runs(path, arena)
    assert not oracle.tflm_runs(path, arena - 16)
    graph = load_tflite(path)
    x = quantize_input(digits_split()[2][-3:], graph.tensors[graph.inputs[0]].quant)
    tflm = oracle.tflm_invoke_batch(path, [[s] for s in x], arena_size=arena)
    ref = oracle.ref_invoke_batch(path, [[s] for s in x])
    for a, b in zip(tflm, ref):
        np.testing.assert_array_equal(a[0], b[0])
    assert f"#define DEMO_CNN_PRUNED_ARENA_SIZE {arena}u" in (
        exported.out_dir / "model_data.h").read_text()


def test_pruned_zeros_stay_exactly_zero(exported, pruned) -> None:
    """Every zero of the torch weights is a zero int8 weight at the same position."""
    from tinymcu.mcu_runtime.tflite_reader import load_tflite

    state = pruned[1]
    torch_w = [v.numpy() for k, v in state.items()
               if k.endswith("weight") and v.ndim in (2, 4)]
    graph = load_tflite(exported.tflite_path)
    q_w = [graph.tensors[op.inputs[1]].data for op in graph.ops
           if op.kind in {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}]
    assert len(torch_w) == len(q_w) == len(exported.report["layers"])
    for w, q, layer in zip(torch_w, q_w, exported.report["layers"]):
        if w.ndim == 4 and q.shape[0] == 1:       # depthwise: (C,1,kh,kw) → (1,kh,kw,C)
            w = w.transpose(1, 2, 3, 0)
        elif w.ndim == 4:                         # conv: OIHW → OHWI
            w = w.transpose(0, 2, 3, 1)
        assert q.shape == w.shape
        assert np.all(q[w == 0] == 0), layer["name"]
        assert layer["zeros_preserved"]
        assert layer["float_density"] == pytest.approx(1 - SPARSITY, abs=0.01)
        assert layer["int8_density"] <= layer["float_density"]
        assert layer["float_zeros"] == int(np.sum(w == 0))
    md = (exported.out_dir / "export_report.md").read_text()
    assert "float density" in md and "int8 density" in md


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_exported_c_files_compile_and_hold_the_tflite(exported, tmp_path: Path) -> None:
    from test_c_arrays import C_MAIN

    ident = exported.report["c_identifier"]
    main_c = tmp_path / "main.c"
    main_c.write_text(C_MAIN.replace("MACRO", ident.upper()).replace("IDENT", ident))
    exe = tmp_path / "check"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(main_c), str(exported.out_dir / "model_data.c"),
                    "-I", str(exported.out_dir)], check=True, capture_output=True)
    run = subprocess.run([str(exe), str(exported.tflite_path)], capture_output=True, text=True)
    assert run.returncode == 0
    assert run.stdout.split()[:2] == [str(exported.report["tflite_bytes"]), "64"]


@pytest.mark.slow
def test_onnx_input_gives_the_same_tflite(exported, tmp_path: Path) -> None:
    """`tinymcu export model.onnx` (through the CLI) takes the same route as the torch model
    it came from, and prints the summary tables."""
    from click.testing import CliRunner

    from tinymcu.cli import cli

    out = tmp_path / "again"
    result = CliRunner().invoke(cli, ["export", str(exported.onnx_path), "--calib", "digits",
                                      "--out", str(out), "--tflm-samples", "4"])
    assert result.exit_code == 0, result.output
    assert "tinymcu export: model" in result.output and "weights per layer" in result.output
    assert json.loads((out / "export_report.json").read_text())["source"]["kind"] == "onnx"
    assert (out / "model.tflite").read_bytes() == exported.tflite_path.read_bytes()


class OpZoo(torch.nn.Module):
    """Every op family the builder maps, on an odd-sized input (7×9) so that stride-2
    padding=1 convolutions are SAME-equivalent in one dimension only; the flattened 2×2 map
    feeding fc1 checks the NCHW → NHWC row permutation of fully-connected weights."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(2, 8, 3, stride=2, padding=1)
        self.dw = torch.nn.Conv2d(8, 16, 3, padding=1, groups=8)  # depth multiplier 2
        self.c2 = torch.nn.Conv2d(16, 8, 1)
        self.c3 = torch.nn.Conv2d(16, 8, 1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc1 = torch.nn.Linear(8 * 2 * 2, 5)
        self.fc2 = torch.nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.hardswish(self.c1(x))
        d = self.dw(y)
        y = torch.sigmoid(d) * d
        y = self.bn(self.c2(y)) + torch.nn.functional.relu6(self.c3(y))
        a = torch.nn.functional.max_pool2d(y, 2)
        b = torch.nn.functional.avg_pool2d(y, 2)
        z = torch.nn.functional.pad(torch.cat([a, b], 1), (0, 1, 1, 0))
        # view(size(0), -1) exports Shape/Gather/Unsqueeze/Concat → Reshape plumbing
        return self.fc1(a.view(a.size(0), -1)) + self.fc2(z.mean((2, 3)))


@pytest.mark.slow
def test_op_zoo_exports_bit_exact(tmp_path: Path) -> None:
    from tinymcu.export.pipeline import export_model

    torch.manual_seed(0)
    model = OpZoo().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
    ts = tmp_path / "opzoo.pt"
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 2, 7, 9)), str(ts))
    x = np.random.default_rng(0).uniform(-1, 1, (40, 2, 7, 9)).astype(np.float32)
    np.save(tmp_path / "calib.npy", x)
    res = export_model(str(ts), str(tmp_path / "calib.npy"), tmp_path / "out", tflm_samples=8)
    rep = res.report
    assert rep["onnx"]["tf_float_max_abs_diff"] < 1e-4
    assert rep["tflm"]["bit_exact"]
    assert {"HARD_SWISH", "LOGISTIC", "MAX_POOL_2D", "AVERAGE_POOL_2D", "CONCATENATION",
            "DEPTHWISE_CONV_2D", "MUL", "ADD", "FULLY_CONNECTED"} <= set(rep["ops"])
    assert rep["parity"]["top1_agreement"] >= 0.9


def _windows(n: int, k: int, s: int, d: int, before: int, after: int) -> list[tuple[int, ...]]:
    """Input index read by each tap of each output window (-1 = padding), explicit pads."""
    keff = (k - 1) * d + 1
    out = (n + before + after - keff) // s + 1
    return [tuple(j if 0 <= j < n else -1 for j in (i * s - before + t * d for t in range(k)))
            for i in range(max(out, 0))]


def _tflite_windows(n: int, k: int, s: int, d: int, padding: str, before: int,
                    after: int) -> list[tuple[int, ...]]:
    if padding == "SAME":
        keff = (k - 1) * d + 1
        out = -(-n // s)
        total = max((out - 1) * s + keff - n, 0)
        return _windows(n, k, s, d, total // 2, total - total // 2)
    return _windows(n, k, s, d, before, after)


@given(n=st.integers(1, 20), k=st.integers(1, 5), s=st.integers(1, 3), d=st.integers(1, 2),
       pb=st.integers(0, 3), pe=st.integers(0, 3))
def test_padding_mapping_reads_the_same_windows(n: int, k: int, s: int, d: int, pb: int,
                                                pe: int) -> None:
    """SAME/VALID(+PAD) chosen by the builder samples exactly the ONNX windows."""
    if (k - 1) * d + 1 > n + pb + pe:
        return
    padding, (top, _, bottom, _) = same_or_explicit((n, n), (k, k), (s, s), (d, d),
                                                    (pb, pb, pe, pe))
    assert _tflite_windows(n, k, s, d, padding, top, bottom) == _windows(n, k, s, d, pb, pe)
    if padding == "VALID":
        assert top == pb and bottom <= pe


def test_padding_mapping_examples() -> None:
    # 3×3 stride 1 padding 1: SAME
    assert same_or_explicit((8, 8), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1))[0] == "SAME"
    # 3×3 stride 2 padding 1 on an even size: PyTorch pads top, SAME pads bottom → PAD op
    assert same_or_explicit((8, 8), (3, 3), (2, 2), (1, 1), (1, 1, 1, 1)) == \
        ("VALID", (1, 1, 0, 0))
    # ... on an odd size they coincide
    assert same_or_explicit((7, 7), (3, 3), (2, 2), (1, 1), (1, 1, 1, 1))[0] == "SAME"
    assert same_or_explicit((8, 8), (1, 1), (1, 1), (1, 1), (0, 0, 0, 0))[0] == "VALID"


def test_digits_split_is_deterministic_and_disjoint() -> None:
    from tinymcu.export.data import digits_split
    from tinymcu.prune.data import Split

    a, b = digits_split(), digits_split()
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    x_tr, y_tr, x_te, y_te = a
    assert x_tr.shape[1:] == (1, 8, 8) and x_tr.dtype == np.float32
    assert 0 <= x_tr.min() < x_tr.max() <= 1
    assert len(x_tr) + len(x_te) == 1797 and len(x_te) == 359
    np.testing.assert_array_equal(Split("digits", 4, 0.5, 0).test().y, y_te)  # the pruner's
    assert len({r.tobytes() for r in x_tr} & {r.tobytes() for r in x_te}) <= 5  # dup images
    assert not np.array_equal(digits_split(seed=1)[3], y_te)


def test_calibration_files(tmp_path: Path) -> None:
    from tinymcu.errors import TinymcuError
    from tinymcu.export.load import load_data

    x = np.random.default_rng(0).random((300, 1, 8, 8), dtype=np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(300) % 10)
    data = load_data(str(tmp_path / "d.npz"))
    assert data.calib.shape == (200, 1, 8, 8) and data.eval_x.shape == (300, 1, 8, 8)
    assert data.eval_y is not None and data.eval_y[:3].tolist() == [0, 1, 2]
    x[5, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(TinymcuError, match="NaN"):
        load_data(str(tmp_path / "nan.npy"))
    np.savez(tmp_path / "bad.npz", x=x[10:20], y=np.zeros(3))
    with pytest.raises(TinymcuError, match="3 labels for 10 samples"):
        load_data(str(tmp_path / "bad.npz"))


@pytest.mark.parametrize("pads,stride", [((1, 1, 1, 1), 1), ((0, 0, 1, 1), 2), ((1, 1, 1, 1), 2)])
def test_explicit_pad_node_folds_into_the_conv(pads: tuple[int, int, int, int], stride: int,
                                               tmp_path: Path) -> None:
    """ONNX Pad → Conv (as Keras/TF-style exporters emit for SAME) needs no PAD op when the
    windows match TFLite SAME; otherwise exactly one. Float outputs equal onnxruntime's."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from tinymcu.export.onnx_to_tf import build_tf
    from tinymcu.export.to_onnx import check_onnx, run_onnx

    top, left, bottom, right = pads
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 2, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([0, 0, top, left, 0, 0, bottom, right],
                                              np.int64), "pads")]
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"),
             helper.make_node("Conv", ["p", "w"], ["y"], strides=[stride, stride],
                              name="conv")]
    out = (8 + top + bottom - 3) // stride + 1
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, out, out])], inits)
    path = tmp_path / "pad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    check = check_onnx(path)
    tfm = build_tf(check.model, check.input_name, check.input_shape)
    same = pads != (1, 1, 1, 1) or stride == 1
    assert tfm.explicit_pads == (0 if same else 1)
    x = rng.normal(size=(3, 2, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(tfm.run(x), run_onnx(check, x).transpose(0, 2, 3, 1),
                               rtol=1e-5, atol=1e-5)
