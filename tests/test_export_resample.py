"""The mcu route's ConvTranspose / Upsample (Resize) / Slice lowerings, its token-sequence
ops (LayerNorm, GELU, Linear on tokens, attention), general Transpose / Gather and the
unrolled LSTM (issue 12).

Three levels, each against an independent reference:

* geometry: the index maps and TRANSPOSE_CONV padding equal what PyTorch computes;
* float: the traced TF graph equals onnxruntime on the exported ONNX;
* int8: the converted .tflite runs in TFLM (the oracle) on 200 seeded inputs, TFLM equals
  TFLite's BUILTIN_REF kernels (bit for bit; within 2 steps where FULLY_CONNECTED, RSQRT,
  BATCH_MATMUL or SOFTMAX round differently in the two),
  its dequantized output tracks the float one, every emitted op is one our runtime runs,
  and our emulator equals TFLM bit for bit.

The ops a case needs are added to the route's op set (a no-op while the runtime has them), so
a case keeps producing its .tflite should the runtime lose an op; the fail-fast check's
refusal without them is tested too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from tinymcu.errors import TinymcuError  # noqa: E402
from tinymcu.export import onnx_to_tf, route_check  # noqa: E402
from tinymcu.export.onnx_resample import (  # noqa: E402
    classify_axis,
    nearest_index_map,
    transpose_conv_padding,
)

N_INT8 = 200


# ---- geometry against torch -------------------------------------------------------------
@pytest.mark.parametrize("n,f", [(4, 2), (5, 3), (8, 0.5), (9, 1 / 3), (6, 1)])
def test_nearest_index_map_is_torchs(n: int, f: float) -> None:
    x = torch.arange(n, dtype=torch.float32).view(1, 1, 1, n)
    got = F.interpolate(x, scale_factor=(1, f), mode="nearest")[0, 0, 0].long().numpy()
    idx = nearest_index_map(n, len(got), len(got) / n, "asymmetric", "floor")
    assert np.array_equal(idx, got)
    kind, k = classify_axis(idx, n)
    want = "same" if len(got) == n else "repeat" if len(got) > n else "stride"
    assert kind == want and (k == round(max(f, 1 / f)))


@pytest.mark.parametrize("hw,k,s,p,op", [((4, 4), (2, 2), (2, 2), 0, 0),
                                         ((4, 5), (4, 4), (2, 2), 1, 0),
                                         ((5, 5), (3, 3), (2, 2), 1, 1),
                                         ((3, 6), (3, 3), (1, 1), 1, 0),
                                         ((4, 4), (3, 3), (2, 2), 0, 1),
                                         ((6, 6), (5, 3), (3, 2), 2, 0)])
def test_transpose_conv_geometry_is_torchs(hw: tuple[int, int], k: tuple[int, int],
                                           s: tuple[int, int], p: int, op: int) -> None:
    m = nn.ConvTranspose2d(1, 1, k, s, p, output_padding=op)
    want = tuple(m(torch.zeros(1, 1, *hw)).shape[2:])
    padding, tf_out, crop = transpose_conv_padding(hw, k, s, (p, p, p, p), (op, op))
    full = tuple((hw[i] - 1) * s[i] + k[i] for i in range(2))
    if padding == "SAME":  # TFLite SAME: out = in·s, (k − s) // 2 dropped at the front
        assert tf_out == want == (hw[0] * s[0], hw[1] * s[1]) and crop is None
        assert p == (k[0] - s[0]) // 2 == (k[1] - s[1]) // 2
    else:  # VALID: the full output (+ rows no input reaches), then the crop
        assert all(full[i] <= tf_out[i] < full[i] + s[i] for i in range(2))
        assert (crop is None and tf_out == want) or crop == (p, p, *want)


# ---- models -----------------------------------------------------------------------------
class Up(nn.Module):
    """The Upsample forms: nearest ×f, nearest ÷2, bilinear ÷2 (all onto existing ops)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind, self.c = kind, nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.c(x))
        if self.kind == "nearest2":
            y = F.interpolate(y, scale_factor=2, mode="nearest")
        elif self.kind == "nearest3x2":
            y = F.interpolate(y, scale_factor=(3, 2), mode="nearest")
        elif self.kind == "nearest_half":
            y = F.interpolate(y, scale_factor=0.5, mode="nearest")
        elif self.kind == "bilinear_half":
            y = F.interpolate(y, scale_factor=0.5, mode="bilinear", align_corners=False)
        elif self.kind == "bilinear2":
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        elif self.kind == "bilinear2_corners":
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=True)
        return self.head(y)


