"""SQLite journal (stdlib sqlite3, WAL): every task and output, written before each network step.

The journal is the source of truth for the panel, for re-attaching after a restart and for
pay-once reuse. Calls are synchronous and short; the engine runs them on one dedicated worker
thread (``engine.tasks``) so its event loop never blocks on disk.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Optional

from . import redaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    remote_id TEXT,
    profile TEXT NOT NULL,
    provider TEXT NOT NULL,
    workflow TEXT,
    state TEXT NOT NULL,
    phase TEXT NOT NULL DEFAULT 'prepared',
    reused INTEGER NOT NULL DEFAULT 0,
    reused_from TEXT,
    reuse_key TEXT,
    submission_key TEXT,
    queue_position INTEGER,
    queue_length INTEGER,
    progress REAL,
    node TEXT,
    step INTEGER,
    max_steps INTEGER,
    eta_s REAL,
    message TEXT,
    cost REAL,
    error TEXT,
    error_kind TEXT,
    can_cancel INTEGER NOT NULL DEFAULT 0,
    console_url TEXT,
    remote_data TEXT,
    owner TEXT,
    outputs_state TEXT NOT NULL DEFAULT 'none',
    pending_outputs TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    submit_spec TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS tasks_remote ON tasks(remote_id);
CREATE INDEX IF NOT EXISTS tasks_reuse ON tasks(reuse_key, state);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks(state);
CREATE TABLE IF NOT EXISTS outputs (
    task_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    kind TEXT NOT NULL,
    filename TEXT,
    path TEXT,
    node TEXT,
    field TEXT,
    mime TEXT,
    width INTEGER,
    height INTEGER,
    size INTEGER,
    sha256 TEXT,
    text TEXT,
    preview INTEGER,
    PRIMARY KEY (task_id, n)
);
"""

TASK_FIELDS = ("remote_id", "profile", "provider", "workflow", "state", "phase", "reused", "reused_from",
               "reuse_key", "submission_key", "queue_position", "queue_length", "progress", "node", "step",
               "max_steps", "eta_s", "message", "cost", "error", "error_kind", "can_cancel", "console_url",
               "remote_data", "owner", "outputs_state", "pending_outputs", "cancel_requested", "submit_spec",
               "started_at", "finished_at")
JSON_FIELDS = ("remote_data", "pending_outputs", "submit_spec")
TEXT_FIELDS = ("message", "error", "workflow", "node")  # scrubbed before they are stored
OUTPUT_FIELDS = ("kind", "filename", "path", "node", "field", "mime", "width", "height", "size", "sha256", "text",
                 "preview")

