"""Token sequences for the mcu builder: LayerNorm, GELU, MatMul and attention (tiny ViTs).

The builder keeps 4-D activations NHWC and a rank-3 ``(N, C, L)`` signal as a ``(1, 1, L, C)``
map. A transformer's ``(1, T, D)`` token tensor is a third kind, *seq*: held in ONNX's own
order, so the ops over its last axis (LayerNorm, Linear, softmax, GELU) act on the last TF
axis. The usual entry is free: ``flatten(2)`` of NHWC patch embeddings is the signal map
``(1, 1, T, D)`` and ``transpose(1, 2)`` of it is ``(1, T, D)`` — a RESHAPE, no TRANSPOSE.

Lowerings (TFLite ops the route check is told about, see :func:`sequence_lowering`):

* Linear (MatMul by a constant): ``(1, T, D) → (T, D)`` RESHAPE, FULLY_CONNECTED, RESHAPE
  back — the FC our runtime runs, batch T;
* MatMul of two activations (``q @ kᵀ``, ``att @ v``): BATCH_MATMUL (a transposed operand
  stays a TRANSPOSE the converter may fold);
* LayerNormalization over the last axis: MEAN, SUB, MUL, MEAN, ADD, RSQRT, MUL (+ MUL, ADD
  for the affine part) — the split TFLite's own converter quantizes;
* the erf form of GELU that torch exports (``x · ½ · (1 + erf(x/√2))``, five ONNX nodes)
  is matched and becomes its tanh form written as ``x · σ(2z)``: MUL, ADD, LOGISTIC (TFLM's
  Python wheel registers no GELU kernel; the two forms differ by < 5e-4);
* softmax over the last axis: SOFTMAX; a Slice of the last axis (``qkv.chunk(3)``): SLICE;
  a mean over the tokens: MEAN.

Layout ops on any activation (``_layout_*``), computed in ONNX axis order: a Transpose is the
value's layout, the permutation and the result's layout composed into one TRANSPOSE — a
RESHAPE when only size-1 axes move (the time-major view an LSTM takes); Squeeze / Unsqueeze
and a Reshape the layout-aware rules do not cover are RESHAPEs; a Gather by a constant index
is a SLICE (scalar or contiguous) or GATHER. Results of rank 3 are held in ONNX order, rank 4
NHWC.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.export.onnx_host import BuilderHost

#: ops that only move axes, handled for every layout (``_layout_*``)
_LAYOUT_OPS = frozenset({"Transpose", "Squeeze", "Unsqueeze", "Gather"})
#: ops that act elementwise and keep a seq value a seq value
_SEQ_ELEMENTWISE = frozenset({"Relu", "Sigmoid", "Tanh", "Identity", "Dropout", "HardSwish",
                              "HardSigmoid", "LeakyRelu", "Clip"})


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class SequenceOps(BuilderHost):
    """Handlers mixed into the ONNX → TF builder (``onnx_to_tf._Builder``)."""

    # ---- static analysis ------------------------------------------------------------
    def find_gelu(self) -> None:
        """Mark torch's erf GELU chains: Div(x, √2) → Erf → Add(1) → Mul(x, ·) → Mul(½) (the
        two Muls in either order); the last node's output becomes ``gelu(x)``."""
        self.gelu: dict[str, str] = {}
        prod = {o: n for n in self.graph.node for o in n.output}
        for erf in self.graph.node:
            if erf.op_type != "Erf":
                continue
            div = prod.get(erf.input[0])
            if div is None or div.op_type != "Div" or not self._is_const(div.input[1],
                                                                          math.sqrt(2)):
                continue
            x = div.input[0]
            chain = [div, erf]
            add = self._only_user(erf.output[0], "Add")
            if add is None or not self._is_const(_other(add, erf.output[0]), 1.0):
                continue
            chain.append(add)
            m1 = self._only_user(add.output[0], "Mul")
            if m1 is None:
                continue
            chain.append(m1)
            if _other(m1, add.output[0]) == x:  # x · (1 + erf) then · ½
                m2 = self._only_user(m1.output[0], "Mul")
                if m2 is None or not self._is_const(_other(m2, m1.output[0]), 0.5):
                    continue
                chain.append(m2)
            else:  # (½ · x) · (1 + erf)
                half = prod.get(_other(m1, add.output[0]))
                if half is None or half.op_type != "Mul" or x not in half.input or \
                        not self._is_const(_other(half, x), 0.5):
                    continue
                chain.insert(0, half)
            for n in chain[:-1]:
                self.skip.add(n.output[0])
            self.gelu[chain[-1].output[0]] = x

    def _is_const(self, name: str, value: float) -> bool:
        c = self.consts.get(name)
        return c is not None and c.size == 1 and abs(float(c.reshape(-1)[0]) - value) < 1e-4

    def _only_user(self, name: str, op: str) -> Any:
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op else None

    def sequence_lowering(self, node: Any) -> tuple[str, ...] | None:
        """TFLite ops for the ops this module adds (None: not one of them)."""
        if node.output[0] in getattr(self, "gelu", {}):
            return ("MUL", "ADD", "LOGISTIC")
        if node.op_type == "LayerNormalization":
            return ("MEAN", "SUB", "MUL", "ADD", "RSQRT")
        if node.op_type == "Transpose":
            perm = [int(v) for v in _attrs(node).get("perm", [])]
            shape = self.shapes.get(node.input[0], ())
            return () if perm == [0, 2, 1] and len(shape) == 3 else ("TRANSPOSE",)
        if node.op_type in {"Squeeze", "Unsqueeze"}:
            return ()  # a RESHAPE
        if node.op_type == "Gather":
            idx = self.consts.get(node.input[1])
            return ("SLICE",) if idx is not None and _contiguous(idx) else ("GATHER",)
        if node.op_type == "LSTM":
            from tinymcu.export.onnx_recurrent import LSTM_LOWERING

            return LSTM_LOWERING
        return None

    # ---- handlers -------------------------------------------------------------------
    def seq_dispatch(self, node: Any, env: dict[str, Any]) -> Any:
        """Handle ``node`` if it is a GELU end, a Transpose, or takes a seq input; else
        NotImplemented (the builder's own handler runs)."""
        if node.output[0] in getattr(self, "gelu", {}):
            import tensorflow as tf

            x = env[self.gelu[node.output[0]]]
            t = x.tensor
            # GELU's tanh form, 0.5·x·(1 + tanh(z)) = x·σ(2z) with z = √(2/π)(x + 0.044715x³):
            # within 5e-4 of the erf form (far below an int8 step) and made of MUL, ADD and
            # LOGISTIC, which every MCU runtime — and TFLM's Python wheel, which has no GELU
            # kernel — runs
            z = (t + (t * t * t) * 0.044715) * (2.0 * math.sqrt(2.0 / math.pi))
            return dataclasses.replace(x, tensor=t * tf.sigmoid(z))
        if node.op_type in _LAYOUT_OPS:
            return getattr(self, f"_layout_{node.op_type}")(node, env)
        ins = [env[n] for n in node.input if n in env]
        if not any(getattr(v, "seq", False) for v in ins):
            if node.op_type == "LayerNormalization":
                raise TinymcuError(f"ONNX LayerNormalization node {node.name!r}: only over the "
                                   "last axis of a (1, T, D) token tensor")
            return NotImplemented
        handler = getattr(self, f"_seq_{node.op_type}", None)
        if handler is not None:
            return handler(node, env)
        if node.op_type in _SEQ_ELEMENTWISE:
            return NotImplemented  # the builder's _unary keeps the seq flag
        raise TinymcuError(f"ONNX {node.op_type} node {node.name!r}: not supported on a "
                           f"(1, T, D) token tensor")

    # ---- layout ops: act in ONNX axis order on any activation ---------------------------
    def _layout_Transpose(self, node: Any, env: dict[str, Any]) -> Any:
        """Any permutation, as ONE op: the value's own layout, the ONNX permutation and the
        layout the result is held in are composed, and when the composition only moves
        size-1 axes it is a RESHAPE (``x.transpose(1, 2)`` of a Conv1d map, the time-major
        view torch's LSTM takes) — a TRANSPOSE only where bytes really move."""
        from tinymcu.export.onnx_to_tf import NCHW_TO_NHWC

        t, base = self._onnx_view(node, env)
        perm = [int(v) for v in _attrs(node).get("perm", reversed(range(len(base))))]
        total = [base[p] for p in perm]
        if len(total) == 4:  # a 4-D result is held NHWC, ready for convolutions
            total = [total[i] for i in NCHW_TO_NHWC]
        return self._held(node, _permute(t, total), len(total))

    def _layout_Squeeze(self, node: Any, env: dict[str, Any]) -> Any:
        import tensorflow as tf

        axes = self._axes(node)
        shape = self._onnx_shape(node, env)
        axes = [i for i, n in enumerate(shape) if n == 1] if axes is None else \
            [a % len(shape) for a in axes]
        target = [n for i, n in enumerate(shape) if i not in axes]
        return self._held(node, tf.reshape(self._onnx_tensor(node, env), target), len(target))

    def _layout_Unsqueeze(self, node: Any, env: dict[str, Any]) -> Any:
        import tensorflow as tf

        target = list(self._onnx_shape(node, env))
        axes = self._axes(node) or []
        for a in sorted(a % (len(target) + len(axes)) for a in axes):
            target.insert(a, 1)
        return self._held(node, tf.reshape(self._onnx_tensor(node, env), target), len(target))

    def _layout_Gather(self, node: Any, env: dict[str, Any]) -> Any:
        """A constant index on one axis: a SLICE (scalar or contiguous indices; a scalar
        also drops the axis, in the same RESHAPE), else GATHER."""
        import tensorflow as tf

        if node.input[1] not in self.consts:
            raise TinymcuError(f"ONNX Gather node {node.name!r}: the indices must be constant")
        t = self._onnx_tensor(node, env)
        shape = [int(v) for v in t.shape]
        axis = int(_attrs(node).get("axis", 0)) % len(shape)
        idx = self.consts[node.input[1]].astype(np.int64)
        flat = idx.reshape(-1) % shape[axis]
        if _contiguous(idx):
            begin, size = [0] * len(shape), list(shape)
            begin[axis], size[axis] = int(flat[0]), len(flat)
            y = tf.slice(t, begin, size)
        else:
            y = tf.gather(t, flat.astype(np.int32), axis=axis)  # TFLM: int32 positions
        target = shape[:axis] + list(idx.shape) + shape[axis + 1:]
        if [int(v) for v in y.shape] != target:
            y = tf.reshape(y, target)
        return self._held(node, y, len(target))

    def _seq_Reshape(self, node: Any, env: dict[str, Any]) -> Any:
        """A reshape of a value held in ONNX order is the same reshape (a bidirectional
        LSTM's ``(T, 2, 1, H) → (T, 1, 2H)``, heads split or merged)."""
        import tensorflow as tf

        from tinymcu.export.onnx_to_tf import _onnx_reshape

        target = self.shapes.get(node.output[0]) or _onnx_reshape(
            self._onnx_shape(node, env), self.consts[node.input[1]])
        return self._held(node, tf.reshape(self._onnx_tensor(node, env), list(target)),
                          len(target))

    def _axes(self, node: Any) -> list[int] | None:
        """Squeeze/Unsqueeze axes: an input from opset 13, an attribute before."""
        if len(node.input) > 1 and node.input[1]:
            return [int(v) for v in self.consts[node.input[1]]]
        axes = _attrs(node).get("axes")
        return None if axes is None else [int(v) for v in axes]

    def _onnx_view(self, node: Any, env: dict[str, Any]) -> tuple[Any, list[int]]:
        """``(t, base)`` with ``transpose(t, base)`` the value in ONNX axis order, ``t`` only
        reshaped (never transposed) from the traced tensor."""
        import tensorflow as tf

        x = self._in(env, node)
        if x.flatten_hwc is not None:
            raise TinymcuError(f"ONNX {node.op_type} node {node.name!r}: not supported right "
                               "after a Flatten of a feature map")
        rank = len(x.tensor.shape)
        if x.seq or x.rank == 2:
            return x.tensor, list(range(rank))
        if x.rank == 3:  # the (1, 1, L, C) map of an (N, C, L) signal
            _, _, length, c = (int(v) for v in x.tensor.shape)
            return tf.reshape(x.tensor, [1, length, c]), [0, 2, 1]
        return x.tensor, [0, 3, 1, 2]  # NHWC

    def _onnx_tensor(self, node: Any, env: dict[str, Any]) -> Any:
        t, base = self._onnx_view(node, env)
        return _permute(t, base)

    def _onnx_shape(self, node: Any, env: dict[str, Any]) -> tuple[int, ...]:
        t, base = self._onnx_view(node, env)
        return tuple(int(t.shape[p]) for p in base)

    def _held(self, node: Any, t: Any, rank: int) -> Any:
        """Wrap a result: 2-D plain, 3-D in ONNX order (seq), 4-D NHWC (already permuted by
        the caller for Transpose; converted here for the others)."""
        from tinymcu.export.onnx_to_tf import NCHW_TO_NHWC, _Value

        if rank == 2:
            return _Value(t, 2)
        if rank == 3:
            return _Value(t, 3, seq=True)
        if rank == 4:
            if node.op_type != "Transpose":
                t = _permute(t, list(NCHW_TO_NHWC))
            return _Value(t, 4)
        raise TinymcuError(f"ONNX {node.op_type} node {node.name!r}: a rank-{rank} result is "
                           "not supported (the mcu route holds ranks 2 to 4)")

    def _seq_LayerNormalization(self, node: Any, env: dict[str, Any]) -> Any:
        import tensorflow as tf

        x = self._in(env, node)
        a = _attrs(node)
        if int(a.get("axis", -1)) not in (-1, 2):
            raise TinymcuError(f"ONNX LayerNormalization node {node.name!r}: only over the "
                               "last axis")
        eps = float(a.get("epsilon", 1e-5))
        t = x.tensor
        mean = tf.reduce_mean(t, axis=-1, keepdims=True)
        d = t - mean
        var = tf.reduce_mean(d * d, axis=-1, keepdims=True)
        y = d * tf.math.rsqrt(var + eps)
        gamma = self._const(node, 1)
        beta = self._const(node, 2)
        if gamma is not None:
            y = y * tf.constant(gamma.astype(np.float32))
        if beta is not None:
            y = y + tf.constant(beta.astype(np.float32))
        return dataclasses.replace(x, tensor=y)

    def _seq_MatMul(self, node: Any, env: dict[str, Any]) -> Any:
        import tensorflow as tf

        from tinymcu.export.onnx_to_tf import LayerWeights

        a_name, b_name = node.input[0], node.input[1]
        x = env.get(a_name)
        if x is not None and b_name in self.consts:  # Linear: FC over T rows
            w = self.consts[b_name].astype(np.float32)  # (D, K)
            if w.ndim != 2:
                raise TinymcuError(f"ONNX MatMul node {node.name!r}: weight must be 2-D")
            _, t, d = (int(v) for v in x.tensor.shape)
            name = self._name(node)
            y = tf.matmul(tf.reshape(x.tensor, [t, d]), tf.constant(w), name=name)
            self.layers.append(LayerWeights(
                name, node.name, "FULLY_CONNECTED", np.ascontiguousarray(w.T)))
            return dataclasses.replace(x, tensor=tf.reshape(y, [1, t, w.shape[1]]))
        if a_name in env and b_name in env:
            xa, xb = env[a_name], env[b_name]
            if not (getattr(xa, "seq", False) and getattr(xb, "seq", False)):
                raise TinymcuError(f"ONNX MatMul node {node.name!r}: mixed layouts")
            return dataclasses.replace(xa, tensor=tf.matmul(xa.tensor, xb.tensor))
        raise TinymcuError(f"ONNX MatMul node {node.name!r}: a constant left operand is not "
                           "supported")

    def _seq_binary(self, node: Any, env: dict[str, Any], fn: Any) -> Any:
        import tensorflow as tf

        a, b = (env.get(n) for n in node.input[:2])
        if a is not None and b is not None:
            if getattr(a, "seq", False) != getattr(b, "seq", False):
                raise TinymcuError(f"ONNX {node.op_type} node {node.name!r}: mixed layouts")
            return dataclasses.replace(a, tensor=fn(a.tensor, b.tensor))
        x = a if a is not None else b
        if x is None:
            raise TinymcuError(f"ONNX {node.op_type} node {node.name!r}: no activation input")
        c = self._need_const(node, 1 if a is not None else 0).astype(np.float32)
        ct = tf.constant(c)  # ONNX broadcasting = TF broadcasting in ONNX's own axis order
        return dataclasses.replace(x, tensor=fn(x.tensor, ct) if a is not None
                                   else fn(ct, x.tensor))

    def _seq_Add(self, node: Any, env: dict[str, Any]) -> Any:
        import tensorflow as tf

        return self._seq_binary(node, env, tf.add)

    def _seq_Sub(self, node: Any, env: dict[str, Any]) -> Any:
        import tensorflow as tf

        return self._seq_binary(node, env, tf.subtract)

    def _seq_Mul(self, node: Any, env: dict[str, Any]) -> Any:
        import tensorflow as tf

        return self._seq_binary(node, env, tf.multiply)

    def _seq_Div(self, node: Any, env: dict[str, Any]) -> Any:
        import tensorflow as tf

        if node.input[1] in self.consts:  # x / c → x · (1/c): MUL, not DIV
            return self._seq_binary(node, env, lambda x, c: tf.multiply(x, 1.0 / c))
        return self._seq_binary(node, env, tf.divide)

    def _seq_Softmax(self, node: Any, env: dict[str, Any]) -> Any:
        import tensorflow as tf

        x = self._in(env, node)
        if int(_attrs(node).get("axis", -1)) not in (-1, 2):
            raise TinymcuError(f"ONNX Softmax node {node.name!r}: only over the last axis")
        return dataclasses.replace(x, tensor=tf.nn.softmax(x.tensor, axis=-1))

    def _seq_Slice(self, node: Any, env: dict[str, Any]) -> Any:
        import tensorflow as tf

        x = self._in(env, node)
        shape = [int(v) for v in x.tensor.shape]
        begin, size = [0, 0, 0], list(shape)
        starts, ends = (self.consts[node.input[i]] for i in (1, 2))
        axes = self.consts[node.input[3]] if len(node.input) > 3 and node.input[3] \
            else np.arange(len(starts))
        steps = self.consts[node.input[4]] if len(node.input) > 4 and node.input[4] \
            else np.ones(len(starts), np.int64)
        for st, en, ax, sp in zip(starts, ends, axes, steps):
            ax = int(ax) % 3
            if int(sp) != 1 or ax == 0:
                raise TinymcuError(f"ONNX Slice node {node.name!r}: only step-1 slices of the "
                                   "token or feature axis")
            b, e, _ = slice(int(max(min(int(st), 1 << 62), -(1 << 62))),
                            int(max(min(int(en), 1 << 62), -(1 << 62)))).indices(shape[ax])
            begin[ax], size[ax] = b, max(e - b, 0)
        return dataclasses.replace(x, tensor=tf.slice(x.tensor, begin, size))

    def _seq_ReduceMean(self, node: Any, env: dict[str, Any]) -> Any:
        import tensorflow as tf

        from tinymcu.export.onnx_to_tf import _Value

        x = self._in(env, node)
        a = _attrs(node)
        axes = a.get("axes")
        if axes is None and len(node.input) > 1:
            axes = [int(v) for v in self._need_const(node, 1)]
        axes = sorted(int(v) % 3 for v in (axes or [1, 2]))
        keep = bool(a.get("keepdims", 1))
        if axes != [1] or keep:
            raise TinymcuError(f"ONNX ReduceMean node {node.name!r}: only a mean over the "
                               "tokens (axis 1, keepdims=0) of a (1, T, D) tensor")
        return _Value(tf.reduce_mean(x.tensor, axis=[1]), 2)

    def _seq_Gemm(self, node: Any, env: dict[str, Any]) -> Any:
        raise TinymcuError(f"ONNX Gemm node {node.name!r}: on a (1, T, D) token tensor use "
                           "MatMul (torch's Linear exports it)")


def _contiguous(idx: np.ndarray) -> bool:
    """Scalar, or 1-D ascending by one: what a SLICE can take (negative indices as given)."""
    flat = idx.reshape(-1)
    return idx.ndim == 0 or (idx.ndim == 1 and len(flat) > 0 and bool(
        np.all(np.diff(flat) == 1)) and (flat[0] >= 0) == (flat[-1] >= 0))


def _permute(t: Any, perm: list[int]) -> Any:
    """``tf.transpose(t, perm)``, as a RESHAPE (or nothing) when only size-1 axes move."""
    import tensorflow as tf

    shape = [int(v) for v in t.shape]
    if perm == sorted(perm):
        return t
    moved = [p for p in perm if shape[p] != 1]
    if moved == sorted(moved):
        return tf.reshape(t, [shape[p] for p in perm])
    return tf.transpose(t, perm)


def _other(node: Any, name: str) -> str:
    """The other input of a two-input node."""
    a, b = node.input[0], node.input[1]
    return b if a == name else a
