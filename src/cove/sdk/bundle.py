"""Code bundles: the folder of a deployed file, as one deterministic ZIP.

``cove deploy app.py`` ships ``app.py``'s whole folder, so modules and packages beside it
import normally at deploy time (inspection), in templates, in containers and in Ray
actors. The bundle is a ZIP whose first entry, :data:`MANIFEST`, names the entry file
(``{"entry": "app.py"}``); the rest are the folder's files under their relative paths.

Left out of a bundle (see :func:`folder_files`):

* what a ``.gitignore`` in the folder or in one of its subfolders ignores. Supported
  syntax: blank lines and ``#`` comments, ``!`` negation, a trailing ``/`` (folders only),
  a leading or inner ``/`` (anchored to the ``.gitignore``'s folder), ``*``, ``?``,
  ``[...]``, ``**``, and ``\\`` escapes. Parent folders' ``.gitignore`` files and git's
  global excludes are not read: the bundle depends on the folder alone;
* version control and caches: ``.git``, ``.hg``, ``.svn``, ``__pycache__``,
  ``.pytest_cache``, ``.mypy_cache``, ``.ruff_cache``, ``*.pyc``, ``*.pyo``;
* virtual environments: ``.venv``, ``venv`` and any folder holding a ``pyvenv.cfg``;
* Cove's own data folders: ``.cove``, and any folder holding a ``cove.db`` or a
  ``secrets.key``.

The ZIP is deterministic (sorted entries, fixed timestamps, normalised modes, fixed
compression), so the same files give the same bytes, hence the same code blob on the
server, and a redeploy of unchanged code keeps its containers.

The server accepts a bundle (:func:`read_bundle`) only after checking every entry name
(no absolute paths, no ``..``, no links) and the total size, and re-packs it the same
deterministic way; :func:`unpack` checks the names again when it writes a bundle out.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cove.errors import InvalidInputError, PayloadTooLargeError

#: The bundle's own entry: ``{"entry": "<file>.py"}``.
MANIFEST = ".cove_bundle.json"
#: The default limit on a bundle's size (its files, uncompressed): the server's
#: ``max_code_bytes`` default.
MAX_BUNDLE_BYTES = 10 * 1024 * 1024
#: The most files a bundle may hold.
MAX_BUNDLE_FILES = 10_000
#: The content type of a bundle on the wire.
CONTENT_TYPE = "application/zip"
ZIP_CONTENT_TYPES = frozenset({CONTENT_TYPE, "application/x-zip-compressed", "application/x-zip"})

_ALWAYS_LEFT_OUT = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".venv",
        "venv",
        ".cove",
    }
)
_LEFT_OUT_SUFFIXES = (".pyc", ".pyo")
_DATA_FOLDER_MARKERS = ("cove.db", "secrets.key")
_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
_LEVEL = 6


def is_zip(data: bytes) -> bool:
    """Whether ``data`` is a ZIP archive (by its magic bytes; Python source never starts
    with them)."""
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


# -- .gitignore ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    negate: bool
    folders_only: bool
    base: str  # the .gitignore's folder, relative to the bundle root ("" for the root)


def _translate(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] in "!^":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1
            end = pattern.find("]", j)
            if end < 0:
                out.append(re.escape(c))
                i += 1
                continue
            body = pattern[i + 1 : end]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        elif c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _rules(text: str, base: str) -> list[_Rule]:
    rules = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate or line.startswith(("\\!", "\\#")):
            line = line[1:]
        folders_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line
        line = line.lstrip("/")
        if not line:
            continue
        regex = _translate(line) if anchored else "(?:.*/)?" + _translate(line)
        try:
            compiled = re.compile(regex, re.DOTALL)
        except re.error:
            continue  # a pattern git would not match either
        rules.append(_Rule(compiled, negate, folders_only, base))
    return rules


def _ignored(rules: list[_Rule], path: str, is_dir: bool) -> bool:
    ignored = False
    for rule in rules:
        if rule.folders_only and not is_dir:
            continue
        if rule.base:
            if not path.startswith(rule.base + "/"):
                continue
            sub = path[len(rule.base) + 1 :]
        else:
            sub = path
        if rule.regex.fullmatch(sub):
            ignored = not rule.negate
    return ignored


# -- building --------------------------------------------------------------------------


def _left_out_folder(folder: Path) -> bool:
    if folder.name in _ALWAYS_LEFT_OUT or (folder / "pyvenv.cfg").exists():
        return True
    return any((folder / marker).is_file() for marker in _DATA_FOLDER_MARKERS)


def folder_files(root: Path, limit: int = MAX_BUNDLE_BYTES) -> dict[str, Path]:
    """The files of ``root`` a bundle holds: relative POSIX path -> file, sorted.

    Links are followed (each folder once). Raises :class:`PayloadTooLargeError` when they
    add up to more than ``limit`` bytes or :data:`MAX_BUNDLE_FILES` files.
    """
    found: dict[str, Path] = {}
    sizes: dict[str, int] = {}
    seen: set[str] = set()
    stopped = False

    def walk(folder: Path, rel: str, rules: list[_Rule]) -> None:
        nonlocal stopped
        real = os.path.realpath(folder)
        if real in seen:
            return
        seen.add(real)
        ignore_file = folder / ".gitignore"
        if ignore_file.is_file():
            rules = [*rules, *_rules(ignore_file.read_text(errors="replace"), rel)]
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if stopped:
                return
            path = f"{rel}/{entry.name}" if rel else entry.name
            if path == MANIFEST:
                continue  # written by the bundle itself
            try:
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError:
                continue
            if is_dir:
                if _left_out_folder(Path(entry.path)) or _ignored(rules, path, True):
                    continue
                walk(Path(entry.path), path, rules)
            elif is_file and not entry.name.endswith(_LEFT_OUT_SUFFIXES):
                if _ignored(rules, path, False):
                    continue
                try:
                    sizes[path] = entry.stat().st_size
                except OSError:
                    continue
                found[path] = Path(entry.path)
                # Stop counting far past the limit (a home folder, a link loop).
                if len(found) > MAX_BUNDLE_FILES or sum(sizes.values()) > 10 * limit:
                    stopped = True

    walk(root, "", [])
    check_size(sizes, limit, f"the code folder {root}", stopped=stopped)
    return dict(sorted(found.items()))


def check_size(sizes: Mapping[str, int], limit: int, what: str, *, stopped: bool = False) -> None:
    """Raise :class:`PayloadTooLargeError` naming the limit, the size and the largest
    entries (top-level files and folders) when ``sizes`` add up to more than ``limit``
    bytes or hold more than :data:`MAX_BUNDLE_FILES` files."""
    total = sum(sizes.values())
    if total <= limit and len(sizes) <= MAX_BUNDLE_FILES:
        return
    tops: dict[str, int] = {}
    for path, size in sizes.items():
        head, sep, _ = path.partition("/")
        tops[head + sep] = tops.get(head + sep, 0) + size
    largest = sorted(tops.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    listed = ", ".join(f"{name} {_human(size)}" for name, size in largest)
    more = "at least " if stopped else ""
    if total <= limit:
        head = f"{what} holds {more}{len(sizes)} files, over the limit of {MAX_BUNDLE_FILES}"
    else:
        head = (
            f"{what} is {more}{_human(total)} ({total} bytes), over the limit of "
            f"{_human(limit)} ({limit} bytes)"
        )
    raise PayloadTooLargeError(
        f"{head}; largest entries: {listed}. Leave files out with a .gitignore in the "
        "folder (virtual environments, caches and .git are left out already)",
        limit=limit,
        size=total,
        files=len(sizes),
        largest=[{"path": name, "bytes": size} for name, size in largest],
    )


def _human(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def pack(entry: str, files: Mapping[str, tuple[bytes, bool]]) -> bytes:
    """The deterministic ZIP of ``files`` (relative path -> (bytes, executable)), with
    :data:`MANIFEST` naming ``entry`` first."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as z:
        manifest = json.dumps({"entry": entry}, sort_keys=True, separators=(",", ":"))
        z.writestr(_info(MANIFEST, False), manifest.encode(), compresslevel=_LEVEL)
        for path in sorted(files):
            data, executable = files[path]
            z.writestr(_info(path, executable), data, compresslevel=_LEVEL)
    return buffer.getvalue()


