"""scripts/reliability_table.py turns the contract suite's per-run records into the README table:
a lost result and an extra paid task show up in the cell and the totals, never hidden."""
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "reliability_table.py"


def _script():
    spec = importlib.util.spec_from_file_location("reliability_table", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_fault_class_is_a_row_and_losses_and_double_payments_are_counted():
    rt = _script()
    faults = rt.fault_classes()
    assert "submit_drop_after" in faults and "download_expired" in faults
    records = [
        {"case": "a", "fault": "submit_5xx", "delivered": 1, "ambiguous": 0, "paid": 1},
        {"case": "a", "fault": "submit_5xx", "delivered": 0, "ambiguous": 0, "paid": 2},  # lost, paid twice
        {"case": "b", "fault": "submit_5xx", "delivered": 0, "ambiguous": 1, "paid": 1},
    ]
    text = rt.table(records)
    assert all(f"`{f}`" in text for f in faults)
    row = next(line for line in text.splitlines() if line.startswith("| `submit_5xx`"))
    assert "| 1/2 ✗ |" in row and "0/1 (+1 stopped)" in row
    assert "results lost 1" in text and "second paid tasks 1" in text and "Runs 3" in text
