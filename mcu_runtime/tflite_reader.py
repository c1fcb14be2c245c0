"""Read an int8 ``.tflite`` flatbuffer into the IR (:class:`~tinymcu.mcu_runtime.ir.Graph`).

Why a reader of our own: ``tinymcu check`` must run in the core install (no TensorFlow, no
torch) and must answer *any* file — truncated, fuzzed, float, custom-op — with one line
naming the problem (:class:`~tinymcu.errors.TinymcuError`), fast and in bounded memory.
So everything read from the file is validated before it is trusted: indices, shapes, sizes,
quantization, op arities, the output shape every op must produce, and the dataflow order.
A Graph that comes out of :func:`load_tflite` is safe for the planner and the emulator.

Field slots follow TFLite's ``schema.fbs`` (declaration order; a union takes two slots).
Keras shape plumbing (SHAPE, STRIDED_SLICE, PACK, ...) is folded into constants here, so the
Graph holds only the ops that compute on activations.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import ops
from tinymcu.mcu_runtime.flatbuf import FlatBuffer, Table
from tinymcu.mcu_runtime.flexbuf import loads_map
from tinymcu.mcu_runtime.ir import DTYPE_SIZE, Graph, Op, Quant, Tensor
from tinymcu.mcu_runtime.ops.decode import OpError

#: BuiltinOperator names by code, from TFLite's schema.fbs (codes 0..209, contiguous).
BUILTIN_NAMES: tuple[str, ...] = tuple("""
ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE
EMBEDDING_LOOKUP FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D
LOCAL_RESPONSE_NORMALIZATION LOGISTIC LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU
RELU_N1_TO_1 RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH SVDF TANH
CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD
UNIDIRECTIONAL_SEQUENCE_RNN GATHER BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB
DIV SQUEEZE UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN EXP
TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM ARG_MAX
MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN TRANSPOSE_CONV
SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW ARG_MIN
FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK
REDUCE_MIN FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE
RESIZE_NEAREST_NEIGHBOR LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL
REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE
MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5
SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES
CUMSUM CALL_ONCE BROADCAST_TO RFFT2D CONV_3D IMAG REAL COMPLEX_ABS HASHTABLE HASHTABLE_FIND
HASHTABLE_IMPORT HASHTABLE_SIZE REDUCE_ALL CONV_3D_TRANSPOSE VAR_HANDLE READ_VARIABLE
ASSIGN_VARIABLE BROADCAST_ARGS RANDOM_STANDARD_NORMAL BUCKETIZE RANDOM_UNIFORM MULTINOMIAL
GELU DYNAMIC_UPDATE_SLICE RELU_0_TO_1 UNSORTED_SEGMENT_PROD UNSORTED_SEGMENT_MAX
UNSORTED_SEGMENT_SUM ATAN2 UNSORTED_SEGMENT_MIN SIGN BITCAST BITWISE_XOR RIGHT_SHIFT
STABLEHLO_LOGISTIC STABLEHLO_ADD STABLEHLO_DIVIDE STABLEHLO_MULTIPLY STABLEHLO_MAXIMUM
STABLEHLO_RESHAPE STABLEHLO_CLAMP STABLEHLO_CONCATENATE STABLEHLO_BROADCAST_IN_DIM
STABLEHLO_CONVOLUTION STABLEHLO_SLICE STABLEHLO_CUSTOM_CALL STABLEHLO_REDUCE STABLEHLO_ABS
STABLEHLO_AND STABLEHLO_COSINE STABLEHLO_EXPONENTIAL STABLEHLO_FLOOR STABLEHLO_LOG
STABLEHLO_MINIMUM STABLEHLO_NEGATE STABLEHLO_OR STABLEHLO_POWER STABLEHLO_REMAINDER
STABLEHLO_RSQRT STABLEHLO_SELECT STABLEHLO_SUBTRACT STABLEHLO_TANH STABLEHLO_SCATTER
STABLEHLO_COMPARE STABLEHLO_CONVERT STABLEHLO_DYNAMIC_SLICE STABLEHLO_DYNAMIC_UPDATE_SLICE
STABLEHLO_PAD STABLEHLO_IOTA STABLEHLO_DOT_GENERAL STABLEHLO_REDUCE_WINDOW STABLEHLO_SORT
STABLEHLO_WHILE STABLEHLO_GATHER STABLEHLO_TRANSPOSE DILATE STABLEHLO_RNG_BIT_GENERATOR
REDUCE_WINDOW STABLEHLO_COMPOSITE STABLEHLO_SHIFT_LEFT STABLEHLO_CBRT STABLEHLO_CASE
""".split())

#: TensorType enum → IR dtype string (None: a type tinymcu cannot hold).
TENSOR_TYPES: dict[int, str] = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
    7: "int16", 8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64",
    13: "resource", 14: "variant", 15: "uint32", 16: "uint16", 17: "int4",
}

#: Ops the Graph may hold: every op folder's TFLite kinds (``mcu_runtime/ops/``).
SUPPORTED_OPS = ops.tflite_kinds()

#: Custom ops (by custom code name) the op folders run (``OpDef.custom``).
CUSTOM_OPS = frozenset(k for d in ops.all_defs() if d.custom for k in d.kinds)

#: an op's options: a builtin options table, a custom op's decoded FlexBuffer map, or none
Options = Table | dict | None

#: Ops that compute on activations but may change numeric type (float ends of a model,
#: ARG_MAX's indices, CAST): the op folders with ``OpDef.mixed_types``.
_TYPE_CHANGING = frozenset(k for d in ops.all_defs() if d.mixed_types for k in d.kinds)

MAX_MODEL_BYTES = 256 << 20  # far above any microcontroller's flash
MAX_RANK = 8
MAX_ELEMENTS = (1 << 31) - 1

_ZERO_POINT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}

# Model / SubGraph / Tensor / Operator / ... field slots (schema.fbs declaration order).
_MODEL_OPCODES, _MODEL_SUBGRAPHS, _MODEL_BUFFERS = 1, 2, 4
_SG_TENSORS, _SG_INPUTS, _SG_OUTPUTS, _SG_OPERATORS, _SG_NAME = 0, 1, 2, 3, 4
_T_SHAPE, _T_TYPE, _T_BUFFER, _T_NAME, _T_QUANT, _T_IS_VARIABLE, _T_SPARSITY = range(7)
_Q_SCALE, _Q_ZERO_POINT, _Q_DETAILS_TYPE, _Q_DIM = 2, 3, 4, 6
_OP_OPCODE, _OP_INPUTS, _OP_OUTPUTS, _OP_OPTIONS_TYPE, _OP_OPTIONS = range(5)
_OP_CUSTOM_OPTIONS, _OP_CUSTOM_FORMAT = 5, 6
_OPC_DEPRECATED, _OPC_CUSTOM, _OPC_BUILTIN = 0, 1, 3
_BUF_DATA, _BUF_OFFSET, _BUF_SIZE = 0, 1, 2

#: BuiltinOptions union member index expected for each op whose options we read: the op
#: folders' (``OpDef.options_type``) and those of the shape plumbing we fold.
_OPTIONS_TYPE = {"STRIDED_SLICE": 32, "PACK": 59, "CONCATENATION": 10, "RESHAPE": 17,
                 "SQUEEZE": 30,
                 **{k: v for d in ops.all_defs() for k, v in d.options_type.items()}}


def _quote(name: str) -> str:
    """A tensor/op name from the file, made safe for a one-line message."""
    clean = "".join(c if c.isprintable() else "?" for c in name)
    return repr(clean if len(clean) <= 60 else clean[:57] + "...")


def read_model_bytes(path_or_bytes: str | os.PathLike | bytes | bytearray | memoryview) -> bytes:
    """The model's bytes, from a path or as given; a clear error for unreadable paths."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
        if len(data) > MAX_MODEL_BYTES:
            raise TinymcuError(f"model is {len(data)} bytes; tinymcu reads at most "
                               f"{MAX_MODEL_BYTES} (256 MiB)")
        return data
    path = Path(path_or_bytes)
    try:
        if not path.exists():
            raise TinymcuError(f"model file not found: {path}")
        if not path.is_file():
            raise TinymcuError(f"model path is not a file: {path}")
        size = path.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise TinymcuError(f"model file {path} is {size} bytes; tinymcu reads at most "
                               f"{MAX_MODEL_BYTES} (256 MiB)")
        return path.read_bytes()
    except (OSError, ValueError) as e:
        raise TinymcuError(f"cannot read model file {path}: "
                           f"{getattr(e, 'strerror', None) or e}") from None