def _info(name: str, executable: bool) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_TIMESTAMP)
    info.create_system = 3  # Unix: the mode below is meaningful
    info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def bundle_folder(entry_file: Path, limit: int = MAX_BUNDLE_BYTES) -> bytes:
    """The bundle of ``entry_file``'s folder, naming ``entry_file`` as its entry."""
    entry_file = Path(os.path.abspath(entry_file))
    if not entry_file.is_file():
        raise FileNotFoundError(f"{entry_file}: no such file")
    files = folder_files(entry_file.parent, limit)
    contents: dict[str, tuple[bytes, bool]] = {}
    for rel, path in files.items():
        contents[rel] = (path.read_bytes(), os.access(path, os.X_OK))
    if entry_file.name not in contents:  # ignored by a .gitignore: it ships all the same
        contents[entry_file.name] = (entry_file.read_bytes(), False)
    return pack(entry_file.name, contents)


# -- reading (server) ------------------------------------------------------------------


def safe_name(name: str) -> str:
    """A ZIP entry name made sure to stay inside the folder it is unpacked into."""
    path = PurePosixPath(name)
    if (
        not name
        or "\\" in name
        or "\x00" in name
        or name.startswith("/")
        or (len(name) > 1 and name[1] == ":")
        or any(part in ("", ".", "..") for part in name.rstrip("/").split("/"))
        or path.is_absolute()
    ):
        raise InvalidInputError(
            f"the code bundle holds an entry with an unsafe name {name[:200]!r}: entries "
            "must be relative paths without '..'",
            entry=name[:300],
        )
    return name


