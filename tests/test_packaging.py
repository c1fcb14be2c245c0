"""The wheel installs one namespace, `tinymcu`, and ships its templates."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_has_only_the_tinymcu_namespace(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("tinymcu-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"tinymcu"}
    for required in ("tinymcu/cli.py", "tinymcu/export/__init__.py", "tinymcu/prune/zoo.py",
                     "tinymcu/mcu_runtime/ir.py", "tinymcu/mcu_runtime/kernels/base.py",
                     "tinymcu/mcu_runtime/templates/memory_plot.svg.j2",
                     "tinymcu/mcu_runtime/codegen/emitters.py", "tinymcu/mcu_runtime/c/tm_conv.h",
                     "tinymcu/mcu_runtime/templates/model.c.j2",
                     "tinymcu/firmware_templates/templates/link.ld.j2"):
        assert required in names, required
    assert not any(n.startswith(("export/", "prune/", "mcu_runtime/")) for n in names)


def test_wheel_imports_in_a_fresh_venv(tmp_path: Path) -> None:
    """A plain (non-editable) install imports and runs `tinymcu --version` without torch/TF."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "w"), str(ROOT)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "w").glob("tinymcu-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    # Borrow the dependencies (numpy, click, ...) from the test venv without its editable hook:
    # a plain path in a .pth file adds the directory but runs none of its own .pth files.
    deps = next(Path(p) for p in sys.path if p.endswith("site-packages"))
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "deps.pth").write_text(str(deps) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True)
    out = subprocess.run([str(py), "-c", "import tinymcu.mcu_runtime.ir, tinymcu.cli, sys;"
                          "print(tinymcu.__file__)"], check=True, capture_output=True, text=True,
                         cwd=tmp_path)
    assert str(venv) in out.stdout
