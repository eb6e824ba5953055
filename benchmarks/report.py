"""Turn the raw measurements of ``run.py`` into medians, ratios, the target check, the markdown
of ``docs/benchmarks.md`` and the plot."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

FLOOR = "raw-aiohttp"
SDK = "openai"
PK_ASYNC = "promptkit-async"
PK_SYNC = "promptkit-sync"


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _split(raw: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    by: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for key, runs in raw.items():
        workload, client = key.split("|", 1)
        by.setdefault(workload, {})[client] = [r for r in runs if "failed" not in r]
    return by


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {"cpu": {}, "conc": {}, "order": [], "errors_in_quick": 0}
    order: list[str] = []
    cpu = _split(results.get("cpu", {}))
    idle = {c: _median([r["cpu_total"] for r in runs]) for c, runs in cpu.pop("idle", {}).items()}
    for workload, per_client in cpu.items():
        streams, chunks = (int(x) for x in workload.removeprefix("cpu-").split("x"))
        total = streams * chunks
        rows = {}
        for client, runs in per_client.items():
            if client not in order:
                order.append(client)
            steady = _median([r["loop_cpu"] / total * 1e6 for r in runs])
            whole = None
            if idle.get(client) is not None:
                whole = _median([(r["cpu_total"] - idle[client]) / total * 1e6 for r in runs])
            rows[client] = {"us_per_chunk": whole, "steady_us_per_chunk": steady,
                            "rss_mb": _median([r["maxrss_kb"] / 1024 for r in runs]),
                            "server_share": max((r.get("server_share") or 0) for r in runs),
                            "foreign": max((r.get("foreign_cores") or 0) for r in runs),
                            "runs": len(runs)}
        summary["cpu"][workload] = rows
    conc = _split(results.get("conc", {}))
    for workload, per_client in conc.items():
        rows = {}
        for client, runs in per_client.items():
            if client not in order:
                order.append(client)
            rows[client] = {
                "throughput": _median([r["streams_ok"] / r["wall"] for r in runs]),
                "ttft_p50_ms": _median([(r["ttft"]["p50"] or 0) * 1000 for r in runs]),
                "ttft_p99_ms": _median([(r["ttft"]["p99"] or 0) * 1000 for r in runs]),
                "errors": sum(r["errors"] for r in runs),
                "error_samples": sorted({s for r in runs for s in r["error_samples"]})[:3],
                "rss_mb": _median([r["maxrss_kb"] / 1024 for r in runs]),
                "client_cpu_share": _median([r["loop_cpu"] / r["wall"] for r in runs]),
                "server_share": max((r.get("server_share") or 0) for r in runs),
                "foreign": max((r.get("foreign_cores") or 0) for r in runs),
                "runs": len(runs),
            }
            summary["errors_in_quick"] += rows[client]["errors"]
        summary["conc"][workload] = rows
    summary["order"] = order
    summary["targets"] = targets(summary, results)
    if results.get("quick"):
        for target in summary["targets"]:
            target["verdict"] = "not judged (quick)"
    return summary


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(summary: dict[str, Any], results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each as (what, measured, limit, verdict)."""
    out: list[dict[str, Any]] = []

    def add(what: str, value: float | None, limit: float, higher_is_better: bool = False,
            fmt: str = "{:.2f}×", issue: int = 6) -> None:
        if value is None:
            verdict = "n/a"
        elif higher_is_better:
            verdict = "met" if value >= limit else "SHORT"
        else:
            verdict = "met" if value <= limit else "SHORT"
        out.append({"what": what, "value": value, "limit": limit, "verdict": verdict,
                    "higher": higher_is_better, "fmt": fmt, "issue": issue})

    cpu = summary["cpu"].get("cpu-200x200", {})
    floor, sdk, pk, pks = (cpu.get(c, {}) for c in (FLOOR, SDK, PK_ASYNC, PK_SYNC))
    for label, key in (("", "us_per_chunk"), (" (steady-state loop)", "steady_us_per_chunk")):
        add(f"CPU/chunk 200×200{label}: promptkit-async / raw aiohttp",
            _ratio(pk.get(key), floor.get(key)), 1.5)
        add(f"CPU/chunk 200×200{label}: promptkit-async / raw aiohttp",
            _ratio(pk.get(key), floor.get(key)), 1.1, issue=16)
        add(f"CPU/chunk 200×200{label}: promptkit-async / openai",
            _ratio(pk.get(key), sdk.get(key)), 0.25)
        add(f"CPU/chunk 200×200{label}: promptkit-sync / promptkit-async",
            _ratio(pks.get(key), pk.get(key)), 1.2)
    levels = sorted(int(k.split("-")[1]) for k in summary["conc"] if k.startswith("conc-"))
    if levels:
        top = summary["conc"][f"conc-{levels[-1]}"]
        floor, sdk, pk = (top.get(c, {}) for c in (FLOOR, SDK, PK_ASYNC))
        n = levels[-1]
        add(f"{n} concurrent: promptkit-async errors", pk.get("errors"), 0, fmt="{:.0f}")
        for limit, issue in ((0.8, 6), (0.95, 16)):
            add(f"{n} concurrent: throughput / raw aiohttp",
                _ratio(pk.get("throughput"), floor.get("throughput")), limit, True, issue=issue)
        add(f"{n} concurrent: throughput / openai",
            _ratio(pk.get("throughput"), sdk.get("throughput")), 4.0, True)
        for limit, issue in ((1.5, 6), (1.15, 16)):
            add(f"{n} concurrent: TTFT p99 / raw aiohttp",
                _ratio(pk.get("ttft_p99_ms"), floor.get("ttft_p99_ms")), limit, issue=issue)
            add(f"{n} concurrent: peak RSS / raw aiohttp",
                _ratio(pk.get("rss_mb"), floor.get("rss_mb")), limit, issue=issue)
    tools = next((v for k, v in summary["conc"].items() if k.startswith("tools-")), None)
    if tools:
        floor, pk = tools.get(FLOOR, {}), tools.get(PK_ASYNC, {})
        add("tool turns: promptkit-async errors", pk.get("errors"), 0, fmt="{:.0f}")
        for limit, issue in ((0.8, 6), (0.95, 16)):
            add("tool turns: throughput / raw aiohttp",
                _ratio(pk.get("throughput"), floor.get("throughput")), limit, True, issue=issue)
    imports = results.get("imports", {})
    if "import promptkit" in imports:
        for limit, issue in ((60, 6), (25, 16)):
            add("import promptkit, wall ms (interpreter start included)",
                imports["import promptkit"]["median_ms"], limit, fmt="{:.0f} ms", issue=issue)
    memory = results.get("memory", {})
    for chunks, data in sorted(memory.items(), key=lambda kv: int(kv[0])):
        add(f"idle conversation ({data['turns']} turns, {chunks}-chunk replies) / text bytes",
            data["async"]["ratio"], 2.0)
    replies_30 = memory.get("30", {})
    for driver in (PK_SYNC, PK_ASYNC):  # issue 16: ≤ 2 KB beyond the text, at 10,000
        data = replies_30.get(driver.removeprefix("promptkit-"), {})
        scale = data.get("at_scale") or {}
        count = scale.get("conversations") or replies_30.get("sample")
        add(f"idle {replies_30.get('turns', 20)}-turn conversation, bytes beyond its text: "
            f"{driver}"
            + (f" ({count:,} conversations)" if count else ""),
            scale.get("allocator_beyond_text", data.get("beyond_text")), 2048, fmt="{:,.0f} B",
            issue=16)
    return out