def load_tflite(path_or_bytes: str | os.PathLike | bytes | bytearray | memoryview) -> Graph:
    """Parse and validate a .tflite model into a :class:`Graph` (subgraph 0).

    Raises :class:`TinymcuError` with one line naming the problem for anything tinymcu
    cannot take: malformed bytes, out-of-range indices, bad shapes, float models, custom
    or unsupported ops, models that need more than one subgraph.
    """
    data = read_model_bytes(path_or_bytes)
    name = Path(path_or_bytes).stem if isinstance(path_or_bytes, (str, os.PathLike)) else None
    return _Reader(data).graph(name)


class _Reader:
    """One pass over one model: raw decode, constant folding, op decoding, validation."""

    def __init__(self, data: bytes):
        self.data = data
        self.fb = FlatBuffer(data)
        if len(data) < 8:
            raise TinymcuError(f"not a .tflite model: only {len(data)} bytes")
        ident = self.fb.identifier()
        if ident != b"TFL3":
            raise TinymcuError(f"not a .tflite model: file identifier is {ident!r}, "
                               "expected b'TFL3'")
        self.model = self.fb.root()
        self.buffers = self.model.tables(_MODEL_BUFFERS)
        self.opcodes = self.model.tables(_MODEL_OPCODES)
        self._kinds: dict[int, str] = {}

    # ---- raw decode -------------------------------------------------------------------
    def graph(self, name: str | None) -> Graph:
        subgraphs = self.model.tables(_MODEL_SUBGRAPHS)
        if not subgraphs:
            raise TinymcuError("model has no subgraph")
        sg = subgraphs[0]
        raw_ops = [self._raw_op(i, t) for i, t in enumerate(sg.tables(_SG_OPERATORS))]
        if not raw_ops:
            raise TinymcuError("model has no operators")
        tables = sg.tables(_SG_TENSORS)
        self.tensors = [self._tensor(i, t) for i, t in enumerate(tables)]
        inputs = self._indices(sg, _SG_INPUTS, "subgraph input")
        outputs = self._indices(sg, _SG_OUTPUTS, "subgraph output")
        for i, (kind, ins, outs, _) in enumerate(raw_ops):
            self._check_io(i, kind, ins, outs)
        kept = [i for i, r in enumerate(raw_ops) if not self._fold(i, *r)]
        ops = [self._op(index, i, *raw_ops[i]) for index, i in enumerate(kept)]
        graph = Graph(self.tensors, ops, inputs, outputs,
                      name=name or sg.string(_SG_NAME) or "model")
        _check_dataflow(graph, kept)
        _check_int8(graph, kept)
        return graph

    def _raw_op(self, i: int, t: Table) -> tuple[str, list[int], list[int], Options]:
        opcode = int(t.scalar(_OP_OPCODE, "uint32"))
        if opcode >= len(self.opcodes):
            raise TinymcuError(f"op {i} uses opcode index {opcode}, but the model has only "
                               f"{len(self.opcodes)} operator codes")
        kind = self._kind(i, opcode)
        ins = t.array(_OP_INPUTS, "int32")
        outs = t.array(_OP_OUTPUTS, "int32")
        if kind in CUSTOM_OPS:
            if int(t.scalar(_OP_CUSTOM_FORMAT, "int8")) != 0:
                raise TinymcuError(f"op {i} ({kind}) has custom options in format "
                                   f"{int(t.scalar(_OP_CUSTOM_FORMAT, 'int8'))}, expected "
                                   "0 (FlexBuffers)")
            custom = loads_map(t.bytes(_OP_CUSTOM_OPTIONS) or b"",
                               f"op {i} ({kind}) custom options")
            return (kind, [] if ins is None else ins.tolist(),
                    [] if outs is None else outs.tolist(), custom)
        opts = t.table(_OP_OPTIONS)
        expected = _OPTIONS_TYPE.get(kind)
        otype = int(t.scalar(_OP_OPTIONS_TYPE, "uint8"))
        if opts is not None and expected is not None and otype != expected:
            raise TinymcuError(f"op {i} ({kind}) carries builtin options of union type "
                               f"{otype}, expected {expected}")
        return (kind, [] if ins is None else ins.tolist(),
                [] if outs is None else outs.tolist(), opts)

    def _kind(self, i: int, opcode: int) -> str:
        if opcode in self._kinds:
            return self._kinds[opcode]
        t = self.opcodes[opcode]
        code = max(int(t.scalar(_OPC_DEPRECATED, "int8")), int(t.scalar(_OPC_BUILTIN, "int32")))
        if code == BUILTIN_NAMES.index("CUSTOM"):
            custom = t.string(_OPC_CUSTOM) or "?"
            if custom not in CUSTOM_OPS:
                raise TinymcuError(f"op {i} is the custom op {_quote(custom)}, which tinymcu "
                                   "does not support (custom ops it runs: "
                                   f"{', '.join(sorted(CUSTOM_OPS))})")
            self._kinds[opcode] = custom
            return custom
        if not 0 <= code < len(BUILTIN_NAMES):
            raise TinymcuError(f"op {i} has unknown builtin operator code {code}")
        kind = BUILTIN_NAMES[code]
        if kind not in SUPPORTED_OPS and kind not in _FOLDERS:
            why = (", which calls other subgraphs; tinymcu runs single-subgraph models only"
                   if kind in ("CALL", "IF", "WHILE", "CALL_ONCE") else "")
            raise TinymcuError(f"op {i} is {kind}{why or ', which tinymcu does not support'}")
        self._kinds[opcode] = kind
        return kind

    def _indices(self, sg: Table, slot: int, what: str) -> list[int]:
        arr = sg.array(slot, "int32")
        out = [] if arr is None else arr.tolist()
        for t in out:
            if not 0 <= t < len(self.tensors):
                raise TinymcuError(f"{what} {t} is out of range (model has "
                                   f"{len(self.tensors)} tensors)")
        if not out:
            raise TinymcuError(f"model declares no {what}s")
        return out

    def _check_io(self, i: int, kind: str, ins: list[int], outs: list[int]) -> None:
        n = len(self.tensors)
        for t in ins:
            if not (t == -1 or 0 <= t < n):
                raise TinymcuError(f"op {i} ({kind}) reads tensor {t}, out of range "
                                   f"(model has {n} tensors)")
        if not outs:
            raise TinymcuError(f"op {i} ({kind}) has no outputs")
        for t in outs:
            if not 0 <= t < n:
                raise TinymcuError(f"op {i} ({kind}) writes tensor {t}, out of range "
                                   f"(model has {n} tensors)")

    def _tensor(self, i: int, t: Table) -> Tensor:
        name = t.string(_T_NAME) or f"tensor{i}"
        where = f"tensor {i} {_quote(name)}"
        code = int(t.scalar(_T_TYPE, "int8"))
        dtype = TENSOR_TYPES.get(code, f"type {code}")
        if dtype not in DTYPE_SIZE:
            raise TinymcuError(f"{where} has type {dtype.upper()}, which tinymcu does not "
                               "support")
        if t.length(_T_SHAPE, 4) > MAX_RANK:
            raise TinymcuError(f"{where} has rank {t.length(_T_SHAPE, 4)}; at most "
                               f"{MAX_RANK} is supported")
        dims = t.array(_T_SHAPE, "int32")  # shape_signature (-1 = dynamic) is not read:
        shape = () if dims is None else tuple(int(d) for d in dims)  # TFLM runs on shape
        if any(d < 0 for d in shape):
            raise TinymcuError(f"{where} has a negative or dynamic dimension {shape}; "
                               "tinymcu needs static shapes")
        count = 1
        for d in shape:
            count *= d
        if count > MAX_ELEMENTS:
            raise TinymcuError(f"{where} has {count} elements (shape {shape}); at most "
                               f"2^31-1 are supported")
        if t.table(_T_SPARSITY) is not None:
            raise TinymcuError(f"{where} uses TFLite's sparse tensor format, which tinymcu "
                               "does not support")
        quant = self._quant(where, t.table(_T_QUANT), shape, dtype)
        data = self._data(where, int(t.scalar(_T_BUFFER, "uint32")), shape, dtype, count)
        _check_quant(where, quant, dtype, data is not None)
        variable = bool(t.scalar(_T_IS_VARIABLE, "bool", False))
        if variable and data is not None:
            raise TinymcuError(f"{where} is a variable (state) tensor with initial data; "
                               "TFLM resets state to zero, so tinymcu takes none")
        return Tensor(i, name, shape, dtype, quant, data, is_variable=variable)

    def _quant(self, where: str, q: Table | None, shape: tuple[int, ...],
               dtype: str) -> Quant | None:
        if q is None:
            return None
        if int(q.scalar(_Q_DETAILS_TYPE, "uint8")) != 0:
            raise TinymcuError(f"{where} uses custom quantization details, which tinymcu "
                               "does not support")
        n = q.length(_Q_SCALE, 4)
        if n == 0:
            return None
        if n > max((*shape, 1)):  # LSTM intermediates: shape [0] with one scale
            raise TinymcuError(f"{where} has {n} quantization scales for shape {shape}")
        scale = q.array(_Q_SCALE, "float32")
        if scale is None:
            raise TinymcuError(f"{where} has no quantization scales")
        zp = q.array(_Q_ZERO_POINT, "int64")
        if zp is None or zp.size == 0:
            zp = np.zeros(n, np.int64)
        if zp.size != n:
            raise TinymcuError(f"{where} has {n} scales but {zp.size} zero points")
        axis = int(q.scalar(_Q_DIM, "int32"))
        if n > 1:
            if len(shape) == 1 and shape[0] == n:
                axis = 0  # person_detect.tflite: rank-1 biases say 3; TFLM accepts them
            elif not (0 <= axis < len(shape) and shape[axis] == n):
                raise TinymcuError(f"{where} has {n} per-channel scales but quantized "
                                   f"dimension {axis} of shape {shape} does not match")
        elif not 0 <= axis < max(len(shape), 1):
            axis = 0
        return Quant(scale.astype(np.float32), zp.astype(np.int64), axis)

    def _data(self, where: str, b: int, shape: tuple[int, ...], dtype: str,
              count: int) -> np.ndarray | None:
        if b >= len(self.buffers):
            raise TinymcuError(f"{where} uses buffer {b}, but the model has only "
                               f"{len(self.buffers)} buffers")
        buf = self.buffers[b]
        offset = int(buf.scalar(_BUF_OFFSET, "uint64"))
        if offset > 1:  # data stored after the flatbuffer (models written with offsets)
            size = int(buf.scalar(_BUF_SIZE, "uint64"))
            if offset + size > len(self.data):
                raise TinymcuError(f"{where}: buffer {b} points at bytes {offset}..{offset + size}"
                                   f" beyond the end of the file ({len(self.data)} bytes)")
            self.fb.charge(size, offset)
            raw = self.data[offset:offset + size]
        else:
            raw = buf.bytes(_BUF_DATA) or b""
        if not raw:
            return None
        nbytes = count * DTYPE_SIZE[dtype]
        if len(raw) != nbytes:
            raise TinymcuError(f"{where} has {len(raw)} bytes of data, expected {nbytes} "
                               f"for shape {shape} {dtype}")
        if dtype == "bool":
            return (np.frombuffer(raw, np.uint8) != 0).reshape(shape)
        return np.frombuffer(raw, np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)


    # ---- constant folding -----------------------------------------------------------
    def _fold(self, i: int, kind: str, ins: list[int], outs: list[int],
              opts: Options) -> bool:
        """Replace shape plumbing by constants; True if op ``i`` was folded away."""
        folder = _FOLDERS.get(kind)
        if folder is None or isinstance(opts, dict):
            return False
        tensors = [self.tensors[t] if t >= 0 else None for t in ins]
        outputs = [self.tensors[t] for t in outs]
        foldable = all(t is not None and (t.is_const or kind == "SHAPE") for t in tensors)
        if foldable and tensors:
            for t in outputs:
                self.fb.charge(t.nbytes, 0)
            try:
                results = folder(tensors, outputs, opts)
            except (ValueError, IndexError, TypeError, OverflowError) as e:
                first = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise TinymcuError(f"op {i} ({kind}) cannot be folded: {first}") from None
        else:
            results = None
        if results is None:
            if kind in SUPPORTED_OPS:
                return False
            raise TinymcuError(f"op {i} ({kind}) does not fold to a constant; tinymcu "
                               f"supports {kind} only as shape plumbing on constant inputs")
        if len(results) != len(outs):
            raise TinymcuError(f"op {i} ({kind}) has {len(outs)} outputs, expected "
                               f"{len(results)}")
        for t_out, out, value in zip(outs, outputs, results):
            value = np.asarray(value)
            if value.shape != out.shape:
                raise TinymcuError(f"op {i} ({kind}) folds to shape {value.shape}, but tensor "
                                   f"{t_out} {_quote(out.name)} is declared {out.shape}")
            if out.is_const:
                raise TinymcuError(f"op {i} ({kind}) writes tensor {t_out}, which is a "
                                   "constant")
            out.data = value.astype(out.dtype)
        return True

    # ---- op decoding ------------------------------------------------------------------
    def _op(self, index: int, file_index: int, kind: str, ins: list[int], outs: list[int],
            opts: Options) -> Op:
        op = Op(index, kind, tuple(ins), tuple(outs))
        opdef = ops.get(kind)
        in_t = [self.tensors[t] if t >= 0 else None for t in ins]
        out_t = [self.tensors[t] for t in outs]
        try:
            if isinstance(opts, dict):
                op.attrs = opdef.decode_custom(kind, in_t, out_t, opts)
            else:
                op.attrs = opdef.decode(kind, in_t, out_t, opts)
        except OpError as e:
            raise TinymcuError(f"op {file_index} ({kind}): {e}") from None
        for name, shape, dtype in opdef.kernel_state(kind, op.attrs, in_t, out_t):
            # state the kernel keeps to itself: a variable tensor the file does not have
            state = Tensor(len(self.tensors), f"{out_t[0].name}/{name}", shape, dtype,
                           is_variable=True, kernel_state=True)
            self.tensors.append(state)
            op.inputs = (*op.inputs, state.index)
        return op


