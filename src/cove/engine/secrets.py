"""Secrets: named values, encrypted at rest, handed to the functions that list them.

The store keeps every secret in one file, ``<data_dir>/secrets.enc``: the JSON object
``{name: value}`` encrypted with Fernet (AES-128-CBC with an HMAC-SHA256). The key is the
``key`` argument, else ``COVE_SECRETS_KEY``, else ``<data_dir>/secrets.key`` (created with
mode 0600 on first use). Writes go to a temporary file that is fsynced and renamed over the
old one, so a crash leaves either the old secrets or the new ones, never a torn file.

A function gets, as environment variables, only the secrets it lists
(``@function(secrets=[...])``): :meth:`SecretStore.environment` returns exactly those, and
:meth:`SecretStore.missing` says which of them do not exist (a deploy that needs them fails).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from cove.errors import InternalError, InvalidInputError

#: Environment variable holding the Fernet key (instead of ``<data_dir>/secrets.key``).
KEY_ENV = "COVE_SECRETS_KEY"
KEY_FILE = "secrets.key"
SECRETS_FILE = "secrets.enc"

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


class SecretStore:
    """Secrets of one server, encrypted in its data folder. Safe to use from many threads."""

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
        with self._lock:
            secrets = self._load()
            if name not in secrets:
                raise KeyError(name)
            return secrets[name]

    def names(self) -> list[str]:
        """The names of every secret, sorted."""
        with self._lock:
            return sorted(self._load())

    def missing(self, names: list[str]) -> list[str]:
        """Those of ``names`` that are not set (each once, in the order given)."""
        with self._lock:
            secrets = self._load()
        return [n for n in dict.fromkeys(names) if n not in secrets]

    def environment(self, names: list[str]) -> dict[str, str]:
        """``{name: value}`` for exactly ``names``, and no other secret. Raises
        :class:`MissingSecretsError` (a :class:`KeyError`) naming those that are not set."""
        with self._lock:
            secrets = self._load()
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
        with self._lock:
            secrets = self._load()
            secrets[name] = value
            self._save(secrets)

    def delete(self, name: str) -> bool:
        """Remove secret ``name``; whether it existed."""
        validate_name(name)
        with self._lock:
            secrets = self._load()
            if secrets.pop(name, None) is None:
                return False
            self._save(secrets)
            return True

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
        if self.path.exists():
            # A new key could never decrypt the secrets already there.
            raise InternalError(
                f"{self.path} exists but its key {self.key_path} is missing: restore that "
                f"file, or set {KEY_ENV} to the key that encrypted the secrets"
            )
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
        try:
            plain = self._key().decrypt(token)
        except InvalidToken:
            raise InternalError(
                f"cannot decrypt the secrets file {self.path}: it was encrypted with another "
                f"key (or is damaged); set {KEY_ENV} to the key that wrote it, or restore "
                f"{self.key_path}"
            ) from None
        try:
            data = json.loads(plain)
        except ValueError as exc:
            raise InternalError(f"the secrets file {self.path} is damaged: {exc}") from None
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise InternalError(f"the secrets file {self.path} is damaged: not a name-value map")
        return data

    def _save(self, secrets: dict[str, str]) -> None:
        token = self._key().encrypt(json.dumps(secrets, sort_keys=True).encode("utf-8"))
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
