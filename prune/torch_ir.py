"""A torch model's int8 activation graph, from shapes alone — a shape model for memory planning.

The pruner must know, before training, whether a model's activations fit a board's SRAM. The
exact answer is the mcu_runtime planner's arena on the graph our runtime will execute, so
instead of a torch-side estimate we build that graph directly from the torch model: traced
with ``torch.fx``, BatchNorm and ReLU/ReLU6 folded into the conv/linear/add before them, conv
padding mapped onto SAME/VALID/explicit exactly as the exporter does
(:func:`tinymcu.export.onnx_to_tf.same_or_explicit`, then the padding ``passes.fold_pads``
leaves), and a global average pool followed by a flatten becoming one MEAN without kept dims.
No TensorFlow, no export, no calibration.

The result is **not executable**: activations carry a dummy quantization (scale 1, zero point
0) and weights are int8/int32 zeros of the right shapes. The planner only needs sizes, and the
kernels' MAC counts only filter shapes. A test checks that its arena equals the planner's on
the exported .tflite.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn import functional as F

from tinymcu.errors import TinymcuError
from tinymcu.export.onnx_to_tf import same_or_explicit
from tinymcu.mcu_runtime.ir import Graph, Op, Quant, Tensor

_ACT_QUANT = Quant(np.ones(1, np.float32), np.zeros(1, np.int64))

#: ops a following ReLU/ReLU6 fuses into (the TFLite converter's fused activations)
_FUSES_ACTIVATION = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD"})

_RELU_FUNCS = {torch.relu: "RELU", F.relu: "RELU", F.relu6: "RELU6"}
_ADD_FUNCS = {operator.add, torch.add, operator.iadd}
_FLATTEN_FUNCS = {torch.flatten}
_MEAN_FUNCS = {torch.mean}


@dataclass
class _Builder:
    """Grows the IR graph while walking the traced torch graph in execution order."""

    tensors: list[Tensor] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    #: fx node name → IR tensor index of the activation it computes
    value: dict[str, int] = field(default_factory=dict)
    #: IR tensor index → number of torch users of the fx node that produced it
    users: dict[int, int] = field(default_factory=dict)

    def activation(self, name: str, shape: tuple[int, ...]) -> int:
        self.tensors.append(Tensor(len(self.tensors), name, tuple(shape), "int8", _ACT_QUANT))
        return len(self.tensors) - 1

    def const(self, name: str, shape: tuple[int, ...], dtype: str = "int8",
              data: np.ndarray | None = None) -> int:
        channels = shape[0] if dtype == "int8" and shape else 1
        quant = Quant(np.ones(channels, np.float32), np.zeros(channels, np.int64))
        arr = np.zeros(shape, dtype) if data is None else data
        self.tensors.append(Tensor(len(self.tensors), name, tuple(shape), dtype, quant, arr))
        return len(self.tensors) - 1

    def op(self, kind: str, inputs: tuple[int, ...], out_name: str, out_shape: tuple[int, ...],
           attrs: dict) -> int:
        out = self.activation(out_name, out_shape)
        self.ops.append(Op(len(self.ops), kind, inputs, (out,), attrs))
        return out

    def producer(self, tensor: int) -> Op | None:
        return next((op for op in reversed(self.ops) if tensor in op.outputs), None)


def torch_graph(model: nn.Module, input_shape: tuple[int, ...]) -> Graph:
    """The int8 graph our runtime would execute for ``model`` on one ``input_shape`` (C, H, W
    or N=1, C, H, W) sample — a shape model for the planner, not for execution (see module)."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) not in (2, 4) or shape[0] != 1:
        raise TinymcuError(f"input shape {input_shape} must be (C, H, W) or (1, C, H, W)")
    name = type(model).__name__
    model = copy.deepcopy(model).eval()  # shape propagation must not touch the caller's BN stats
    try:
        gm = fx.symbolic_trace(model)
    except Exception as e:  # fx raises TraceError, TypeError, NotImplementedError, ...
        raise TinymcuError(f"cannot trace {name} with torch.fx: "
                           f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    with torch.no_grad():
        try:
            ShapeProp(gm).propagate(torch.zeros(shape))
        except Exception as e:  # a wrong input shape surfaces as any torch error
            raise TinymcuError(f"{name} does not run on input {shape}: "
                               f"{str(e).splitlines()[0]}") from None
    b = _Builder()
    inputs: list[int] = []
    outputs: list[int] = []
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if inputs:
                raise TinymcuError("only models with one input are supported")
            inputs.append(b.activation(node.name, _nhwc(node)))
            b.value[node.name] = inputs[0]
        elif node.op == "output":
            outputs = [b.value[n.name] for n in _flat_args(node.args)]
        elif node.op == "get_attr":
            raise TinymcuError(f"{node.target}: parameters used outside a layer are not supported")
        else:
            _lower(b, node, modules)
        if node.name in b.value:  # an alias (BN, Identity) passes on its own readers
            b.users[b.value[node.name]] = len(node.users)
    if not b.ops:
        raise TinymcuError(f"{name} computes nothing")
    return Graph(b.tensors, b.ops, inputs, outputs, name)


def _flat_args(args: object) -> list[fx.Node]:
    if isinstance(args, fx.Node):
        return [args]
    if isinstance(args, (tuple, list)):
        return [n for a in args for n in _flat_args(a)]
    return []


def _shape(node: fx.Node) -> tuple[int, ...]:
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        raise TinymcuError(f"{node.name}: produces no single tensor; not supported")
    return tuple(int(d) for d in meta.shape)


def _nhwc(node: fx.Node) -> tuple[int, ...]:
    s = _shape(node)
    return (s[0], s[2], s[3], s[1]) if len(s) == 4 else s


def _lower(b: _Builder, node: fx.Node, modules: dict[str, nn.Module]) -> None:
    """Append the IR op(s) for one fx node, or alias its value to its input."""
    target = node.target
    if node.op == "call_module":
        m = modules[str(target)]
        x = _arg(b, node, 0)
        if isinstance(m, nn.Conv2d):
            b.value[node.name] = _conv(b, node, x, m)
        elif isinstance(m, nn.BatchNorm2d):
            b.value[node.name] = _fold_bn(b, node, x)
        elif isinstance(m, (nn.ReLU, nn.ReLU6)):
            b.value[node.name] = _relu(b, node, x, "RELU6" if isinstance(m, nn.ReLU6) else "RELU")
        elif isinstance(m, nn.Hardtanh) and (m.min_val, m.max_val) == (0.0, 6.0):
            b.value[node.name] = _relu(b, node, x, "RELU6")
        elif isinstance(m, nn.Linear):
            b.value[node.name] = _linear(b, node, x, m)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            if _shape(node)[2:] != (1, 1):
                raise TinymcuError(f"{node.name}: AdaptiveAvgPool2d to {_shape(node)[2:]} is not "
                                   "supported; only global pooling (output size 1)")
            b.value[node.name] = _mean(b, node, x, keep=True)
        elif isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)):
            b.value[node.name] = _pool(b, node, x, m)
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise TinymcuError(f"{node.name}: only Flatten(1, -1) is supported")
            b.value[node.name] = _flatten(b, node, x)
        elif isinstance(m, (nn.Identity, nn.Dropout)):
            b.value[node.name] = x
        elif isinstance(m, nn.Hardswish):
            b.value[node.name] = b.op("HARD_SWISH", (x,), node.name, _nhwc(node), {})
        elif isinstance(m, nn.Sigmoid):
            b.value[node.name] = b.op("LOGISTIC", (x,), node.name, _nhwc(node), {})
        else:
            raise TinymcuError(f"layer {target} ({type(m).__name__}) is not supported by the "
                               "MCU runtime's memory model")
        return
    name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    if node.op == "call_method":
        if name in ("size", "dim"):
            return  # shape arithmetic; fixed at trace time
        x = _arg(b, node, 0)
        if name in ("flatten", "view", "reshape"):
            b.value[node.name] = _flatten(b, node, x)
        elif name in ("relu", "relu_"):
            b.value[node.name] = _relu(b, node, x, "RELU")
        elif name in ("add", "add_"):
            b.value[node.name] = _add(b, node)
        elif name == "mean":
            b.value[node.name] = _mean(b, node, x, keep=len(_shape(node)) == 4)
        elif name in ("contiguous",):
            b.value[node.name] = x
        else:
            raise TinymcuError(f"tensor method .{name}() is not supported by the MCU runtime's "
                               "memory model")
        return
    if target in _ADD_FUNCS:
        b.value[node.name] = _add(b, node)
    elif target in _RELU_FUNCS:
        b.value[node.name] = _relu(b, node, _arg(b, node, 0), _RELU_FUNCS[target])
    elif target is F.hardtanh and tuple(node.args[1:3]) == (0.0, 6.0):
        b.value[node.name] = _relu(b, node, _arg(b, node, 0), "RELU6")
    elif target in _FLATTEN_FUNCS or target is torch.reshape:
        b.value[node.name] = _flatten(b, node, _arg(b, node, 0))
    elif target in _MEAN_FUNCS:
        b.value[node.name] = _mean(b, node, _arg(b, node, 0), keep=len(_shape(node)) == 4)
    elif target is F.adaptive_avg_pool2d and _shape(node)[2:] == (1, 1):
        b.value[node.name] = _mean(b, node, _arg(b, node, 0), keep=True)
    elif target is getattr and node.args[1] == "shape":
        return
    else:
        raise TinymcuError(f"function {name} is not supported by the MCU runtime's memory model")


