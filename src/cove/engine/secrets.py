"""Secrets: named values, encrypted at rest, handed to the functions that list them.

A server keeps its secrets in its database, so every replica over one database sees the
same ones (:class:`StoredSecrets`, table ``secrets``): one row per namespace whose ``token``
is the JSON object ``{name: value}`` encrypted with Fernet (AES-128-CBC with an
HMAC-SHA256), names included. The key is the ``key`` argument, else ``COVE_SECRETS_KEY``,
else ``<data_dir>/secrets.key`` (created with mode 0600 on first use): replicas must all
have the same one, so several replicas set the same ``COVE_SECRETS_KEY``. The row of
namespace ``""`` holds no secret: written with the first secret, it pins the key (a server
whose key cannot decrypt it fails with a message that says so, and never writes secrets
under another key), and every write locks it, so writes of all replicas are serialized.

:class:`SecretStore` keeps the same object in one file instead, ``<data_dir>/secrets.enc``,
as servers did before the table existed: writes go to a temporary file that is fsynced and
renamed over the old one, so a crash leaves either the old secrets or the new ones. A
server moves such files into its database when it starts (:meth:`StoredSecrets.adopt_files`),
all in one transaction, and removes them only after it committed.

A function gets, as environment variables, only the secrets it lists
(``@function(secrets=[...])``): :meth:`SecretStore.environment` returns exactly those, and
:meth:`SecretStore.missing` says which of them do not exist (a deploy that needs them fails).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Connection, select

from cove.engine.keys import DEFAULT_NAMESPACE
from cove.errors import InternalError, InvalidInputError
from cove.store.journal import upsertable_insert
from cove.store.schema import secrets as secrets_table

if TYPE_CHECKING:
    from cove.store.database import Store

log = logging.getLogger(__name__)

#: Environment variable holding the Fernet key (instead of ``<data_dir>/secrets.key``).
KEY_ENV = "COVE_SECRETS_KEY"
KEY_FILE = "secrets.key"
SECRETS_FILE = "secrets.enc"
KEY_ROW = ""  # the namespace of the row that pins the key (no namespace is named "")

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_NAME_LENGTH = 200
MAX_VALUE_BYTES = 64 * 1024

_FILE_MODE = 0o600

# One lock per data folder, shared by every store over it in this process.
_locks: dict[Path, threading.RLock] = {}
_locks_guard = threading.Lock()


def _lock_for(path: Path) -> threading.RLock:
    with _locks_guard:
        return _locks.setdefault(path, threading.RLock())


class MissingSecretsError(KeyError):
    """Secrets that were asked for do not exist. ``names`` lists them, sorted."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(names)
        self.names = names

    def __str__(self) -> str:
        listed = ", ".join(self.names)
        return f"secret{'s' if len(self.names) > 1 else ''} not set: {listed}"


RESERVED_NAMES = frozenset(
    {
        "PATH",
        "PYTHONPATH",
        "PYTHONHOME",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "HOME",
        "TMPDIR",
        "TMP",
        "TEMP",
        "CUDA_VISIBLE_DEVICES",
        "CUDA_DEVICE_ORDER",
    }
)


def validate_name(name: object) -> str:
    """``name`` if it is a valid secret name (an environment variable name), else raise
    :class:`InvalidInputError`."""
    if not isinstance(name, str):
        raise InvalidInputError(f"secret name must be a string, not {type(name).__name__}")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInputError(
            f"secret name {name[:40]!r}... is too long: at most {MAX_NAME_LENGTH} characters",
            secret=name[:MAX_NAME_LENGTH],
        )
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInputError(
            f"invalid secret name {name!r}: use letters, digits and underscores, "
            "not starting with a digit (like OPENAI_API_KEY)",
            secret=name,
        )
    if name in RESERVED_NAMES or name.upper().startswith("COVE_"):
        # A secret becomes an environment variable: it must not replace the container's own.
        raise InvalidInputError(
            f"secret name {name!r} is reserved: containers need that variable themselves",
            secret=name,
        )
    return name


