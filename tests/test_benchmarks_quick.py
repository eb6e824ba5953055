"""The benchmark suite runs end to end at tiny sizes (``benchmarks/run.py --quick``).

It makes no timing claim: it checks that the mock upstream, every installed client, the
workloads and the report work. Clients whose packages are not installed (``openai``,
``anthropic``, ``httpx2``, ``uvloop``: the ``bench`` extra) are skipped with a note, and so is
the plot without matplotlib.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO


@pytest.mark.slow
def test_quick_benchmark_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "quick.json").read_text())
    clients = {key.split("|", 1)[1] for key in results["cpu"]}
    assert {"promptkit-async", "promptkit-sync", "raw-aiohttp"} <= clients
    for workload in ("cpu", "conc"):
        for key, runs in results[workload].items():
            for run in runs:
                assert "failed" not in run, (key, run)
                assert run.get("errors", 0) == 0, (key, run)
    assert {"conc-10|promptkit-async", "tools-10|promptkit-sync"} <= set(results["conc"])
    assert "import promptkit" in results["imports"]
    assert results["memory"]["30"]["async"]["bytes_per_conversation"] > 0
    markdown = (tmp_path / "benchmarks.md").read_text()
    assert "| promptkit-async |" in markdown and "| promptkit-sync |" in markdown
    assert "promptkit-async" in done.stdout and "promptkit-sync" in done.stdout


def test_observe_turn_streams_every_variant_to_the_end() -> None:
    """benchmarks/observe_turn.py's fake transport speaks the async transport protocol: each
    variant's turns stream the canned reply to the end (it raises on a short count)."""
    pytest.importorskip("opentelemetry.sdk")
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "observe_turn.py"), "--turns", "3",
         "--chunks", "7", "--batch", "3", "--reps", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for variant in ("plain", "guardrails", "tracing", "both", "noop"):
        assert f"  {variant} " in done.stdout, done.stdout
