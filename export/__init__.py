"""PyTorch/ONNX → fully-int8 TFLite (NHWC) → C arrays for TFLM, checked end to end.

Entry point: :func:`tinymcu.export.pipeline.export_model`. Stages, one module each:
``load`` (model and data arguments), ``data`` (built-in digits and the shared split),
``to_onnx`` (torch → ONNX, onnxruntime parity), ``onnx_to_tf`` (the focused ONNX → TF graph
builder), ``quantize`` (TFLite converter, full int8), ``parity`` (float vs int8 outputs and
weights), ``tflm_check`` (TFLM vs reference kernels, smallest arena), ``c_arrays`` (Jinja2 C
output) and ``report``. Only ``data``, ``c_arrays`` and ``report`` import without torch/TF.
"""
