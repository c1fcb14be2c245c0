"""A benchmark script (``benchmarks/<folder>/run.py``) loaded as a module, so a test can call
its ``main([...])`` the way a user runs it (``--quick``) and read the table it writes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def load_benchmark(folder: str, name: str) -> ModuleType:
    """``benchmarks/<folder>/run.py`` as the module ``name`` (a name per test: a module
    loaded again under the same name would be replaced in ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / folder / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
