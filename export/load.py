"""Turn the user's MODEL and --calib arguments into a model source and NCHW float32 arrays.

MODEL may be an ``.onnx`` file, a TorchScript file, a zoo name (``demo_cnn``) or a
``package.module:factory`` spec (optionally with a state_dict file). Everything the user can
get wrong raises :class:`~tinymcu.errors.TinymcuError` with one line naming the problem, so
the CLI can exit 2 without a traceback.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinymcu.errors import TinymcuError

#: samples used for calibration when the data set is larger (TFLite's own guidance: ~100-500)
MAX_CALIB_SAMPLES = 200


@dataclass
class ModelSource:
    """What to export: exactly one of ``onnx_path`` (an ONNX file) or ``module`` (torch)."""

    name: str
    onnx_path: Path | None = None
    module: Any = None
    default_input_shape: tuple[int, ...] | None = None
    #: the model came out of ``tinymcu prune``: --calib is read with the pruner's preprocessing
    from_prune: bool = False


@dataclass
class Dataset:
    """Calibration and evaluation arrays, NCHW float32 (labels optional)."""

    name: str
    calib: np.ndarray
    eval_x: np.ndarray
    eval_y: np.ndarray | None


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,1,8,8"`` → ``(1, 1, 8, 8)``; the batch must be 1 (MCU inference is one sample)."""
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        raise TinymcuError(f"--input-shape {text!r}: expected comma-separated integers, "
                           "e.g. 1,1,8,8") from None
    if not shape or any(d <= 0 for d in shape) or shape[0] != 1:
        raise TinymcuError(f"--input-shape {text!r}: dimensions must be positive and batch 1")
    return shape


def load_model(spec: str, state_dict: str | Path | None = None) -> ModelSource:
    """Resolve MODEL: an .onnx path, a TorchScript file, ``tinymcu prune``'s output directory or
    its ``model.json``, a zoo name or ``pkg.module:factory``."""
    path = Path(spec)
    if path.is_dir() or path.suffix.lower() == ".json":
        return _load_prune_output(path, state_dict)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise TinymcuError(f"model file not found: {spec}")
        if state_dict is not None:
            raise TinymcuError("--state-dict applies to torch models, not to an .onnx file")
        return ModelSource(name=path.stem, onnx_path=path)
    if path.suffix.lower() in {".pt", ".pth", ".ts", ".torchscript"} or path.is_file():
        if not path.is_file():
            raise TinymcuError(f"model file not found: {spec}")
        module = _load_torchscript(path)
        # the traced module keeps its Python class name: "DemoCNN" says more than "model"
        name = getattr(module, "original_name", None) or path.stem
        default_shape = None
    else:
        from tinymcu.prune.modelspec import build_model, factory_path
        from tinymcu.prune.zoo import INPUT_SHAPES

        module, name = build_model(spec), factory_path(spec).rsplit(":", 1)[1]
        default_shape = INPUT_SHAPES.get(name) if ":" not in spec else None
    if state_dict is not None:
        _apply_state_dict(module, Path(state_dict))
    module.eval()
    return ModelSource(name=name, module=module, default_input_shape=default_shape)


def _load_prune_output(path: Path, state_dict: str | Path | None) -> ModelSource:
    """``tinymcu prune --out DIR`` writes ``DIR/model.json``: the factory spec and its keyword
    arguments (channel width included), the state_dict file and the input shape. Rebuilding
    from the factory (not the TorchScript copy) keeps the module's Python ops for ONNX export."""
    import importlib

    spec_path = path / "model.json" if path.is_dir() else path
    if not spec_path.is_file():
        what = "directory has no model.json (is it tinymcu prune's --out?)" if path.is_dir() \
            else "not found"
        raise TinymcuError(f"{path}: {what}")
    try:
        spec = json.loads(spec_path.read_text())
        factory, kwargs = str(spec["factory"]), dict(spec.get("kwargs") or {})
    except (ValueError, KeyError, TypeError) as e:
        raise TinymcuError(f"{spec_path}: not a tinymcu prune model.json ({e})") from None
    module_name, _, attr = factory.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
        module = fn(**kwargs)
    except (ImportError, AttributeError, TypeError, ValueError) as e:
        raise TinymcuError(f"{spec_path}: cannot build {factory}(**{kwargs}): {e}") from None
    weights = Path(state_dict) if state_dict is not None else \
        spec_path.parent / str(spec.get("state_dict") or "model_state.pt")
    _apply_state_dict(module, weights)
    module.eval()
    shape = spec.get("input_shape")
    return ModelSource(name=attr, module=module, from_prune=True,
                       default_input_shape=tuple(int(v) for v in shape) if shape else None)


