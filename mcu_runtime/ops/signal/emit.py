"""C emitters of the Signal ops (``tm_signal.h``): one call per op on arena bytes, with the
constants ``params()`` computed (twiddles, factors, log table) as flash arrays."""

from __future__ import annotations

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.codegen.emitters import CUnit, c_struct
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.schedule import Step


def _interleave(re: np.ndarray, im: np.ndarray) -> np.ndarray:
    out = np.empty(2 * re.size, np.int16)
    out[0::2], out[1::2] = re, im
    return out


def emit_signal(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph
    if step.in_region is not None or step.out_region is not None:
        raise TinymcuError(f"op {op.index} {op.kind} cannot run on a tile")
    p = get(op.kind).params(op, g)
    tag = f"op{op.index}"

    def at(t: int) -> str:
        return f"(uint8_t *)(tm_arena + {unit.buffer_offset(step, t)})"

    x, y = at(op.inputs[0]), at(op.outputs[0])
    n_in = g.tensors[op.inputs[0]].size
    n_out = g.tensors[op.outputs[0]].size
    if op.kind == "SignalWindow":
        w = unit.array(f"{tag}_window", "int16_t", p.weights)
        return [f"tm_signal_window({x}, {w}, {p.weights.size}, {n_in // p.weights.size}, "
                f"{p.shift}, {y});"]
    if op.kind == "SignalFftAutoScale":
        return [f"tm_signal_fft_auto_scale({x}, {n_in}, {y}, {at(op.outputs[1])});"]
    if op.kind == "SignalRfft":
        scratch = unit.scratch(i)
        if scratch is None:
            raise TinymcuError(f"op {op.index} SignalRfft has no scratch buffer in the plan")
        in_len = g.tensors[op.inputs[0]].shape[-1]

        def fields() -> str:
            factors = unit.array(f"{tag}_factors", "int32_t", np.array(p.factors).ravel())
            tw = unit.array(f"{tag}_twiddles", "int16_t", _interleave(p.twiddles_r,
                                                                      p.twiddles_i))
            sup = unit.array(f"{tag}_super", "int16_t", _interleave(p.super_r, p.super_i))
            perm = unit.array(f"{tag}_perm", "int16_t", p.perm)
            return c_struct(nfft=p.nfft, stages=len(p.factors), factors=factors, twiddles=tw,
                            super_tw=sup, perm=perm, in_len=in_len, rows=n_in // in_len)

        ref = unit.op_params(op, "rfft", "tm_rfft_params", fields)
        return [f"tm_signal_rfft({ref}, {x}, {y}, (uint8_t *){scratch});"]
    if op.kind == "SignalEnergy":
        return [f"tm_signal_energy({x}, {n_out}, {p.start}, {p.end}, {y});"]
    if op.kind == "SignalFilterBank":
        arrays = [unit.array(f"{tag}_{name}", "int16_t", a) for name, a in (
            ("weights", p.weights), ("unweights", p.unweights), ("freq_starts", p.freq_starts),
            ("weight_starts", p.weight_starts), ("widths", p.widths))]
        return [f"tm_signal_filter_bank({x}, {', '.join(arrays)}, {n_out}, {y});"]
    if op.kind == "SignalFilterBankSquareRoot":
        return [f"tm_signal_filter_bank_sqrt({x}, {at(op.inputs[1])}, {n_in}, {y});"]
    if op.kind == "SignalFilterBankSpectralSubtraction":
        a = op.attrs

        def ss_fields() -> str:
            return c_struct(smoothing=f"{a['smoothing']}u",
                            one_minus=f"{a['one_minus_smoothing']}u",
                            alt_smoothing=f"{a['alternate_smoothing']}u",
                            alt_one_minus=f"{a['alternate_one_minus_smoothing']}u",
                            min_signal_remaining=f"{a['min_signal_remaining']}u",
                            smoothing_bits=a["smoothing_bits"],
                            bits=a["spectral_subtraction_bits"], clamping=int(a["clamping"]),
                            channels=a["channels"])

        ref = unit.op_params(op, "ss", "tm_spectral_sub_params", ss_fields)
        return [f"tm_signal_spectral_sub({ref}, {x}, {at(op.inputs[1])}, {y}, "
                f"{at(op.outputs[1])});"]
    if op.kind == "SignalPCAN":
        lut = unit.array(f"{tag}_gain_lut", "int16_t", p.lut)
        return [f"tm_signal_pcan({x}, {at(op.inputs[1])}, {lut}, {p.snr_shift}, {n_in}, {y});"]
    if op.kind == "SignalFilterBankLog":
        lut = unit.array("tm_signal_log_lut", "uint16_t", p.lut)
        return [f"tm_signal_filter_bank_log({x}, {n_in}, {p.correction_bits}, "
                f"{p.output_scale}u, {lut}, {y});"]
    raise TinymcuError(f"op {op.index} {op.kind} has no C emitter")
