"""The .tflite reader: every shared model loads into a well-formed Graph, its tensors and op
attributes agree with independent decoders (TFLite's interpreter, TFLite's generated schema
code), shape plumbing folds away, and bad models fail with one line naming the problem."""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.ir import Graph
from tinymcu.mcu_runtime.tflite_reader import SUPPORTED_OPS, load_tflite

DATA = Path(__file__).parent / "data"
MODELS = sorted(p.name for p in DATA.glob("*.tflite") if p.name != "audio_preprocessor_int8.tflite")
#: TFLite refuses person_detect (bias quantized_dimension 3); TFLM and tinymcu accept it.
TFLITE_LOADABLE = [m for m in MODELS if m != "person_detect.tflite"]


def model_bytes(name: str) -> bytes:
    return (DATA / name).read_bytes()


# ---- an independent decoder/encoder: TFLite's generated schema code (tflite-micro) --------
def schema():
    return pytest.importorskip("tflite_micro.tensorflow.lite.micro.python.schema_py_generated")


def unpack(name: str):
    """The model as TFLite's object API (ModelT), to read or edit it field by field."""
    return schema().ModelT.InitFromPackedBuf(bytearray(model_bytes(name)), 0)


def pack(model) -> bytes:
    flatbuffers = pytest.importorskip("flatbuffers")
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def edited(name: str, edit) -> bytes:
    """The model ``name`` with ``edit(ModelT)`` applied, re-serialised."""
    model = unpack(name)
    edit(model)
    return pack(model)


def load_error(data: bytes) -> str:
    start = time.perf_counter()
    with pytest.raises(TinymcuError) as info:
        load_tflite(data)
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    assert "\n" not in message and message
    return message


# ---- every shared model --------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_shared_model_loads_into_a_well_formed_graph(name: str) -> None:
    g = load_tflite(DATA / name)
    assert isinstance(g, Graph) and g.name == Path(name).stem
    assert [op.index for op in g.ops] == list(range(len(g.ops)))
    assert {op.kind for op in g.ops} <= SUPPORTED_OPS
    assert [t.index for t in g.tensors] == list(range(len(g.tensors)))
    for t in g.activations():
        assert t.dtype == "int8" and t.quant is not None and t.quant.scale.size == 1
    for t in g.tensors:
        if t.is_const:
            assert t.data.shape == t.shape and t.data.dtype == np.dtype(t.dtype)
        if t.quant is not None and t.quant.per_channel:
            assert t.shape[t.quant.axis] == t.quant.scale.size == t.quant.zero_point.size
    assert load_tflite(model_bytes(name)).ops == g.ops  # bytes and path give the same graph


