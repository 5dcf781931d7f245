"""The web workbench: a reviewer console and a standing page for each seller and creator.

- `store`: follows the job's outputs (JSONL files or Kafka topics) into SQLite,
  beside the workbench's own tables (tokens, sessions, cases, audit log).
- `publish`: builds governance events (appeals, decisions with reasons,
  lessons, reviewer overturns and review verdicts) and writes them to the
  job's governance input (a file or a topic).
- `auth`: sign-in tokens (salted digests), server-side sessions, the sign-in throttle.
- `web`: security headers, size limits, CSRF-first form reading, strict query parameters.
- `cases`: claims, assignments, notes, verdicts published once, the audit log.
- `app`: the Starlette application, sign-in and the standing pages;
  `reviewer`: the reviewer console's pages and actions.
- `render`, `charts`, `export`: evidence and explanations for people, SVG charts, CSV.
- `console`: what `shopguard console --out DIR` and `shopguard console token ID` run
  (their options: `pipeline/cli/console.py`); `bench`: page times on a big store.
"""
