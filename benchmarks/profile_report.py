"""Summarize ``py-spy record -f raw`` profiles written by ``python -m benchmarks --profile``.

``python -m benchmarks.profile_report DIR/full-round_trip.txt [--top 30] [--who server]``
prints where the samples went: per process kind and thread, then the functions with the
largest inclusive share (a function counts once per sample, however deep it recurs) and
the largest self share.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

#: Leaf frames where a thread waits rather than works (py-spy's --nonblocking mode cannot
#: tell); samples ending in one of them are left out unless --all-samples is given.
IDLE_LEAVES = (
    "selectors.py:EpollSelector.select",
    "concurrent/futures/thread.py:_worker",
    "cove/store/database.py:Store._run",
    "threading.py:Condition.wait",
    "threading.py:Event.wait",
    "asyncio/unix_events.py:ThreadedChildWatcher._do_waitpid",
    "socket.py:SocketIO.readinto",
    "cove/runtime/worker.py:Worker.serve",
    "concurrent/futures/_base.py:Future.result",
)
_PROCESS = re.compile(r'^process (\d+):"([^"]*)"$')
_FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")


def _who(header: str) -> str:
    match = _PROCESS.match(header)
    command = match.group(2) if match else header
    if "cove.runtime.worker" in command:
        return "container:" + command.split()[-1]
    if "cove.cli.main" in command:
        return "server"
    return command


def _frame(text: str) -> str:
    """``name (path/file.py:123)`` -> ``path/file.py:name`` (line numbers dropped)."""
    match = _FRAME.match(text)
    if not match:
        return text
    name, where = match.groups()
    return f"{where}:{name}"


def load(path: Path) -> list[tuple[str, str, list[str], int]]:
    """(process kind, thread, frames root first, samples) per stack line."""
    stacks = []
    for line in path.read_text().splitlines():
        body, _, count = line.rpartition(" ")
        if not body or not count.isdigit():
            continue
        parts = body.split(";")
        who = "server"
        while parts and parts[0].startswith("process "):  # --subprocesses: a child's
            who = _who(parts.pop(0))  # stack starts with its ancestors' names
        frames = [_frame(p) for p in parts]
        thread = "main"
        for f in frames:
            if "Store._run" in f:
                thread = "store-writer"
            elif "_worker" in f and "concurrent/futures/thread.py" in f:
                thread = "executor"
        stacks.append((who, thread, frames, int(count)))
    return stacks


def report(path: Path, top: int, who: str | None, idle: bool = False) -> str:
    stacks = load(path)
    everything = sum(c for *_, c in stacks)
    if not idle:
        stacks = [s for s in stacks if not s[2] or s[2][-1] not in IDLE_LEAVES]
    total = sum(c for *_, c in stacks) or 1
    out = [f"{path}: {everything} samples, {total} of them working (not waiting)"]
    by_who: Counter[str] = Counter()
    for w, t, _, c in stacks:
        by_who[f"{w} [{t}]" if w == "server" else w] += c
    out.append("By process (and server thread):")
    out += [f"  {c / total:6.1%}  {name}" for name, c in by_who.most_common()]
    chosen = [s for s in stacks if who is None or s[0].startswith(who)]
    sub = sum(c for *_, c in chosen) or 1
    inclusive: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    for _, _, frames, c in chosen:
        for f in set(frames):
            inclusive[f] += c
        if frames:
            exclusive[frames[-1]] += c
    scope = who or "all processes"
    out.append(f"Inclusive, share of {scope} ({sub} samples):")
    out += [f"  {c / sub:6.1%}  {f}" for f, c in inclusive.most_common(top)]
    out.append(f"Self, share of {scope}:")
    out += [f"  {c / sub:6.1%}  {f}" for f, c in exclusive.most_common(top)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_report")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--who", default="server", help="server, container, or all")
    parser.add_argument(
        "--all-samples", action="store_true", help="keep samples of threads that wait"
    )
    args = parser.parse_args(argv)
    for path in args.files:
        who = None if args.who == "all" else args.who
        print(report(path, args.top, who, args.all_samples))
        print()


if __name__ == "__main__":
    main()
