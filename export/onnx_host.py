"""What the ONNX → TF op mixins may use of the builder they are mixed into.

``onnx_to_tf._Builder`` is assembled from per-family mixins (resampling, sequences,
recurrent cells). Each mixin reads the builder's tables and calls its input helpers; declaring
them once here lets the type checker hold every mixin to what the builder really provides,
instead of each mixin guessing (or silencing the checker) on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tinymcu.export.onnx_to_tf import LayerWeights, _Value


class BuilderHost:
    """The builder's state and input helpers, as the mixins see them (set by ``_Builder``)."""

    graph: Any                          # the onnx GraphProto being converted
    shapes: dict[str, tuple[int, ...]]  # static shapes of the ONNX tensors that have one
    consts: dict[str, np.ndarray]       # initializers and folded constants
    consumers: dict[str, list[Any]]     # tensor name -> the nodes reading it
    skip: set[str]                      # outputs already folded (no TF op is emitted)
    layers: list[LayerWeights]          # weight tensors the emitted TF ops own

    if TYPE_CHECKING:
        # implemented by ``_Builder``; declared only for the checker (no runtime fallback)
        def _in(self, env: dict[str, _Value], node: Any, i: int = 0) -> _Value: ...

        def _const(self, node: Any, i: int) -> np.ndarray | None: ...

        def _need_const(self, node: Any, i: int) -> np.ndarray: ...

        def _name(self, node: Any) -> str: ...
