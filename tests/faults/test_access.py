"""Access under attack (访问控制): revocation and expiry act at once on every server process,
failed authentication is rate-limited across processes and recorded, and no secret or personal
datum reaches a log (checked over a full demo run).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from store import throttle
from store.ledger import init_store, open_ledger
from tests.faults.conftest import ROOT, Server, auth, petition, seed

MAX_FAILURES = 6


def test_revocation_expiry_and_failed_attempts_agree_across_server_processes(
    store_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    tokens = seed(store_url)
    env = {"LEDGER_AUTH_MAX_FAILURES": str(MAX_FAILURES), "LEDGER_AUTH_WINDOW_SECONDS": "60"}
    a = Server(store_url, tmp_path / "a.log", env=env, projections=False)
    b = Server(store_url, tmp_path / "b.log", env=env, projections=False)
    servers += [a, b]
    a.start(), b.start()
    admin = auth(tokens["admin"])
    with httpx.Client(timeout=20) as http:
        made = http.post(f"{a.base}/v1/tokens", json={"subject": "sup-2", "role": "supervisor"}, headers=admin)
        assert made.status_code == 201, made.text
        grant, token = made.json()["id"], made.json()["token"]
        assert http.get(f"{b.base}/v1/units/t1", headers=auth(token)).status_code == 200
        assert http.post(f"{a.base}/v1/tokens/{grant}/revocation", headers=admin).status_code == 200
        for server in (b, a):  # at once: the very next request, on either process
            r = http.get(f"{server.base}/v1/units/t1", headers=auth(token))
            assert r.status_code == 401 and "revoked" in r.json()["detail"], r.text

        short = http.post(
            f"{b.base}/v1/tokens", json={"subject": "sup-3", "role": "supervisor", "ttl": "PT2S"}, headers=admin
        ).json()
        assert http.get(f"{a.base}/v1/units/t1", headers=auth(short["token"])).status_code == 200
        time.sleep(2.2)
        for server in (a, b):
            r = http.get(f"{server.base}/v1/units/t1", headers=auth(short["token"]))
            assert r.status_code == 401 and "expired" in r.json()["detail"], r.text

        # Four failures so far (two revoked, two expired); wrong secrets on alternate servers fill
        # the allowance, then every server refuses this client's further failures (recorded no more) — while a
        # good token from the same address is served (one proxy's clients share it).
        for i in range(MAX_FAILURES - 4):
            server = (a, b)[i % 2]
            r = http.get(f"{server.base}/v1/units/t1", headers=auth(f"{grant}.wrong-secret-{i}"))
            assert r.status_code == 401, r.text
        for server in (a, b):
            r = http.get(f"{server.base}/v1/units/t1", headers=auth(f"{grant}.one-more-guess"))
            assert r.status_code == 429, r.text
            assert 0 < int(r.headers["retry-after"]) <= 60
            assert http.get(f"{server.base}/v1/units/t1", headers=auth(tokens["supervisor"])).status_code == 200
    ledger = open_ledger(store_url)
    try:
        recorded = throttle.failures(ledger.recorder)
    finally:
        ledger.close()
    assert [(source, reason) for source, _, _, reason in recorded] == [("127.0.0.1", "revoked")] * 2 + [
        ("127.0.0.1", "expired")
    ] * 2 + [("127.0.0.1", "unknown")] * (MAX_FAILURES - 4)
    logs = a.log() + b.log()
    assert "authentication failed from 127.0.0.1: revoked" in logs
    for secret in (token, token.split(".")[1], short["token"], tokens["admin"], "wrong-secret"):
        assert secret not in logs


def test_no_secret_or_personal_data_in_the_logs_of_a_full_demo_run(tmp_path: Path, servers: list[Server]) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-c", "from api.cli import main; main()"]
    init_store(url)
    demo = subprocess.run([*cli, "demo"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    admin = demo.stdout.rsplit("admin token:", 1)[1].split()[0]  # the demo's answer, on stdout by design
    server = Server(url, tmp_path / "serve.log")
    servers.append(server)
    server.start()
    with httpx.Client(base_url=server.base, timeout=30) as http:
        made = http.post("/v1/tokens", json={"subject": "clerk-9", "role": "clerk"}, headers=auth(admin)).json()
        sup = http.post("/v1/tokens", json={"subject": "sup-9", "role": "supervisor"}, headers=auth(admin)).json()
        clerk = made["token"]
        body = petition("log-1", unit_id="laiwu", petitioner="隐私甲乙")
        assert http.post("/v1/petitions", json=body, headers=auth(clerk)).is_success
        http.get("/v1/petitions/log-1?purpose=audit", headers=auth(clerk))
        http.get("/v1/petitions?status=open", headers=auth(sup["token"]))
        http.get("/v1/units", headers=auth(made["id"] + ".not-the-secret"))
        http.get("/v1/units", headers=auth(clerk[:-1]))
        http.post(f"/v1/tokens/{made['id']}/revocation", headers=auth(admin))
        http.get("/v1/units", headers=auth(clerk))
    server.stop()

    ledger = open_ledger(url)
    try:
        personal = {
            str(getattr(event, name))
            for _, event in ledger.iter_log()
            for name in ("petitioner", "reporter")
            if getattr(event, name, None)
        }
    finally:
        ledger.close()
    assert "隐私甲乙" in personal and len(personal) > 5
    key_file = Path(os.environ["LEDGER_KEY_FILE"]).read_text().strip()
    secrets = {
        admin,
        admin.split(".")[1],
        clerk,
        clerk.split(".")[1],
        sup["token"],
        key_file,
        base64.b64decode(key_file).hex(),
    }
    signing = Path(os.environ["LEDGER_SIGNING_KEY_FILE"])
    if signing.exists():
        secrets |= {line for line in signing.read_text().splitlines() if line and "-----" not in line}
    logs = demo.stderr + server.log()
    assert "authentication failed" in logs  # the log does say what happened
    leaked = [s for s in secrets | personal if s in logs]
    assert not leaked, leaked
