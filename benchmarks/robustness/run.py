"""Robustness benchmark (issue 13): model mutants, bad inputs and interruptions.

1. ``--mutants`` seeded mutants of the shared models through ``check`` (in-process, the
   API the command calls); every accepted one (fits the default board) also through
   ``emulate`` and ``codegen``. Failure = exit 3 (any unexpected exception) or a hang.
2. The bad-input table: each case through the real CLI in its own process; it must exit
   with the expected code, print exactly one stderr line, and leave the output untouched.
3. Interruptions: SIGINT/SIGTERM during ``firmware --run`` (QEMU), ``codegen``, ``export``
   and ``prune``, and ``firmware --timeout 0.01``: the exit code must be 130/143 (2 for the
   timeout), the output either the complete old one or the complete new one, no temp
   directory and no child process left behind.

Writes benchmarks/results/robustness.md. Run: ``nice python benchmarks/robustness/run.py``
(``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from mutants import load_models, mutate, run_case  # noqa: E402

from tinymcu.interrupts import EXIT_CODES  # noqa: E402

DATA = ROOT / "tests" / "data"
MODELS = ["hello_world_int8", "keras_flatten_plumbing_int8", "micro_speech_quantized",
          "kws_ref_model", "ad01_int8", "str_ww_ref_model", "pretrainedResnet_quant",
          "vww_96_int8", "person_detect"]
KWS = DATA / "kws_ref_model.tflite"
RESULTS = ROOT / "benchmarks" / "results" / "robustness.md"
TINYMCU = [sys.executable, "-m", "tinymcu"]
#: stderr lines of each interruption case kept in robustness.json (why a case failed)
STDERR_KEPT = 40
#: shares of a command's uninterrupted run time at which the interruption cases signal it
FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)


# ---- 1. mutants -------------------------------------------------------------------------
@dataclass
class MutantStats:
    cases: int = 0
    accepted: int = 0
    codes: dict[str, Counter] = field(default_factory=lambda: {
        "check": Counter(), "emulate": Counter(), "codegen": Counter()})
    failures: list[str] = field(default_factory=list)
    #: per stage, failures by kind ("3" crash, "hang")
    bad: dict[str, Counter] = field(default_factory=lambda: {
        "check": Counter(), "emulate": Counter(), "codegen": Counter()})
    seconds: float = 0.0


def run_mutants(n: int, seed0: int, log_every: int = 1000) -> MutantStats:
    models = load_models([DATA / f"{m}.tflite" for m in MODELS])
    st = MutantStats()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tinymcu-fuzz-") as d:
        for seed in range(seed0, seed0 + n):
            case = run_case(mutate(models, np.random.default_rng(seed)), seed, Path(d))
            st.cases += 1
            st.accepted += case.accepted
            for name in ("check", "emulate", "codegen"):
                stage = getattr(case, name)
                if stage is not None:
                    st.codes[name][str(stage.code)] += 1
            for name in ("check", "emulate", "codegen"):
                stage = getattr(case, name)
                if stage is not None and stage.code not in (0, 1, 2):
                    st.bad[name][str(stage.code)] += 1
                    st.failures.append(f"seed {seed} {name}: {stage.code} {stage.message}")
            if st.cases % log_every == 0:
                print(f"  {st.cases} mutants, {st.accepted} accepted, "
                      f"{len(st.failures)} failures, {time.perf_counter() - start:.0f} s",
                      flush=True)
    st.seconds = time.perf_counter() - start
    return st


# ---- processes ----------------------------------------------------------------------------
@dataclass
class Proc:
    code: int | None
    stderr: str
    seconds: float
    rss_mb: float
    hung: bool = False
    children_left: int = 0


#: export's per-stage progress lines ("export: <stage>: 2.7 s"), printed as stages finish:
#: not error output, so not counted against the one line an interrupt may print
_PROGRESS = re.compile(r"^export: .*: \d+\.\d s$")


def _running(p: subprocess.Popen) -> bool:
    """Whether ``p`` still runs, without reaping it (``Popen.poll`` would, and the
    ``wait4`` below then finds no child and loses the RSS figure)."""
    return os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def run_proc(args: list[str], cwd: Path, timeout: float = 120.0,
             signal_at: float | None = None, sig: int = signal.SIGTERM,
             wait_for: str | None = None, temp_in: Path | None = None) -> Proc:
    """Run one CLI process; optionally send ``sig`` ``signal_at`` s after start, or that
    long after a child whose command line contains ``wait_for`` appears, or after the
    command's temporary output directory appears in ``temp_in`` (the window in which an
    interrupt could leave a half-built output). Peak RSS from wait4."""
    err = tempfile.TemporaryFile()
    p = subprocess.Popen([*TINYMCU, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=err,
                         stdin=subprocess.DEVNULL)
    start = time.monotonic()
    kids: set[int] = set()
    if signal_at is not None:
        while time.monotonic() - start < timeout and _running(p):
            if wait_for is None and temp_in is None and time.monotonic() - start >= signal_at:
                break
            if wait_for is not None and _has_child(p.pid, wait_for):
                time.sleep(signal_at)
                break
            if temp_in is not None and stale(temp_in):
                time.sleep(signal_at)
                break
            time.sleep(0.005)
        if _running(p):
            from tinymcu.interrupts import descendants

            kids = set(descendants(p.pid))
            p.send_signal(sig)
    hung = False
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - start > timeout:
            hung = True
            p.kill()
            pid, status, usage = os.wait4(p.pid, 0)
            break
        time.sleep(0.02)
    p.returncode = os.waitstatus_to_exitcode(status)
    err.seek(0)
    return Proc(p.returncode, err.read().decode(errors="replace"), time.monotonic() - start,
                usage.ru_maxrss / 1024, hung, _children_left(kids))


def _has_child(pid: int, needle: str) -> bool:
    from tinymcu.interrupts import descendants

    for k in descendants(pid):
        try:
            if needle.encode() in Path(f"/proc/{k}/cmdline").read_bytes():
                return True
        except OSError:
            pass
    return False


def tree(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def stale(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


# ---- 2. bad inputs ------------------------------------------------------------------------
def _write_bad_inputs(d: Path) -> None:
    import io
    import zipfile

    def npy(a: np.ndarray, pickle: bool = False) -> bytes:
        b = io.BytesIO()
        np.save(b, a, allow_pickle=pickle)
        return b.getvalue()

    def npz(members: dict[str, bytes]) -> bytes:
        b = io.BytesIO()
        with zipfile.ZipFile(b, "w") as z:
            for k, v in members.items():
                z.writestr(k, v)
        return b.getvalue()

    good = npy(np.zeros((1, 49, 10, 1), np.int8))
    (d / "empty.npy").write_bytes(b"")
    h = io.BytesIO()
    np.lib.format.write_array_header_1_0(h, {"descr": "<f8", "fortran_order": False,
                                             "shape": (1 << 20, 1 << 20, 6)})
    (d / "huge.npy").write_bytes(h.getvalue() + bytes(64))
    (d / "object.npz").write_bytes(npz({"arr_0.npy": npy(np.array([{}], object), True)}))
    crc = bytearray(npz({"arr_0.npy": good}))
    crc[crc.find(b"NUMPY") + 200] ^= 0xFF
    (d / "badcrc.npz").write_bytes(bytes(crc))
    (d / "trunc.npz").write_bytes(npz({"arr_0.npy": good})[:300])
    (d / "trunc.npy").write_bytes(good[:200])
    (d / "member.npz").write_bytes(npz({"notes.txt": b"hi"}))
    (d / "good.npy").write_bytes(good)
    (d / "inputdir").mkdir()
    os.mkfifo(d / "fifo")
    big = d / "big.npy"
    with big.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|i1", "fortran_order": False,
                                                 "shape": (300_000_000,)})
        f.truncate(300_000_128)
    (d / "x.json.dir").mkdir()
    (d / "afile").write_text("")
    (d / "DIR").mkdir()
    shutil.copy(KWS, d / "DIR" / "model.tflite")
    (d / "cwd").mkdir()
    data = KWS.read_bytes()
    from tinymcu.mcu_runtime.tflite_reader import load_tflite

    g = load_tflite(KWS)
    t = next(t for t in g.activations()
             if data.count(np.float32(t.quant.scale[0]).tobytes()) == 1)
    raw = np.float32(t.quant.scale[0]).tobytes()
    for name, v in (("scale0", 0.0), ("scalehuge", 3.4e38)):
        (d / f"{name}.tflite").write_bytes(data.replace(raw, np.float32(v).tobytes()))


def bad_input_cases(d: Path) -> list[tuple[str, list[str], int, Path | None]]:
    """(name, argv, expected exit code, path that must stay as it was)."""
    M = str(KWS)
    x = ["--input"]
    return [
        ("codegen DIR/model.tflite --out DIR", ["codegen", "DIR/model.tflite", "--out", "DIR"],
         2, d / "DIR"),
        ("codegen M --out .", ["codegen", M, "--out", "."], 2, d / "cwd"),
        ("check /dev/zero", ["check", "/dev/zero"], 2, None),
        ("check FIFO", ["check", "fifo"], 2, None),
        ("check directory", ["check", "inputdir"], 2, None),
        ("check /proc/1/environ", ["check", "/proc/1/environ"], 2, None),
        ("check /proc/self/mem", ["check", "/proc/self/mem"], 2, None),
        ("check over-long name", ["check", "a" * 300], 2, None),
        ("check scale 0", ["check", "scale0.tflite"], 2, None),
        ("check scale 3.4e38", ["check", "scalehuge.tflite"], 2, None),
        ("emulate --input empty.npy", ["emulate", M, *x, "empty.npy"], 2, None),
        ("emulate --input 44 TiB header", ["emulate", M, *x, "huge.npy"], 2, None),
        ("emulate --input 300 MB .npy", ["emulate", M, *x, "big.npy"], 2, None),
        ("emulate --input object .npz", ["emulate", M, *x, "object.npz"], 2, None),
        ("emulate --input bad CRC", ["emulate", M, *x, "badcrc.npz"], 2, None),
        ("emulate --input truncated .npz", ["emulate", M, *x, "trunc.npz"], 2, None),
        ("emulate --input truncated .npy", ["emulate", M, *x, "trunc.npy"], 2, None),
        ("emulate --input non-.npy member", ["emulate", M, *x, "member.npz"], 2, None),
        ("emulate --input directory", ["emulate", M, *x, "inputdir"], 2, None),
        ("emulate --input FIFO", ["emulate", M, *x, "fifo"], 2, None),
        ("emulate --output = model", ["emulate", "DIR/model.tflite", *x, "good.npy",
                                      "--output", "DIR/model.tflite"], 2, d / "DIR"),
        ("firmware --input FIFO", ["firmware", M, *x, "fifo", "--out", "fw"], 2, None),
        ("check --sram 0", ["check", M, "--sram", "0"], 2, None),
        ("check --sram 0.5", ["check", M, "--sram", "0.5"], 2, None),
        ("codegen --sram 0", ["codegen", M, "--sram", "0", "--out", "o"], 2, None),
        ("firmware --sram 0", ["firmware", M, "--sram", "0", "--out", "o"], 2, None),
        ("emulate --sram 0", ["emulate", M, "--sram", "0", *x, "good.npy"], 2, None),
        ("check --sram ''", ["check", M, "--sram", ""], 2, None),
        ("check --board ''", ["check", M, "--board", ""], 2, None),
        ("check --json afile/x.json", ["check", M, "--json", "afile/x.json"], 2, None),
        ("check --json DIR/model.tflite", ["check", "DIR/model.tflite", "--json",
                                           "DIR/model.tflite"], 2, d / "DIR"),
        ("codegen --out /proc/x", ["codegen", M, "--out", "/proc/x"], 2, None),
        ("codegen --out file", ["codegen", M, "--out", "afile"], 2, d / "afile"),
        ("usage: unknown option", ["check", M, "--bogus"], 2, None),
        ("usage: missing argument", ["check"], 2, None),
        ("usage: unknown command", ["nosuch"], 2, None),
        ("firmware --timeout 0", ["firmware", M, "--out", "fw", "--timeout", "0"], 2, None),
    ]


def run_bad_inputs(work: Path) -> list[dict]:
    d = work / "bad"
    d.mkdir()
    _write_bad_inputs(d)
    rows = []
    for name, args, want, keep in bad_input_cases(d):
        before = tree(keep) if keep is not None and keep.is_dir() else (
            keep.read_bytes() if keep is not None else None)
        cwd = d / "cwd" if args[-1] == "." else d
        r = run_proc(args, cwd, timeout=60)
        after = tree(keep) if keep is not None and keep.is_dir() else (
            keep.read_bytes() if keep is not None else None)
        lines = r.stderr.strip().splitlines()
        rows.append({"case": name, "exit": r.code, "want": want, "lines": len(lines),
                     "hang": r.hung, "crash": r.code == 3 or "Traceback" in r.stderr,
                     "ok": r.code == want and len(lines) == 1 and not r.hung,
                     "touched": before != after, "stale": stale(d) + stale(d / "cwd"),
                     "rss_mb": r.rss_mb, "message": lines[-1] if lines else ""})
        for p in (d / "fw", d / "o"):
            shutil.rmtree(p, ignore_errors=True)
    return rows


# ---- 3. interruptions ------------------------------------------------------------------------
def _children_left(before: set[int]) -> int:
    """Processes the command started that still run (a zombie has ended: it only waits for
    init to collect its status), after a moment for re-parenting."""
    from tinymcu.interrupts import _alive

    time.sleep(0.3)
    return sum(_alive(k) for k in before)


def run_interrupts(work: Path, quick: bool) -> list[dict]:
    d = work / "intr"
    d.mkdir()
    rows: list[dict] = []
    have_fw = shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")

    def record(name: str, r: Proc, want: set[int], out: Path, ref: dict | None,
               extra: dict | None = None) -> None:
        now = tree(out)  # the old output, or a new complete one (same files)
        complete = (set(now) == set(ref)) if ref is not None else (not out.exists())
        lines = [ln for ln in r.stderr.strip().splitlines()
                 if "DEPRECATED" not in ln and "deprecated" not in ln.lower()
                 and not _PROGRESS.match(ln.strip())
                 and "entirely in" not in ln and ln.strip()]
        rows.append({"case": name, "exit": r.code, "want": "/".join(map(str, sorted(want))),
                     "ok": r.code in want and len(lines) <= 1 and not r.hung and complete
                     and not stale(out.parent) and not r.children_left,
                     "code_ok": r.code in want, "children_left": r.children_left,
                     "lines": len(lines), "hang": r.hung, "seconds": r.seconds,
                     "partial": not complete, "stale": stale(out.parent),
                     "rss_mb": r.rss_mb, "message": lines[-1] if lines else "",
                     "stderr_head": lines[:STDERR_KEPT], **(extra or {})})

    def moments(baseline: float) -> list[tuple[str, dict]]:
        """When to interrupt a command whose uninterrupted run took ``baseline`` s: at
        fixed shares of that time (imports, work, the final rename all get hit), and
        right after its temporary output directory appears (the half-built window)."""
        shares = FRACTIONS if not quick else (0.5,)
        return ([(f"at {f:.0%} of its {baseline:.1f} s run", {"signal_at": f * baseline})
                 for f in shares]
                + [("once its temp dir exists", {"signal_at": 0.0, "temp_in": d})])

    def interrupt(label: str, args: list[str], out: Path, sigs: tuple[int, ...],
                  extra: list[tuple[str, dict]] | None = None, timeout: float = 120.0) -> None:
        """Build ``out`` once uninterrupted (the old output every interrupted run must
        leave complete), then interrupt the same command at each moment."""
        base = run_proc(args, d, timeout=timeout)
        assert base.code == 0, base.stderr
        ref = tree(out)
        for sig in sigs:
            name = signal.Signals(sig).name
            for when, kw in [*moments(base.seconds), *(extra or [])]:
                r = run_proc(args, d, sig=sig, timeout=timeout, **kw)
                record(f"{label}, {name} {when}", r, {EXIT_CODES[sig], 0}, out, ref)

    both = (signal.SIGINT, signal.SIGTERM)
    if have_fw:
        fw = d / "fw"
        fw_args = ["firmware", str(KWS), "--out", str(fw), "--run", "--schedule", "patch"]
        interrupt("firmware --run", fw_args, fw, both,
                  [("during QEMU", {"signal_at": 0.05, "wait_for": "qemu"}),
                   ("during the compiler", {"signal_at": 0.0, "wait_for": "arm-none-eabi"})])
        ref = tree(fw)
        r = run_proc(["firmware", str(KWS), "--out", str(fw), "--run", "--timeout", "0.01"], d)
        record("firmware --run --timeout 0.01 (old output present)", r, {2}, fw, ref)
    cg = d / "cg"
    interrupt("codegen person_detect", ["codegen", str(DATA / "person_detect.tflite"),
                                        "--out", str(cg)], cg, both)
    if not quick:
        exp = d / "exp"
        interrupt("export demo_cnn", ["export", "demo_cnn", "--calib", "digits", "--out",
                                      str(exp), "--tflm-samples", "4"], exp,
                  (signal.SIGTERM,), timeout=300)
        rows += _prune_cases(d)
    return rows


def _prune_cases(d: Path) -> list[dict]:
    rows = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        out = d / f"prune-{signal.Signals(sig).name}"
        args = ["prune", "--model", "demo_cnn", "--data", "digits", "--clients", "2",
                "--rounds", "3", "--density", "0.5", "--epochs", "1", "--out", str(out)]
        err = tempfile.TemporaryFile()
        p = subprocess.Popen([*TINYMCU, *args], cwd=d, stdout=subprocess.DEVNULL, stderr=err)
        ckpt = out.with_name(out.name + ".partial") / "checkpoint.pt"
        start = time.monotonic()
        while not ckpt.exists() and p.poll() is None and time.monotonic() - start < 900:
            time.sleep(0.5)
        from tinymcu.interrupts import descendants

        kids = set(descendants(p.pid))
        t0 = time.monotonic()
        p.send_signal(sig)
        try:
            p.wait(timeout=60)
            hung = False
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            hung = True
        secs = time.monotonic() - t0
        time.sleep(1)
        err.seek(0)
        lines = [ln for ln in err.read().decode(errors="replace").splitlines()
                 if ln.strip() and "eprecated" not in ln and "DEPRECATED" not in ln
                 and "entirely in" not in ln]
        want = 130 if sig == signal.SIGINT else 143
        left = _children_left(kids)
        res = run_proc([*args, "--resume"], d, timeout=900)
        rows.append({"case": f"prune, {signal.Signals(sig).name} after the first checkpoint",
                     "exit": p.returncode, "want": str(want), "code_ok": p.returncode == want,
                     "ok": p.returncode == want and len(lines) == 1 and secs < 10 and not hung
                     and left == 0 and res.code == 0,
                     "lines": len(lines), "hang": hung, "seconds": secs,
                     "partial": not ckpt.exists() and res.code != 0, "stale": [],
                     "children_left": left, "rss_mb": res.rss_mb,
                     "stderr_head": lines[:STDERR_KEPT],
                     "message": (lines[-1] if lines else "") +
                                f" | --resume exit {res.code}"})
    return rows


# ---- report --------------------------------------------------------------------------------
def write_report(st: MutantStats, bad: list[dict], intr: list[dict], args: argparse.Namespace,
                 peak_rss_mb: float, when: dict[str, str]) -> str:
    deep = st.codes["emulate"].total()
    deep_crash = st.bad["emulate"]["3"] + st.bad["codegen"]["3"]
    deep_hang = st.bad["emulate"]["hang"] + st.bad["codegen"]["hang"]
    lines = [
        "# Robustness (issue 13)", "",
        f"`python benchmarks/robustness/run.py --mutants {args.mutants} --seed {args.seed}`"
        f" on {os.cpu_count()} cores (shared). Measured: mutants {when['mutants']}, bad "
        f"inputs {when['bad_inputs']}, interruptions {when['interruptions']}.", "",
        "## Summary", "",
        "| part | cases | crashes (exit 3) | hangs | wrong exit codes | not one line | "
        "partial outputs | stale temp dirs | peak RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| model mutants → check | {st.cases} | {st.bad['check']['3']} | "
        f"{st.bad['check']['hang']} | {st.bad['check']['3']} | 0 | – | – | "
        f"{peak_rss_mb:.0f} MB |",
        f"| accepted mutants → emulate + codegen | {deep} | {deep_crash} | {deep_hang} | "
        f"{deep_crash} | 0 | – | – | (same process) |",
        f"| bad-input table (CLI) | {len(bad)} | {sum(r['crash'] for r in bad)} | "
        f"{sum(r['hang'] for r in bad)} | {sum(r['exit'] != r['want'] for r in bad)} | "
        f"{sum(r['lines'] != 1 for r in bad)} | {sum(r['touched'] for r in bad)} | "
        f"{sum(bool(r['stale']) for r in bad)} | "
        f"{max((r['rss_mb'] for r in bad), default=0):.0f} MB |",
        f"| interruptions (CLI) | {len(intr)} | {sum(r['exit'] == 3 for r in intr)} | "
        f"{sum(r['hang'] for r in intr)} | {sum(not r['code_ok'] for r in intr)}"
        f" | {sum(r['lines'] != (r['exit'] != 0) for r in intr)} | "
        f"{sum(r['partial'] for r in intr)} | "
        f"{sum(bool(r['stale']) for r in intr)} | "
        f"{max((r['rss_mb'] for r in intr), default=0):.0f} MB |", "",
        f"Interruptions leaving a child process (QEMU, compiler, Ray) alive: "
        f"{sum(bool(r.get('children_left')) for r in intr)}.",
        "",
        f"Mutants: {st.cases} in {st.seconds:.0f} s; check exit codes "
        f"{dict(sorted(st.codes['check'].items()))}, accepted (fits the default board) "
        f"{st.accepted}; emulate {dict(sorted(st.codes['emulate'].items()))}, codegen "
        f"{dict(sorted(st.codes['codegen'].items()))}. Time limit 20 s per stage.", "",
    ]
    if st.failures:
        lines += ["Failures:", "", *[f"- `{f[:200]}`" for f in st.failures[:50]], ""]
    lines += ["## Bad inputs", "", "| case | exit (want) | stderr lines | output untouched | "
              "stale | RSS | message |", "|---|---|---:|---|---|---:|---|"]
    for r in bad:
        lines.append(f"| {r['case']} | {r['exit']} ({r['want']}) | {r['lines']} | "
                     f"{'no' if r['touched'] else 'yes'} | {len(r['stale'])} | "
                     f"{r['rss_mb']:.0f} MB | {r['message'][:110].replace('|', '/')} |")
    lines += ["", "## Interruptions", "",
              "Output must be the complete old one (or none when none existed); no temp "
              "dirs, no child process (QEMU, compiler, Ray) left; prune must exit within "
              "10 s and `--resume` must finish.", "",
              "| case | exit (want) | stderr lines | s to exit | complete output | stale | "
              "children left | message |", "|---|---|---:|---:|---|---|---:|---|"]
    for r in intr:
        lines.append(f"| {r['case']} | {r['exit']} ({r['want']}) | {r['lines']} | "
                     f"{r['seconds']:.1f} | {'no' if r['partial'] else 'yes'} | "
                     f"{len(r['stale'])} | {r.get('children_left', 0)} | "
                     f"{r['message'][:110].replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mutants", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="few cases, no export/prune")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: mutants,bad,intr")
    ap.add_argument("--reuse", default="", help="comma list of parts (mutants,bad,intr) to "
                    "take from the last run's robustness.json instead of re-running (the "
                    "report says when each part was measured)")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    reuse = {p for p in args.reuse.split(",") if p}
    if reuse - {"mutants", "bad", "intr"}:
        raise SystemExit(f"--reuse: unknown part(s) {sorted(reuse - {'mutants', 'bad', 'intr'})}")
    old = json.loads(RESULTS.with_suffix(".json").read_text()) if reuse else {}
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    when = {k: old.get("generated", {}).get(k, "an earlier run") if part in reuse else now
            for part, k in (("mutants", "mutants"), ("bad", "bad_inputs"),
                            ("intr", "interruptions"))}
    if args.quick:
        args.mutants = min(args.mutants, 200)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "mutants" in reuse:
        st, peak = _stats_from_json(old["mutants"]), float(old["peak_rss_mb"])
        args.mutants = st.cases
    else:
        st = run_mutants(args.mutants, args.seed) if "mutants" not in skip else MutantStats()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"mutants: {st.cases} cases, {st.accepted} accepted, {len(st.failures)} failures, "
          f"peak RSS {peak:.0f} MB", flush=True)
    with tempfile.TemporaryDirectory(prefix="tinymcu-robust-") as w:
        bad = old["bad_inputs"] if "bad" in reuse else \
            run_bad_inputs(Path(w)) if "bad" not in skip else []
        print(f"bad inputs: {sum(r['ok'] for r in bad)}/{len(bad)} ok", flush=True)
        intr = old["interruptions"] if "intr" in reuse else \
            run_interrupts(Path(w), args.quick) if "intr" not in skip else []
        print(f"interruptions: {sum(r['ok'] for r in intr)}/{len(intr)} ok", flush=True)
    text = write_report(st, bad, intr, args, peak, when)
    print(text)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
        (RESULTS.with_suffix(".json")).write_text(json.dumps(
            {"mutants": {"cases": st.cases, "accepted": st.accepted,
                         "codes": {k: dict(v) for k, v in st.codes.items()},
                         "failures": st.failures, "seconds": st.seconds},
             "bad_inputs": bad, "interruptions": intr, "peak_rss_mb": peak,
             "generated": when}, indent=1))


def _stats_from_json(d: dict) -> MutantStats:
    """A reused mutants part: the exit-code counts are the record; failures are the codes
    other than 0/1/2 ("3", "hang"), as run_mutants counts them."""
    st = MutantStats(cases=d["cases"], accepted=d["accepted"],
                     failures=list(d["failures"]), seconds=float(d.get("seconds", 0.0)))
    for stage, codes in d["codes"].items():
        st.codes[stage] = Counter(codes)
        st.bad[stage] = Counter({c: n for c, n in codes.items() if c not in ("0", "1", "2")})
    return st


if __name__ == "__main__":
    main()