class TConv(nn.Module):
    def __init__(self, k: int, s: int, p: int, op: int = 0, one_d: bool = False) -> None:
        super().__init__()
        cls, conv = (nn.ConvTranspose1d, nn.Conv1d) if one_d else (nn.ConvTranspose2d,
                                                                    nn.Conv2d)
        self.c = conv(2, 4, 3, padding=1)
        self.t = cls(4, 3, k, s, p, output_padding=op)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.t(F.relu(self.c(x)))


class Crop(nn.Module):
    """Slices of an activation: a channel crop, a spatial step, an offset with a step."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(1, 6, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.c(x))
        return torch.cat([y[:, 1:4, ::2, ::2], y[:, :3, 1::2, 1::2]], 1)


class Tokens(nn.Module):
    """Patch embedding → (1, T, D) tokens → [LayerNorm → attention →] Linear-GELU-Linear →
    mean over tokens → head: the tiny-ViT op mix."""

    def __init__(self, attention: bool, dim: int = 8) -> None:
        super().__init__()
        self.attention = attention
        self.embed = nn.Conv2d(2, dim, 2, 2)
        self.ln = nn.LayerNorm(dim)
        self.qkv, self.scale = nn.Linear(dim, 3 * dim), dim ** -0.5
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2)
        if self.attention:
            q, k, v = self.qkv(self.ln(t)).chunk(3, dim=-1)
            t = t + torch.softmax(q @ k.transpose(1, 2) * self.scale, dim=-1) @ v
        t = t + self.mlp(t)
        return self.head(t.mean(1))


class Lstm(nn.Module):
    """(N, features, frames) → LSTM over frames → last step (or the mean of every step's
    output) → Linear: the KWS-LSTM op mix (Transpose, Expand, LSTM, Squeeze, Gather)."""

    def __init__(self, bidirectional: bool = False, last: bool = True) -> None:
        super().__init__()
        self.last = last
        self.lstm = nn.LSTM(3, 5, batch_first=True, bidirectional=bidirectional)
        self.fc = nn.Linear(10 if bidirectional else 5, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x.transpose(1, 2))
        return self.fc(out[:, -1] if self.last else out.mean(1))


class Permute(nn.Module):
    """A permutation that really moves bytes (C ↔ W) between two convolutions, and a
    channel gather with non-contiguous indices."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(2, 6, 3, padding=1), nn.Conv2d(6, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.c1(x)).permute(0, 3, 2, 1)  # (1, 6, 6, 6): C and W swapped
        return self.c2(y)[:, [2, 0, 1]]


class PRelu(nn.Module):
    """Per-channel PReLU on a feature map and a single-slope PReLU on a Linear's output: both
    must reach the .tflite as PRELU (no NEG, which our runtime does not run)."""

    def __init__(self) -> None:
        super().__init__()
        self.c, self.p1 = nn.Conv2d(1, 4, 3, padding=1), nn.PReLU(4)
        self.fc, self.p2 = nn.Linear(4 * 4 * 4, 6), nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.p2(self.fc(self.p1(self.c(x)).flatten(1)))


