"""Shared checks for the op folders' TFLite decoders (``OpDef.decode``).

Each decoder turns an operator's tensors and options table into plain-Python attrs and
checks every shape the op implies, so a returned ``Graph`` is safe for the planner and the
kernels. A failed check raises :class:`OpError`; the reader wraps it with the op index.
"""

from __future__ import annotations

import numpy as np

from tinymcu.mcu_runtime.flatbuf import Table
from tinymcu.mcu_runtime.geometry import out_size
from tinymcu.mcu_runtime.ir import Tensor

ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
PADDINGS = {0: "SAME", 1: "VALID"}


class OpError(Exception):
    """An op's inputs, outputs or options do not fit together (wrapped with the op index)."""


def need(cond: bool, msg: str) -> None:
    if not cond:
        raise OpError(msg)


def arity(ins: list[Tensor | None], outs: list[Tensor], lo: int, hi: int,
           required: int = 1) -> None:
    need(lo <= len(ins) <= hi, f"has {len(ins)} inputs, expected {lo}..{hi}")
    need(len(outs) == 1, f"has {len(outs)} outputs, expected 1")
    need(all(t is not None for t in ins[:required]), "a required input is missing (-1)")


def rank(t: Tensor, rank: int, what: str) -> None:
    need(len(t.shape) == rank, f"{what} has shape {t.shape}, expected rank {rank}")


def const(t: Tensor | None, what: str) -> np.ndarray:
    if t is None or t.data is None:
        raise OpError(f"{what} must be a constant tensor")
    return t.data


def activation(opts: Table | None, slot: int) -> str:
    act = ACTIVATIONS.get(int(opts.scalar(slot, "int8")) if opts else 0, "unknown")
    need(act in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"),
         f"fused activation {act} is not supported")
    return act


def padding(opts: Table | None, slot: int) -> str:
    pad = PADDINGS.get(int(opts.scalar(slot, "int8")) if opts else 0)
    if pad is None:
        raise OpError("padding is neither SAME nor VALID")
    return pad


def positive(opts: Table | None, slot: int, what: str, default: int = 0) -> int:
    v = int(opts.scalar(slot, "int32", default)) if opts else default
    need(1 <= v <= 1 << 16, f"{what} is {v}, expected a positive value")
    return v


def window(x: Tensor, out: Tensor, k: tuple[int, int], stride: tuple[int, int],
            dilation: tuple[int, int], padding: str, channels: int) -> None:
    n, h, w, _ = x.shape
    oh = out_size(h, k[0], stride[0], dilation[0], padding)
    ow = out_size(w, k[1], stride[1], dilation[1], padding)
    need(oh >= 1 and ow >= 1, f"a {k} window does not fit the {h}x{w} input")
    need(out.shape == (n, oh, ow, channels),
          f"output shape {out.shape} should be {(n, oh, ow, channels)}")


def bias(b: Tensor | None, channels: int) -> None:
    if b is not None:
        const(b, "bias")
        need(b.shape == (channels,), f"bias shape {b.shape} should be ({channels},)")


def filtered_window(ins: list, outs: list, opts: Table | None, dilation_field: int
                     ) -> tuple[Tensor, Tensor, Tensor, dict]:
    """What CONV_2D and DEPTHWISE_CONV_2D share: 4-D input/filter/output, a constant filter,
    stride (option fields 2, 1), dilation (``dilation_field`` for h, the one before it for w)
    and padding (field 0)."""
    arity(ins, outs, 2, 3, required=2)
    x, w, out = ins[0], ins[1], outs[0]
    for t, what in ((x, "input"), (w, "filter"), (out, "output")):
        rank(t, 4, what)
    const(w, "filter")
    attrs = {"stride": (positive(opts, 2, "stride_h"), positive(opts, 1, "stride_w")),
             "dilation": (positive(opts, dilation_field, "dilation_h", 1),
                          positive(opts, dilation_field - 1, "dilation_w", 1)),
             "padding": padding(opts, 0)}
    return x, w, out, attrs


def axes(values: np.ndarray, rank: int, what: str) -> tuple[int, ...]:
    axes = [int(a) for a in np.asarray(values).ravel()]
    need(all(-rank <= a < rank for a in axes), f"{what} {axes} out of range for rank {rank}")
    return tuple(sorted({a % rank for a in axes}))


def unary(ins: list, outs: list, opts: Table | None) -> dict:
    arity(ins, outs, 1, 1)
    need(outs[0].shape == ins[0].shape,
          f"output shape {outs[0].shape} should equal input shape {ins[0].shape}")
    return {}


