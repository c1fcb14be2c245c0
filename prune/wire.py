"""How models, masks and sparse updates are laid out in Flower records.

Sparse layers travel *packed*: only the values at active positions, in row-major order. Every
client shares the server's mask, so the example-weighted mean of packed vectors (what FedAvg
computes) is exactly the packed form of the dense mean; the server unpacks after aggregation.
Masks travel as bits (np.packbits). BatchNorm's ``num_batches_tracked`` counter never travels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from tinymcu.prune import masks as M

State = dict[str, torch.Tensor]


def exchanged(state: State) -> list[str]:
    return [k for k in state if not k.endswith("num_batches_tracked")]


def state_to_record(state: State, masks: M.Masks | None = None) -> ArrayRecord:
    arrays = {}
    for k in exchanged(state):
        t = state[k].detach().cpu()
        if masks and k in masks:
            t = M.pack(t, masks[k])
        arrays[k] = Array(np.ascontiguousarray(t.numpy()))
    return ArrayRecord(array_dict=arrays)


def record_to_state(record: ArrayRecord, template: State, masks: M.Masks | None = None) -> State:
    """Dense state from a (possibly packed) record; keys missing from it keep the template's."""
    out = dict(template)
    for k in exchanged(template):
        t = torch.from_numpy(np.array(record[k].numpy(), copy=True))
        if masks and k in masks:
            t = M.unpack(t.to(template[k].dtype), masks[k])
        out[k] = t.to(template[k].dtype).view(template[k].shape)
    return out


def expected_shapes(template: State, masks: M.Masks | None) -> dict[str, tuple[int, ...]]:
    """Shape each array of a valid update must have (packed length for masked weights)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for k in exchanged(template):
        if masks and k in masks:
            shapes[k] = (int(masks[k].sum()),)
        else:
            shapes[k] = tuple(template[k].shape)
    return shapes


def masks_to_record(masks: M.Masks) -> ArrayRecord:
    bits = {k: Array(np.packbits(m.flatten().numpy().astype(np.uint8))) for k, m in masks.items()}
    return ArrayRecord(array_dict=bits)


def masks_from_record(record: ArrayRecord, template: State) -> M.Masks:
    out = {}
    for k in record:
        shape = tuple(template[k].shape)
        bits = np.unpackbits(record[k].numpy())[: math.prod(shape)].astype(bool)
        out[k] = torch.from_numpy(bits.reshape(shape))
    return out


def content_bytes(content: RecordDict) -> int:
    """Bytes of every record in a message (arrays dominate; keys and scalars included)."""
    total = 0
    for rec in list(content.array_records.values()) + list(content.metric_records.values()) + list(
        content.config_records.values()
    ):
        total += rec.count_bytes()
    return total


# ---- typed reads of record values ------------------------------------------------------------
# A record value may be a scalar, text or a list; each helper below checks that it is the kind
# the protocol sends, so a malformed message fails on a clear ValueError (a bad reply) instead
# of a TypeError deep in the arithmetic.

def number(record: MetricRecord | ConfigRecord, key: str,
           default: int | float | None = None) -> int | float:
    """Scalar ``key`` of ``record``; ``default`` when it is absent (KeyError without one)."""
    if key not in record:
        if default is None:
            raise KeyError(key)
        return default
    value = record[key]
    if not isinstance(value, (int, float)):
        raise ValueError(f"record value {key!r} is a {type(value).__name__}, not a number")
    return value


def numbers(record: ConfigRecord, key: str) -> list[int | float]:
    """List of numbers ``key`` of ``record`` (empty when absent)."""
    value = record.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"record value {key!r} is a {type(value).__name__}, not a list")
    out: list[int | float] = []
    for v in value:
        if not isinstance(v, (int, float)):
            raise ValueError(f"record value {key!r} holds a {type(v).__name__}, not a number")
        out.append(v)
    return out


def strings(record: ConfigRecord, key: str) -> list[str]:
    """List of strings ``key`` of ``record`` (empty when absent)."""
    value = record.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"record value {key!r} is a {type(value).__name__}, not a list")
    out: list[str] = []
    for v in value:
        if not isinstance(v, str):
            raise ValueError(f"record value {key!r} holds a {type(v).__name__}, not a str")
        out.append(v)
    return out
