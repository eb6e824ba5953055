"""Run the benchmark suite: promptkit against the raw floors and the official SDKs.

    python benchmarks/run.py            # the full run (10-15 minutes): docs/benchmarks.md
    python benchmarks/run.py --quick    # tiny sizes, checks that everything works (< 30 s)

Starts the mock upstream (``upstream.py``) as its own process, then runs every measurement in
a fresh client process (``clients.py``), alternating the clients, repeating each measurement
``--reps`` times and keeping medians. Workloads (issue 6):

(a) client CPU per streamed chunk, no pacing: 200 streams × 200 chunks and 1 × 20,000;
(b) concurrency 100 / 500 / 1,000 with the realistic profile (first chunk 200 ms, 30 chunks
    30 ms apart), and the tool-calling variant at 500;
(c) ``import promptkit`` vs ``import openai`` (wall, interpreter start included), and the
    first-use costs;
(d) memory per idle conversation with a 20-turn history (``memory.py``): 10,000 conversations
    with 30-chunk replies (the long-conversation issue's measure), 1,000 with 200-chunk ones.

Clients whose packages are not installed are skipped with a note. The full run writes
``docs/benchmarks.md``, ``docs/benchmarks.png`` (if matplotlib is installed) and
``benchmarks/results/latest.json``; ``--quick`` writes only into ``--out`` (a temporary
directory by default) and makes no timing claims.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import clients  # noqa: E402  (benchmarks/ is not a package)
import report  # noqa: E402

# measured only at the first CPU size and the highest concurrency (they only tell whether
# uvloop helps)
VARIANTS = {"raw-aiohttp+uvloop", "promptkit-async+uvloop"}
OPENAI_ORDER = ["raw-aiohttp", "raw-httpx2", "raw-http.client", "promptkit-async",
                "promptkit-sync", "openai", "raw-aiohttp+uvloop", "promptkit-async+uvloop"]
ANTHROPIC_ORDER = ["raw-aiohttp/anthropic", "promptkit-async/anthropic", "anthropic"]

FULL = {
    "reps": 3,
    "cpu_sizes": [(200, 200), (1, 20000)],
    "levels": [100, 500, 1000],
    "tools_level": 500,
    "rounds": 1,
    "import_reps": 10,
    "memory": {"30": ["--conversations", "10000"], "200": ["--conversations", "1000"]},
    "profile": {"chunks": 30, "first": 0.2, "gap": 0.03},  # PromptKit's "realistic" profile
}
QUICK = {
    "reps": 1,
    "cpu_sizes": [(3, 10)],
    "levels": [10],
    "tools_level": 10,
    "rounds": 1,
    "import_reps": 1,
    "memory": {chunks: ["--conversations", "2", "--sample", "2", "--turns", "3"]
               for chunks in ("30", "200")},
    "imports": ["python -c pass", "import promptkit", "import promptkit; promptkit.open(...)",
                "import promptkit; open_async(...) + first streamed reply"],
    "profile": {"chunks": 10, "first": 0.02, "gap": 0.005},
}


PRIORITY = {"nice": 0}  # set by --nice: the niceness of the upstream and client processes


def _env() -> dict[str, str]:
    """The children's environment: clients.py and upstream.py apply PROMPTKIT_BENCH_NICE."""
    return {**os.environ, "PROMPTKIT_BENCH_NICE": str(PRIORITY["nice"])}


def priority_applied() -> bool:
    """Whether --nice took effect (a negative niceness needs root)."""
    if not PRIORITY["nice"]:
        return False
    done = subprocess.run([sys.executable, "-c", "import clients, os; clients.apply_nice(); "
                           "print(os.getpriority(os.PRIO_PROCESS, 0))"], cwd=HERE,
                          capture_output=True, text=True, env=_env(), check=False)
    return done.stdout.strip() == str(PRIORITY["nice"])


