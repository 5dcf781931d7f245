"""Bytewax recovery: the snapshot store a job resumes from after a crash.

With `[recovery] dir` set, every stateful step (detectors, ledger, models)
and every source and sink partition snapshots its state each epoch
(`[job] epoch_interval_seconds`) into SQLite partitions in that folder. After
a crash or `kill -9`, `shopguard run` with the same folder resumes from the
last snapshot: sources re-read from their snapshotted positions, file sinks
truncate back to their snapshotted length, the Kafka sink skips records it
had already written (see `sinks/kafka.py`).
"""

from __future__ import annotations

import os
from pathlib import Path


def ensure_recovery_store(directory: str | os.PathLike, partitions: int) -> bool:
    """Create Bytewax's recovery partitions in `directory` once; True if it created them.

    Bytewax needs them before a job with recovery starts, and creating them
    twice fails, so an existing store is left as it is. `partitions` must be at
    least the number of workers the job will ever run with.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> ensure_recovery_store(d, 2), ensure_recovery_store(d, 2), sorted(os.listdir(d))
    (True, False, ['part-0.sqlite3', 'part-1.sqlite3'])
    """
    from bytewax.recovery import init_db_dir

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    if any(path.glob("part-*.sqlite3")):
        return False
    init_db_dir(path, partitions)
    return True
