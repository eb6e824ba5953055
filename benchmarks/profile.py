"""Profile one benchmark client with py-spy and print its hot spots.

    python benchmarks/profile.py promptkit-async [--mode cpu|conc] [--streams 400 --chunks 200]
                                                 [--concurrency 1000] [--out DIR]

Starts the mock upstream, runs the client under ``py-spy record`` (collapsed stacks, 1 kHz,
GIL-holding samples only with ``--gil``), writes the raw stacks and a speedscope file to
``--out`` (``$TMPDIR/promptkit-profiles`` by default) and prints the functions with the most
samples, by self time and inclusive, counting only the measured loop's samples (under
``measured_loop`` / ``measured_worker`` in ``clients.py``: no imports, set-up or warm-up).
Needs ``py-spy`` (the ``bench`` extra) and ptrace rights (root, or
``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import Upstream  # noqa: E402

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:]*):(?P<line>\d+)\)$")


def _short(frame: str, lines: bool) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "src/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path}:{match['line']})" if lines else f"{match['func']} ({path})"


def analyse(collapsed: Path, top: int, lines: bool) -> str:
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for row in collapsed.read_text().splitlines():
        stack, _, count = row.rpartition(" ")
        frames = stack.split(";")
        if not any(".measured_" in f.split(" ", 1)[0] for f in frames):
            continue  # imports, set-up, the warm-up stream, interpreter teardown
        n = int(count)
        total += n
        names = [_short(f, lines) for f in frames]
        self_time[names[-1]] += n
        for name in set(names):
            inclusive[name] += n
    if not total:
        return "no samples in the measured loop"
    out = [f"samples in the measured loop: {total}", "", "self time:"]
    out += [f"  {n / total * 100:5.1f} %  {name}" for name, n in self_time.most_common(top)]
    out += ["", "inclusive time:"]
    out += [f"  {n / total * 100:5.1f} %  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("client")
    parser.add_argument("--mode", default="cpu", choices=("cpu", "conc"))
    parser.add_argument("--streams", type=int, default=400)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--lines", action="store_true", help="per line, not per function")
    parser.add_argument("--gil", action="store_true", help="only samples holding the GIL")
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "promptkit-profiles"))
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy is not installed (pip install -e '.[bench]')")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"profile-{args.client.replace('/', '_').replace('+', '_')}-{args.mode}"
    upstream = Upstream()
    try:
        job = {"client": args.client, "mode": args.mode, "base": upstream.base}
        if args.mode == "cpu":
            job.update(streams=args.streams, chunks=args.chunks)
        else:
            job.update(concurrency=args.concurrency, rounds=2, chunks=30, first=0.2, gap=0.03)
        command = [sys.executable, str(HERE / "clients.py"), json.dumps(job)]
        gil = ["--gil"] if args.gil else []
        collapsed = out / f"{stem}.txt"
        subprocess.run([spy, "record", "-r", str(args.rate), "-f", "raw", "-o", str(collapsed),
                        *gil, "--", *command], check=True, capture_output=True)
        subprocess.run([spy, "record", "-r", str(args.rate), "-f", "speedscope", "-o",
                        str(out / f"{stem}.speedscope.json"), *gil, "--", *command],
                       check=True, capture_output=True)
    finally:
        upstream.stop()
    print(analyse(collapsed, args.top, args.lines))
    print(f"\nraw stacks: {collapsed}\nspeedscope: {out / (stem + '.speedscope.json')}")


if __name__ == "__main__":
    main()