STATE_FILTERS = {  # the panel groups live events the same way (web/lib/state.js)
    "active": ("submitting", "queued", "running", "abandoned"),  # abandoned: still followed
    "finished": ("succeeded", "cancelled"),
    "failed": ("failed",),
}


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Columns added since a journal was created (ALTER TABLE, defaults as in SCHEMA)."""
        have = {r[1] for r in self._db.execute("PRAGMA table_info(tasks)").fetchall()}
        if "cancel_requested" not in have:
            self._db.execute("ALTER TABLE tasks ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0")
        if "submit_spec" not in have:
            self._db.execute("ALTER TABLE tasks ADD COLUMN submit_spec TEXT")
        if "preview" not in {r[1] for r in self._db.execute("PRAGMA table_info(outputs)").fetchall()}:
            self._db.execute("ALTER TABLE outputs ADD COLUMN preview INTEGER")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ writes
    def create(self, task_id: str, **fields: Any) -> dict:
        now = time.time()
        row = {"id": task_id, "created_at": now, "updated_at": now}
        row.update(self._prepare(fields))
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._lock:
            self._db.execute(f"INSERT INTO tasks ({cols}) VALUES ({marks})", list(row.values()))
        return self.get(task_id)  # type: ignore[return-value]

    def update(self, task_id: str, **fields: Any) -> None:
        if not fields:
            return
        data = self._prepare(fields)
        data["updated_at"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in data)
        with self._lock:
            self._db.execute(f"UPDATE tasks SET {sets} WHERE id = ?", [*data.values(), task_id])

    def set_outputs(self, task_id: str, outputs: Iterable[dict]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute("DELETE FROM outputs WHERE task_id = ?", (task_id,))
                for o in outputs:
                    vals = [o.get(k) for k in OUTPUT_FIELDS]
                    self._db.execute(
                        f"INSERT INTO outputs (task_id, n, {', '.join(OUTPUT_FIELDS)}) VALUES (?, ?, "
                        f"{', '.join('?' for _ in OUTPUT_FIELDS)})", [task_id, o["n"], *vals])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _prepare(self, fields: dict) -> dict:
        out = {}
        for k, v in fields.items():
            if k not in TASK_FIELDS:
                raise KeyError(f"unknown journal field {k}")
            if k in JSON_FIELDS and v is not None and not isinstance(v, str):
                v = json.dumps(v)
            if k in TEXT_FIELDS and isinstance(v, str):
                v = redaction.scrub(v)
            if isinstance(v, bool):
                v = int(v)
            out[k] = v
        return out

    # ------------------------------------------------------------------ reads
    def get(self, task_id: str) -> Optional[dict]:
        with self._lock:
            row = self._db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return self._row(row) if row else None

    def by_remote_id(self, remote_id: str, profile: Optional[str] = None) -> Optional[dict]:
        q = "SELECT * FROM tasks WHERE remote_id = ? AND reused = 0"
        args: list = [remote_id]
        if profile:
            q += " AND profile = ?"
            args.append(profile)
        with self._lock:
            row = self._db.execute(q + " ORDER BY seq DESC LIMIT 1", args).fetchone()
        return self._row(row) if row else None

    def outputs(self, task_id: str) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM outputs WHERE task_id = ? ORDER BY n", (task_id,)).fetchall()
        return [dict(r) for r in rows]

    def find_reusable(self, reuse_key: str) -> Optional[dict]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM tasks WHERE reuse_key = ? AND state = 'succeeded' AND outputs_state = 'saved' "
                "ORDER BY seq DESC LIMIT 5", (reuse_key,)).fetchall()
        return [self._row(r) for r in rows] or None  # type: ignore[return-value]

    def find_active(self, reuse_key: str) -> Optional[dict]:
        """The newest task with this reuse key that is still on its way (and not being cancelled)."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM tasks WHERE reuse_key = ? AND reused = 0 AND cancel_requested = 0 AND state IN "
                "('submitting', 'queued', 'running', 'abandoned') ORDER BY seq DESC LIMIT 1", (reuse_key,)).fetchone()
        return self._row(row) if row else None

    def usual_duration(self, profile: str, workflow: Optional[str]) -> Optional[float]:
        """Median run time (start to end) of the last ten tasks of this workflow on this profile."""
        with self._lock:
            rows = self._db.execute(
                "SELECT finished_at - started_at FROM tasks WHERE profile = ? AND workflow IS ? AND state = "
                "'succeeded' AND reused = 0 AND started_at IS NOT NULL AND finished_at IS NOT NULL ORDER BY seq "
                "DESC LIMIT 10", (profile, workflow)).fetchall()
        values = sorted(r[0] for r in rows if r[0] is not None and r[0] >= 0)
        return values[len(values) // 2] if values else None

    def unfinished(self) -> list[dict]:
        """Tasks to re-attach after a restart: not terminal, or finished with results missing."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM tasks WHERE state IN ('submitting', 'queued', 'running', 'abandoned') "
                "OR (state = 'succeeded' AND reused = 0 AND outputs_state IN ('pending', 'partial', 'missing')) "
                "ORDER BY seq").fetchall()
        return [self._row(r) for r in rows]

    def list(self, state: Optional[str] = None, limit: int = 50, before: Optional[int] = None) -> tuple[list[dict], Optional[int]]:
        q = "SELECT * FROM tasks"
        where, args = [], []
        if state:
            states = STATE_FILTERS[state]
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            args.extend(states)
        if before is not None:
            where.append("seq < ?")
            args.append(before)
        if where:
            q += " WHERE " + " AND ".join(where)
        q += " ORDER BY seq DESC LIMIT ?"
        args.append(limit + 1)
        with self._lock:
            rows = [self._row(r) for r in self._db.execute(q, args).fetchall()]
        nxt = rows[limit - 1]["seq"] if len(rows) > limit else None
        return rows[:limit], nxt

    def count_submitted(self, profile: str, since: float) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM tasks WHERE profile = ? AND created_at >= ? AND reused = 0 "
                                    "AND phase != 'prepared'", (profile, since)).fetchone()[0]

    @staticmethod
    def _row(row: sqlite3.Row) -> dict:
        d = dict(row)
        for k in JSON_FIELDS:
            if d.get(k):
                try:
                    d[k] = json.loads(d[k])
                except ValueError:
                    d[k] = None
        d["reused"] = bool(d.get("reused"))
        d["can_cancel"] = bool(d.get("can_cancel"))
        d["cancel_requested"] = bool(d.get("cancel_requested"))
        return d