def test_shared_model_op_lists_match_their_sources_md() -> None:
    kinds = {name: [op.kind for op in load_tflite(DATA / name).ops] for name in MODELS}
    assert kinds["ad01_int8.tflite"] == ["FULLY_CONNECTED"] * 10
    assert kinds["hello_world_int8.tflite"] == ["FULLY_CONNECTED"] * 3
    assert kinds["micro_speech_quantized.tflite"] == [
        "RESHAPE", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"]
    counts = {k: kinds["vww_96_int8.tflite"].count(k) for k in set(kinds["vww_96_int8.tflite"])}
    # VWW's opcode table also lists QUANTIZE/DEQUANTIZE, used by no node: ignored.
    assert counts == {"CONV_2D": 14, "DEPTHWISE_CONV_2D": 13, "AVERAGE_POOL_2D": 1,
                      "RESHAPE": 1, "FULLY_CONNECTED": 1, "SOFTMAX": 1}
    assert kinds["pretrainedResnet_quant.tflite"].count("ADD") == 3


def test_custom_op_model_names_the_op_and_its_index() -> None:
    """The Signal ops are custom ops tinymcu runs; another custom name is one clear line."""
    renamed = model_bytes("audio_preprocessor_int8.tflite").replace(b"SignalWindow",
                                                                    b"SignalWindoX")
    message = load_error(renamed)
    assert message.startswith("op 0 is the custom op 'SignalWindoX', which tinymcu does not "
                              "support (custom ops it runs: SignalEnergy, "), message


def test_person_detect_rank1_bias_axis_is_normalised() -> None:
    g = load_tflite(DATA / "person_detect.tflite")
    biases = [g.tensors[op.inputs[2]] for op in g.ops if len(op.inputs) > 2]
    per_channel = [b for b in biases if b.quant.per_channel]
    assert len(per_channel) >= 14 and all(b.quant.axis == 0 for b in per_channel)
    raw = unpack("person_detect.tflite").subgraphs[0].tensors
    assert sum(raw[b.index].quantization.quantizedDimension == 3 for b in per_channel) == 14


def test_kws_attributes_and_quantization() -> None:
    g = load_tflite(DATA / "kws_ref_model.tflite")
    conv, dw = g.ops[0], g.ops[1]
    assert conv.kind == "CONV_2D" and dw.kind == "DEPTHWISE_CONV_2D"
    assert conv.attrs == {"stride": (2, 2), "dilation": (1, 1), "padding": "SAME",
                          "activation": "RELU"}
    assert dw.attrs["depth_multiplier"] == 1 and dw.attrs["padding"] == "SAME"
    inp = g.tensors[g.inputs[0]]
    assert inp.shape == (1, 49, 10, 1) and inp.quant.zero_point.tolist() == [83]
    assert inp.quant.scale[0] == pytest.approx(0.584703, rel=1e-6)
    weights = g.tensors[dw.inputs[1]]
    assert weights.shape == (1, 3, 3, 64) and weights.quant.axis == 3
    assert weights.quant.scale.size == 64 and not weights.quant.zero_point.any()
    pool = next(op for op in g.ops if op.kind == "AVERAGE_POOL_2D")
    assert pool.attrs["filter"] == g.tensors[pool.inputs[0]].shape[1:3]
    softmax = g.ops[-1]
    assert softmax.kind == "SOFTMAX" and softmax.attrs == {"beta": 1.0}
    reshape = next(op for op in g.ops if op.kind == "RESHAPE")
    assert reshape.attrs["new_shape"] == g.tensors[reshape.outputs[0]].shape == (1, 64)


# ---- agreement with TFLite's own decoders -----------------------------------------------
_OPTION_FIELDS = {  # IR attr -> (TFLite object-API fields), per op kind
    "CONV_2D": {"stride": ("strideH", "strideW"), "dilation": ("dilationHFactor",
                                                                "dilationWFactor")},
    "DEPTHWISE_CONV_2D": {"stride": ("strideH", "strideW"),
                          "dilation": ("dilationHFactor", "dilationWFactor")},
    "AVERAGE_POOL_2D": {"stride": ("strideH", "strideW"), "filter": ("filterHeight",
                                                                      "filterWidth")},
    "MAX_POOL_2D": {"stride": ("strideH", "strideW"), "filter": ("filterHeight",
                                                                  "filterWidth")},
}


@pytest.mark.parametrize("name", MODELS)
def test_op_attributes_match_tflite_generated_schema_code(name: str) -> None:
    model = unpack(name)
    sg = model.subgraphs[0]
    g = load_tflite(DATA / name)
    compute = [(raw, kind) for raw, kind in zip(sg.operators, _raw_kinds(model_bytes(name)))
               if kind not in ("SHAPE", "STRIDED_SLICE", "PACK")]
    assert len(g.ops) == len(compute)
    activation_names = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
    for op, (raw, kind) in zip(g.ops, compute):
        assert op.kind == kind
        assert op.inputs == tuple(raw.inputs) and op.outputs == tuple(raw.outputs)
        opts = raw.builtinOptions
        for attr, fields in _OPTION_FIELDS.get(op.kind, {}).items():
            assert op.attrs[attr] == tuple(getattr(opts, f) for f in fields)
        if hasattr(opts, "fusedActivationFunction"):
            assert op.attrs["activation"] == activation_names[opts.fusedActivationFunction]
        if hasattr(opts, "padding"):
            assert op.attrs["padding"] == ("SAME", "VALID")[opts.padding]
        if op.kind == "SOFTMAX":
            assert op.attrs["beta"] == opts.beta
    assert g.inputs == list(sg.inputs) and g.outputs == list(sg.outputs)


def _builtin_name(code: int) -> str:
    ops = schema().BuiltinOperator
    return next(k for k, v in vars(ops).items() if v == code and not k.startswith("_"))


@pytest.fixture(scope="module")
def tf():
    tf = pytest.importorskip("tensorflow")
    return tf


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
@pytest.mark.parametrize("name", TFLITE_LOADABLE)
def test_tensors_match_the_tflite_interpreter(tf, name: str) -> None:
    interp = tf.lite.Interpreter(
        model_path=str(DATA / name),
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    produced = {t for op in unpack(name).subgraphs[0].operators for t in op.outputs}
    _assert_tensors_match(load_tflite(DATA / name), interp, folded=produced)


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_person_detect_matches_tflite_once_its_bias_axis_is_patched(tf) -> None:
    def patch_axis(model) -> None:
        for t in model.subgraphs[0].tensors:
            if len(t.shape) == 1 and t.quantization is not None:
                t.quantization.quantizedDimension = 0

    patched = edited("person_detect.tflite", patch_axis)
    interp = tf.lite.Interpreter(model_content=patched)
    interp.allocate_tensors()
    g = load_tflite(DATA / "person_detect.tflite")
    _assert_tensors_match(g, interp)
    assert load_tflite(patched).tensors[5].quant == g.tensors[5].quant


def _assert_tensors_match(g: Graph, interp, folded: set[int] = frozenset()) -> None:
    """Same tensors as TFLite's; constant data compared except for tensors we folded
    (TFLite computes those only when it runs)."""
    details = interp.get_tensor_details()
    assert len(details) == len(g.tensors)
    for d in details:
        t = g.tensors[d["index"]]
        q = d["quantization_parameters"]
        assert t.name == d["name"] and t.shape == tuple(d["shape"])
        assert np.dtype(t.dtype) == np.dtype(d["dtype"])
        if t.quant is None:
            assert q["scales"].size == 0
        else:
            np.testing.assert_array_equal(t.quant.scale, q["scales"])
            np.testing.assert_array_equal(t.quant.zero_point, q["zero_points"])
            if t.quant.per_channel:
                assert t.quant.axis == q["quantized_dimension"]
        if t.is_const and t.index not in folded:
            np.testing.assert_array_equal(t.data, interp.get_tensor(d["index"]))
    assert g.inputs == [d["index"] for d in interp.get_input_details()]
    assert g.outputs == [d["index"] for d in interp.get_output_details()]


# ---- Keras shape plumbing and float ends (converted here with TensorFlow) -------------
@pytest.fixture(scope="module")
def keras_models(tf) -> dict[str, bytes]:
    return build_keras_models(tf)


def build_keras_models(tf) -> dict[str, bytes]:
    """A Keras CNN with batch=None Flatten (SHAPE/STRIDED_SLICE/PACK plumbing), converted
    to int8 (int8 I/O), to int8 with float I/O, and to float. The int8 one is also kept as
    tests/data/keras_flatten_plumbing_int8.tflite, so the fuzz test mutates plumbing too."""
    keras = tf.keras
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Reshape((-1, 4))(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(8):
            yield [rng.normal(size=(1, 8, 8, 2)).astype(np.float32)]

    def convert(quantize: bool, int8_io: bool) -> bytes:
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        if quantize:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = representative
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if int8_io:
                conv.inference_input_type = conv.inference_output_type = tf.int8
        return conv.convert()

    return {"int8": convert(True, True), "float_io": convert(True, False),
            "float": convert(False, False)}


def _raw_kinds(data: bytes) -> list[str]:
    model = schema().ModelT.InitFromPackedBuf(bytearray(data), 0)
    return [_builtin_name(max(model.operatorCodes[o.opcodeIndex].builtinCode,
                              model.operatorCodes[o.opcodeIndex].deprecatedBuiltinCode))
            for o in model.subgraphs[0].operators]


def test_committed_keras_model_plumbing_is_folded() -> None:
    name = "keras_flatten_plumbing_int8.tflite"
    assert _raw_kinds(model_bytes(name)).count("SHAPE") >= 1
    g = load_tflite(DATA / name)
    assert [op.kind for op in g.ops] == ["CONV_2D", "RESHAPE", "RESHAPE", "FULLY_CONNECTED",
                                         "SOFTMAX"]
    assert g.ops[2].attrs["new_shape"] == (1, 256)
    assert g.tensors[g.ops[2].inputs[1]].data.tolist() == [1, 256]  # SHAPE→…→PACK, folded


@pytest.mark.slow
def test_keras_shape_plumbing_is_folded_to_constants(keras_models) -> None:
    raw = _raw_kinds(keras_models["int8"])
    assert {"SHAPE", "STRIDED_SLICE", "PACK"} <= set(raw)
    g = load_tflite(keras_models["int8"])
    assert [op.kind for op in g.ops] == ["CONV_2D", "RESHAPE", "RESHAPE", "FULLY_CONNECTED",
                                         "SOFTMAX"]
    assert [op.attrs["new_shape"] for op in g.ops if op.kind == "RESHAPE"] == [(1, 64, 4),
                                                                               (1, 256)]
    folded = [g.tensors[op.inputs[1]] for op in g.ops if op.kind == "RESHAPE"]
    assert [t.data.tolist() for t in folded] == [[1, 64, 4], [1, 256]]


@pytest.mark.slow
def test_float_io_around_an_int8_core_loads(keras_models) -> None:
    g = load_tflite(keras_models["float_io"])
    assert g.ops[0].kind == "QUANTIZE" and g.ops[-1].kind == "DEQUANTIZE"
    assert g.tensors[g.inputs[0]].dtype == g.tensors[g.outputs[0]].dtype == "float32"
    assert {g.tensors[t].dtype for op in g.ops[1:-1] for t in op.outputs} == {"int8"}


@pytest.mark.slow
def test_float_model_is_rejected(keras_models) -> None:
    assert load_error(keras_models["float"]) == (
        "float model; tinymcu needs an int8-quantized model")


# ---- bad input, one targeted edit at a time ---------------------------------------------
def _set(path: str, value):
    """An edit that sets one attribute reached by a dotted/indexed path on the ModelT."""
    def edit(model) -> None:
        obj = model
        *parts, last = path.split(".")
        for p in parts:
            obj = obj[int(p)] if p.isdigit() else getattr(obj, p)
        if last.isdigit():
            obj[int(last)] = value
        else:
            setattr(obj, last, value)
    return edit


HW = "hello_world_int8.tflite"


@pytest.mark.parametrize("edit, expected", [
    (_set("subgraphs.0.tensors.2.buffer", 1_000_000),
     "tensor 2 'sequential/dense_2/MatMul' uses buffer 1000000, but the model has only 13 "
     "buffers"),
    (_set("subgraphs.0.operators.1.inputs", np.array([7, 99, 8], np.int32)),
     "op 1 (FULLY_CONNECTED) reads tensor 99, out of range (model has 10 tensors)"),
    (_set("subgraphs.0.operators.2.outputs", np.array([-5], np.int32)),
     "op 2 (FULLY_CONNECTED) writes tensor -5, out of range (model has 10 tensors)"),
    (_set("subgraphs.0.operators.0.opcodeIndex", 7),
     "op 0 uses opcode index 7, but the model has only 1 operator codes"),
    (_set("subgraphs.0.outputs", np.array([10], np.int32)),
     "subgraph output 10 is out of range (model has 10 tensors)"),
    (_set("subgraphs.0.tensors.0.shape", np.array([1, -1], np.int32)),
     "tensor 0 'serving_default_dense_input:0' has a negative or dynamic dimension (1, -1); "
     "tinymcu needs static shapes"),
    (_set("subgraphs.0.tensors.0.shape", np.array([65536, 32768], np.int32)),
     "tensor 0 'serving_default_dense_input:0' has 2147483648 elements (shape (65536, 32768));"
     " at most 2^31-1 are supported"),
    (_set("operatorCodes.0.builtinCode", 250),
     "op 0 has unknown builtin operator code 250"),
    (_set("operatorCodes.0.builtinCode", 15),
     "op 0 is LSH_PROJECTION, which tinymcu does not support"),
    (_set("operatorCodes.0.builtinCode", 119),
     "op 0 is WHILE, which calls other subgraphs; tinymcu runs single-subgraph models only"),
    (_set("subgraphs.0.tensors.7.shape", np.array([1, 17], np.int32)),
     "op 0 (FULLY_CONNECTED): output shape (1, 17) should hold 1 rows of 16"),
    (_set("subgraphs.0.operators.0.builtinOptions.fusedActivationFunction", 4),
     "op 0 (FULLY_CONNECTED): fused activation TANH is not supported"),
    (_set("subgraphs.0.tensors.1.type", 5),
     "tensor 1 'sequential/dense_2/BiasAdd/ReadVariableOp' has type STRING, which tinymcu "
     "does not support"),
    (_set("subgraphs", []), "model has no subgraph"),
])
def test_bad_model_fails_with_one_line(edit, expected: str) -> None:
    assert load_error(edited(HW, edit)) == expected


def test_bad_constant_data_and_quantization() -> None:
    def short_bias(model) -> None:
        model.buffers[model.subgraphs[0].tensors[1].buffer].data = np.zeros(3, np.uint8)

    assert "has 3 bytes of data, expected 4 for shape (1,) int32" in load_error(
        edited(HW, short_bias))

    def mismatched_zero_points(model) -> None:
        model.subgraphs[0].tensors[0].quantization.zeroPoint = np.array([0, 1], np.int64)

    assert "has 1 scales but 2 zero points" in load_error(edited(HW, mismatched_zero_points))

    def nan_scale(model) -> None:
        model.subgraphs[0].tensors[0].quantization.scale = np.array([np.nan], np.float32)

    assert "non-finite quantization scale" in load_error(edited(HW, nan_scale))

    def zero_point_out_of_int8_range(model) -> None:
        model.subgraphs[0].tensors[0].quantization.zeroPoint = np.array([200], np.int64)

    assert "zero point outside the int8 range" in load_error(
        edited(HW, zero_point_out_of_int8_range))

    def per_channel_activation(model) -> None:
        t = model.subgraphs[0].tensors[7]  # the first layer's (1, 16) output
        t.quantization.scale = np.ones(16, np.float32)
        t.quantization.zeroPoint = np.zeros(16, np.int64)
        t.quantization.quantizedDimension = 1

    assert "is quantized per channel; TFLite activations are per tensor" in load_error(
        edited(HW, per_channel_activation))

    def per_channel_on_wrong_axis(model) -> None:
        t = next(t for t in model.subgraphs[0].tensors if t.shape.tolist() == [16, 16])
        t.quantization.scale = np.ones(16, np.float32)
        t.quantization.zeroPoint = np.zeros(16, np.int64)
        t.quantization.quantizedDimension = 5

    assert "16 per-channel scales but quantized dimension 5" in load_error(
        edited(HW, per_channel_on_wrong_axis))


def test_dataflow_order_and_float_activations_are_checked() -> None:
    def swap_ops(model) -> None:
        ops = model.subgraphs[0].operators
        ops[0], ops[1] = ops[1], ops[0]

    assert load_error(edited(HW, swap_ops)) == (
        "op 0 (FULLY_CONNECTED) reads tensor 7 before any op writes it")

    def float_activations(model) -> None:
        for t in model.subgraphs[0].tensors:
            if model.buffers[t.buffer].data is None:
                t.type = 0

    assert load_error(edited(HW, float_activations)) == (
        "float model; tinymcu needs an int8-quantized model")

    def int16_activations(model) -> None:
        for t in model.subgraphs[0].tensors:
            if model.buffers[t.buffer].data is None:
                t.type = 7

    assert load_error(edited(HW, int16_activations)) == (
        "model has no int8 activations (int16); tinymcu needs an int8-quantized model")

    assert load_error(edited(HW, _set("subgraphs.0.tensors.7.type", 0))) == (
        "op 0 (FULLY_CONNECTED) computes in float32 (tensor 7 'sequential/dense/MatMul;"
        "sequential/dense/Relu;sequential/...'); tinymcu needs an int8-quantized model")


def test_two_gigaelement_tensor_fails_fast_without_allocating() -> None:
    data = edited("kws_ref_model.tflite",
                  _set("subgraphs.0.tensors.0.shape", np.array([1, 65536, 32768, 1], np.int32)))
    tracemalloc.start()
    try:
        message = load_error(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "2147483648 elements" in message and peak < 16 * len(data) + (4 << 20)


def test_unused_extra_subgraph_is_ignored() -> None:
    def add_subgraph(model) -> None:
        model.subgraphs.append(unpack(HW).subgraphs[0])

    assert load_tflite(edited(HW, add_subgraph)).ops == load_tflite(DATA / HW).ops


def test_buffers_stored_after_the_flatbuffer_are_read() -> None:
    """Models written with buffer offset/size (TFLite's >2 GB layout) keep data outside."""
    model = unpack("kws_ref_model.tflite")
    blobs = []
    for b in model.buffers:
        if b.data is not None and len(b.data):
            blobs.append((b, bytes(b.data)))
            b.data, b.offset, b.size = None, 1 << 40, len(blobs[-1][1])  # placeholder
    base = len(pack(model))
    tail = bytearray()
    for b, blob in blobs:
        tail += bytes(-(base + len(tail)) % 16)
        b.offset = base + len(tail)
        tail += blob
    data = pack(model)
    assert len(data) == base
    g = load_tflite(data + bytes(tail))
    reference = load_tflite(DATA / "kws_ref_model.tflite")
    for t, ref in zip(g.tensors, reference.tensors):
        assert (t.data is None) == (ref.data is None)
        if t.is_const:
            np.testing.assert_array_equal(t.data, ref.data)
    assert "beyond the end of the file" in load_error(data + bytes(tail)[:len(tail) // 2])


@pytest.mark.parametrize("data, expected", [
    (b"", "not a .tflite model: only 0 bytes"),
    (b"\x00" * 7, "not a .tflite model: only 7 bytes"),
    (b"GIF89a\x01\x00\x01\x00" + b"\x00" * 64,
     "not a .tflite model: file identifier is b'9a\\x01\\x00', expected b'TFL3'"),
])
def test_non_tflite_bytes(data: bytes, expected: str) -> None:
    assert load_error(data) == expected


def test_truncated_and_random_bytes_fail_cleanly() -> None:
    original = model_bytes("vww_96_int8.tflite")
    for cut in (8, 100, 1000, len(original) // 2, len(original) - 1):
        assert load_error(original[:cut])
    rng = np.random.default_rng(1)
    for _ in range(20):
        random = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
        assert load_error(random[:4] + b"TFL3" + random[8:])


def test_unreadable_paths(tmp_path: Path) -> None:
    assert load_error_path(tmp_path / "missing.tflite") == (
        f"model file not found: {tmp_path / 'missing.tflite'}")
    assert load_error_path(tmp_path) == f"model path is not a file: {tmp_path}"


def load_error_path(path: Path) -> str:
    with pytest.raises(TinymcuError) as info:
        load_tflite(path)
    return str(info.value)


def test_reader_imports_neither_tensorflow_nor_torch() -> None:
    code = ("import sys; from tinymcu.mcu_runtime.tflite_reader import load_tflite; "
            f"g = load_tflite({str(DATA / 'vww_96_int8.tflite')!r}); assert len(g.ops) == 31; "
            "assert 'tensorflow' not in sys.modules and 'torch' not in sys.modules, "
            "sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'torch'))")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---- the flatbuffer primitives ------------------------------------------------------------
def _aliasing_flatbuffer(n_tables: int, n_ints: int) -> bytes:
    """A root table whose vector holds ``n_tables`` offsets to ONE table, whose int vector
    holds ``n_ints`` ints: tiny on disk, n_tables × n_ints ints if read naively."""
    import struct

    vt, root, vec = 8, 16, 24  # uoffsets point forward, so: root, vector, table, ints
    inner = vec + 4 + 4 * n_tables
    ints = inner + 8
    buf = bytearray(struct.pack("<I4sHHHxx", root, b"TFL3", 6, 8, 4))
    buf += struct.pack("<iII", root - vt, vec - (root + 4), n_tables)
    buf += b"".join(struct.pack("<I", inner - (vec + 4 + 4 * i)) for i in range(n_tables))
    buf += struct.pack("<iII", inner - vt, ints - (inner + 4), n_ints) + bytes(4 * n_ints)
    return bytes(buf)


def test_flatbuffer_read_budget_stops_aliased_vectors() -> None:
    from tinymcu.mcu_runtime.flatbuf import FlatBuffer, MalformedFlatbuffer

    small = FlatBuffer(_aliasing_flatbuffer(4, 8)).root().tables(0)
    assert [t.array(0, "int32").tolist() for t in small] == [[0] * 8] * 4
    data = _aliasing_flatbuffer(2000, 2000)  # 24 KB on disk, 16 MB if read naively
    with pytest.raises(MalformedFlatbuffer, match="read budget exhausted"):
        for t in FlatBuffer(data).root().tables(0):
            t.array(0, "int32")


def test_flatbuffer_offsets_are_bounds_checked() -> None:
    from tinymcu.mcu_runtime.flatbuf import FlatBuffer, MalformedFlatbuffer

    data = bytearray(_aliasing_flatbuffer(1, 4))
    data[0:4] = (len(data) + 100).to_bytes(4, "little")
    with pytest.raises(MalformedFlatbuffer, match="lies outside the file"):
        FlatBuffer(data).root()
    huge = bytearray(_aliasing_flatbuffer(1, 4))
    huge[40:44] = (2**32 - 1).to_bytes(4, "little")  # the int vector's count
    with pytest.raises(MalformedFlatbuffer, match="vector of 4294967295 elements"):
        FlatBuffer(huge).root().tables(0)[0].array(0, "int32")