def _load_torchscript(path: Path) -> Any:
    import torch

    if not zipfile.is_zipfile(path):
        raise TinymcuError(f"{path}: not a TorchScript archive (save with torch.jit.save, or "
                           "pass a package.module:factory spec plus --state-dict)")
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as e:
        raise TinymcuError(f"{path}: cannot load as TorchScript: "
                           f"{str(e).splitlines()[0]}") from None


def _apply_state_dict(module: Any, path: Path) -> None:
    import torch

    if not path.is_file():
        raise TinymcuError(f"state dict not found: {path}")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad pickle/zip
        raise TinymcuError(f"{path}: cannot read state dict: {str(e).splitlines()[0]}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError) as e:
        raise TinymcuError(f"{path}: state dict does not match the model: "
                           f"{str(e).splitlines()[0]}") from None


def load_data(spec: str, max_calib: int = MAX_CALIB_SAMPLES, *,
              pruner_preprocessing: bool = False) -> Dataset:
    """Resolve --calib: ``digits``, an .npy/.npz file of NCHW float samples, or (as
    ``tinymcu prune --data`` takes) an image folder.

    With ``pruner_preprocessing`` (a model from ``tinymcu prune``) an .npz is read exactly as
    the pruner read it for training (uint8 → [0, 1], NHWC → NCHW), so the handoff command
    ``tinymcu export OUT --calib DATA`` calibrates on what the model was trained on.

    For ``digits`` the calibration samples come from the shared train split and evaluation
    uses the test split, so int8 agreement is measured on images calibration never saw. For
    a file, the first ``max_calib`` samples calibrate and every sample is evaluated; an .npz
    may carry labels under ``y``.
    """
    if spec == "digits":
        from tinymcu.export.data import digits_split

        x_train, _, x_test, y_test = digits_split()
        return Dataset("digits", x_train[:max_calib], x_test, y_test)
    path = Path(spec)
    if path.is_dir() or (pruner_preprocessing and path.suffix == ".npz" and path.is_file()):
        from tinymcu.prune.data import load as load_training_data

        ds = load_training_data(str(path))
        return Dataset(path.name, ds.x[:max_calib], ds.x, ds.y)
    if not path.is_file():
        raise TinymcuError(f"calibration data not found: {spec}")
    x, y = _read_array_file(path)
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise TinymcuError(f"{path}: calibration data must be numeric, got dtype {x.dtype}")
    if x.ndim < 2 or len(x) == 0:
        raise TinymcuError(f"{path}: calibration data must be (N, C, H, W) or (N, F) with N > 0, "
                           f"got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise TinymcuError(f"{path}: calibration data contains NaN or Inf")
    x = x.astype(np.float32)
    if y is not None and len(y) != len(x):
        raise TinymcuError(f"{path}: {len(y)} labels for {len(x)} samples")
    return Dataset(path.stem, x[:max_calib], x, y)


def _read_array_file(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise TinymcuError(f"{path}: not a readable .npy/.npz file ({e})") from None
    if isinstance(loaded, np.ndarray):
        return loaded, None
    with loaded:
        keys = list(loaded.keys())
        if not keys:
            raise TinymcuError(f"{path}: empty .npz")
        x_key = "x" if "x" in keys else keys[0]
        return loaded[x_key], (loaded["y"] if "y" in keys else None)


def check_data_shape(data: Dataset, input_shape: tuple[int, ...]) -> None:
    """Calibration samples must match the model input (batch excluded)."""
    want = tuple(input_shape[1:])
    got = tuple(data.calib.shape[1:])
    if got != want:
        raise TinymcuError(f"calibration samples are {_dims(got)} ({data.name}), the model "
                           f"takes {_dims(want)} (NCHW, batch excluded)")


def _dims(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))
