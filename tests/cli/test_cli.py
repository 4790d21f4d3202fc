import subprocess
import sys

import pytest

from edgediff import __version__
from edgediff.cli import main


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgediff", *args], capture_output=True, text=True, cwd=cwd,
        timeout=600,
    )


def test_help_lists_the_commands():
    out = run("--help")
    assert out.returncode == 0
    for command in ("models", "demo", "zoo-report", "train", "plan", "evaluate", "studies", "front",
                    "export"):
        assert command in out.stdout


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert __version__ in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, needle",
    [
        (["demo", "--images", "0"], "--images: 0 is out of range"),
        (["demo", "--guidance", "0.5"], "guidance is >= 1"),
        (["train", "digits-gan"], "invalid choice: 'digits-gan'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(args, needle):
    out = run(*args)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]


def test_models_lists_shipped_and_real_checkpoints(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "digits-dit" in out and "shipped" in out and "facebook/DiT-XL-2-512" in out


def test_demo_writes_grids_and_prints_quality(tmp_path):
    out = run("demo", "--images", "10", "--steps", "2", "--out", str(tmp_path / "o"))
    assert out.returncode == 0, out.stderr
    for name in ("digits-dit", "digits-unet"):
        assert (tmp_path / "o" / f"{name}-samples.png").stat().st_size > 100
        assert any(line.startswith(name) and "%" in line for line in out.stdout.splitlines())
