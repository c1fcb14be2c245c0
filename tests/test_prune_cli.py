"""`tinymcu prune` bad input: one line, exit 2, before any federated process starts."""

import pytest

from tinymcu.cli import main


def _run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(["prune", *args])
    return e.value.code, capsys.readouterr()


def test_help_has_an_example(capsys):
    code, out = _run(capsys, "--help")
    assert code == 0 and "Example" in out.out and "--density" in out.out


@pytest.mark.parametrize("args, needle", [
    (["--out", "o"], "--density"),
    (["--density", "0.1", "--data", "/no/such.npz", "--out", "o"], "data not found"),
    (["--density", "1.5", "--out", "o"], "density"),
    (["--board", "no-such-board", "--out", "o"], "unknown board"),
    (["--density", "0.1", "--model", "nope", "--out", "o"], "unknown model"),
    (["--density", "0.1", "--model", "os.path:nothing_here", "--out", "o"], "cannot load"),
])
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    code, out = _run(capsys, *args)
    assert code == 2 and needle in out.err and "Traceback" not in out.err
    assert len(out.err.strip().splitlines()) == 1


def test_output_that_is_a_file_is_refused(capsys, tmp_path):
    f = tmp_path / "taken"
    f.write_text("x")
    code, out = _run(capsys, "--density", "0.1", "--out", str(f))
    assert code == 2 and "not a directory" in out.err


def test_board_budget_sets_the_density():
    from tinymcu.commands.prune import _density_from_board
    from tinymcu.prune import budget, zoo

    d, line = _density_from_board("demo_cnn", "digits", "arduino-nano-33-ble", None, None, 0)
    assert d == 1.0 and "density 1.000" in line  # 22 KB of weights fit a 1 MB board dense
    d, line = _density_from_board("demo_cnn", "digits", None, "64KiB", "80KiB", 0)
    model = zoo.build("demo_cnn")
    numel = sum(m.numel() for m in (p for n, p in model.named_parameters()
                                    if n.endswith("weight") and p.dim() > 1))
    bitmask = sum(-(-p.numel() // 8) for n, p in model.named_parameters()
                  if n.endswith("weight") and p.dim() > 1)
    assert d == pytest.approx((16 * 1024 - bitmask - budget.bias_bytes(model)) / numel)