def _entries(data: bytes) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise InvalidInputError(f"the code bundle is not a valid ZIP archive: {exc}") from None
    infos = []
    names: set[str] = set()
    for info in archive.infolist():
        safe_name(info.filename)
        if info.is_dir():
            continue
        mode = info.external_attr >> 16
        if info.create_system == 3 and stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            raise InvalidInputError(
                f"the code bundle entry {info.filename[:200]!r} is not a regular file "
                "(links and devices are refused)",
                entry=info.filename[:300],
            )
        if info.filename in names:
            raise InvalidInputError(f"the code bundle holds {info.filename[:200]!r} twice")
        names.add(info.filename)
        infos.append(info)
    return archive, infos


def read_bundle(data: bytes, entry: str | None, limit: int) -> tuple[str, bytes]:
    """Check an uploaded bundle and re-pack it deterministically: returns the entry file
    name and the bundle's bytes (the code blob).

    The entry is ``entry`` when given, else the one its :data:`MANIFEST` names, else its
    only top-level ``.py`` file. Raises :class:`InvalidInputError` for an unsafe or broken
    archive and :class:`PayloadTooLargeError` for one over ``limit`` bytes (uncompressed).
    """
    archive, infos = _entries(data)
    with archive:
        sizes = {info.filename: info.file_size for info in infos if info.filename != MANIFEST}
        check_size(sizes, limit, "the code bundle")
        files: dict[str, tuple[bytes, bool]] = {}
        named: Any = None
        for info in infos:
            try:
                content = archive.read(info)
            except (zipfile.BadZipFile, ValueError, OSError, NotImplementedError) as exc:
                raise InvalidInputError(
                    f"the code bundle entry {info.filename[:200]!r} cannot be read: {exc}"
                ) from None
            if info.filename == MANIFEST:
                try:
                    named = json.loads(content).get("entry")
                except (ValueError, AttributeError):
                    raise InvalidInputError(f"the code bundle's {MANIFEST} is not valid") from None
                continue
            executable = bool((info.external_attr >> 16) & 0o111)
            files[info.filename] = (content, executable)
    chosen = entry or named
    if not chosen:
        top = [name for name in files if "/" not in name and name.endswith(".py")]
        if len(top) != 1:
            raise InvalidInputError(
                "the code bundle does not say which file to deploy: name it in the form "
                f"field 'entry' (top-level .py files in it: {', '.join(sorted(top)) or 'none'})"
            )
        chosen = top[0]
    if not isinstance(chosen, str) or chosen not in files:
        raise InvalidInputError(
            f"the code bundle has no file {str(chosen)[:200]!r} to deploy", entry=str(chosen)[:300]
        )
    return chosen, pack(chosen, files)


def unpack(data: bytes, target: Path) -> None:
    """Write a bundle's files into ``target`` (which must exist), checking every name."""
    archive, infos = _entries(data)
    with archive:
        for info in infos:
            path = target.joinpath(*safe_name(info.filename).split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(archive.read(info))
            if (info.external_attr >> 16) & 0o111:
                path.chmod(0o755)
