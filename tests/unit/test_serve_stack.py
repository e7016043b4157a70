"""The server runs on the C parser and event loop that uvicorn's "standard" extra brings
(docs/benchmarks.md, The hot path), and falls back to asyncio's loop without uvloop."""

from __future__ import annotations

import builtins
import sys
from typing import Any

import pytest

from cove.server import serve


def test_the_server_uses_uvloop_and_httptools(monkeypatch: pytest.MonkeyPatch) -> None:
    import httptools  # noqa: F401  (a dependency: uvicorn[standard])
    import uvloop

    assert serve._loop_factory() is uvloop.new_event_loop
    configs: list[Any] = []

    class Stop(Exception):
        pass

    def capture(self: Any, config: Any, app: Any, grace: float) -> None:
        configs.append(config)
        raise Stop

    monkeypatch.setattr(serve.GracefulServer, "__init__", capture)
    monkeypatch.setattr(serve, "create_app", lambda settings, engine: object())
    monkeypatch.setattr(serve, "Engine", lambda settings: object())
    with pytest.raises(Stop):
        serve.serve(serve.Settings())
    assert configs[0].http == "httptools"


def test_the_server_collects_garbage_less_often(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    before = gc.get_threshold()
    try:
        serve.tune_gc()
        assert gc.get_threshold() == serve.GC_THRESHOLDS
        assert gc.get_threshold()[0] > before[0]
        assert gc.get_freeze_count() > 0  # start-up's objects: out of every collection
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_without_uvloop_the_loop_is_asyncios(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError("no uvloop here")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "uvloop", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    assert serve._loop_factory() is None