CASES: dict[str, tuple[nn.Module, tuple[int, ...], frozenset[str]]] = {
    "nearest2": (Up("nearest2"), (1, 1, 6, 6), frozenset()),
    "nearest3x2": (Up("nearest3x2"), (1, 1, 4, 5), frozenset()),
    "nearest_half": (Up("nearest_half"), (1, 1, 8, 8), frozenset()),
    "bilinear_half": (Up("bilinear_half"), (1, 1, 8, 8), frozenset()),
    "bilinear2": (Up("bilinear2"), (1, 1, 5, 5), frozenset({"RESIZE_BILINEAR"})),
    "bilinear2_corners": (Up("bilinear2_corners"), (1, 1, 5, 5),
                          frozenset({"RESIZE_BILINEAR"})),
    "tconv_k2s2": (TConv(2, 2, 0), (1, 2, 4, 4), frozenset({"TRANSPOSE_CONV"})),
    "tconv_k4s2p1": (TConv(4, 2, 1), (1, 2, 4, 4), frozenset({"TRANSPOSE_CONV"})),
    "tconv_k3s2p1op1": (TConv(3, 2, 1, 1), (1, 2, 4, 4),
                        frozenset({"TRANSPOSE_CONV", "SLICE"})),
    "tconv1d_k3s2": (TConv(3, 2, 0, one_d=True), (1, 2, 8), frozenset({"TRANSPOSE_CONV"})),
    "crop": (Crop(), (1, 1, 8, 8), frozenset({"SLICE"})),
    "token_mlp_gelu": (Tokens(False), (1, 2, 8, 8), frozenset()),
    "vit_block": (Tokens(True), (1, 2, 8, 8), frozenset({"RSQRT", "BATCH_MATMUL", "SLICE"})),
    # 12 frames: past TFLM's 10-input CONCATENATION limit, so the concat tree is exercised
    "lstm_last": (Lstm(), (1, 3, 12), frozenset({"FULLY_CONNECTED", "SPLIT", "LOGISTIC",
                                                 "TANH"})),
    "lstm_bidir_mean": (Lstm(bidirectional=True, last=False), (1, 3, 6),
                        frozenset({"SPLIT", "LOGISTIC", "TANH"})),
    "permute_gather": (Permute(), (1, 2, 6, 6), frozenset({"TRANSPOSE", "GATHER"})),
    "prelu": (PRelu(), (1, 1, 4, 4), frozenset({"PRELU"})),
}


def _build(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
           ) -> tuple[np.ndarray, np.ndarray, onnx_to_tf.TfModel]:
    from tinymcu.export.to_onnx import run_onnx, torch_to_onnx

    module, shape, needs = CASES[name]
    torch.manual_seed(0)
    for p in module.parameters():
        nn.init.uniform_(p, -0.5, 0.5)
    module.eval()
    base = route_check.runtime_ops()
    monkeypatch.setattr(route_check, "runtime_ops", lambda: base | needs)
    x = np.random.default_rng(1).standard_normal((N_INT8, *shape[1:])).astype(np.float32)
    check = torch_to_onnx(module, shape, tmp_path / f"{name}.onnx", x[:4])
    tfm = onnx_to_tf.build_tf(check.model, check.input_name, check.input_shape)
    return x, onnx_to_tf.to_tf_layout(run_onnx(check, x)), tfm


def _convert(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
             ) -> tuple[Path, np.ndarray, np.ndarray]:
    """int8 .tflite calibrated on the same seeded inputs it is evaluated on."""
    from tinymcu.export import quantize

    x, ref, tfm = _build(name, tmp_path, monkeypatch)
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(quantize.quantize_int8(tfm, x))
    return path, x, ref


