"""API keys of an endpoint: hashes in a map file HAProxy reads, changed live through its runtime API.

Files in the endpoint folder (all mode 600):

``apikeys.json``  one record per key: name, SHA-256 hash, created, expires, source, rate
                  limit (never the key itself);
``apikeys.map``   the HAProxy map: ``<SHA-256 hex> <name>|<expires epoch>|<rate limit>``;
``internal.key``  the key the deploy tooling itself uses for smoke tests, probes and
                  confirmation requests (name ``mlops-internal``, no rate limit).

The router hashes the key a caller presents (``sha2(256),hex``) and looks the hash up in
the map, so no plaintext key sits in its configuration. :func:`issue_key` and
:func:`revoke_key` write the files first, then change the running router through the
admin socket (``add map`` / ``del map``): a reload or restart reads the same keys, and no
other caller's request fails. Issuing, revoking and expiry call ``emit(event, payload)``
with ``mlops.apikey.issued`` / ``mlops.apikey.revoked`` (the Prefect layer sends them as
Prefect events).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mlops_tasks.deploy.models import EndpointSecurity, now_iso, whoami
from mlops_tasks.deploy.secrets import read_private_file, read_secret, write_private
from mlops_tasks.errors import EndpointSecurityError, RouterError

__all__ = [
    "INTERNAL_KEY_NAME",
    "ISSUED",
    "REVOKED",
    "ApiKeyRecord",
    "KeyStore",
    "hash_key",
    "new_key",
    "parse_keys",
]

logger = logging.getLogger(__name__)

INTERNAL_KEY_NAME = "mlops-internal"
ISSUED = "mlops.apikey.issued"
REVOKED = "mlops.apikey.revoked"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: Shortest key accepted from a file or Secret block (22 URL-safe characters hold 128 bits).
MIN_KEY_CHARS = 22
_NEVER = 4102444800  # 2100-01-01: the map's expiry of a key that never expires

Emit = Callable[[str, dict[str, Any]], None]


def hash_key(key: str) -> str:
    """The SHA-256 of a key as HAProxy's ``sha2(256),hex`` prints it (upper-case hex).

    Example:
        ```python
        assert len(hash_key("k" * 32)) == 64
        ```
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest().upper()


def new_key() -> str:
    """A new random key: ``mlk_`` and 256 random bits, URL-safe.

    Example:
        ```python
        assert new_key().startswith("mlk_")
        ```
    """
    return "mlk_" + secrets.token_urlsafe(32)


class ApiKeyRecord(BaseModel):
    """One key as the endpoint keeps it (no plaintext)."""

    name: str
    sha256: str = Field(..., description="Upper-case hex SHA-256 of the key.")
    created: str = Field(default_factory=now_iso)
    expires: str | None = Field(None, description="ISO-8601 UTC time after which it is refused.")
    source: str = Field("issued", description="issued, file, secret or internal.")
    rate_limit: int | None = Field(None, description="Requests per period; None: the endpoint's limit.")
    actor: str = Field(default_factory=whoami, description="Who issued it.")

    def expires_epoch(self) -> int:
        """The expiry as UNIX seconds (far in the future when it never expires)."""
        return int(_parse_time(self.expires, self.name).timestamp()) if self.expires else _NEVER

    def expired(self, now: datetime | None = None) -> bool:
        """The key's expiry has passed."""
        return self.expires is not None and (now or datetime.now(UTC)) >= _parse_time(self.expires, self.name)


