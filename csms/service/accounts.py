"""Accounts and API keys: who may call the HTTP API, with which role, for which sites.

Accounts and keys are few (people and apps, not chargers) and every API request needs them, so the service keeps
all of them in memory and writes changes through; a revoked key or a disabled account stops working with the
next request. A key's ``last_used_at`` is written at most once a minute per key so reads do not turn into writes.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from csms.domain.accounts import (
    Account,
    AccountId,
    ApiKey,
    Principal,
    Role,
    key_text,
    principal_of,
    secret_hash,
    split_key,
)
from csms.domain.ev_charging import ChargingNeeds
from csms.domain.grid import Priority
from csms.domain.metering import MeterSample
from csms.domain.stations import ConnectorState
from csms.domain.transactions import Transaction
from csms.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from csms.storage import accounts as stored
from csms.storage.sql import SqlStorage

__all__ = ["BOOTSTRAP_ACCOUNT", "AccountPriorities", "AccountService", "NewKey", "write_secret_file"]

log = structlog.get_logger(__name__)

BOOTSTRAP_ACCOUNT = AccountId("admin")
_TOUCH_EVERY = timedelta(minutes=1)
_RELOAD_SECONDS = 1.0
_UNKNOWN_KEY = "unknown, revoked or expired API key, or a disabled account"


class NewKey:
    """A key as created: the stored record and the full key text, shown once and never stored."""

    __slots__ = ("key", "text")

    def __init__(self, key: ApiKey, text: str) -> None:
        self.key = key
        self.text = text


class AccountService:
    def __init__(self, storage: SqlStorage, clock: Callable[[], datetime]) -> None:
        self._storage = storage
        self._clock = clock
        self._accounts: dict[str, Account] = {}
        self._keys: dict[str, ApiKey] = {}
        self._reloaded_at: float | None = None

    async def load(self) -> None:
        """Read every account and key into memory; call once before serving."""
        self._accounts = {a.id: a for a in await self._storage.read(stored.read_accounts)}
        self._keys = {k.id: k for k in await self._storage.read(stored.read_keys)}

    # -- authentication -------------------------------------------------------------------------------------

    async def authenticate(self, text: str) -> Principal:
        """The principal a presented key stands for; Unauthorized for anything not a live key of a live account."""
        parts = split_key(text)
        if parts is None:
            raise Unauthorized(_UNKNOWN_KEY)
        key = self._keys.get(parts[0]) or await self._reload_for(parts[0])
        if key is None:
            raise Unauthorized(_UNKNOWN_KEY)
        # Constant-time comparison of the hashes: the time taken says nothing about how much of the key matched.
        if not hmac.compare_digest(secret_hash(parts[1]), key.key_sha256):
            raise Unauthorized(_UNKNOWN_KEY)
        now = self._clock()
        account = self._accounts.get(key.account_id)
        if not key.usable_at(now) or account is None or account.disabled:
            raise Unauthorized(_UNKNOWN_KEY)
        if key.last_used_at is None or now - key.last_used_at >= _TOUCH_EVERY:
            self._keys[key.id] = replace(key, last_used_at=now)
            await self._storage.write([stored.touch_key(key.id, now)])
        return principal_of(account, key.id)

    async def _reload_for(self, key_id: str) -> ApiKey | None:
        """A key id we do not know may have been issued by ``csms keys create-admin`` in another process: read the
        accounts and keys again, at most once a second (unknown ids must not turn into a database read each)."""
        now = time.monotonic()  # not the service clock: tests may stop that one
        if self._reloaded_at is not None and now - self._reloaded_at < _RELOAD_SECONDS:
            return None
        self._reloaded_at = now
        await self.load()
        return self._keys.get(key_id)

    # -- accounts -------------------------------------------------------------------------------------------

    def accounts(self, role: Role | None = None) -> list[Account]:
        return [a for a in self._accounts.values() if role is None or a.role is role]

    def account(self, account_id: str) -> Account:
        account = self._accounts.get(account_id)
        if account is None:
            raise NotFound("account", account_id)
        return account

    def find(self, account_id: str) -> Account | None:
        return self._accounts.get(account_id)

    async def create_account(
        self,
        name: str,
        role: Role,
        *,
        account_id: str | None = None,
        email: str | None = None,
        site_ids: Collection[str] = (),
        priority: str = "standard",
        priority_reason: str | None = None,
        set_by: str | None = None,
        known_sites: Collection[str] | None = None,
    ) -> Account:
        """A new account; ``known_sites`` (when given) are the site ids an operator's sites must be among."""
        new_id = AccountId(account_id or str(uuid.uuid4()))
        if new_id in self._accounts:
            raise Conflict(f"account {new_id} already exists")
        account = Account(
            id=new_id,
            name=name,
            role=role,
            created_at=self._clock(),
            email=email,
            site_ids=frozenset(site_ids),
            priority=priority,
            priority_reason=priority_reason,
            priority_set_by=set_by if priority_reason is not None or priority != "standard" else None,
        )
        _check_sites(account, known_sites)
        await self._storage.write(stored.insert_account(account))
        self._accounts[account.id] = account
        log.info("account created", account_id=account.id, role=role.value)
        return account

    async def update_account(
        self, account_id: str, changes: dict[str, object], set_by: str, known_sites: Collection[str] | None = None
    ) -> Account:
        """Apply ``changes`` (name, email, role, site_ids, priority, priority_reason, disabled)."""
        account = self.account(account_id)
        fields: dict[str, Any] = dict(changes)
        if "site_ids" in fields:
            fields["site_ids"] = frozenset(fields["site_ids"])
        if "disabled" in fields:
            disabled = fields.pop("disabled")
            fields["disabled_at"] = (account.disabled_at or self._clock()) if disabled else None
        if "priority" in fields or "priority_reason" in fields:
            fields["priority_set_by"] = set_by
        updated = replace(account, **fields)
        _check_sites(updated, known_sites)
        if account.role is Role.ADMIN and not account.disabled and (updated.role is not Role.ADMIN or updated.disabled):
            if not any(a.role is Role.ADMIN and not a.disabled for a in self._accounts.values() if a.id != account.id):
                raise Conflict("this is the last enabled admin account: it cannot be disabled or lose its role")
        await self._storage.write(stored.update_account(updated))
        self._accounts[updated.id] = updated
        log.info("account updated", account_id=updated.id, changed=sorted(changes), by=set_by)
        return updated

    # -- keys -----------------------------------------------------------------------------------------------

    def keys_of(self, account_id: str) -> list[ApiKey]:
        self.account(account_id)
        return [k for k in self._keys.values() if k.account_id == account_id]

    def key(self, account_id: str, key_id: str) -> ApiKey:
        key = self._keys.get(key_id)
        if key is None or key.account_id != account_id:
            raise NotFound("API key", key_id)
        return key

    async def create_key(self, account_id: str, name: str, expires_at: datetime | None = None) -> NewKey:
        account = self.account(account_id)
        now = self._clock()
        if expires_at is not None and expires_at <= now:
            raise InvalidRequest(f"expires_at {expires_at.isoformat()} is not in the future")
        key_id = secrets.token_hex(6)
        while key_id in self._keys:  # 48 random bits: a clash is all but impossible, but cheap to rule out
            key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        key = ApiKey(key_id, account.id, name, secret_hash(secret), now, expires_at)
        await self._storage.write([stored.insert_key(key)])
        self._keys[key.id] = key
        log.info("API key created", account_id=account.id, key_id=key.id, expires_at=expires_at)
        return NewKey(key, key_text(key.id, secret))

    async def revoke_key(self, account_id: str, key_id: str) -> ApiKey:
        key = self.key(account_id, key_id)
        if key.revoked_at is not None:
            return key
        revoked = replace(key, revoked_at=self._clock())
        await self._storage.write([stored.revoke_key(key.id, revoked.revoked_at)])  # type: ignore[arg-type]
        self._keys[key.id] = revoked
        log.info("API key revoked", account_id=account_id, key_id=key_id)
        return revoked

    # -- first start ----------------------------------------------------------------------------------------

    def has_usable_admin_key(self) -> bool:
        now = self._clock()
        admins = {a.id for a in self._accounts.values() if a.role is Role.ADMIN and not a.disabled}
        return any(k.account_id in admins and k.usable_at(now) for k in self._keys.values())

    async def issue_admin_key(self, name: str) -> NewKey:
        """A new key for the bootstrap admin account (created, or re-enabled, as needed)."""
        account = self._accounts.get(BOOTSTRAP_ACCOUNT)
        if account is None:
            account = await self.create_account("Administrator", Role.ADMIN, account_id=BOOTSTRAP_ACCOUNT)
        elif account.role is not Role.ADMIN or account.disabled:
            account = await self.update_account(account.id, {"role": Role.ADMIN, "disabled": False}, "csms")
        return await self.create_key(account.id, name)

    async def bootstrap(self, key_file: Path) -> Path | None:
        """On a first start (no usable admin key), create one and write it to ``key_file`` (mode 0600).

        Returns the file written, or None when an admin key already exists. The key is written to a file, not
        logged: logs are shipped and kept where a secret does not belong.
        """
        if self.has_usable_admin_key():
            return None
        new = await self.issue_admin_key("bootstrap")
        write_secret_file(key_file, new.text)
        log.warning("no admin API key existed: created one", key_id=new.key.id, file=str(key_file))
        return key_file