def validate_value(name: str, value: object) -> str:
    """``value`` if it can be stored as secret ``name``, else raise :class:`InvalidInputError`."""
    if not isinstance(value, str):
        raise InvalidInputError(
            f"secret {name}: the value must be a string, not {type(value).__name__}", secret=name
        )
    if len(value.encode("utf-8", errors="surrogatepass")) > MAX_VALUE_BYTES:
        raise InvalidInputError(
            f"secret {name}: the value is too large: at most {MAX_VALUE_BYTES} bytes (64 KiB)",
            secret=name,
        )
    if "\x00" in value:
        raise InvalidInputError(
            f"secret {name}: the value must not contain NUL characters "
            "(it becomes an environment variable)",
            secret=name,
        )
    return value


Change = Callable[[dict[str, str]], bool]  # edits the secrets in place; whether it changed any


class SecretStore:
    """Secrets in one encrypted file of a folder (``secrets.enc``). Safe to use from many
    threads; :class:`StoredSecrets` keeps them in the database instead."""

    def __init__(self, data_dir: Path, key: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / SECRETS_FILE
        self.key_path = self.data_dir / KEY_FILE
        self._explicit_key = key
        self._fernet: Fernet | None = None
        self._lock = _lock_for(self.data_dir.resolve())

    # -- reading ----------------------------------------------------------------------------
    def get(self, name: str) -> str:
        """The value of secret ``name``; :class:`KeyError` if it is not set."""
        secrets = self._read()
        if name not in secrets:
            raise KeyError(name)
        return secrets[name]

    def names(self) -> list[str]:
        """The names of every secret, sorted."""
        return sorted(self._read())

    def missing(self, names: list[str]) -> list[str]:
        """Those of ``names`` that are not set (each once, in the order given)."""
        secrets = self._read()
        return [n for n in dict.fromkeys(names) if n not in secrets]

    def environment(self, names: list[str]) -> dict[str, str]:
        """``{name: value}`` for exactly ``names``, and no other secret. Raises
        :class:`MissingSecretsError` (a :class:`KeyError`) naming those that are not set."""
        secrets = self._read()
        absent = sorted({n for n in names if n not in secrets})
        if absent:
            raise MissingSecretsError(absent)
        return {n: secrets[n] for n in names}

    # -- writing ----------------------------------------------------------------------------
    def set(self, name: str, value: str) -> None:
        """Create or replace secret ``name``. Raises :class:`InvalidInputError` for a bad
        name or value."""
        validate_name(name)
        validate_value(name, value)

        def change(secrets: dict[str, str]) -> bool:
            secrets[name] = value
            return True

        self._update(change)

    def delete(self, name: str) -> bool:
        """Remove secret ``name``; whether it existed."""
        validate_name(name)
        return self._update(lambda secrets: secrets.pop(name, None) is not None)

    # -- where they are kept (the file here; StoredSecrets overrides) -----------------------
    def _read(self) -> dict[str, str]:
        with self._lock:
            return self._load()

    def _update(self, change: Change) -> bool:
        with self._lock:
            secrets = self._load()
            if not change(secrets):
                return False
            self._save(secrets)
            return True

    def _holds_secrets(self) -> bool:
        """Whether secrets encrypted with some key exist (then no new key may be made)."""
        return self.path.exists()

    def _no_key_message(self) -> str:
        return (
            f"{self.path} exists but its key {self.key_path} is missing: restore that "
            f"file, or set {KEY_ENV} to the key that encrypted the secrets"
        )

    def _wrong_key_message(self) -> str:
        return (
            f"cannot decrypt the secrets file {self.path}: it was encrypted with another "
            f"key (or is damaged); set {KEY_ENV} to the key that wrote it, or restore "
            f"{self.key_path}"
        )

    # -- the key ----------------------------------------------------------------------------
    def _key(self) -> Fernet:
        if self._fernet is None:
            self._fernet = self._make_fernet()
        return self._fernet

    def _make_fernet(self) -> Fernet:
        key = self._explicit_key
        source = "the key given to the secret store"
        if key is None:
            key = os.environ.get(KEY_ENV) or None
            source = KEY_ENV
        if key is None:
            key = self._key_from_file()
            source = str(self.key_path)
        try:
            return Fernet(key.strip().encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise InternalError(
                f"{source} does not hold a valid secrets key: it must be 32 url-safe "
                "base64-encoded bytes, as made by "
                "python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            ) from None

    def _key_from_file(self) -> str:
        try:
            return self.key_path.read_text(encoding="ascii")
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError) as exc:
            raise InternalError(f"cannot read the secrets key {self.key_path}: {exc}") from None
        if self._holds_secrets():
            # A new key could never decrypt the secrets already there.
            raise InternalError(self._no_key_message())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        tmp = self._write_temp(key + b"\n")
        try:
            # link, not replace: if another process made the key first, keep (and use) it.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, self.key_path)
                _fsync_dir(self.data_dir)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return self.key_path.read_text(encoding="ascii")

    def _encrypt(self, secrets: dict[str, str]) -> bytes:
        return self._key().encrypt(json.dumps(secrets, sort_keys=True).encode("utf-8"))

    def _decrypt(self, token: bytes, what: str) -> dict[str, str]:
        """The secrets in ``token``; ``what`` names where it was kept, for errors."""
        try:
            plain = self._key().decrypt(token)
        except InvalidToken:
            raise InternalError(self._wrong_key_message()) from None
        try:
            data = json.loads(plain)
        except ValueError as exc:
            raise InternalError(f"{what} is damaged: {exc}") from None
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise InternalError(f"{what} is damaged: not a name-value map")
        return data

    # -- the file ---------------------------------------------------------------------------
    def _load(self) -> dict[str, str]:
        """The secrets on disk, decrypted (read each time: the file is small, and another
        store over the same folder may have changed it)."""
        try:
            token = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise InternalError(f"cannot read the secrets file {self.path}: {exc}") from None
        return self._decrypt(token, f"the secrets file {self.path}")

    def _save(self, secrets: dict[str, str]) -> None:
        token = self._encrypt(secrets)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._write_temp(token)
        try:
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.data_dir)

    def _write_temp(self, data: bytes) -> str:
        """``data`` in a new fsynced file (mode 0600) in the data folder; its path."""
        fd, tmp = tempfile.mkstemp(dir=self.data_dir, prefix=".secrets-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), _FILE_MODE)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return tmp


class StoredSecrets(SecretStore):
    """The secrets of one namespace, in the database every replica shares. ``data_dir`` is
    the server's data folder: its ``secrets.key`` is the key unless ``COVE_SECRETS_KEY`` or
    ``key`` gives one."""

    def __init__(
        self,
        data_dir: Path,
        store: Store,
        namespace: str = DEFAULT_NAMESPACE,
        key: str | None = None,
    ) -> None:
        super().__init__(data_dir, key)
        self.store = store
        self.namespace = namespace

    def check(self) -> None:
        """Raise :class:`InternalError`, saying why, if this server's key cannot decrypt the
        secrets in the database (a server checks at start, before it serves anything)."""
        self._read()

    def _read(self) -> dict[str, str]:
        tokens = self.store.read_sync(lambda c: _tokens(c, [KEY_ROW, self.namespace]))
        return self._open(tokens)

    def _update(self, change: Change) -> bool:
        pinned = self._encrypt({})  # the key row, should this be the first secret of all
        now = time.time()

        def write(conn: Connection) -> bool:
            tokens = _lock_key_row(conn, pinned, now)
            # A statement of its own, after the lock: it sees what the writer before us
            # committed (under PostgreSQL's READ COMMITTED each statement has its snapshot).
            tokens.update(_tokens(conn, [self.namespace]))
            secrets = self._open(tokens)
            if not change(secrets):
                return False
            _put(conn, self.namespace, self._encrypt(secrets), now)
            return True

        return self.store.write_sync(write)

    def _open(self, tokens: dict[str, bytes]) -> dict[str, str]:
        if KEY_ROW in tokens:
            self._decrypt(tokens[KEY_ROW], "the secrets in the database")  # the key check
        token = tokens.get(self.namespace)
        return {} if token is None else self._decrypt(token, "the secrets in the database")

    def _holds_secrets(self) -> bool:
        return bool(self.store.read_sync(lambda c: _tokens(c, [KEY_ROW])))

    def _no_key_message(self) -> str:
        return (
            f"the database holds secrets, but this server has no key to read them "
            f"({self.key_path} is missing and {KEY_ENV} is not set): set {KEY_ENV} to the "
            "key that encrypted them; every replica over one database needs that same key"
        )

    def _wrong_key_message(self) -> str:
        return (
            "cannot decrypt the secrets in the database: they were encrypted with another "
            f"key (or are damaged). Every replica over one database needs the same key: set "
            f"{KEY_ENV} to the key that wrote them on every replica (or restore "
            f"{self.key_path})"
        )

    # -- secrets.enc files of earlier servers -----------------------------------------------
    def adopt_files(self) -> int:
        """Move the ``secrets.enc`` files of this data folder (``default``'s, and each
        namespace's under ``namespaces/<name>/``) into the database, in one transaction;
        each file is removed only once that committed. A name already in the database keeps
        its value there. Returns how many secrets were moved. Raises
        :class:`InternalError`, moving nothing, if a file cannot be read."""
        found = self._legacy_files()
        if not found:
            return 0
        pinned, now = self._encrypt({}), time.time()

        def write(conn: Connection) -> int:
            tokens = _lock_key_row(conn, pinned, now)
            self._open(tokens)  # this server's key is the database's
            moved = 0
            for namespace, (secrets, digest, _path) in found.items():
                row = conn.execute(
                    select(secrets_table.c.token, secrets_table.c.adopted).where(
                        secrets_table.c.namespace == namespace
                    )
                ).first()
                if row is not None and row.adopted == digest:
                    continue  # moved before a crash that left the file behind
                current = {} if row is None else self._decrypt(row.token, "the database")
                merged = {**secrets, **current}
                _put(conn, namespace, self._encrypt(merged), now, adopted=digest)
                moved += len(merged) - len(current)
            return moved

        moved = self.store.write_sync(write)
        for _secrets, _digest, path in found.values():
            path.unlink(missing_ok=True)
            _fsync_dir(path.parent)
        log.info("moved %d secret(s) from secrets.enc files into the database", moved)
        return moved

    def _legacy_files(self) -> dict[str, tuple[dict[str, str], str, Path]]:
        """``{namespace: (secrets, SHA-256 of the file, its path)}`` of the files there."""
        folders = {DEFAULT_NAMESPACE: self.data_dir}
        spaces = self.data_dir / "namespaces"
        if spaces.is_dir():
            folders.update({p.name: p for p in sorted(spaces.iterdir()) if p.is_dir()})
        found = {}
        for namespace, folder in folders.items():
            old = SecretStore(folder, self._explicit_key)  # with the key that wrote it
            try:
                token = old.path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise InternalError(f"cannot read the secrets file {old.path}: {exc}") from None
            secrets = old._decrypt(token, f"the secrets file {old.path}")
            found[namespace] = (secrets, hashlib.sha256(token).hexdigest(), old.path)
        return found


# -- the table (cove.store.schema.secrets) ----------------------------------------------------
def _tokens(conn: Connection, namespaces: list[str]) -> dict[str, bytes]:
    t = secrets_table
    rows = conn.execute(select(t.c.namespace, t.c.token).where(t.c.namespace.in_(namespaces)))
    return {str(r[0]): bytes(r[1]) for r in rows}


def _lock_key_row(conn: Connection, pinned: bytes, now: float) -> dict[str, bytes]:
    """Take the key row's lock (writing it first if there is none: the first writer's key
    becomes the database's); returns ``{KEY_ROW: its token}``. On SQLite the writer's
    ``BEGIN IMMEDIATE`` already serializes every write."""
    t = secrets_table
    conn.execute(
        upsertable_insert(conn, t)
        .values(namespace=KEY_ROW, token=pinned, updated_at=now)
        .on_conflict_do_nothing()
    )
    token = conn.execute(
        select(t.c.token).where(t.c.namespace == KEY_ROW).with_for_update()
    ).scalar_one()
    return {KEY_ROW: bytes(token)}


def _put(
    conn: Connection, namespace: str, token: bytes, now: float, adopted: str | None = None
) -> None:
    """Create or replace a namespace's row (under the key row's lock)."""
    t = secrets_table
    values: dict[str, Any] = {"token": token, "updated_at": now}
    if adopted is not None:
        values["adopted"] = adopted
    stmt = upsertable_insert(conn, t).values(namespace=namespace, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["namespace"], set_=values))


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
