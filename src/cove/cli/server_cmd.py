"""``cove server`` and ``cove dev``: run a Cove server, optionally deploying code into it."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
from rich.text import Text

from cove.cli.apps_cmd import deploy_paths, files_to_deploy
from cove.cli.output import console, describe_error, fail, warn
from cove.errors import CoveError
from cove.paths import absolute_path
from cove.sdk.bundle import folder_files
from cove.sdk.client import Client

if TYPE_CHECKING:
    from cove.engine.settings import Settings

#: How long the deploy thread waits for the server to answer ``/healthz``.
_STARTUP_DEADLINE = 60.0

DEFAULT_DATA_DIR = Path(".cove")


def local_url(host: str, port: int) -> str:
    """The URL this machine reaches a server listening on ``host``:``port`` at."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def wait_until_healthy(url: str, deadline: float, stop: threading.Event | None = None) -> bool:
    """Poll ``url``/healthz until it answers 200; False when ``deadline`` seconds pass."""
    end = time.monotonic() + deadline
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < end:
            if stop is not None and stop.is_set():
                return False
            try:
                if http.get(f"{url}/healthz").status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    return False


def _deploy_when_up(url: str, paths: list[Path], watch: bool, stop: threading.Event) -> None:
    """Body of the deploy thread: wait for the server, deploy, then (dev) redeploy on change."""
    try:
        if not wait_until_healthy(url, _STARTUP_DEADLINE, stop):
            if not stop.is_set():
                warn(f"the server at {url} did not come up; nothing was deployed")
            return
        with Client(url, timeout=180.0) as c:
            deploy_paths(c, paths)
            count = len(c.applications())
            console.print(
                Text(f"Ready: {count} application{'s' if count != 1 else ''} deployed", "bold")
            )
            if watch:
                _watch(c, paths, stop)
    except Exception as err:  # a background thread must never die with a traceback
        message = (
            describe_error(err) if isinstance(err, CoveError) else f"{type(err).__name__}: {err}"
        )
        warn(f"deploying into the server failed: {message}")


def _mtimes(paths: list[Path]) -> dict[Path, object]:
    """Per application file, what its deploy ships: the files of its folder (its bundle)
    and their modification times, so an edit to a module beside it redeploys it too."""
    found: dict[Path, object] = {}
    folders: dict[Path, object] = {}
    for given in paths:
        try:
            files = files_to_deploy(given)
        except (CoveError, OSError):
            continue
        for f in files:
            if f.parent not in folders:
                try:
                    shipped = folder_files(f.parent)
                    folders[f.parent] = tuple(
                        (rel, p.stat().st_mtime_ns) for rel, p in shipped.items()
                    )
                except (CoveError, OSError):
                    folders[f.parent] = None
            try:
                found[f] = (f.stat().st_mtime_ns, folders[f.parent])
            except OSError:
                continue
    return found


def _watch(c: Client, paths: list[Path], stop: threading.Event) -> None:
    """Redeploy a file whenever it or a file of its folder (its bundle) changes (``cove dev``)."""
    seen = _mtimes(paths)
    console.print(Text("Watching for changes; edits are redeployed. Ctrl-C stops.", style="dim"))
    while not stop.wait(1.0):
        now = _mtimes(paths)
        changed = [p for p, m in now.items() if seen.get(p) != m]
        seen = now
        if changed:
            console.print(
                Text(f"Changed: {', '.join(map(str, changed))}; redeploying", style="dim")
            )
            deploy_paths(c, changed)


LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def check_exposure(settings: Settings) -> None:
    """Without ``--auth`` the API is open to whoever reaches it: only this machine may."""
    if not settings.auth and settings.host not in LOOPBACK:
        fail(
            f"refusing to listen on {settings.host} without --auth: anyone who can reach that "
            "address could deploy and run code. Add --auth (and create keys with `cove keys "
            "create`), or listen on 127.0.0.1."
        )


def announce_auth(settings: Settings) -> None:
    if not settings.auth:
        console.print(
            Text(
                f"No --auth: listening on {settings.host} only, every API call allowed "
                "(namespace 'default').",
                style="yellow",
            )
        )
        return
    from cove.cli.keys_cmd import count_keys_offline

    if count_keys_offline(settings.data_dir) == 0:
        console.print(
            Text(
                "--auth: every API call needs an API key, and none exists yet. Create an admin "
                f"key with: cove keys create --data-dir {settings.data_dir} --role admin",
                style="yellow",
            )
        )
    else:
        console.print(Text("--auth: every API call needs an API key.", style="dim"))


