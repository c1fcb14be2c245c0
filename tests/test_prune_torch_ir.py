"""The torch shape graph plans to exactly the arena of the exported int8 model.

This is what lets the pruner gate SRAM before training with "the same memory model that
checks the firmware": for each model, export it for real (torch → ONNX → our TF builder →
int8 TFLite, the exporter's own stages), read it back, fold PADs as ``tinymcu check`` does, and
compare op list, shapes and planned arenas (per layer and best patch) with ``torch_graph``.
"""

from pathlib import Path

import numpy as np
import pytest
from torch import nn

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import patch
from tinymcu.mcu_runtime.passes import fold_pads
from tinymcu.mcu_runtime.planner import plan
from tinymcu.mcu_runtime.schedule import layer_schedule
from tinymcu.mcu_runtime.tflite_reader import load_tflite
from tinymcu.prune import zoo
from tinymcu.prune.torch_ir import torch_graph

MODELS = {
    "demo_cnn": (lambda: zoo.build("demo_cnn"), (1, 8, 8)),
    "mobilenetv2": (lambda: zoo.build("mobilenetv2", width=0.35, num_classes=10), (3, 48, 48)),
    "resnet8": (lambda: zoo.build("resnet8", num_classes=10), (3, 32, 32)),
}


def _export(model: nn.Module, shape: tuple[int, ...], tmp: Path) -> Path:
    """The exporter's stages up to the int8 .tflite (no TFLM probing: not under test here)."""
    from tinymcu.export import onnx_to_tf, quantize, to_onnx

    calib = np.random.default_rng(0).standard_normal((4, *shape)).astype(np.float32)
    check = to_onnx.torch_to_onnx(model.eval(), (1, *shape), tmp / "m.onnx", calib)
    tfm = onnx_to_tf.build_tf(check.model, check.input_name, check.input_shape)
    path = tmp / "m.tflite"
    path.write_bytes(quantize.quantize_int8(tfm, calib))
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = {}
    for name, (build, shape) in MODELS.items():
        tmp = tmp_path_factory.mktemp(name)
        out[name] = (build(), shape, fold_pads(load_tflite(_export(build(), shape, tmp))))
    return out


def _signature(graph):
    return [(op.kind, tuple(graph.tensors[op.outputs[0]].shape),
             op.attrs.get("padding"), op.attrs.get("pads"), op.attrs.get("activation"))
            for op in graph.ops]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_torch_graph_plans_like_the_exported_model(exported, name):
    model, shape, tfl = exported[name]
    g = torch_graph(model, shape)
    assert _signature(g) == _signature(tfl)
    ours, theirs = plan(g, layer_schedule(g)), plan(tfl, layer_schedule(tfl))
    assert ours.arena_bytes == theirs.arena_bytes
    assert ours.live_bytes == theirs.live_bytes
    if name == "mobilenetv2":
        a, b = patch.search(g), patch.search(tfl)
        assert (a.peak, a.split, a.grid, a.macs) == (b.peak, b.split, b.grid, b.macs)
        assert a.peak < ours.arena_bytes


def test_graph_is_a_shape_model_with_bn_and_relu_folded():
    g = torch_graph(zoo.build("demo_cnn"), (1, 8, 8))
    kinds = [op.kind for op in g.ops]
    assert kinds == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D",
                     "ADD", "CONV_2D", "MEAN", "FULLY_CONNECTED"]
    assert g.ops[5].attrs["activation"] == "RELU"  # torch.relu(x + y) fused into the ADD
    assert g.ops[-2].attrs["keep_dims"] is False   # pool + flatten is one MEAN
    assert g.tensors[g.inputs[0]].shape == (1, 8, 8, 1)
    assert g.tensors[g.outputs[0]].shape == (1, 10)
    assert g.tensors[g.ops[0].inputs[1]].shape == (16, 3, 3, 1)  # OHWI
    assert g.weight_bytes() > 0 and not np.any(g.tensors[g.ops[0].inputs[1]].data)


def test_standalone_relu_and_flatten_without_pool_become_ops():
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.MaxPool2d(2),
                        nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 3, 5))
    g = torch_graph(net, (2, 6, 6))
    assert [op.kind for op in g.ops] == ["CONV_2D", "MAX_POOL_2D", "RELU", "RESHAPE",
                                         "FULLY_CONNECTED"]
    assert g.tensors[g.ops[3].outputs[0]].shape == (1, 36)


@pytest.mark.parametrize("net, needle", [
    (nn.Sequential(nn.Conv2d(4, 8, 3, groups=2)), "grouped convolution"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.LSTM(2, 2)), "LSTM"),
    (nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 2, 3)), "BatchNorm must directly follow"),
])
def test_unsupported_models_fail_with_one_line(net, needle):
    with pytest.raises(TinymcuError, match=needle) as e:
        torch_graph(net, (net[0].num_features if isinstance(net[0], nn.BatchNorm2d)
                          else net[0].in_channels, 8, 8))
    assert "\n" not in str(e.value)


def test_untraceable_model_names_the_reason():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(TinymcuError, match="cannot trace Branchy"):
        torch_graph(Branchy(), (1, 4, 4))


def test_wrong_input_shape_is_bad_input():
    with pytest.raises(TinymcuError, match="does not run on input"):
        torch_graph(zoo.build("demo_cnn"), (3, 8, 8))
    with pytest.raises(TinymcuError, match="must be"):
        torch_graph(zoo.build("demo_cnn"), (8, 8))


def test_planning_leaves_the_model_alone():
    model = zoo.build("demo_cnn").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch_graph(model, (1, 8, 8))
    assert model.training
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
