"""The broad route: litert-torch (torch.export → TFLite) with full-int8 PT2E quantization.

It takes the torch ops the MCU builder does not lower (attention, LSTM, LayerNorm, ...). Out of
the box litert-torch's PT2E quantizer annotates only conv/linear/add/mul/pool/cat, so
everything else (tanh, sigmoid after an unquantized op, a residual ADD of two such tensors)
stays float32 and an MCU runtime cannot run it. :class:`FullInt8Quantizer` annotates every
remaining float op after the stock patterns: fresh per-tensor int8 activations in and out,
shared parameters for data-movement ops (reshape, permute, slice: TFLite keeps their scale),
and TFLite's fixed output parameters for LOGISTIC (1/256, -128) and TANH (1/128, 0). Weights
stay per-channel symmetric int8. Inputs and outputs are made channels-last, so the .tflite is
NHWC like the MCU route's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinymcu.errors import TinymcuError

#: calibration samples run through the prepared model (one forward each)
MAX_CALIB = 64


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("litert_torch") is not None


def _full_int8_quantizer() -> Any:
    import torch
    from litert_torch.quantize import pt2e_quantizer as pq
    from litert_torch.quantize import pt2e_quantizer_utils as pu
    from torchao.quantization.pt2e.quantizer import (
        FixedQParamsQuantizationSpec,
        QuantizationAnnotation,
        SharedQuantizationSpec,
    )

    fixed = {torch.ops.aten.sigmoid.default: (1.0 / 256.0, -128),
             torch.ops.aten.tanh.default: (1.0 / 128.0, 0)}

    def is_float_tensor(n: Any) -> bool:
        val = n.meta.get("val") if hasattr(n, "meta") else None
        return isinstance(val, torch.Tensor) and val.is_floating_point()

    def annotated_output(n: Any) -> bool:
        a = n.meta.get("quantization_annotation")
        return a is not None and a.output_qspec is not None

    class FullInt8Quantizer(pq.PT2EQuantizer):
        def annotate(self, model: Any) -> Any:
            model = super().annotate(model)
            cfg = self.global_config
            act_in, act_out = pu.get_input_act_qspec(cfg), pu.get_output_act_qspec(cfg)
            for n in model.graph.nodes:
                if n.op != "call_function" or not is_float_tensor(n):
                    continue
                ann = n.meta.get("quantization_annotation")
                if ann is not None and ann._annotated and ann.output_qspec is not None:
                    continue
                args = [a for a in _flat(n.args) if isinstance(a, torch.fx.Node)
                        and is_float_tensor(a)]
                if ann is not None and ann._annotated:  # inputs done (add+relu): output only
                    ann.output_qspec = act_out
                    continue
                src = args[0] if args else None
                if pu._is_share_obs_or_fq_op(n.target) and src is not None \
                        and annotated_output(src):
                    share = SharedQuantizationSpec(src)
                    n.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={src: share}, output_qspec=share, _annotated=True)
                    continue
                if n.target in fixed:
                    scale, zp = fixed[n.target]
                    out = FixedQParamsQuantizationSpec(
                        dtype=torch.int8, scale=scale, zero_point=zp, quant_min=-128,
                        quant_max=127, qscheme=torch.per_tensor_affine)
                else:
                    out = act_out
                n.meta["quantization_annotation"] = QuantizationAnnotation(
                    input_qspec_map={a: act_in for a in args}, output_qspec=out,
                    _annotated=True)
            return model

    return FullInt8Quantizer().set_global(
        pq.get_symmetric_quantization_config(is_per_channel=True))


def _flat(args: Any) -> list[Any]:
    out: list[Any] = []
    for a in args:
        out.extend(_flat(a) if isinstance(a, (list, tuple)) else [a])
    return out


def convert(module: Any, calib: np.ndarray, out_path: Path) -> None:
    """Convert a torch ``nn.Module`` (not TorchScript) to a full-int8 .tflite at ``out_path``.

    ``calib`` holds NCHW (or (N, C, L), (N, F)) float samples; the .tflite takes them
    channels-last. Errors from torch.export / litert are one line.
    """
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        raise TinymcuError("the litert route needs the model's Python module (a "
                           "package.module:factory spec or tinymcu prune's output), not "
                           "TorchScript")
    import litert_torch
    from litert_torch.quantize import quant_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    module = _split_layer_norms(module)
    x = torch.from_numpy(np.ascontiguousarray(calib[:1], dtype=np.float32))
    with torch.no_grad():
        out_rank = module(x).dim()
    channel_last = x.dim() >= 3
    model = litert_torch.to_channel_last_io(
        module, args=[0] if channel_last else [],
        outputs=[0] if out_rank >= 3 else []) if channel_last or out_rank >= 3 else module
    x_cl = _channel_last(x) if channel_last else x
    try:
        quantizer = _full_int8_quantizer()
        graph = torch.export.export(model.eval(), (x_cl,)).module()
        prepared = prepare_pt2e(graph, quantizer)
        with torch.no_grad():
            for s in calib[:MAX_CALIB]:
                t = torch.from_numpy(np.ascontiguousarray(s[None], dtype=np.float32))
                prepared(_channel_last(t) if channel_last else t)
        quantized = convert_pt2e(prepared, fold_quantize=False)
        edge = litert_torch.convert(quantized, (x_cl,),
                                    quant_config=quant_config.QuantConfig(
                                        pt2e_quantizer=quantizer))
        edge.export(str(out_path))
    except TinymcuError:
        raise
    except Exception as e:  # torch.export and the MLIR lowering raise many types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TinymcuError(f"litert-torch conversion failed: {type(e).__name__}: "
                           f"{first[:300]}") from None


def _split_layer_norms(module: Any) -> Any:
    """A copy of ``module`` whose ``nn.LayerNorm`` layers compute with mean / sub / mul /
    rsqrt (the same arithmetic): litert lowers the fused op to a float32 island that no
    quantization annotation reaches, while its parts each get int8 parameters."""
    import copy

    import torch

    class LayerNormParts(torch.nn.Module):
        def __init__(self, ln: torch.nn.LayerNorm) -> None:
            super().__init__()
            self.dims = tuple(range(-len(ln.normalized_shape), 0))
            self.eps = float(ln.eps)
            self.weight, self.bias = ln.weight, ln.bias

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            d = x - x.mean(self.dims, keepdim=True)
            y = d * torch.rsqrt((d * d).mean(self.dims, keepdim=True) + self.eps)
            if self.weight is not None:
                y = y * self.weight
            return y + self.bias if self.bias is not None else y

    if not any(isinstance(m, torch.nn.LayerNorm) for m in module.modules()):
        return module
    out = copy.deepcopy(module)
    for name, m in list(out.named_modules()):
        if isinstance(m, torch.nn.LayerNorm):
            parent_name, _, child = name.rpartition(".")
            setattr(out.get_submodule(parent_name) if parent_name else out, child,
                    LayerNormParts(m))
    return out


def _channel_last(t: Any) -> Any:
    return t.permute(0, *range(2, t.dim()), 1)
