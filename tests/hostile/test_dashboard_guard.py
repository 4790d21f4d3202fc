"""The dashboard under hostile requests: malformed plan references are 404, 405 says Allow, a Host
that is not loopback is refused, and no stored plan (NaN, a lone surrogate, 3 MB) breaks its page,
its API or the study's report."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest
from hostile_helpers import cli
from sqlalchemy import create_engine, text

from evaluators.plan import ModelRef, Plan, Sampling
from evaluators.spec import EvalSpec
from storage import EvaluationRecord, Store

SPEC = "5" * 64
GOOD = Plan(ModelRef("digits-unet", "UNet2DModel"), Sampling(4, 1.5))
BAD_TEXTS = {  # stored by hand or by an older edgediff: hash -> plan text
    "b" * 64: GOOD.to_json().replace('"notes"', '"x"')[:-2] + ', "notes": {"x": NaN}}',
    "c" * 64: GOOD.to_json()[:-2] + ', "notes": {"x": "\\ud800"}}',
    "d" * 64: GOOD.to_json()[:-2] + ', "notes": {"x": "' + "y" * 3_000_000 + '"}}',
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dash")
    url = f"sqlite:///{folder / 'store.db'}"
    with Store.open(url) as store:
        store.create_study("s", model="digits-unet", spec_json=EvalSpec(num_images=4).to_json(),
                           spec_hash=SPEC)
        for plan_hash, plan_text in {GOOD.content_hash(): GOOD.to_json(), **BAD_TEXTS}.items():
            store.record_candidate_evaluation(
                "s", plan_json=plan_text, plan_hash=plan_hash, method="manual",
                record=EvaluationRecord(model="digits-unet", spec_hash=SPEC, plan_hash=plan_hash,
                                        status="ok", num_images=4, device="cpu", fid=3.0,
                                        macs_per_image=100))
    engine = create_engine(url)
    with engine.begin() as connection:  # a name from before names were checked
        connection.execute(text("INSERT INTO edgediff_studies (name, model, spec_json, spec_hash, "
                                "objectives, method, created_at) VALUES ('..', 'digits-unet', :spec, "
                                f"'{SPEC}', '[]', 'manual', '2026-01-01 00:00:00')"),
                           {"spec": EvalSpec(num_images=4).to_json()})
    engine.dispose()
    import uvicorn

    from dashboards.app import create_app
    from dashboards.server import bind

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(Store.open(url, create=False)),
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield sock.getsockname()[1], url, folder
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


def request(port: int, path: str, *, method: str = "GET", host: str | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.putrequest(method, path, skip_host=True)
    connection.putheader("Host", f"127.0.0.1:{port}" if host is None else host)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), body


@pytest.mark.parametrize("ref", ["a" * 100_000, "zzzzzzzz", "a" * 65, "abc%2f..%2fdef", "ABCDEF!!"])
@pytest.mark.parametrize("prefix", ["/studies/s/plans/", "/api/studies/s/plans/"])
def test_malformed_plan_references_are_404(served, prefix, ref):
    status, _, body = request(served[0], prefix + ref)
    assert status == 404 and len(body) < 2000


def test_405_names_the_allowed_methods(served):
    status, headers, _ = request(served[0], "/api/studies", method="POST")
    assert status == 405 and "GET" in headers.get("allow", headers.get("Allow", ""))


@pytest.mark.parametrize("host, allowed", [
    ("evil.example", False), ("evil.example:8765", False), ("127.0.0.1.evil.example", False),
    ("", False), ("localhost", True), ("LOCALHOST:1", True), ("[::1]:8765", True), ("127.0.0.2", True),
])
def test_only_loopback_host_names_are_served(served, host, allowed):
    status, _, body = request(served[0], "/api/studies", host=host)
    assert (status == 200) == allowed, body
    if not allowed:
        assert status == 421 and "--allow-remote" in json.loads(body)["error"]


@pytest.mark.parametrize("plan_hash", sorted(BAD_TEXTS))
def test_a_stored_plan_that_cannot_be_read_is_one_line_not_a_broken_page(served, plan_hash):
    for path in (f"/studies/s/plans/{plan_hash}", f"/api/studies/s/plans/{plan_hash}",
                 f"/api/studies/s/plans/{plan_hash}/plan.json", f"/studies/s/plans/{plan_hash}/fragment"):
        status, _, body = request(served[0], path)
        assert status == 422, (path, status)
        assert len(body) < 2000 and b"it is not shown" in body
    status, _, _ = request(served[0], f"/studies/s/plans/{GOOD.content_hash()}")
    assert status == 200
    for path in ("/", "/studies/s", "/api/studies/s"):  # the study itself still opens
        assert request(served[0], path)[0] == 200


def test_the_report_of_a_study_with_unreadable_plans_is_written(served, capsys):
    _, url, folder = served
    code, out, err = cli(capsys, "report", "s", "-o", folder / "r.html", "--db", url)
    assert code == 0, err
    assert (folder / "r.html").stat().st_size > 1000


def test_an_old_odd_study_name_is_listed_and_its_page_answers(served):
    status, _, body = request(served[0], "/api/studies")
    assert status == 200 and ".." in [s["name"] for s in json.loads(body)["studies"]]
    status, _, body = request(served[0], "/")
    assert status == 200 and b'href="/studies/%2E%2E"' in body  # a link a browser keeps as it is
    assert request(served[0], "/studies/%2E%2E")[0] == 200