def _arg(b: _Builder, node: fx.Node, i: int) -> int:
    a = node.args[i]
    if not isinstance(a, fx.Node) or a.name not in b.value:
        raise TinymcuError(f"{node.name}: argument {i} is not a traced activation")
    return b.value[a.name]


def _conv(b: _Builder, node: fx.Node, x: int, m: nn.Conv2d) -> int:
    if m.padding_mode != "zeros":
        raise TinymcuError(f"{node.target}: padding_mode {m.padding_mode!r} is not supported")
    _, h, w, cin = b.tensors[x].shape
    k, s, d = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)
    if isinstance(m.padding, str):
        pads = (0, 0, 0, 0) if m.padding == "valid" else _torch_same(k, d)
    else:
        ph, pw = m.padding
        pads = (ph, pw, ph, pw)
    padding, explicit = same_or_explicit((h, w), k, s, d, pads)
    attrs: dict = {"stride": s, "dilation": d, "padding": padding, "activation": "NONE"}
    if any(explicit):
        top, left, bottom, right = explicit
        if max(top, bottom) >= (k[0] - 1) * d[0] + 1 or max(left, right) >= (k[1] - 1) * d[1] + 1:
            raise TinymcuError(f"{node.target}: padding {m.padding} is not smaller than the "
                               "kernel; not supported")
        attrs.update(padding="EXPLICIT", pads=(top, bottom, left, right))
    cout = m.out_channels
    if m.groups == 1:
        kind, filt = "CONV_2D", (cout, *k, cin)
    elif m.groups == cin and m.in_channels == cin and cout % cin == 0:
        if s[0] != s[1]:
            raise TinymcuError(f"{node.target}: depthwise conv with unequal strides {s} is not "
                               "supported")
        kind, filt = "DEPTHWISE_CONV_2D", (1, *k, cout)
        attrs["depth_multiplier"] = cout // cin
    else:
        raise TinymcuError(f"{node.target}: grouped convolution (groups={m.groups}, {cin} "
                           "channels) is not supported; only groups=1 and depthwise")
    wt = b.const(f"{node.target}.weight", filt)
    bias = b.const(f"{node.target}.bias", (cout,), "int32")
    return b.op(kind, (x, wt, bias), node.name, _nhwc(node), attrs)


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    """A 2-D layer's (H, W) setting, given as one int or a pair."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _torch_same(k: tuple[int, ...], d: tuple[int, ...]) -> tuple[int, int, int, int]:
    """torch's ``padding="same"``: total (k-1)·d, the smaller half first."""
    total = [(k[i] - 1) * d[i] for i in range(2)]
    return (total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2)


