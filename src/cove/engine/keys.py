"""API keys and namespaces: who may call the server, and what they see.

A key is ``cove_<id>_<secret>``: ``id`` (public, 12 hex digits) finds the row, ``secret``
(32 random bytes) proves it. The store keeps only the SHA-256 of the whole key: the key
carries 256 bits of randomness, so a fast hash cannot be brute-forced and a salt adds
nothing. A key belongs to one namespace and has one role; roles are ordered, each one
allowing what the ones below it allow:

- ``invoke``: call applications, read the namespace's requests, outputs, logs;
- ``deploy``: also deploy and delete applications and build images;
- ``admin``: also manage the namespace's keys and secrets (an admin of ``default`` also
  reads machine-wide endpoints: ``/status``, ``/metrics``).

Namespaces separate applications, requests, secrets, blobs and logs. Inside the engine an
application of namespace ``ns`` is named ``ns~app`` (``default``'s keep their bare names, so
a server without ``--auth`` stores exactly what it always did).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from cove.errors import InvalidInputError, NotFoundError
from cove.store import Store
from cove.store import schema as s

ROLES = ("invoke", "deploy", "admin")
DEFAULT_NAMESPACE = "default"
SEPARATOR = "~"  # never in a namespace nor in an application name (a Python identifier)
NAMESPACE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
KEY_PATTERN = re.compile(r"cove_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})")


@dataclass(frozen=True)
class ApiKey:
    """A key's record (never its secret)."""

    id: str
    namespace: str
    role: str
    name: str | None
    created_at: float
    revoked_at: float | None = None

    def allows(self, role: str) -> bool:
        """Whether this key's role is ``role`` or above it."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "namespace": self.namespace,
            "role": self.role,
            "name": self.name,
            "created_at": self.created_at,
            "revoked": self.revoked_at is not None,
        }


def validate_namespace(namespace: object) -> str:
    if not isinstance(namespace, str) or not NAMESPACE_PATTERN.fullmatch(namespace):
        raise InvalidInputError(
            f"invalid namespace {namespace!r}: use 1 to 63 lowercase letters, digits, '-' "
            "and '_', starting with a letter or digit",
            namespace=str(namespace)[:100],
        )
    return namespace


def validate_role(role: object) -> str:
    if role not in ROLES:
        raise InvalidInputError(
            f"invalid role {role!r}: one of {', '.join(ROLES)}", role=str(role)[:40]
        )
    return str(role)


def qualify(namespace: str, app: str) -> str:
    """The engine's name for application ``app`` of ``namespace``."""
    return app if namespace == DEFAULT_NAMESPACE else f"{namespace}{SEPARATOR}{app}"


def split(qualified: str) -> tuple[str, str]:
    """``(namespace, app)`` of an engine application name."""
    namespace, sep, app = qualified.partition(SEPARATOR)
    return (namespace, app) if sep else (DEFAULT_NAMESPACE, qualified)


def namespace_of(qualified: str) -> str:
    return split(qualified)[0]


def public_name(qualified: str) -> str:
    """The name a client of the application's namespace knows it by."""
    return split(qualified)[1]


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def _row(row: Any) -> ApiKey:
    return ApiKey(row.id, row.namespace, row.role, row.name, row.created_at, row.revoked_at)


# -- journal operations (run on a store connection) -----------------------------------------
def insert_key(conn: Connection, namespace: str, role: str, name: str | None) -> tuple[ApiKey, str]:
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    token = f"cove_{key_id}_{secret}"
    record = ApiKey(key_id, namespace, role, name, time.time())
    conn.execute(
        s.api_keys.insert().values(
            id=key_id,
            namespace=namespace,
            role=role,
            name=name,
            secret_hash=_hash(token),
            created_at=record.created_at,
        )
    )
    return record, token


def find_key(conn: Connection, token: str) -> ApiKey | None:
    """The live key ``token`` is, else None (unknown, malformed, revoked)."""
    match = KEY_PATTERN.fullmatch(token)
    if match is None:
        return None
    row = conn.execute(select(s.api_keys).where(s.api_keys.c.id == match.group(1))).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_hash, _hash(token)):  # constant time
        return None
    return _row(row)


def list_keys(conn: Connection, namespace: str | None) -> list[ApiKey]:
    query = select(s.api_keys).order_by(s.api_keys.c.created_at, s.api_keys.c.id)
    if namespace is not None:
        query = query.where(s.api_keys.c.namespace == namespace)
    return [_row(r) for r in conn.execute(query)]


def revoke_key(conn: Connection, key_id: str, namespace: str | None) -> bool:
    """Revoke ``key_id`` (of ``namespace`` only, unless None); whether a live key was."""
    query = update(s.api_keys).where(s.api_keys.c.id == key_id, s.api_keys.c.revoked_at.is_(None))
    if namespace is not None:
        query = query.where(s.api_keys.c.namespace == namespace)
    return bool(conn.execute(query.values(revoked_at=time.time())).rowcount)


def count_keys(conn: Connection) -> int:
    return len(conn.execute(select(s.api_keys.c.id)).all())


class KeyRing:
    """The server's keys, over its store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(
        self, namespace: str, role: str, name: str | None = None
    ) -> tuple[ApiKey, str]:
        """A new key: its record and the key itself (shown once, never stored)."""
        validate_namespace(namespace)
        validate_role(role)
        return await self.store.write(lambda c: insert_key(c, namespace, role, name))

    async def authenticate(self, token: str) -> ApiKey | None:
        return await self.store.read(lambda c: find_key(c, token))

    async def list(self, namespace: str | None) -> list[ApiKey]:
        return await self.store.read(lambda c: list_keys(c, namespace))

    async def revoke(self, key_id: str, namespace: str | None) -> None:
        if not await self.store.write(lambda c: revoke_key(c, key_id, namespace)):
            raise NotFoundError(f"no live API key {key_id!r}", key=key_id)

    async def count(self) -> int:
        return await self.store.read(count_keys)
