"""Mutated models of the new ops: every one either loads, plans, emulates and generates C,
or is refused with one TinymcuError line — never a traceback."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from test_ops_batch_matmul import CASES as BMM
from test_ops_batch_matmul import bmm_model
from test_ops_data_movement import ONE_OP, SPLITS, one_op, split_concat
from test_ops_transpose_conv import CASES as TCONV
from test_ops_transpose_conv import tconv_model
from tflite_build import Tensor

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.codegen import render
from tinymcu.mcu_runtime.emulator import emulate
from tinymcu.mcu_runtime.planner import plan
from tinymcu.mcu_runtime.schedule import layer_schedule
from tinymcu.mcu_runtime.tflite_reader import load_tflite


def _mutate_consts(spec: dict, rng: np.random.Generator) -> dict:
    spec = copy.deepcopy(spec)
    consts = []
    for t in spec["consts"]:
        data = np.asarray(t.data)
        if rng.random() < 0.7:
            data = rng.integers(-9, 10, data.shape).astype(data.dtype)
        consts.append(Tensor(t.shape, t.dtype, data=data))
    spec["consts"] = consts
    if rng.random() < 0.5:
        out = list(spec["out"])
        if out:
            out[int(rng.integers(len(out)))] = int(rng.integers(1, 9))
        spec["out"] = tuple(out)
    opts = dict(spec.get("options", {}))
    for key in [k for k in opts if k != "table"]:
        if rng.random() < 0.5:
            opts[key] = int(rng.integers(-3, 6))
    if opts:
        spec["options"] = opts
    return spec


def _exercise(path: Path) -> str:
    """'refused' or 'ran'; anything but TinymcuError propagates (the test fails)."""
    try:
        g = load_tflite(path)
    except TinymcuError as e:
        assert "\n" not in str(e)
        return "refused"
    p = plan(g, layer_schedule(g))
    x = [np.zeros(g.tensors[t].shape, g.tensors[t].dtype) for t in g.inputs]
    emulate(g, p, x)
    try:
        render(g, p)
    except TinymcuError:
        pass
    return "ran"


@pytest.mark.parametrize("case", sorted(ONE_OP))
def test_mutated_data_movement_ops_fail_cleanly(case: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(sorted(ONE_OP).index(case))
    seen = set()
    for k in range(40):
        spec = _mutate_consts(ONE_OP[case], rng)
        path = one_op(tmp_path / f"m{k}.tflite", spec.pop("kind"), spec.pop("x"),
                      spec.pop("consts"), spec.pop("out"), **spec)
        seen.add(_exercise(path))
    assert "refused" in seen


def test_mutated_splits_tconvs_and_matmuls_fail_cleanly(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    outcomes = []
    for k in range(30):
        spec = dict(SPLITS[sorted(SPLITS)[k % len(SPLITS)]])
        spec["axis"] = int(rng.integers(-2, 5)) if rng.random() < 0.5 else spec["axis"]
        try:
            path = split_concat(tmp_path / f"s{k}.tflite", **spec)
        except (IndexError, ValueError):
            continue  # the builder itself cannot make that shape
        outcomes.append(_exercise(path))
        t = dict(TCONV[sorted(TCONV)[k % len(TCONV)]])
        t["stride"] = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        if rng.random() < 0.5:
            t["out_hw"] = (int(rng.integers(1, 12)), int(rng.integers(1, 12)))
        outcomes.append(_exercise(tconv_model(tmp_path / f"t{k}.tflite", k, **t)))
        b = dict(BMM[sorted(BMM)[k % len(BMM)]])
        b["adj_x"], b["adj_y"] = bool(rng.integers(2)), bool(rng.integers(2))
        outcomes.append(_exercise(bmm_model(tmp_path / f"b{k}.tflite", k, **b)))
    assert {"refused", "ran"} <= set(outcomes)
