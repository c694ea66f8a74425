"""How a byte count is shown on a node while a result downloads (``engine.files.amount``)."""
import re

from hypothesis import given, strategies as st

from comfyui_remote.engine.files import amount

UNITS = {"bytes": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9}


@given(st.integers(min_value=0, max_value=10**13))
def test_an_amount_reads_back_as_the_count_in_the_largest_unit_it_fills(n: int):
    text = amount(n)
    m = re.fullmatch(r"(\d+(?:\.\d+)?) (bytes|KB|MB|GB)", text)
    assert m, text
    value, unit = float(m.group(1)), m.group(2)
    shown_step = {"bytes": 1, "KB": 0.1, "MB": 0.1, "GB": 0.01}[unit]
    assert abs(value * UNITS[unit] - n) <= shown_step * UNITS[unit] / 2 + 1e-6, text
    assert value < 1000 or unit == "GB", text  # never "1000.0 KB"
    assert unit == "bytes" or value >= 1, text  # never "0.0 MB" for a small file


def test_the_unit_changes_where_the_rounded_value_would_reach_a_thousand():
    assert amount(999) == "999 bytes"
    assert amount(1000) == "1.0 KB"
    assert amount(999_949) == "999.9 KB"
    assert amount(999_950) == "1.0 MB"
    assert amount(1_500_000_000) == "1.50 GB"
