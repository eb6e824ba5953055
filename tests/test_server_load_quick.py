"""``benchmarks/serve_load.py`` still runs end to end (tiny sizes, no timing claims): the mock
upstream, the Starlette relay and ``promptkit serve``, each stream complete."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support import REPO


def test_the_serve_load_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "serve.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "serve_load.py"), "--streams", "10",
         "--reps", "1", "--litellm", str(tmp_path / "no-litellm"), "--out", str(out)],
        capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"starlette relay", "promptkit serve"}
    for row in report["results"].values():
        assert row["errors"] == 0 and row["streams_per_s"] > 0
    assert any("LiteLLM proxy not measured" in note for note in report["notes"])
