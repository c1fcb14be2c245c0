"""Random int8 CNN graphs built directly in the IR, for the patch-scheduler tests.

No TensorFlow: weights, biases and quantization parameters are drawn from a seeded RNG and
follow TFLite's int8 spec (per-channel symmetric weights, int32 bias at input×weight scale,
pools and concatenations keeping their input's quantization), so the kernels accept them.
"""

from __future__ import annotations

import numpy as np

from tinymcu.mcu_runtime.ir import Graph, Op, Quant, Tensor


def _quant(scale: float | np.ndarray, zero_point: int | np.ndarray = 0, axis: int = 0) -> Quant:
    return Quant(np.atleast_1d(np.asarray(scale, np.float32)),
                 np.atleast_1d(np.asarray(zero_point, np.int64)), axis)


def out_size(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """TFLite's output size for SAME / VALID."""
    if padding == "SAME":
        return (size + stride - 1) // stride
    return (size - (kernel - 1) * dilation - 1) // stride + 1


class GraphBuilder:
    """Append int8 ops to a graph; each method returns the output tensor index."""

    def __init__(self, shape: tuple[int, int, int], seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []
        self.input = self._act((1, *shape))

    def _act(self, shape: tuple[int, ...], quant: Quant | None = None) -> int:
        if quant is None:
            quant = _quant(self.rng.uniform(0.01, 0.1), int(self.rng.integers(-20, 20)))
        idx = len(self.tensors)
        self.tensors.append(Tensor(idx, f"act{idx}", tuple(shape), "int8", quant))
        return idx

    def _const(self, data: np.ndarray, dtype: str, quant: Quant | None = None) -> int:
        idx = len(self.tensors)
        self.tensors.append(Tensor(idx, f"const{idx}", data.shape, dtype, quant, data))
        return idx

    def shape(self, t: int) -> tuple[int, ...]:
        return self.tensors[t].shape

    def _op(self, kind: str, inputs: list[int], out: int, **attrs: object) -> int:
        self.ops.append(Op(len(self.ops), kind, tuple(inputs), (out,), dict(attrs)))
        return out

    def conv(self, x: int, channels: int, kernel: int = 3, stride: int = 1, dilation: int = 1,
             padding: str = "SAME", activation: str = "RELU6", depthwise: bool = False,
             multiplier: int = 1) -> int:
        """CONV_2D, or DEPTHWISE_CONV_2D with depth ``multiplier`` (``channels`` unused)."""
        _, h, w, cin = self.shape(x)
        cout = cin * multiplier if depthwise else channels
        oh = out_size(h, kernel, stride, dilation, padding)
        ow = out_size(w, kernel, stride, dilation, padding)
        if oh < 1 or ow < 1:
            raise ValueError("window larger than input")
        wscale = self.rng.uniform(0.002, 0.02, cout).astype(np.float32)
        if depthwise:
            wdata = self.rng.integers(-127, 128, (1, kernel, kernel, cout), dtype=np.int8)
            wt = self._const(wdata, "int8", _quant(wscale, np.zeros(cout, np.int64), 3))
        else:
            wdata = self.rng.integers(-127, 128, (cout, kernel, kernel, cin), dtype=np.int8)
            wt = self._const(wdata, "int8", _quant(wscale, np.zeros(cout, np.int64), 0))
        in_scale = float(self.tensors[x].quant.scale[0])
        bias = self.rng.integers(-2000, 2000, cout).astype(np.int32)
        bt = self._const(bias, "int32", _quant(wscale * in_scale, np.zeros(cout, np.int64)))
        out = self._act((1, oh, ow, cout))
        attrs: dict[str, object] = {"stride": (stride, stride), "dilation": (dilation, dilation),
                                    "padding": padding, "activation": activation}
        if depthwise:
            attrs["depth_multiplier"] = multiplier
        kind = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
        return self._op(kind, [x, wt, bt], out, **attrs)

    def pool(self, x: int, kind: str, kernel: int = 2, stride: int = 2,
             padding: str = "VALID") -> int:
        _, h, w, c = self.shape(x)
        oh = out_size(h, kernel, stride, 1, padding)
        ow = out_size(w, kernel, stride, 1, padding)
        if oh < 1 or ow < 1:
            raise ValueError("window larger than input")
        out = self._act((1, oh, ow, c), self.tensors[x].quant)
        return self._op(kind, [x], out, stride=(stride, stride), filter=(kernel, kernel),
                        padding=padding, activation="NONE")

    def pad(self, x: int, top: int, bottom: int, left: int, right: int,
            value: int | None = None) -> int:
        """PAD with the zero point, or PADV2 with the int8 constant ``value`` (e.g. -128
        before a max pool, as converters emit for PyTorch's padded MaxPool2d)."""
        _, h, w, c = self.shape(x)
        widths = self._const(np.array([[0, 0], [top, bottom], [left, right], [0, 0]], np.int32),
                             "int32")
        out = self._act((1, h + top + bottom, w + left + right, c), self.tensors[x].quant)
        if value is None:
            return self._op("PAD", [x, widths], out)
        fill = self._const(np.array([value], np.int8), "int8", self.tensors[x].quant)
        return self._op("PADV2", [x, widths, fill], out)

    def torch_style_conv(self, x: int, channels: int, kernel: int = 3, stride: int = 2,
                         pad: int = 1, depthwise: bool = False) -> int:
        """PyTorch ``Conv2d(padding=pad)`` as exporters emit it: PAD, then a VALID conv.

        Our exporter trims padding rows no window reads, so the PAD is often asymmetric.
        """
        _, h, w, _ = self.shape(x)
        bottom = pad - ((h + 2 * pad - kernel) % stride)
        right = pad - ((w + 2 * pad - kernel) % stride)
        x = self.pad(x, pad, max(bottom, 0), pad, max(right, 0))
        return self.conv(x, channels, kernel=kernel, stride=stride, padding="VALID",
                         depthwise=depthwise)

    def add(self, a: int, b: int, activation: str = "NONE") -> int:
        return self._op("ADD", [a, b], self._act(self.shape(a)), activation=activation)

    def concat(self, a: int, b: int) -> int:
        _, h, w, ca = self.shape(a)
        out = self._act((1, h, w, ca + self.shape(b)[3]), self.tensors[a].quant)
        self.tensors[b].quant = self.tensors[a].quant
        return self._op("CONCATENATION", [a, b], out, axis=3, activation="NONE")

    def head(self, x: int, classes: int = 4) -> int:
        """Global average pool + fully connected: ops a patch stage must not contain."""
        _, h, w, c = self.shape(x)
        axes = self._const(np.array([1, 2], np.int32), "int32")
        pooled = self._act((1, 1, 1, c))
        self._op("MEAN", [x, axes], pooled, keep_dims=True)
        flat_shape = self._const(np.array([1, c], np.int32), "int32")
        flat = self._act((1, c), self.tensors[pooled].quant)
        self._op("RESHAPE", [pooled, flat_shape], flat, new_shape=(1, c))
        wscale = float(self.rng.uniform(0.002, 0.02))
        wt = self._const(self.rng.integers(-127, 128, (classes, c), dtype=np.int8), "int8",
                         _quant(wscale))
        in_scale = float(self.tensors[flat].quant.scale[0])
        bt = self._const(self.rng.integers(-500, 500, classes).astype(np.int32), "int32",
                         _quant(wscale * in_scale))
        out = self._act((1, classes))
        return self._op("FULLY_CONNECTED", [flat, wt, bt], out, activation="NONE")

    def build(self, output: int) -> Graph:
        return Graph(self.tensors, self.ops, [self.input], [output], name="random")


def inverted_residual(b: GraphBuilder, x: int, expand: int, out: int, stride: int) -> int:
    """A MobileNetV2 block: 1×1 expand, 3×3 depthwise, 1×1 project, skip ADD when shapes match."""
    cin = b.shape(x)[3]
    y = b.conv(x, cin * expand, kernel=1)
    y = b.conv(y, 0, kernel=3, stride=stride, depthwise=True)
    y = b.conv(y, out, kernel=1, activation="NONE")
    if stride == 1 and cin == out:
        y = b.add(x, y)
    return y


def mobilenet_like(size: int = 23, seed: int = 0) -> Graph:
    """A small MobileNetV2-style net: stride-2 stem, residual blocks, odd map sizes."""
    b = GraphBuilder((size, size, 3), seed)
    x = b.conv(b.input, 8, kernel=3, stride=2)
    x = inverted_residual(b, x, 1, 8, 1)
    x = inverted_residual(b, x, 3, 8, 1)
    x = inverted_residual(b, x, 3, 12, 2)
    x = inverted_residual(b, x, 3, 12, 1)
    x = inverted_residual(b, x, 3, 16, 2)
    return b.build(b.head(x))


def random_stack(rng: np.random.Generator) -> Graph:
    """A random conv stack with strides, dilation, SAME/VALID, pools, residuals, concat, and
    PyTorch-style PAD + VALID convs."""
    size = (int(rng.integers(6, 20)), int(rng.integers(6, 20)))
    b = GraphBuilder((*size, int(rng.integers(1, 4))), int(rng.integers(1 << 30)))
    x = b.input
    for _ in range(int(rng.integers(2, 6))):
        h, w = b.shape(x)[1:3]
        choice = int(rng.integers(0, 7))
        try:
            if choice == 0:
                x = b.conv(x, int(rng.integers(1, 6)), kernel=int(rng.choice([1, 3, 5])),
                           stride=int(rng.choice([1, 2])), dilation=int(rng.choice([1, 1, 2])),
                           padding=str(rng.choice(["SAME", "VALID"])))
            elif choice == 1:
                x = b.conv(x, 0, kernel=int(rng.choice([3, 5])), stride=int(rng.choice([1, 2])),
                           padding=str(rng.choice(["SAME", "VALID"])), depthwise=True)
            elif choice == 2:
                x = b.pool(x, str(rng.choice(["AVERAGE_POOL_2D", "MAX_POOL_2D"])),
                           kernel=int(rng.choice([2, 3])), stride=int(rng.choice([1, 2])),
                           padding=str(rng.choice(["SAME", "VALID"])))
            elif choice == 3:
                y = b.conv(x, b.shape(x)[3], kernel=3, padding="SAME")
                x = b.add(x, y)
            elif choice == 4:
                y = b.conv(x, int(rng.integers(1, 4)), kernel=3, padding="SAME")
                z = b.conv(x, int(rng.integers(1, 4)), kernel=1)
                x = b.concat(y, z)
            elif choice == 5:
                x = inverted_residual(b, x, 2, b.shape(x)[3], 1)
            else:
                x = b.torch_style_conv(x, int(rng.integers(1, 6)), kernel=3,
                                       stride=int(rng.choice([1, 2])),
                                       pad=int(rng.choice([1, 1, 2])),
                                       depthwise=bool(rng.integers(0, 2)))
        except ValueError:
            continue
        if min(h, w) < 2:
            break
    if not b.ops:
        x = b.conv(x, 2, kernel=1)
    return b.build(x)


def torch_mobilenetv2() -> object:
    """Factory spec ``patch_graphs:torch_mobilenetv2`` for ``tinymcu export``: the zoo's
    torchvision-style MobileNetV2, width 0.35, 10 classes (seeded weights)."""
    from tinymcu.prune import zoo

    return zoo.mobilenetv2(width=0.35, num_classes=10)