# --- markdown -------------------------------------------------------------------------------


def _f(value: float | None, fmt: str = "{:.1f}") -> str:
    return "–" if value is None else fmt.format(value)


def _load(values: list[float] | None) -> str:
    return " / ".join(f"{x:.2f}" for x in values) if values else "?"


def _levels(summary: dict[str, Any]) -> list[str]:
    keys = [k for k in summary["conc"] if k.startswith("conc-")]
    return sorted(keys, key=lambda k: int(k.split("-")[1]))


def markdown(results: dict[str, Any], summary: dict[str, Any], png: str) -> str:
    m = results["machine"]
    v = m["versions"]
    cfg = results["config"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python benchmarks/run.py` (see `benchmarks/README.md`); do not edit by "
        "hand." + (" **Quick mode: tiny sizes, no timing claims.**" if results["quick"] else ""),
        "",
        f"- **Date**: {m['date']}",
        f"- **Machine**: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']} ({m['platform']}); "
        f"load average at start {_load(m.get('loadavg'))}, at end "
        f"{_load(results.get('loadavg_end'))}",
        "- **Versions**: " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
        f"- **Method**: mock upstream `benchmarks/upstream.py` in its own process "
        f"({results.get('upstream_loop', '?')} event loop); every measurement in a fresh "
        f"client process; clients alternate; medians of {cfg['reps']} runs. "
        + (f"Concurrency: N workers each streaming {cfg['rounds']} streams back to back "
           if cfg["rounds"] > 1 else "Concurrency: N streams started at once ")
        + "(asyncio tasks; one thread per stream for the sync clients), a fresh conversation "
        "per stream for promptkit."
        + (f" Benchmark processes ran at niceness {results['nice']} (the machine is shared)."
           if results.get("nice") else ""),
        "",
    ]
    lines += _cpu_section(summary)
    lines += _conc_section(summary, cfg, png)
    lines += _imports_section(results)
    lines += _memory_section(results)
    lines += _targets_section(summary)
    if not results["quick"]:
        lines += READING
    notes = results.get("notes", {})
    if notes:
        lines += ["## Notes", ""] + [f"- `{k}`: {val}" for k, val in sorted(notes.items())] + [""]
    return "\n".join(lines)


READING = [
    "## Reading these numbers", "",
    "- The machine is shared with other work; the *other procs* columns say how much CPU "
    "other processes took during each measurement. Ratios come from one run with the clients "
    "alternating, so they are steadier than the absolute figures, which vary by ±20 % between "
    "runs on this machine.",
    "- Without pacing, how many events one read returns depends on how far the client lags "
    "the server, and every read costs an event-loop wake-up; a client's µs/chunk therefore "
    "moves with the relative speed of client and upstream. Compare clients within one run.",
    "- *Whole − idle* charges a client for what it does lazily at its first stream: promptkit "
    "imports its transport and dialect only then, and the raw aiohttp floor imports aiohttp "
    "(about 0.2 s of CPU) at set-up; the *loop* column leaves imports out for every client.",
    "- promptkit's async transport is its own HTTP/1.1 on asyncio sockets (docs/design.md), "
    "not aiohttp: the floor it is compared with is a different HTTP client, so promptkit can "
    "measure below 1.00×.",
    "- The sync clients (promptkit-sync, raw http.client) run one OS thread per stream: at "
    "500 and 1,000 streams the GIL hand-offs between threads cost more than the streams "
    "themselves (client CPU above 100 %, long TTFT tails). The async driver is the one to use "
    "for high concurrency.",
    "- Memory: beyond its text a stored message costs only its MessagePack framing (a few "
    "bytes; the memory store keeps a history as one `bytes` segment up to 32 KiB), so what an "
    "idle conversation holds beyond its text is mostly fixed: the conversation and its own "
    "store (*empty conversation*) and the store's record. *At scale* counts what the "
    "allocators hand out (16-byte rounding included), so it reads a little above the traced "
    "figures.",
    "",
]


def _cpu_section(summary: dict[str, Any]) -> list[str]:
    if not summary["cpu"]:
        return []
    sizes = sorted(summary["cpu"], key=lambda k: -int(k.split("x")[0].removeprefix("cpu-")))
    lines = ["## (a) Client CPU per streamed chunk, no pacing", "",
             "µs of client-process CPU per text chunk. *Whole process − idle*: the client "
             "process's CPU time (rusage) minus a run of the same client that only imports and "
             "sets up (lazy imports and the first connection are charged to the streams). "
             "*Loop*: `time.process_time()` around the streams only, after one warm-up stream.",
             ""]
    head = ["client"]
    for size in sizes:
        label = size.removeprefix("cpu-").replace("x", " × ")
        head += [f"{label}: whole − idle", f"{label}: loop"]
    head += ["× raw aiohttp", "× openai", "peak RSS MB", "upstream CPU", "other procs"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    first = summary["cpu"][sizes[0]]
    for client in summary["order"]:
        if client not in first:
            continue
        row = [client]
        for size in sizes:
            r = summary["cpu"][size].get(client, {})
            row += [_f(r.get("us_per_chunk")), _f(r.get("steady_us_per_chunk"))]
        r = first[client]
        row += [_f(_ratio(r["us_per_chunk"], first.get(FLOOR, {}).get("us_per_chunk")),
                   "{:.2f}"),
                _f(_ratio(r["us_per_chunk"], first.get(SDK, {}).get("us_per_chunk")), "{:.2f}"),
                _f(r["rss_mb"], "{:.0f}"), _f(r["server_share"] * 100, "{:.0f} %"),
                _f(r["foreign"], "{:.2f}")]
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, "", "Ratios use the first size's *whole − idle* column; "
            "*upstream CPU* is the mock server's busiest share of one core during the run; "
            "*other procs*: the most CPU (in cores) that processes outside the benchmark used "
            "during a run of that client (the machine is shared).", ""]


def _conc_section(summary: dict[str, Any], cfg: dict[str, Any], png: str) -> list[str]:
    if not summary["conc"]:
        return []
    lines = ["## (b) Concurrency, realistic profile", "",
             "First event after 200 ms, 30 text chunks 30 ms apart. Streams/s = completed "
             "streams / wall time; TTFT = request start to first text (p50 / p99 over every "
             "stream of a run); client CPU = the client process's CPU share of one core; "
             "upstream = the mock server's.", ""]
    head = ["client", "concurrency", "streams/s", "× raw aiohttp", "× openai", "TTFT p50 / p99 ms",
            "errors", "peak RSS MB", "client CPU", "upstream CPU", "other procs"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    keys = _levels(summary) + [k for k in summary["conc"] if k.startswith("tools-")]
    for client in summary["order"]:
        for key in keys:
            rows = summary["conc"][key]
            r = rows.get(client)
            if r is None:
                continue
            level = key.split("-")[1] + (" (tools)" if key.startswith("tools") else "")
            lines.append("| " + " | ".join([
                client, level, _f(r["throughput"], "{:.0f}"),
                _f(_ratio(r["throughput"], rows.get(FLOOR, {}).get("throughput")), "{:.2f}"),
                _f(_ratio(r["throughput"], rows.get(SDK, {}).get("throughput")), "{:.2f}"),
                f"{_f(r['ttft_p50_ms'], '{:.0f}')} / {_f(r['ttft_p99_ms'], '{:.0f}')}",
                str(r["errors"]), _f(r["rss_mb"], "{:.0f}"),
                _f(r["client_cpu_share"] * 100, "{:.0f} %"),
                _f(r["server_share"] * 100, "{:.0f} %"), _f(r["foreign"], "{:.2f}")]) + " |")
    lines += ["", "Tool rows: one tool round trip per stream (a tool call streamed in 5 events, "
              "the handler's result sent back, then the 30-chunk answer); TTFT is to the first "
              "text of the answer.", ""]
    samples = {(c, k): r["error_samples"] for k, rows in summary["conc"].items()
               for c, r in rows.items() if r["error_samples"]}
    if samples:
        lines += ["Errors seen:", ""] + [f"- {c} @ {k}: {'; '.join(s)}"
                                         for (c, k), s in samples.items()] + [""]
    lines += [f"![throughput and peak RSS against concurrency]({png})", ""]
    return lines


def _imports_section(results: dict[str, Any]) -> list[str]:
    imports = results.get("imports")
    if not imports:
        return []
    lines = ["## (c) Import and first-use time", "",
             "Wall time of `python -c ...` in a fresh interpreter, `.pyc` compiled first, "
             f"median of {results['config']['import_reps']} alternating runs.", "",
             "| command | ms |", "|---|---|"]
    for label, data in imports.items():
        lines.append(f"| `{label}` | {data['median_ms']:.0f} |")
    return [*lines, ""]


def _memory_section(results: dict[str, Any]) -> list[str]:
    memory = results.get("memory")
    if not memory:
        return []
    lines = ["## (d) Memory per idle conversation", "",
             "What stays allocated per conversation after its turns (one shared pack and "
             "transport, already warm), against the UTF-8 bytes of its messages' text (ASCII "
             "replies). *At scale*: that many conversations, untraced, counted by the "
             "allocators (pymalloc's blocks, rounded up to 16 bytes, plus malloc's); the other "
             "columns: `tracemalloc` over a sample of conversations opened while those are "
             "alive (bytes as requested).", "",
             "| driver | turns | reply chunks | at scale: conversations | at scale: beyond "
             "text | traced: bytes held | text bytes | traced: beyond text | ratio | empty "
             "conversation | per message beyond its text |", "|" + "---|" * 11]
    for chunks, data in sorted(memory.items(), key=lambda kv: int(kv[0])):
        for driver in ("async", "sync"):
            d = data[driver]
            scale = d.get("at_scale") or {}
            lines.append(f"| {driver} | {data['turns']} | {chunks} | "
                         f"{_f(scale.get('conversations'), '{:,}')} | "
                         f"{_f(scale.get('allocator_beyond_text'), '{:,}')} | "
                         f"{d['bytes_per_conversation']:,} | {d['text_bytes']:,} | "
                         f"{_f(d.get('beyond_text'), '{:,}')} | "
                         f"{d['ratio']:.2f} | {d['empty_conversation_bytes']:,} | "
                         f"{d['bytes_per_message_beyond_text']} |")
    return [*lines, ""]


def _targets_section(summary: dict[str, Any]) -> list[str]:
    lines = ["## Against the targets of issues 6 and 16", "",
             "Issue 16 tightened issue 6's limits; both are checked. The combined case (two "
             "output guardrails and tracing on) is `benchmarks/combined.py`, "
             "`benchmarks/results/combined.txt`.", "",
             "| issue | target | measured | limit | verdict |", "|---|---|---|---|---|"]
    for t in summary["targets"]:
        sign = "≥" if t["higher"] else "≤"
        lines.append(f"| {t.get('issue', 6)} | {t['what']} | {_f(t['value'], t['fmt'])} | "
                     f"{sign} {t['fmt'].format(t['limit'])} | {t['verdict']} |")
    short = [t["what"] for t in summary["targets"] if t["verdict"] == "SHORT"]
    if not any(t["verdict"].startswith("not judged") for t in summary["targets"]):
        lines += ["", "**Falls short**: " + ("; ".join(short) if short else "nothing") + ".",
                  ""]
    return lines


def console(summary: dict[str, Any], results: dict[str, Any]) -> str:
    """A compact table for the terminal (one row per client and workload)."""
    lines = []
    for workload, rows in summary["cpu"].items():
        for client, r in rows.items():
            lines.append(f"{workload:14} {client:28} {_f(r['us_per_chunk'])} µs/chunk "
                         f"(loop {_f(r['steady_us_per_chunk'])})  RSS {r['rss_mb']:.0f} MB")
    for workload, rows in summary["conc"].items():
        for client, r in rows.items():
            lines.append(f"{workload:14} {client:28} {r['throughput']:.0f} streams/s  TTFT "
                         f"{r['ttft_p50_ms']:.0f}/{r['ttft_p99_ms']:.0f} ms  errors {r['errors']}"
                         f"  RSS {r['rss_mb']:.0f} MB")
    for label, data in results.get("imports", {}).items():
        lines.append(f"{'import':14} {label:28} {data['median_ms']:.0f} ms")
    for chunks, data in results.get("memory", {}).items():
        for driver in ("async", "sync"):
            d = data[driver]
            scale = d.get("at_scale") or {}
            lines.append(f"{'memory':14} {'promptkit-' + driver + ' ' + chunks + '-chunk':28} "
                         f"{d['bytes_per_conversation']} B held / {d['text_bytes']} B text"
                         + (f"; {scale['allocator_beyond_text']} B beyond text at "
                            f"{scale['conversations']:,}"
                            if "allocator_beyond_text" in scale else ""))
    for t in summary["targets"]:
        lines.append(f"{'target':14} {t['what']}: {_f(t['value'], t['fmt'])} ({t['verdict']})")
    for key, note in results.get("notes", {}).items():
        lines.append(f"{'note':14} {key}: {note}")
    return "\n".join(lines)


# --- plot -----------------------------------------------------------------------------------


def plot(summary: dict[str, Any], path: Path) -> bool:
    """Throughput and peak RSS against concurrency; False when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = _levels(summary)
    if not keys:
        return False
    levels = [int(k.split("-")[1]) for k in keys]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for client in summary["order"]:
        rows = [summary["conc"][k].get(client) for k in keys]
        if not all(rows):
            continue
        style = "-" if client.startswith("promptkit") else "--"
        width = 2.4 if client.startswith("promptkit") else 1.4
        left.plot(levels, [r["throughput"] for r in rows], style, marker="o", lw=width,
                  label=client)
        right.plot(levels, [r["rss_mb"] for r in rows], style, marker="o", lw=width,
                   label=client)
    left.set(title="Throughput (realistic profile)", xlabel="concurrent streams",
             ylabel="streams / s", xticks=levels)
    right.set(title="Peak RSS of the client process", xlabel="concurrent streams",
              ylabel="MB", xticks=levels)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
