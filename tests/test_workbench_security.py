"""Each attack of issue #18, performed against the workbench; none of them works.

Sign-out and expiry end a session; sign-in guessing is throttled and locks
out clients and accounts; weak tokens are refused and tokens are stored
salted; two reviewers cannot both decide one appeal; bad or oversized
parameters are 400s; every response, errors included, carries the security
headers; bodies are limited before they are read and the CSRF token is
checked before the rest of a form is; the cookie can be Secure; secrets never
reach error messages or logs; ids with `/`, `?`, `%` or `#` work.
"""

from __future__ import annotations

import http.client
import logging
import re
import socket
import threading
import time

import httpx
import pytest
from starlette.testclient import TestClient

from pipeline.cli.console import main as console_main
from pipeline.enforce.policy import load_policy
from tests.test_workbench_access import (
    ALICE, REVIEWER, REVIEWER_2, client, csrf_of, governance_lines, signed_in, world,  # noqa: F401
)
from tests.test_workbench_store import MIN, T0, ledger_outputs
from workbench.site import create_app
from workbench.auth import Limit, Tokens
from workbench.publish import FilePublisher
from workbench.serve import serve_in_thread
from workbench.store import FileFeed, Store
from workbench.web import MAX_BODY_BYTES

HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy",
           "cache-control")


def session_cookie(c: TestClient) -> str:
    return c.cookies.get("shopguard_session")


# ---- sessions end ------------------------------------------------------------------------------


def test_a_cookie_saved_before_sign_out_opens_nothing_after_it(world):
    c, csrf = signed_in(world["app"], REVIEWER[1])
    stolen = session_cookie(c)
    assert c.post("/logout", data={"csrf_token": csrf}).status_code == 303
    replay = client(world["app"])
    replay.cookies.set("shopguard_session", stolen)
    assert replay.get("/queue").status_code == 303  # back to sign-in
    r = replay.post("/cases/note", data={"csrf_token": csrf, "case": "review:seller:S2", "text": "x"})
    assert r.status_code == 403
    assert world["store"].read().execute("SELECT count(*) FROM wb_notes").fetchone()[0] == 0


def test_an_expired_session_opens_nothing(world):
    c, _ = signed_in(world["app"], REVIEWER[1])
    assert c.get("/queue").status_code == 200
    with world["store"].transaction() as db:
        db.execute("UPDATE wb_sessions SET expires_at = ?", (time.time() - 1,))
    assert c.get("/queue").status_code == 303


def test_the_cookie_holds_a_random_id_and_the_store_only_its_digest(world):
    c, _ = signed_in(world["app"], REVIEWER[1])
    cookie = session_cookie(c)
    assert len(cookie) >= 40 and REVIEWER[1] not in cookie
    rows = world["store"].read().execute("SELECT * FROM wb_sessions").fetchall()
    assert len(rows) == 1 and cookie not in str(tuple(rows[0]))
    tokens = world["store"].read().execute("SELECT salt, digest FROM wb_tokens").fetchall()
    assert all(REVIEWER[1].encode() not in bytes(r["digest"]) for r in tokens)
    assert len({bytes(r["salt"]) for r in tokens}) == len(tokens)  # a salt per token


def test_a_minted_token_signs_in_and_a_new_one_ends_its_sessions(world):
    tokens = Tokens(world["store"])
    first = tokens.mint("reviewer", "rev-cy")
    assert len(first) >= 32 and first.startswith("sgw_")
    c, _ = signed_in(world["app"], first)
    assert c.get("/queue").status_code == 200
    second = tokens.mint("reviewer", "rev-cy")
    assert c.get("/queue").status_code == 303  # the old token's session ended
    c2, _ = signed_in(world["app"], second)
    assert c2.get("/queue").status_code == 200
    bad = client(world["app"])
    assert bad.post("/login", data={"csrf_token": csrf_of(bad), "token": first}).status_code == 401


# ---- sign-in guessing ------------------------------------------------------------------------------


def test_guessing_tokens_from_one_client_is_locked_out(world):
    c = client(world["app"])
    statuses = [c.post("/login", data={"csrf_token": csrf_of(c), "token": f"guess-{n:04d}-" + "x" * 30}).status_code
                for n in range(50)]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}  # 5 judged, 45 refused
    right = c.post("/login", data={"csrf_token": csrf_of(c), "token": REVIEWER[1]})
    assert right.status_code == 429 and "try again in" in right.text and int(right.headers["retry-after"]) > 200
    other = TestClient(world["app"], follow_redirects=False, client=("10.0.0.9", 4000))
    assert other.post("/login", data={"csrf_token": csrf_of(other), "token": REVIEWER[1]}).status_code == 303
    metrics = other.get("/metrics").text
    assert 'shopguard_workbench_signins_total{outcome="wrong_token"} 5.0' in metrics
    assert 'shopguard_workbench_signins_total{outcome="client_locked"} 46.0' in metrics
    assert 'shopguard_workbench_signin_lockouts_total{scope="client"} 1.0' in metrics


