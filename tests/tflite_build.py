"""Write small int8 .tflite files with exactly the quantization a test asks for.

The TFLite converter picks scales and zero points itself, so it cannot produce the corner
cases an exactness test needs (MEAN with equal input/output quantization, odd axes,
near-tie FC multipliers). This builds the flatbuffer directly with the schema bindings that
ship inside the ``tflite_micro`` wheel (object API + ``flatbuffers``), without TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_DTYPES = {"int8": 9, "int32": 2, "float32": 0, "uint8": 3, "int16": 7, "int64": 4,
           "bool": 6, "uint32": 15, "uint64": 12}


@dataclass
class Tensor:
    """One tensor: shape, dtype, (scale, zero point) or None, constant data.

    ``quant`` may hold arrays of scales and zero points plus the quantized axis
    (``(scales, zero_points, axis)``) for a per-channel tensor."""

    shape: tuple[int, ...]
    dtype: str = "int8"
    quant: tuple | None = None
    data: np.ndarray | None = None
    #: a state (variable) tensor: SVDF's activation state, LSTM's hidden/cell state
    variable: bool = False


@dataclass
class Node:
    """One operator: builtin name, tensor indices, options for the kinds used in tests.

    ``options["table"]`` names any BuiltinOptions table (e.g. ``"TransposeConvOptions"``);
    the other keys are then set as its fields (the schema's camelCase names).
    ``options["custom"]`` makes ``kind`` a custom op's name and writes the dict as its
    FlexBuffer ``custom_options`` (TFLM's Signal ops)."""

    kind: str
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


def build(tensors: list[Tensor], ops: list[Node], inputs: list[int], outputs: list[int]) -> bytes:
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

    model = s.ModelT()
    model.version = 3
    model.buffers = [s.BufferT()]
    sub = s.SubGraphT()
    sub.tensors = []
    for i, t in enumerate(tensors):
        tt = s.TensorT()
        tt.shape = list(t.shape)
        tt.type = _DTYPES[t.dtype]
        tt.name = f"t{i}"
        tt.buffer = 0
        tt.isVariable = t.variable
        if t.data is not None:
            b = s.BufferT()
            b.data = np.ascontiguousarray(t.data, dtype=t.dtype).tobytes()
            tt.buffer = len(model.buffers)
            model.buffers.append(b)
        if t.quant is not None:
            q = s.QuantizationParametersT()
            q.scale = [float(v) for v in np.ravel(t.quant[0])]
            q.zeroPoint = [int(v) for v in np.ravel(t.quant[1])]
            if len(t.quant) > 2:
                q.quantizedDimension = int(t.quant[2])
            tt.quantization = q
        sub.tensors.append(tt)
    codes: list[int] = []
    sub.operators = []
    for op in ops:
        code = (op.kind if "custom" in op.options
                else getattr(s.BuiltinOperator, op.kind))
        if code not in codes:
            codes.append(code)
        o = s.OperatorT()
        o.opcodeIndex = codes.index(code)
        o.inputs, o.outputs = list(op.inputs), list(op.outputs)
        if "custom" in op.options:
            from flatbuffers import flexbuffers
            o.customOptions = list(flexbuffers.Dumps(op.options["custom"]))
            o.customOptionsFormat = 0
        elif "table" in op.options:
            table = op.options["table"]
            o.builtinOptionsType = getattr(s.BuiltinOptions, table)
            o.builtinOptions = getattr(s, f"{table}T")()
            for key, value in op.options.items():
                if key != "table":
                    setattr(o.builtinOptions, key, value)
        elif op.kind in ("MEAN", "SUM"):
            o.builtinOptionsType = s.BuiltinOptions.ReducerOptions
            o.builtinOptions = s.ReducerOptionsT()
            o.builtinOptions.keepDims = bool(op.options.get("keep_dims", False))
        elif op.kind == "FULLY_CONNECTED":
            o.builtinOptionsType = s.BuiltinOptions.FullyConnectedOptions
            o.builtinOptions = s.FullyConnectedOptionsT()
            o.builtinOptions.fusedActivationFunction = {"NONE": 0, "RELU": 1}[
                op.options.get("activation", "NONE")]
        elif op.kind == "SOFTMAX":
            o.builtinOptionsType = s.BuiltinOptions.SoftmaxOptions
            o.builtinOptions = s.SoftmaxOptionsT()
            o.builtinOptions.beta = float(op.options.get("beta", 1.0))
        elif op.kind == "SVDF":
            o.builtinOptionsType = s.BuiltinOptions.SVDFOptions
            o.builtinOptions = s.SVDFOptionsT()
            o.builtinOptions.rank = int(op.options.get("rank", 1))
            o.builtinOptions.fusedActivationFunction = {"NONE": 0, "RELU": 1}[
                op.options.get("activation", "NONE")]
        elif op.kind == "UNIDIRECTIONAL_SEQUENCE_LSTM":
            o.builtinOptionsType = s.BuiltinOptions.UnidirectionalSequenceLSTMOptions
            o.builtinOptions = s.UnidirectionalSequenceLSTMOptionsT()
            o.builtinOptions.fusedActivationFunction = 4  # TANH
            o.builtinOptions.cellClip = float(op.options.get("cell_clip", 0.0))
            o.builtinOptions.projClip = 0.0
            o.builtinOptions.timeMajor = bool(op.options.get("time_major", False))
        elif op.kind == "TRANSPOSE":
            o.builtinOptionsType = s.BuiltinOptions.TransposeOptions
            o.builtinOptions = s.TransposeOptionsT()
        sub.operators.append(o)
    sub.inputs, sub.outputs = list(inputs), list(outputs)
    model.subgraphs = [sub]
    model.operatorCodes = []
    for code in codes:
        oc = s.OperatorCodeT()
        if isinstance(code, str):  # a custom op, by name
            oc.customCode = code
            code = s.BuiltinOperator.CUSTOM
        oc.builtinCode = code
        oc.deprecatedBuiltinCode = min(code, 127)
        oc.version = 1
        model.operatorCodes.append(oc)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def write(path: Path, tensors: list[Tensor], ops: list[Node], inputs: list[int],
          outputs: list[int]) -> Path:
    path.write_bytes(build(tensors, ops, inputs, outputs))
    return path


def mean_model(path: Path, shape: tuple[int, ...], axes: tuple[int, ...], keep_dims: bool,
               q_in: tuple[float, int], q_out: tuple[float, int]) -> Path:
    """One int8 MEAN over ``axes``."""
    rank = len(shape)
    norm = [a % rank for a in axes]
    out = tuple(1 if i in norm else d for i, d in enumerate(shape)) if keep_dims else tuple(
        d for i, d in enumerate(shape) if i not in norm)
    axis = Tensor((len(axes),), "int32", data=np.array(axes, np.int32))
    tensors = [Tensor(shape, quant=q_in), axis, Tensor(out, quant=q_out)]
    return write(path, tensors, [Node("MEAN", [0, 1], [2], {"keep_dims": keep_dims})], [0], [2])


def transpose_mean_mean_model(path: Path, shape: tuple[int, int, int, int],
                              q: tuple[float, int]) -> Path:
    """NHWC → NCHW TRANSPOSE, MEAN over W, MEAN over H, all on one quantization.

    The pattern litert-torch leaves before a channels-first global average pool.
    """
    n, h, w, c = shape
    tensors = [Tensor(shape, quant=q), Tensor((4,), "int32", data=np.array([0, 3, 1, 2], np.int32)),
               Tensor((n, c, h, w), quant=q), Tensor((1,), "int32", data=np.array([3], np.int32)),
               Tensor((n, c, h), quant=q), Tensor((1,), "int32", data=np.array([2], np.int32)),
               Tensor((n, c), quant=q)]
    ops = [Node("TRANSPOSE", [0, 1], [2]), Node("MEAN", [2, 3], [4]), Node("MEAN", [4, 5], [6])]
    return write(path, tensors, ops, [0], [6])


def fc_model(path: Path, rng: np.random.Generator, n_in: int, n_out: int,
             q_in: tuple[float, int], q_out: tuple[float, int], w_scale: float,
             activation: str = "NONE", bias_scale: float | None = None) -> Path:
    """One per-tensor int8 FULLY_CONNECTED with random weights and int32 bias.

    ``bias_scale`` defaults to input·weight scale, as the converter writes it."""
    w = rng.integers(-127, 128, (n_out, n_in)).astype(np.int8)
    if bias_scale is None:
        bias_scale = float(np.float32(q_in[0]) * np.float32(w_scale))
    b = rng.integers(-5000, 5000, n_out).astype(np.int32)
    tensors = [Tensor((1, n_in), quant=q_in), Tensor((n_out, n_in), quant=(w_scale, 0), data=w),
               Tensor((n_out,), "int32", quant=(bias_scale, 0), data=b),
               Tensor((1, n_out), quant=q_out)]
    ops = [Node("FULLY_CONNECTED", [0, 1, 2], [3], {"activation": activation})]
    return write(path, tensors, ops, [0], [3])
