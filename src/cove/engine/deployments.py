"""Deployments: code in, immutable versions out.

Deploying a file inspects it in a separate process (user code never runs in the server),
stores the code by content hash, and records a new version of every application in it.
A version's code and manifest never change afterwards.

The code is either one ``.py`` file or a bundle (a ZIP of the file's folder, see
:mod:`cove.sdk.bundle`); either way it is one blob, written out under
``<data>/code/<blob>/`` on each replica that runs it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cove.blobs import BlobStore
from cove.engine.keys import DEFAULT_NAMESPACE, public_name, qualify
from cove.errors import DeployError, InvalidInputError, NotFoundError
from cove.sdk.bundle import is_zip, unpack
from cove.store import Store
from cove.store import journal as j

_INSPECT_TIMEOUT = 120.0


@dataclass
class Version:
    """One immutable version of an application."""

    app: str
    version: int
    module: str
    filename: str
    code_blob: str
    manifest: dict[str, Any]
    created_at: float
    code_dir: Path
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.functions = {f["name"]: f for f in self.manifest["functions"]}

    @property
    def application(self) -> dict[str, Any]:
        name = public_name(self.app)  # the engine's name carries the namespace
        for app in self.manifest["applications"]:
            if app["name"] == name:
                return dict(app)
        raise KeyError(self.app)

    def function(self, name: str) -> dict[str, Any] | None:
        return self.functions.get(name)


class Deployments:
    """The versions of every application, cached in memory."""

    def __init__(self, store: Store, blobs: BlobStore, data_dir: Path) -> None:
        self.store = store
        self.blobs = blobs
        self.code_root = data_dir / "code"
        self.versions: dict[tuple[str, int], Version] = {}
        self.latest: dict[str, int] = {}

    async def load(self) -> None:
        rows = await self.store.read(j.all_versions)
        for row in rows:
            self._remember(row)
            self.latest[row["app"]] = row["latest_version"]

    def _remember(self, row: dict[str, Any]) -> Version:
        code_dir = self.code_root / row["code_blob"]
        if not (code_dir / row["filename"]).exists():
            write_code(self.blobs.get(row["code_blob"]), row["filename"], code_dir)
        version = Version(
            app=row["app"],
            version=row["version"],
            module=row["module"],
            filename=row["filename"],
            code_blob=row["code_blob"],
            manifest=json.loads(row["manifest"]),
            created_at=row["created_at"],
            code_dir=code_dir,
        )
        self.versions[(version.app, version.version)] = version
        return version

    def get(self, app: str, version: int | None = None) -> Version:
        number = version if version is not None else self.latest.get(app)
        found = self.versions.get((app, number)) if number is not None else None
        if found is None:
            raise NotFoundError(f"application {app!r} is not deployed", application=app)
        return found

    def apps(self) -> list[Version]:
        return [self.versions[(app, v)] for app, v in sorted(self.latest.items())]

    async def deploy(
        self,
        filename: str,
        code: bytes,
        check: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        only: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> list[Version]:
        """Inspect and store ``code``; returns the new version of each application in it
        (named within ``namespace``), or of the one named ``only`` (the others keep their
        versions). ``check`` may reject the manifest (raising) before anything is stored.
        ``extra``: keys added to the stored manifest (which Cove's own keys win over)."""
        check_code_file(filename)
        manifest = await _inspect(Path(filename).name, code)
        defined = [a["name"] for a in manifest["applications"]]
        if only is not None and only not in defined:
            raise DeployError(
                f"{filename} defines no application {only!r} "
                f"(its applications: {', '.join(defined) or 'none'})",
                application=only[:300],
            )
        manifest = {**(extra or {}), **manifest}
        if check is not None:
            await check(manifest)
        loop = asyncio.get_running_loop()
        blob = await loop.run_in_executor(None, self.blobs.put, code)
        manifest_json = json.dumps(manifest)
        now = time.time()
        module = manifest["module"]
        names = [qualify(namespace, a) for a in defined if only is None or a == only]

        def write(conn: Any) -> list[dict[str, Any]]:
            rows = []
            for name in names:
                number = j.insert_version(conn, name, module, filename, blob, manifest_json, now)
                rows.append(
                    {
                        "app": name,
                        "version": number,
                        "module": module,
                        "filename": filename,
                        "code_blob": blob,
                        "manifest": manifest_json,
                        "created_at": now,
                    }
                )
            return rows

        rows = await self.store.write(write)
        versions = [self._remember(row) for row in rows]
        for v in versions:
            self.latest[v.app] = v.version
        return versions

    async def delete(self, app: str) -> None:
        self.get(app)
        await self.store.write(lambda conn: j.delete_application(conn, app))
        self.latest.pop(app, None)
        for key in [k for k in self.versions if k[0] == app]:
            del self.versions[key]


def write_code(code: bytes, filename: str, code_dir: Path) -> None:
    """Write a code blob out as ``code_dir``: a bundle's files, or the one file. A bundle
    is written into a fresh folder that then takes ``code_dir``'s place, so a half-written
    folder never passes for the code (the blob names its entry, so an existing folder of
    that blob is complete)."""
    if (code_dir / filename).exists():
        return
    code_dir.parent.mkdir(parents=True, exist_ok=True)
    if not is_zip(code):  # one file (the same bytes may come under several names)
        code_dir.mkdir(exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=".partial-", dir=code_dir)
        try:
            with open(fd, "wb") as f:
                f.write(code)
            Path(partial).replace(code_dir / filename)
        except BaseException:  # a full disk, say: leave no half-written file behind
            Path(partial).unlink(missing_ok=True)
            raise
        return
    staging = Path(tempfile.mkdtemp(prefix=f".{code_dir.name[:16]}-", dir=code_dir.parent))
    try:
        unpack(code, staging)
        try:
            staging.rename(code_dir)
        except OSError:  # written meanwhile by another deploy of the same code
            if not (code_dir / filename).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_code_file(filename: str) -> None:
    """A code file's name must be a bare module file name: it becomes a path in the data
    folder, so a separator or ``..`` would write outside it."""
    if (
        not filename.endswith(".py")
        or Path(filename).name != filename
        or not Path(filename).stem.isidentifier()
    ):
        raise InvalidInputError(
            f"code file name {filename!r} must be a Python module name ending in .py (no folders)",
            filename=filename[:300],
        )


async def inspect_code(filename: str, code: bytes) -> dict[str, Any]:
    """The manifest of a file or bundle, from a separate process (raises DeployError)."""
    check_code_file(filename)
    return await _inspect(filename, code)


async def _inspect(filename: str, code: bytes) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cove-deploy-") as tmp:
        code_dir = Path(tmp) / "code"
        out = Path(tmp) / "manifest.json"
        write_code(code, filename, code_dir)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cove.runtime.inspect",
            str(code_dir / filename),
            str(out),
            cwd=code_dir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(_INSPECT_TIMEOUT):
                printed, _ = await process.communicate()
        except TimeoutError:
            process.kill()
            raise DeployError(
                f"{filename}: importing the code took longer than {_INSPECT_TIMEOUT:g} s"
            ) from None
        if not out.exists():
            tail = printed.decode(errors="replace")[-2000:]
            raise DeployError(f"{filename}: the code could not be inspected: {tail}")
        result: dict[str, Any] = json.loads(out.read_text())
    if "error" in result:
        raise DeployError(f"{filename}: {result['error']}")
    return result
