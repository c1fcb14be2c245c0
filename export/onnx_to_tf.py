"""A focused ONNX → TensorFlow graph builder for the op set MCU models use.

Why our own builder instead of onnx2tf or litert-torch (measured, see TOOLCHAIN-NOTES):

* onnx2tf pins TensorFlow 2.19 / numpy 1.26 / onnx 1.19 (it only installs with ``--no-deps``),
  and downloads a calibration file from the internet for 3-channel inputs — not offline-safe.
* Both onnx2tf and litert-torch turn PyTorch's ``padding=1`` on stride-2 convolutions into
  explicit PAD ops, which cost a whole padded copy of the activation in SRAM; litert-torch also
  left a TRANSPOSE in front of a channels-first mean. On a 256 KB part those bytes matter.
* MCU models use a dozen ops. A builder that knows exactly those can decide layout and padding
  per op: it keeps every 4-D activation NHWC, maps explicit ONNX padding onto TFLite ``SAME``
  whenever the sampled windows are identical (TFLite SAME puts the odd extra row bottom/right),
  also through an explicit zero Pad node feeding a Conv (what TF-style exporters emit),
  folds BatchNormalization into the preceding convolution, permutes fully-connected weights
  after a Flatten instead of transposing activations, and fixes the batch to 1 so no
  SHAPE/STRIDED_SLICE/PACK plumbing appears. Anything else fails loudly, naming the op.

The graph is traced as a ``tf.function`` over ``tf.constant`` weights (no ``tf.Variable``), so
``TFLiteConverter.from_concrete_functions`` sees a frozen graph — the READ_VARIABLE pitfall of
Keras 3 variables never arises. Every weighted op gets a unique TF name that reappears as the
name of its weight tensor in the .tflite, which is how float and int8 weights are matched.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.export.onnx_recurrent import RecurrentOps
from tinymcu.export.onnx_resample import ResampleOps
from tinymcu.export.onnx_sequence import SequenceOps
from tinymcu.export.quiet import import_tensorflow

#: ONNX ops this builder turns into TFLite builtins (anything else is rejected by name)
SUPPORTED_OPS = frozenset({
    "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Clip", "Sigmoid",
    "HardSwish", "HardSigmoid", "Tanh", "LeakyRelu", "Softmax", "AveragePool", "MaxPool",
    "GlobalAveragePool", "ReduceMean", "Flatten", "Reshape", "Concat", "Pad",
    "BatchNormalization", "Identity", "Dropout", "PRelu", "ConvTranspose", "Resize", "Slice",
    "Transpose", "LayerNormalization", "Squeeze", "Unsqueeze", "Gather", "LSTM",
})
#: ops evaluated at build time when all their inputs are constants (shape arithmetic)
CONST_OPS = frozenset({"Constant", "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast",
                       "Slice", "Identity", "Reshape", "Mul", "Add", "Sub", "Div",
                       "ConstantOfShape", "Transpose", "Expand"})

NCHW_TO_NHWC = (0, 2, 3, 1)
AXIS_NCHW_TO_NHWC = {0: 0, 1: 3, 2: 1, 3: 2}


@dataclass
class LayerWeights:
    """Float weights of one weighted op, already in the TFLite layout of that op."""

    name: str          # TF op name == .tflite weight tensor name
    onnx_node: str
    kind: str          # CONV_2D | DEPTHWISE_CONV_2D | FULLY_CONNECTED
    weight: np.ndarray  # OHWI, 1HW(C*M) or (O, I)


@dataclass
class TfModel:
    """The traced float graph and what the later stages need to know about it."""

    module: Any                     # tf.Module owning the concrete function
    concrete: Any                   # tf ConcreteFunction, input (1, H, W, C) or (1, F)
    input_shape_nchw: tuple[int, ...]
    input_shape_tf: tuple[int, ...]
    output_shape: tuple[int, ...]
    layers: list[LayerWeights] = field(default_factory=list)
    explicit_pads: int = 0          # PAD ops the builder had to emit

    def run(self, x_nchw: np.ndarray) -> np.ndarray:
        """Float inference on NCHW samples, one at a time (the graph has batch 1)."""
        import tensorflow as tf

        outs = [self.concrete(tf.constant(input_to_tf_layout(s[None]))).numpy()
                for s in x_nchw]
        return np.concatenate(outs)


def to_tf_layout(x: np.ndarray) -> np.ndarray:
    """Channels-last, as both routes lay out model inputs and outputs: NCHW → NHWC and
    (N, C, L) → (N, L, C) for Conv1d-style signals; 2-D arrays keep their order."""
    if x.ndim == 3:
        return np.ascontiguousarray(x.transpose(0, 2, 1), dtype=np.float32)
    return np.ascontiguousarray(x.transpose(NCHW_TO_NHWC) if x.ndim == 4 else x,
                                dtype=np.float32)


def input_to_tf_layout(x: np.ndarray) -> np.ndarray:
    """Model inputs channels-last (:func:`to_tf_layout`)."""
    return to_tf_layout(x)


@dataclass
class _Value:
    """A traced activation. ``flatten_hwc`` marks a Flatten of an NHWC (H, W, C) tensor whose
    element order differs from ONNX's NCHW order (fixed up in the consuming Gemm's weights)."""

    tensor: Any
    rank: int
    flatten_hwc: tuple[int, int, int] | None = None
    #: a (1, T, D) token tensor held in ONNX's own axis order (``onnx_sequence``)
    seq: bool = False


def same_or_explicit(in_hw: tuple[int, int], k: tuple[int, int], s: tuple[int, int],
                     d: tuple[int, int], pads: tuple[int, int, int, int]
                     ) -> tuple[str, tuple[int, int, int, int]]:
    """Map ONNX pads (top, left, bottom, right) to ``("VALID"|"SAME", explicit pads)``.

    Padding rows past the last window are never read, so they are trimmed first. If what
    remains is zero → VALID; if the windows land exactly where TFLite SAME puts them (same
    output size, same leading pad) → SAME; otherwise the trimmed pads must be applied by a PAD
    op before a VALID op.
    """
    begin, end = [], []
    same = True
    for i in range(2):
        keff = (k[i] - 1) * d[i] + 1
        pb, pe = pads[i], pads[i + 2]
        out = (in_hw[i] + pb + pe - keff) // s[i] + 1
        needed_end = (out - 1) * s[i] + keff - in_hw[i] - pb
        pe = min(pe, max(needed_end, 0))
        begin.append(pb)
        end.append(pe)
        same_out = -(-in_hw[i] // s[i])
        total = max((same_out - 1) * s[i] + keff - in_hw[i], 0)
        same = same and out == same_out and pb == total // 2
    explicit = (begin[0], begin[1], end[0], end[1])
    if not any(explicit):
        return "VALID", explicit
    if same:
        return "SAME", (0, 0, 0, 0)
    return "VALID", explicit


class _Builder(ResampleOps, SequenceOps, RecurrentOps):
    def __init__(self, model: Any, input_name: str, input_shape: tuple[int, ...]) -> None:
        from onnx import numpy_helper

        self.model = model
        self.input_name, self.input_shape = input_name, input_shape
        self.graph = model.graph
        self.consts: dict[str, np.ndarray] = {
            i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        self.shapes: dict[str, tuple[int, ...]] = {}
        for vi in [*self.graph.input, *self.graph.value_info, *self.graph.output]:
            dims = vi.type.tensor_type.shape.dim
            if all(d.HasField("dim_value") for d in dims):
                self.shapes[vi.name] = tuple(d.dim_value for d in dims)
        self.consumers: dict[str, list[Any]] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.layers: list[LayerWeights] = []
        self.names: set[str] = set()
        self.explicit_pads = 0
        self.folded_bn: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.skip: set[str] = set()
        self.gap_squeeze: set[str] = set()
        self.pad_into_conv: dict[str, tuple[int, int, int, int]] = {}
        from tinymcu.export.route_check import runtime_ops

        self.runtime = runtime_ops()

    # ---- static analysis (numpy, before tracing) -------------------------------------
    def fold_constants(self) -> None:
        """Evaluate shape arithmetic and Constant nodes (numpy), marking them skipped."""
        from onnx import numpy_helper

        for node in self.graph.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = self._constant_value(node, numpy_helper)
                self.skip.add(node.output[0])
            elif node.op_type in CONST_OPS and node.input and all(
                    n in self.consts or (node.op_type == "Shape" and n in self.shapes)
                    for n in node.input if n):
                self.consts[node.output[0]] = self._fold(node)
                self.skip.add(node.output[0])
        self.find_gelu()

    def offenders(self) -> list[str]:
        """Every node this route cannot take (no handler, or a TFLite op our runtime lacks)."""
        from tinymcu.export.route_check import mcu_offenders

        found = []
        if len(self.input_shape) not in (2, 3, 4):
            found.append(f"input of rank {len(self.input_shape)} {self.input_shape} (the mcu "
                         "route takes (1, C, H, W), (1, C, L) and (1, F))")
        def shaped(node: Any) -> tuple[str, ...] | None:
            seq = self.sequence_lowering(node)
            return seq if seq is not None else self.resample_lowering(node)

        return found + mcu_offenders(self.model, self.skip, self.consts, SUPPORTED_OPS, shaped)

    def prepare(self) -> None:
        self.fold_constants()
        found = self.offenders()
        if found:
            raise TinymcuError(f"the mcu route cannot convert {len(found)} op kind(s): "
                               f"{'; '.join(found)}")
        for node in self.graph.node:
            if node.op_type == "BatchNormalization":
                self._maybe_fold_bn(node)
            if node.op_type == "Pad":
                self._maybe_fold_pad(node)
            if node.op_type in {"GlobalAveragePool", "ReduceMean"}:
                users = self.consumers.get(node.output[0], [])
                if len(users) == 1 and users[0].op_type in {"Flatten", "Reshape"} and \
                        len(self.shapes.get(users[0].output[0], ())) == 2:
                    self.gap_squeeze.add(node.output[0])

    @staticmethod
    def _constant_value(node: Any, numpy_helper: Any) -> np.ndarray:
        for a in node.attribute:
            if a.name == "value":
                return numpy_helper.to_array(a.t)
            if a.name in {"value_float", "value_int"}:
                return np.array(a.f if a.name == "value_float" else a.i)
            if a.name in {"value_floats", "value_ints"}:
                return np.array(list(a.floats) if a.name == "value_floats" else list(a.ints))
        raise TinymcuError(f"ONNX Constant node {node.name!r} has no supported value attribute")

    def _fold(self, node: Any) -> np.ndarray:
        a = _attrs(node)
        ins = [self.consts[n] if n in self.consts else None for n in node.input]
        op = node.op_type

        def arg(i: int) -> np.ndarray:
            """Input ``i``, which this op needs: an absent optional input is a bad model."""
            v = ins[i] if i < len(ins) else None
            if v is None:
                raise TinymcuError(f"ONNX {op} node {node.name!r}: input {i} is missing")
            return v

        if op == "Shape":
            return np.array(self.shapes[node.input[0]], dtype=np.int64)
        if op == "Gather":
            return np.take(arg(0), arg(1), axis=a.get("axis", 0))
        if op in {"Unsqueeze", "Squeeze"}:  # axes: an input from opset 13, an attribute before
            axes = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("axes")
            if op == "Squeeze":
                return np.squeeze(arg(0), axis=None if axes is None else
                                  tuple(int(v) for v in axes))
            if axes is None:
                raise TinymcuError(f"ONNX Unsqueeze node {node.name!r} has no axes")
            out = arg(0)
            for ax in sorted(int(v) % (out.ndim + len(axes)) for v in axes):
                out = np.expand_dims(out, ax)
            return out
        if op == "Concat":
            return np.concatenate([np.atleast_1d(arg(i)) for i in range(len(ins))], axis=a["axis"])
        if op == "Cast":
            from onnx import helper

            return arg(0).astype(helper.tensor_dtype_to_np_dtype(a["to"]))
        if op == "Slice":
            starts, ends = arg(1), arg(2)
            axes = ins[3] if len(ins) > 3 and ins[3] is not None else range(len(starts))
            steps = ins[4] if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
            sl: list[slice] = [slice(None)] * arg(0).ndim
            for st, en, ax, sp in zip(starts, ends, axes, steps):
                sl[int(ax)] = slice(int(st), int(en), int(sp))
            return arg(0)[tuple(sl)]
        if op == "Reshape":
            return arg(0).reshape(_onnx_reshape(arg(0).shape, arg(1)))
        if op == "Identity":
            return arg(0)
        if op == "Transpose":
            return np.transpose(arg(0), a.get("perm"))
        if op == "Expand":  # ONNX broadcasting, which numpy's matches
            src, shape = self.consts[node.input[0]], self.consts[node.input[1]]
            return src * np.ones(tuple(int(v) for v in shape), src.dtype)
        if op == "ConstantOfShape":
            from onnx import numpy_helper

            value = numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
            return np.full(tuple(int(v) for v in arg(0)), value.reshape(-1)[0], value.dtype)
        fn = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide}[op]
        lhs, rhs = arg(0), arg(1)
        out = fn(lhs, rhs)
        return out.astype(lhs.dtype) if op != "Div" or lhs.dtype.kind == "f" else \
            (lhs // rhs).astype(lhs.dtype)

    def _maybe_fold_bn(self, node: Any) -> None:
        prod = self._producer(node.input[0])
        if (prod is None or prod.op_type not in {"Conv", "Gemm", "MatMul"}
                or prod.input[1] not in self.consts
                or len(self.consumers.get(node.input[0], [])) != 1):
            return
        gamma, beta, mean, var = (self.consts.get(n) for n in node.input[1:5])
        if any(v is None for v in (gamma, beta, mean, var)):
            return
        eps = _attrs(node).get("epsilon", 1e-5)
        scale = gamma / np.sqrt(var + eps)
        self.folded_bn[prod.output[0]] = (scale, beta - mean * scale)

    def _maybe_fold_pad(self, node: Any) -> None:
        """A zero Pad feeding only a Conv becomes part of the Conv's padding, where
        :func:`same_or_explicit` can often turn it into SAME (no PAD op, no padded copy)."""
        a = _attrs(node)
        mode = a.get("mode", b"constant")
        users = self.consumers.get(node.output[0], [])
        pads = self.consts.get(node.input[1]) if len(node.input) > 1 else None
        value = self.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] \
            else None
        if (mode not in (b"constant", "constant") or pads is None or len(pads) != 8
                or (value is not None and float(value) != 0.0)
                or (len(node.input) > 3 and node.input[3])
                or len(users) != 1 or users[0].op_type != "Conv"
                or _attrs(users[0]).get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")):
            return
        p = [int(v) for v in pads]
        if p[0] or p[1] or p[4] or p[5] or min(p) < 0:
            return
        self.pad_into_conv[node.output[0]] = (p[2], p[3], p[6], p[7])

    def _producer(self, name: str) -> Any:
        for node in self.graph.node:
            if name in node.output:
                return node
        return None

    # ---- tracing -------------------------------------------------------------------
    def trace(self, x: Any) -> Any:
        """Emit the TF graph; tf.function may trace more than once, so state restarts here."""
        import tensorflow as tf

        self.layers, self.names, self.explicit_pads = [], set(), 0
        env: dict[str, _Value] = {self.input_name: _Value(x, len(self.input_shape))}
        for node in self.graph.node:
            if node.output[0] in self.skip:
                continue
            out = self.seq_dispatch(node, env)
            if out is NotImplemented:
                handler: Callable[[Any, dict[str, _Value]], _Value | None] = getattr(
                    self, f"_op_{node.op_type}")
                out = handler(node, env)
            if out is not None:
                env[node.output[0]] = out
        out = env[self.graph.output[0].name]
        if out.seq and out.rank == 3:  # (1, A, B) in ONNX order leaves channels-last like
            return tf.transpose(out.tensor, [0, 2, 1])  # any rank-3 output
        if out.seq and out.rank == 4:  # ... and (1, C, H, W) as NHWC
            return tf.transpose(out.tensor, list(NCHW_TO_NHWC))
        if out.rank == 3:  # the (1, 1, L, C) map of an (N, C, L) output leaves as (1, L, C)
            _, _, length, c = (int(v) for v in out.tensor.shape)
            return tf.reshape(out.tensor, [1, length, c])
        return out.tensor

    def _in(self, env: dict[str, _Value], node: Any, i: int = 0) -> _Value:
        name = node.input[i]
        if name not in env:
            raise TinymcuError(f"ONNX {node.op_type} node {node.name!r}: input {name!r} must be "
                               "an activation, got a constant or an unknown tensor")
        return env[name]

    def _const(self, node: Any, i: int) -> np.ndarray | None:
        if i >= len(node.input) or not node.input[i]:
            return None
        name = node.input[i]
        if name not in self.consts:
            raise TinymcuError(f"ONNX {node.op_type} node {node.name!r}: input {name!r} must be a "
                               "constant (weights computed at run time are not supported)")
        return self.consts[name]

    def _need_const(self, node: Any, i: int) -> np.ndarray:
        """Constant input ``i``, which the op requires (an empty optional slot is refused)."""
        c = self._const(node, i)
        if c is None:
            raise TinymcuError(f"ONNX {node.op_type} node {node.name!r}: input {i} is missing")
        return c

    def _name(self, node: Any) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", node.name or node.output[0]).strip("_") or "op"
        if not base[0].isalpha():
            base = "n" + base
        name, i = base, 1
        while name in self.names:
            name, i = f"{base}_{i}", i + 1
        self.names.add(name)
        return name

    def _op_Conv(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        x = self._in(env, node)
        w = self._need_const(node, 1).astype(np.float32)
        b = self._const(node, 2)
        b = np.zeros(w.shape[0], np.float32) if b is None else b.astype(np.float32)
        if w.ndim == 3 and x.rank == 3:  # Conv1d: a (1, k) kernel over the (1, 1, L, C) map
            w = w[:, :, None, :]
        if w.ndim != 4:
            raise TinymcuError(f"ONNX Conv node {node.name!r}: only 1-D and 2-D convolutions "
                               f"are supported (weight rank {w.ndim})")
        if node.output[0] in self.folded_bn:
            scale, shift = self.folded_bn[node.output[0]]
            w = w * scale.reshape(-1, 1, 1, 1).astype(np.float32)
            b = (b * scale + shift).astype(np.float32)
        a = _attrs(node)
        group = a.get("group", 1)
        k = (int(w.shape[2]), int(w.shape[3]))
        s = _hw(a.get("strides", [1, 1]), x.rank, 1)
        d = _hw(a.get("dilations", [1, 1]), x.rank, 1)
        cin = x.tensor.shape[3]
        padding, explicit = self._padding(node, x, k, s, d)
        xt = self._pad(x.tensor, explicit)
        name = self._name(node)
        if group == 1:
            y = tf.nn.conv2d(xt, tf.constant(w.transpose(2, 3, 1, 0)), strides=[1, *s, 1],
                             padding=padding, dilations=[1, *d, 1], name=name)
            self.layers.append(LayerWeights(name, node.name, "CONV_2D", w.transpose(0, 2, 3, 1)))
        elif group == cin and w.shape[1] == 1:
            if s[0] != s[1]:
                raise TinymcuError(f"ONNX Conv node {node.name!r}: depthwise conv with unequal "
                                   f"strides {s} is not supported")
            mult = w.shape[0] // cin
            f = w.reshape(cin, mult, *k).transpose(2, 3, 0, 1)
            y = tf.nn.depthwise_conv2d(xt, tf.constant(f), strides=[1, *s, 1], padding=padding,
                                       dilations=list(d), name=name)
            self.layers.append(LayerWeights(name, node.name, "DEPTHWISE_CONV_2D",
                                            f.reshape(1, *k, cin * mult)))
        else:
            raise TinymcuError(f"ONNX Conv node {node.name!r}: grouped convolution (group="
                               f"{group}, {cin} channels) is not supported; only group=1 and "
                               "depthwise")
        return _Value(tf.nn.bias_add(y, tf.constant(b)), x.rank)

    def _padding(self, node: Any, x: _Value, k: tuple[int, int], s: tuple[int, int],
                 d: tuple[int, int]) -> tuple[str, tuple[int, int, int, int]]:
        a = _attrs(node)
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        in_hw = (int(x.tensor.shape[1]), int(x.tensor.shape[2]))
        if auto == "VALID":
            return "VALID", (0, 0, 0, 0)
        if auto in {"SAME_UPPER", "SAME_LOWER"}:
            pads = []
            for i in range(2):
                out = -(-in_hw[i] // s[i])
                total = max((out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_hw[i], 0)
                small, big = total // 2, total - total // 2
                pads.append((small, big) if auto == "SAME_UPPER" else (big, small))
            p = (pads[0][0], pads[1][0], pads[0][1], pads[1][1])
        else:
            onnx_pads = [int(v) for v in a.get("pads", [0, 0, 0, 0])]
            if x.rank == 3 and len(onnx_pads) == 2:  # 1-D pads (begin, end) act on W; H is 1
                onnx_pads = [0, onnx_pads[0], 0, onnx_pads[1]]
            if len(onnx_pads) != 4:
                raise TinymcuError(f"ONNX {node.op_type} node {node.name!r}: pads "
                                   f"{onnx_pads} are not (top, left, bottom, right)")
            extra = self.pad_into_conv.get(node.input[0], (0, 0, 0, 0))
            top, left, bottom, right = (v + e for v, e in zip(onnx_pads, extra))
            p = (top, left, bottom, right)
        return same_or_explicit(in_hw, k, s, d, p)

    def _pad(self, t: Any, explicit: tuple[int, int, int, int]) -> Any:
        import tensorflow as tf

        if not any(explicit):
            return t
        self.explicit_pads += 1
        top, left, bottom, right = explicit
        return tf.pad(t, [[0, 0], [top, bottom], [left, right], [0, 0]])

    def _dense(self, node: Any, x: _Value, w_io: np.ndarray, b: np.ndarray | None) -> _Value:
        import tensorflow as tf

        if x.rank != 2:
            raise TinymcuError(f"ONNX {node.op_type} node {node.name!r}: input must be 2-D "
                               f"(got rank {x.rank}); flatten first")
        if x.flatten_hwc is not None:
            h, wd, c = x.flatten_hwc
            # row j of the NHWC-flattened input holds NCHW element (c, h, w)
            order = np.arange(c * h * wd).reshape(c, h, wd).transpose(1, 2, 0).reshape(-1)
            w_io = w_io[order]
        if node.output[0] in self.folded_bn:  # Linear + BatchNorm1d: scale the columns
            scale, shift = self.folded_bn[node.output[0]]
            w_io = w_io * scale.reshape(1, -1)
            b = (np.zeros(w_io.shape[1], np.float32) if b is None else b) * scale + shift
        name = self._name(node)
        y = tf.matmul(x.tensor, tf.constant(w_io.astype(np.float32)), name=name)
        self.layers.append(LayerWeights(name, node.name, "FULLY_CONNECTED",
                                        np.ascontiguousarray(w_io.T.astype(np.float32))))
        if b is not None:
            y = y + tf.constant(np.broadcast_to(b, (w_io.shape[1],)).astype(np.float32))
        return _Value(y, 2)

    def _op_Gemm(self, node: Any, env: dict[str, _Value]) -> _Value:
        a = _attrs(node)
        if a.get("transA", 0):
            raise TinymcuError(f"ONNX Gemm node {node.name!r}: transA=1 is not supported")
        w = self._need_const(node, 1).astype(np.float32) * a.get("alpha", 1.0)
        w = w.T if a.get("transB", 0) else w
        b = self._const(node, 2)
        b = None if b is None else b.astype(np.float32) * a.get("beta", 1.0)
        return self._dense(node, self._in(env, node), w, b)

    def _op_MatMul(self, node: Any, env: dict[str, _Value]) -> _Value:
        w = self._need_const(node, 1)
        if w.ndim != 2:
            raise TinymcuError(f"ONNX MatMul node {node.name!r}: weight must be 2-D")
        return self._dense(node, self._in(env, node), w.astype(np.float32), None)

    def _binary(self, node: Any, env: dict[str, _Value], fn: Callable[[Any, Any], Any]) -> _Value:
        import tensorflow as tf

        a_name, b_name = node.input[0], node.input[1]
        if a_name in env and b_name in env:
            a, b = env[a_name], env[b_name]
            if a.rank != b.rank or a.flatten_hwc != b.flatten_hwc:
                raise TinymcuError(f"ONNX {node.op_type} node {node.name!r}: operands of rank "
                                   f"{a.rank} and {b.rank} are not supported")
            return _Value(fn(a.tensor, b.tensor), a.rank, a.flatten_hwc)
        act_first = a_name in env
        x = env[a_name] if act_first else self._in(env, node, 1)
        c = self._need_const(node, 1 if act_first else 0).astype(np.float32)
        if x.flatten_hwc is not None and c.size > 1:
            raise TinymcuError(f"ONNX {node.op_type} node {node.name!r}: per-element constants "
                               "after Flatten are not supported")
        if x.rank == 4 and c.ndim > 0:
            c = c.reshape((1,) * (4 - c.ndim) + c.shape).transpose(NCHW_TO_NHWC)
        elif x.rank == 3 and c.ndim > 0:  # (N, C, L) constant → (1, 1, L, C)
            c = c.reshape((1,) * (3 - c.ndim) + c.shape).transpose(0, 2, 1)[:, None]
        ct = tf.constant(c)
        return _Value(fn(x.tensor, ct) if act_first else fn(ct, x.tensor), x.rank,
                      x.flatten_hwc)

    def _op_Add(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        return self._binary(node, env, tf.add)

    def _op_Sub(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        return self._binary(node, env, tf.subtract)

    def _op_Mul(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        return self._binary(node, env, tf.multiply)

    def _op_Div(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        if node.input[1] in self.consts:  # x / c → x * (1/c): MUL is an MCU op, DIV is not
            c = self.consts[node.input[1]].astype(np.float32)
            self.consts[node.input[1] + "/reciprocal"] = (1.0 / c).astype(np.float32)
            node_copy = _Rewired(node, [node.input[0], node.input[1] + "/reciprocal"])
            return self._binary(node_copy, env, tf.multiply)
        return self._binary(node, env, tf.divide)

    def _unary(self, node: Any, env: dict[str, _Value], fn: Callable[[Any], Any]) -> _Value:
        x = self._in(env, node)
        return dataclasses.replace(x, tensor=fn(x.tensor))

    def _op_Relu(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        return self._unary(node, env, tf.nn.relu)

    def _op_Clip(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        a = _attrs(node)
        lo_in, hi_in = self._const(node, 1), self._const(node, 2)
        lo = float(lo_in) if lo_in is not None else float(a.get("min", -math.inf))
        hi = float(hi_in) if hi_in is not None else float(a.get("max", math.inf))
        if lo == 0.0 and hi == 6.0:
            return self._unary(node, env, tf.nn.relu6)
        if lo == 0.0 and math.isinf(hi):
            return self._unary(node, env, tf.nn.relu)
        return self._unary(node, env, lambda t: tf.clip_by_value(t, lo, hi))

    def _op_Sigmoid(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        return self._unary(node, env, tf.sigmoid)

    def _op_Tanh(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        if "TANH" in self.runtime:
            return self._unary(node, env, tf.tanh)
        # tanh(x) = 2·σ(2x) − 1: LOGISTIC's fixed 1/256 output step becomes 1/128, the step
        # of an int8 TANH output, so nothing is lost; MUL, LOGISTIC, MUL, ADD run everywhere
        return self._unary(node, env, lambda t: tf.sigmoid(t * 2.0) * 2.0 - 1.0)

    def _op_HardSwish(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        # the pattern TFLite's converter fuses into one HARD_SWISH op
        return self._unary(node, env, lambda t: t * tf.nn.relu6(t + 3.0) * (1.0 / 6.0))

    def _op_HardSigmoid(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        a = _attrs(node)
        alpha, beta = a.get("alpha", 0.2), a.get("beta", 0.5)
        # clip(αx + β, 0, 1) == relu6(6αx + 6β) / 6: ADD with a fused RELU6 and a MUL (plus a
        # MUL when 6α != 1), ops every MCU runtime has, instead of MINIMUM/MAXIMUM
        scale6, shift6 = 6.0 * alpha, 6.0 * beta

        def hard_sigmoid(t: Any) -> Any:
            scaled = t if abs(scale6 - 1.0) < 1e-7 else t * scale6
            return tf.nn.relu6(scaled + shift6) * (1.0 / 6.0)

        return self._unary(node, env, hard_sigmoid)

    def _op_LeakyRelu(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        alpha = _attrs(node).get("alpha", 0.01)
        if "LEAKY_RELU" in self.runtime:
            return self._unary(node, env, lambda t: tf.nn.leaky_relu(t, alpha))
        return self._unary(node, env, lambda t: _leaky_by_parts(t, tf.constant(alpha)))

    def _op_PRelu(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        x = self._in(env, node)
        slope = self._need_const(node, 1).astype(np.float32)
        if x.rank in (3, 4) and slope.ndim > 1:  # (C, 1, 1) / (C, 1) → per channel, last axis
            slope = slope.reshape(-1)
        alpha = tf.constant(slope)
        if "PRELU" in self.runtime:
            # Keras' form relu(x) + (−α)·relu(−x), with the negation a graph op on an α of
            # shape (1, 1, C) for a feature map: the one pattern TFLite's converter fuses into
            # PRELU (measured: relu(x) − α·relu(−x), or a pre-negated α, keep NEG + SUB/ADD)
            a4 = tf.constant(slope.reshape(1, 1, -1)) if len(x.tensor.shape) == 4 and \
                slope.size > 1 else alpha
            return self._unary(node, env, lambda t: tf.nn.relu(t) + (-a4) * tf.nn.relu(-t))
        return self._unary(node, env, lambda t: _leaky_by_parts(t, alpha))

    def _op_Softmax(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        x = self._in(env, node)
        axis = _attrs(node).get("axis", -1)
        if axis not in (-1, x.rank - 1) or x.rank != 2:
            raise TinymcuError(f"ONNX Softmax node {node.name!r}: only a softmax over the last "
                               "axis of a 2-D tensor is supported")
        return _Value(tf.nn.softmax(x.tensor), 2)

    def _pool(self, node: Any, env: dict[str, _Value], kind: str) -> _Value:
        import tensorflow as tf

        x = self._in(env, node)
        a = _attrs(node)
        k = _hw(a["kernel_shape"], x.rank, 1)
        s = _hw(a.get("strides", [1] * len(a["kernel_shape"])), x.rank, 1)
        d = _hw(a.get("dilations", [1] * len(a["kernel_shape"])), x.rank, 1)
        if d != (1, 1):
            raise TinymcuError(f"ONNX {node.op_type} node {node.name!r}: dilated pooling is not "
                               "supported")
        if a.get("ceil_mode", 0):
            node = _Rewired(node, list(node.input), attrs={
                **a, "pads": list(self._ceil_pads(node, x, k, s))})
        padding, explicit = self._padding(node, x, k, s, d)
        if any(explicit) or (padding == "SAME" and kind == "avg"
                             and a.get("count_include_pad", 0)):
            raise TinymcuError(f"ONNX {node.op_type} node {node.name!r}: padding {a.get('pads')} "
                               f"{'with ceil_mode ' if a.get('ceil_mode', 0) else ''}cannot be "
                               "expressed as TFLite SAME/VALID pooling")
        fn = tf.nn.avg_pool2d if kind == "avg" else tf.nn.max_pool2d
        return _Value(fn(x.tensor, ksize=list(k), strides=list(s), padding=padding), x.rank)

    def _ceil_pads(self, node: Any, x: _Value, k: tuple[int, int], s: tuple[int, int]
                   ) -> tuple[int, int, int, int]:
        """ceil_mode as explicit end padding: the extra last window (dropped if it would
        start inside the end padding, as ONNX and PyTorch do) reads past the input, which
        max/avg pooling without count_include_pad ignore — as TFLite SAME pooling does."""
        a = _attrs(node)
        p = list(a.get("pads", [0] * (2 * len(a["kernel_shape"]))))
        if x.rank == 3:
            p = [0, p[0], 0, p[1]] if len(p) == 2 else p
        in_hw = (int(x.tensor.shape[1]), int(x.tensor.shape[2]))
        for i in range(2):
            span = in_hw[i] + p[i] + p[i + 2] - k[i]
            out = -(-span // s[i]) + 1
            if (out - 1) * s[i] >= in_hw[i] + p[i]:
                out -= 1
            p[i + 2] = max(p[i + 2], (out - 1) * s[i] + k[i] - in_hw[i] - p[i])
        return p[0], p[1], p[2], p[3]

    def _op_AveragePool(self, node: Any, env: dict[str, _Value]) -> _Value:
        return self._pool(node, env, "avg")

    def _op_MaxPool(self, node: Any, env: dict[str, _Value]) -> _Value:
        if len(node.output) > 1 and node.output[1]:
            raise TinymcuError(f"ONNX MaxPool node {node.name!r}: the Indices output is not "
                               "supported")
        return self._pool(node, env, "max")

    def _op_GlobalAveragePool(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        x = self._in(env, node)
        squeeze = node.output[0] in self.gap_squeeze
        return _Value(tf.reduce_mean(x.tensor, axis=[1, 2], keepdims=not squeeze),
                      2 if squeeze else x.rank)

    def _op_ReduceMean(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        x = self._in(env, node)
        a = _attrs(node)
        axes = a.get("axes")
        if axes is None and len(node.input) > 1:
            axes = [int(v) for v in self._need_const(node, 1)]
        spatial = [2, 3] if x.rank == 4 else [2]
        if x.rank not in (3, 4) or sorted(int(v) % x.rank for v in (axes or [])) != spatial:
            raise TinymcuError(f"ONNX ReduceMean node {node.name!r}: only a mean over the "
                               "spatial axes (H, W or L) is supported")
        keep = bool(a.get("keepdims", 1))
        if not keep:
            return _Value(tf.reduce_mean(x.tensor, axis=[1, 2]), 2)
        squeeze = node.output[0] in self.gap_squeeze
        return _Value(tf.reduce_mean(x.tensor, axis=[1, 2], keepdims=not squeeze),
                      2 if squeeze else x.rank)

    def _flatten_to_2d(self, node: Any, x: _Value) -> _Value:
        import tensorflow as tf

        if x.rank == 2:
            return x
        if x.rank not in (3, 4):
            raise TinymcuError(f"ONNX {node.op_type} node {node.name!r}: rank-{x.rank} input is "
                               "not supported")
        _, h, w, c = (int(v) for v in x.tensor.shape)
        flat = tf.reshape(x.tensor, [1, h * w * c])
        if h * w == 1:
            return _Value(flat, 2)
        users = self.consumers.get(node.output[0], [])
        if users and all(u.op_type in {"Gemm", "MatMul"} for u in users):
            return _Value(flat, 2, (h, w, c))
        nchw = tf.transpose(x.tensor, [0, 3, 1, 2])
        return _Value(tf.reshape(nchw, [1, h * w * c]), 2)

    def _op_Flatten(self, node: Any, env: dict[str, _Value]) -> _Value:
        if _attrs(node).get("axis", 1) != 1:
            raise TinymcuError(f"ONNX Flatten node {node.name!r}: only axis=1 is supported")
        return self._flatten_to_2d(node, self._in(env, node))

    def _op_Reshape(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        x = self._in(env, node)
        target = self.shapes.get(node.output[0])
        if target is None:
            target = _onnx_reshape(self.shapes[node.input[0]], self._need_const(node, 1))
        if len(target) == 2 and target[0] == 1:
            return self._flatten_to_2d(node, x)
        if x.rank == 4 and len(target) == 3 and not x.seq:
            _, h, w, c = (int(v) for v in x.tensor.shape)
            if tuple(target) == (1, c, h * w):  # flatten(2): the signal map (1, 1, H·W, C)
                return _Value(tf.reshape(x.tensor, [1, 1, h * w, c]), 3)
        if x.rank == 2 and len(target) == 4:
            t = tf.reshape(x.tensor, list(target))
            return _Value(tf.transpose(t, list(NCHW_TO_NHWC)), 4)
        if x.rank == 2:
            return _Value(tf.reshape(x.tensor, list(target)), len(target))
        return self._seq_Reshape(node, env)  # any other: the same reshape in ONNX order

    def _op_Concat(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        xs = [self._in(env, node, i) for i in range(len(node.input))]
        rank = xs[0].rank
        axis = _attrs(node)["axis"] % rank
        if any(v.rank != rank or v.flatten_hwc is not None for v in xs):
            raise TinymcuError(f"ONNX Concat node {node.name!r}: mixed-rank inputs are not "
                               "supported")
        tf_axis = AXIS_NCHW_TO_NHWC[axis] if rank == 4 else {0: 0, 1: 3, 2: 2}[axis] \
            if rank == 3 else axis
        return _Value(tf.concat([v.tensor for v in xs], axis=tf_axis), rank)

    def _op_Pad(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        x = self._in(env, node)
        if node.output[0] in self.pad_into_conv:
            return x  # the consuming Conv applies this padding
        a = _attrs(node)
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        pads = self._need_const(node, 1)
        value = self._const(node, 2)
        if mode != "constant" or (value is not None and float(value) != 0.0) or x.rank != 4 or \
                (len(node.input) > 3 and node.input[3]):
            raise TinymcuError(f"ONNX Pad node {node.name!r}: only zero padding of a 4-D tensor "
                               f"is supported (mode={mode})")
        p = [int(v) for v in pads]
        if p[0] or p[1] or p[4] or p[5] or min(p) < 0:
            raise TinymcuError(f"ONNX Pad node {node.name!r}: only non-negative spatial padding "
                               "is supported")
        self.explicit_pads += 1
        return _Value(tf.pad(x.tensor, [[0, 0], [p[2], p[6]], [p[3], p[7]], [0, 0]]), 4)

    def _op_BatchNormalization(self, node: Any, env: dict[str, _Value]) -> _Value:
        import tensorflow as tf

        x = self._in(env, node)
        if node.input[0] in self.folded_bn:
            return x  # already folded into the producing Conv's weights
        gamma, beta, mean, var = (self._need_const(node, i).astype(np.float32) for i in range(1, 5))
        scale = gamma / np.sqrt(var + _attrs(node).get("epsilon", 1e-5))
        shift = beta - mean * scale
        return _Value(x.tensor * tf.constant(scale) + tf.constant(shift), x.rank)

    def _op_Identity(self, node: Any, env: dict[str, _Value]) -> _Value:
        return self._in(env, node)

    def _op_Dropout(self, node: Any, env: dict[str, _Value]) -> _Value:
        return self._in(env, node)


def _leaky_by_parts(t: Any, alpha: Any) -> Any:
    """LeakyReLU / PReLU as α·x + (1 − α)·relu(x) (equal for every x): MUL, RELU, MUL, ADD
    for a runtime without LEAKY_RELU / PRELU. Not the x − α·relu(−x) form, which TFLite's
    converter would fuse back into PRELU."""
    import tensorflow as tf

    return t * alpha + tf.nn.relu(t) * (1.0 - alpha)


class _Rewired:
    """A view of an ONNX node with replaced inputs (x / c as x * (1/c)) or attributes
    (ceil_mode pooling as explicit end pads)."""

    def __init__(self, node: Any, inputs: list[str],
                 attrs: dict[str, Any] | None = None) -> None:
        self.op_type, self.name, self.output, self.input = (
            node.op_type, node.name, node.output, inputs)
        self.attrs = attrs if attrs is not None else _attrs(node)


def _attrs(node: Any) -> dict[str, Any]:
    if isinstance(node, _Rewired):
        return dict(node.attrs)
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _hw(values: Any, rank: int, fill: int) -> tuple[int, int]:
    """ONNX per-axis attributes as (H, W): a 1-D op (rank-3 tensor) acts on W, H is 1."""
    v = [int(x) for x in values]
    return (fill, v[0]) if rank == 3 and len(v) == 1 else (v[0], v[1])


def _onnx_reshape(in_shape: tuple[int, ...], target: np.ndarray) -> tuple[int, ...]:
    shape = [int(in_shape[i]) if int(v) == 0 else int(v) for i, v in enumerate(target)]
    if -1 in shape:
        known = int(np.prod([v for v in shape if v != -1]))
        shape[shape.index(-1)] = int(np.prod(in_shape)) // known
    return tuple(shape)


def mcu_offenders(model: Any, input_name: str, input_shape: tuple[int, ...]) -> list[str]:
    """What stops the mcu route on this model, before any TensorFlow work (empty: none)."""
    b = _Builder(model, input_name, input_shape)
    b.fold_constants()
    return b.offenders()


def build_tf(model: Any, input_name: str, input_shape: tuple[int, ...]) -> TfModel:
    """Trace ``model`` (an inferred-shape ONNX ModelProto with one static input) into TF."""
    b = _Builder(model, input_name, input_shape)
    b.prepare()  # rejects unsupported ops before paying for the TensorFlow import
    tf = import_tensorflow()

    rank = len(input_shape)
    tf_shape = tuple(input_shape[i] for i in NCHW_TO_NHWC) if rank == 4 else \
        (1, input_shape[2], input_shape[1]) if rank == 3 else tuple(input_shape)

    tf_module: Any = tf.Module  # TF is imported at run time (quietly): no static base class

    class Exported(tf_module):
        @tf.function(input_signature=[tf.TensorSpec(tf_shape, tf.float32, name="input")],
                     autograph=False)
        def __call__(self, x: Any) -> Any:
            # a (1, L, C) signal runs as a (1, 1, L, C) image: one RESHAPE, in place
            return b.trace(tf.reshape(x, (1, 1, *tf_shape[1:])) if rank == 3 else x)

    module = Exported()
    concrete = module.__call__.get_concrete_function()
    out_shape = tuple(int(v) for v in concrete.structured_outputs.shape)
    return TfModel(module, concrete, tuple(input_shape), tf_shape, out_shape, b.layers,
                   b.explicit_pads)
