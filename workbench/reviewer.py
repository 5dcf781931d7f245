"""The reviewer console's pages and actions (all need a reviewer's session).

Lists (each also as CSV with `?format=csv`):

- `/queue`: review-queue cases (actors a model finds unusual), highest score
  first, filtered by case status and assignee;
- `/appeals`: appeals waiting (oldest first) or decided (newest first), by
  type, decision, reviewer, assignee, actor prefix; bulk decisions;
- `/violations`: every violation, newest first, by type, detector,
  severity, mode, time, actor (exact, or `actor_prefix`) and listing
  or LIVE id (`ref`);
- `/audit`: every action a person took in the workbench, newest first.

Also `/search?q=` (actor prefix, violation, appeal, listing or LIVE id),
`/charts` and one actor's history, `/actors/{actor}`, where a reviewer
claims, assigns and annotates cases, decides appeals with a reason,
overturns a violation nobody appealed, and dismisses or escalates the
actor's review-queue case. Verdicts are governance events (`cases.py`).
"""

from __future__ import annotations

from typing import Any, Iterator
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from workbench.app import PAGE_SIZE, Workbench, local_path, post
from workbench.rewards import rewards_view
from workbench.cases import MAX_NOTE_CHARS, STATUSES, CaseRef, Change, ClaimedByOther
from workbench.charts import CHARTS, svg
from workbench.export import csv_response, paged
from workbench.publish import MAX_REASON_CHARS, appeal_decided, review_decided, violation_overturned
from workbench.render import actor_url, feature_values, health_svg, when
from workbench.store import COUNT_CAP
from workbench.web import SVG_POLICY, Params, field, many

DECISIONS = ("upheld", "overturned")
VERDICTS = ("dismissed", "escalated")
MAX_PAGE = 100_000
MAX_BULK = 200
APPEAL_STATES = ("waiting", "decided", "all")
QUEUE_COLUMNS = ["actor", "score", "model", "status", "assignee", "level", "health", "active_points", "violations",
                 "entries", "ts", "last_ts", "features"]
VIOLATION_COLUMNS = ["violation_id", "actor", "violation_type", "severity", "points", "detector", "confidence",
                     "enforced", "detected_at", "window_start", "window_end", "policy_id", "explanation", "evidence"]
APPEAL_COLUMNS = ["appeal_id", "violation_id", "actor", "violation_type", "detector", "filed_at", "reason",
                  "status", "assignee", "decision", "reviewer_id", "decision_reason", "decided_at"]
AUDIT_COLUMNS = ["id", "at", "who", "role", "action", "target", "detail"]


