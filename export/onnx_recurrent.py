"""The mcu builder's recurrent op: ONNX LSTM, unrolled over its (static) time steps.

Why unrolled rather than TFLite's UNIDIRECTIONAL_SEQUENCE_LSTM: the fused op's int8 form
needs 16-bit cell state and intermediate scales that ``TFLiteConverter`` only produces from a
Keras LSTM with its own calibration rules, while an unrolled cell is made of ops every MCU
runtime runs and each of them is calibrated like any other op. For a keyword-spotting LSTM
(tens of frames, a few dozen units) the unrolled graph is a few hundred small ops and needs no
state tensor beyond one step's ``h`` and ``c``.

Per direction, with ONNX's gate order (i, o, f, c) and ``layout=0`` (time-major ``X``):

* ``X @ Wᵀ + (Wb + Rb)`` for all steps at once: one FULLY_CONNECTED with batch T;
* per step: SLICE of that step's row, ``+ h @ Rᵀ`` (FULLY_CONNECTED, ADD) and SPLIT into the
  four gates (while ``h`` is the zero initial state: four SLICEs of the row), LOGISTIC ×3,
  TANH, then
  ``c = f·c + i·g`` (MUL, MUL, ADD; ``i·g`` alone while ``c`` is zero) and ``h = o·tanh(c)``;
* ``Y`` (T, dirs, 1, H) is the CONCATENATION of every step's ``h`` (a tree of them past
  ten steps, TFLM's input limit; held in ONNX axis order,
  so the Squeeze / Transpose / Gather torch adds after an LSTM act on it directly); ``Y_h``
  and ``Y_c`` are the last steps' states.

Peepholes, ``clip``, ``input_forget``, non-default activations and per-sample sequence lengths
shorter than T are refused by name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.export.onnx_host import BuilderHost

#: TFLite ops an unrolled LSTM emits (what the fail-fast op check asks the runtime for)
LSTM_LOWERING = ("FULLY_CONNECTED", "SLICE", "ADD", "SPLIT", "LOGISTIC", "TANH", "MUL",
                 "CONCATENATION")


#: TFLM's CONCATENATION takes at most this many inputs (kMaxInputNum)
MAX_CONCAT_INPUTS = 10


def concat_rows(parts: list[Any]) -> Any:
    """``tf.concat(parts, 0)`` as a tree of CONCATENATIONs of at most
    :data:`MAX_CONCAT_INPUTS` inputs each, the most TFLM's kernel prepares."""
    import tensorflow as tf

    while len(parts) > 1:
        parts = [tf.concat(parts[i:i + MAX_CONCAT_INPUTS], axis=0) if
                 len(parts[i:i + MAX_CONCAT_INPUTS]) > 1 else parts[i]
                 for i in range(0, len(parts), MAX_CONCAT_INPUTS)]
    return parts[0]


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class RecurrentOps(BuilderHost):
    """Handlers mixed into the ONNX → TF builder (``onnx_to_tf._Builder``)."""

    def _lstm_refusal(self, node: Any) -> str | None:
        """Why this LSTM node cannot be unrolled (None: it can)."""
        a = _attrs(node)
        acts = [v.decode() if isinstance(v, bytes) else v for v in a.get("activations", [])]
        if acts and [s.lower() for s in acts] not in (
                ["sigmoid", "tanh", "tanh"], ["sigmoid", "tanh", "tanh"] * 2):
            return f"activations {acts} (only the default Sigmoid, Tanh, Tanh)"
        if a.get("clip") is not None:
            return "clip"
        if a.get("input_forget", 0):
            return "input_forget=1"
        if a.get("layout", 0):
            return "layout=1 (batch-major)"
        for i, what in ((1, "W"), (2, "R"), (3, "B"), (5, "initial_h"), (6, "initial_c")):
            if i < len(node.input) and node.input[i] and node.input[i] not in self.consts:
                return f"{what} computed at run time (it must be a constant)"
        if len(node.input) > 7 and node.input[7]:
            p = self.consts.get(node.input[7])
            if p is None or np.any(p):
                return "peephole weights"
        return None

    def _op_LSTM(self, node: Any, env: dict[str, Any]) -> Any:
        import tensorflow as tf

        from tinymcu.export.onnx_to_tf import LayerWeights, _Value

        why = self._lstm_refusal(node)
        if why is not None:
            raise TinymcuError(f"ONNX LSTM node {node.name!r}: {why} is not supported")
        x = self._in(env, node)
        shape = [int(v) for v in x.tensor.shape]
        if not x.seq or len(shape) != 3 or shape[1] != 1:
            raise TinymcuError(f"ONNX LSTM node {node.name!r}: the input must be a time-major "
                               f"(T, 1, F) sequence (got {tuple(shape)})")
        steps, feats = shape[0], shape[2]
        w = self.consts[node.input[1]].astype(np.float32)  # (dirs, 4H, F)
        r = self.consts[node.input[2]].astype(np.float32)  # (dirs, 4H, H)
        dirs, hidden = w.shape[0], r.shape[2]
        b = self._optional(node, 3, (dirs, 8 * hidden))
        h0 = self._optional(node, 5, (dirs, 1, hidden))
        c0 = self._optional(node, 6, (dirs, 1, hidden))
        lens = self.consts.get(node.input[4]) if len(node.input) > 4 and node.input[4] else None
        if lens is not None and np.any(lens != steps):
            raise TinymcuError(f"ONNX LSTM node {node.name!r}: sequence_lens shorter than the "
                               f"{steps} time steps are not supported")
        direction = _attrs(node).get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        reverse = [direction == "reverse"] if dirs == 1 else [False, True]
        xs = tf.reshape(x.tensor, [steps, feats])
        ys, hs, cs = [], [], []
        for d in range(dirs):
            name = self._name(node)
            proj = tf.matmul(xs, tf.constant(np.ascontiguousarray(w[d].T)), name=name)
            self.layers.append(LayerWeights(
                name, node.name, "FULLY_CONNECTED", np.ascontiguousarray(w[d])))
            proj = proj + tf.constant(b[d, :4 * hidden] + b[d, 4 * hidden:])
            rec = tf.constant(np.ascontiguousarray(r[d].T))
            h = tf.constant(h0[d]) if np.any(h0[d]) else None
            c = tf.constant(c0[d]) if np.any(c0[d]) else None
            out: list[Any] = [None] * steps
            for t in (reversed(range(steps)) if reverse[d] else range(steps)):
                if h is None:  # four SLICEs: a SLICE straight into a SPLIT (two ops that
                    # keep their input's scale) is resolved by the converter's quantizer in
                    # a run-dependent order that sometimes leaves both in float32
                    gi, go, gf, gc = (tf.slice(proj, [t, k * hidden], [1, hidden])
                                      for k in range(4))
                else:
                    gates = tf.slice(proj, [t, 0], [1, 4 * hidden]) + tf.matmul(h, rec)
                    gi, go, gf, gc = tf.split(gates, 4, axis=1)
                i, o, g = tf.sigmoid(gi), tf.sigmoid(go), tf.tanh(gc)
                c = i * g if c is None else tf.sigmoid(gf) * c + i * g
                h = o * tf.tanh(c)
                out[t] = h
            ys.append(concat_rows(out))  # (T, H)
            hs.append(h)
            cs.append(c)
        y = tf.stack(ys, axis=1) if dirs > 1 else ys[0][:, None]  # (T, dirs, H)
        results = [tf.reshape(y, [steps, dirs, 1, hidden]),
                   tf.reshape(tf.concat(hs, 0) if dirs > 1 else hs[0], [dirs, 1, hidden]),
                   tf.reshape(tf.concat(cs, 0) if dirs > 1 else cs[0], [dirs, 1, hidden])]
        for name, t in zip(node.output[1:], results[1:]):
            if name:
                env[name] = _Value(t, 3, seq=True)
        return dataclasses.replace(x, tensor=results[0], rank=4)

    def _seq_LSTM(self, node: Any, env: dict[str, Any]) -> Any:
        """The builder's dispatch for a node with a sequence input (its usual input)."""
        return self._op_LSTM(node, env)

    def _optional(self, node: Any, i: int, shape: tuple[int, ...]) -> np.ndarray:
        """An optional constant LSTM input, zeros when absent, as float32 of ``shape``."""
        if i < len(node.input) and node.input[i]:
            return self.consts[node.input[i]].astype(np.float32).reshape(shape)
        return np.zeros(shape, np.float32)