class Upstream:
    """The mock upstream server process; ``stats()`` reads its CPU time."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "upstream.py"), "--port", "0"],
            stdout=subprocess.PIPE, text=True, env=_env())
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            self.proc.kill()
            raise RuntimeError(f"the mock upstream did not start: {line!r}")
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        self.port = int(fields["port"])
        self.loop = fields.get("loop", "?")
        self.base = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/stats")
            return json.loads(conn.getresponse().read())  # type: ignore[no-any-return]
        finally:
            conn.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def busy_seconds() -> float | None:
    """CPU seconds all processes of the machine have used (``/proc/stat``), or None."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def run_client(upstream: Upstream, job: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    """One client process; adds the upstream's CPU share over the measured part, and the CPU
    that other processes of the machine used meanwhile (``foreign_cores``)."""
    job = {"base": upstream.base, **job}
    before = upstream.stats()
    busy = busy_seconds()
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, str(HERE / "clients.py"), json.dumps(job)],
                              capture_output=True, text=True, timeout=timeout, check=False,
                              env=_env())
    except subprocess.TimeoutExpired:
        return {"failed": f"timed out after {timeout} s"}
    elapsed = time.perf_counter() - started
    busy_after = busy_seconds()
    after = upstream.stats()
    lines = done.stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"failed": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    for part in (result, *(v for v in result.values() if isinstance(v, dict))):
        ttfts = part.pop("ttfts", None)
        if ttfts is not None:  # keep percentiles, not every stream's value
            part["streams_ok"] = len(ttfts)
            part["ttft"] = {f"p{q}": report.percentile(ttfts, q / 100) for q in (50, 90, 99, 100)}
    wall = result.get("wall") or elapsed
    result["server_cpu"] = after["cpu"] - before["cpu"]
    result["server_share"] = result["server_cpu"] / wall if wall else None
    result["server_aborted"] = after["aborted"] - before["aborted"]
    if busy is not None and busy_after is not None and "cpu_total" in result:
        foreign = busy_after - busy - result["cpu_total"] - result["server_cpu"]
        result["foreign_cores"] = max(0.0, foreign / elapsed)
    return result


def _rotated(names: list[str], rep: int) -> list[str]:
    k = rep % len(names) if names else 0
    return names[k:] + names[:k]


def _available(names: list[str], notes: dict[str, str]) -> list[str]:
    out = []
    for name in names:
        absent = clients.missing(clients.CLIENTS[name])
        if absent:
            notes.setdefault(name, f"skipped: not installed: {', '.join(absent)}")
        else:
            out.append(name)
    return out


def _execute(jobs: list[tuple[str, dict[str, Any]]], upstream: Upstream, parallel: int,
             results: dict[str, list[dict[str, Any]]], notes: dict[str, str],
             progress: bool) -> None:
    """Run (key, job) pairs in order (or ``parallel`` at a time in quick mode)."""

    def one(item: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        key, job = item
        return key, job, run_client(upstream, job)

    if parallel > 1:
        with ThreadPoolExecutor(parallel) as pool:
            outcomes = list(pool.map(one, jobs))
    else:
        outcomes = []
        for n, item in enumerate(jobs, 1):
            outcome = one(item)
            outcomes.append(outcome)
            if progress:
                key, job, result = outcome
                status = (result.get("skipped") or result.get("failed")
                          or f"{result.get('wall', 0):.2f} s")
                print(f"  [{n}/{len(jobs)}] {key} {job['client']}: {status}", flush=True)
    for key, job, result in outcomes:
        if "skipped" in result:
            notes.setdefault(job["client"], "skipped: " + result["skipped"])
            continue
        if "failed" in result:
            notes[f"{job['client']} {key}"] = "failed: " + result["failed"]
        results.setdefault(f"{key}|{job['client']}", []).append(result)


def workload_check(cfg: dict[str, Any], names: list[str], upstream: Upstream, parallel: int,
                   notes: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """--quick: one process per client runs the cpu, conc and tools workloads (no idle run)."""
    streams = cfg["cpu_sizes"][0][0]
    chunks = cfg["profile"]["chunks"]  # one process, one stream length
    level = cfg["levels"][0]
    jobs = [("check", {"client": name, "mode": "check", "streams": streams, "concurrency": level,
                       "rounds": cfg["rounds"], **cfg["profile"]}) for name in names]
    raw: dict[str, list[dict[str, Any]]] = {}
    _execute(jobs, upstream, parallel, raw, notes, progress=False)
    cpu: dict[str, Any] = {}
    conc: dict[str, Any] = {}
    for key, runs in raw.items():
        client = key.split("|", 1)[1]
        for run in runs:
            if "cpu" not in run:
                continue
            cpu.setdefault(f"cpu-{streams}x{chunks}|{client}", []).append(run["cpu"])
            conc.setdefault(f"conc-{level}|{client}", []).append(run["conc"])
            conc.setdefault(f"tools-{level}|{client}", []).append(run["tools"])
    return cpu, conc


def workload_cpu(cfg: dict[str, Any], names: list[str], upstream: Upstream, parallel: int,
                 notes: dict[str, str], progress: bool) -> dict[str, Any]:
    raw: dict[str, list[dict[str, Any]]] = {}
    jobs: list[tuple[str, dict[str, Any]]] = []
    for rep in range(cfg["reps"]):
        for size, (streams, chunks) in enumerate(cfg["cpu_sizes"]):
            for name in _rotated(names, rep):
                if size and name in VARIANTS:
                    continue
                jobs.append((f"cpu-{streams}x{chunks}",
                             {"client": name, "mode": "cpu", "streams": streams,
                              "chunks": chunks}))
        for name in _rotated(names, rep):
            jobs.append(("idle", {"client": name, "mode": "idle"}))
    _execute(jobs, upstream, parallel, raw, notes, progress)
    return raw


def workload_concurrency(cfg: dict[str, Any], names: list[str], upstream: Upstream,
                         parallel: int, notes: dict[str, str], progress: bool
                         ) -> dict[str, Any]:
    raw: dict[str, list[dict[str, Any]]] = {}
    jobs: list[tuple[str, dict[str, Any]]] = []
    configs = [(f"conc-{n}", n, False) for n in cfg["levels"]]
    configs.append((f"tools-{cfg['tools_level']}", cfg["tools_level"], True))
    for rep in range(cfg["reps"]):
        for key, level, tools in configs:
            for name in _rotated(names, rep):
                if name in VARIANTS and (tools or level != max(cfg["levels"])):
                    continue
                jobs.append((key, {"client": name, "mode": "conc", "concurrency": level,
                                   "rounds": cfg["rounds"], "tools": tools, **cfg["profile"]}))
    _execute(jobs, upstream, parallel, raw, notes, progress)
    return raw


IMPORTS = {
    "python -c pass": "pass",
    "import promptkit": "import promptkit",
    "import openai": "import openai",
    "import anthropic": "import anthropic",
    "import aiohttp": "import aiohttp",
    "import httpx2": "import httpx2",
    "import promptkit; promptkit.open(...)": (
        "import promptkit; promptkit.open({pack!r}, 'chat', provider='openai', "
        "base_url='http://127.0.0.1:9/v1', api_key='x')"),
    "import promptkit; open_async(...) + first streamed reply": (
        "import asyncio, promptkit\n"
        "async def main():\n"
        "    conv = promptkit.open_async({pack!r}, 'chat', provider='openai', "
        "base_url={base!r} + '/cfg/chunks=30,first=0,gap=0/v1', api_key='x')\n"
        "    await conv.send('hi')\n"
        "asyncio.run(main())"),
    "import openai; AsyncOpenAI() + first streamed reply": (
        "import asyncio, openai\n"
        "async def main():\n"
        "    client = openai.AsyncOpenAI(base_url={base!r} + '/cfg/chunks=30,first=0,gap=0/v1',"
        " api_key='x')\n"
        "    stream = await client.chat.completions.create(model='gpt-4o-mini', "
        "messages=[{{'role': 'user', 'content': 'hi'}}], stream=True)\n"
        "    async for _ in stream: pass\n"
        "asyncio.run(main())"),
}


def workload_imports(cfg: dict[str, Any], upstream: Upstream, notes: dict[str, str]
                     ) -> dict[str, Any]:
    """Wall time of a fresh interpreter running each snippet (``.pyc`` compiled first)."""
    import compileall
    import importlib.util

    targets = [ROOT / "src" / "promptkit"]
    for module in ("openai", "anthropic", "aiohttp", "httpx2", "httpcore2", "pydantic"):
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin:
            targets.append(Path(spec.origin).parent)
    for target in targets:
        compileall.compile_dir(str(target), quiet=1)
    times: dict[str, list[float]] = {}
    snippets = {}
    for label, code in IMPORTS.items():
        if cfg.get("imports") and label not in cfg["imports"]:
            continue
        needs = [m for m in ("openai", "anthropic", "aiohttp", "httpx2") if f"import {m}" in
                 code or f", {m}" in code]
        absent = [m for m in needs if importlib.util.find_spec(m) is None]
        if absent:
            notes.setdefault(label, f"skipped: not installed: {', '.join(absent)}")
            continue
        snippets[label] = code.format(pack=str(HERE / "bench.pack.json"), base=upstream.base)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    for _ in range(cfg["import_reps"]):
        for label, code in snippets.items():  # alternating
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env,
                                  check=False)
            elapsed = time.perf_counter() - started
            if done.returncode != 0:
                notes[label] = "failed: " + done.stderr.decode()[-300:]
                continue
            times.setdefault(label, []).append(elapsed * 1000)
    return {label: {"median_ms": statistics.median(v), "runs": v} for label, v in times.items()}


def workload_memory(cfg: dict[str, Any], upstream: Upstream, notes: dict[str, str]
                    ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for chunks, args in cfg["memory"].items():
        done = subprocess.run(
            [sys.executable, str(HERE / "memory.py"), upstream.base, "--chunks", chunks, *args],
            capture_output=True, text=True, check=False, timeout=1800)
        try:
            out[chunks] = json.loads(done.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            notes[f"memory {chunks}"] = "failed: " + done.stderr[-300:]
    return out


def machine() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("promptkit-sdk", "aiohttp", "httpx2", "openai", "anthropic", "pydantic",
                 "uvloop", "matplotlib"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    return {"nproc": os.cpu_count(), "cpu": model, "loadavg": os.getloadavg(),
            "python": sys.version.split()[0], "platform": sys.platform, "versions": versions,
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="promptkit benchmark suite")
    parser.add_argument("--quick", action="store_true", help="tiny sizes; checks it works")
    parser.add_argument("--reps", type=int, help="repetitions of each measurement")
    parser.add_argument("--out", help="directory for the results (quick: a temp dir)")
    parser.add_argument("--only", default="cpu,conc,imports,memory",
                        help="comma-separated workloads to run")
    parser.add_argument("--nice", type=int, default=None,
                        help="niceness of the upstream and clients (full run: -10, which needs "
                             "root; ignored where not allowed), so that other processes on a "
                             "shared machine disturb the measurements less")
    parser.add_argument("--report-only", metavar="JSON",
                        help="rewrite the markdown and plot from a results file, run nothing")
    args = parser.parse_args(argv)
    if args.report_only:
        results = json.loads(Path(args.report_only).read_text())
        docs = Path(args.out) if args.out else ROOT / "docs"
        summary = report.summarize(results)
        (docs / "benchmarks.md").write_text(report.markdown(results, summary, "benchmarks.png"))
        report.plot(summary, docs / "benchmarks.png")
        print(report.console(summary, results))
        return 0
    PRIORITY["nice"] = args.nice if args.nice is not None else (0 if args.quick else -10)
    cfg = dict(QUICK if args.quick else FULL)
    if args.reps:
        cfg["reps"] = args.reps
    only = set(args.only.split(","))
    if args.quick:
        out = Path(args.out or tempfile.mkdtemp(prefix="promptkit-bench-"))
        docs = out
    else:
        out = Path(args.out) if args.out else HERE / "results"
        docs = Path(args.out) if args.out else ROOT / "docs"
    out.mkdir(parents=True, exist_ok=True)
    docs.mkdir(parents=True, exist_ok=True)
    parallel = 4 if args.quick else 1
    progress = not args.quick
    notes: dict[str, str] = {}
    names = _available(OPENAI_ORDER, notes) + _available(ANTHROPIC_ORDER, notes)
    for name, note in notes.items():
        print(f"note: {name}: {note}", flush=True)
    results: dict[str, Any] = {"machine": machine(), "config": cfg, "quick": args.quick,
                               "nice": PRIORITY["nice"] if priority_applied() else 0}
    t0 = time.perf_counter()
    upstream = Upstream()
    results["upstream_loop"] = upstream.loop
    try:
        if args.quick and {"cpu", "conc"} <= only:
            print("(a)+(b) streaming, tools and concurrency, one process per client", flush=True)
            results["cpu"], results["conc"] = workload_check(cfg, names, upstream, parallel,
                                                             notes)
            only -= {"cpu", "conc"}
        if "cpu" in only:
            print("(a) client CPU per chunk, no pacing", flush=True)
            results["cpu"] = workload_cpu(cfg, names, upstream, parallel, notes, progress)
        if "conc" in only:
            print("(b) concurrency, realistic profile", flush=True)
            results["conc"] = workload_concurrency(cfg, names, upstream, parallel, notes,
                                                   progress)
        if "imports" in only:
            print("(c) import and first-use time", flush=True)
            results["imports"] = workload_imports(cfg, upstream, notes)
        if "memory" in only:
            print("(d) memory per idle conversation", flush=True)
            results["memory"] = workload_memory(cfg, upstream, notes)
        results["server_final"] = upstream.stats()
    finally:
        upstream.stop()
    measured = {key.split("|", 1)[1] for part in ("cpu", "conc") for key in results.get(part, {})}
    for name in measured:  # e.g. a dialect that landed while the run went on
        if notes.get(name, "").startswith("skipped"):
            del notes[name]
    results["notes"] = notes
    results["elapsed_s"] = time.perf_counter() - t0
    results["loadavg_end"] = os.getloadavg()
    (out / ("quick.json" if args.quick else "latest.json")).write_text(
        json.dumps(results, indent=1) + "\n")
    summary = report.summarize(results)
    markdown = report.markdown(results, summary, png="benchmarks.png")
    (docs / "benchmarks.md").write_text(markdown)
    plotted = report.plot(summary, docs / "benchmarks.png")
    if not plotted:
        print("note: matplotlib is not installed: no plot", flush=True)
    print(report.console(summary, results), flush=True)
    print(f"wrote {docs / 'benchmarks.md'}" + (f" and {docs / 'benchmarks.png'}"
                                               if plotted else "")
          + f" in {results['elapsed_s']:.0f} s", flush=True)
    failures = [k for k, v in notes.items() if v.startswith("failed")]
    errors = summary.get("errors_in_quick", 0) if args.quick else 0
    return 1 if (args.quick and (failures or errors)) else 0


if __name__ == "__main__":
    sys.exit(main())
