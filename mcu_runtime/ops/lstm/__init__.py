"""UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations with int16 internals, as TFLM's
unidirectional_sequence_lstm.cc / lstm_eval computes it (``EvalLstm<int8, int8, int16, int32>``).

Per time step every gate is ``act(FC(x) + FC(h))``: two int8 fully-connected layers to int16
at scale 2^-12 (``reference_integer_ops::FullyConnected``; the bias on the input side only),
a saturating int16 add, then the int16 LOGISTIC (forget, input, output gates) or TANH (cell
gate, input shift 0) of TFLite's reference kernels, which interpolate TFLite's 256-entry
sigmoid table (``table.py``). The cell state (int16, scale 2^p) becomes
``forget·c + input·cell_gate`` (``MulElementwise`` with multipliers of 2^-15 products,
saturating add, optional clip), and the hidden state ``tanh(c)·output`` requantized to int8
at the hidden state's scale and zero point; it is copied to the output at that step. All
four gates read the previous hidden state. Multipliers follow TFLM's Prepare: the FC ones
``double(s_x)·double(s_w) / double(2^-12)``, the products' ``double(a)·double(b) /
double(s_out)`` with the gate scales 2^-12 and 2^-15.

Only the variant TFLM's kernel runs is accepted: all four gates (no CIFG), no peephole, no
projection, no layer norm, int8 input/hidden state, int16 cell state, per-tensor weights;
each refusal is one line. The hidden (input 18) and cell (input 19) states are variable
tensors updated in place and carried to the next invocation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinymcu.mcu_runtime.flatbuf import Table
from tinymcu.mcu_runtime.geometry import Pad
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops import decode as d
from tinymcu.mcu_runtime.ops import register
from tinymcu.mcu_runtime.ops.base import OpDef, qparams
from tinymcu.mcu_runtime.ops.lstm import kernel
from tinymcu.mcu_runtime.ops.lstm.table import SIGMOID_TABLE
from tinymcu.mcu_runtime.quant import quantize_multiplier

#: lstm_shared.h tensor positions
HIDDEN, CELL = 18, 19
_GATES = ("input", "forget", "cell", "output")
_VARIANTS = {(9, 10, 11): "peephole", (16, 17): "projection", (20, 21, 22, 23): "layer-norm"}
#: the gate FC output scale (Q3.12) and the gate output scale (Q0.15), exact powers of two:
#: TFLM's source spells them 0.00024414062 and 0.00003051757, but the float 0.00003051757 is
#: not 2^-15 and the interpreter's answers follow the exact value (a 2045.5 product rounds
#: up on the wheel; speech LSTM: 1 of 200 sequences diverged with the float constant)
_GATE_IN_SCALE = 2.0**-12
_GATE_OUT_SCALE = 2.0**-15


@dataclass(frozen=True, eq=False)
class LstmParams:
    """Sizes, zero points and every (multiplier, shift) of one LSTM, gates in the order
    input, forget, cell, output; ``tanh_mult``/``tanh_shift`` prescale the cell state for
    TANH; ``cell_clip`` is the quantized clip (0: none); ``table`` the sigmoid LUT."""

    batches: int
    steps: int
    n_in: int
    n_state: int
    time_major: bool
    in_zp: int
    hidden_zp: int
    in_mult: np.ndarray
    in_shift: np.ndarray
    rec_mult: np.ndarray
    rec_shift: np.ndarray
    forget_mult: int
    forget_shift: int
    input_mult: int
    input_shift: int
    output_mult: int
    output_shift: int
    tanh_mult: int
    tanh_shift: int
    cell_clip: int
    table: np.ndarray


def _log2_rounded(scale: float) -> int:
    """TFLM's ``CheckedLog2`` result (float32 log, rounded; its pass/fail is ignored)."""
    x = np.float32(scale)
    return int(np.round(np.float32(np.log(x)) * (np.float32(1.0) / np.float32(np.log(2.0)))))


