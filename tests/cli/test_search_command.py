"""`edgediff search`: a finished search prints the fronts, the hypervolumes and the exported plan;
bad input is a one-line error with exit status 2 and nothing written."""

from __future__ import annotations

import pytest

from edgediff.cli import main
from evaluators.plan import Plan

SMALL = ["--images", "6", "--steps", "6", "--threads", "1", "--budget", "2", "--workers", "2"]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_search_prints_fronts_and_exports(capsys, tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    best = tmp_path / "best.json"
    code, out, err = cli(capsys, "search", "--model", "digits-unet", *SMALL, "--db", db,
                         "--cache-dir", str(tmp_path / "cache"), "--export", str(best))
    assert code == 0, err
    assert "front of deepcache-grid" in out and "front of optuna" in out and "greedy" not in out
    assert "hypervolume" in out and f"exported to {best}" in out
    assert "deepcache-grid 2/2" in err  # the progress lines
    assert Plan.load(best).model.name == "digits-unet"
    code, out, _ = cli(capsys, "studies", "--db", db)
    assert code == 0 and "digits-unet" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "no-such-model"], "no-such-model"),
    (["--model", "digits-unet", "--budget", "0"], "--budget"),
    (["--model", "digits-unet", "--method", "random"], "--method"),
    (["--model", "digits-unet", "--deltas", "0.1,-1"], "thresholds >= 0"),
    (["--model", "digits-unet", "--device", "cuda"], "GPU"),
])
def test_bad_input_is_one_line_and_writes_nothing(capsys, tmp_path, args, message) -> None:
    db = tmp_path / "s.db"
    try:
        code = main(["search", *args, "--db", f"sqlite:///{db}", "--cache-dir",
                     str(tmp_path / "cache")])
    except SystemExit as exit_:  # argparse
        code = exit_.code
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after any progress line
    assert code == 2
    assert message in last and ("error:" in last)
    assert not db.exists()
