"""Cove's benchmark suite: ``python -m benchmarks`` (see docs/benchmarks.md).

It starts a real ``cove server`` subprocess on a free port and a throw-away data folder,
deploys :mod:`benchmarks.apps`, and measures request latency, fan-out, sequential child
calls and memory, once per SQLite ``synchronous`` level.
"""
