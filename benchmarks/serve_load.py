"""Load: 1,000 concurrent SSE clients streaming through ``promptkit serve`` to the mock upstream,
against (a) a minimal Starlette relay forwarding the upstream SSE (``serve_relay.py``) and
(b) the LiteLLM proxy doing the same relay (when installed in its own virtual environment).

    python benchmarks/serve_load.py [--streams 1000] [--reps 2] [--litellm /tmp/litellm-venv]

Every server runs as its own process under uvicorn (one worker, loopback only) in front of
the same mock upstream (``upstream.py``: first event after 200 ms, 30 chunks 30 ms apart);
the load client is a separate process (aiohttp) that starts all streams at once, each a
``POST /v1/chat/completions`` with ``stream: true``. Reported per server: streams/s (completed
streams over the wall time from the first request to the last ``[DONE]``), time to the first
text chunk p50/p99, errors (non-200, a stream without ``[DONE]``, or a failure), and the
server's peak RSS (``VmHWM``, summed over its process tree). Servers alternate, medians of
``--reps`` runs. Results: ``benchmarks/results/serve.json`` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KEY_ENV = "BENCH_UPSTREAM_KEY"
# the bearer the load client sends: promptkit serve's token and LiteLLM's master key (both
# servers then check auth on every request, as they would in production; the relay ignores it)
BEARER = "sk-bench-master-5f0c2a9e71d84b36"
WARMUP = 20  # streams run before the measured ones, to load every code path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not listen")


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        todo += [int(c) for c in children]
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by ``pid`` and its descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for current in _tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def tree_hwm_kib(pid: int) -> int:
    """Peak RSS (VmHWM) of ``pid`` and its descendants, in KiB."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines()
                          if line.startswith("VmHWM:"))
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            pids += [int(c) for c in children]
        except (OSError, StopIteration, ValueError):
            continue
    return total


# --- the servers ----------------------------------------------------------------------------


def start_upstream() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, str(HERE / "upstream.py"), "--port", "0"],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("READY port="):
        raise RuntimeError(f"the mock upstream did not start: {line!r}")
    port = int(line.split()[1].split("=")[1])
    return process, f"http://127.0.0.1:{port}/v1"


def server_command(name: str, upstream: str, port: int, litellm: Path | None,
                   workdir: Path) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, KEY_ENV: "sk-bench-not-a-real-key", "PROMPTKIT_SERVE_TOKEN": BEARER,
           "LITELLM_MASTER_KEY": BEARER}
    quiet = ["--log-level", "warning", "--no-access-log"]
    if name == "promptkit serve":
        return ([sys.executable, "-m", "promptkit.cli.main", "serve",
                 str(HERE / "bench.pack.json"), "--provider", "openai", "--base-url", upstream,
                 "--api-key-env", KEY_ENV, "--port", str(port), *quiet], env)
    if name == "starlette relay":
        env["RELAY_UPSTREAM"] = upstream
        return ([sys.executable, "-m", "uvicorn", "serve_relay:app", "--app-dir", str(HERE),
                 "--port", str(port), *quiet], env)
    assert litellm is not None
    config = workdir / "litellm.yaml"
    config.write_text(json.dumps({
        "model_list": [{"model_name": "chat", "litellm_params": {
            "model": "openai/gpt-4o-mini", "api_base": upstream,
            "api_key": "os.environ/" + KEY_ENV}}],
        "litellm_settings": {"telemetry": False, "drop_params": True},
        "general_settings": {"disable_spend_logs": True}}))
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
                "LITELLM_TELEMETRY": "False", "NO_PROXY": "*"})
    return ([str(litellm / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1",
             "--port", str(port), "--num_workers", "1"], env)


# --- the load client (its own process) ------------------------------------------------------


async def _one(session: Any, url: str, body: bytes, t0: float) -> tuple[bool, float | None]:
    first: float | None = None
    try:
        async with session.post(url, data=body,
                                headers={"content-type": "application/json",
                                         "authorization": f"Bearer {BEARER}"}) as response:
            if response.status != 200:
                await response.read()
                return False, None
            done = False
            async for line in response.content:
                if line.startswith(b"data: [DONE]"):
                    done = True
                elif first is None and b'"content":"' in line and b'"content":""' not in line:
                    first = time.perf_counter() - t0
            return done, first
    except Exception:
        return False, first


async def _load(url: str, streams: int) -> dict[str, Any]:
    import aiohttp

    body = json.dumps({"model": "chat", "stream": True,
                       "messages": [{"role": "user", "content": "Hello"}]}).encode()
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=timeout) as session:
        await asyncio.gather(*(_one(session, url, body, time.perf_counter())
                               for _ in range(WARMUP)))
        start = time.perf_counter()

        async def timed() -> tuple[bool, float | None]:
            return await _one(session, url, body, time.perf_counter())

        results = await asyncio.gather(*(timed() for _ in range(streams)))
        wall = time.perf_counter() - start
    ok = [r for r in results if r[0]]
    ttft = sorted(r[1] for r in ok if r[1] is not None)

    def pct(p: float) -> float | None:
        return ttft[min(len(ttft) - 1, int(p * len(ttft)))] if ttft else None

    return {"streams": streams, "ok": len(ok), "errors": streams - len(ok), "wall": wall,
            "streams_per_s": len(ok) / wall, "ttft_p50": pct(0.5), "ttft_p99": pct(0.99)}


