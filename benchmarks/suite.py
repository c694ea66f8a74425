"""Every benchmark in one run, printed as one table (see benchmarks/README.md).

Per provider, against its fake shaped as the issue's test (remote task: 0.5 s queue + 1.5 s run,
result fetched and saved): completion lag (median, p95) and time per task for the pack's engine and
for a direct aiohttp client doing the same calls, interleaved; then 100 tasks fanned out at once
(ComfyUI: over two servers) with the most requests any one second brought to the service, asserted
inside its limit. Then peak memory while 1 GB downloads and while a 1 GB video decodes.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import statistics
import time
from typing import Optional

from . import memory, services
from .direct import CLIENTS, DirectRun
from .engine_runs import EngineRun, api_times, peak_rate

LAG_MEDIAN_S, LAG_P95_S = 0.25, 0.5
FAN_RUN_S = 0.1  # a ComfyUI server runs one prompt at a time: the fan-out's prompts are short there
PACK_BUDGET = 10.0  # the pack's own rate where a service publishes none (providers.base.max_rps)


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20, method="inclusive")[18] if len(xs) > 1 else xs[0]


def ms(x: Optional[float]) -> str:
    return "—" if x is None else f"{x * 1000:.0f} ms"


async def provider_rows(name: str, runs: int, fan: int) -> dict:
    svc = await services.start(name, fan_out=fan)
    row: dict = {"name": name}
    eng = EngineRun(svc)
    direct = DirectRun(svc) if name in CLIENTS else None
    try:
        # one task first, not counted: a fake renders its first result slowly (imports, fonts) — a
        # cost of the fake, which neither client should carry
        await (direct.one("warm-up") if direct is not None else eng.one("warm-up"))
        e_lag, e_wall, d_lag, d_wall = [], [], [], []
        for i in range(runs):
            if direct is not None:
                lag, wall = await direct.one(f"direct {i}")
                d_lag.append(lag)
                d_wall.append(wall)
            lag, wall = await eng.one(f"engine {i}")
            e_lag.append(lag)
            e_wall.append(wall)
        row.update(e_lag=e_lag, e_wall=e_wall, d_lag=d_lag, d_wall=d_wall)
    finally:
        await eng.close()
    extra = [await services.start(name, fan_out=fan)] if name == "comfyui" else []  # two servers
    svcs = [svc, *extra]
    for s in svcs:
        s.run_s = FAN_RUN_S
    try:
        fan_eng = EngineRun(*svcs, max_concurrent=fan)
        try:
            since, t0 = [s.case.clock.now() for s in svcs], time.monotonic()
            row["e_fan_s"], states = await fan_eng.fan_out(fan)
            assert states.count("succeeded") == fan, f"{name}: {states.count('succeeded')}/{fan} succeeded"
            row["e_rps"] = max(peak_rate(times) for times in fan_eng.sent_since(t0))
            row["e_rps_fake"] = max(peak_rate(api_times(s, t)) for s, t in zip(svcs, since))
        finally:
            await fan_eng.close()
        if direct is not None:
            since = [s.case.clock.now() for s in svcs]
            row["d_fan_s"] = await direct.fan_out(fan, svcs)
            row["d_rps"] = max(peak_rate(api_times(s, t)) for s, t in zip(svcs, since))
    finally:
        if direct is not None:
            await direct.close()
        for s in svcs:
            await s.case.stop()
    return row


def check(row: dict) -> list[str]:
    problems = []
    name = row["name"]
    med, hi = statistics.median(row["e_lag"]), p95(row["e_lag"])
    if med > LAG_MEDIAN_S or hi > LAG_P95_S:
        problems.append(f"{name}: completion lag {ms(med)} median / {ms(hi)} p95 misses "
                        f"{ms(LAG_MEDIAN_S)} / {ms(LAG_P95_S)}")
    limit, _ = services.DOCUMENTED[name]
    cap = limit if limit is not None else (None if name == "comfyui" else PACK_BUDGET)
    if cap is not None and row["e_rps"] > cap:
        problems.append(f"{name}: {row['e_rps']:.0f} requests in one second during the fan-out (limit {cap:.0f})")
    return problems


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model)
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, {platform.system()} "
            f"{platform.release()}; load average {load:.1f} at the end")


def table(rows: list[dict], fan: int, mem: dict, mb: int) -> str:
    out = [f"| provider | completion lag, pack (median / p95) | direct aiohttp (median / p95) | per task, pack "
           f"vs direct | {fan} tasks at once, pack vs direct | most API requests sent in 1 s, pack vs direct (limit) |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        limit, why = services.DOCUMENTED[r["name"]]
        d = r["d_lag"]
        direct = f"{ms(statistics.median(d))} / {ms(p95(d))}" if d else "—"
        wall = f"{statistics.median(r['e_wall']):.2f} s vs " + (f"{statistics.median(r['d_wall']):.2f} s"
                                                                  if r["d_wall"] else "—")
        fan_s = f"{r['e_fan_s']:.1f} s vs " + (f"{r['d_fan_s']:.1f} s" if "d_fan_s" in r else "—")
        rps = (f"{r['e_rps']:.0f} ({r['e_rps_fake']:.0f} as the fake logged them) vs "
               + (f"{r['d_rps']:.0f}" if "d_rps" in r else "—") + f" ({why})")
        name = r["name"] + (" (2 servers)" if r["name"] == "comfyui" else "")
        out.append(f"| {name} | {ms(statistics.median(r['e_lag']))} / {ms(p95(r['e_lag']))} | {direct} | {wall} "
                   f"| {fan_s} | {rps} |")
    out += ["", f"| memory (peak RSS of a fresh process) | direct | pack |", "|---|---|---|"]
    if "download" in mem:
        d, e = mem["download"]["direct"], mem["download"]["engine"]
        out.append(f"| {mb} MiB download to disk | {d[2]:.0f} MB ({d[0]:.1f} s) | {e[2]:.0f} MB ({e[0]:.1f} s) |")
    if "upload" in mem:
        d, e = mem["upload"]["direct"], mem["upload"]["engine"]
        out.append(f"| {mb} MiB file of ComfyUI's folders uploaded to a ComfyUI server | {d[2]:.0f} MB ({d[0]:.1f} s) "
                   f"| {e[2]:.0f} MB ({e[0]:.1f} s) |")
    if "decode" in mem:
        d, frames = mem["decode"]["direct"], mem["decode"]["frames"]
        size = mem["decode"]["bytes"] / 2**20
        e, batch = mem["decode"]["engine"], mem["decode"]["batch_mb"]
        out.append(f"| {size:.0f} MiB video ({frames} frames 640×360) decoded to IMAGE floats | {d[2]:.0f} MB "
                   f"({d[0]:.1f} s, PyAV frame by frame, nothing kept) | {e[2]:.0f} MB ({e[0]:.1f} s): the "
                   f"{batch:.0f} MB IMAGE batch RemoteFetchVideo returns + {e[2] - batch:.0f} MB |")
    return "\n".join(out)


async def run(args: argparse.Namespace) -> int:
    # a fake's stream handler whose client already left (the engine closes a task's stream at its end)
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    names = args.only.split(",") if args.only else list(services.PROVIDERS)
    rows, problems = [], []
    t0 = time.monotonic()
    for name in names:
        print(f"[benchmarks] {name}: {args.runs} tasks one after another, then {args.fan} at once", flush=True)
        row = await provider_rows(name, args.runs, args.fan)
        rows.append(row)
        problems += check(row)
    mem: dict = {}
    if not args.no_memory:
        print(f"[benchmarks] memory: {args.mb} MiB download, upload and video decode", flush=True)
        mem["download"] = await memory.download_rows(args.mb)
        mem["upload"] = await memory.upload_rows(args.mb)
        mem["decode"] = await memory.decode_rows(args.mb)
    print()
    print(table(rows, args.fan, mem, args.mb))
    print(f"\nmachine: {machine()}; {time.monotonic() - t0:.0f} s in all")
    for p in problems:
        print("MISSED:", p)
    return 1 if problems else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        memory.child(argv[1:])
        return 0
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 runs, 10 tasks at once, 64 MiB (a smoke run)")
    ap.add_argument("--only", help="comma-separated providers (default: all)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--fan", type=int, default=100)
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.fan, args.mb = 2, 10, 64
    return asyncio.run(run(args))