def test_guessing_one_accounts_token_from_many_clients_locks_the_account(world):
    token = Tokens(world["store"]).mint("reviewer", "rev-dee")
    key = token.split("_")[1]
    for n in range(10):  # a botnet: each address guesses once
        c = TestClient(world["app"], follow_redirects=False, client=(f"10.1.0.{n}", 4000))
        guess = f"sgw_{key}_" + "A" * 43
        assert c.post("/login", data={"csrf_token": csrf_of(c), "token": guess}).status_code == 401
    owner = TestClient(world["app"], follow_redirects=False, client=("10.2.0.1", 4000))
    r = owner.post("/login", data={"csrf_token": csrf_of(owner), "token": token})
    assert r.status_code == 429 and "for this account" in r.text
    # the lockout is the account's only: another reviewer signs in from the same address
    assert owner.post("/login", data={"csrf_token": csrf_of(owner), "token": REVIEWER[1]}).status_code == 303


def test_a_lockout_ends_after_its_time(world, tmp_path):
    app = create_app(world["store"], FilePublisher(tmp_path / "g.jsonl"), load_policy(), session_secret="s",
                     client_limit=Limit(failures=2, window_s=60, lockout_s=1))
    c = client(app)
    for _ in range(2):
        c.post("/login", data={"csrf_token": csrf_of(c), "token": "w" + "rong-token-0123456789" * 2})
    assert c.post("/login", data={"csrf_token": csrf_of(c), "token": REVIEWER[1]}).status_code == 429
    time.sleep(1.1)
    assert c.post("/login", data={"csrf_token": csrf_of(c), "token": REVIEWER[1]}).status_code == 303


def test_the_sign_in_form_needs_its_own_csrf_cookie(world):
    c = client(world["app"])
    nonce = csrf_of(c)
    stranger = client(world["app"])  # a cross-site form: it can send the field, not the cookie
    assert stranger.post("/login", data={"csrf_token": nonce, "token": REVIEWER[1]}).status_code == 403
    stranger.cookies.set("shopguard_login", "forged." + nonce)
    assert stranger.post("/login", data={"csrf_token": nonce, "token": REVIEWER[1]}).status_code == 403


# ---- one decision per appeal ------------------------------------------------------------------------


def test_thirty_simultaneous_decisions_on_one_appeal_record_one(world):
    vid = world["alice_v"][0]
    alice, a_csrf = signed_in(world["app"], ALICE[1])
    alice.post("/standing/seller:S1/appeal", data={"csrf_token": a_csrf, "violation_id": vid, "reason": "Genuine."})
    with serve_in_thread(world["app"]) as base:
        reviewers = [http_signed_in(base, token)[:2] for token in (REVIEWER[1], REVIEWER_2[1])]
        results: list[httpx.Response] = []
        start = threading.Barrier(30)

        def decide(n: int) -> None:
            h, csrf = reviewers[n % 2]
            decision = ("upheld", "overturned")[n % 3 % 2]
            start.wait()
            results.append(h.post("/actors/seller:S1/decide", data={
                "csrf_token": csrf, "violation_id": vid, "decision": decision, "reason": f"reason {n}"}))

        threads = [threading.Thread(target=decide, args=(n,)) for n in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for h, _ in reviewers:
            h.close()
    assert sorted(r.status_code for r in results) == [303] + [409] * 29
    decided = [e for e in governance_lines(world["gov"]) if e["type"] == "appeal.decided"]
    assert len(decided) == 1
    first = decided[0]
    refusal = next(r for r in results if r.status_code == 409).text
    assert f"Already decided: {first['decision']} by {first['reviewer_id']}" in refusal


# ---- bad parameters are 400, never 500 ------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/queue?page=99999999999999999999", "/queue?page=0", "/queue?page=-1", "/queue?page=1.5", "/queue?status=x",
    "/violations?since=99999999999999999999", "/violations?until=2026-13-45", "/violations?since=yesterday",
    "/violations?before=99999999999999999999:1", "/violations?before=x", "/violations?type=not_a_type",
    "/violations?enforced=maybe", "/violations?format=xml", "/appeals?state=lost", "/appeals?page=99999999999999999999",
    "/appeals?decision=maybe", "/audit?before=99999999999999999999", "/search?q=" + "x" * 300,
])
def test_bad_parameters_are_400_with_a_reason_and_the_headers(world, path):
    c, _ = signed_in(world["app"], REVIEWER[1])
    r = c.get(path)
    assert r.status_code == 400, (path, r.status_code)
    assert "Traceback" not in r.text and re.search(r"must be|not a time|out of range|too long", r.text)
    assert all(h in r.headers for h in HEADERS)


