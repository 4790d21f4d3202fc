"""`edgediff plan / evaluate / studies / front / export` against a SQLite file and PostgreSQL, and
their one-line errors (nothing written on bad input)."""

from __future__ import annotations

import json
import subprocess
import sys

from sqlalchemy import create_engine, text

from edgediff.cli import main
from evaluators import references
from evaluators.plan import Plan
from storage import Store

SMALL = ["--images", "10", "--steps", "6", "--screen-images", "4", "--threads", "2"]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_evaluate_front_export_round_trip(capsys, tmp_path, store_url):
    references.clear()
    plans = {}
    for method in ("wars", "ast"):
        plans[method] = tmp_path / f"{method}.json"
        code, out, _ = cli(capsys, "plan", "digits-dit", "-o", str(plans[method]), "--steps", "6",
                           "--attention", method)
        assert code == 0 and "written to" in out
    common = ["--db", store_url, "--study", "s", "--cache-dir", str(tmp_path / "cache")]
    code, out, _ = cli(capsys, "evaluate", "--model", "digits-dit", "--plan", str(plans["wars"]),
                       *SMALL, *common)
    assert code == 0 and "evaluated and stored" in out and "new study 's'" in out
    code, out, _ = cli(capsys, "evaluate", "--model", "digits-dit", "--plan", str(plans["ast"]),
                       *common, "--json")
    result = json.loads(out)
    assert code == 0 and not result["reused"]
    assert [e["stage"] for e in result["evaluations"]] == ["screen", "full"]
    assert result["full_model"]["methods"] == ["full"]
    code, out, _ = cli(capsys, "evaluate", "--model", "digits-dit", "--plan", str(plans["ast"]),
                       *common)
    assert code == 0 and "found in the store (not recomputed)" in out

    code, out, _ = cli(capsys, "studies", "--db", store_url, "--json")
    (study,) = json.loads(out)
    assert (study["name"], study["model"], study["candidates"]) == ("s", "digits-dit", 3)

    code, out, _ = cli(capsys, "front", "s", "--db", store_url, "--json", "--all")
    shown = json.loads(out)
    assert len(shown["points"]) == 3
    front = shown["front"]
    assert [p["macs"] for p in front] == sorted(p["macs"] for p in front)
    for p in shown["points"]:  # nothing off the front is better in both objectives
        if p["plan_hash"] not in {f["plan_hash"] for f in front}:
            assert any(f["macs"] <= p["macs"] and f["fid"] <= p["fid"] for f in front)

    out_file = tmp_path / "best.json"
    code, out, _ = cli(capsys, "export", "s", "--db", store_url, "--max-macs",
                       str(shown["full_model"]["macs"] - 1), "-o", str(out_file))
    assert code == 0 and "exported" in out
    exported = Plan.load(out_file)
    cheaper = [p for p in shown["points"] if p["macs"] < shown["full_model"]["macs"]]
    assert exported.content_hash() == min(cheaper, key=lambda p: (p["fid"], p["macs"]))["plan_hash"]
    code, out, _ = cli(capsys, "front", "s", "--db", store_url)
    assert code == 0 and "plans on the front" in out and "full model:" in out
    assert "x fewer MACs  measured speedup" in out  # side by side on every front point
    code, out, _ = cli(capsys, "export", "s", "--db", store_url, "--fid-within", "1000", "-o",
                       str(out_file), "--json")
    shown = json.loads(out)
    point, full = shown["point"], shown["full_model"]
    assert shown["speedup"] == {"predicted": full["macs"] / point["macs"],
                                "measured": full["latency"] / point["latency"]}
    code, out, _ = cli(capsys, "export", "s", "--db", store_url, "--fid-within", "1000", "-o",
                       str(out_file))
    assert f"{full['macs'] / point['macs']:.2f}x predicted from MACs" in out and "x measured" in out
    references.clear()


def test_bad_input_is_one_line_and_writes_nothing(capsys, tmp_path):
    db = tmp_path / "store.db"
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "edgediff-plan", "version": 1, "model": {}}')
    code, _, err = cli(capsys, "evaluate", "--model", "digits-dit", "--plan", str(bad),
                       "--db", f"sqlite:///{db}")
    assert code == 2 and "missing field(s) 'sampling'" in err and err.count("\n") == 1
    good = tmp_path / "good.json"
    assert cli(capsys, "plan", "digits-dit", "-o", str(good), "--steps", "4")[0] == 0
    code, _, err = cli(capsys, "evaluate", "--model", "digits-gan", "--plan", str(good),
                       "--db", f"sqlite:///{db}")
    assert code == 2 and "unknown model 'digits-gan'" in err and err.count("\n") == 1
    code, _, err = cli(capsys, "evaluate", "--model", "digits-dit", "--plan", str(good),
                       "--images", "4", "--screen-images", "9", "--db", f"sqlite:///{db}")
    assert code == 2 and "spec.screen_images: 9 is out of range" in err
    code, _, err = cli(capsys, "evaluate", "--model", "digits-dit", "--plan", str(good),
                       "--images", "4", "--steps", "4", "--reference", str(tmp_path / "none"),
                       "--db", f"sqlite:///{db}", "--cache-dir", str(tmp_path / "cache"))
    assert code == 2 and "reference image folder" in err and "does not exist" in err
    code, _, err = cli(capsys, "front", "nope", "--db", f"sqlite:///{db}")
    assert code == 2 and "no edgediff store" in err
    assert not db.exists()  # nothing was created by any of these

    code, _, err = cli(capsys, "studies", "--db", "postgresql://edgediff@127.0.0.1:9/none")
    assert code == 2 and "cannot reach database" in err and err.count("\n") == 1
    code, _, err = cli(capsys, "export", "s", "-o", str(tmp_path / "p.json"), "--db",
                       f"sqlite:///{db}")
    assert code == 2 and "--max-fid" in err and not (tmp_path / "p.json").exists()


def test_unknown_study_and_newer_schema(capsys, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with Store.open(url) as store:
        store.create_study("known", model="digits-dit", spec_json="{}", spec_hash="0" * 64)
    code, _, err = cli(capsys, "front", "other", "--db", url)
    assert code == 2 and "unknown study 'other'" in err and "known" in err
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE edgediff_alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    code, _, err = cli(capsys, "studies", "--db", url)
    assert code == 2 and "newer than this edgediff" in err


def test_exit_status_from_a_real_process(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "edgediff", "export", "s", "--max-fid", "3", "-o",
         str(tmp_path / "p.json"), "--db", f"sqlite:///{tmp_path / 'missing.db'}"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2 and done.stderr.startswith("edgediff export: error: no edgediff store")
    assert "Traceback" not in done.stderr


def test_a_plan_for_another_model_class_writes_nothing(capsys, tmp_path):
    plan = tmp_path / "unet.json"
    assert cli(capsys, "plan", "digits-unet", "-o", str(plan), "--steps", "4")[0] == 0
    db = tmp_path / "store.db"
    code, _, err = cli(capsys, "evaluate", "--model", "digits-dit", "--plan", str(plan),
                       "--db", f"sqlite:///{db}")
    assert code == 2 and "is a plan for a UNet2DModel" in err and not db.exists()
