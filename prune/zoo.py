"""MCU-sized PyTorch models, built in code with seeded random weights (nothing downloaded).

Every factory returns an ``nn.Module`` in eval-ready NCHW form that the export pipeline
(torch → ONNX → int8 TFLite) and the federated pruner accept. ``build(name, **kw)`` is the
entry point used by the CLI (``--model demo_cnn``) and by ``package.module:factory`` specs
such as ``tinymcu.prune.zoo:demo_cnn``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _make_divisible(v: float, divisor: int = 8) -> int:
    """Round channel counts the way torchvision's MobileNetV2 does (keeps SIMD-friendly widths)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
             act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1×1 expand → 3×3 depthwise → 1×1 project, residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn(cin, hidden, k=1))
        layers += [_conv_bn(hidden, hidden, stride=stride, groups=hidden),
                   _conv_bn(hidden, cout, k=1, act=False)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision-style MobileNetV2 with a width multiplier (MCUNet's backbone family)."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, width: float = 1.0, num_classes: int = 1000, in_ch: int = 3) -> None:
        super().__init__()
        cin = _make_divisible(32 * width)
        last = _make_divisible(1280 * max(1.0, width))
        layers: list[nn.Module] = [_conv_bn(in_ch, cin, stride=2)]
        for t, c, n, s in self.SETTINGS:
            cout = _make_divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(_conv_bn(cin, last, k=1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class DemoCNN(nn.Module):
    """The demo model for 8×8 digits: conv, depthwise-separable blocks, a residual add,
    global pooling and a linear head — every op family the MCU runtime must handle, small
    enough to train in seconds on two cores."""

    def __init__(self, num_classes: int = 10, in_ch: int = 1, width: int = 16) -> None:
        super().__init__()
        self.stem = _conv_bn(in_ch, width)
        self.ds1 = nn.Sequential(_conv_bn(width, width, groups=width),
                                 _conv_bn(width, 2 * width, k=1))
        self.ds2 = nn.Sequential(_conv_bn(2 * width, 2 * width, groups=2 * width),
                                 _conv_bn(2 * width, 2 * width, k=1, act=False))
        self.down = _conv_bn(2 * width, 4 * width, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ds1(self.stem(x))
        x = torch.relu(x + self.ds2(x))
        x = self.down(x)
        return self.fc(torch.flatten(self.pool(x), 1))


def demo_cnn(num_classes: int = 10, in_ch: int = 1, seed: int = 0, width: int = 16) -> nn.Module:
    """Factory for :class:`DemoCNN` (spec ``tinymcu.prune.zoo:demo_cnn``)."""
    torch.manual_seed(seed)
    return DemoCNN(num_classes, in_ch, width)


def mobilenetv2(width: float = 0.35, num_classes: int = 1000, in_ch: int = 3,
                seed: int = 0) -> nn.Module:
    """Factory for :class:`MobileNetV2` (spec ``tinymcu.prune.zoo:mobilenetv2``)."""
    torch.manual_seed(seed)
    return MobileNetV2(width, num_classes, in_ch)


class _BasicBlock(nn.Module):
    """ResNet basic block (two 3×3 convs), 1×1 strided shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(cin, cout, stride=stride),
                                  _conv_bn(cout, cout, act=False))
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout
                         else _conv_bn(cin, cout, k=1, stride=stride, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet8(nn.Module):
    """MLPerf Tiny image-classification ResNet-8 (16/32/64 channels, three basic blocks)."""

    def __init__(self, num_classes: int = 10, in_ch: int = 3, width: int = 16) -> None:
        super().__init__()
        self.stem = _conv_bn(in_ch, width)
        self.blocks = nn.Sequential(_BasicBlock(width, width, 1),
                                    _BasicBlock(width, 2 * width, 2),
                                    _BasicBlock(2 * width, 4 * width, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


class DSCNN(nn.Module):
    """MLPerf Tiny keyword-spotting DS-CNN: a 10×4 strided conv, four depthwise-separable
    blocks, global pooling, linear head (input 1×49×10 MFCCs in the benchmark)."""

    def __init__(self, num_classes: int = 12, in_ch: int = 1, width: int = 64,
                 blocks: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_ch, width, (10, 4), stride=2, padding=(5, 1), bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        for _ in range(blocks):
            layers += [_conv_bn(width, width, groups=width), _conv_bn(width, width, k=1)]
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


def resnet8(num_classes: int = 10, in_ch: int = 3, seed: int = 0, width: int = 16) -> nn.Module:
    """Factory for :class:`ResNet8` (spec ``tinymcu.prune.zoo:resnet8``)."""
    torch.manual_seed(seed)
    return ResNet8(num_classes, in_ch, width)


def ds_cnn(num_classes: int = 12, in_ch: int = 1, seed: int = 0, width: int = 64) -> nn.Module:
    """Factory for :class:`DSCNN` (spec ``tinymcu.prune.zoo:ds_cnn``)."""
    torch.manual_seed(seed)
    return DSCNN(num_classes, in_ch, width)


class Seq1dCNN(nn.Module):
    """A small 1-D CNN for MNIST-1D (1×40 sequences): three strided Conv1d+BN+ReLU stages and a
    linear head over the flattened features. Position matters in MNIST-1D (the digit template is
    shifted and sheared), so the head sees every position rather than a global pool."""

    def __init__(self, num_classes: int = 10, in_ch: int = 1, width: int = 32,
                 length: int = 40) -> None:
        super().__init__()

        def stage(cin: int, cout: int, k: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv1d(cin, cout, k, stride=2, padding=k // 2, bias=False),
                                 nn.BatchNorm1d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(stage(in_ch, width, 5), stage(width, width, 3),
                                      stage(width, 2 * width, 3))
        out_len = length
        for _ in range(3):
            out_len = (out_len - 1) // 2 + 1
        self.fc = nn.Linear(2 * width * out_len, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


class SmallCNN(nn.Module):
    """A small CNN for 28×28 grey images (animal-mnist): three strided 3×3 conv stages
    (16/32/64 channels), global pooling, linear head — ~24k prunable weights."""

    def __init__(self, num_classes: int = 10, in_ch: int = 1, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(_conv_bn(in_ch, width, stride=2),
                                      _conv_bn(width, 2 * width, stride=2),
                                      _conv_bn(2 * width, 4 * width, stride=2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def seq1d_cnn(num_classes: int = 10, in_ch: int = 1, seed: int = 0, width: int = 32) -> nn.Module:
    """Factory for :class:`Seq1dCNN` (spec ``tinymcu.prune.zoo:seq1d_cnn``)."""
    torch.manual_seed(seed)
    return Seq1dCNN(num_classes, in_ch, width)


def small_cnn(num_classes: int = 10, in_ch: int = 1, seed: int = 0, width: int = 16) -> nn.Module:
    """Factory for :class:`SmallCNN` (spec ``tinymcu.prune.zoo:small_cnn``)."""
    torch.manual_seed(seed)
    return SmallCNN(num_classes, in_ch, width)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "seq1d_cnn": seq1d_cnn,
    "small_cnn": small_cnn,
    "demo_cnn": demo_cnn,
    "mobilenetv2": mobilenetv2,
    "resnet8": resnet8,
    "ds_cnn": ds_cnn,
}


#: the NCHW input (batch 1) each zoo model is built for by default
INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "demo_cnn": (1, 1, 8, 8),
    "resnet8": (1, 3, 32, 32),
    "ds_cnn": (1, 1, 49, 10),
    "seq1d_cnn": (1, 1, 40),
    "small_cnn": (1, 1, 28, 28),
}


def build(name: str, **kwargs: object) -> nn.Module:
    """Build a zoo model by name; unknown names raise ``KeyError`` listing the choices."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)