# ---- folds: numpy on constants; None = "cannot fold this one, keep the op" --------------
#: scales a converter can produce lie far inside this range (the shared models: 3e-13..20);
#: beyond it the requantization multipliers overflow float32/int32 arithmetic
_SCALE_RANGE = (1e-30, 1e30)


def _check_quant(where: str, quant: Quant | None, dtype: str, is_const: bool) -> None:
    """Scales finite, positive and not absurd; zero points in the dtype's range.

    A constant's scale may be 0 (a pruned, all-zero channel: its multiplier is 0, as in
    TFLM); an activation's never is, since kernels divide by it."""
    if quant is None:
        return
    s = quant.scale.astype(np.float64)
    lo, hi = _SCALE_RANGE
    ok = np.isfinite(s) & (s <= hi) & ((s >= lo) | (is_const & (s == 0)))
    if not np.all(ok):
        bad = float(s[~ok][0])
        raise TinymcuError(f"{where} has a zero, negative, absurd or non-finite quantization "
                           f"scale ({bad:g}); expected {'0 or ' if is_const else ''}"
                           f"{lo:g}..{hi:g}")
    limits = {**_ZERO_POINT_RANGE, "int32": (-(2**31), 2**31 - 1)}.get(dtype)
    if limits is None:
        return
    zp = quant.zero_point
    out = (zp < limits[0]) | (zp > limits[1])
    if np.any(out):
        raise TinymcuError(f"{where} has a zero point outside the {dtype} range "
                           f"({int(zp[out][0])}, expected {limits[0]}..{limits[1]})")


