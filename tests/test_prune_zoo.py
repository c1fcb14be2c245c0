"""The zoo models the pruner adds (ResNet-8, DS-CNN) build, run and have prunable layers."""

import torch

from tinymcu.prune import masks as M
from tinymcu.prune import zoo


def test_resnet8_matches_the_mlperf_tiny_layout():
    model = zoo.build("resnet8", num_classes=10, in_ch=3).eval()
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    convs = [n for n in M.prunable_names(model) if n != "fc.weight"]
    assert len(convs) == 9  # stem + 3 blocks × 2 convs + 2 strided shortcuts
    assert 70_000 < sum(p.numel() for p in model.parameters()) < 90_000  # ~78k in MLPerf Tiny


def test_ds_cnn_runs_on_kws_features_and_digits():
    model = zoo.build("ds_cnn", num_classes=12).eval()
    assert model(torch.zeros(1, 1, 49, 10)).shape == (1, 12)
    assert zoo.build("ds_cnn", num_classes=10).eval()(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    assert zoo.build("ds_cnn", seed=1).stem[0].weight.shape == (64, 1, 10, 4)


def test_models_for_the_harder_builtin_data():
    seq = zoo.build("seq1d_cnn", num_classes=10, in_ch=1).eval()
    assert seq(torch.zeros(2, 1, 40)).shape == (2, 10)
    assert [n for n in M.prunable_names(seq)][-1] == "fc.weight" and len(M.prunable_names(seq)) == 4
    cnn = zoo.build("small_cnn", num_classes=10, in_ch=1).eval()
    assert cnn(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    prunable = sum(dict(cnn.named_parameters())[n].numel() for n in M.prunable_names(cnn))
    assert 20_000 < prunable < 30_000