def write_secret_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (created with that mode: never briefly wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text + "\n")
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT


def _check_sites(account: Account, known_sites: Collection[str] | None) -> None:
    if account.role is not Role.OPERATOR and account.site_ids:
        raise InvalidRequest(f"site_ids: only operator accounts manage sites, not {account.role.value} accounts")
    if known_sites is not None:
        unknown = sorted(set(account.site_ids) - set(known_sites))
        if unknown:
            raise InvalidRequest(f"site_ids: no site {', '.join(unknown)} (a site is a grid node without a parent)")


class AccountPriorities:
    """A session started with a driver's token charges at the priority of the driver's account (fleet, urgent),
    with the account's reason and who set it, unless the session already has one (restored after a restart, or set
    through the API). Observes chargers after smart charging and before bookings, so a booking's priority wins."""

    def __init__(
        self,
        accounts: AccountService,
        token_owner: Callable[[str], str | None],
        set_priority: Callable[[Transaction, Priority, str, str | None], None],
    ) -> None:
        self._accounts = accounts
        self._token_owner = token_owner
        self._set_priority = set_priority

    def transaction_started(self, transaction: Transaction, now: datetime) -> None:
        owner = self._token_owner(transaction.id_token) if transaction.id_token else None
        account = self._accounts.find(owner) if owner else None
        if account is None or account.priority == "standard" or account.priority.upper() not in Priority.__members__:
            return
        reason = account.priority_reason or f"priority of account {account.id}"
        self._set_priority(transaction, Priority[account.priority.upper()], reason, account.priority_set_by)

    def transaction_ended(self, transaction: Transaction, now: datetime) -> None:
        pass

    def metered(self, station_id: str, evse_id: int, samples: tuple[MeterSample, ...], now: datetime) -> None:
        pass

    def connector_changed(self, state: ConnectorState, now: datetime) -> None:
        pass

    def station_booted(self, station_id: str, now: datetime) -> None:
        pass

    def charging_needs(self, station_id: str, evse_id: int, needs: ChargingNeeds, now: datetime) -> bool:
        return False

    def charging_state(self, transaction: Transaction, state: str, now: datetime) -> None:
        pass