def _const(t: Tensor) -> np.ndarray:
    """A folded op's input values (the caller folds only ops whose inputs are constant)."""
    if t.data is None:
        raise ValueError(f"input {t.name!r} is not a constant")
    return t.data


def _fold_shape(ts: list[Tensor], outs: list[Tensor], opts: Table | None) -> list | None:
    if len(ts) != 1:
        raise ValueError(f"expected 1 input, got {len(ts)}")
    return [np.array(ts[0].shape, dtype=outs[0].dtype)]


def _fold_pack(ts: list[Tensor], outs: list[Tensor], opts: Table | None) -> list | None:
    axis = int(opts.scalar(1, "int32")) if opts else 0
    return [np.stack([_const(t) for t in ts], axis=axis)]


def _fold_strided_slice(ts: list[Tensor], outs: list[Tensor],
                        opts: Table | None) -> list | None:
    if len(ts) != 4:
        raise ValueError(f"expected 4 inputs, got {len(ts)}")
    x, begin, end, strides = (_const(t) for t in ts)
    begin_mask, end_mask, ellipsis_mask, new_axis_mask, shrink_mask = (
        int(opts.scalar(s, "int32")) if opts else 0 for s in range(5))
    offset = bool(opts.scalar(5, "bool", False)) if opts else False
    if ellipsis_mask or new_axis_mask:
        raise ValueError("ellipsis and new-axis masks are not supported")
    if not begin.shape == end.shape == strides.shape == (x.ndim,):
        raise ValueError("begin/end/strides need one entry per input dimension")
    index: list[int | slice] = []
    for d in range(x.ndim):
        b, e, s = int(begin[d]), int(end[d]), int(strides[d])
        if s == 0:
            raise ValueError("stride 0")
        if shrink_mask >> d & 1:
            if not -x.shape[d] <= b < x.shape[d]:
                raise ValueError(f"index {b} out of range for dimension {d}")
            index.append(b)
        else:
            index.append(slice(None if begin_mask >> d & 1 else b,
                               None if end_mask >> d & 1 else (b + e if offset else e), s))
    return [x[tuple(index)]]


