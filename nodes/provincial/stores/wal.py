"""Background WAL checkpoints for the SQLite status store.

SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold: the writer
then copies every page written since the last checkpoint into the database file and fsyncs
it. Codes have random keys, so that is one random page write per B-tree per code; at 10 M
codes it cost issuance ≈ 80 µs of waiting per code (bench/bench_node.py). A PASSIVE
checkpoint from a second connection does the same copy beside the writer instead.

Durability does not depend on checkpoints: every commit is fsynced into the WAL first.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

CHECKPOINT_PAUSE_S = 0.2  # at most ~5 checkpoints a second, however many commits


class Checkpointer:
    """Copies committed WAL frames into the database file on its own thread and connection."""

    def __init__(self, path: Path, *, pause_s: float = CHECKPOINT_PAUSE_S) -> None:
        self._db = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=10.0
        )
        self._pause_s = pause_s
        self._wanted = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """A commit went into the WAL: checkpoint soon (cheap; called after every commit)."""
        self._wanted.set()

    def close(self) -> None:
        """Stop the thread (after a checkpoint in progress) and close its connection."""
        self._stopped.set()
        self._wanted.set()
        self._thread.join()
        self._db.close()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            if self._stopped.is_set():
                return
            self._wanted.clear()
            try:
                # PASSIVE never waits for readers or the writer; frames it cannot copy yet
                # are copied by a later round (the store's fallback bounds the WAL).
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as e:
                log.warning("background WAL checkpoint failed (writer's fallback remains): %s", e)
            self._stopped.wait(self._pause_s)
