"""Downloading a finished task's outputs at once (result URLs expire) into the results folder."""
from __future__ import annotations

import asyncio
import mimetypes
import re
from pathlib import Path

from ..providers.base import Output, Provider, RemoteError, State
from . import media
from .live import Live

DOWNLOAD_EXT = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "video/mp4": ".mp4",
                "audio/mpeg": ".mp3", "audio/wav": ".wav", "text/plain": ".txt"}


class DownloadsMixin:
    """Part of :class:`engine.tasks.TaskManager`."""

    def result_dir(self, row: dict) -> Path:
        return self.results_dir / "remote" / _safe(row["provider"]) / _safe(row["id"])

    async def _download_all(self, live: Live, outputs: list[Output]) -> None:
        """Download every output at once (result URLs expire) and record them."""
        uniq: list[Output] = []
        seen: set = set()
        for o in outputs:
            key = o.url or (o.kind, o.field, o.text)
            if key in seen:
                continue
            seen.add(key)
            uniq.append(o)
        await self._save(live, state=State.RUNNING.value, progress=1.0, message=f"downloading {len(uniq)} result(s)",
                         outputs_state="pending", pending_outputs=[o.to_json() for o in uniq])
        saved, problems = await self._fetch_outputs(live.row, live.provider, uniq)
        await self._db(self.journal.set_outputs, live.row["id"], saved)  # type: ignore[union-attr]
        if problems:
            await self._finish(live, State.SUCCEEDED, outputs_state="partial" if saved else "missing",
                               message=f"finished; {len(problems)} result file(s) could not be downloaded",
                               error_text="; ".join(problems))
        else:
            await self._finish(live, State.SUCCEEDED, outputs_state="saved", pending_outputs=None,
                               message=f"finished with {len(saved)} output(s)")

    async def _fetch_outputs(self, row: dict, provider: Provider, outputs: list[Output]) -> tuple[list[dict], list[str]]:
        folder = self.result_dir(row)
        saved: list[dict] = []
        problems: list[str] = []
        used: set[str] = set()
        for n, o in enumerate(outputs):
            rec = {"n": n, "kind": o.kind, "filename": o.filename, "node": o.node, "field": o.field, "mime": o.mime}
            if o.kind == "text" or (o.url is None and o.text is not None):
                rec.update(kind="text", text=o.text, filename=o.filename or f"{o.field or o.node or n}.txt")
                saved.append(rec)
                continue
            if not o.url:
                problems.append(f"output {n} has no URL")
                continue
            name = _unique(_safe(o.filename or _name_from_url(o.url) or f"output_{n}"), used)
            dest = folder / name
            try:
                dl = await provider.http.download(o.url, dest, headers=provider.download_headers(o))
            except RemoteError as e:
                problems.append(str(e.with_context(provider=row["provider"], profile=row["profile"])))
                continue
            mime = o.mime or dl.mime or mimetypes.guess_type(name)[0]
            if not Path(name).suffix and mime in DOWNLOAD_EXT:
                new = dest.with_name(name + DOWNLOAD_EXT[mime])
                await asyncio.to_thread(dest.rename, new)
                dest, name = new, new.name
            size = await asyncio.to_thread(media.image_size, await asyncio.to_thread(dest.read_bytes)) \
                if (o.kind == "image" or (mime or "").startswith("image/")) else None
            rec.update(filename=name, path=str(dest), mime=mime, size=dl.size, sha256=dl.sha256,
                       width=size[0] if size else None, height=size[1] if size else None)
            saved.append(rec)
        return saved, problems


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
