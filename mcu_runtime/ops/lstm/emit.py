"""C emitter of UNIDIRECTIONAL_SEQUENCE_LSTM (``tm_lstm``): states updated in the arena."""

from __future__ import annotations

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.codegen.emitters import CUnit, c_struct, check_shift
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.ops.lstm import CELL, HIDDEN
from tinymcu.mcu_runtime.schedule import Step


def _c_list(values: list) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}"


def emit_lstm(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph

    def fields() -> str:
        p = get(op.kind).params(op, g)
        check_shift([*p.in_shift, *p.rec_shift, p.forget_shift, p.input_shift, p.output_shift],
                    f"op {op.index} UNIDIRECTIONAL_SEQUENCE_LSTM")
        tag = f"op{op.index}"
        w_in = [unit.tensor_array(op.inputs[1 + k], f"{tag}_w_in{k}") for k in range(4)]
        w_rec = [unit.tensor_array(op.inputs[5 + k], f"{tag}_w_rec{k}") for k in range(4)]
        bias = [unit.tensor_array(op.inputs[12 + k], f"{tag}_bias{k}") for k in range(4)]
        table = unit.array("tm_lstm_sigmoid_table", "uint16_t", p.table)
        return c_struct(w_in=_c_list(w_in), w_rec=_c_list(w_rec), bias=_c_list(bias),
                        in_mult=_c_list(list(p.in_mult)), in_shift=_c_list(list(p.in_shift)),
                        rec_mult=_c_list(list(p.rec_mult)), rec_shift=_c_list(list(p.rec_shift)),
                        batches=p.batches, steps=p.steps, n_in=p.n_in, n_state=p.n_state,
                        time_major=int(p.time_major), in_zp=p.in_zp, hidden_zp=p.hidden_zp,
                        forget_mult=p.forget_mult, forget_shift=p.forget_shift,
                        input_mult=p.input_mult, input_shift=p.input_shift,
                        output_mult=p.output_mult, output_shift=p.output_shift,
                        tanh_mult=p.tanh_mult, tanh_shift=p.tanh_shift, cell_clip=p.cell_clip,
                        table=table)

    ref = unit.op_params(op, "lstm", "tm_lstm_params", fields)
    scratch = unit.scratch(i)
    if scratch is None:
        raise TinymcuError(f"op {op.index} UNIDIRECTIONAL_SEQUENCE_LSTM: the plan has no scratch")
    src = unit.buffer_offset(step, op.inputs[0])
    hidden = unit.buffer_offset(step, op.inputs[HIDDEN])
    cell = unit.buffer_offset(step, op.inputs[CELL])
    dst = unit.buffer_offset(step, op.outputs[0])
    return [f"tm_lstm({ref}, (const int8_t *)(tm_arena + {src}), "
            f"(int8_t *)(tm_arena + {hidden}), (int16_t *)(void *)(tm_arena + {cell}), "
            f"(int8_t *)(tm_arena + {dst}), (int16_t *)(void *){scratch});"]
