"""TFLM's Signal library custom ops (``signal/micro/kernels``): the fixed-point audio front end
of micro_speech — window, FFT auto-scale, int16 real FFT (kiss_fft, 16-bit fixed point),
energy, mel filter bank, its square root, spectral subtraction (stateful noise estimate),
PCAN gain control and the log.

They are TFLite *custom* ops: the reader names them by their custom code and hands their
FlexBuffer options map to ``decode_custom``. Every constant the kernels need (FFT twiddles,
the dense filter-bank weight matrices, the log correction table) is computed once in
``params()``; no float is used when they run (``tm_signal.h`` is the C side).
SignalFilterBankSpectralSubtraction keeps its noise estimate inside the TFLM kernel (a
persistent buffer that ``Reset`` zeroes) rather than in a variable tensor, so it declares it
as ``kernel_state`` and the reader gives it a variable tensor: the emulator and the C
runtime then carry it from invocation to invocation like SVDF's state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from tinymcu.mcu_runtime.geometry import Pad
from tinymcu.mcu_runtime.ir import Graph, Op, Tensor
from tinymcu.mcu_runtime.ops import decode as d
from tinymcu.mcu_runtime.ops import register
from tinymcu.mcu_runtime.ops.base import OpDef
from tinymcu.mcu_runtime.ops.signal import kernel

#: the TensorType code of int16 (SignalRfft's ``T``): the only FFT type tinymcu runs
_INT16 = 7
#: kiss_fft's Q15 full scale (SAMP_MAX), the twiddles' amplitude
_SAMP_MAX = 32767


def _int(options: dict[str, Any], key: str, lo: int, hi: int) -> int:
    """An integer attribute in [lo, hi] (TFLM reads every one as int32)."""
    v = options.get(key)
    d.need(isinstance(v, int) and not isinstance(v, bool),
           f"option {key!r} is {v!r}, expected an integer")
    assert isinstance(v, int)
    d.need(lo <= v <= hi, f"option {key!r} is {v}, expected {lo}..{hi}")
    return v


def _io(ins: list, outs: list, n_in: int, n_out: int) -> None:
    d.need(len(ins) == n_in, f"has {len(ins)} inputs, expected {n_in}")
    d.need(len(outs) == n_out, f"has {len(outs)} outputs, expected {n_out}")
    d.need(all(t is not None for t in ins), "a required input is missing (-1)")


def _typed(t: Tensor, dtype: str, rank: int | None, what: str) -> None:
    d.need(t.dtype == dtype, f"{what} is {t.dtype}, expected {dtype}")
    if rank is not None:
        d.rank(t, rank, what)


class _Signal(OpDef):
    """What every Signal op shares: a custom op computing on its own integer types."""

    custom = True
    mixed_types = True
    untileable = "a Signal op works on whole 1-D frames"
    header = "tm_signal.h"

    def tensor(self, graph: Graph, op: Op, k: int) -> Tensor:
        return graph.tensors[op.inputs[k]]

    #: the reference kernel of an op whose one output is ``frame(params, first input)``
    #: (the ops with more inputs or outputs override :meth:`run` instead)
    frame: ClassVar[staticmethod[[Any, np.ndarray], np.ndarray]]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.signal.emit import emit_signal
        return emit_signal(unit, op, step, i)

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        assert inputs[0] is not None
        return [type(self).frame(self.params(op, graph), inputs[0])]


# ---- SignalWindow ----------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class WindowParams:
    shift: int
    weights: np.ndarray  # int16 coefficients, one row's worth


@register
class Window(_Signal):
    kinds = ("SignalWindow",)
    frame = staticmethod(kernel.window)
    tflm_opdata = {"SignalWindow": "ii"}  # TFLMSignalWindowParams

    def decode_custom(self, kind: str, ins: list, outs: list,
                      options: dict[str, Any]) -> dict[str, Any]:
        _io(ins, outs, 2, 1)
        x, w, y = ins[0], ins[1], outs[0]
        _typed(x, "int16", None, "input")
        _typed(w, "int16", 1, "window weights")
        _typed(y, "int16", None, "output")
        d.const(w, "window weights")
        d.need(len(x.shape) >= 1 and x.shape[-1] == w.shape[0],
               f"input {x.shape} rows should have the {w.shape[0]} window weights")
        d.need(y.shape == x.shape, f"output shape {y.shape} should be {x.shape}")
        return {"shift": _int(options, "shift", 0, 31)}

    def params(self, op: Op, graph: Graph) -> WindowParams:
        w = self.tensor(graph, op, 1).data
        assert w is not None
        return WindowParams(int(op.attrs["shift"]), w.astype(np.int16))



# ---- SignalFftAutoScale ----------------------------------------------------------------
@register
class FftAutoScale(_Signal):
    kinds = ("SignalFftAutoScale",)
    tflm_opdata = {"SignalFftAutoScale": ""}

    def decode_custom(self, kind: str, ins: list, outs: list,
                      options: dict[str, Any]) -> dict[str, Any]:
        _io(ins, outs, 1, 2)
        x, y, scale = ins[0], outs[0], outs[1]
        _typed(x, "int16", 1, "input")
        _typed(y, "int16", 1, "output")
        _typed(scale, "int32", 0, "scale bits output")
        d.need(y.shape == x.shape, f"output shape {y.shape} should be {x.shape}")
        return {}

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        assert inputs[0] is not None
        return list(kernel.fft_auto_scale(inputs[0]))


# ---- SignalRfft --------------------------------------------------------------------------
def kiss_factors(n: int) -> list[tuple[int, int]]:
    """kiss_fft's ``kf_factor``: (radix, remaining length) per stage, radix 4 first, then
    2, then odd primes."""
    out, p, root = [], 4, math.floor(math.sqrt(n))
    while True:
        while n % p:
            p = 2 if p == 4 else 3 if p == 2 else p + 2
            if p > root:
                p = n
        n //= p
        out.append((p, n))
        if n <= 1:
            return out


def _q15_cexp(phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """kiss_fft's fixed-point ``kf_cexp``: floor(0.5 + 32767·cos/sin), in double."""
    return (np.floor(0.5 + _SAMP_MAX * np.cos(phase)).astype(np.int16),
            np.floor(0.5 + _SAMP_MAX * np.sin(phase)).astype(np.int16))


