"""Twelve small PyTorch models of the kinds MCU users deploy, seeded random weights.

Each factory takes ``seed`` and returns an ``nn.Module`` in eval mode; ``INPUTS`` holds its
input shape (batch 1, channels first). Sizes are tiny so a conversion takes seconds; the op
mix is what matters: each kind exercises the torch ops issue 12 lists (hardswish + SE with
hardsigmoid + 5×5 depthwise, MaxPool and stride-2 1×1 shortcuts, Conv1d, LSTM, ConvTranspose
and Upsample with skip concat, LayerNorm + GELU + attention, Linear + BatchNorm1d,
LeakyReLU/PReLU/Tanh/Sigmoid, AdaptiveAvgPool + Flatten + Dropout, MaxPool ceil_mode,
depthwise ``padding='same'`` with dilation). BatchNorm statistics are randomised so folding
is exercised on non-trivial values.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _seeded(seed: int) -> None:
    torch.manual_seed(seed)


def _randomise_bn(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            with torch.no_grad():
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.2, 0.2, generator=g)
    return model.eval()


def _cbr(cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1,
         act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), act())


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, r: int = 4) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, c // r, 1), nn.Conv2d(c // r, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class MobileNetV3Small(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = _cbr(3, 8, 3, 2, act=nn.Hardswish)
        self.dw = _cbr(8, 8, 5, 2, groups=8, act=nn.Hardswish)
        self.se = SqueezeExcite(8)
        self.pw = nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.se(self.dw(self.stem(x))))
        return self.head(F.hardswish(y).mean((2, 3)))


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.a = _cbr(cin, cout, 3, stride)
        self.b = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                   nn.BatchNorm2d(cout)) if stride != 1 or cin != cout \
            else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.b(self.a(x)) + self.short(x))


class ResNetMaxPool(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = _cbr(3, 8, 3, 1)
        self.pool = nn.MaxPool2d(2)
        self.blocks = nn.Sequential(ResBlock(8, 8, 1), ResBlock(8, 16, 2))
        self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.pool(self.stem(x))).mean((2, 3)))


class DsCnnKws(nn.Module):
    def __init__(self, classes: int = 12) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, (5, 3), (2, 1), (2, 1), bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU())
        self.ds = nn.Sequential(_cbr(16, 16, 3, groups=16), _cbr(16, 16, 1),
                                _cbr(16, 16, 3, groups=16), _cbr(16, 16, 1))
        self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(self.ds(self.stem(x)), 1).flatten(1))


class Conv1dHar(nn.Module):
    def __init__(self, classes: int = 6) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(3, 8, 5, padding=2)
        self.bn1 = nn.BatchNorm1d(8)
        self.c2 = nn.Conv1d(8, 16, 3, stride=2, padding=1)
        self.pool = nn.MaxPool1d(2)
        self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(F.relu(self.c2(F.relu(self.bn1(self.c1(x))))))
        return self.fc(y.mean(2))


class LstmKws(nn.Module):
    """Input (N, features, frames) like an MFCC map; the LSTM runs over frames."""

    def __init__(self, features: int = 10, hidden: int = 16, classes: int = 8) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x.transpose(1, 2))
        return self.fc(out[:, -1])


class TinyUNet(nn.Module):
    def __init__(self, classes: int = 2) -> None:
        super().__init__()
        self.e1 = _cbr(1, 8)
        self.e2 = _cbr(8, 16, 3, 2)
        self.up_t = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.d1 = _cbr(16, 8)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.bil = nn.Upsample(scale_factor=0.5, mode="bilinear", align_corners=False)
        self.out = nn.Conv2d(8 + 16, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.e1(x)
        b = self.e2(a)
        d = self.d1(torch.cat([self.up_t(b), a], 1))
        return self.out(torch.cat([self.bil(d), b], 1)).relu() + self.up(b)[:, :2, ::2, ::2]


class TinyViT(nn.Module):
    def __init__(self, dim: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 4, 4)
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, classes)
        self.scale = dim ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2)          # (1, tokens, dim)
        q, k, v = self.qkv(self.ln1(t)).chunk(3, dim=-1)
        att = torch.softmax(q @ k.transpose(1, 2) * self.scale, dim=-1)
        t = t + self.proj(att @ v)
        t = t + self.mlp(self.ln2(t))
        return self.head(t.mean(1))


class LinearBnAutoencoder(nn.Module):
    def __init__(self, features: int = 32) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(features, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                 nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU())
        self.dec = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                 nn.Linear(16, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(x))


class ActivationNet(nn.Module):
    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.c3 = nn.Conv2d(8, 8, 3, padding=1)
        self.prelu = nn.PReLU(8)
        self.fc = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.c1(x), 0.1)
        y = self.prelu(self.c2(y))
        y = torch.tanh(self.c3(y)) * torch.sigmoid(y)
        return self.fc(y.mean((2, 3)))


class PoolHead(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(_cbr(3, 8, 3, 2), _cbr(8, 16, 3, 2))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                                  nn.Linear(16, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.s = nn.Conv2d(cin, squeeze, 1)
        self.e1, self.e3 = nn.Conv2d(squeeze, expand, 1), nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.relu(self.s(x))
        return torch.cat([F.relu(self.e1(s)), F.relu(self.e3(s))], 1)


class SqueezeNetFire(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.fire = Fire(16, 8, 16)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.cls = nn.Conv2d(32, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool2(self.fire(self.pool1(F.relu(self.stem(x)))))
        return F.relu(self.cls(y)).mean((2, 3))


class DilatedSame(nn.Module):
    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding="same")
        self.dw = nn.Conv2d(8, 8, 3, padding="same", dilation=2, groups=8)
        self.pw = nn.Conv2d(8, 16, 1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.pw(F.relu(self.dw(F.relu(self.c1(x))))))
        return self.fc(y.mean((2, 3)))


MODELS: dict[str, type[nn.Module]] = {
    "mobilenetv3_small": MobileNetV3Small, "resnet_maxpool": ResNetMaxPool,
    "ds_cnn_kws": DsCnnKws, "conv1d_har": Conv1dHar, "lstm_kws": LstmKws,
    "unet": TinyUNet, "tiny_vit": TinyViT, "linear_bn_autoencoder": LinearBnAutoencoder,
    "activations": ActivationNet, "pool_flatten_dropout": PoolHead,
    "squeezenet_fire": SqueezeNetFire, "dilated_same": DilatedSame,
}

INPUTS: dict[str, tuple[int, ...]] = {
    "mobilenetv3_small": (1, 3, 32, 32), "resnet_maxpool": (1, 3, 32, 32),
    "ds_cnn_kws": (1, 1, 49, 10), "conv1d_har": (1, 3, 64), "lstm_kws": (1, 10, 16),
    "unet": (1, 1, 16, 16), "tiny_vit": (1, 3, 16, 16), "linear_bn_autoencoder": (1, 32),
    "activations": (1, 1, 16, 16), "pool_flatten_dropout": (1, 3, 16, 16),
    "squeezenet_fire": (1, 3, 32, 32), "dilated_same": (1, 1, 16, 16),
}


def build(name: str, seed: int = 0) -> nn.Module:
    _seeded(seed)
    return _randomise_bn(MODELS[name]())


def _factory(name: str):  # noqa: ANN202 - module-level factories for package.module:factory
    def make(seed: int = 0) -> nn.Module:
        return build(name, seed)

    make.__name__ = name
    return make


for _name in MODELS:
    globals()[_name] = _factory(_name)
