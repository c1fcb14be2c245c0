"""Data-movement ops (one strided-copy mechanism): emulator == TFLM on 200 seeded inputs,
generated C == emulator, TFLM arena model == TFLM's report; in place where it is safe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from op_check import check_model
from tflite_build import Node, Tensor, write

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import ops
from tinymcu.mcu_runtime.ops.copy import plan
from tinymcu.mcu_runtime.planner import plan as make_plan
from tinymcu.mcu_runtime.schedule import layer_schedule
from tinymcu.mcu_runtime.tflite_reader import load_tflite

Q = (0.05, 3)


def i32(*v: int) -> Tensor:
    return Tensor((len(v),), "int32", data=np.array(v, np.int32))


def one_op(path: Path, kind: str, x: tuple[int, ...], consts: list[Tensor],
           out: tuple[int, ...], options: dict | None = None, before: bool = False,
           q_out: tuple[float, int] = Q) -> Path:
    """x → kind(x, *consts) → out; ``before``: the constants come first (SPLIT's axis)."""
    tensors = [Tensor(x, quant=Q), *consts, Tensor(out, quant=q_out)]
    const_ids = list(range(1, 1 + len(consts)))
    ins = [*const_ids, 0] if before else [0, *const_ids]
    return write(path, tensors, [Node(kind, ins, [len(tensors) - 1], options or {})], [0],
                 [len(tensors) - 1])


def split_concat(path: Path, kind: str, x: tuple[int, ...], axis: int, sizes: list[int],
                 order: list[int], spec: list[int] | None = None) -> Path:
    """x → SPLIT/SPLIT_V along ``axis`` → CONCATENATION of the parts in ``order``."""
    parts = [x[:axis] + (n,) + x[axis + 1:] for n in sizes]
    tensors = [Tensor(x, quant=Q), i32(axis)]
    if kind == "SPLIT_V":
        tensors.append(i32(*(spec or sizes)))
    first = len(tensors)
    tensors += [Tensor(s, quant=Q) for s in parts]
    out = x[:axis] + (sum(sizes),) + x[axis + 1:]
    tensors.append(Tensor(out, quant=Q))
    outs = list(range(first, first + len(parts)))
    if kind == "SPLIT":
        node = Node("SPLIT", [1, 0], outs, {"table": "SplitOptions", "numSplits": len(sizes)})
    else:
        node = Node("SPLIT_V", [0, 2, 1], outs, {"table": "SplitVOptions",
                                                  "numSplits": len(sizes)})
    cat = Node("CONCATENATION", [outs[k] for k in order], [len(tensors) - 1],
               {"table": "ConcatenationOptions", "axis": axis})
    return write(path, tensors, [node, cat], [0], [len(tensors) - 1])


def unpack_pack(path: Path, x: tuple[int, ...], axis: int, order: list[int], pack_axis: int
                ) -> Path:
    n = x[axis]
    part = x[:axis] + x[axis + 1:]
    out = part[:pack_axis] + (n,) + part[pack_axis:]
    tensors = [Tensor(x, quant=Q), *(Tensor(part, quant=Q) for _ in range(n)),
               Tensor(out, quant=Q)]
    parts = list(range(1, n + 1))
    ops = [Node("UNPACK", [0], parts, {"table": "UnpackOptions", "num": n, "axis": axis}),
           Node("PACK", [parts[k] for k in order], [n + 1],
                {"table": "PackOptions", "valuesCount": n, "axis": pack_axis})]
    return write(path, tensors, ops, [0], [n + 1])


def ss(x: tuple[int, ...], out: tuple[int, ...], begin: list[int], end: list[int],
       strides: list[int], **masks: int) -> dict:
    return dict(kind="STRIDED_SLICE", x=x, out=out,
                consts=[i32(*begin), i32(*end), i32(*strides)],
                options={"table": "StridedSliceOptions", **masks})


def blocks(kind: str, x: tuple[int, ...], out: tuple[int, ...], block: list[int],
           edges: list[int], q_out: tuple[float, int] = Q) -> dict:
    e = Tensor((len(block), 2), "int32", data=np.array(edges, np.int32).reshape(-1, 2))
    return dict(kind=kind, x=x, out=out, consts=[i32(*block), e], q_out=q_out)


ONE_OP = {
    "slice": dict(kind="SLICE", x=(1, 6, 7, 5), out=(1, 4, 5, 3),
                  consts=[i32(0, 1, 2, 1), i32(1, 4, -1, 3)]),
    "slice_rank2": dict(kind="SLICE", x=(6, 9), out=(3, 4), consts=[i32(2, 5), i32(3, 4)]),
    "strided_slice_masks": ss((1, 7, 8, 6), (1, 3, 4, 6), [0, 1, 0, 5], [1, 6, 8, 0],
                              [1, 2, 2, 1], beginMask=0b1100, endMask=0b1000),
    "strided_slice_negative": ss((1, 7, 8, 4), (1, 4, 3, 2), [0, -1, 6, 3], [1, 0, 0, 0],
                                 [1, -2, -2, -2], endMask=0b0010),
    "strided_slice_shrink": ss((1, 5, 6, 4), (5, 2), [0, 0, 2, 1], [1, 5, 3, 4],
                               [1, 1, 1, 2], shrinkAxisMask=0b0101),
    "strided_slice_rank2": ss((6, 10), (3, 3), [1, -9], [6, 8], [2, 3]),
    "gather": dict(kind="GATHER", x=(1, 5, 6), out=(1, 5, 6),
                   consts=[i32(4, 0, 1, 2, 2)], options={"table": "GatherOptions",
                                                        "axis": 1}),
    "gather_axis2_2d_indices": dict(
        kind="GATHER", x=(1, 3, 5), out=(1, 3, 2, 2),
        consts=[Tensor((2, 2), "int32", data=np.array([[4, 3], [0, 0]], np.int32))],
        options={"table": "GatherOptions", "axis": -1}),
    "depth_to_space": dict(kind="DEPTH_TO_SPACE", x=(1, 3, 4, 8), out=(1, 6, 8, 2),
                           consts=[], options={"table": "DepthToSpaceOptions",
                                               "blockSize": 2}),
    "space_to_depth": dict(kind="SPACE_TO_DEPTH", x=(1, 4, 6, 3), out=(1, 2, 3, 12),
                           consts=[], options={"table": "SpaceToDepthOptions",
                                               "blockSize": 2}),
    "batch_to_space": blocks("BATCH_TO_SPACE_ND", (4, 3, 3, 2), (1, 5, 5, 2), [2, 2],
                             [1, 0, 0, 1]),
    "batch_to_space_3d": blocks("BATCH_TO_SPACE_ND", (2, 4, 3), (1, 6, 3), [2], [1, 1]),
}

#: SPACE_TO_BATCH_ND: (case spec, where its output is copied input rather than padding)
SPACE_TO_BATCH = {
    "space_to_batch": blocks("SPACE_TO_BATCH_ND", (1, 5, 5, 2), (4, 3, 3, 2), [2, 2],
                             [1, 0, 0, 1]),
    "space_to_batch_3d": blocks("SPACE_TO_BATCH_ND", (1, 5, 3), (3, 2, 3), [3], [0, 1],
                                ),
}


@pytest.mark.parametrize("case", sorted(ONE_OP))
def test_data_movement_op_bit_exact_with_tflm(case: str, tmp_path: Path) -> None:
    spec = dict(ONE_OP[case])
    path = one_op(tmp_path / f"{case}.tflite", spec.pop("kind"), spec.pop("x"),
                  spec.pop("consts"), spec.pop("out"), **spec)
    check_model(path, tmp_path)


@pytest.mark.parametrize("case", sorted(SPACE_TO_BATCH))
def test_space_to_batch_bit_exact_with_builtin_ref_and_tflm(case: str, tmp_path: Path
                                                            ) -> None:
    """Padded with the zero point as BUILTIN_REF does; equal to TFLM on every copied
    element (TFLM pads with an OpData field it never initializes)."""
    spec = dict(SPACE_TO_BATCH[case])
    path = one_op(tmp_path / f"{case}.tflite", spec.pop("kind"), spec.pop("x"),
                  spec.pop("consts"), spec.pop("out"), **spec)
    g = load_tflite(path)
    probe = np.full(g.tensors[0].shape, 5, np.int8)
    copied = ops.get(g.ops[0].kind).run(g.ops[0], g, [probe, None, None])[0] == 5
    assert 0 < copied.sum() < copied.size
    check_model(path, tmp_path, reference="both", arena=True, mask=copied)


SPLITS = {
    "split_channels": dict(kind="SPLIT", x=(1, 4, 5, 6), axis=3, sizes=[2, 2, 2],
                           order=[2, 0, 1]),
    "split_rows": dict(kind="SPLIT", x=(1, 6, 5, 3), axis=1, sizes=[3, 3], order=[1, 0]),
    "split_v": dict(kind="SPLIT_V", x=(1, 7, 4, 3), axis=1, sizes=[2, 4, 1], order=[2, 0, 1],
                    spec=[2, -1, 1]),
}


@pytest.mark.parametrize("case", sorted(SPLITS))
def test_split_bit_exact_with_tflm(case: str, tmp_path: Path) -> None:
    path = split_concat(tmp_path / f"{case}.tflite", **SPLITS[case])
    check_model(path, tmp_path)


def test_unpack_pack_bit_exact_with_tflm(tmp_path: Path) -> None:
    path = unpack_pack(tmp_path / "unpack_pack.tflite", (1, 3, 4, 2), 1, [2, 0, 1], 2)
    check_model(path, tmp_path)


def test_tile_bit_exact_with_builtin_ref(tmp_path: Path) -> None:
    """TFLM has no TILE kernel: BUILTIN_REF is the oracle."""
    path = one_op(tmp_path / "tile.tflite", "TILE", (1, 2, 3, 2),
                  [i32(2, 1, 3, 1)], (2, 2, 9, 2))
    check_model(path, tmp_path, reference="ref")


def test_slices_and_splits_run_in_place_and_alias(tmp_path: Path) -> None:
    """A slice (reading ahead of its writes) shares its input's memory; a split along rows
    gives its first part the input's bytes with no copy at all."""
    spec = dict(ONE_OP["slice"])
    path = one_op(tmp_path / "s.tflite", spec.pop("kind"), spec.pop("x"), spec.pop("consts"),
                  spec.pop("out"))
    g = load_tflite(path)
    assert plan.safe_in_place(ops.get("SLICE").params(g.ops[0], g))
    p = make_plan(g, layer_schedule(g))
    assert p.offsets["t0"] == p.offsets[f"t{g.ops[0].outputs[0]}"]
    path = split_concat(tmp_path / "r.tflite", **SPLITS["split_rows"])
    g = load_tflite(path)
    p = make_plan(g, layer_schedule(g))
    split = g.ops[0]
    assert p.offsets[f"t{split.inputs[1]}"] == p.offsets[f"t{split.outputs[0]}"]
    check_model(path, tmp_path, n=20, arena=False)
    assert "in place: these bytes are already where they belong" in (
        tmp_path / "c_r" / "model.c").read_text()


def test_an_overlapping_walk_is_not_in_place() -> None:
    """Writing ahead of the reads (a reversed copy onto itself) is refused."""
    c = plan.Copy(0, 0, (8,), 7, (-1,), 0, (1,))
    assert not plan.safe_in_place(plan.CopyParams((c,)))
    assert plan.safe_in_place(plan.CopyParams((plan.Copy(0, 0, (4,), 4, (1,), 0, (1,)),)))


@pytest.mark.parametrize("spec,match", [
    (ss((1, 4, 4, 2), (1, 4, 4, 2), [0, 0, 0, 0], [1, 4, 4, 2], [1, 1, 1, 1],
        ellipsisMask=1), "ellipsis_mask"),
    (ss((1, 4, 4, 2), (1, 4, 2), [0, 2, 0, 0], [1, 3, 4, 2], [1, -1, 1, 1],
        shrinkAxisMask=2), "negative stride"),
    (dict(kind="SLICE", x=(1, 4, 4, 2), out=(1, 2, 2, 2), consts=[i32(0, 3, 0, 0),
                                                                   i32(1, 2, 2, 2)]),
     "does not fit"),
    (dict(kind="GATHER", x=(1, 5), out=(1, 2), consts=[i32(1, 5)],
          options={"table": "GatherOptions", "axis": 1}), "out of range"),
])
def test_bad_data_movement_ops_are_one_line_errors(spec: dict, match: str,
                                                   tmp_path: Path) -> None:
    spec = dict(spec)
    path = one_op(tmp_path / "bad.tflite", spec.pop("kind"), spec.pop("x"), spec.pop("consts"),
                  spec.pop("out"), **spec)
    with pytest.raises(TinymcuError, match=match):
        load_tflite(path)


def _random_strided_slice(rng: np.random.Generator) -> dict:
    """A random STRIDED_SLICE on a rank-1..4 tensor: any begin/end (negative and out of
    range too), strides ±1..3, random begin/end/shrink masks; the output shape computed
    with TFLM's rules."""
    from tinymcu.mcu_runtime.ops.copy import strided_slice_axes

    while True:
        rank = int(rng.integers(1, 5))
        shape = tuple(int(v) for v in rng.integers(1, 7, rank))
        begin = [int(v) for v in rng.integers(-8, 9, rank)]
        end = [int(v) for v in rng.integers(-8, 9, rank)]
        strides = [int(v) * int(rng.choice([-1, 1])) for v in rng.integers(1, 4, rank)]
        masks = [int(v) for v in rng.integers(0, 1 << rank, 3)]
        masks[2] &= int(rng.integers(0, 1 << rank))  # shrink fewer axes
        for k in range(rank):  # a shrunk axis needs an index inside the axis
            if masks[2] >> k & 1:
                begin[k] = int(rng.integers(-shape[k], shape[k]))
                strides[k] = abs(strides[k])  # negative: TFLM leaves the output unwritten
                masks[0] &= ~(1 << k)
        axes = strided_slice_axes(shape, begin, end, strides, masks[0], masks[1], masks[2])
        out = tuple(len(range(a, b, s)) for a, b, s, shrink in axes if not shrink)
        if all(n > 0 for n in out):
            return ss(shape, out, begin, end, strides, beginMask=masks[0], endMask=masks[1],
                      shrinkAxisMask=masks[2])


@pytest.mark.slow
def test_random_strided_slices_bit_exact_with_tflm(tmp_path: Path) -> None:
    """40 random geometries (masks, negative indices and strides, clamping) x 20 inputs."""
    rng = np.random.default_rng(11)
    for k in range(40):
        spec = _random_strided_slice(rng)
        if not spec["out"]:
            continue  # everything shrunk: a scalar output the C harness cannot size
        path = one_op(tmp_path / f"ss{k}.tflite", spec.pop("kind"), spec.pop("x"),
                      spec.pop("consts"), spec.pop("out"), **spec)
        check_model(path, tmp_path, n=20, seed=k, arena=False)


def embedding_model(path: Path, vocab: int, dim: int, ids: tuple[int, ...],
                    index_type: str = "int32") -> Path:
    """Token ids (graph input) → GATHER rows of a constant int8 embedding table."""
    table = np.random.default_rng(3).integers(-128, 128, (vocab, dim)).astype(np.int8)
    tensors = [Tensor((vocab, dim), quant=Q, data=table), Tensor(ids, index_type),
               Tensor((*ids, dim), quant=Q)]
    node = Node("GATHER", [0, 1], [2], {"table": "GatherOptions", "axis": 0})
    return write(path, tensors, [node], [1], [2])


@pytest.mark.parametrize("ids", [(1, 6), (2, 3, 4)])
def test_gather_with_token_id_input_bit_exact_with_tflm(ids: tuple[int, ...],
                                                        tmp_path: Path) -> None:
    """An embedding lookup: int32 token ids from the caller, rows of a constant table."""
    path = embedding_model(tmp_path / "emb.tflite", 20, 8, ids)
    rng = np.random.default_rng(2)
    sets = [[rng.integers(0, 20, ids).astype(np.int32)] for _ in range(200)]
    check_model(path, tmp_path, sets=sets)


def test_gather_out_of_range_ids_give_zero_rows_in_emulator_and_c(tmp_path: Path) -> None:
    """TFLM reads out of bounds for such ids (undefined); we write zeros, in both."""
    from op_check import run_c

    path = embedding_model(tmp_path / "emb.tflite", 5, 4, (1, 4))
    g = load_tflite(path)
    x = np.array([[0, 7, -1, 4]], np.int32)
    p = make_plan(g, layer_schedule(g))
    from tinymcu.mcu_runtime.emulator import emulate

    y = emulate(g, p, [x]).outputs[0]
    assert (y[0, 1] == 0).all() and (y[0, 2] == 0).all() and y[0, 0].any()
    np.testing.assert_array_equal(run_c(g, p, [x], tmp_path / "c")[0], y)
