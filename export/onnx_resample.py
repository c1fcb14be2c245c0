"""The mcu builder's resampling ops: ConvTranspose, Resize (Upsample) and Slice on activations.

Each lowering prefers ops every MCU runtime already runs, and is exact in float, so int8
loses nothing beyond the usual requantization:

* nearest upsampling by an integer factor is a copy: ``CONCATENATION`` of the tensor with
  itself along the channel axis, then a ``RESHAPE`` (an NHWC row ``w`` repeated ``f`` times
  is the same bytes as ``f`` adjacent pixels) — no RESIZE op, no rounding at all;
* nearest downsampling that keeps every ``f``-th pixel and a spatial Slice with a step are a
  1×1 ``MAX_POOL_2D`` with stride ``f`` (a 1-element window returns its input unchanged);
* bilinear downsampling by exactly 2 with half-pixel centres (PyTorch's
  ``align_corners=False``) samples at ``2i + 0.5``: the mean of a 2×2 window,
  ``AVERAGE_POOL_2D``;
* other bilinear resizes become TFLite ``RESIZE_BILINEAR`` with the matching
  ``align_corners`` / ``half_pixel_centers`` flags; other nearest resizes with ONNX
  ``asymmetric`` + ``floor`` become ``RESIZE_NEAREST_NEIGHBOR``;
* ConvTranspose becomes ``TRANSPOSE_CONV`` (SAME when PyTorch's padding is TFLite's SAME,
  VALID otherwise, then a ``SLICE`` crop when padding trims the full output);
* a Slice with step 1 becomes ``SLICE``.

:meth:`ResampleOps.resample_lowering` names, per node, the TFLite ops the handler will emit,
so the fail-fast op check (``route_check``) can say before converting which of them our
runtime lacks — a TRANSPOSE_CONV is emitted in the .tflite whether or not our runtime runs it
yet; the check is what refuses it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.export.onnx_host import BuilderHost

_INT64_MAX = (1 << 63) - 1


def _attr_str(a: dict[str, Any], key: str, default: str) -> str:
    v = a.get(key, default)
    return v.decode() if isinstance(v, bytes) else str(v)


def nearest_index_map(in_size: int, out_size: int, scale: float, mode: str,
                      nearest: str) -> np.ndarray:
    """ONNX Resize (nearest) source index of every output position along one axis."""
    o = np.arange(out_size, dtype=np.float64)
    if mode == "align_corners":
        x = o * ((in_size - 1) / (out_size - 1)) if out_size > 1 else np.zeros_like(o)
    elif mode == "asymmetric":
        x = o / scale
    elif mode in ("half_pixel", "pytorch_half_pixel"):
        x = (o + 0.5) / scale - 0.5
        if mode == "pytorch_half_pixel" and out_size == 1:
            x = np.zeros_like(o)
    else:
        raise TinymcuError(f"Resize coordinate_transformation_mode {mode!r} is not supported")
    if nearest == "floor":
        idx = np.floor(x)
    elif nearest == "ceil":
        idx = np.ceil(x)
    elif nearest == "round_prefer_ceil":
        idx = np.floor(x + 0.5)
    else:  # round_prefer_floor (the ONNX default)
        idx = np.ceil(x - 0.5)
    return np.clip(idx, 0, in_size - 1).astype(np.int64)


def classify_axis(idx: np.ndarray, in_size: int) -> tuple[str, int]:
    """("same", 1), ("repeat", f), ("stride", f) or ("other", 0) for one axis's index map."""
    out = len(idx)
    o = np.arange(out)
    if out == in_size and np.array_equal(idx, o):
        return "same", 1
    if out % in_size == 0 and np.array_equal(idx, o // (out // in_size)):
        return "repeat", out // in_size
    if out > 1 and in_size % out == 0:
        f = in_size // out
        if np.array_equal(idx, o * f):
            return "stride", f
    return "other", 0


def transpose_conv_padding(in_hw: tuple[int, int], k: tuple[int, int], s: tuple[int, int],
                           pads: tuple[int, int, int, int], out_pad: tuple[int, int]
                           ) -> tuple[str, tuple[int, int], tuple[int, int, int, int] | None]:
    """ONNX ConvTranspose geometry → (TFLite padding, TFLite output (H, W), crop or None).

    The full output is ``(in - 1)·s + k`` rows; ONNX drops ``pads`` from its two ends and adds
    ``output_padding`` rows at the end (which no input reaches). TFLite SAME produces
    ``in·s`` rows and drops ``(k - s) // 2`` from the front: when those agree the op is SAME.
    Otherwise VALID, whose output may also run up to ``s - 1`` rows past the full one (rows
    no input reaches, like output_padding's), then a crop ``(top, left, height, width)``.
    """
    out, tf_out, same = [], [], True
    for i in range(2):
        full = (in_hw[i] - 1) * s[i] + k[i]
        o = full - pads[i] - pads[i + 2] + out_pad[i]
        need = pads[i] + o
        if o <= 0 or need > full + s[i] - 1:
            raise TinymcuError(f"ConvTranspose pads {pads} / output_padding {out_pad} cannot be "
                               "expressed as TRANSPOSE_CONV + crop")
        out.append(o)
        tf_out.append(max(full, need))
        same = same and o == in_hw[i] * s[i] and k[i] >= s[i] and pads[i] == (k[i] - s[i]) // 2
    if same and (any(pads) or any(out_pad)):
        return "SAME", (out[0], out[1]), None
    crop = None if not pads[0] and not pads[1] and out == tf_out else \
        (pads[0], pads[1], out[0], out[1])
    return "VALID", (tf_out[0], tf_out[1]), crop


class ResampleOps(BuilderHost):
    """Handlers mixed into the ONNX → TF builder (``onnx_to_tf._Builder``)."""

    # ---- planning (shapes only, shared by the op check and the handlers) -------------
    def resample_lowering(self, node: Any) -> tuple[str, ...] | None:
        """TFLite ops emitted for a Resize / Slice / ConvTranspose node, None for others."""
        try:
            if node.op_type == "Resize":
                return tuple(k for k, _ in self._resize_plan(node))
            if node.op_type == "Slice":
                return self._slice_plan(node)[2]
            if node.op_type == "ConvTranspose":
                return ("TRANSPOSE_CONV",) if self._tconv_plan(node)[2] is None else (
                    "TRANSPOSE_CONV", "SLICE")
        except (TinymcuError, KeyError):
            return (f"?{node.op_type}",)  # the handler raises the precise error
        return None

    def _shape(self, name: str) -> tuple[int, ...]:
        if name not in self.shapes:
            raise TinymcuError(f"tensor {name!r} has no static shape")
        return self.shapes[name]

    def _resize_plan(self, node: Any) -> list[tuple[str, Any]]:
        """[(TFLite op, argument)]: the steps that realise one Resize in NHWC."""
        from onnx import helper

        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        mode = _attr_str(a, "mode", "nearest")
        coord = _attr_str(a, "coordinate_transformation_mode", "half_pixel")
        nearest = _attr_str(a, "nearest_mode", "round_prefer_floor")
        ins, outs = self._shape(node.input[0]), self._shape(node.output[0])
        if len(ins) not in (3, 4) or ins[:2] != outs[:2]:
            raise TinymcuError(f"ONNX Resize node {node.name!r}: only spatial resizing of "
                               f"(N, C, H, W) or (N, C, L) is supported ({ins} → {outs})")
        in_hw = (1, ins[2]) if len(ins) == 3 else (ins[2], ins[3])
        out_hw = (1, outs[2]) if len(outs) == 3 else (outs[2], outs[3])
        if in_hw == out_hw:
            return []
        if mode == "nearest":
            kinds = [classify_axis(nearest_index_map(in_hw[i], out_hw[i],
                                                     out_hw[i] / in_hw[i], coord, nearest),
                                   in_hw[i]) for i in range(2)]
            if all(k != "other" for k, _ in kinds):
                steps: list[tuple[str, Any]] = []
                if any(k == "stride" for k, _ in kinds):
                    steps.append(("MAX_POOL_2D", tuple(f if k == "stride" else 1
                                                       for k, f in kinds)))
                for axis, (k, f) in enumerate(kinds):
                    if k == "repeat":
                        steps += [("CONCATENATION", (axis, f)), ("RESHAPE", None)]
                return steps
            if coord == "asymmetric" and nearest == "floor":
                return [("RESIZE_NEAREST_NEIGHBOR", (False, False))]
            raise TinymcuError(f"ONNX Resize node {node.name!r}: nearest resize with "
                               f"{coord}/{nearest} from {in_hw} to {out_hw} is not supported")
        if mode == "linear":
            half = coord in ("half_pixel", "pytorch_half_pixel")
            if half and all(in_hw[i] == 2 * out_hw[i] or in_hw[i] == out_hw[i] == 1
                            for i in range(2)):
                return [("AVERAGE_POOL_2D", tuple(in_hw[i] // out_hw[i] for i in range(2)))]
            if coord not in ("half_pixel", "pytorch_half_pixel", "align_corners",
                             "asymmetric"):
                raise TinymcuError(f"ONNX Resize node {node.name!r}: bilinear with {coord} "
                                   "is not supported")
            return [("RESIZE_BILINEAR", (coord == "align_corners", half))]
        raise TinymcuError(f"ONNX Resize node {node.name!r}: mode {mode!r} is not supported "
                           "(nearest and linear are)")

    def _slice_plan(self, node: Any) -> tuple[list[int], list[int], tuple[str, ...],
                                              tuple[int, int]]:
        """(begin, size) in the NHWC tensor, the TFLite ops, and the spatial (H, W) steps."""
        ins = self._shape(node.input[0])
        rank = len(ins)
        starts, ends = (self.consts[node.input[i]] for i in (1, 2))
        axes = self.consts[node.input[3]] if len(node.input) > 3 and node.input[3] \
            else np.arange(len(starts))
        steps = self.consts[node.input[4]] if len(node.input) > 4 and node.input[4] \
            else np.ones(len(starts), np.int64)
        if rank == 4:
            tf_axis, tf_shape = {0: 0, 1: 3, 2: 1, 3: 2}, [1, ins[2], ins[3], ins[1]]
        elif rank == 3:
            tf_axis, tf_shape = {0: 0, 1: 3, 2: 2}, [1, 1, ins[2], ins[1]]
        elif rank == 2:
            tf_axis, tf_shape = {0: 0, 1: 1}, [1, ins[1]]
        else:
            raise TinymcuError(f"ONNX Slice node {node.name!r}: rank-{rank} input")
        begin, size = [0] * len(tf_shape), list(tf_shape)
        hw_step = [1, 1]
        for st, en, ax, sp in zip(starts, ends, axes, steps):
            ax, sp = int(ax) % rank, int(sp)
            n = ins[ax]
            if sp < 1:
                raise TinymcuError(f"ONNX Slice node {node.name!r}: negative steps are not "
                                   "supported")
            b, e, _ = slice(int(max(min(int(st), _INT64_MAX), -_INT64_MAX)),
                            int(max(min(int(en), _INT64_MAX), -_INT64_MAX))).indices(n)
            t = tf_axis[ax]
            if ax == 0:
                if (b, e) != (0, 1):
                    raise TinymcuError(f"ONNX Slice node {node.name!r}: slicing the batch axis")
                continue
            begin[t], size[t] = b, max(e - b, 0)
            if sp > 1:
                if rank == 2 or t == 3:
                    raise TinymcuError(f"ONNX Slice node {node.name!r}: a step over channels "
                                       "or features is not supported")
                hw_step[t - 1] = sp
        if min(size) <= 0:
            raise TinymcuError(f"ONNX Slice node {node.name!r}: empty result")
        kinds: tuple[str, ...] = ()
        if begin != [0] * len(begin) or size != tf_shape:
            kinds += ("SLICE",)
        if hw_step != [1, 1]:
            kinds += ("MAX_POOL_2D",)
        return begin, size, kinds, (hw_step[0], hw_step[1])

    def _tconv_plan(self, node: Any) -> tuple[str, tuple[int, int],
                                              tuple[int, int, int, int] | None]:
        from onnx import helper

        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        ins = self._shape(node.input[0])
        w = self.consts[node.input[1]]
        if a.get("group", 1) != 1:
            raise TinymcuError(f"ONNX ConvTranspose node {node.name!r}: grouped transposed "
                               "convolution is not supported")
        if any(int(d) != 1 for d in a.get("dilations", [])):
            raise TinymcuError(f"ONNX ConvTranspose node {node.name!r}: dilation is not "
                               "supported by TFLite TRANSPOSE_CONV")
        if _attr_str(a, "auto_pad", "NOTSET") != "NOTSET" or "output_shape" in a:
            raise TinymcuError(f"ONNX ConvTranspose node {node.name!r}: auto_pad/output_shape "
                               "are not supported; use pads")
        one_d = w.ndim == 3
        k = (1, int(w.shape[2])) if one_d else (int(w.shape[2]), int(w.shape[3]))
        in_hw = (1, ins[2]) if one_d else (ins[2], ins[3])

        def hw(v: list[int], fill: int) -> tuple[int, int]:
            return (fill, int(v[0])) if one_d else (int(v[0]), int(v[1]))

        s = hw(a.get("strides", [1, 1]), 1)
        p = [int(v) for v in a.get("pads", [0] * (2 if one_d else 4))]
        pads = (0, p[0], 0, p[1]) if one_d else (p[0], p[1], p[2], p[3])
        out_pad = hw(a.get("output_padding", [0, 0]), 0)
        return transpose_conv_padding(in_hw, k, s, pads, out_pad)

    # ---- handlers -------------------------------------------------------------------
    def _op_ConvTranspose(self, node: Any, env: Any) -> Any:
        import tensorflow as tf

        from tinymcu.export.onnx_to_tf import _Value

        x = self._in(env, node)
        w = self._need_const(node, 1).astype(np.float32)  # (Cin, Cout, kH, kW) or (Cin, Cout, k)
        if w.ndim == 3:
            w = w[:, :, None, :]
        b = self._const(node, 2)
        cout = w.shape[1]
        padding, tf_hw, crop = self._tconv_plan(node)
        s = self._tconv_strides(node)
        name = self._name(node)
        y = tf.nn.conv2d_transpose(x.tensor, tf.constant(w.transpose(2, 3, 1, 0)),
                                   output_shape=[1, *tf_hw, cout], strides=[1, *s, 1],
                                   padding=padding, name=name)
        if crop is not None:
            top, left, h, wd = crop
            y = tf.slice(y, [0, top, left, 0], [1, h, wd, cout])
        if b is not None:
            y = tf.nn.bias_add(y, tf.constant(b.astype(np.float32)))
        return _Value(y, x.rank)

    def _tconv_strides(self, node: Any) -> tuple[int, int]:
        from onnx import helper

        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        v = [int(t) for t in a.get("strides", [1, 1])]
        return (1, v[0]) if self.consts[node.input[1]].ndim == 3 else (v[0], v[1])

    def _op_Resize(self, node: Any, env: Any) -> Any:
        import tensorflow as tf

        from tinymcu.export.onnx_to_tf import _Value

        x = self._in(env, node)
        outs = self._shape(node.output[0])
        out_hw = [1, outs[2]] if len(outs) == 3 else [outs[2], outs[3]]
        t = x.tensor
        for kind, arg in self._resize_plan(node):
            if kind == "MAX_POOL_2D":
                t = tf.nn.max_pool2d(t, ksize=1, strides=[1, *arg, 1], padding="VALID")
            elif kind == "AVERAGE_POOL_2D":
                t = tf.nn.avg_pool2d(t, ksize=list(arg), strides=[1, *arg, 1], padding="VALID")
            elif kind == "CONCATENATION":
                axis, f = arg
                _, h, w, c = (int(v) for v in t.shape)
                if axis == 1:  # W: [x]*f over channels → each pixel repeated f times
                    t = tf.reshape(tf.concat([t] * f, axis=3), [1, h, w * f, c])
                else:  # H: [x]*f over W → each row repeated f times
                    t = tf.reshape(tf.concat([t] * f, axis=2), [1, h * f, w, c])
            elif kind == "RESIZE_BILINEAR":
                t = tf.compat.v1.image.resize_bilinear(t, out_hw, align_corners=arg[0],
                                                       half_pixel_centers=arg[1])
            elif kind == "RESIZE_NEAREST_NEIGHBOR":
                t = tf.compat.v1.image.resize_nearest_neighbor(t, out_hw, align_corners=arg[0],
                                                               half_pixel_centers=arg[1])
        return _Value(t, x.rank)

    def _op_Slice(self, node: Any, env: Any) -> Any:
        import tensorflow as tf

        from tinymcu.export.onnx_to_tf import _Value

        x = self._in(env, node)
        if x.flatten_hwc is not None:
            raise TinymcuError(f"ONNX Slice node {node.name!r}: slicing a flattened feature "
                               "map is not supported")
        begin, size, kinds, step = self._slice_plan(node)
        t = x.tensor
        if "SLICE" in kinds:
            t = tf.slice(t, begin, size)
        if "MAX_POOL_2D" in kinds:
            t = tf.nn.max_pool2d(t, ksize=1, strides=[1, *step, 1], padding="VALID")
        return _Value(t, x.rank)
