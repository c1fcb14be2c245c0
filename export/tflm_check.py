"""Does TFLM take the exported model, and does it compute exactly what the reference does?

TFLM is the runtime the C arrays are for, so it is the final word: it must load the model,
its int8 outputs must equal TFLite's reference kernels (BUILTIN_REF) bit for bit on the data,
and the arena size written into the C header is the smallest arena with which TFLM actually
loads and invokes the model (found by bisection in child processes — the recorded total is
not always enough, and a too-small arena can crash TFLM, so every probe is its own process).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import oracle


@dataclass
class TflmResult:
    samples: int
    bit_exact: bool
    mismatched_samples: int
    max_abs_diff: int
    min_arena_bytes: int
    recorded_total: int
    recorded_head: int
    recorded_tail: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reference_outputs(model_path: Path, inputs: list[np.ndarray]) -> np.ndarray:
    """BUILTIN_REF int8 outputs for each batch-1 input, stacked on axis 0."""
    try:
        outs = oracle.ref_invoke_batch(model_path, [[x] for x in inputs])
    except oracle.OracleError as e:
        raise TinymcuError(f"TFLite reference interpreter failed: {e}") from None
    return np.concatenate([o[0] for o in outs])


def tflm_check(model_path: Path, inputs: list[np.ndarray], ref_out: np.ndarray) -> TflmResult:
    """Run TFLM on ``inputs``, compare with ``ref_out`` and measure the smallest arena."""
    try:
        outs = oracle.tflm_invoke_batch(model_path, [[x] for x in inputs])
        alloc = oracle.tflm_allocations(model_path)
        min_arena = oracle.tflm_min_arena(model_path)
    except oracle.OracleError as e:
        raise TinymcuError(f"TFLM cannot run the exported model: {e}") from None
    got = np.concatenate([o[0] for o in outs])
    ref = ref_out[:len(got)]
    diff = np.abs(got.astype(np.int32) - ref.astype(np.int32))
    per_sample = diff.reshape(len(got), -1).max(axis=1)
    return TflmResult(len(got), bool(np.all(diff == 0)), int(np.sum(per_sample > 0)),
                      int(diff.max()), min_arena, alloc["total"], alloc["head"], alloc["tail"])
