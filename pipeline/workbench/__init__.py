"""The web workbench: a reviewer console and a standing page for each seller and creator.

- `store`: follows the job's outputs (JSONL files or Kafka topics) into SQLite.
- `publish`: writes governance events (`appeal.filed`, `appeal.decided`,
  `education.completed`) to the job's governance input (a file or a topic).
- `app`: the Starlette application: server-rendered pages, sign-in with
  tokens, CSRF protection on every POST.
- `console`: `shopguard console --out DIR`, added by `add_console_command`.
"""

from __future__ import annotations

from typing import Any


def add_console_command(subparsers: Any) -> Any:
    """Add `console` to the `shopguard` command line's subparsers (imports the web stack only when run)."""
    from pipeline.workbench.console import add_console_command as add

    return add(subparsers)
