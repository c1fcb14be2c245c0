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
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from tinymcu.errors import TinymcuError

#: ops that act elementwise and keep a seq value a seq value
_SEQ_ELEMENTWISE = frozenset({"Relu", "Sigmoid", "Tanh", "Identity", "Dropout", "HardSwish",
                              "HardSigmoid", "LeakyRelu", "Clip"})


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class SequenceOps:
    """Handlers mixed into the ONNX → TF builder (``onnx_to_tf._Builder``)."""

    # the builder provides these, and ``_in`` / ``_const`` / ``_name`` / ``layers``
    shapes: dict[str, tuple[int, ...]]
    consts: dict[str, np.ndarray]
    consumers: dict[str, list[Any]]
    skip: set[str]

    # ---- static analysis ------------------------------------------------------------
    def find_gelu(self) -> None:
        """Mark torch's erf GELU chains: Div(x, √2) → Erf → Add(1) → Mul(x, ·) → Mul(½) (the
        two Muls in either order); the last node's output becomes ``gelu(x)``."""
        self.gelu: dict[str, str] = {}
        prod = {o: n for n in self.graph.node for o in n.output}  # type: ignore[attr-defined]
        for erf in self.graph.node:  # type: ignore[attr-defined]
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
        if node.op_type == "Transpose":
            return self._seq_transpose(node, env)
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

    def _seq_transpose(self, node: Any, env: dict[str, Any]) -> Any:
        import tensorflow as tf

        from tinymcu.export.onnx_to_tf import _Value

        x = self._in(env, node)  # type: ignore[attr-defined]
        perm = [int(v) for v in _attrs(node).get("perm", [])]
        if x.rank != 3 or perm != [0, 2, 1]:
            raise TinymcuError(f"ONNX Transpose node {node.name!r}: only swapping the last two "
                               f"axes of a rank-3 tensor is supported (perm {perm})")
        if not getattr(x, "seq", False):  # (N, C, L) signal map (1, 1, L, C) → (1, L, C)
            _, _, length, c = (int(v) for v in x.tensor.shape)
            return _Value(tf.reshape(x.tensor, [1, length, c]), 3, seq=True)
        return dataclasses.replace(x, tensor=tf.transpose(x.tensor, [0, 2, 1]))

    def _seq_LayerNormalization(self, node: Any, env: dict[str, Any]) -> Any:
        import tensorflow as tf

        x = self._in(env, node)  # type: ignore[attr-defined]
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
        gamma = self._const(node, 1)  # type: ignore[attr-defined]
        beta = self._const(node, 2)  # type: ignore[attr-defined]
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
            name = self._name(node)  # type: ignore[attr-defined]
            y = tf.matmul(tf.reshape(x.tensor, [t, d]), tf.constant(w), name=name)
            self.layers.append(LayerWeights(  # type: ignore[attr-defined]
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
        c = self._const(node, 1 if a is not None else 0).astype(np.float32)  # type: ignore
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

        x = self._in(env, node)  # type: ignore[attr-defined]
        if int(_attrs(node).get("axis", -1)) not in (-1, 2):
            raise TinymcuError(f"ONNX Softmax node {node.name!r}: only over the last axis")
        return dataclasses.replace(x, tensor=tf.nn.softmax(x.tensor, axis=-1))

    def _seq_Slice(self, node: Any, env: dict[str, Any]) -> Any:
        import tensorflow as tf

        x = self._in(env, node)  # type: ignore[attr-defined]
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

        x = self._in(env, node)  # type: ignore[attr-defined]
        a = _attrs(node)
        axes = a.get("axes")
        if axes is None and len(node.input) > 1:
            axes = [int(v) for v in self._const(node, 1)]  # type: ignore[attr-defined]
        axes = sorted(int(v) % 3 for v in (axes or [1, 2]))
        keep = bool(a.get("keepdims", 1))
        if axes != [1] or keep:
            raise TinymcuError(f"ONNX ReduceMean node {node.name!r}: only a mean over the "
                               "tokens (axis 1, keepdims=0) of a (1, T, D) tensor")
        return _Value(tf.reduce_mean(x.tensor, axis=[1]), 2)

    def _seq_Gemm(self, node: Any, env: dict[str, Any]) -> Any:
        raise TinymcuError(f"ONNX Gemm node {node.name!r}: on a (1, T, D) token tensor use "
                           "MatMul (torch's Linear exports it)")


def _other(node: Any, name: str) -> str:
    """The other input of a two-input node."""
    a, b = node.input[0], node.input[1]
    return b if a == name else a