def run_server(
    host: str,
    port: int,
    data_dir: Path,
    deploy: list[Path],
    watch: bool = False,
    retention_days: float | None = None,
    auth: bool = False,
    runtime: str | None = None,
    ray_address: str | None = None,
    database: str | None = None,
) -> None:
    """Run a server in the foreground; deploy ``deploy`` into it once it answers."""
    from cove.engine.settings import Settings
    from cove.server.serve import serve

    for path in deploy:
        if not path.exists():
            fail(f"{path}: no such file or directory")
    # Absolute once, here: the deploy thread and the watcher must not depend on the cwd.
    deploy = [absolute_path(path) for path in deploy]
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the deploy thread's requests
    settings = Settings(host=host, port=port, data_dir=data_dir)
    if retention_days is not None:  # else COVE_RETENTION_DAYS, if set
        settings.retention_days = retention_days
    settings.auth = settings.auth or auth  # --auth, else COVE_AUTH
    if runtime is not None:  # else COVE_RUNTIME
        settings.runtime = runtime
    if ray_address is not None:  # else COVE_RAY_ADDRESS
        settings.ray_address = ray_address
    if database is not None:  # else COVE_DATABASE_URL
        if not database.startswith(("postgresql://", "postgresql+psycopg://", "sqlite:///")):
            fail(
                f"--database must be a postgresql://USER:PASSWORD@HOST:PORT/NAME or "
                f"sqlite:///PATH URL, got {database!r}"
            )
        settings.database_url = database
    check_exposure(settings)
    url = local_url(host, port)
    console.print(
        Text.assemble(
            ("Cove server ", "bold"), (url, "bold cyan"), (f"  (data: {data_dir})", "dim")
        )
    )
    announce_auth(settings)
    stop = threading.Event()
    if deploy:
        thread = threading.Thread(
            target=_deploy_when_up, args=(url, deploy, watch, stop), name="cove-deploy", daemon=True
        )
        thread.start()
    try:
        serve(settings)
    finally:
        stop.set()


def server(
    host: Annotated[
        str,
        typer.Option("--host", help="Address to listen on (another than 127.0.0.1 needs --auth)."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 8900,
    data_dir: Annotated[
        Path,
        typer.Option("--data-dir", envvar="COVE_DATA_DIR", help="Where the store lives."),
    ] = DEFAULT_DATA_DIR,
    deploy: Annotated[
        list[Path] | None,
        typer.Option(
            "--deploy",
            "-d",
            help="A .py file, or a folder of them, to deploy once the server is up. Repeatable.",
        ),
    ] = None,
    retention_days: Annotated[
        float | None,
        typer.Option(
            "--retention-days",
            min=0.0001,
            help="Remove finished requests older than this many days, with their blobs.",
        ),
    ] = None,
    auth: Annotated[
        bool,
        typer.Option(
            "--auth",
            help="Every API call needs an API key (create them with `cove keys create`).",
        ),
    ] = False,
    runtime: Annotated[
        str | None,
        typer.Option(
            "--runtime",
            help="Where containers run: local (processes here) or ray (actors on a Ray "
            "cluster; pip install 'cove\\[ray]').",
        ),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            help="The store: postgresql://USER:PASSWORD@HOST:PORT/NAME (pip install "
            "'cove\\[postgres]'; several servers may share one). Default: SQLite in the "
            "data folder.",
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="The Ray cluster's head, HOST:PORT (--runtime ray)."),
    ] = None,
) -> None:
    """Run a Cove server: on the embedded store (SQLite in the data folder) unless
    --database (or COVE_DATABASE_URL) names a PostgreSQL database."""
    if runtime not in (None, "local", "ray"):
        fail(f"--runtime must be local or ray, got {runtime!r}")
    run_server(
        host, port, data_dir, deploy or [], retention_days=retention_days, auth=auth,
        runtime=runtime, ray_address=ray_address, database=database,
    )  # fmt: skip


def dev(
    path: Annotated[Path, typer.Argument(help="The Python file (or folder) to serve.")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 8900,
    data_dir: Annotated[
        Path,
        typer.Option("--data-dir", envvar="COVE_DATA_DIR", help="Where the store lives."),
    ] = DEFAULT_DATA_DIR,
    watch: Annotated[
        bool, typer.Option("--watch/--no-watch", help="Redeploy when the file changes.")
    ] = True,
) -> None:
    """Run a server and deploy a file into it (foreground until Ctrl-C)."""
    try:
        files_to_deploy(path)
    except (CoveError, OSError) as err:
        fail(describe_error(err) if isinstance(err, CoveError) else str(err))
    run_server(host, port, data_dir, [path], watch=watch)
