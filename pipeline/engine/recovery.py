"""Bytewax recovery: the snapshot store a job resumes from after a crash or a stop.

With `[recovery] dir` set, every stateful step (detectors, ledger, models)
and every source and sink partition snapshots its state each epoch
(`[job] epoch_interval_seconds`) into SQLite partitions in that folder. After
a crash or `kill -9`, `shopguard run` with the same folder resumes from the
last snapshot: sources re-read from their snapshotted positions, file sinks
truncate back to their snapshotted length, the Kafka sink skips records it
had already written (see `sinks/kafka.py`).

The store has a fixed number of partitions (`[recovery] partitions`),
created once. The cluster as a whole must hold each exactly once, while a
process may hold any subset: processes on one host can share one folder
(`-p N` does); processes on different hosts each keep a share in their own
folder, process I of N the partitions I, I+N, I+2N... (`cluster.env`
beside them records N, as `deploy/init-recovery-share.sh` does).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from pipeline.errors import ConfigError

SHARE_FILE = "cluster.env"


def ensure_recovery_store(directory: str | os.PathLike, partitions: int, process_id: int = 0,
                          processes: int = 1) -> bool:
    """Create this process's recovery partitions in `directory` once; True if it created them.

    Bytewax needs them before a job with recovery starts, and creating them
    twice fails, so existing partitions are left as they are. With
    `processes` > 1 this process creates only its share (I, I+N...), unless
    the folder already holds the whole store.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> ensure_recovery_store(d, 2), ensure_recovery_store(d, 2), sorted(os.listdir(d))
    (True, False, ['part-0.sqlite3', 'part-1.sqlite3'])
    >>> d = tempfile.mkdtemp()
    >>> ensure_recovery_store(d, 4, 1, 2), sorted(os.listdir(d))
    (True, ['cluster.env', 'part-1.sqlite3', 'part-3.sqlite3'])
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    if processes <= 1:
        if any(path.glob("part-*.sqlite3")):
            return False
        _create(path, partitions, range(partitions))
        return True
    _check_share(path, processes)
    share = range(process_id, partitions, processes)
    if not share:
        raise ConfigError(f"[recovery] partitions = {partitions} cannot be shared by {processes} processes: "
                          "set it to at least the most processes you will run (on a new store)")
    if all((path / f"part-{i}.sqlite3").exists() for i in share):
        return False
    _create(path, partitions, share)
    (path / SHARE_FILE).write_text(f"processes={processes}\npartitions={partitions}\n")
    return True


def _check_share(path: Path, processes: int) -> None:
    marker = path / SHARE_FILE
    if not marker.exists():
        return
    made_for = dict(line.split("=", 1) for line in marker.read_text().split() if "=" in line).get("processes")
    if made_for and int(made_for) != processes:
        raise ConfigError(f"the recovery store in {path} belongs to a cluster of {made_for} processes, not "
                          f"{processes}: run {made_for} processes, or start a new store (see the README, "
                          "\"Running on several machines\")")


def _create(path: Path, partitions: int, keep: range) -> None:
    """Bytewax's `init_db_dir` for all partitions in a scratch folder, then keep `keep` (moves are atomic)."""
    from bytewax.recovery import init_db_dir

    scratch = Path(tempfile.mkdtemp(prefix=".recovery-", dir=path))
    try:
        init_db_dir(scratch, partitions)
        for i in keep:
            target = path / f"part-{i}.sqlite3"
            if not target.exists():
                os.replace(scratch / target.name, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