def client_main(url: str, streams: int) -> None:
    print(json.dumps(asyncio.run(_load(url, streams))))


# --- the runner -----------------------------------------------------------------------------


def measure(name: str, upstream: str, streams: int, litellm: Path | None,
            workdir: Path) -> dict[str, Any]:
    port = free_port()
    command, env = server_command(name, upstream, port, litellm, workdir)
    log = (workdir / f"{name.replace(' ', '-')}.log").open("w")
    server = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        try:
            wait_listening(port, server, timeout=120)
        except RuntimeError as exc:
            tail = Path(log.name).read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{exc}:\n{tail}") from None
        time.sleep(1.0)
        cpu_before = tree_cpu_seconds(server.pid)
        client = subprocess.run(
            [sys.executable, __file__, "client", "--url",
             f"http://127.0.0.1:{port}/v1/chat/completions", "--streams", str(streams)],
            capture_output=True, text=True, timeout=300, check=True)
        result: dict[str, Any] = json.loads(client.stdout)
        result["rss_mib"] = round(tree_hwm_kib(server.pid) / 1024, 1)
        # the server's own CPU per stream (warm-up streams included): what it costs,
        # independent of how busy the machine was
        used = tree_cpu_seconds(server.pid) - cpu_before
        result["cpu_ms_per_stream"] = round(1000 * used / (streams + WARMUP), 2)
        return result
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _fmt(value: float | None, unit: str = "", digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode")
    client = sub.add_parser("client")
    client.add_argument("--url", required=True)
    client.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--litellm", type=Path, default=Path("/tmp/litellm-venv"),
                        help="virtual environment holding litellm[proxy]")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "serve.json")
    args = parser.parse_args()
    if args.mode == "client":
        client_main(args.url, args.streams)
        return
    names = ["starlette relay", "promptkit serve"]
    notes = []
    litellm: Path | None = args.litellm
    if litellm is not None and (litellm / "bin" / "litellm").exists():
        names.append("litellm proxy")
    else:
        notes.append(f"LiteLLM proxy not measured: no {litellm}/bin/litellm")
        litellm = None
    upstream_process, upstream = start_upstream()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    try:
        with tempfile.TemporaryDirectory() as workdir:
            for rep in range(args.reps):
                for name in names:
                    try:
                        result = measure(name, upstream, args.streams, litellm, Path(workdir))
                    except (RuntimeError, subprocess.SubprocessError) as exc:
                        notes.append(f"{name} rep {rep + 1} failed: {exc}")
                        continue
                    runs[name].append(result)
                    print(f"rep {rep + 1} {name}: {json.dumps(result)}", file=sys.stderr)
    finally:
        upstream_process.terminate()
        upstream_process.wait(10)
    summary: dict[str, Any] = {}
    for name, results in runs.items():
        if not results:
            continue
        summary[name] = {key: statistics.median(r[key] for r in results if r[key] is not None)
                         for key in ("streams_per_s", "ttft_p50", "ttft_p99", "rss_mib",
                                     "cpu_ms_per_stream")
                         if any(r[key] is not None for r in results)}
        summary[name]["errors"] = sum(r["errors"] for r in results)
        summary[name]["runs"] = len(results)
    floor = summary.get("starlette relay", {}).get("streams_per_s")
    lite = summary.get("litellm proxy", {}).get("streams_per_s")
    ours = summary.get("promptkit serve", {}).get("streams_per_s")
    ratios = {"vs_relay": ours / floor if ours and floor else None,
              "vs_litellm": ours / lite if ours and lite else None}
    cpu = {name: row.get("cpu_ms_per_stream") for name, row in summary.items()}
    report = {"streams": args.streams, "reps": args.reps, "cpus": os.cpu_count(),
              "profile": "first event 200 ms, 30 chunks 30 ms apart", "results": summary,
              "ratios": ratios, "cpu_ms_per_stream": cpu, "notes": notes,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"| server ({args.streams} concurrent streams) | streams/s | TTFT p50 | TTFT p99 "
          "| errors | peak RSS | server CPU per stream |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, row in summary.items():
        print(f"| {name} | {row['streams_per_s']:.0f} | {_fmt(row.get('ttft_p50'), ' s')} "
              f"| {_fmt(row.get('ttft_p99'), ' s')} | {row['errors']} "
              f"| {row.get('rss_mib', 0):.0f} MiB "
              f"| {_fmt(row.get('cpu_ms_per_stream'), ' ms', 2)} |")
    print(f"\npromptkit serve / relay: {_fmt(ratios['vs_relay'], '×', 2)}; "
          f"/ LiteLLM: {_fmt(ratios['vs_litellm'], '×', 2)}")
    for note in notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
