"""Bringing a finished task's results home (rule 4).

Each file streams to ``<name>.part`` with an idle timeout (no total limit, a size cap), resumes with
``Range`` after a drop, and when its URL has expired (401/403/404/410) the provider is asked for
fresh URLs and the download tried again. Links are checked (``engine/urls.py``). A result that
could not be saved yet keeps its task recoverable: the outputs still to fetch stay in the journal
and are tried again on restart, by Recover, or by RemoteRecover.
"""
from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Optional

from ..providers.base import Output, RemoteError, State
from ..providers.kinds import MIMES, mime_of
from . import media
from .files import amount, file_sha256, replace, unlink_quietly
from .live import Live
from .pacing import urgent
from .redaction import describe, get_logger
from .rules import look_is_fatal
from .transfer import Expired

# a file saved without an extension gets one from its type (first extension of each type in kinds.MIMES)
DOWNLOAD_EXT = {mime: "." + ext for ext, mime in reversed(list(MIMES.items()))}
PROGRESS_EVERY_S = 0.5
log = get_logger("comfyui_remote.engine")


class DownloadsMixin:
    """Part of :class:`engine.tasks.TaskManager`."""

    def result_dir(self, row: dict) -> Path:
        return self.results_dir / "remote" / _safe(row["provider"]) / _safe(row["id"])

    async def _download_all(self, live: Live, outputs: list[Output], note: Optional[str] = None) -> None:
        """Download every output at once (result URLs expire) and record them."""
        uniq: list[Output] = []
        seen: set = set()
        for o in outputs:
            key = o.url or (o.kind, o.node, o.field, o.text)
            if key in seen:
                continue
            seen.add(key)
            uniq.append(o)
        live.downloading = True
        await self._save(live, state=State.RUNNING.value, progress=1.0, queue_position=None,
                         message=f"downloading {len(uniq)} result(s)", outputs_state="pending",
                         pending_outputs=[o.to_json() for o in uniq])
        await self._downloads_allowed_private(live.provider)
        saved, problems = await self._fetch_outputs(live, uniq)
        live.downloading = False
        await self._db(self.journal.set_outputs, live.row["id"], saved)
        done = f"finished with {len(saved)} output(s)" + (f" ({note})" if note else "")
        if problems:
            await self._finish(live, State.SUCCEEDED, outputs_state="partial" if saved else "missing",
                               message=f"finished; {len(problems)} result file(s) could not be saved yet — "
                                       f"the task stays tracked: Recover (panel or RemoteRecover) tries again",
                               error_text="; ".join(problems))
        else:
            await self._finish(live, State.SUCCEEDED, outputs_state="saved", pending_outputs=None, message=done)

    async def _fetch_outputs(self, live: Live, outputs: list[Output]) -> tuple[list[dict], list[str]]:
        row = live.row
        folder = self.result_dir(row)
        saved: list[dict] = []
        problems: list[str] = []
        used: set[str] = set()
        # inline texts stay in the journal; everything else is a file to save (a .txt with a link too)
        files = [o for o in outputs if not (o.url is None and (o.text is not None or o.kind == "text"))]
        earlier = {r["n"]: r for r in await self._db(self.journal.outputs, row["id"])}
        for n, o in enumerate(outputs):
            rec = {"n": n, "kind": o.kind, "filename": o.filename, "node": o.node, "field": o.field, "mime": o.mime,
                   "preview": 1 if o.preview else None}
            old = earlier.get(n)
            if old and old.get("path") and old.get("node") == o.node and await asyncio.to_thread(Path(old["path"]).is_file):
                saved.append(old)  # saved by an earlier attempt (a Recover after a partial download)
                used.add(Path(old["path"]).name)
                continue
            if o not in files:
                rec.update(kind="text", text=o.text, filename=o.filename or f"{o.field or o.node or n}.txt")
                saved.append(rec)
                continue
            name = _unique(_safe(o.filename or _name_from_url(o.url or "") or f"output_{n}"), used)
            try:
                dest, size, mime = await self._fetch_one(live, o, n, folder / name, files.index(o), len(files))
            except RemoteError as e:
                problems.append(str(e.with_context(provider=row["provider"], profile=row["profile"])))
                continue
            except OSError as e:  # a full disk, a permission problem: the result is not lost
                problems.append(f"[{row['provider']}/{row['profile']}] cannot write {name}: "
                                f"{e.strerror or e.__class__.__name__}")
                continue
            name = dest.name
            dims = None
            if o.kind == "image" or (mime or "").startswith("image/"):
                dims = await asyncio.to_thread(media.image_size_of_file, dest)
            digest = await asyncio.to_thread(file_sha256, dest)
            rec.update(filename=name, path=str(dest), mime=mime, size=size, sha256=digest,
                       width=dims[0] if dims else None, height=dims[1] if dims else None)
            saved.append(rec)
        return saved, problems

    async def _fetch_one(self, live: Live, o: Output, n: int, dest: Path, index: int,
                         count: int) -> tuple[Path, int, Optional[str]]:
        provider = live.provider
        if not o.url:
            raise provider.error(RemoteError, f"output {n} has no URL")
        part = dest.with_name(dest.name + ".part")
        url, current = o.url, o
        refreshes = failures = 0
        last_size = -1
        last_note = [0.0]

        def progress(size: int, total: Optional[int]) -> None:
            now = time.monotonic()
            if now - last_note[0] >= PROGRESS_EVERY_S:
                last_note[0] = now
                of = f" of {amount(total)}" if total else ""
                self._spawn(self._download_note(live, f"downloading result {index + 1} of {count}: "
                                                      f"{amount(size)}{of}"))

        while True:
            try:
                got = await provider.http.fetch_to(url, part, headers=provider.download_headers(current),
                                                   on_progress=progress)
                break
            except Expired as e:
                refreshes += 1
                if refreshes > self.policy.url_refreshes:
                    await asyncio.to_thread(unlink_quietly, part)  # the next try starts from a fresh link
                    raise
                fresh = await self._fresh_output(live, o, n, e)
                url, current = fresh.url or url, fresh
            except RemoteError as e:
                if look_is_fatal(e) or not e.retryable:
                    await asyncio.to_thread(unlink_quietly, part)  # refused for good: nothing to resume
                    raise
                size = await asyncio.to_thread(_size, part)
                failures = 0 if size > last_size else failures + 1
                last_size = size
                if failures >= self.policy.download_attempts:
                    raise  # what arrived stays for Recover to resume (or the start-up sweep to delete)
                await asyncio.sleep(self.policy.delay(failures, e.retry_after))
        served = got.mime if got.mime and got.mime != "application/octet-stream" else None
        mime = o.mime or served or mime_of(dest.name, o.kind)
        if not Path(dest.name).suffix and mime in DOWNLOAD_EXT:
            dest = dest.with_name(dest.name + DOWNLOAD_EXT[mime])
        await asyncio.to_thread(replace, part, dest)
        return dest, got.size, mime

    async def _sweep_stale_parts(self) -> None:
        """On start: delete the ``.part`` files of tasks that are no longer downloading (cancelled,
        finished, forgotten); a task still unfinished or recoverable keeps what arrived to resume."""
        keep = {self.result_dir(row) for row in await self._db(self.journal.unfinished)}
        for p in await asyncio.to_thread(stale_parts, self.results_dir, keep):
            try:
                await asyncio.to_thread(unlink_quietly, p)
            except OSError as e:
                log.warning("cannot delete the stale download %s: %s", p.name, e.strerror or e.__class__.__name__)

    async def _download_note(self, live: Live, message: str) -> None:
        # a note that comes in after the end must not replace the last word
        await self._save(live, message=message, when=lambda: live.downloading)

    async def _fresh_output(self, live: Live, o: Output, n: int, why: RemoteError) -> Output:
        """The same output with a fresh URL, from the provider's current answer."""
        provider = live.provider
        await self._save(live, message=f"a result link expired ({describe(why, 80)}); asking {provider.id} for a "
                                       f"fresh one")
        for attempt in range(self.policy.attempts):
            try:
                with urgent():
                    fresh = await provider.outputs(live.ref)
                break
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if attempt == self.policy.attempts - 1 or look_is_fatal(e):
                    raise provider.error(RemoteError, f"a result link expired and no fresh one could be had "
                                                      f"({describe(e, 100)})") from None
                await asyncio.sleep(self.policy.delay(attempt, getattr(e, "retry_after", None)))
        match = _match(o, n, fresh)
        if match is None:
            raise provider.error(RemoteError, f"a result link expired and the service no longer lists "
                                              f"{o.filename or 'that output'}")
        return match


