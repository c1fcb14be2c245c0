"""The wheel installs one namespace, `tinymcu`, and ships its templates; a plain
(non-editable) core install runs every command."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


def test_wheel_has_only_the_tinymcu_namespace(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("tinymcu-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"tinymcu"}
    for required in ("tinymcu/cli.py", "tinymcu/export/__init__.py", "tinymcu/prune/zoo.py",
                     "tinymcu/mcu_runtime/ir.py", "tinymcu/mcu_runtime/ops/base.py",
                     "tinymcu/mcu_runtime/templates/memory_plot.svg.j2",
                     "tinymcu/mcu_runtime/codegen/emitters.py",
                     "tinymcu/mcu_runtime/ops/conv/tm_conv.h",
                     "tinymcu/mcu_runtime/ops/softmax/tm_softmax.h",
                     "tinymcu/mcu_runtime/templates/model.c.j2",
                     "tinymcu/firmware_templates/templates/link.ld.j2"):
        assert required in names, required
    assert not any(n.startswith(("export/", "prune/", "mcu_runtime/")) for n in names)


def _package_folders() -> dict[str, Path]:
    """Every folder with an ``__init__.py`` under the mapped roots, as its tinymcu.* name."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {}
    for pkg, folder in cfg["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            if ".venv" not in rel and "__pycache__" not in rel:
                found[".".join((pkg, *rel))] = init.parent
    return found


def test_every_package_folder_is_listed() -> None:
    """A package folder missing from pyproject's list works in the editable install and breaks
    a plain one (that is how ``tinymcu.commands`` went missing)."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    missing = sorted(set(_package_folders()) - set(cfg["packages"]))
    assert not missing, f"add to [tool.setuptools] packages: {missing}"


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed non-editable into a fresh venv with only its core dependencies
    (numpy, click, rich, jinja2 from the package index), no torch, no TensorFlow."""
    tmp = tmp_path_factory.mktemp("core")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp / "w"), str(ROOT)], check=True, capture_output=True)
    (wheel,) = (tmp / "w").glob("tinymcu-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    return venv


def _tinymcu(venv: Path, *args: str, cwd: Path, timeout: float = 300
             ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return subprocess.run([str(venv / "bin" / "tinymcu"), *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout)


def test_wheel_imports_in_a_fresh_venv(core_venv: Path, tmp_path: Path) -> None:
    """The plain install imports from its own site-packages, not from this checkout."""
    out = subprocess.run([str(core_venv / "bin" / "python"), "-c",
                          "import tinymcu.mcu_runtime.ir, tinymcu.cli, tinymcu.commands.check;"
                          "print(tinymcu.__file__)"], check=True, capture_output=True, text=True,
                         cwd=tmp_path)
    assert str(core_venv) in out.stdout


@pytest.mark.slow
def test_core_install_runs_every_command(core_venv: Path, tmp_path: Path) -> None:
    """Every command's --help works without extras, `tinymcu check` gates a shared model,
    and `tinymcu export` names the extra to install (exit 2, one line)."""
    from tinymcu.cli import COMMANDS

    py = core_venv / "bin" / "python"
    probe = subprocess.run([str(py), "-c", "import importlib.util as u; print([m for m in "
                            "('torch', 'tensorflow', 'onnx') if u.find_spec(m)])"],
                           capture_output=True, text=True, check=True, cwd=tmp_path)
    assert probe.stdout.strip() == "[]"  # a truly clean venv
    for name in COMMANDS:
        r = _tinymcu(core_venv, name, "--help", cwd=tmp_path)
        assert r.returncode == 0, (name, r.stderr)
        assert "Usage:" in r.stdout
    r = _tinymcu(core_venv, "check", str(DATA / "kws_ref_model.tflite"), "--board",
                 "nucleo-f746zg", cwd=tmp_path)
    assert r.returncode in (0, 1), r.stderr
    assert "Traceback" not in r.stderr and "arena" in r.stdout.lower()
    r = _tinymcu(core_venv, "export", "demo_cnn", "--calib", "digits", "--out",
                 str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert "pip install 'tinymcu[export]'" in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def export_venv(core_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same non-editable wheel install plus the ``[export]`` extra's packages.

    Installing torch + TensorFlow from the package index takes minutes and ~2 GB, so the
    extra's packages come from this interpreter's site-packages through a ``.pth`` line
    (appended after the venv's own site-packages, and a ``.pth`` line's folder does not run
    its own ``.pth`` hooks: the editable install of this checkout stays invisible). First
    it is checked that those packages are exactly the ones the wheel's ``[export]`` extra
    pins, so the venv is what ``pip install 'tinymcu[export]'`` builds.
    """
    import importlib.metadata as md
    import re
    import sysconfig

    tmp = tmp_path_factory.mktemp("export")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (wheel,) = (core_venv.parent / "w").glob("tinymcu-*.whl")
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    reqs = subprocess.run([str(py), "-c", "import importlib.metadata as m; "
                           "print('\\n'.join(m.requires('tinymcu')))"], check=True,
                          capture_output=True, text=True).stdout.splitlines()
    pins = [r.split(";")[0].strip() for r in reqs if re.search(r"extra\s*==\s*.export", r)]
    assert pins, reqs
    from packaging.requirements import Requirement

    for pin in pins:  # what we lend satisfies the pins (2.13.0+cpu satisfies ==2.13.0)
        req = Requirement(pin)
        assert req.specifier.contains(md.version(req.name), prereleases=True), (
            pin, md.version(req.name))
    ours = Path(sysconfig.get_paths()["purelib"])
    lend = [p for p in sys.path if p.endswith("site-packages") and Path(p) != ours
            and not Path(p).is_relative_to(ROOT)] + [str(ours)]
    purelib = subprocess.run([str(py), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"], check=True,
                             capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "zz-lent-export-extra.pth").write_text("\n".join(lend) + "\n")
    return venv


@pytest.mark.slow
def test_export_extra_install_exports_a_model(export_venv: Path, tmp_path: Path) -> None:
    """With ``[export]``, the non-editable install converts the demo model end to end (ONNX,
    TF graph, int8, our runtime's post-check, TFLM bit-exact check, C arrays), importing
    tinymcu from the wheel, not this checkout."""
    py = export_venv / "bin" / "python"
    where = subprocess.run([str(py), "-c", "import tinymcu.export.pipeline as p, torch; "
                            "print(p.__file__)"], check=True, capture_output=True, text=True,
                           cwd=tmp_path)
    assert str(export_venv) in where.stdout, where.stdout
    out = tmp_path / "out"
    r = _tinymcu(export_venv, "export", "demo_cnn", "--calib", "digits", "--out", str(out),
                 "--tflm-samples", "4", cwd=tmp_path, timeout=1200)  # a shared 2-core box
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    tflite = next(out.glob("*.tflite"))
    r = _tinymcu(export_venv, "check", str(tflite), cwd=tmp_path)
    assert r.returncode in (0, 1), r.stderr