def _linear(b: _Builder, node: fx.Node, x: int, m: nn.Linear) -> int:
    if len(b.tensors[x].shape) != 2:
        raise TinymcuError(f"{node.target}: Linear on a rank-{len(b.tensors[x].shape)} input is "
                           "not supported; flatten first")
    wt = b.const(f"{node.target}.weight", (m.out_features, m.in_features))
    bias = b.const(f"{node.target}.bias", (m.out_features,), "int32")
    return b.op("FULLY_CONNECTED", (x, wt, bias), node.name, _shape(node),
                {"activation": "NONE", "keep_num_dims": False})


def _fold_bn(b: _Builder, node: fx.Node, x: int) -> int:
    """BatchNorm folds into the conv before it (the exporter's rule): same tensor."""
    prod = b.producer(x)
    if prod is None or prod.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D") or b.users.get(x) != 1 \
            or prod.attrs["activation"] != "NONE":
        raise TinymcuError(f"{node.target}: BatchNorm must directly follow a convolution "
                           "(it is folded into it)")
    return x


def _relu(b: _Builder, node: fx.Node, x: int, kind: str) -> int:
    """Fused into the producing op when it is its only reader, else a RELU/RELU6 op."""
    prod = b.producer(x)
    if prod is not None and prod.kind in _FUSES_ACTIVATION and b.users.get(x) == 1 \
            and prod.attrs.get("activation") == "NONE":
        prod.attrs["activation"] = kind
        return x
    return b.op(kind, (x,), node.name, b.tensors[x].shape, {})