def _parse_time(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise EndpointSecurityError(
            f"Expiry {text!r} of API key {name!r} is not an ISO-8601 time (e.g. 2026-12-31T00:00:00Z)."
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise EndpointSecurityError(
            f"API key name {name!r} is not valid: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit."
        )


def parse_keys(text: str, origin: str) -> list[tuple[str, str, str | None]]:
    """``(name, key, expires)`` from a key file or Secret: ``name key [expires]`` lines or JSON.

    JSON is an object ``{name: key}`` or ``{name: {"key": ..., "expires": ...}}``. Blank
    lines and ``#`` comments are skipped.

    Raises:
        EndpointSecurityError: A malformed line, a bad name, a duplicate name, or a key
            shorter than 22 characters (under 128 bits).

    Example:
        ```python
        assert parse_keys("svc-a " + "k" * 30, "test")[0][0] == "svc-a"
        ```
    """
    entries: list[tuple[str, str, str | None]] = []
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except ValueError as exc:
            raise EndpointSecurityError(f"API keys in {origin} are not valid JSON: {exc}") from exc
        for name, value in doc.items():
            if isinstance(value, dict):
                entries.append((str(name), str(value.get("key", "")), value.get("expires")))
            else:
                entries.append((str(name), str(value), None))
    else:
        for number, line in enumerate(text.splitlines(), 1):
            parts = line.split("#", 1)[0].split()
            if not parts:
                continue
            if len(parts) not in (2, 3):
                raise EndpointSecurityError(
                    f"Line {number} of the API keys in {origin} has {len(parts)} fields; "
                    "expected 'name key [expires]'."
                )
            entries.append((parts[0], parts[1], parts[2] if len(parts) == 3 else None))
    seen: set[str] = set()
    for name, key, expires in entries:
        _check_name(name)
        if name in seen:
            raise EndpointSecurityError(f"API key name {name!r} appears twice in {origin}.")
        seen.add(name)
        if len(key) < MIN_KEY_CHARS:
            raise EndpointSecurityError(
                f"API key {name!r} in {origin} has {len(key)} characters; keys need at least "
                f"{MIN_KEY_CHARS} random URL-safe characters (128 bits); "
                "make one with mlops_tasks.deploy.apikeys.new_key()."
            )
        if expires:
            _parse_time(expires, name)
    return entries


class KeyStore:
    """The key files of one endpoint folder, and the live router they feed.

    Args:
        folder: The endpoint's state folder.
        command: Sends one runtime-API command to the running router (None: not running).
        emit: Receives ``(event, payload)`` for issued and revoked keys.

    Example:
        ```python
        store = KeyStore(endpoint_dir("churn"))
        key = store.issue("svc-a", expires="2027-01-01T00:00:00Z")
        ```
    """

    def __init__(
        self,
        folder: Path,
        command: Callable[[str], str] | None = None,
        emit: Emit | None = None,
        endpoint: str = "",
    ) -> None:
        self.folder = folder
        self.command = command
        self.emit = emit
        self.endpoint = endpoint or folder.name

    @property
    def records_path(self) -> Path:
        """``apikeys.json``."""
        return self.folder / "apikeys.json"

    @property
    def map_path(self) -> Path:
        """``apikeys.map`` (the file HAProxy reads)."""
        return self.folder / "apikeys.map"

    @property
    def revoked_path(self) -> Path:
        """``apikeys-revoked.json``: hashes of revoked keys, so no key source brings one back."""
        return self.folder / "apikeys-revoked.json"

    def revoked(self) -> dict[str, dict[str, str]]:
        """Revoked keys by SHA-256: ``{"name": ..., "time": ..., "reason": ...}``."""
        try:
            doc: dict[str, dict[str, str]] = json.loads(self.revoked_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise EndpointSecurityError(
                f"Revoked-key list {self.revoked_path} cannot be read: {exc}"
            ) from exc
        return doc

    @property
    def internal_key_path(self) -> Path:
        """``internal.key``."""
        return self.folder / "internal.key"

    def records(self) -> dict[str, ApiKeyRecord]:
        """The keys the endpoint holds, by name."""
        try:
            doc = json.loads(self.records_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise EndpointSecurityError(f"API key records {self.records_path} cannot be read: {exc}") from exc
        return {d["name"]: ApiKeyRecord(**d) for d in doc}

    def internal_key(self) -> str:
        """The tooling's own key (made on first use)."""
        try:
            return self.internal_key_path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            key = new_key()
            write_private(self.internal_key_path, key + "\n")
            return key

    def map_value(self, record: ApiKeyRecord, default_limit: int) -> str:
        """The map value of a key: ``name|expires epoch|rate limit`` (0: no limit)."""
        limit = record.rate_limit if record.rate_limit is not None else default_limit
        if record.source == "internal":
            limit = 0
        return f"{record.name}|{record.expires_epoch()}|{limit}"

    def _write(self, records: dict[str, ApiKeyRecord], default_limit: int) -> None:
        ordered = sorted(records.values(), key=lambda r: r.name)
        write_private(self.records_path, json.dumps([r.model_dump() for r in ordered], indent=1) + "\n")
        lines = [f"{r.sha256} {self.map_value(r, default_limit)}" for r in ordered]
        write_private(self.map_path, "".join(line + "\n" for line in lines))

    def sync(self, security: EndpointSecurity) -> dict[str, ApiKeyRecord]:
        """Read the key sources (file, Secret block), keep issued keys, write the files.

        Called while configuring the endpoint: every source is read and checked before any
        file changes, so a missing file or Secret block changes nothing. Keys that left
        their source are dropped (their requests get 401 after the next start or sync).

        Raises:
            EndpointSecurityError: A source is missing, unreadable or malformed.
            SecretBlockNotFoundError: The Secret block does not exist.
        """
        fresh: list[tuple[str, str, str | None, str]] = []
        if security.api_keys_file:
            text = read_private_file(security.api_keys_file, "API keys")
            fresh += [(*e, "file") for e in parse_keys(text, f"file {security.api_keys_file}")]
        if security.api_keys_secret:
            text = read_secret(security.api_keys_secret, "API keys")
            fresh += [(*e, "secret") for e in parse_keys(text, f"Secret block {security.api_keys_secret!r}")]
        current = self.records()
        revoked = self.revoked()
        kept = {n: r for n, r in current.items() if r.source == "issued"}
        for name, key, expires, source in fresh:
            if name in kept:
                raise EndpointSecurityError(
                    f"API key name {name!r} from the {source} is also an issued key; rename one of them."
                )
            digest = hash_key(key)
            if digest in revoked:  # a revocation outlives the line left in the source
                logger.warning(
                    "Endpoint %s: API key %r in the %s was revoked (%s, %s) and stays revoked; "
                    "remove it from the %s or give that caller a new key.",
                    self.endpoint,
                    name,
                    source,
                    revoked[digest].get("reason", "revoked"),
                    revoked[digest].get("time", "?"),
                    source,
                )
                continue
            old = current.get(name)
            created = old.created if old is not None and old.sha256 == digest else now_iso()
            kept[name] = ApiKeyRecord(
                name=name, sha256=digest, created=created, expires=expires, source=source
            )
        kept[INTERNAL_KEY_NAME] = ApiKeyRecord(
            name=INTERNAL_KEY_NAME, sha256=hash_key(self.internal_key()), source="internal"
        )
        self._write(kept, security.rate_limit)
        return kept

    def issue(
        self,
        security: EndpointSecurity,
        name: str,
        expires: str | None = None,
        rate_limit: int | None = None,
        actor: str | None = None,
    ) -> str:
        """Make a new key named ``name``; returns it (the only time it is seen).

        The files are written first, then the running router learns the hash (``add
        map``), so the key works at once and after a reload.

        Raises:
            EndpointSecurityError: A bad name, a name in use, or an expiry in the past.
        """
        _check_name(name)
        records = self.records()
        if name in records:
            raise EndpointSecurityError(
                f"API key {name!r} already exists on endpoint {self.endpoint!r}; "
                "revoke it first or pick another name."
            )
        record = ApiKeyRecord(
            name=name, sha256="", expires=expires, rate_limit=rate_limit, actor=actor or whoami()
        )
        if record.expired():
            raise EndpointSecurityError(f"Expiry {expires} of API key {name!r} is in the past.")
        key = new_key()
        record.sha256 = hash_key(key)
        records[name] = record
        self._write(records, security.rate_limit)
        self._runtime(
            f"add map {self.map_path} {record.sha256} {self.map_value(record, security.rate_limit)}"
        )
        self._emit(ISSUED, record, "issued")
        return key

    def revoke(
        self, security: EndpointSecurity, name: str, actor: str | None = None, reason: str = "revoked"
    ) -> None:
        """Stop key ``name`` from working: out of the files, then out of the running router.

        The key's hash is remembered (``apikeys-revoked.json``), so a key file or Secret
        that still lists it does not bring it back at the next deployment.

        Raises:
            EndpointSecurityError: No key has that name, or it is the tooling's own key.
        """
        records = self.records()
        record = records.pop(name, None)
        if record is None:
            raise EndpointSecurityError(
                f"Endpoint {self.endpoint!r} has no API key {name!r}; known: {sorted(records)}."
            )
        if record.source == "internal":
            raise EndpointSecurityError(
                f"{INTERNAL_KEY_NAME!r} is the deploy tooling's own key; it cannot be revoked."
            )
        revoked = self.revoked()
        revoked[record.sha256] = {"name": name, "time": now_iso(), "reason": reason}
        write_private(self.revoked_path, json.dumps(revoked, indent=1, sort_keys=True) + "\n")
        self._write(records, security.rate_limit)
        self._runtime(f"del map {self.map_path} {record.sha256}")
        self._emit(REVOKED, record, reason, actor)

    def expire(self, security: EndpointSecurity) -> list[str]:
        """Remove keys whose expiry passed (the router already refuses them); their names."""
        gone = [r.name for r in self.records().values() if r.expired()]
        for name in gone:
            self.revoke(security, name, actor="expiry", reason="expired")
        return gone

    def _runtime(self, cmd: str) -> None:
        if self.command is None:
            return
        try:
            answer = self.command(cmd).strip()
        except RouterError as exc:
            logger.warning("router not told (%s); the files hold the change for its next start", exc)
            return
        if answer and "not found" not in answer.lower() and "done" not in answer.lower():
            logger.warning("router answered %r to a key change", answer[:200])

    def _emit(self, event: str, record: ApiKeyRecord, reason: str, actor: str | None = None) -> None:
        payload = {
            "endpoint": self.endpoint,
            "name": record.name,
            "time": now_iso(),
            "actor": actor or record.actor,
            "expires": record.expires,
            "reason": reason,
        }
        logger.info("%s: %s", event, payload)
        if self.emit is not None:
            self.emit(event, payload)
