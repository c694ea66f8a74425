"""Measure the contract suite's fault classes × providers and print (or write into README.md) the
"Reliability" table: every fault scenario (tests/contract/case.py FAULT_CLASSES) is run against
each provider's fake through the engine, ``--runs`` times; each run records, from the fake's own
count of created tasks, whether the exact result was delivered, lost, or stopped with an honest
"check before queueing again" (only where a provider cannot look a task up), and how many extra
paid tasks it caused.

    .comfyui-venv/bin/python scripts/reliability_table.py [--runs N] [--write README.md]
"""
from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- reliability-table:begin -->", "<!-- reliability-table:end -->"
# cases that need a real server (started by session fixtures) play no injected faults
EXCLUDE = ("comfyui_real", "comfycloud_proxy", "sandbox")


def fault_classes() -> list[str]:
    text = (ROOT / "tests" / "contract" / "case.py").read_text(encoding="utf-8")
    block = text[text.index("FAULT_CLASSES = ("):]
    return re.findall(r'^\s+"(\w+)",', block[: block.index("\n)")], re.M)


def run_suite(runs: int, out: Path) -> None:
    env = {**os.environ, "COMFYUI_REMOTE_RELIABILITY": str(out)}
    select = "test_fault_loses_nothing_and_never_pays_twice and not " + " and not ".join(EXCLUDE)
    for i in range(runs):
        print(f"[reliability] run {i + 1} of {runs}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pytest", "tests/contract/test_contract.py", "-q", "-p",
                        "no:cacheprovider", "-k", select], cwd=ROOT, env=env, check=False)


def table(records: list[dict]) -> str:
    faults = fault_classes()
    cases = sorted({r["case"] for r in records})
    cell: dict = collections.defaultdict(lambda: [0, 0, 0])  # (case, fault) -> [runs, delivered, honest stops]
    total = collections.Counter()
    for r in records:
        ok = r["delivered"] or r["ambiguous"]
        c = cell[(r["case"], r["fault"])]
        c[0] += 1
        c[1] += r["delivered"]
        c[2] += r["ambiguous"]
        total["runs"] += 1
        total["delivered"] += r["delivered"]
        total["ambiguous"] += r["ambiguous"]
        total["lost"] += 0 if ok else 1
        total["second"] += max(0, r["paid"] - 1)
    lines = ["| fault class | " + " | ".join(cases) + " |", "|---|" + "---|" * len(cases)]
    for f in faults:
        row = []
        for c in cases:
            n, got, stops = cell.get((c, f), (0, 0, 0))
            text = "—" if n == 0 else f"{got}/{n}" + (f" (+{stops} stopped)" if stops else "")
            row.append(text + (" ✗" if n and got + stops < n else ""))
        lines.append(f"| `{f}` | " + " | ".join(row) + " |")
    when = datetime.date.today().isoformat()
    runs = max(n for n, _, _ in cell.values())
    head = (f"Measured {when} by `scripts/reliability_table.py --runs {runs}` ({total['runs']} fault runs). A "
            f"cell is results delivered / runs; \"stopped\": the create's answer was lost on a service that "
            f"cannot look a task up, so the node stopped and said to check the console before queueing again "
            f"(the task is kept in the journal, nothing re-sent); — the service has no such channel; ✗ a result "
            f"lost:\n\n")
    foot = (f"\n\n**Runs {total['runs']} · results delivered {total['delivered']} · stopped honestly before a "
            f"possible double payment {total['ambiguous']} · results lost {total['lost']} · second paid tasks "
            f"{total['second']}.**")
    return head + "\n".join(lines) + foot


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--write", type=Path, help="replace the table between the markers in this file")
    ap.add_argument("--records", type=Path, help="read these records (JSON lines) instead of running")
    ap.add_argument("--out", type=Path, help="keep the records of this measurement in this file")
    args = ap.parse_args()
    if args.records:
        path = args.records
    else:
        path = args.out or Path(tempfile.mkdtemp(prefix="reliability-")) / "records.jsonl"
        path.unlink(missing_ok=True)
        run_suite(args.runs, path)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not records:
        print("no fault runs were recorded", file=sys.stderr)
        return 1
    text = table(records)
    if args.write:
        doc = args.write.read_text(encoding="utf-8")
        if BEGIN not in doc or END not in doc:
            print(f"{args.write} has no {BEGIN} … {END} markers", file=sys.stderr)
            return 1
        start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
        args.write.write_text(doc[:start] + "\n" + text + "\n" + doc[end:], encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
