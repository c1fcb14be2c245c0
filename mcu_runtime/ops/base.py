"""The interface every op folder implements: one :class:`OpDef` per op family.

An OpDef is everything tinymcu knows about a TFLite op, in one place: how to decode and
validate its options from a .tflite (``decode``), the numbers its kernel needs computed once
(``params``: multipliers, shifts, clamps, look-up tables, geometry — a frozen dataclass
the numpy kernel *and* the C emitter read, so the emulator and the C runtime cannot
compute different constants), its cost (``macs``), the memory facts the planner needs
(``scratch_bytes``, ``inplace``), how the patch scheduler may tile it (``tiling`` and
``window``), its TFLM arena model (``tflm_*``), the numpy reference kernel (``run``) and the
C emitter (``emit``) with the header it calls into (``header``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.geometry import Pad, Window
from tinymcu.mcu_runtime.ir import Graph, Op, Quant
from tinymcu.mcu_runtime.schedule import Region, Step

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.codegen.emitters import CUnit
    from tinymcu.mcu_runtime.flatbuf import Table

#: how the patch scheduler may tile an op: output pixel (y, x) reads only input pixel
#: (y, x); a sliding window over H and W; or an explicit PAD (a shifted window of one)
TILINGS = ("pointwise", "window", "pad")

Decoder = Callable[[list, list, "Table | None"], dict]
#: one allocation of a kernel's TFLM Prepare: ("temp", tensor index) or ("persist", bytes)
PrepareStep = tuple[Literal["temp", "persist"], int]


class OpDef:
    """Base class of an op family; subclasses set the class attributes and override the
    methods that differ from the defaults (no scratch, not in place, MACs = output size)."""

    #: TFLite builtin names this family handles (or internal names created by passes)
    kinds: ClassVar[tuple[str, ...]] = ()
    #: True for ops only our graph passes create (no .tflite contains them)
    internal: ClassVar[bool] = False
    #: BuiltinOptions union member index per kind whose options ``decode`` reads
    options_type: ClassVar[dict[str, int]] = {}
    #: "pointwise" | "window" | "pad", or None when a patch stage cannot hold the op
    tiling: ClassVar[str | None] = None
    #: why the op cannot be tiled (when ``tiling`` is None)
    untileable: ClassVar[str] = "needs its whole input"
    #: TFLM's OpData layout per kind (``tflm_arena.struct_size`` codes; "" = none)
    tflm_opdata: ClassVar[dict[str, str]] = {}
    #: bytes of the builtin options struct TFLM parses into its tail, per kind
    tflm_options: ClassVar[dict[str, int]] = {}
    #: tail bytes per op the x86-64 wheel spends beyond the options struct (measured with
    #: one-op models, not in any header we model, so not assumed on 32-bit builds)
    tflm_wheel_extra: ClassVar[dict[str, int]] = {}
    #: kinds ``emit`` handles (None: every kind, when ``emit`` is overridden)
    c_kinds: ClassVar[tuple[str, ...] | None] = None
    #: True for ops that only relabel the same bytes (the planner aliases their buffers)
    alias: ClassVar[bool] = False
    #: True for ops whose contract includes non-int8 activations (QUANTIZE/DEQUANTIZE at a
    #: model's float ends, ARG_MAX's int32 indices, CAST): the reader's int8-core check
    #: lets them through
    mixed_types: ClassVar[bool] = False
    #: activation dtypes the op computes on (CONV_2D also runs TFLite's 16x8 scheme)
    activation_dtypes: ClassVar[tuple[str, ...]] = ("int8",)
    #: C header (in the op's folder) whose functions ``emit`` calls; None: tm_common.h only
    header: ClassVar[str | None] = None
    #: True for TFLite custom ops: ``kinds`` are their custom code names and their options
    #: arrive as the decoded FlexBuffer map of ``Operator.custom_options``
    custom: ClassVar[bool] = False

    # -- reading ---------------------------------------------------------------------------

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        """The op's attrs from its tensors and options table; raise ``decode.OpError``."""
        from tinymcu.mcu_runtime.ops.decode import unary
        return unary(ins, outs, opts)

    def decode_custom(self, kind: str, ins: list, outs: list,
                      options: dict[str, Any]) -> dict[str, Any]:
        """A custom op's attrs from its tensors and FlexBuffer options map (``custom`` ops)."""
        from tinymcu.mcu_runtime.ops.decode import OpError
        raise OpError(f"{kind} is not a custom op")

    def kernel_state(self, kind: str, attrs: dict[str, Any], ins: list,
                     outs: list) -> list[tuple[str, tuple[int, ...], str]]:
        """State the TFLM kernel keeps in its own persistent buffer across invocations
        rather than in a variable tensor of the file (SignalFilterBankSpectralSubtraction's
        noise estimate): (name, shape, dtype) of each. The reader gives each a variable
        tensor appended to the op's inputs, so ``state_inputs`` and everything built on
        variables (emulator, planner, C reset) carry it like SVDF's state."""
        return []

    # -- numbers ---------------------------------------------------------------------------

    def params(self, op: Op, graph: Graph) -> Any:
        """Every constant the kernel needs, computed once (a frozen dataclass)."""
        return None

    def macs(self, op: Op, graph: Graph) -> int:
        """Multiply-accumulates for one full execution of ``op``."""
        return graph.tensors[op.outputs[0]].size

    def input_macs(self, op: Op, graph: Graph) -> int:
        """The part of ``macs`` that scales with the input area (a fused op's first part)."""
        return 0

    def scratch_bytes(self, op: Op, graph: Graph, region: Region | None = None) -> int:
        """Temporary SRAM our runtime needs while ``op`` runs; ``region`` is the part of
        activation input 0 a patch step reads (None: the whole tensor)."""
        return 0

    def inplace(self, op: Op, graph: Graph) -> bool:
        """True if output 0 may occupy the memory of the activation input
        ``inplace_source`` (input 0 unless the op says otherwise)."""
        return False

    def inplace_source(self, op: Op) -> int:
        """Position in ``op.inputs`` of the activation ``inplace`` refers to (SPLIT's tensor
        is its input 1; its input 0 is the axis)."""
        return 0

    def window(self, op: Op, graph: Graph) -> Window | None:
        """The op's window for patch tiling; None for a pointwise op."""
        return None

    def state_inputs(self, op: Op) -> tuple[int, ...]:
        """Positions in ``op.inputs`` of the state (variable) tensors the op updates in
        place (SVDF's activation state, LSTM's hidden and cell state); ``run`` returns
        their new values after its outputs, in this order."""
        return ()

    def own_dtypes(self, op: Op, graph: Graph) -> frozenset[int]:
        """Tensors whose non-int8 type this op's ``decode`` has checked itself (an int16
        state, SOFTMAX's int16 output), which the reader's int8-core check lets pass."""
        return frozenset(op.inputs[k] for k in self.state_inputs(op))

    # -- TFLM ------------------------------------------------------------------------------

    def tflm_per_channel(self, op: Op, graph: Graph) -> bool:
        """True if TFLM's Prepare allocates per-channel multiplier and shift arrays."""
        return False

    def tflm_scratch(self, op: Op, graph: Graph) -> list[int]:
        """Bytes of each scratch buffer TFLM's reference kernel requests in the head."""
        return []

    def tflm_persistent(self, op: Op, graph: Graph, pointer_bytes: int) -> list[int]:
        """Bytes of each persistent buffer TFLM's kernel allocates in the tail besides its
        OpData and per-channel arrays (e.g. BATCH_MATMUL's transposed operand copies)."""
        return []

    def tflm_prepare(self, op: Op, graph: Graph, pointer_bytes: int) -> list[PrepareStep]:
        """What the kernel's Prepare allocates, in order: ``("temp", tensor)`` for a
        temporary ``TfLiteTensor`` it holds until Prepare returns, ``("persist", bytes)`` for
        a tail buffer. TFLM's ``DeallocateTempTfLiteTensor`` only counts, so every
        temporary a Prepare takes stays until it returns, and the order matters: a tail
        buffer taken between temporaries shrinks the room of the later ones. Most kernels
        take one temporary per input and output, then their persistent buffers and
        per-channel arrays; kernels that take more say so."""
        steps: list[PrepareStep] = [("temp", t) for t in (*op.inputs, *op.outputs) if t >= 0]
        steps += [("persist", n) for n in self.tflm_persistent(op, graph, pointer_bytes)]
        if self.tflm_per_channel(op, graph):
            steps += [("persist", 4 * graph.tensors[op.outputs[0]].shape[-1])] * 2
        return steps

    def tflm_cmsis_nn_scratch(self, op: Op, graph: Graph) -> list[int]:
        """Bytes of each scratch buffer TFLM's CMSIS-NN kernel requests (Cortex-M with the
        DSP extension, GCC build); ops without a CMSIS-NN kernel run the reference one."""
        return self.tflm_scratch(op, graph)

    # -- execution -------------------------------------------------------------------------

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        """Compute the outputs, bit-exact with TFLM's reference kernels.

        ``inputs`` follow ``op.inputs``: activations as arrays (possibly a tile), constants
        as their data, None for an absent optional input. ``pad`` (top, bottom, left,
        right) replaces the op's own padding when running on a tile. A stateful op returns
        one array per output, then the new value of each of its ``state_inputs``.
        """
        raise NotImplementedError

    def emit(self, unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
        """C statements running schedule step ``i`` (op ``op``) on the planned arena."""
        raise TinymcuError(f"op {op.index} {op.kind} is not supported by the C runtime")


def quant_of(graph: Graph, t: int) -> Quant:
    """The quantization of tensor ``t`` (TinymcuError if it has none)."""
    q = graph.tensors[t].quant
    if q is None:
        raise TinymcuError(f"tensor {t} has no quantization")
    return q


def qparams(graph: Graph, t: int) -> tuple[float, int]:
    """(float32 scale as a double, zero point) of a per-tensor quantized tensor."""
    q = quant_of(graph, t)
    return float(np.float32(q.scale.ravel()[0])), int(q.zero_point.ravel()[0])