def _add(b: _Builder, node: fx.Node) -> int:
    if len(node.args) != 2 or node.kwargs.get("alpha", 1) != 1:
        raise TinymcuError(f"{node.name}: only a + b of two activations is supported")
    xs = (_arg(b, node, 0), _arg(b, node, 1))
    if b.tensors[xs[0]].shape != b.tensors[xs[1]].shape:
        raise TinymcuError(f"{node.name}: broadcasting add is not supported")
    return b.op("ADD", xs, node.name, b.tensors[xs[0]].shape, {"activation": "NONE"})


def _mean(b: _Builder, node: fx.Node, x: int, keep: bool) -> int:
    """Global average pool → MEAN over H, W; a pool whose only reader flattens it to 2-D
    becomes one MEAN without kept dims, as in the exporter."""
    src = b.tensors[x].shape
    if len(src) != 4 or _shape(node) not in ((1, src[3], 1, 1), (1, src[3])):
        raise TinymcuError(f"{node.name}: only a mean over H and W of a 4-D tensor is supported")
    readers = list(node.users)
    if keep and len(readers) == 1 and len(_shape(readers[0])) == 2 and _is_flatten(readers[0]):
        keep = False
    axis = b.const(f"{node.name}.axis", (2,), "int32", np.array([1, 2], np.int32))
    c = b.tensors[x].shape[3]
    out = (1, 1, 1, c) if keep else (1, c)
    return b.op("MEAN", (x, axis), node.name, out, {"axis": (1, 2), "keep_dims": keep})


def _is_flatten(node: fx.Node) -> bool:
    if node.op == "call_method":
        return node.target in ("flatten", "view", "reshape")
    if node.op == "call_function":
        return node.target in _FLATTEN_FUNCS or node.target is torch.reshape
    return False


def _called_module(node: fx.Node) -> nn.Module:
    """The submodule a ``call_module`` node runs."""
    owner = node.graph.owning_module
    if owner is None or not isinstance(node.target, str):
        raise TinymcuError(f"{node.name}: not a call_module node of a traced module")
    return owner.get_submodule(node.target)


def _flatten(b: _Builder, node: fx.Node, x: int) -> int:
    """Flatten/reshape to 2-D: nothing after a squeezed MEAN, RESHAPE after a 1×1 map or
    before a Linear (whose weights the exporter permutes), TRANSPOSE + RESHAPE otherwise."""
    src, out = b.tensors[x].shape, _shape(node)
    if src == out:
        return x
    if len(out) != 2 or out[0] != 1:
        raise TinymcuError(f"{node.name}: reshaping {src} to {out} is not supported; only a "
                           "flatten to (1, N)")
    if len(src) == 4 and src[1] * src[2] > 1 and not all(
            u.op == "call_module" and isinstance(_called_module(u), nn.Linear)
            for u in node.users):
        perm = b.const(f"{node.name}.perm", (4,), "int32", np.array([0, 3, 1, 2], np.int32))
        x = b.op("TRANSPOSE", (x, perm), f"{node.name}.nchw", (src[0], src[3], src[1], src[2]),
                 {"perm": (0, 3, 1, 2)})
    new_shape = b.const(f"{node.name}.shape", (2,), "int32", np.array(out, np.int32))
    return b.op("RESHAPE", (x, new_shape), node.name, out, {"new_shape": out})


def _pool(b: _Builder, node: fx.Node, x: int, m: nn.AvgPool2d | nn.MaxPool2d) -> int:
    k, s, p = _pair(m.kernel_size), _pair(m.stride or m.kernel_size), _pair(m.padding)
    d = _pair(getattr(m, "dilation", 1))
    if m.ceil_mode or d != (1, 1):
        raise TinymcuError(f"{node.target}: ceil_mode and dilated pooling are not supported")
    _, h, w, _ = b.tensors[x].shape
    padding, explicit = same_or_explicit((h, w), k, s, d, (p[0], p[1], p[0], p[1]))
    avg = isinstance(m, nn.AvgPool2d)
    if any(explicit) or (padding == "SAME" and avg and m.count_include_pad):
        raise TinymcuError(f"{node.target}: padding {m.padding} cannot be expressed as TFLite "
                           "SAME/VALID pooling")
    kind = "AVERAGE_POOL_2D" if avg else "MAX_POOL_2D"
    return b.op(kind, (x,), node.name, _nhwc(node),
                {"filter": k, "stride": s, "padding": padding, "activation": "NONE"})