def reviewer_routes(wb: Workbench) -> list[BaseRoute]:
    store, desk = wb.store, wb.desk

    def csv_wanted(params: Params) -> bool:
        return params.choice("format", ("html", "csv")) == "csv"

    # ---- lists ----

    def queue_page(request: Request) -> Response:
        wb.reviewer(request)
        q = Params(request)
        status = q.choice("status", ("active", "all", *STATUSES)) or "active"
        status_filter = None if status == "all" else status
        assignee = q.text("assignee")
        if csv_wanted(q):
            rows = paged(lambda offset, limit: store.queue(status=status_filter, assignee=assignee, limit=limit,
                                                           offset=offset))
            return csv_response("review-queue", QUEUE_COLUMNS, rows)
        page = q.integer("page", 1, minimum=1, maximum=MAX_PAGE)
        rows = store.queue(status=status_filter, assignee=assignee, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        total = store.queue_size(status=status_filter, assignee=assignee)
        keep = {k: v for k, v in (("status", status), ("assignee", assignee)) if v}
        return wb.render(request, "queue.html", rows=rows, page=page, total=total, page_size=PAGE_SIZE,
                         case_status=status, assignee=assignee or "", reviewers=desk.reviewers(), statuses=STATUSES,
                         open_appeals=store.count_waiting_appeals(), query=urlencode(keep))

    def known_types() -> list[str]:
        """The catalog's types and any the outputs hold (a filter on a type with no violations yet is fine)."""
        return sorted(set(wb.policy.types) | set(store.facets()["violation_type"]))

    def violation_filters(q: Params) -> dict[str, Any]:
        facets = store.facets()
        return {"violation_type": q.choice("type", known_types()),
                "detector": q.choice("detector", facets["detector"]),
                "severity": q.choice("severity", facets["severity"]),
                "actor": q.text("actor"), "actor_prefix": q.text("actor_prefix"), "ref": q.text("ref"),
                "enforced": {"yes": True, "no": False, None: None}[q.choice("enforced", ("yes", "no"))],
                "since": q.time("since"), "until": q.time("until")}

    def all_violations(filters: dict[str, Any]) -> Iterator[dict[str, Any]]:
        before = None
        while True:
            rows = store.violations(**filters, before=before, limit=2000)
            yield from rows
            if len(rows) < 2000:
                return
            before = (rows[-1]["detected_at"], rows[-1]["id"])

    def violations_page(request: Request) -> Response:
        wb.reviewer(request)
        q = Params(request)
        filters = violation_filters(q)
        if csv_wanted(q):
            return csv_response("violations", VIOLATION_COLUMNS, all_violations(filters))
        before = q.cursor("before")
        rows = store.violations(**filters, before=before, limit=PAGE_SIZE + 1)
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        keep = {k: v for k, v in q.raw.items() if k not in ("before", "format") and v}
        next_url = ("/violations?" + urlencode({**keep, "before": f"{rows[-1]['detected_at']}:{rows[-1]['id']}"})
                    if more else None)
        return wb.render(request, "violations.html", rows=rows, count=store.count_violations(**filters),
                         count_cap=COUNT_CAP, facets=store.facets(), q=q.raw, next_url=next_url,
                         first_url="/violations?" + urlencode(keep) if before else None,
                         csv_url="/violations?" + urlencode({**keep, "format": "csv"}))

    def appeal_filters(q: Params) -> dict[str, Any]:
        return {"state": q.choice("state", APPEAL_STATES) or "waiting",
                "violation_type": q.choice("type", known_types()),
                "decision": q.choice("decision", DECISIONS), "reviewer": q.text("reviewer"),
                "assignee": q.text("assignee"), "actor": q.text("actor"),
                "status": q.choice("status", STATUSES)}

    def appeals_page(request: Request) -> Response:
        wb.reviewer(request)
        q = Params(request)
        filters = appeal_filters(q)
        if csv_wanted(q):
            return csv_response("appeals", APPEAL_COLUMNS, paged(
                lambda offset, limit: store.appeal_list(**filters, limit=limit, offset=offset)))
        page = q.integer("page", 1, minimum=1, maximum=MAX_PAGE)
        rows = store.appeal_list(**filters, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
        keep = {k: v for k, v in q.raw.items() if k not in ("page", "format") and v}
        return wb.render(request, "appeals.html", rows=rows[:PAGE_SIZE], more=len(rows) > PAGE_SIZE, page=page,
                         f=filters, q=q.raw, facets=store.facets(), reviewers=desk.reviewers(),
                         statuses=STATUSES, query=urlencode(keep))

    def audit_page(request: Request) -> Response:
        wb.reviewer(request)
        q = Params(request)
        who, action = q.text("who"), q.text("action")
        if csv_wanted(q):
            def every() -> Iterator[dict[str, Any]]:
                before = None
                while True:
                    rows = desk.audit_log(who=who, action=action, before=before, limit=5000)
                    yield from rows
                    if len(rows) < 5000:
                        return
                    before = rows[-1]["id"]
            return csv_response("audit-log", AUDIT_COLUMNS, every())
        before = q.integer("before", 0, minimum=1) or None
        rows = desk.audit_log(who=who, action=action, before=before, limit=PAGE_SIZE + 1)
        keep = {k: v for k, v in (("who", who), ("action", action)) if v}
        return wb.render(request, "audit.html", rows=rows[:PAGE_SIZE], facets=desk.audit_facets(), who=who or "",
                         action=action or "", query=urlencode(keep),
                         next_url=("/audit?" + urlencode({**keep, "before": rows[PAGE_SIZE - 1]["id"]})
                                   if len(rows) > PAGE_SIZE else None))

    def search_page(request: Request) -> Response:
        wb.reviewer(request)
        text = Params(request).text("q") or ""
        found = store.search(text) if text else None
        return wb.render(request, "search.html", text=text, found=found)

    def charts_page(request: Request) -> Response:
        wb.reviewer(request)
        tables = {name: data_of(store) for name, (_title, data_of, _kind) in CHARTS.items()}
        return wb.render(request, "charts.html", charts=CHARTS, tables=tables)

    def chart_svg(request: Request) -> Response:
        wb.reviewer(request)
        name = request.path_params["name"]
        if name not in CHARTS:
            raise HTTPException(404, f"No chart {name}: see /charts for the charts there are.")
        return Response(svg(name, store), media_type="image/svg+xml",
                        headers={"content-security-policy": SVG_POLICY.decode()})

    # ---- one actor ----

    def actor_page(request: Request) -> Response:
        actor = request.path_params["actor"]
        wb.reviewer(request)
        if not store.known_actor(actor):
            raise HTTPException(404, f"No seller or creator {actor} in the outputs.")
        violations = store.violations(actor=actor, limit=500)
        actions_of: dict[str, list[dict[str, Any]]] = {}
        actions = store.actions(actor)
        for a in actions:
            for vid in a["violation_ids"]:
                actions_of.setdefault(vid, []).append(a)
        history = store.standing_history(actor)
        now = store.standing_now(actor)
        return wb.render(request, "actor.html", actor=actor, now=now, history=history,
                         rewards=rewards_view(actor, now, store.incentives(actor), wb.policy),
                         health_svg=health_svg(history), violations=violations, actions=actions,
                         actions_of=actions_of, appeals=store.appeals(actor), review=store.review_entries(actor),
                         queue_entry=store.queue_entry(actor), cases=desk.cases_of_actor(actor),
                         notes=desk.notes_of_actor(actor), reviewers=desk.reviewers(),
                         governance=store.governance(actor), dead_letters=store.dead_letters(actor))

    def violation_of(actor: str, violation_id: str) -> dict[str, Any]:
        violation = store.violation(violation_id)
        if violation is None or violation["actor"] != actor:
            raise HTTPException(404, f"No violation {violation_id} of {actor}.")
        return violation

    def reason_of(form: dict[str, Any], required: bool = True) -> str:
        reason = " ".join(field(form, "reason", MAX_REASON_CHARS).split())
        if required and not reason:
            raise HTTPException(400, "Give a reason: the seller or creator reads it with the decision.")
        return reason

    def decide_one(request: Request, actor: str, violation_id: str, decision: str, reason: str) -> str:
        """Publish one appeal decision; returns the appeal id. 409 if it was decided already."""
        identity = wb.reviewer(request)
        violation = violation_of(actor, violation_id)
        appeal = store.appeals(actor).get(violation_id)
        if appeal is None or not appeal["appeal_id"]:
            raise HTTPException(409, f"{violation_id} has no appeal to decide: overturn it instead if it is wrong.")
        if appeal["decision"]:
            raise HTTPException(409, f"Already decided: {appeal['decision']} by {appeal['reviewer_id']} at "
                                     f"{when(appeal['decided_at'])}. Your decision was not recorded.")
        ts = wb.stamp(max(violation["detected_at"], appeal["filed_at"] or 0))
        event = appeal_decided(appeal["appeal_id"], violation_id, actor, decision, identity.id, ts=ts, reason=reason)
        wb.publish(request, event, Change(CaseRef("appeal", appeal["appeal_id"], actor), "decided",
                                          f"decided_{decision}", violation_id, reason[:200]))
        return appeal["appeal_id"]

    def sent(request: Request, actor: str, violation_id: str, what: str) -> Response:
        """Back to the violation, saying what was sent and when the job will apply it."""
        wb.flash(request, f"{what} by {wb.identity(request).id}. The job applies it when it reads "
                          f"{wb.publisher.name}.")
        return wb.redirect(f"{actor_url(actor)}#{violation_id}")

    def decide(request: Request, form: dict[str, Any]) -> Response:
        actor = request.path_params["actor"]
        wb.reviewer(request)
        decision = field(form, "decision", allowed=DECISIONS)
        violation_id = field(form, "violation_id", required=True)
        appeal_id = decide_one(request, actor, violation_id, decision, reason_of(form))
        return sent(request, actor, violation_id, f"Appeal {appeal_id} {decision}")

    def overturn(request: Request, form: dict[str, Any]) -> Response:
        actor = request.path_params["actor"]
        identity = wb.reviewer(request)
        violation_id = field(form, "violation_id", required=True)
        violation = violation_of(actor, violation_id)
        reason = reason_of(form)
        appeal = store.appeals(actor).get(violation_id)
        if appeal and appeal["decision"]:
            raise HTTPException(409, f"Already decided: {appeal['decision']} by {appeal['reviewer_id']}.")
        if appeal and appeal["appeal_id"]:
            raise HTTPException(409, f"{violation_id} has an appeal waiting: decide the appeal instead.")
        event = violation_overturned(violation_id, actor, identity.id, reason, ts=wb.stamp(violation["detected_at"]))
        wb.publish(request, event, Change(None, None, "overturned_unappealed", violation_id, reason[:200]))
        return sent(request, actor, violation_id, f"{violation_id} overturned")

    def review_verdict(request: Request, form: dict[str, Any]) -> Response:
        actor = request.path_params["actor"]
        identity = wb.reviewer(request)
        decision = field(form, "decision", allowed=VERDICTS)
        entry = store.queue_entry(actor)
        if entry is None:
            raise HTTPException(404, f"{actor} is not on the review queue.")
        case = CaseRef("review", actor, actor)
        current = desk.case(case.key)
        if current and current["status"] in ("decided", "escalated"):
            raise HTTPException(409, f"Already {current['status']} by {current['updated_by']}: reopen it by "
                                     "claiming it first.")
        reason = reason_of(form, required=False)
        event = review_decided(actor, entry["model"], entry["ts"], decision, identity.id, reason=reason or None,
                               ts=wb.stamp(entry["last_ts"]), features=feature_values(entry["features"]))
        status = "decided" if decision == "dismissed" else "escalated"
        wb.publish(request, event, Change(case, status, f"review_{decision}", case.key, reason[:200]))
        wb.flash(request, f"Review case of {actor} {decision} by {identity.id}.")
        return wb.redirect(actor_url(actor))

    # ---- cases ----

    def case_of(form: dict[str, Any]) -> CaseRef:
        kind, _, ref = field(form, "case", required=True).partition(":")
        if kind == "review" and store.queue_entry(ref) is not None:
            return CaseRef("review", ref, ref)
        appeal = store.appeal(ref) if kind == "appeal" else None
        if appeal is not None:
            return CaseRef("appeal", ref, appeal["actor"])
        raise HTTPException(404, "No such case: open it from the queue or the appeals page.")

    def back(request: Request, form: dict[str, Any], case: CaseRef) -> Response:
        target = local_path(field(form, "back", 2000))
        return wb.redirect(target if target != "/" else actor_url(case.actor))

    def claim(request: Request, form: dict[str, Any]) -> Response:
        identity = wb.reviewer(request)
        case = case_of(form)
        assignee = field(form, "assignee") or identity.id
        if assignee not in desk.reviewers():
            raise HTTPException(400, f"{assignee} is not a reviewer: pick one from the list.")
        try:
            desk.claim(identity, case, assignee, steal=assignee != identity.id or field(form, "steal") == "yes")
        except ClaimedByOther as err:
            raise HTTPException(409, f"{err.assignee} has claimed this case: ask them, or assign it.") from None
        wb.flash(request, f"Case {case.key} is with {assignee}.")
        return back(request, form, case)

    def release(request: Request, form: dict[str, Any]) -> Response:
        identity = wb.reviewer(request)
        case = case_of(form)
        desk.release(identity, case)
        wb.flash(request, f"Case {case.key} is open again.")
        return back(request, form, case)

    def escalate(request: Request, form: dict[str, Any]) -> Response:
        identity = wb.reviewer(request)
        case = case_of(form)
        if case.kind != "appeal":
            raise HTTPException(400, "Escalate a review case with its Escalate verdict on the actor's page.")
        desk.escalate(identity, case, " ".join(field(form, "text", MAX_NOTE_CHARS).split()))
        wb.flash(request, f"Case {case.key} escalated.")
        return back(request, form, case)

    def note(request: Request, form: dict[str, Any]) -> Response:
        identity = wb.reviewer(request)
        case = case_of(form)
        text = " ".join(field(form, "text", MAX_NOTE_CHARS).split())
        if not text:
            raise HTTPException(400, "Write the note first: it cannot be empty.")
        desk.add_note(identity, case, text)
        wb.flash(request, f"Note added to {case.key}.")
        return back(request, form, case)

    def bulk(request: Request, form: dict[str, Any]) -> Response:
        """Step 1 shows what will happen and asks to confirm; step 2 (`confirm=yes`) decides each appeal."""
        identity = wb.reviewer(request)
        decision = field(form, "decision", allowed=DECISIONS)
        reason = reason_of(form)
        ids = many(form, "appeal_id")
        if not ids:
            raise HTTPException(400, "Select at least one appeal first.")
        if len(ids) > MAX_BULK:
            raise HTTPException(400, f"Select at most {MAX_BULK} appeals at once.")
        found = {i: store.appeal(i) for i in dict.fromkeys(ids)}
        appeals = [a for a in found.values() if a is not None]
        missing = [i for i, a in found.items() if a is None]
        if field(form, "confirm") != "yes":
            return wb.render(request, "confirm.html", appeals=appeals, decision=decision, reason=reason,
                             missing=len(missing))
        done, refused = 0, [f"{i}: no such appeal, nothing was decided" for i in missing]
        for a in appeals:
            try:
                decide_one(request, a["actor"], a["violation_id"], decision, reason)
                done += 1
            except HTTPException as err:
                refused.append(f"{a['appeal_id']}: {err.detail}")
        desk.note_action(identity, "bulk_decided", f"{done} appeal(s)", f"{decision}; {len(refused)} refused")
        wb.flash(request, f"{done} appeal(s) {decision} by {identity.id}.")
        for line in refused:
            wb.flash(request, line, "bad")
        return wb.redirect("/appeals")

    return [
        Route("/queue", queue_page, methods=["GET"]),
        Route("/violations", violations_page, methods=["GET"]),
        Route("/appeals", appeals_page, methods=["GET"]),
        Route("/appeals/bulk", post(wb, bulk), methods=["POST"]),
        Route("/audit", audit_page, methods=["GET"]),
        Route("/search", search_page, methods=["GET"]),
        Route("/charts", charts_page, methods=["GET"]),
        Route("/charts/{name}.svg", chart_svg, methods=["GET"]),
        Route("/cases/claim", post(wb, claim), methods=["POST"]),
        Route("/cases/release", post(wb, release), methods=["POST"]),
        Route("/cases/note", post(wb, note), methods=["POST"]),
        Route("/cases/escalate", post(wb, escalate), methods=["POST"]),
        Route("/actors/{actor:path}/decide", post(wb, decide), methods=["POST"]),
        Route("/actors/{actor:path}/overturn", post(wb, overturn), methods=["POST"]),
        Route("/actors/{actor:path}/review", post(wb, review_verdict), methods=["POST"]),
        Route("/actors/{actor:path}", actor_page, methods=["GET"]),
    ]