def _mul_params(a: float, b: float, out: float) -> tuple[int, int]:
    return quantize_multiplier(float(np.float64(a) * np.float64(b)) / float(out))


@register
class Lstm(OpDef):
    kinds = ("UNIDIRECTIONAL_SEQUENCE_LSTM",)
    options_type = {"UNIDIRECTIONAL_SEQUENCE_LSTM": 71}
    # OpDataLSTM: LstmSizeInfo, CellStateInfo, activation, 4 × GateParameters (two
    # FullyConnectedParams of 9 ints and 2 bools each), 3 × ArithmeticParams (8-aligned:
    # int64 clamps, so the nested structs' padding is spelled out as "i"), buffer_indices[4]
    # — 688 bytes, what the wheel's recording allocator reports requested
    tflm_opdata = {"UNIDIRECTIONAL_SEQUENCE_LSTM":
                   "biiii" "ihi" "i" + 8 * ("iiiiiiiii" "bb") + "i"
                   + 3 * ("i" "iiiiiiiiii" "ii" "ii" "i" "dd" "iiiii" "i") + "iiii"}
    tflm_options = {"UNIDIRECTIONAL_SEQUENCE_LSTM": 16}  # activation, clips, 3 flags
    untileable = "carries state across time steps and invocations (hidden and cell state)"
    header = "tm_lstm.h"

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.need(len(ins) == 24, f"has {len(ins)} inputs, expected 24")
        d.need(len(outs) == 1, f"has {len(outs)} outputs, expected 1")
        for pos, name in _VARIANTS.items():
            d.need(all(ins[k] is None for k in pos),
                   f"{name} LSTM is not supported (TFLM's integer LSTM has none)")
        d.need(ins[1] is not None and ins[5] is not None,
               "CIFG LSTM (no input gate) is not supported (TFLM's integer LSTM needs it)")
        d.need(all(ins[k] is not None for k in (0, *range(1, 9), *range(12, 16), HIDDEN, CELL)),
               "a required input is missing (-1)")
        x, out, h, c = ins[0], outs[0], ins[HIDDEN], ins[CELL]
        d.need(x.dtype == "int8" and out.dtype == "int8",
               f"input {x.dtype} / output {out.dtype}: only int8 activations are supported")
        d.rank(x, 3, "input")
        d.rank(out, 3, "output")
        time_major = bool(opts.scalar(3, "bool", False)) if opts else False
        act = d.ACTIVATIONS.get(int(opts.scalar(0, "int8")) if opts else 0, "unknown")
        d.need(act == "TANH", f"cell activation {act} is not supported (TANH only)")
        d.need(not (opts and opts.scalar(4, "bool", False)),
               "asymmetric_quantize_inputs (hybrid LSTM) is not supported")
        d.need(not (opts and opts.scalar(5, "bool", False)),
               "diagonal recurrent tensors are not supported")
        cell_clip = float(opts.scalar(1, "float32", 0.0)) if opts else 0.0
        d.need(math.isfinite(cell_clip), "cell_clip is not finite")
        steps, batches = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
        n_in = x.shape[2]
        n_state = ins[2].shape[0] if len(ins[2].shape) == 2 else 0
        for k in range(1, 9):
            w = ins[k]
            d.const(w, f"weights {k}")
            want = (n_state, n_in) if k < 5 else (n_state, n_state)
            d.need(w.dtype == "int8" and w.shape == want,
                   f"weights {k} are {w.dtype} {w.shape}, expected int8 {want}")
            d.need(w.quant is not None and not w.quant.per_channel,
                   f"weights {k} need per-tensor quantization")
        for k in range(12, 16):
            d.const(ins[k], f"bias {k}")
            d.need(ins[k].dtype == "int32" and ins[k].shape == (n_state,),
                   f"bias {k} is {ins[k].dtype} {ins[k].shape}, expected int32 ({n_state},)")
        d.need(out.shape == (x.shape[0], x.shape[1], n_state),
               f"output {out.shape} should be {(x.shape[0], x.shape[1], n_state)}")
        for t, what, dtype in ((h, "hidden state (input 18)", "int8"),
                               (c, "cell state (input 19)", "int16")):
            d.need(t.is_variable, f"{what} is not a variable tensor")
            d.need(t.dtype == dtype, f"{what} is {t.dtype}, expected {dtype}")
            d.need(t.size == batches * n_state,
                   f"{what} has {t.size} elements, expected {batches * n_state}")
            d.need(t.quant is not None, f"{what} has no quantization")
        d.need(x.quant is not None and out.quant is not None, "input/output need quantization")
        power = _log2_rounded(float(c.quant.scale.ravel()[0]))
        d.need(power <= 2, f"cell state scale 2^{power} is too large: TANH's int32 input "
               "prescale would overflow (LSTM cell states use about 2^-11..2^-15)")
        return {"time_major": time_major, "cell_clip": cell_clip}

    def state_inputs(self, op: Op) -> tuple[int, ...]:
        return (HIDDEN, CELL)

    def params(self, op: Op, graph: Graph) -> LstmParams:
        t = graph.tensors
        x = t[op.inputs[0]]
        time_major = bool(op.attrs["time_major"])
        steps, batches = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
        n_state = t[op.inputs[2]].shape[0]
        s_x, zp_x = qparams(graph, op.inputs[0])
        s_h, zp_h = qparams(graph, op.inputs[HIDDEN])
        s_c, _ = qparams(graph, op.inputs[CELL])
        gates = [quantize_multiplier(s_x * qparams(graph, op.inputs[1 + g])[0]
                                     / _GATE_IN_SCALE) for g in range(4)]
        recs = [quantize_multiplier(s_h * qparams(graph, op.inputs[5 + g])[0]
                                    / _GATE_IN_SCALE) for g in range(4)]
        fm, fs = _mul_params(_GATE_OUT_SCALE, s_c, s_c)
        im, is_ = _mul_params(_GATE_OUT_SCALE, _GATE_OUT_SCALE, s_c)
        om, os_ = _mul_params(_GATE_OUT_SCALE, _GATE_OUT_SCALE, s_h)
        left = 15 + _log2_rounded(s_c) - 3
        tanh_mult, tanh_shift = (3 << left, 0) if left >= 0 else (3, -left)
        clip = float(op.attrs.get("cell_clip", 0.0))
        qclip = int(min(max(clip / s_c, -32768.0), 32767.0)) if clip > 0 else 0
        return LstmParams(batches, steps, x.shape[2], n_state, time_major, zp_x, zp_h,
                          np.array([m for m, _ in gates]), np.array([s for _, s in gates]),
                          np.array([m for m, _ in recs]), np.array([s for _, s in recs]),
                          fm, fs, im, is_, om, os_, tanh_mult, tanh_shift, qclip, SIGMOID_TABLE)

    def macs(self, op: Op, graph: Graph) -> int:
        p = self.params(op, graph)
        return p.steps * p.batches * 4 * p.n_state * (p.n_in + p.n_state)

    def scratch_bytes(self, op: Op, graph: Graph, region: Any = None) -> int:
        # forget, input and cell gate outputs of one batch row (int16); the output gate
        # reuses the input gate's buffer, as TFLM's does
        return 3 * 2 * graph.tensors[op.inputs[2]].shape[0]

    def tflm_scratch(self, op: Op, graph: Graph) -> list[int]:
        p = self.params(op, graph)
        return [2 * p.batches * p.n_state] * 4

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        y, h, c = kernel.lstm(self.params(op, graph), inputs)
        t = graph.tensors
        return [y.reshape(t[op.outputs[0]].shape), h.reshape(t[op.inputs[HIDDEN]].shape),
                c.reshape(t[op.inputs[CELL]].shape)]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.lstm.emit import emit_lstm
        return emit_lstm(unit, op, step, i)
