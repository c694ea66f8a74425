"""Each fake runs on its own (`python -m tests.fakes NAME`) and prints how to point a profile at it."""
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from comfyui_remote.tests.fakes import FAKES

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(FAKES))
def test_fake_runs_standalone_and_prints_its_profile_env(name):
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes", name, "--port", "0"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in first, proc.stderr.read() if proc.poll() is not None else first
        url = first.rsplit(" ", 1)[1].strip()
        env = proc.stdout.readline().strip()
        assert env.endswith(url), env  # the URL variable comes first
        try:
            urllib.request.urlopen(url + "/", timeout=5)
        except urllib.error.HTTPError:
            pass  # any HTTP answer proves it listens
    finally:
        proc.terminate()
        proc.wait(10)
