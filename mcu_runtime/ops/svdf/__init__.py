"""SVDF int8 with an int16 (or int8) activation state, as TFLM's svdf.cc / svdf_common.cc
(``EvalIntegerSvdfReference``) compute it.

Each invocation shifts every filter's memory of ``M`` past feature values left by one,
writes the new feature ``clamp(zp_s + MBQM(W_f · (x - zp_in), m1, s1))`` into the last
slot, then sums ``W_t · (state - zp_s)`` per filter, adds the bias, reduces ``rank``
filters into each unit and requantizes to int8 with ``(m2, s2)``. The two multipliers are
TFLM's: ``s_in · s_wf / s_state`` and ``s_state · s_wt / s_out`` taken in *float32* and
widened afterwards (``static_cast<double>(float · float / float)``). The fused activation is
not applied on this path (TFLM's integer SVDF ignores it; the int8 clamp is all there is).
Sums wrap in int32 like the C++ loops. The state (input 4, a variable tensor) is updated in
place and carried to the next invocation; TFLM requires a bias, so a model without one is
refused here as TFLM would refuse it in Prepare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinymcu.mcu_runtime.flatbuf import Table
from tinymcu.mcu_runtime.geometry import Pad
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops import decode as d
from tinymcu.mcu_runtime.ops import register
from tinymcu.mcu_runtime.ops.base import OpDef, qparams, quant_of
from tinymcu.mcu_runtime.ops.svdf import kernel
from tinymcu.mcu_runtime.quant import quantize_multiplier

#: TFLM's ``kSvdfInputActivationStateTensor``
STATE = 4


@dataclass(frozen=True)
class SvdfParams:
    """Sizes, zero points, the two (multiplier, shift) pairs and the state's type."""

    batches: int
    inputs: int
    filters: int
    rank: int
    units: int
    memory: int
    in_zp: int
    state_zp: int
    out_zp: int
    mult1: int
    shift1: int
    mult2: int
    shift2: int
    state_dtype: str


@register
class Svdf(OpDef):
    kinds = ("SVDF",)
    options_type = {"SVDF": 6}
    tflm_opdata = {"SVDF": "iiiiiiiii"}  # OpDataSvdf
    tflm_options = {"SVDF": 12}  # TfLiteSVDFParams: rank, activation, asymmetric flag
    untileable = "carries state across invocations (its activation state is a variable)"
    header = "tm_svdf.h"

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.need(len(ins) == 5, f"has {len(ins)} inputs, expected 5")
        d.need(len(outs) == 1, f"has {len(outs)} outputs, expected 1")
        x, wf, wt, bias, state = ins
        out = outs[0]
        d.need(x is not None and wf is not None and wt is not None and state is not None,
               "a required input is missing (-1)")
        d.need(bias is not None, "has no bias; TFLM's int8 SVDF needs one")
        rank = int(opts.scalar(0, "int32", 0)) if opts else 0
        d.need(rank >= 1, f"rank {rank} should be positive")
        d.need(x.dtype == "int8" and out.dtype == "int8",
               f"input {x.dtype} / output {out.dtype}: only int8 SVDF is supported")
        d.need(not (opts and opts.scalar(2, "bool", False)),
               "asymmetric_quantize_inputs (hybrid SVDF) is not supported")
        d.rank(x, 2, "input")
        d.rank(out, 2, "output")
        d.const(wf, "feature weights")
        d.const(wt, "time weights")
        d.const(bias, "bias")
        d.rank(wf, 2, "feature weights")
        d.rank(wt, 2, "time weights")
        batches, n_in = x.shape
        filters, memory = wt.shape
        d.need(wf.dtype == "int8", f"feature weights are {wf.dtype}, expected int8")
        d.need(wt.dtype in ("int8", "int16") and state.dtype == wt.dtype,
               f"time weights {wt.dtype} and state {state.dtype} must both be int16 or int8")
        d.need(bias.dtype == "int32", f"bias is {bias.dtype}, expected int32")
        d.need(wf.shape == (filters, n_in),
               f"feature weights {wf.shape} should be ({filters}, {n_in})")
        d.need(filters % rank == 0, f"{filters} filters are not a multiple of rank {rank}")
        units = filters // rank
        d.need(out.shape == (batches, units), f"output {out.shape} should be "
               f"({batches}, {units})")
        d.need(bias.shape == (units,), f"bias shape {bias.shape} should be ({units},)")
        d.need(state.is_variable, "activation state (input 4) is not a variable tensor")
        d.need(state.shape == (batches, memory * filters),
               f"activation state {state.shape} should be ({batches}, {memory * filters})")
        for t, what in ((x, "input"), (wf, "feature weights"), (wt, "time weights"),
                        (bias, "bias"), (state, "activation state"), (out, "output")):
            d.need(t.quant is not None and not t.quant.per_channel,
                   f"{what} needs per-tensor quantization")
        s_state = np.float32(state.quant.scale[0])
        s_wt = np.float32(wt.quant.scale[0])
        d.need(abs(float(bias.quant.scale[0]) - float(s_state * s_wt)) < 1e-5,
               "bias scale is not activation-state scale × time-weights scale (TFLM refuses)")
        return {"rank": rank, "activation": d.ACTIVATIONS.get(
            int(opts.scalar(1, "int8")) if opts else 0, "NONE")}

    def state_inputs(self, op: Op) -> tuple[int, ...]:
        return (STATE,)

    def params(self, op: Op, graph: Graph) -> SvdfParams:
        t = graph.tensors
        x, wt, state = t[op.inputs[0]], t[op.inputs[2]], t[op.inputs[STATE]]
        scale = {k: np.float32(quant_of(graph, i).scale[0]) for k, i in
                 (("in", op.inputs[0]), ("wf", op.inputs[1]), ("wt", op.inputs[2]),
                  ("state", op.inputs[STATE]), ("out", op.outputs[0]))}
        # float32 products and quotient, widened afterwards: TFLM's PrepareSvdf
        m1, s1 = quantize_multiplier(float(scale["in"] * scale["wf"] / scale["state"]))
        m2, s2 = quantize_multiplier(float(scale["state"] * scale["wt"] / scale["out"]))
        filters, memory = wt.shape
        rank = int(op.attrs["rank"])
        return SvdfParams(x.shape[0], x.shape[1], filters, rank, filters // rank, memory,
                          qparams(graph, op.inputs[0])[1], qparams(graph, op.inputs[STATE])[1],
                          qparams(graph, op.outputs[0])[1], m1, s1, m2, s2, state.dtype)

    def macs(self, op: Op, graph: Graph) -> int:
        p = self.params(op, graph)
        return p.batches * p.filters * (p.inputs + p.memory)

    def tflm_scratch(self, op: Op, graph: Graph) -> list[int]:
        p = self.params(op, graph)
        return [4 * p.batches * p.filters, 4 * p.batches * p.units]

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        y, state = kernel.svdf(self.params(op, graph), inputs)
        return [y.reshape(graph.tensors[op.outputs[0]].shape), state]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.svdf.emit import emit_svdf
        return emit_svdf(unit, op, step, i)
