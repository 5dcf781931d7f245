"""The web workbench: a reviewer console and a standing page for each seller and creator.

- `store`: follows the job's outputs (JSONL files or Kafka topics) into SQLite.
- `publish`: writes governance events (`appeal.filed`, `appeal.decided`,
  `education.completed`) to the job's governance input (a file or a topic).
- `app`: the Starlette application: server-rendered pages, sign-in with
  tokens, CSRF protection on every POST.
- `console`: what `shopguard console --out DIR` runs (its options: `pipeline/cli/console.py`).
"""
