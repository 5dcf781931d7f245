"""Who may see and do what in the workbench.

The rules (workbench/app.py): reviewers see everything and decide
appeals, and every decision records the signed-in reviewer; a seller or
creator sees only its own standing page (another's is 404, exactly as if it
did not exist), never a console page (403), and can appeal and mark lessons
done only on its own violations; every POST needs the session's CSRF token;
nothing changes (no governance event is written) when a request is refused.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from pipeline.enforce.policy import load_policy
from pipeline.cli.console import main as console_main
from workbench.site import create_app
from workbench.auth import AccessError, Tokens, configured_tokens
from workbench.publish import FilePublisher
from workbench.store import FileFeed, Store
from tests.conftest import read_jsonl
from tests.test_workbench_store import T0, MIN, ledger_outputs, review_line

REVIEWER = ("rev-ana", "reviewer-token-ana-0123456789abcdefghij")
REVIEWER_2 = ("rev-bo", "reviewer-token-bo-0123456789abcdefghijk")
ALICE = ("seller:S1", "actor-token-alice-0123456789abcdefghij")
BOB = ("seller:S2", "actor-token-bob-0123456789abcdefghijkl")


@pytest.fixture
def world(tmp_path):
    """Two sellers with violations, a review queue, a console over them; the governance file it writes."""
    out = tmp_path / "out"
    violations = ledger_outputs(out, [("seller:S1", "counterfeit_listing", 1), ("seller:S1", "listing_spam", 2),
                                      ("seller:S2", "fake_discount", 3), ("seller:S2", "order_brushing", 4)])
    (out / "review_queue.jsonl").write_bytes(review_line("seller:S2", 0.93, T0 + 5 * MIN))
    gov = tmp_path / "governance.jsonl"
    store = Store(out / "wb.sqlite", FileFeed(out, [gov]))
    store.sync()
    tokens = Tokens(store)
    tokens.load_configured(dict([REVIEWER, REVIEWER_2]), dict([ALICE, BOB]), "config")
    app = create_app(store, FilePublisher(gov), load_policy(), session_secret="test-secret")
    yield {"app": app, "store": store, "gov": gov, "tokens": tokens,
           "alice_v": [v.violation_id for v in violations if v.actor == "seller:S1"],
           "bob_v": [v.violation_id for v in violations if v.actor == "seller:S2"]}
    store.close()


def client(app) -> TestClient:
    return TestClient(app, follow_redirects=False)


def csrf_of(c: TestClient, path: str = "/login") -> str:
    page = c.get(path)
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def signed_in(app, token: str) -> tuple[TestClient, str]:
    c = client(app)
    r = c.post("/login", data={"csrf_token": csrf_of(c), "token": token})
    assert r.status_code == 303, r.text
    return c, csrf_of(c, r.headers["location"])


def governance_lines(gov: Path) -> list[dict]:
    return read_jsonl(gov) if gov.exists() else []


def post_routes(app) -> list[str]:
    return [r.path for r in app.routes if isinstance(r, Route) and "POST" in (r.methods or ())]


# ---- signing in ------------------------------------------------------------------------------------


def test_pages_need_a_sign_in(world):
    c = client(world["app"])
    for path in ("/", "/queue", "/violations", "/appeals", "/actors/seller:S1", "/standing/seller:S1"):
        r = c.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
    assert c.get("/healthz").status_code == 200


def test_a_wrong_token_is_refused(world):
    c = client(world["app"])
    r = c.post("/login", data={"csrf_token": csrf_of(c), "token": "not-a-token-at-all-000"})
    assert r.status_code == 401 and "not known" in r.text
    assert c.get("/queue").status_code == 303


def test_sign_in_takes_each_role_home_and_never_off_site(world):
    c, _ = signed_in(world["app"], REVIEWER[1])
    assert c.get("/").headers["location"] == "/queue"
    c2, _ = signed_in(world["app"], ALICE[1])
    assert c2.get("/").headers["location"] == "/standing/seller:S1"
    c3 = client(world["app"])
    r = c3.post("/login", data={"csrf_token": csrf_of(c3), "token": REVIEWER[1], "next": "//evil.example/x"})
    assert r.headers["location"] == "/queue"


def test_the_session_cookie_is_http_only_and_same_site(world):
    c = client(world["app"])
    r = c.post("/login", data={"csrf_token": csrf_of(c), "token": REVIEWER[1]})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    page = c.get("/queue")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_a_token_removed_from_the_configuration_ends_its_sessions(world):
    c, _ = signed_in(world["app"], ALICE[1])
    assert c.get("/standing/seller:S1").status_code == 200
    world["tokens"].load_configured(dict([REVIEWER]), dict([BOB]), "config")  # the console restarted without it
    assert c.get("/standing/seller:S1").status_code == 303


# ---- an actor sees only its own standing -------------------------------------------------------


def test_an_actor_sees_its_own_standing(world):
    c, _ = signed_in(world["app"], ALICE[1])
    page = c.get("/standing/seller:S1")
    assert page.status_code == 200
    assert "Your standing" in page.text and "Selling branded goods" in page.text
    assert 'id="active-points">26<' in page.text


def test_an_actor_cannot_read_another_actors_page(world):
    c, _ = signed_in(world["app"], ALICE[1])
    other = c.get("/standing/seller:S2")
    nobody = c.get("/standing/seller:S404")
    assert other.status_code == nobody.status_code == 404
    assert "seller:S2" not in other.text  # nothing tells Alice that Bob exists
    assert other.text.replace("seller:S2", "") == nobody.text.replace("seller:S404", "")


def test_an_actor_cannot_open_console_pages(world):
    c, _ = signed_in(world["app"], ALICE[1])
    for path in ("/queue", "/violations", "/appeals", "/actors/seller:S1", "/actors/seller:S2",
                 "/violations?actor=seller:S2"):
        assert c.get(path).status_code == 403, path


def test_an_actor_cannot_act_on_another_actors_page(world):
    c, csrf = signed_in(world["app"], ALICE[1])
    bob_v = world["bob_v"][0]
    refused = [
        c.post("/standing/seller:S2/appeal", data={"csrf_token": csrf, "violation_id": bob_v, "reason": "x"}),
        c.post("/standing/seller:S2/lesson", data={"csrf_token": csrf, "module_id": "edu-honest-pricing"}),
        # through its own page, naming someone else's violation
        c.post("/standing/seller:S1/appeal", data={"csrf_token": csrf, "violation_id": bob_v, "reason": "x"}),
        c.post("/standing/seller:S1/lesson", data={"csrf_token": csrf, "module_id": "edu-honest-pricing"}),
    ]
    assert [r.status_code for r in refused] == [404, 404, 404, 404]
    assert governance_lines(world["gov"]) == []


def test_an_actor_cannot_decide_appeals(world):
    alice, a_csrf = signed_in(world["app"], ALICE[1])
    vid = world["alice_v"][0]
    assert alice.post("/standing/seller:S1/appeal",
                      data={"csrf_token": a_csrf, "violation_id": vid, "reason": "Genuine goods."}).status_code == 303
    for actor in ("seller:S1", "seller:S2"):
        r = alice.post(f"/actors/{actor}/decide",
                       data={"csrf_token": a_csrf, "violation_id": vid, "decision": "overturned"})
        assert r.status_code == 403
    assert [e["type"] for e in governance_lines(world["gov"])] == ["appeal.filed"]


def test_a_reviewer_cannot_appeal_or_take_lessons_in_an_actors_name(world):
    c, csrf = signed_in(world["app"], REVIEWER[1])
    assert c.get("/standing/seller:S1").status_code == 200  # may look
    r1 = c.post("/standing/seller:S1/appeal", data={"csrf_token": csrf, "violation_id": world["alice_v"][0],
                                                    "reason": "x"})
    r2 = c.post("/standing/seller:S1/lesson", data={"csrf_token": csrf, "module_id": "edu-intellectual-property"})
    assert r1.status_code == r2.status_code == 403
    assert governance_lines(world["gov"]) == []


def test_a_reviewer_gets_404_for_an_unknown_actor(world):
    c, _ = signed_in(world["app"], REVIEWER[1])
    assert c.get("/actors/seller:S404").status_code == 404
    assert c.get("/standing/seller:S404").status_code == 404


# ---- CSRF -------------------------------------------------------------------------------------------------


def test_every_post_route_is_covered_here(world):
    assert sorted(post_routes(world["app"])) == sorted([
        "/login", "/logout", "/actors/{actor:path}/decide", "/actors/{actor:path}/overturn",
        "/actors/{actor:path}/review", "/cases/claim", "/cases/release", "/cases/note", "/cases/escalate",
        "/appeals/bulk",
        "/standing/{actor:path}/appeal", "/standing/{actor:path}/lesson"])


@pytest.mark.parametrize("who", [REVIEWER, ALICE])
def test_posts_without_a_valid_csrf_token_are_refused(world, who):
    c, csrf = signed_in(world["app"], who[1])
    other, other_csrf = signed_in(world["app"], BOB[1])  # a valid token, but of another session
    vid = world["alice_v"][0]
    forms = {
        "/login": {"token": who[1]},
        "/logout": {},
        "/actors/seller:S1/decide": {"violation_id": vid, "decision": "overturned", "reason": "x"},
        "/actors/seller:S1/overturn": {"violation_id": vid, "reason": "x"},
        "/actors/seller:S2/review": {"decision": "dismissed"},
        "/cases/claim": {"case": "review:seller:S2"},
        "/cases/release": {"case": "review:seller:S2"},
        "/cases/note": {"case": "review:seller:S2", "text": "x"},
        "/cases/escalate": {"case": "review:seller:S2", "text": "x"},
        "/appeals/bulk": {"appeal_id": "ap-x", "decision": "upheld", "reason": "x", "confirm": "yes"},
        "/standing/seller:S1/appeal": {"violation_id": vid, "reason": "Genuine goods."},
        "/standing/seller:S1/lesson": {"module_id": "edu-intellectual-property"},
    }
    assert {p.replace("seller:S1", "{actor:path}").replace("seller:S2", "{actor:path}") for p in forms} == \
        set(post_routes(world["app"]))
    for path, form in forms.items():
        for token in (None, "", "forged-" + csrf, other_csrf):
            data = dict(form) if token is None else {"csrf_token": token, **form}
            r = c.post(path, data=data)
            assert r.status_code == 403, (path, token, r.status_code)
            assert "security token" in r.text
    assert governance_lines(world["gov"]) == []
    assert c.get("/").status_code == 303 and c.get("/").headers["location"] != "/login"  # still signed in


def test_a_post_with_the_csrf_token_but_no_session_is_refused(world):
    c, csrf = signed_in(world["app"], ALICE[1])
    stranger = client(world["app"])  # no cookie: cannot carry Alice's token anywhere useful
    r = stranger.post("/standing/seller:S1/lesson", data={"csrf_token": csrf, "module_id": "edu-listing-quality"})
    assert r.status_code == 403
    assert governance_lines(world["gov"]) == []


def test_a_new_sign_in_gets_a_new_csrf_token(world):
    c = client(world["app"])
    before = csrf_of(c)
    r = c.post("/login", data={"csrf_token": before, "token": ALICE[1]})
    after = csrf_of(c, r.headers["location"])
    assert before != after
    assert c.post("/standing/seller:S1/lesson", data={"csrf_token": before, "module_id": "edu-listing-quality"}
                  ).status_code == 403


# ---- what the allowed actions write --------------------------------------------------------------------


def test_appeal_then_decision_records_the_reviewer(world):
    vid = world["alice_v"][0]
    alice, a_csrf = signed_in(world["app"], ALICE[1])
    r = alice.post("/standing/seller:S1/appeal", data={"csrf_token": a_csrf, "violation_id": vid,
                                                       "reason": "  Genuine,\n invoice attached.  "})
    assert r.status_code == 303
    assert "Appeal sent" in alice.get("/standing/seller:S1").text
    assert alice.post("/standing/seller:S1/appeal", data={"csrf_token": a_csrf, "violation_id": vid,
                                                          "reason": "again"}).status_code == 409

    rev, r_csrf = signed_in(world["app"], REVIEWER_2[1])
    assert vid in rev.get("/appeals").text
    page = rev.get("/actors/seller:S1")
    assert "Genuine, invoice attached." in page.text and 'value="overturned"' in page.text
    r = rev.post("/actors/seller:S1/decide", data={"csrf_token": r_csrf, "violation_id": vid,
                                                  "decision": "overturned", "reviewer_id": "someone-else",
                                                  "reason": "The invoice shows genuine goods."})
    assert r.status_code == 303
    filed, decided = governance_lines(world["gov"])
    assert filed["type"] == "appeal.filed" and filed["actor"] == "seller:S1" and filed["violation_id"] == vid
    assert filed["reason"] == "Genuine, invoice attached."
    assert decided == {**decided, "type": "appeal.decided", "appeal_id": filed["appeal_id"], "violation_id": vid,
                       "actor": "seller:S1", "decision": "overturned", "reviewer_id": "rev-bo",
                       "reason": "The invoice shows genuine goods."}
    assert decided["ts"] >= filed["ts"] >= world["store"].violation(vid)["detected_at"]
    again = rev.post("/actors/seller:S1/decide", data={"csrf_token": r_csrf, "violation_id": vid,
                                                      "decision": "upheld", "reason": "No."})
    assert again.status_code == 409 and "Already decided: overturned by rev-bo" in again.text
    assert "overturned by rev-bo" in rev.get("/actors/seller:S1").text
    seller_page = alice.get("/standing/seller:S1").text
    assert "overturned" in seller_page and "The invoice shows genuine goods." in seller_page
    assert len(governance_lines(world["gov"])) == 2


def test_a_decision_needs_an_appeal_and_a_real_decision(world):
    rev, csrf = signed_in(world["app"], REVIEWER[1])
    vid = world["alice_v"][1]
    assert rev.post("/actors/seller:S1/decide", data={"csrf_token": csrf, "violation_id": vid, "reason": "x",
                                                     "decision": "overturned"}).status_code == 409
    assert rev.post("/actors/seller:S1/decide", data={"csrf_token": csrf, "violation_id": vid, "reason": "x",
                                                     "decision": "maybe"}).status_code == 400
    # a violation of another actor named under this actor's URL
    assert rev.post("/actors/seller:S1/decide", data={"csrf_token": csrf, "violation_id": world["bob_v"][0],
                                                     "decision": "upheld", "reason": "x"}).status_code == 404
    assert governance_lines(world["gov"]) == []


def test_marking_a_lesson_done(world):
    alice, csrf = signed_in(world["app"], ALICE[1])
    r = alice.post("/standing/seller:S1/lesson", data={"csrf_token": csrf, "module_id": "edu-listing-quality"})
    assert r.status_code == 303
    [event] = governance_lines(world["gov"])
    assert event["type"] == "education.completed" and event["actor"] == "seller:S1"
    assert event["module_id"] == "edu-listing-quality"
    assert "Lesson completed on" in alice.get("/standing/seller:S1").text
    assert alice.post("/standing/seller:S1/lesson", data={"csrf_token": csrf, "module_id": "edu-made-up"}
                      ).status_code == 404


def test_reviewer_pages_render(world):
    rev, _ = signed_in(world["app"], REVIEWER[1])
    queue = rev.get("/queue")
    assert queue.status_code == 200 and "seller:S2" in queue.text and "orders_per_hour" in queue.text
    v = rev.get("/violations?type=fake_discount&enforced=yes")
    assert v.status_code == 200 and 'id="count">1 matching violation,' in v.text
    bad = rev.get("/violations?since=yesterday")
    assert bad.status_code == 400 and "is not a time" in bad.text
    actor = rev.get("/actors/seller:S2")
    assert actor.status_code == 200 and "Evidence" in actor.text and "Standing over time" in actor.text


# ---- configuration -------------------------------------------------------------------------------------


def test_tokens_must_be_long_unique_and_name_real_ids(tmp_path):
    tokens = Tokens(Store(tmp_path / "wb.sqlite", FileFeed(tmp_path)))
    for weak in ("short", "a" * 16, "a" * 40, "abababababababababababababababab"):
        with pytest.raises(AccessError, match="at least 32 characters") as err:
            tokens.load_configured({"rev-a": weak}, {}, "config")
        assert weak not in str(err.value)
    with pytest.raises(AccessError, match="every token must be different"):
        tokens.load_configured({"rev-a": REVIEWER[1]}, {"seller:S1": REVIEWER[1]}, "config")
    with pytest.raises(AccessError, match="not a valid actor"):
        tokens.load_configured({}, {"buyer:B1": ALICE[1]}, "config")


def test_tokens_come_from_the_configuration_and_the_environment(tmp_path):
    from pipeline.config import load

    cfg = load(None, {"workbench": {"reviewers": {"rev-ana": REVIEWER[1]}}}).workbench
    env = {"SHOPGUARD_WORKBENCH_ACTORS": f"seller:S1={ALICE[1]}, creator:C2={BOB[1]}"}
    tokens = Tokens(Store(tmp_path / "wb.sqlite", FileFeed(tmp_path)))
    configured_tokens(tokens, cfg, env)
    assert tokens.identify(REVIEWER[1])[1].id == "rev-ana"
    assert tokens.identify(BOB[1])[1].id == "creator:C2"
    assert tokens.identify(BOB[1] + "x") is None
    assert tokens.counts() == (1, 2)


def test_the_console_command_explains_what_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SHOPGUARD_WORKBENCH_REVIEWERS", raising=False)
    (tmp_path / "out").mkdir()
    assert console_main(["--out", str(tmp_path / "out"), "--port", "0"]) == 2
    assert "no reviewer can sign in" in capsys.readouterr().err
    monkeypatch.setenv("SHOPGUARD_WORKBENCH_REVIEWERS", "rev-ana=" + REVIEWER[1])
    assert console_main(["--out", str(tmp_path / "missing"), "--port", "0"]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_the_token_command_mints_lists_and_revokes(tmp_path, capsys):
    from workbench.auth import Identity

    out = tmp_path / "out"
    out.mkdir()
    assert console_main(["token", "rev-cy", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    token = printed.out.strip()
    assert len(token) >= 32 and len(set(token)) >= 12 and "shown once" in printed.err
    assert console_main(["token", "seller:S/7", "--out", str(out)]) == 0
    seller_token = capsys.readouterr().out.strip()
    store = Store(out / "workbench.sqlite", FileFeed(out))
    tokens = Tokens(store)
    assert tokens.identify(token)[1] == Identity("reviewer", "rev-cy")
    assert tokens.identify(seller_token)[1] == Identity("actor", "seller:S/7")
    stored = b"".join(p.read_bytes() for p in out.glob("workbench.sqlite*"))
    assert token.encode() not in stored and token.split("_", 2)[2].encode() not in stored  # only salted digests
    assert console_main(["token", "--list", "--out", str(out)]) == 0
    listing = capsys.readouterr().out
    assert "rev-cy" in listing and "seller:S/7" in listing and token not in listing
    assert console_main(["token", "rev-cy", "--revoke", "--out", str(out)]) == 0
    assert tokens.identify(token) is None and tokens.identify(seller_token) is not None
    assert console_main(["token", "rev-cy"]) == 2
    assert "--out DIR" in capsys.readouterr().err
    store.close()