def _fold_concat(ts: list[Tensor], outs: list[Tensor], opts: Table | None) -> list | None:
    return [np.concatenate([_const(t) for t in ts], axis=int(opts.scalar(0, "int32")) if opts
                           else 0)]


def _fold_reshape(ts: list[Tensor], outs: list[Tensor], opts: Table | None) -> list | None:
    return [_const(ts[0]).reshape(outs[0].shape)]


def _fold_transpose(ts: list[Tensor], outs: list[Tensor], opts: Table | None) -> list | None:
    if len(ts) != 2:
        raise ValueError(f"expected 2 inputs, got {len(ts)}")
    perm = [int(p) for p in _const(ts[1]).ravel()]
    if sorted(perm) != list(range(_const(ts[0]).ndim)):
        raise ValueError(f"perm {perm} is not a permutation")
    return [np.transpose(_const(ts[0]), perm)]


def _fold_int_arith(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable:
    def fold(ts: list[Tensor], outs: list[Tensor], opts: Table | None) -> list | None:
        if len(ts) != 2 or any(t.dtype not in ("int32", "int64") or t.quant for t in ts):
            return None  # quantized arithmetic on constants: keep it as an op
        with np.errstate(over="ignore"):
            return [fn(_const(ts[0]), _const(ts[1]))]
    return fold


_FOLDERS: dict[str, Callable[..., list | None]] = {
    "SHAPE": _fold_shape, "PACK": _fold_pack, "STRIDED_SLICE": _fold_strided_slice,
    "CONCATENATION": _fold_concat, "RESHAPE": _fold_reshape, "SQUEEZE": _fold_reshape,
    "EXPAND_DIMS": _fold_reshape, "CAST": lambda ts, outs, opts: [ts[0].data],
    "TRANSPOSE": _fold_transpose, "ADD": _fold_int_arith(np.add),
    "SUB": _fold_int_arith(np.subtract), "MUL": _fold_int_arith(np.multiply),
}


# ---- whole-graph checks ------------------------------------------------------------------
def _check_dataflow(graph: Graph, file_index: list[int]) -> None:
    """Every activation is written once, before it is read: what the planner relies on.

    Messages name ops by their index in the file (``file_index``), as tools like Netron do.
    """
    written: set[int] = set()
    for t in graph.inputs:
        if graph.tensors[t].is_const:
            raise TinymcuError(f"graph input tensor {t} is a constant")
        if graph.tensors[t].is_variable:
            raise TinymcuError(f"graph input tensor {t} is a variable (state) tensor")
        written.add(t)
    for t in graph.outputs:
        if graph.tensors[t].is_variable:
            raise TinymcuError(f"graph output tensor {t} is a variable (state) tensor")
    readers: dict[int, int] = {}
    for op in graph.ops:
        state = {op.inputs[k] for k in ops.get(op.kind).state_inputs(op)}
        for t in op.inputs:
            if t < 0 or not graph.tensors[t].is_variable:
                continue
            if t not in state:
                raise TinymcuError(f"op {file_index[op.index]} ({op.kind}) reads variable "
                                   f"(state) tensor {t}, which only a stateful op's state "
                                   "input may be")
            if readers.setdefault(t, op.index) != op.index:
                raise TinymcuError(f"variable (state) tensor {t} is the state of two ops "
                                   f"({file_index[readers[t]]} and {file_index[op.index]})")
        for k in state:
            if not graph.tensors[k].is_variable:
                raise TinymcuError(f"op {file_index[op.index]} ({op.kind}): its state "
                                   f"tensor {k} is not marked variable")
        written.update(state)
    for op in graph.ops:
        for t in op.inputs:
            if t >= 0 and not graph.tensors[t].is_const and t not in written:
                raise TinymcuError(f"op {file_index[op.index]} ({op.kind}) reads tensor {t} "
                                   "before any op writes it")
        for t in op.outputs:
            if graph.tensors[t].is_const:
                raise TinymcuError(f"op {file_index[op.index]} ({op.kind}) writes tensor {t}, "
                                   "which is a constant")
            if t in written:
                raise TinymcuError(f"tensor {t} is written twice (again by op "
                                   f"{file_index[op.index]} {op.kind})")
            written.add(t)
    for t in graph.outputs:
        if t not in written and not graph.tensors[t].is_const:
            raise TinymcuError(f"graph output tensor {t} is never written")
    for act in graph.activations():
        if act.size == 0:
            raise TinymcuError(f"tensor {act.index} {_quote(act.name)} has an empty shape "
                               f"{act.shape}")


def _int16_core(graph: Graph) -> bool:
    """A 16x8 model: int16 activations throughout, every op one that computes on int16."""
    return bool(graph.ops) and all(
        ops.get(op.kind).mixed_types or "int16" in ops.get(op.kind).activation_dtypes
        for op in graph.ops) and any(t.dtype == "int16" for t in graph.activations())


def _plain_int8(graph: Graph) -> set[int]:
    """int8 tensors that are plain integers, not quantized values: every op writing or
    reading them only converts types (CAST's int32 → int8 at the end of the audio front
    end's integer arithmetic), so no kernel needs a scale for them."""
    touching: dict[int, list[str]] = {}
    for op in graph.ops:
        for t in (*op.inputs, *op.outputs):
            touching.setdefault(t, []).append(op.kind)
    return {t for t, kinds in touching.items()
            if all(k in _TYPE_CHANGING and k not in ("QUANTIZE", "DEQUANTIZE") for k in kinds)}


def _integer_ops(graph: Graph) -> bool:
    """A model of plain integer ops with their own typed contracts (the Signal audio front
    end's stages on int16/uint32/uint64, CAST): no float and nothing quantized to check."""
    return all(ops.get(op.kind).mixed_types and op.kind not in ("QUANTIZE", "DEQUANTIZE")
               for op in graph.ops) and not any(t.dtype.startswith("float")
                                                for t in graph.activations())


def _check_int8(graph: Graph, file_index: list[int]) -> None:
    """An int8 core is required: other activation types (float I/O, int16) may appear only
    at the QUANTIZE/DEQUANTIZE boundaries around it (or as ops' own typed results, such as
    ARG_MAX's indices: ``OpDef.mixed_types``)."""
    acts = graph.activations()
    if (not any(t.dtype == "int8" for t in acts) and not _int16_core(graph)
            and not _integer_ops(graph)):
        if any(t.dtype.startswith("float") for t in acts):
            raise TinymcuError("float model; tinymcu needs an int8-quantized model")
        kinds = ", ".join(sorted({t.dtype for t in acts}))
        raise TinymcuError(f"model has no int8 activations ({kinds}); tinymcu needs an "
                           "int8-quantized model")
    plain = _plain_int8(graph)
    for t in acts:
        if t.dtype == "int8" and t.quant is None and t.index not in plain:
            raise TinymcuError(f"tensor {t.index} {_quote(t.name)} is int8 but has no "
                               "quantization parameters")
        if t.quant is not None and t.quant.per_channel:
            raise TinymcuError(f"activation tensor {t.index} {_quote(t.name)} is quantized "
                               "per channel; TFLite activations are per tensor")
    for op in graph.ops:
        if op.kind in _TYPE_CHANGING:
            continue
        own = ops.get(op.kind).own_dtypes(op, graph)
        allowed = ops.get(op.kind).activation_dtypes
        for i in (*op.inputs, *op.outputs):
            if i in own:
                continue  # the op's decode checked this type (int16 cell state, ...)
            ten = graph.tensors[i] if i >= 0 else None
            if ten is not None and not ten.is_const and ten.dtype not in allowed:
                raise TinymcuError(f"op {file_index[op.index]} ({op.kind}) computes in "
                                   f"{ten.dtype} (tensor {i} {_quote(ten.name)}); tinymcu needs "
                                   "an int8-quantized model")
