"""The engine: accepts requests, routes durable calls between containers, finishes requests.

Everything here runs on the server's event loop; durable writes go through the store's
single writer. A call's output reaches its parent (and a request's answer its client)
only after the journal has committed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cove.blobs.config import blob_store_of
from cove.engine.capacity import Capacity
from cove.engine.constraints import unsatisfiable
from cove.engine.deployments import Deployments, Version
from cove.engine.events import EventLog
from cove.engine.failures import failure, internal
from cove.engine.ids import new_request_id
from cove.engine.keys import DEFAULT_NAMESPACE, namespace_of
from cove.engine.leases import (
    LeaseLost,
    Leases,
    SharedDeployments,
    claim_blob_store,
    replica_id_of,
)
from cove.engine.model import Call, RecentOutcomes, RequestRun
from cove.engine.payloads import Payloads
from cove.engine.pool import Pool
from cove.engine.router import CallRouter, call_row
from cove.engine.secrets import StoredSecrets
from cove.engine.settings import Settings
from cove.errors import (
    BlobMissingError,
    ConflictError,
    DatabaseUnavailableError,
    DeployError,
    UnavailableError,
    request_not_found,
)
from cove.runtime.base import ContainerRuntime
from cove.runtime.gpus import GpuAllocator, discover, gpus_from_names
from cove.runtime.images import ImageBuilder, image_hash
from cove.runtime.local import LocalProcessRuntime
from cove.runtime.usage import release_free_memory
from cove.sdk.http import HEADERS_STATE_KEY
from cove.store import Store, open_store
from cove.store import journal as j
from cove.store.database import RETRY_AFTER_SECONDS

log = logging.getLogger(__name__)
MACHINE_REASONS = ("container_lost",)
RETRYABLE = ("function_error", "function_timeout", "out_of_memory")


#: How often idle containers are looked for (at most; more often with a shorter idle timeout).
REAP_INTERVAL = 5.0
#: How long a new request's record may wait for an unreachable database before the client
#: is answered 503 ``database_unavailable`` (the record withdrawn, so it never appears).
RECORD_WAIT_SECONDS = 5.0
#: How long the server must have run no request before it gives free memory back.
IDLE_TRIM_SECONDS = 0.5


class Engine(CallRouter):
    """Requests, calls and pools of one server."""

    def __init__(self, settings: Settings, runtime: ContainerRuntime | None = None) -> None:
        self.settings = settings
        data_dir = Path(settings.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        sync = settings.sqlite_synchronous.upper()
        self.store: Store = open_store(settings.database(), sync)
        # Secrets live in the database, shared by every replica over it.
        self.secrets = StoredSecrets(data_dir, self.store)
        try:
            self.secrets.adopt_files()  # the secrets.enc files of earlier servers, moved in
            self.secrets.check()  # a key that cannot read the stored secrets stops us here
        except BaseException:
            self.store.close()
            raise
        self.blobs = blob_store_of(settings, fsync=sync in ("FULL", "EXTRA"))
        try:  # replicas over one database must share one blob store (refused otherwise)
            replica = replica_id_of(settings, data_dir)
            claim_blob_store(self.store, self.blobs, replica, settings.lease_seconds)
        except BaseException:
            self.store.close()
            raise
        self.container_env = self.blobs.environment()  # containers read and write blobs directly
        self.payloads = Payloads(self.blobs, settings.inline_payload_limit)
        if runtime is None and settings.runtime == "ray":
            from cove.runtime.ray import RayRuntime  # the optional extra cove[ray]

            runtime = RayRuntime.connect(settings)  # also sizes settings to the cluster
        self.runtime = runtime or LocalProcessRuntime(data_dir, settings.use_templates)
        # On PostgreSQL other replicas may share the database (cove.engine.leases).
        replicated = self.store.writer_engine.dialect.name == "postgresql"
        self.deployments = (SharedDeployments if replicated else Deployments)(
            self.store, self.blobs, data_dir
        )
        # GPUs: the ones named in the settings, else what nvidia-smi finds on this machine.
        local = settings.runtime == "local"
        found = gpus_from_names(settings.gpus) if settings.gpus or not local else discover()
        self.gpus = GpuAllocator(found)
        self.capacity = Capacity(
            settings.cpus, settings.memory_gb, self.all_pools, self.runtime.reserved_for_life
        )
        self._namespace_secrets: dict[str, StoredSecrets] = {DEFAULT_NAMESPACE: self.secrets}
        self.images = ImageBuilder(data_dir, self.store)  # builds recorded in the database
        self.events = EventLog(self.store)  # progress, logs, timelines (cove.engine.events)
        self.leases = Leases(self)  # which replica runs which request (PostgreSQL only)
        self.live: dict[str, RequestRun] = {}
        # Outcomes of recently finished requests, so a waiting client is answered from memory.
        self.recent = RecentOutcomes()
        # (app, version, function) -> its pool. Applications deployed from one file share
        # the pools of its functions (one set of containers per function of that code).
        self.pools: dict[tuple[str, int, str], Pool] = {}
        self._shared: dict[tuple[str, str, str, str | None], Pool] = {}
        # See invoke(answer_later=): each record's commit, and its handle to withdraw it.
        self._recording: dict[str, tuple[asyncio.Future[Any], object]] = {}
        # Requests about to run here (accepted, not started yet; or being resumed): a lease
        # round leaves them alone (Leases.round resumes requests held here that nothing runs).
        self.driving: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._janitor: asyncio.Task[None] | None = None
        # Templates (the local runtime's; see _sync_templates): kept in step in the background.
        self._templates: asyncio.Task[None] | None = None
        self._templates_due = False  # the set of code in use changed since the last pass
        self._templates_prepare = False  # ...and templates may have to start
        self.accepting = False
        self._stopping = asyncio.Event()  # set when a graceful shutdown begins
        self._drained = asyncio.Event()  # set when no request is left running
        self._requests_started = 0  # by this server (what _release_memory_when_idle watches)

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Stop orphaned containers, load deployments, resume unfinished requests."""
        self._loop = asyncio.get_running_loop()
        self.store.bind_loop(self._loop)
        self.runtime.reap_orphans()
        await self.deployments.load()
        await self._recover()
        # The latest versions: their pools, minimum and warm containers, and templates.
        await self.adopt_versions(self.deployments.apps())
        self._janitor = self._loop.create_task(self._reap_idle())
        self._memory_watch = self._loop.create_task(self._watch_memory())
        self._trimmer = self._loop.create_task(self._release_memory_when_idle())
        if self.leases.enabled:
            self.leases.start()
        self.accepting = True

    def begin_shutdown(self) -> None:
        """Stop accepting requests (they get 503); running ones go on. Safe from a signal
        handler."""
        self.accepting = False
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop_waiting)

    def _stop_waiting(self) -> None:
        self._stopping.set()
        for run in self.live.values():
            run.wake_watchers()

    async def drain(self, grace: float) -> bool:
        """After :meth:`begin_shutdown`: wait up to ``grace`` seconds for running requests
        to finish. True if none is left; the rest resume when a server starts again."""
        self.begin_shutdown()
        if not self.live:
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._drained.wait()
        return not self.live

    async def stop(self) -> None:
        self.accepting = False
        if self._janitor is not None:
            self._janitor.cancel()
            self._memory_watch.cancel()
            self._trimmer.cancel()
        if self._templates is not None:
            self._templates.cancel()
        for pool in self.all_pools():
            await pool.stop()
        if self.leases.enabled:
            await self.leases.stop()  # other replicas take the unfinished requests over
        await self.runtime.close()
        await asyncio.get_running_loop().run_in_executor(None, self.store.close)

    async def _watch_memory(self) -> None:
        tick = 0
        while True:
            await asyncio.sleep(self.settings.memory_check_interval)
            tick += 1
            for pool in self.all_pools():
                pool.enforce_limits(check_disk=tick % 4 == 0)  # folders cost more to measure

    async def _release_memory_when_idle(self) -> None:
        """Once no request has run for IDLE_TRIM_SECONDS after some did, give the memory
        they made the server grow to back to the system (a 10,000-call map leaves tens of
        megabytes free but resident otherwise: docs/benchmarks.md)."""
        trimmed_at = self._requests_started
        while True:
            await asyncio.sleep(IDLE_TRIM_SECONDS)
            if self.live or self._requests_started == trimmed_at:
                continue  # busy, or nothing ran since the last time
            before = self._requests_started
            await asyncio.sleep(IDLE_TRIM_SECONDS)
            if not self.live and self._requests_started == before:
                release_free_memory()
                trimmed_at = before

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(min(REAP_INTERVAL, self.settings.container_idle_timeout))
            for pool in self.all_pools():
                await pool.stop_idle(self.settings.container_idle_timeout)
            self._sync_templates(prepare=False)  # retired code whose last container stopped

    async def _recover(self) -> None:
        if self.leases.enabled:  # only requests no live replica holds
            await self.leases.recover()
            return
        rows = await self.store.read(j.unfinished_requests)
        for row in rows:
            await self.resume_row(row)
        if rows:
            log.info("resumed %d unfinished request(s)", len(rows))

    async def resume_row(self, row: dict[str, Any]) -> None:
        """Resume an unfinished request from its row (failed if its version is gone)."""
        rid: str = row["id"]
        try:
            version = self.deployments.get(row["app"], row["version"])
        except BlobMissingError as exc:  # its code is not in the blob store
            why = failure("blob_missing", None, exc.message, "BlobMissingError")
        except Exception:
            why = internal("the request's application version is gone")
        else:
            try:
                await self._resume(rid, version, row["status"])
                return
            except BlobMissingError as exc:  # a payload of it is not in the blob store
                why = failure("blob_missing", None, exc.message, "BlobMissingError")
        await self.store.write(
            self._guard(
                rid,
                functools.partial(
                    j.finish_request, request_id=rid, status="failed", now=time.time(), error=why
                ),
            )
        )

    async def _resume(self, rid: str, version: Version, status: str) -> None:
        """Rebuild a request from the journal and run its entry call again."""
        if rid in self.live or rid in self.driving:
            return  # it runs here already (or is about to)
        self.driving.add(rid)
        try:
            await self._rebuild(rid, version, status)
        finally:
            self.driving.discard(rid)

    async def _rebuild(self, rid: str, version: Version, status: str) -> None:
        run = RequestRun(rid, version, status=status)

        def load(conn: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
            return j.calls_of(conn, rid), j.state_of(conn, rid)

        calls, state = await self.store.read(load)
        run.state = {k: self.payloads.load(v) for k, v in state.items()}
        root = self._recover_calls(run, calls)
        await self.events.resumed(run)
        self.live[run.id] = run
        self._requests_started += 1
        self._drained.clear()
        if root is not None:
            self._pool(version, root.function).submit(root)

    def _recover_calls(self, run: RequestRun, rows: list[dict[str, Any]]) -> Call | None:
        root: Call | None = None
        for row in rows:
            if row["status"] not in ("succeeded", "failed") and row["call_id"] != "0":
                continue  # re-issued by its parent when the parent runs again
            args = self.payloads.load(j.Payload(row["args_inline"], row["args_blob"]))
            call = Call(
                run,
                row["call_id"],
                row["function"],
                None,
                row["input_mode"],
                row["output_mode"],
                args if row["call_id"] == "0" else b"",
                status=row["status"],
                attempts=row["attempts"],
            )
            if call.status == "succeeded":
                call.output = self.payloads.load(
                    j.Payload(row["output_inline"], row["output_blob"])
                )
                call.content_type = row["content_type"]
            elif call.status == "failed":
                import json

                call.failure = json.loads(row["error"]) if row["error"] else internal("failed")
            else:
                call.status, root = "pending", call
            run.calls[call.call_id] = call
        return root

    # -- requests -----------------------------------------------------------------------
    async def invoke(
        self,
        app: str,
        values: dict[str, Any],
        idempotency_key: str | None = None,
        body_hash: str | None = None,
        answer_later: bool = False,
        headers: list[tuple[str, str]] | None = None,
    ) -> tuple[str, bool]:
        """Accept a request; returns ``(request_id, created)`` once it is durable.

        ``headers`` (the invoking HTTP request's) are kept with the request, durably, as a
        state entry every call can read (``RequestContext.headers``).

        With ``answer_later`` (a client that waits for the output), it returns at once and
        the record commits with the next durable write (usually the output's, so a quick
        request costs one commit, not two) or within ``LAZY_FLUSH_SECONDS``: the caller
        must ``await recorded(request_id)`` before telling the client anything."""
        if not self.accepting:
            raise UnavailableError("the server is shutting down: send the request again later")
        if self.store.unavailable():  # refused at once rather than queued without end
            raise _database_unavailable()
        version = self.deployments.get(app)
        entry = version.application["function"]
        args = pickle.dumps(values, protocol=5)
        state = {HEADERS_STATE_KEY: pickle.dumps(headers, protocol=5)} if headers else {}
        now = time.time()
        rid = new_request_id()
        request = {
            "id": rid,
            "app": app,
            "version": version.version,
            "status": "pending",
            "created_at": now,
            "idempotency_key": idempotency_key,
            "idempotency_hash": body_hash,
        }

        def write(conn: Any) -> tuple[str, bool]:
            payload = self.payloads.keep(args)
            root = call_row(rid, "0", entry, None, "json", f"json:{entry}", payload, now)
            found = j.create_request(conn, request, root)
            if found[1]:
                self.leases.hold(conn, rid)  # this replica runs it
                for key, data in state.items():
                    j.set_state(conn, rid, key, self.payloads.keep(data), now, new=True)
            return found

        if idempotency_key is None:
            # Nothing to deduplicate: the entry call starts while its record commits. Every
            # answer about the request (its id, its output) still waits for that commit,
            # and the call's own records commit after it.
            if answer_later:
                self._recording[rid] = self.store.write_withdrawable(write, lazy=True)
                self._start(rid, version, entry, args, state)
                return rid, True
            committed, handle = self.store.write_withdrawable(write)
            self._start(rid, version, entry, args, state)
            try:
                await self._committed(committed, handle)
            except BaseException:
                run = self.live.get(rid)
                if run is not None:
                    self._close(run, "failed", internal("the request could not be recorded"))
                raise
            return rid, True
        self.driving.add(rid)
        try:
            request_id, created = await self._committed(*self.store.write_withdrawable(write))
            if created:
                self._start(rid, version, entry, args, state)
        finally:
            self.driving.discard(rid)
        return request_id, created

    async def _committed(self, future: asyncio.Future[Any], handle: object) -> Any:
        """The result of a new request's record, once committed. While the database is
        unreachable, after RECORD_WAIT_SECONDS the record is withdrawn (it never commits)
        and DatabaseUnavailableError raised, so the client hears 503, not silence."""
        if future.done():  # committed already (a waiting client's record, usually)
            return future.result()
        while True:
            try:
                async with asyncio.timeout(RECORD_WAIT_SECONDS):
                    return await asyncio.shield(future)
            except TimeoutError:
                if self.store.unavailable() and self.store.withdraw(handle):
                    raise _database_unavailable() from None

    async def recorded(self, request_id: str) -> None:
        """Wait until the record of a request accepted with ``answer_later`` is durable."""
        recording = self._recording.get(request_id)
        if recording is None:
            return
        try:
            await self._committed(*recording)
        except BaseException:
            run = self.live.get(request_id)
            if run is not None:
                self._close(run, "failed", internal("the request could not be recorded"))
            raise
        finally:
            self._recording.pop(request_id, None)

    def _start(
        self, rid: str, version: Version, entry: str, args: bytes, state: dict[str, bytes]
    ) -> None:
        run = RequestRun(rid, version, state=dict(state))
        root = Call(run, "0", entry, None, "json", f"json:{entry}", args)
        run.calls["0"] = root
        self.live[rid] = run
        self._requests_started += 1
        self._drained.clear()
        self.events.opened(run)
        self._pool(version, entry).submit(root)

    async def wait(self, request_id: str, timeout: float) -> None:
        run = self.live.get(request_id)
        if run is None:  # finished, or run by another replica
            await self.leases.wait_remote(request_id, timeout, self._stopping)
            return
        if run.done or self._stopping.is_set():
            return
        # One future, woken by the request's end (RequestRun.mark_done) or by a graceful
        # shutdown, which answers waiting clients at once (the request goes on).
        watcher: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        run.watchers.append(watcher)
        try:
            async with asyncio.timeout(timeout):
                await watcher
        except TimeoutError:
            pass
        finally:
            if watcher in run.watchers:
                run.watchers.remove(watcher)

    async def cancel(self, request_id: str, reason: str = "cancelled by the user") -> bool:
        """Stop a running request: its running calls stop, queued ones never start, and it
        ends ``cancelled`` (durably: a restart does not resume it). False if not running."""
        error = {"reason": "cancelled", "function_name": None, "message": reason}
        run = self.live.get(request_id)
        if run is None:  # finished, or run by another replica
            return await self.leases.cancel_remote(request_id, error)
        try:
            await self._finish_request(run, "cancelled", error=error)
        except LeaseLost:  # another replica runs it now
            self.leases.forfeit(run)
            return await self.leases.cancel_remote(request_id, error)
        return True

    async def replay(self, app: str, request_id: str, upgrade: bool = False) -> int:
        """Run a failed or cancelled request again under its id, reusing every recorded
        output; with ``upgrade`` on the latest version. Returns the version it runs on."""
        if request_id in self.live:
            raise ConflictError(f"request {request_id} is still running", request_id=request_id)
        row = await self.store.read(lambda c: j.get_request(c, request_id))
        if row is None or row["app"] != app:
            raise request_not_found(app, request_id)
        version = self.deployments.get(app, None if upgrade else row["version"])
        now = time.time()

        def reopen(conn: Any) -> None:
            j.prepare_replay(conn, request_id, version.version, now)
            self.leases.hold(conn, request_id, reopened=True)

        self.driving.add(request_id)  # a lease round must not resume it meanwhile
        try:
            await self.store.write(reopen)
            self.recent.discard(request_id)
            await self._rebuild(request_id, version, "pending")
        finally:
            self.driving.discard(request_id)
        return version.version

    def secrets_for(self, namespace: str) -> StoredSecrets:
        """The secrets of ``namespace`` (a row of their own in the database): functions only
        ever get their own namespace's."""
        store = self._namespace_secrets.get(namespace)
        if store is None:
            store = StoredSecrets(self.data_dir, self.store, namespace)
            self._namespace_secrets[namespace] = store
        return store

    async def deploy(
        self,
        filename: str,
        code: bytes,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        only: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> list[Version]:
        """Deploy a file: new versions of its applications (``only``: of that one), their
        pools made ready. ``extra``: keys stored with the versions' manifest."""

        async def prepare(manifest: dict[str, Any]) -> None:
            await self._prepare(manifest, namespace)

        versions = await self.deployments.deploy(
            filename, code, prepare, namespace, only=only, extra=extra
        )
        await self.adopt_versions(versions)
        await self.leases.announce_deploy()
        return versions

    async def adopt_versions(self, versions: list[Version]) -> None:
        """New versions (deployed here or on another replica, or loaded at start): their
        pools made ready, their templates started; older versions retired."""
        for version in versions:
            for function in version.functions:
                self._pool(version, function)  # identical code joins the pools it has
            self._keep_ready(version)
        if self._mark_retired() or versions:
            self._sync_templates(prepare=True)

    def _mark_retired(self) -> bool:
        """Pools that serve no latest version keep no minimum, no warm containers and no
        template. Returns whether any pool changed."""
        latest, changed = self.deployments.latest, False
        for pool in self.all_pools():
            retired = not any(latest.get(app) == number for app, number in pool.users)
            changed = changed or retired != pool.retired
            pool.retired = retired
        return changed

    def _sync_templates(self, prepare: bool) -> None:
        """Bring the runtime's templates in step with the pools, in the background (a
        deploy or a request never waits for it): stop those of code that only retired
        pools use, once those have no container left, and (``prepare``) start those of the
        latest versions' code, one at a time, so that even the first call of a deploy
        starts its container by fork. A container that starts meanwhile waits for the same
        template start, not for a second one (LocalProcessRuntime._template)."""
        self._templates_due = True
        self._templates_prepare = self._templates_prepare or prepare
        if self._templates is None or self._templates.done():
            self._templates = asyncio.get_running_loop().create_task(self._keep_templates())

    async def _keep_templates(self) -> None:
        while self._templates_due:
            prepare = self._templates_prepare
            self._templates_due = self._templates_prepare = False
            pools = self.all_pools()
            keep = [p.template_spec() for p in pools if not p.retired or p.in_use]
            try:
                await self.runtime.retain([spec for spec in keep if spec is not None])
                for pool in pools if prepare else []:
                    spec = pool.template_spec()
                    if spec is not None and not pool.retired:  # (stopped: retired)
                        await self.runtime.prepare(spec)
            except Exception:
                log.exception("keeping the templates in step with the deployments failed")

    async def _prepare(self, manifest: dict[str, Any], namespace: str) -> None:
        """Before a deploy is stored: the runtime must be able to run its functions, their
        secrets must exist and their images must build."""
        for fn in manifest["functions"]:
            try:
                self.runtime.check_function(fn)
            except ValueError as exc:
                raise DeployError(str(exc)) from None
        self._check_secrets(manifest, namespace)
        if self.runtime.builds_images:
            await self.build_images(manifest)

    async def build_images(self, manifest: dict[str, Any]) -> list[dict[str, Any]]:
        """Build every image the manifest's functions use (once per content hash)."""
        loop = asyncio.get_running_loop()
        built: dict[str, dict[str, Any]] = {}
        for fn in manifest["functions"]:
            image = fn.get("image")
            if image is None:
                continue
            key = image_hash(image)
            if key not in built:
                result = await loop.run_in_executor(None, self.images.build, image)
                built[key] = {"name": image["name"], "hash": key, "path": str(result.root)}
        return list(built.values())

    def _check_secrets(self, manifest: dict[str, Any], namespace: str) -> None:
        """A deploy fails when a function lists a secret that is not set."""
        for fn in manifest["functions"]:
            missing = self.secrets_for(namespace).missing(list(fn.get("secrets") or []))
            if missing:
                raise DeployError(
                    f"function {fn['name']}: secrets not set: {', '.join(missing)} "
                    "(set them with: cove secrets set NAME)",
                    function=fn["name"],
                    secrets=missing,
                )

    def _fence(self, conn: Any, run: RequestRun) -> None:
        self.leases.finishing(conn, run.id)

    def _guard(self, request_id: str, op: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return self.leases.guard(request_id, op)

    def on_gpus_freed(self) -> None:
        self.capacity.freed()

    def _keep_ready(self, version: Version) -> None:
        """Start the minimum and warm containers of a version's functions."""
        for function in version.functions.values():
            if function.get("min_containers") or function.get("warm_containers"):
                self._pool(version, function["name"]).pump()

    async def delete_application(self, app: str) -> None:
        """Cancel the application's live requests, stop its containers, forget it."""
        self.deployments.get(app)
        for run in [r for r in self.live.values() if r.app == app]:
            await self.cancel(run.id, "the application was deleted")
        for key in [k for k in self.pools if k[0] == app]:
            pool = self.pools.pop(key)
            pool.users.discard((key[0], key[1]))
            if not pool.users:
                await pool.stop()
                self._shared = {k: p for k, p in self._shared.items() if p is not pool}
        self.recent.discard_app(app)
        await self.deployments.delete(app)
        self._mark_retired()
        self._sync_templates(prepare=False)  # its code's template, unless another app uses it
        await self.leases.announce_deploy()

    def all_pools(self) -> list[Pool]:
        return list(self._shared.values())

    def _pool(self, version: Version, function: str) -> Pool:
        key = (version.app, version.version, function)
        pool = self.pools.get(key)
        if pool is not None:
            return pool
        # Namespaces never share containers (their secrets differ).
        namespace = namespace_of(version.app)
        shared = (namespace, version.code_blob, function, version.application.get("region"))
        pool = self._shared.get(shared)
        if pool is None:
            manifest = version.function(function)
            assert manifest is not None, function
            pool = Pool(
                version,
                manifest,
                self.runtime,
                self,
                self.settings.default_max_containers,
                self.settings.container_start_timeout,
                unsatisfiable(manifest, version.application, self.settings, self.gpus),
                self.gpus,
                self.settings.machine_retries,
                self.secrets_for(namespace),
                self.images,
                self.capacity,
            )
            self._shared[shared] = pool
        pool.users.add((version.app, version.version))
        self.pools[key] = pool
        return pool


def _database_unavailable() -> DatabaseUnavailableError:
    return DatabaseUnavailableError(
        "the database is unreachable right now: the request was not accepted; send it "
        f"again in {RETRY_AFTER_SECONDS} s",
        retry_after=RETRY_AFTER_SECONDS,
    )
