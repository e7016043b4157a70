"""Images on the local runtime: an isolated virtual environment per image content hash.

An :class:`cove.Image` (``.run(...)``, ``.env(k, v)``, ``.copy(src, dst)``,
``.workdir(dir)``) becomes ``<data>/images/<hash>/``: a virtual environment whose own
``site-packages`` come first and the server's after them (so Cove itself is importable, and
what the image installs wins), built once and kept with its build log. ``pip`` inside the
build runs the server's pip for the image's environment. A failed step fails the deploy with
the end of the log. Functions of different images run in their own environments.

Every build's outcome is recorded in the database (table ``images``: hash, name, status,
the log's end), so the list of images is the same on every replica over one database. The
folders are not shared: a replica that lacks an image built for a deploy made through
another replica builds it when a call first needs it (``cove.engine.pool``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import site
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from cove.errors import DeployError
from cove.store.journal import upsertable_insert
from cove.store.schema import images as images_table

if TYPE_CHECKING:
    from cove.store.database import Store

log = logging.getLogger(__name__)
_LOG_TAIL = 4000
_STEP_TIMEOUT = 1800


@dataclass(frozen=True)
class BuiltImage:
    """A ready image: the interpreter to run, and the environment and folder to run in."""

    root: Path
    python: Path
    env: dict[str, str]
    workdir: Path | None


def image_path(folder: Path, path: str) -> Path:
    """Where ``path`` of an image's ``copy`` or ``workdir`` step lies: inside the image's own
    file tree (``files/``), whether written absolute or relative, never relative to the
    directory the server happened to start in."""
    return folder / "files" / path.lstrip("/")


def image_hash(image: dict[str, Any]) -> str:
    import hashlib

    data = json.dumps(image, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:16]


class ImageBuilder:
    """Builds and finds images under ``<data_dir>/images``, and records each build in
    ``store`` when given."""

    def __init__(self, data_dir: Path, store: Store | None = None) -> None:
        self.root = data_dir / "images"
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = store
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, image: dict[str, Any]) -> BuiltImage | None:
        """The built image, if it was built."""
        folder = self.root / image_hash(image)
        marker = folder / "image.json"
        if not marker.exists():
            return None
        meta = json.loads(marker.read_text())
        workdir = meta.get("workdir")
        return BuiltImage(folder, folder / "bin" / "python", meta["env"],
                          image_path(folder, workdir) if workdir else None)  # fmt: skip

    def build(self, image: dict[str, Any], code_dir: Path | None = None) -> BuiltImage:
        """Build ``image`` (once: concurrent and later builds find it); raises DeployError
        with the end of the build log when a step fails."""
        key = image_hash(image)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            built = self.get(image)
            if built is not None:
                return built
            staging = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=self.root))
            log_path = self.root / f"{key}.build.log"
            try:
                self._build_into(staging, image, code_dir, log_path)
            except BaseException as exc:
                shutil.rmtree(staging, ignore_errors=True)
                if isinstance(exc, DeployError):
                    self._record(key, image, "failed", log_path)
                raise
            final = self.root / key
            os.replace(staging, final)
            # The environment's scripts name its folder: make them point at the final one.
            _relocate(final, staging)
            built = self.get(image)
            assert built is not None
            self._record(key, image, "ready", log_path)
            return built

    def _record(self, key: str, image: dict[str, Any], status: str, log_path: Path) -> None:
        """The build's outcome, for every replica to list (the latest build wins)."""
        if self.store is None:
            return
        try:
            tail = log_path.read_text(errors="replace")[-_LOG_TAIL:]
        except OSError:
            tail = ""
        row = {
            "hash": key,
            "name": image.get("name"),
            "status": status,
            "log": tail,
            "built_at": time.time(),
        }

        def write(conn: Connection) -> None:
            # An upsert: replicas may finish building the same image at the same moment.
            stmt = upsertable_insert(conn, images_table).values(**row)
            conn.execute(stmt.on_conflict_do_update(index_elements=["hash"], set_=row))

        try:
            self.store.write_sync(write)
        except Exception:  # the image is built all the same; only the listing misses it
            log.exception("recording the build of image %s failed", key)

    async def records(self) -> list[dict[str, Any]]:
        """Every image a server over this database built (its latest build), newest first:
        ``hash``, ``name``, ``status`` (``ready`` or ``failed``), ``built_at``, ``log``."""
        if self.store is None:
            return []

        def read(conn: Connection) -> list[dict[str, Any]]:
            t = images_table
            query = select(t).order_by(t.c.built_at.desc(), t.c.hash)
            return [dict(r) for r in conn.execute(query).mappings()]

        return await self.store.read(read)

    def _build_into(
        self, folder: Path, image: dict[str, Any], code_dir: Path | None, log_path: Path
    ) -> None:
        with open(log_path, "w") as log:
            log.write(f"building image {image.get('name')} ({image_hash(image)})\n")
            log.flush()
            _run([sys.executable, "-m", "venv", "--without-pip", str(folder)], log, None, {})
            purelib = Path(
                subprocess.check_output(
                    [str(folder / "bin" / "python"), "-c",
                     "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    text=True,
                ).strip()
            )  # fmt: skip
            # The server's packages (Cove and its dependencies) after the image's own; as site
            # folders, so their own .pth files (editable installs) work too.
            dirs = [d for d in site.getsitepackages() if Path(d).is_dir()]
            (purelib / "_cove_server.pth").write_text(
                "".join(f"import site; site.addsitedir({d!r})\n" for d in dirs)
            )
            pip = folder / "bin" / "pip"
            pip.write_text(f'#!/bin/sh\nexec "{folder}/bin/python" -m pip "$@"\n')
            pip.chmod(0o755)
            env: dict[str, str] = {}
            workdir: str | None = None
            files = folder / "files"
            for op, args in image.get("steps", []):
                if op == "run":
                    step_env = {
                        **os.environ,
                        **env,
                        "VIRTUAL_ENV": str(folder),
                        "PATH": f"{folder / 'bin'}:{os.environ.get('PATH', '')}",
                    }
                    _run(["/bin/sh", "-c", args[0]], log, code_dir, step_env)  # fmt: skip
                elif op == "env":
                    env[args[0]] = args[1]
                elif op == "copy":
                    _copy(args[0], args[1], code_dir, files, log)
                elif op == "workdir":
                    workdir = args[0]
                    image_path(folder, workdir).mkdir(parents=True, exist_ok=True)
            meta = {"name": image.get("name"), "env": env, "workdir": workdir}
            (folder / "image.json").write_text(json.dumps(meta))
        if log_path.exists():
            shutil.copy(log_path, folder / "build.log")


def _run(cmd: list[str], log: Any, cwd: Path | None, env: dict[str, str]) -> None:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    result = subprocess.run(
        cmd, cwd=cwd, env=env or None, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, timeout=_STEP_TIMEOUT, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        log.flush()
        tail = Path(log.name).read_text()[-_LOG_TAIL:]
        raise DeployError(
            f"image build step failed with exit code {result.returncode}: {cmd[-1]}\n{tail}"
        )


def _copy(src: str, dst: str, code_dir: Path | None, files: Path, log: Any) -> None:
    source = Path(src) if Path(src).is_absolute() or code_dir is None else code_dir / src
    target = image_path(files.parent, dst)
    log.write(f"copy {source} -> {target}\n")
    if not source.exists():
        raise DeployError(f"image copy step: {src} does not exist")
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)


def _relocate(final: Path, staging: Path) -> None:
    for script in (final / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            try:
                text = script.read_text()
            except (UnicodeDecodeError, OSError):
                continue
            if str(staging) in text:
                script.write_text(text.replace(str(staging), str(final)))
    cfg = final / "pyvenv.cfg"
    if cfg.exists():
        cfg.write_text(cfg.read_text().replace(str(staging), str(final)))
