"""A private Flower simulation federation for one ``flwr run`` (what ``tinymcu prune`` runs).

Flower deprecated ``run_simulation``; its way is a SuperLink started with ``--simulation`` and
``flwr run APP CONNECTION --federation-config "num-supernodes=N ..."``. :class:`LocalFederation`
does exactly that, on this machine and offline:

- the SuperLink listens on a free loopback port (not Flower's fixed 39091, so concurrent runs
  do not meet), keeps its state in memory and never installs the app's dependencies;
- ``FLWR_HOME`` is a private directory naming that SuperLink (``flwr run`` talks to nothing
  else, and the installed app bundle is deleted with it);
- the Flower commands run in *this* interpreter through small launcher scripts, so the SuperLink,
  the simulation process and its Ray workers import the same tinymcu as the caller (a venv
  whose ``bin/`` lacks Flower's scripts, or another checkout first on ``PATH``, cannot swap it);
- the simulation launcher keeps TensorFlow out of the Ray workers: Flower's actor module
  imports it, if installed, only to offer GPU memory growth, and that costs ~10 s per worker.

Everything the federation started (the SuperLink detaches SuperExec and app processes into
their own sessions) is stopped when the ``with`` block ends, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from types import TracebackType

from tinymcu import interrupts
from tinymcu.errors import TinymcuError
from tinymcu.prune.deploy import write_flwr_home

CONNECTION = "tinymcu-local"
STARTUP_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), including ones that started a new session."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def stop_processes(procs: list[subprocess.Popen]) -> None:
    """Stop ``procs`` and every descendant (collected first: they re-parent once a parent
    dies), SIGTERM then SIGKILL."""
    family = [c for p in procs for c in descendants(p.pid)]
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in family:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        if sig == signal.SIGTERM:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and any(_alive(p) for p in family):
                time.sleep(0.1)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


_SIMULATION_PRELUDE = """\
sys.modules.setdefault("tensorflow", None)
import ray
_ray_init = ray.init
def _init(*args, **kwargs):
    env = dict(kwargs.pop("runtime_env", None) or {})
    env.setdefault("worker_process_setup_hook", "tinymcu.prune.run.block_tensorflow")
    return _ray_init(*args, runtime_env=env, **kwargs)
ray.init = _init
"""


def write_launchers(bin_dir: Path) -> Path:
    """One script per Flower console command, each running this interpreter."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for ep in entry_points(group="console_scripts"):
        if ep.value.split(".", 1)[0] != "flwr":
            continue
        module, func = ep.value.split(":")
        prelude = _SIMULATION_PRELUDE if ep.name == "flwr-simulation" else ""
        path = bin_dir / ep.name
        path.write_text(f"#!{sys.executable}\nimport sys\n{prelude}"
                        f"from {module} import {func}\nsys.exit({func}())\n")
        path.chmod(0o755)
    if not (bin_dir / "flwr").exists():
        raise TinymcuError("Flower's command-line tools are not installed "
                           "(pip install 'tinymcu[federated]')")
    return bin_dir


class LocalFederation:
    """``with LocalFederation() as fed: fed.run(app_dir, options, poll)``."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tmfl", dir="/tmp"))  # short: Ray's sockets
        interrupts.register_temp(self.dir)
        self.port = free_port()
        self.home = self.dir / "home"
        write_flwr_home(self.home, f"127.0.0.1:{self.port}", CONNECTION)
        bin_dir = write_launchers(self.dir / "bin")
        (self.dir / "ray").mkdir()
        self.env = dict(os.environ, FLWR_HOME=str(self.home), FLWR_TELEMETRY_ENABLED="0",
                        FLWR_DISABLE_UPDATE_CHECK="1", RAY_TMPDIR=str(self.dir / "ray"),
                        RAY_DEDUP_LOGS="0", RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO="0",
                        TF_CPP_MIN_LOG_LEVEL="3",
                        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        self.log = self.dir / "flower.log"
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> LocalFederation:
        try:
            self._start_superlink()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _popen(self, args: list[str]) -> subprocess.Popen:
        with open(self.log, "a") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                    cwd=self.dir, start_new_session=True)
        self.procs.append(proc)
        return proc

    def _start_superlink(self) -> None:
        link = self._popen([str(self.dir / "bin" / "flower-superlink"), "--insecure",
                            "--simulation", "--host", "127.0.0.1", "--port", str(self.port),
                            "--disable-runtime-dependency-installation",
                            "--database", ":flwr-in-memory-state:"])
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if link.poll() is not None:
                raise TinymcuError(f"the Flower SuperLink exited at start:\n{self.tail()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.3)
        raise TinymcuError(f"the Flower SuperLink did not start within {STARTUP_TIMEOUT:.0f} s")

    def run(self, app_dir: Path, options: dict[str, int | float | bool],
            poll: Callable[[], bool]) -> None:
        """``flwr run app_dir --federation-config OPTIONS --stream``; ``poll()`` is called
        every ~0.3 s while it runs and returns True once the caller has what it waits for
        (the run's report). Returns when both ``flwr run`` ended and ``poll()`` is True, or
        when ``flwr run`` ended and a last ``poll()`` is still False (the caller reports)."""
        fed = " ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                       for k, v in options.items())
        cli = self._popen([str(self.dir / "bin" / "flwr"), "run", str(app_dir), CONNECTION,
                           "--federation-config", fed, "--stream"])
        while True:
            done = poll()
            if cli.poll() is not None:
                if not done:
                    time.sleep(1.0)  # the report may land just after the stream closed
                    poll()
                return
            time.sleep(0.3)

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        stop_processes(self.procs)
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
        interrupts.unregister_temp(self.dir)