@pytest.mark.parametrize("name", list(CASES))
def test_float_graph_equals_onnxruntime(name: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    x, ref, tfm = _build(name, tmp_path, monkeypatch)
    got = tfm.run(x[:16])
    assert got.shape == ref[:16].shape
    assert np.max(np.abs(got - ref[:16])) <= 1e-4 * max(1.0, float(np.abs(ref).max()))


def _int8_inputs(path: Path, x: np.ndarray) -> list[np.ndarray]:
    """Quantized with the model's input parameters, read by TFLite (our reader may not
    know every op of the model yet)."""
    import tensorflow as tf

    from tinymcu.export.parity import quantize_input
    from tinymcu.mcu_runtime.ir import Quant

    det = tf.lite.Interpreter(model_path=str(path)).get_input_details()[0]
    q = Quant(np.array([det["quantization"][0]], np.float32),
              np.array([det["quantization"][1]], np.int64))
    return quantize_input(x, q)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_int8_tflm_runs_bit_exact_and_tracks_float(name: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import tensorflow as tf

    from tinymcu.mcu_runtime import oracle

    path, x, ref = _convert(name, tmp_path, monkeypatch)
    kinds = {o["op_name"] for o in tf.lite.Interpreter(model_path=str(path))._get_ops_details()}
    assert CASES[name][2] <= kinds  # the op the lowering promises is in the .tflite
    assert kinds <= route_check.runtime_ops(), kinds  # ... and nothing beyond our runtime's
    q = _int8_inputs(path, x)
    tflm = oracle.tflm_invoke_batch(path, [[v] for v in q])
    tref = oracle.ref_invoke_batch(path, [[v] for v in q])
    exact = not kinds & {"FULLY_CONNECTED", "BATCH_MATMUL", "RSQRT", "SOFTMAX"}
    for a, b in zip(tflm, tref):  # TFLM vs TFLite's reference kernels: equal, but for the
        # few steps by which those kernels round differently (FULLY_CONNECTED:
        # tensorflow/tensorflow#66358; RSQRT/BATCH_MATMUL/SOFTMAX requantize differently)
        diff = np.abs(a[0].astype(np.int32) - b[0].astype(np.int32)).max()
        assert diff <= (0 if exact else 2), diff
    od = tf.lite.Interpreter(model_path=str(path)).get_output_details()[0]
    scale, zp = od["quantization"]
    deq = np.stack([(o[0].astype(np.float32) - zp) * scale for o in tflm]).reshape(ref.shape)
    rel = np.abs(deq - ref).max() / np.abs(ref).max()
    assert rel < 0.05, rel  # a few int8 steps of the output range
    from tinymcu.mcu_runtime.check import load_graph
    from tinymcu.mcu_runtime.emulator import emulate
    from tinymcu.mcu_runtime.planner import plan
    from tinymcu.mcu_runtime.schedule import layer_schedule

    _, graph = load_graph(path)
    p = plan(graph, layer_schedule(graph))
    for v, t in zip(q, tflm):
        assert np.array_equal(emulate(graph, p, [v]).outputs[0].reshape(-1), t[0].reshape(-1))


@pytest.mark.slow
def test_lstm_conversion_is_fully_int8_every_time(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The converter's quantizer resolves chains of scale-keeping ops (a SLICE straight into
    a SPLIT) in a run-dependent order; the unrolled LSTM has none, so converting the same
    model again and again never leaves an op in float32 (it did in ~1 of 3 conversions)."""
    from tinymcu.mcu_runtime.check import load_graph

    for _ in range(6):
        path, _, _ = _convert("lstm_bidir_mean", tmp_path, monkeypatch)
        load_graph(path)  # refuses an op that computes in float32


def test_missing_runtime_op_is_named_before_converting(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Without TRANSPOSE_CONV in the runtime the op check refuses, naming the ONNX node and
    the TFLite op, before TensorFlow is traced."""
    from tinymcu.export.to_onnx import torch_to_onnx

    base = route_check.runtime_ops() - {"TRANSPOSE_CONV", "SLICE"}
    monkeypatch.setattr(route_check, "runtime_ops", lambda: base)
    module = TConv(3, 2, 1, 1).eval()
    x = np.zeros((1, 2, 4, 4), np.float32)
    check = torch_to_onnx(module, (1, 2, 4, 4), tmp_path / "t.onnx", x)
    with pytest.raises(TinymcuError) as e:
        onnx_to_tf.build_tf(check.model, check.input_name, check.input_shape)
    msg = str(e.value)
    assert "ONNX op ConvTranspose" in msg and "TRANSPOSE_CONV" in msg and "SLICE" in msg