def test_a_server_error_has_the_headers_and_no_traceback(world):
    c, _ = signed_in(world["app"], REVIEWER[1])
    broken = TestClient(world["app"], follow_redirects=False, raise_server_exceptions=False, cookies=c.cookies)

    with world["store"].transaction() as db:  # a real fault: the table the page reads is gone
        db.execute("DROP TABLE queue")
    r = broken.get("/queue")
    assert r.status_code == 500 and all(h in r.headers for h in HEADERS)
    assert "no such table" not in r.text and "Traceback" not in r.text and "it is logged" in r.text


@pytest.mark.parametrize("path, status", [("/nowhere", 404), ("/static/../app.py", 404), ("/login?x=" + "y" * 5000, 414)])
def test_error_responses_carry_the_headers(world, path, status):
    r = client(world["app"]).get(path)
    assert r.status_code == status and all(h in r.headers for h in HEADERS)


# ---- bodies: size first, CSRF before the rest --------------------------------------------------------


def test_a_body_declared_too_large_is_refused_before_it_is_read(world):
    c, csrf = signed_in(world["app"], REVIEWER[1])
    body = f"csrf_token={csrf}&text=" + "x" * (MAX_BODY_BYTES + 10)
    r = c.post("/cases/note", content=body, headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and all(h in r.headers for h in HEADERS)


def test_a_streamed_body_that_grows_too_large_is_cut_off(world):
    c, csrf = signed_in(world["app"], REVIEWER[1])

    def chunks():
        yield f"csrf_token={csrf}&case=review:seller:S2&text=".encode()
        for _ in range(100):
            yield b"x" * 4096

    r = c.post("/cases/note", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    assert world["store"].read().execute("SELECT count(*) FROM wb_notes").fetchone()[0] == 0


def test_the_csrf_token_is_checked_before_the_rest_of_the_body_arrives(world):
    """A forged form is answered 403 while most of its declared body has not even been sent."""
    with serve_in_thread(world["app"]) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            head = b"csrf_token=forged&text="
            s.sendall(b"POST /cases/note HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                      b"Content-Length: 60000\r\n\r\n" + head)
            response = http.client.HTTPResponse(s)
            response.begin()  # 59,977 bytes never sent: the answer came from the first field
            assert response.status == 403


def test_a_form_of_another_type_is_refused(world):
    c, csrf = signed_in(world["app"], REVIEWER[1])
    r = c.post("/cases/note", files={"text": ("a.txt", b"x")}, data={"csrf_token": csrf})
    assert r.status_code == 415


# ---- cookie, secrets, ids -------------------------------------------------------------------------------


def test_https_only_makes_the_cookie_secure_and_host_only(world, tmp_path):
    app = create_app(world["store"], FilePublisher(tmp_path / "g.jsonl"), load_policy(), session_secret="s",
                     https_only=True)
    c = TestClient(app, base_url="https://testserver", follow_redirects=False)
    r = c.post("/login", data={"csrf_token": csrf_of(c), "token": REVIEWER[1]})
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("__Host-shopguard_session=") and "Secure" in cookie and "HttpOnly" in cookie
    assert "Path=/" in cookie and "max-age=31536000" in c.get("/login").headers["strict-transport-security"]


def test_a_malformed_token_variable_never_prints_a_token(tmp_path, capsys, monkeypatch):
    (tmp_path / "out").mkdir()
    secret = "Zq8v-ThisIsTheSecretTokenValue-4471xx"
    for value in (f"rev-ana:{secret}", f"rev-ana={secret},{secret}", f"=  {secret}", f"rev-ana={secret[:20]}"):
        monkeypatch.setenv("SHOPGUARD_WORKBENCH_REVIEWERS", value)
        assert console_main(["--out", str(tmp_path / "out"), "--port", "0"]) == 2
        err = capsys.readouterr().err
        assert "SHOPGUARD_WORKBENCH_REVIEWERS" in err or "rev-ana" in err
        assert secret not in err and secret[:20] not in err


def test_failed_sign_ins_log_no_token(world, caplog):
    c = client(world["app"])
    guess = "sgw_0123456789ab_" + "S3cretGuessValue" * 3
    with caplog.at_level(logging.DEBUG):
        c.post("/login", data={"csrf_token": csrf_of(c), "token": guess})
        c.post("/login", data={"csrf_token": csrf_of(c), "token": REVIEWER[1]})
    assert "sign-in refused" in caplog.text and "0123456789ab" in caplog.text
    assert "S3cretGuessValue" not in caplog.text and REVIEWER[1] not in caplog.text


def http_signed_in(base: str, token: str) -> tuple[httpx.Client, str, str]:
    """A client signed in over real HTTP: (client, CSRF token, home path)."""
    h = httpx.Client(base_url=base, follow_redirects=False)
    nonce = re.search(r'name="csrf_token" value="([^"]+)"', h.get("/login").text).group(1)
    home = h.post("/login", data={"csrf_token": nonce, "token": token}).headers["location"]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', h.get(home).text).group(1)
    return h, csrf, home


@pytest.mark.parametrize("actor", ["seller:a/b", "seller:..%2F..", "creator:x?y#z", "seller:ü&=%", "seller:/"])
def test_ids_with_any_contract_character_are_routable(tmp_path, actor):
    """Over real HTTP (Starlette's test client decodes paths twice, a server once)."""
    out = tmp_path / "out"
    [v] = ledger_outputs(out, [(actor, "listing_spam", 1)])
    store = Store(out / "wb.sqlite", FileFeed(out, [tmp_path / "g.jsonl"]))
    store.sync()
    token = "actor-token-for-odd-ids-0123456789abcdef"
    Tokens(store).load_configured(dict([REVIEWER]), {actor: token}, "config")
    app = create_app(store, FilePublisher(tmp_path / "g.jsonl"), load_policy(), session_secret="s")
    with serve_in_thread(app) as base:
        seller, csrf, home = http_signed_in(base, token)
        page = seller.get(home)
        assert page.status_code == 200 and v.explanation in page.text and "Your standing" in page.text
        r = seller.post(f"{home}/appeal", data={"csrf_token": csrf, "violation_id": v.violation_id,
                                                "reason": "Fine."})
        assert r.status_code == 303 and governance_lines(tmp_path / "g.jsonl")[0]["actor"] == actor
        rev, _, _ = http_signed_in(base, REVIEWER[1])
        actor_page = rev.get(home.replace("/standing/", "/actors/"))
        assert actor_page.status_code == 200 and v.violation_id in actor_page.text
        seller.close()
        rev.close()
    store.close()


def test_a_linked_accounts_explanation_never_reaches_the_seller(tmp_path):
    import msgspec

    from pipeline.contract.records import encode
    from pipeline.enforce.ledger import example_violation

    out = tmp_path / "out"
    ledger_outputs(out, [])
    v = example_violation("seller:S5", "linked_accounts", load_policy(), ts=T0 + MIN,
                          evidence={"suspended_actor": "seller:S9", "identifier_kind": "device"})
    v = msgspec.structs.replace(v, explanation="Your account uses the same device as seller:S9, which is "
                                               "suspended, and a suspended seller may not keep trading.")
    (out / "violations.jsonl").write_bytes(encode(v) + b"\n")
    store = Store(out / "wb.sqlite", FileFeed(out))
    store.sync()
    Tokens(store).load_configured(dict([REVIEWER]), {"seller:S5": ALICE[1]}, "config")
    app = create_app(store, FilePublisher(tmp_path / "g.jsonl"), load_policy(), session_secret="s")
    seller, _ = signed_in(app, ALICE[1])
    page = seller.get("/standing/seller:S5").text
    card = page[page.index(f'id="{v.violation_id}"'):]
    card = card[:card.index("</article>")]
    assert "seller:S9" not in page and "suspended" not in card.lower()
    assert "shares a device or a payout account" in card
    rev, _ = signed_in(app, REVIEWER[1])
    assert "seller:S9" in rev.get("/actors/seller:S5").text  # the reviewer keeps the evidence
    store.close()


@pytest.mark.parametrize("body, words", [
    ("case=review:seller:S2&text=" + "x" * 2001, "too long"),
    ("case=review:seller:S2&text=%FF%FE", "UTF-8"),
    ("case=review:seller:S2&case=review:seller:S1&text=x", "once"),
])
def test_bad_form_fields_are_400_with_a_reason(world, body, words):
    c, csrf = signed_in(world["app"], REVIEWER[1])
    r = c.post("/cases/note", content=f"csrf_token={csrf}&{body}",
               headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and words in r.text and all(h in r.headers for h in HEADERS)
    assert world["store"].read().execute("SELECT count(*) FROM wb_notes").fetchone()[0] == 0


def test_the_workbench_never_imports_the_engine():
    import subprocess
    import sys

    code = ("import sys, workbench.app, workbench.reviewer, workbench.console, workbench.bench; "
            "print([m for m in sys.modules if m.startswith('pipeline.engine')])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"
