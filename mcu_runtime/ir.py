"""The typed graph IR every stage of tinymcu works on.

A :class:`Graph` is what the .tflite reader produces and what the planner, the patch
scheduler, the emulator and (later) the C code generator consume. It is deliberately
small: tensors with shape/dtype/quantization/constant data, ops in execution order with
plain-Python attributes, and the subgraph inputs/outputs. Layout is TFLite's: activations
are NHWC, conv filters OHWI, depthwise filters 1HW(C*M), fully-connected weights (O, I).
Nothing here imports TensorFlow or torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: bytes per element for the dtypes a .tflite may carry
DTYPE_SIZE: dict[str, int] = {
    "int8": 1, "uint8": 1, "bool": 1, "int16": 2, "float16": 2,
    "int32": 4, "uint32": 4, "float32": 4, "int64": 8, "uint64": 8, "float64": 8,
}


@dataclass(frozen=True)
class Quant:
    """Affine quantization ``real = scale * (q - zero_point)``.

    ``scale``/``zero_point`` have one entry for per-tensor quantization and one per
    channel of dimension ``axis`` for per-channel (TFLite: symmetric int8 weights).
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Quant) and self.axis == other.axis
                and np.array_equal(self.scale, other.scale)
                and np.array_equal(self.zero_point, other.zero_point))

    def __hash__(self) -> int:
        return hash((self.axis, self.scale.tobytes(), self.zero_point.tobytes()))


@dataclass
class Tensor:
    """One tensor of the graph. ``data`` is set for constants (weights, biases, shapes).

    ``is_variable`` marks a state tensor (TFLite ``is_variable``: SVDF's activation state,
    LSTM's hidden and cell state): no op writes it as an output; the op that reads it
    updates it in place, and its value survives from one invocation to the next. It starts
    (and is reset to) :attr:`reset_value` bytes, as TFLM's ``ResetVariableTensors`` does.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: Quant | None = None
    data: np.ndarray | None = None
    is_variable: bool = False
    #: a variable the reader added for state a custom kernel keeps internally
    #: (``OpDef.kernel_state``): no tensor of the file, so TFLM's arena holds it in the op's
    #: persistent buffer, not as a tensor
    kernel_state: bool = False

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * DTYPE_SIZE[self.dtype]

    @property
    def reset_value(self) -> int:
        """The value every element of a state tensor starts at: an int8 tensor's zero point
        (TFLM memsets int8 variables to it), 0 for any other type."""
        if self.dtype == "int8" and self.quant is not None:
            return int(self.quant.zero_point.ravel()[0])
        return 0

    def reset_array(self) -> np.ndarray:
        """A state tensor's value after a reset."""
        return np.full(self.shape, self.reset_value, dtype=self.dtype)


@dataclass
class Op:
    """One operator. ``inputs`` may hold -1 for an absent optional input (e.g. no bias).

    ``attrs`` uses these keys where they apply: ``stride`` (h, w), ``dilation`` (h, w),
    ``padding`` ("SAME"|"VALID", or "EXPLICIT" with ``pads`` (top, bottom, left, right) after
    ``passes.fold_pads`` merged a PAD into the op),
    ``activation`` ("NONE"|"RELU"|"RELU6"|"RELU_N1_TO_1"), ``depth_multiplier``,
    ``filter`` (h, w) for pools, ``axis``, ``keep_dims``, ``beta``, ``new_shape``, ``perm``,
    ``paddings`` (PAD), ``squeeze_dims``, ``keep_num_dims``.
    """

    index: int
    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    """A single-subgraph model: tensors, ops in execution order, graph inputs/outputs."""

    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    name: str = "model"

    def producer(self, tensor: int) -> Op | None:
        """The op that writes ``tensor``, or None for graph inputs and constants."""
        for op in self.ops:
            if tensor in op.outputs:
                return op
        return None

    def consumers(self, tensor: int) -> list[Op]:
        """Ops that read ``tensor``, in execution order."""
        return [op for op in self.ops if tensor in op.inputs]

    def activations(self) -> list[Tensor]:
        """Non-constant tensors that live in SRAM (graph inputs/outputs and intermediates)."""
        used = {t for op in self.ops for t in (*op.inputs, *op.outputs) if t >= 0}
        used.update(self.inputs)
        used.update(self.outputs)
        return [t for t in self.tensors if t.index in used and not t.is_const]

    def variables(self) -> list[int]:
        """State tensors (``is_variable``) that some op reads, in index order."""
        used = {t for op in self.ops for t in op.inputs if t >= 0}
        return [t.index for t in self.tensors if t.is_variable and t.index in used]

    def weight_bytes(self) -> int:
        """Bytes of constant data (what goes to flash, dense storage)."""
        return sum(t.nbytes for t in self.tensors if t.is_const)