def _match(o: Output, n: int, fresh: list[Output]) -> Optional[Output]:
    """The output in a fresh list that is ``o``: same node and file name, else the same place."""
    for f in fresh:
        if f.filename and f.filename == o.filename and f.node == o.node and f.field == o.field:
            return f
    same_kind = [f for f in fresh if f.kind == o.kind and f.node == o.node and f.field == o.field]
    if len(same_kind) == 1:
        return same_kind[0]
    return fresh[n] if n < len(fresh) and fresh[n].kind == o.kind else None


def stale_parts(results_dir: Path, keep: set) -> list[Path]:
    """``.part`` files under ``results_dir/remote/<provider>/<task>/`` whose task folder is not in
    ``keep`` (the folders of tasks still downloading or recoverable)."""
    root = Path(results_dir) / "remote"
    if not root.is_dir():
        return []
    return [p for p in root.glob("*/*/*.part") if p.parent not in keep]


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except FileNotFoundError:
        return 0


def _safe(name: str) -> str:
    name = re.sub(r"[^\w.\-]+", "_", str(name)).strip("._") or "file"
    return name[:120]


def _unique(name: str, used: set) -> str:
    base, dot, ext = name.rpartition(".")
    if not dot:
        base, ext = name, ""
    candidate, i = name, 1
    while candidate in used:
        candidate = f"{base}_{i}.{ext}" if ext else f"{base}_{i}"
        i += 1
    used.add(candidate)
    return candidate


def _name_from_url(url: str) -> str:
    path = url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    return path.rsplit("/", 1)[-1] if "/" in path else ""