@dataclass(frozen=True, eq=False)
class RfftParams:
    """kiss_fftr's state: the complex FFT length (half the real one), its factors, the
    complex twiddles and the real-split ("super") twiddles, all Q15."""

    nfft: int
    factors: tuple[tuple[int, int], ...]
    twiddles_r: np.ndarray
    twiddles_i: np.ndarray
    super_r: np.ndarray
    super_i: np.ndarray
    perm: np.ndarray  # the input index each leaf of kf_work copies (the C runs no recursion)


def leaf_order(n: int, factors: list[tuple[int, int]]) -> np.ndarray:
    """Where kf_work's recursion puts each input: block q of a stage takes every radix-th
    element from q, down to the leaves."""
    def walk(idx: np.ndarray, stage: int) -> np.ndarray:
        radix, m = factors[stage]
        if m == 1:
            return idx
        return np.concatenate([walk(idx[q::radix], stage + 1) for q in range(radix)])
    return walk(np.arange(n), 0)


@register
class Rfft(_Signal):
    kinds = ("SignalRfft",)
    tflm_opdata = {"SignalRfft": "iiiipip"}  # TfLiteAudioFrontendRfftParams<int16_t>

    def decode_custom(self, kind: str, ins: list, outs: list,
                      options: dict[str, Any]) -> dict[str, Any]:
        _io(ins, outs, 1, 1)
        x, y = ins[0], outs[0]
        d.need(options.get("T") == _INT16,
               f"FFT type T={options.get('T')!r}: tinymcu runs the int16 FFT (T=7) only")
        n = _int(options, "fft_length", 2, 1 << 15)
        radices = {r for r, _ in kiss_factors(n // 2)} if n >= 4 else {2}
        d.need(n % 2 == 0 and radices <= {2, 4},
               f"fft_length {n} is not a power of two (kiss_fft's radix-2/4 stages only)")
        _typed(x, "int16", None, "input")
        _typed(y, "int16", None, "output")
        d.need(len(x.shape) >= 1 and len(y.shape) == len(x.shape),
               f"input {x.shape} and output {y.shape} should have the same rank")
        d.need(x.shape[-1] <= n, f"input rows of {x.shape[-1]} exceed fft_length {n}")
        want = (*x.shape[:-1], n + 2)
        d.need(y.shape == want, f"output shape {y.shape} should be {want}")
        return {"fft_length": n}

    def params(self, op: Op, graph: Graph) -> RfftParams:
        n = int(op.attrs["fft_length"]) // 2
        pi = math.pi
        tr, ti = _q15_cexp(-2 * pi * np.arange(n, dtype=np.float64) / n)
        sr, si = _q15_cexp(-pi * ((np.arange(n // 2, dtype=np.float64) + 1) / n + 0.5))
        factors = kiss_factors(n)
        return RfftParams(n, tuple(factors), tr, ti, sr, si,
                          leaf_order(n, factors).astype(np.int16))

    def scratch_bytes(self, op: Op, graph: Graph, region: Any = None) -> int:
        return 2 * int(op.attrs["fft_length"]) + 4 * (int(op.attrs["fft_length"]) // 2)

    def macs(self, op: Op, graph: Graph) -> int:
        n = int(op.attrs["fft_length"])
        return n * max(1, n.bit_length() - 1)

    def tflm_scratch(self, op: Op, graph: Graph) -> list[int]:
        return [2 * int(op.attrs["fft_length"])]  # the zero-padded int16 work area

    def tflm_persistent(self, op: Op, graph: Graph, pointer_bytes: int) -> list[int]:
        return [kiss_fftr_state_bytes(int(op.attrs["fft_length"]), pointer_bytes)]

    def tflm_prepare(self, op: Op, graph: Graph, pointer_bytes: int) -> list[Any]:
        # Init (before Prepare's temporaries) takes the kiss_fftr state
        steps: list[Any] = [("persist", n) for n in self.tflm_persistent(op, graph,
                                                                           pointer_bytes)]
        return steps + [("temp", t) for t in (*op.inputs, *op.outputs)]

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        assert inputs[0] is not None
        return [kernel.rfft(self.params(op, graph), inputs[0],
                            graph.tensors[op.outputs[0]].shape)]


def kiss_fftr_state_bytes(fft_length: int, pointer_bytes: int) -> int:
    """Bytes ``kiss_fftr_alloc`` asks for: its header (substate, tmpbuf and super-twiddle
    pointers), the complex FFT's state (nfft, inverse, 2·MAXFACTORS factor ints, then the
    twiddles) and the tmpbuf plus super twiddles, 4 bytes per int16 complex."""
    n = fft_length // 2
    header = 3 * pointer_bytes
    kiss_state = 4 * (2 + 2 * 32) + 4 * n
    return header + kiss_state + 4 * (n + n // 2)


# ---- SignalEnergy -----------------------------------------------------------------------
@dataclass(frozen=True)
class EnergyParams:
    start: int
    end: int


@register
class Energy(_Signal):
    kinds = ("SignalEnergy",)
    frame = staticmethod(kernel.energy)
    tflm_opdata = {"SignalEnergy": "ii"}

    def decode_custom(self, kind: str, ins: list, outs: list,
                      options: dict[str, Any]) -> dict[str, Any]:
        _io(ins, outs, 1, 1)
        x, y = ins[0], outs[0]
        _typed(x, "int16", 1, "input")
        _typed(y, "uint32", 1, "output")
        d.need(x.shape[0] == 2 * y.shape[0],
               f"input {x.shape} should hold the {y.shape[0]} complex bins of the output")
        start = _int(options, "start_index", 0, y.shape[0])
        end = _int(options, "end_index", start, y.shape[0])
        return {"start": start, "end": end}

    def params(self, op: Op, graph: Graph) -> EnergyParams:
        return EnergyParams(int(op.attrs["start"]), int(op.attrs["end"]))



# ---- SignalFilterBank -------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class FilterBankParams:
    """Dense (channels × bins) uint64 matrices: the weights of channel c and the
    unweights of channel c - 1 (TFLM's scratch channel 0 folded away), plus the sparse
    tables the C kernel walks instead."""

    weight_matrix: np.ndarray
    unweight_matrix: np.ndarray
    weights: np.ndarray
    unweights: np.ndarray
    freq_starts: np.ndarray
    weight_starts: np.ndarray
    widths: np.ndarray


@register
class FilterBank(_Signal):
    kinds = ("SignalFilterBank",)
    frame = staticmethod(kernel.filter_bank)
    tflm_opdata = {"SignalFilterBank": "ippppp" + "p"}  # FilterbankConfig + work_area

    def decode_custom(self, kind: str, ins: list, outs: list,
                      options: dict[str, Any]) -> dict[str, Any]:
        _io(ins, outs, 6, 1)
        x, w, uw, fs, ws, widths = ins
        y = outs[0]
        _typed(x, "uint32", 1, "input")
        _typed(y, "uint64", 1, "output")
        names = ("weights", "unweights", "channel frequency starts",
                 "channel weight starts", "channel widths")
        for t, what in zip((w, uw, fs, ws, widths), names, strict=True):
            _typed(t, "int16", 1, what)
            d.const(t, what)
        channels = _int(options, "num_channels", 1, 1 << 15)
        d.need(y.shape == (channels,), f"output shape {y.shape} should be ({channels},)")
        d.need(w.shape == uw.shape, f"weights {w.shape} and unweights {uw.shape} differ")
        for t, what in zip((fs, ws, widths), names[2:], strict=True):
            d.need(t.shape == (channels + 1,),
                   f"{what} {t.shape} should be ({channels + 1},): one per channel plus "
                   "TFLM's scratch channel")
        for c in range(channels + 1):
            f0, w0, n = int(fs.data[c]), int(ws.data[c]), int(widths.data[c])
            d.need(n >= 0 and 0 <= f0 and f0 + n <= x.shape[0] and 0 <= w0
                   and w0 + n <= w.shape[0],
                   f"channel {c} reads bins {f0}..{f0 + n} / weights {w0}..{w0 + n} "
                   f"outside the {x.shape[0]} bins / {w.shape[0]} weights")
        return {"channels": channels}

    def params(self, op: Op, graph: Graph) -> FilterBankParams:
        x = self.tensor(graph, op, 0)
        arrays = [self.tensor(graph, op, k).data for k in range(1, 6)]
        assert all(a is not None for a in arrays)
        w, uw, fs, ws, widths = (np.asarray(a).astype(np.int64) for a in arrays)
        channels = int(op.attrs["channels"])
        wm = np.zeros((channels + 1, x.shape[0]), np.uint64)
        um = np.zeros((channels + 1, x.shape[0]), np.uint64)
        for c in range(channels + 1):
            bins = np.arange(fs[c], fs[c] + widths[c])
            taps = np.arange(ws[c], ws[c] + widths[c])
            # int16 weights widen to uint64 modulo 2^64, as the C multiply does
            np.add.at(wm[c], bins, w[taps].astype(np.uint64))
            np.add.at(um[c], bins, uw[taps].astype(np.uint64))
        return FilterBankParams(wm[1:], um[:-1], *(a.astype(np.int16)
                                                   for a in (w, uw, fs, ws, widths)))

    def macs(self, op: Op, graph: Graph) -> int:
        widths = self.tensor(graph, op, 5).data
        assert widths is not None
        return 2 * int(np.sum(widths))

    def tflm_persistent(self, op: Op, graph: Graph, pointer_bytes: int) -> list[int]:
        return [8 * (int(op.attrs["channels"]) + 1)]  # the uint64 work area

    def tflm_prepare(self, op: Op, graph: Graph, pointer_bytes: int) -> list[Any]:
        # Init takes OpData and the work area; Prepare holds one temporary at a time
        steps: list[Any] = [("persist", n) for n in self.tflm_persistent(op, graph,
                                                                           pointer_bytes)]
        return steps + [("temp", t) for t in (*op.inputs, *op.outputs)]



# ---- SignalFilterBankSquareRoot ---------------------------------------------------------
@register
class FilterBankSquareRoot(_Signal):
    kinds = ("SignalFilterBankSquareRoot",)
    tflm_opdata = {"SignalFilterBankSquareRoot": ""}

    def decode_custom(self, kind: str, ins: list, outs: list,
                      options: dict[str, Any]) -> dict[str, Any]:
        _io(ins, outs, 2, 1)
        x, scale, y = ins[0], ins[1], outs[0]
        _typed(x, "uint64", 1, "input")
        _typed(scale, "int32", 0, "scale bits")
        _typed(y, "uint32", 1, "output")
        d.need(y.shape == x.shape, f"output shape {y.shape} should be {x.shape}")
        if scale.data is not None:
            v = int(scale.data)
            d.need(0 <= v <= 31, f"constant scale bits {v} should be 0..31")
        return {}

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        assert inputs[0] is not None and inputs[1] is not None
        return [kernel.filter_bank_square_root(inputs[0], int(np.asarray(inputs[1])) & 31)]


# ---- SignalFilterBankSpectralSubtraction ------------------------------------------------
@dataclass(frozen=True, eq=False)
class SpectralSubtractionParams:
    """Per-channel smoothing coefficients (even channels ``smoothing``, odd ones the
    alternate pair) and the shifts."""

    smoothing: np.ndarray
    one_minus: np.ndarray
    min_signal_remaining: int
    smoothing_bits: int
    bits: int
    clamping: bool


_SS_KEYS = ("alternate_one_minus_smoothing", "alternate_smoothing", "min_signal_remaining",
            "one_minus_smoothing", "smoothing")


@register
class SpectralSubtraction(_Signal):
    kinds = ("SignalFilterBankSpectralSubtraction",)
    tflm_opdata = {"SignalFilterBankSpectralSubtraction": "i" * 9 + "pp"}
    untileable = "carries its noise estimate across invocations"

    def decode_custom(self, kind: str, ins: list, outs: list,
                      options: dict[str, Any]) -> dict[str, Any]:
        _io(ins, outs, 1, 2)
        x, y, noise = ins[0], outs[0], outs[1]
        for t, what in ((x, "input"), (y, "output"), (noise, "noise estimate output")):
            _typed(t, "uint32", 1, what)
        channels = _int(options, "num_channels", 1, 1 << 15)
        for t, what in ((x, "input"), (y, "output"), (noise, "noise estimate output")):
            d.need(t.shape == (channels,), f"{what} {t.shape} should be ({channels},)")
        attrs: dict[str, Any] = {k: _int(options, k, 0, (1 << 31) - 1) for k in _SS_KEYS}
        attrs["smoothing_bits"] = _int(options, "smoothing_bits", 0, 31)
        attrs["spectral_subtraction_bits"] = _int(options, "spectral_subtraction_bits", 0, 63)
        clamping = options.get("clamping", False)
        d.need(isinstance(clamping, bool), f"option 'clamping' is {clamping!r}, expected "
               "a bool")
        attrs["clamping"] = clamping
        attrs["channels"] = channels
        return attrs

    def kernel_state(self, kind: str, attrs: dict[str, Any], ins: list,
                     outs: list) -> list[tuple[str, tuple[int, ...], str]]:
        return [("noise_estimate_state", (int(attrs["channels"]),), "uint32")]

    def state_inputs(self, op: Op) -> tuple[int, ...]:
        return (1,)

    def params(self, op: Op, graph: Graph) -> SpectralSubtractionParams:
        a = op.attrs
        even = np.arange(int(a["channels"])) % 2 == 0
        return SpectralSubtractionParams(
            np.where(even, a["smoothing"], a["alternate_smoothing"]).astype(np.uint64),
            np.where(even, a["one_minus_smoothing"],
                     a["alternate_one_minus_smoothing"]).astype(np.uint64),
            int(a["min_signal_remaining"]), int(a["smoothing_bits"]),
            int(a["spectral_subtraction_bits"]), bool(a["clamping"]))

    def tflm_persistent(self, op: Op, graph: Graph, pointer_bytes: int) -> list[int]:
        return [4 * int(op.attrs["channels"])]  # the noise estimate

    def tflm_prepare(self, op: Op, graph: Graph, pointer_bytes: int) -> list[Any]:
        steps: list[Any] = [("persist", n) for n in self.tflm_persistent(op, graph,
                                                                           pointer_bytes)]
        return steps + [("temp", t) for t in (op.inputs[0], *op.outputs)]

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        assert inputs[0] is not None and inputs[1] is not None
        y, noise = kernel.spectral_subtraction(self.params(op, graph), inputs[0], inputs[1])
        return [y, noise.copy(), noise]


# ---- SignalPCAN -------------------------------------------------------------------------
#: entries of PCAN's gain LUT that WideDynamicFunction can read (x up to 2^32 - 1)
PCAN_LUT_ENTRIES = 4 * 32 - 6 + 3


@dataclass(frozen=True, eq=False)
class PcanParams:
    snr_shift: int
    lut: np.ndarray


@register
class Pcan(_Signal):
    kinds = ("SignalPCAN",)
    tflm_opdata = {"SignalPCAN": "i"}

    def decode_custom(self, kind: str, ins: list, outs: list,
                      options: dict[str, Any]) -> dict[str, Any]:
        _io(ins, outs, 3, 1)
        x, noise, lut, y = ins[0], ins[1], ins[2], outs[0]
        _typed(x, "uint32", 1, "input")
        _typed(noise, "uint32", 1, "noise estimate")
        _typed(lut, "int16", 1, "gain LUT")
        _typed(y, "uint32", 1, "output")
        d.const(lut, "gain LUT")
        d.need(lut.shape[0] >= PCAN_LUT_ENTRIES,
               f"gain LUT has {lut.shape[0]} entries; PCAN reads up to {PCAN_LUT_ENTRIES}")
        d.need(x.shape == noise.shape == y.shape,
               f"input {x.shape}, noise estimate {noise.shape} and output {y.shape} differ")
        return {"snr_shift": _int(options, "snr_shift", 0, 63)}

    def params(self, op: Op, graph: Graph) -> PcanParams:
        lut = self.tensor(graph, op, 2).data
        assert lut is not None
        return PcanParams(int(op.attrs["snr_shift"]), lut.astype(np.int16))

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        assert inputs[0] is not None and inputs[1] is not None
        return [kernel.pcan(self.params(op, graph), inputs[0], inputs[1])]


# ---- SignalFilterBankLog ----------------------------------------------------------------
#: segments of Log32's correction table (log2(1 + f) - f over f in [0, 1))
LOG_SEGMENTS = 128


def log_lut() -> np.ndarray:
    """The 16-bit correction table of TFLM's ``Log32``: round(65536·(log2(1 + i/128) -
    i/128)) for i = 0..128, plus one zero of padding."""
    f = np.arange(LOG_SEGMENTS + 1, dtype=np.float64) / LOG_SEGMENTS
    table = np.floor((np.log2(1 + f) - f) * 65536 + 0.5).astype(np.int64)
    return np.concatenate([table, [0]]).astype(np.uint16)


@dataclass(frozen=True, eq=False)
class FilterBankLogParams:
    correction_bits: int
    output_scale: int
    lut: np.ndarray


@register
class FilterBankLog(_Signal):
    kinds = ("SignalFilterBankLog",)
    frame = staticmethod(kernel.filter_bank_log)
    tflm_opdata = {"SignalFilterBankLog": "ii"}

    def decode_custom(self, kind: str, ins: list, outs: list,
                      options: dict[str, Any]) -> dict[str, Any]:
        _io(ins, outs, 1, 1)
        x, y = ins[0], outs[0]
        _typed(x, "uint32", 1, "input")
        _typed(y, "int16", 1, "output")
        d.need(y.shape == x.shape, f"output shape {y.shape} should be {x.shape}")
        return {"correction_bits": _int(options, "input_correction_bits", 0, 31),
                "output_scale": _int(options, "output_scale", 0, (1 << 31) - 1)}

    def params(self, op: Op, graph: Graph) -> FilterBankLogParams:
        return FilterBankLogParams(int(op.attrs["correction_bits"]),
                                   int(op.attrs["output_scale"]), log_lut())

