"""SQL storage: reads on pooled connections, every write through the group-commit writer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Row, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Select

from csms.domain.grid import GridConfig
from csms.domain.grid_setup import GridSetup
from csms.domain.metering import MeterSample, SampledValue
from csms.domain.stations import (
    ConnectorState,
    ConnectorStatus,
    RegistrationStatus,
    Station,
    StationId,
    StationInfo,
)
from csms.domain.tokens import AuthorizationStatus, IdTokenRecord
from csms.domain.transactions import Transaction, TransactionState
from csms.errors import StorageError, UnstorableValue
from csms.storage import grid, smart_charging
from csms.storage.portable import upsert_insert
from csms.storage.smart_charging import SessionSettings
from csms.storage.tables import (
    connectors,
    id_tokens,
    meter_values,
    reservations,
    station_events,
    station_variables,
    stations,
    transactions,
)
from csms.storage.writer import DATABASE_ERRORS, GroupCommitWriter, Write, WriterClosed

__all__ = ["SqlStorage", "VariableRow"]

# Statements are module constants so the writer can merge the same statement from many messages into one
# executemany (it compares statement identity).
_TOUCH_STATION = update(stations).where(stations.c.id == bindparam("b_id")).values(last_seen_at=bindparam("b_seen"))
_UPSERT_STATION = upsert_insert(stations)
_UPSERT_STATION = _UPSERT_STATION.on_conflict_do_update(
    index_elements=[stations.c.id],
    set_={
        name: _UPSERT_STATION.excluded[name]
        for name in (
            "protocol",
            "vendor",
            "model",
            "serial_number",
            "firmware_version",
            "boot_reason",
            "last_boot_at",
            "last_seen_at",
        )
    },
)
_UPSERT_CONNECTOR = upsert_insert(connectors)
_UPSERT_CONNECTOR = _UPSERT_CONNECTOR.on_conflict_do_update(
    index_elements=[connectors.c.station_id, connectors.c.evse_id, connectors.c.connector_id],
    set_={
        name: _UPSERT_CONNECTOR.excluded[name]
        for name in ("status", "error_code", "info", "vendor_error_code", "status_at")
    },
    # A status replayed late from an offline queue must not overwrite a newer one.
    where=_UPSERT_CONNECTOR.excluded.status_at >= connectors.c.status_at,
)
_INSERT_TRANSACTION = insert(transactions)
_UPDATE_TRANSACTION_PROGRESS = (
    update(transactions)
    .where(transactions.c.id == bindparam("b_id"))
    .values(
        last_seq_no=bindparam("b_seq"),
        seq_nos=bindparam("b_seen"),
        seq_latest_at=bindparam("b_latest"),
        started_seq_no=bindparam("b_started"),
        seq_no_gaps=bindparam("b_gaps"),
        charging_state=bindparam("b_state"),
        charging_state_at=bindparam("b_state_at"),
    )
)
_UPDATE_TRANSACTION_TOKEN = (
    update(transactions)
    .where(transactions.c.id == bindparam("b_id"))
    .values(id_token=bindparam("b_token"), auth_status=bindparam("b_status"))
)
_UPDATE_TRANSACTION_START = (
    update(transactions)
    .where(transactions.c.id == bindparam("b_id"))
    .values(
        started_at=bindparam("b_at"), meter_start_wh=func.coalesce(bindparam("b_meter"), transactions.c.meter_start_wh)
    )
)
_STOP_TRANSACTION = (
    update(transactions)
    .where(transactions.c.id == bindparam("b_id"))
    .values(
        state=TransactionState.ENDED.value,
        stopped_at=bindparam("b_stopped_at"),
        meter_stop_wh=bindparam("b_meter_stop"),
        stop_reason=bindparam("b_reason"),
        stop_id_token=bindparam("b_token"),
        last_seq_no=bindparam("b_seq"),
    )
)
# A reading outside a transaction that is stored already (a resend) is skipped: see ux_meter_values_outside_tx.
_INSERT_METER_VALUE = upsert_insert(meter_values).on_conflict_do_nothing()
_INSERT_EVENT = insert(station_events)
_UPSERT_VARIABLE = upsert_insert(station_variables)
_UPSERT_VARIABLE = _UPSERT_VARIABLE.on_conflict_do_update(
    index_elements=[
        station_variables.c[name]
        for name in (
            "station_id",
            "component",
            "component_instance",
            "evse_id",
            "connector_id",
            "variable",
            "variable_instance",
            "attribute_type",
        )
    ],
    set_={name: _UPSERT_VARIABLE.excluded[name] for name in ("value", "mutability", "updated_at")},
)
_UPSERT_RESERVATION = upsert_insert(reservations)
_UPSERT_RESERVATION = _UPSERT_RESERVATION.on_conflict_do_update(
    index_elements=[reservations.c.id],
    set_={
        name: _UPSERT_RESERVATION.excluded[name]
        for name in ("station_id", "evse_id", "id_token", "expiry", "status", "updated_at")
    },
)
_SET_RESERVATION_STATUS = (
    update(reservations)
    .where(reservations.c.id == bindparam("b_id"))
    .values(status=bindparam("b_status"), updated_at=bindparam("b_at"))
)
_SET_STATION_FIELD = {
    name: update(stations).where(stations.c.id == bindparam("b_id")).values({name: bindparam("b_value")})
    for name in ("firmware_status", "diagnostics_status", "registration")
}
_UPSERT_TOKEN = upsert_insert(id_tokens)
_UPSERT_TOKEN = _UPSERT_TOKEN.on_conflict_do_update(
    index_elements=[id_tokens.c.token],
    set_={
        name: _UPSERT_TOKEN.excluded[name]
        for name in ("token_type", "status", "expiry", "parent_id", "group_id", "owner")
    },
)
_DELETE_TOKEN = delete(id_tokens).where(id_tokens.c.token == bindparam("b_token"))


VariableRow = dict[str, Any]
_T = TypeVar("_T")


def storage_failure(what: str, exc: BaseException) -> StorageError:
    """The error a failed read or write raises: :class:`UnstorableValue` when the database refused a value itself
    (SQLSTATE class 22, e.g. PostgreSQL and a NUL character; psycopg refuses NUL before sending, as a DataError)."""
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if isinstance(exc, DataError) or (isinstance(sqlstate, str) and sqlstate.startswith("22")):
        return UnstorableValue(f"{what} refused a value: {exc}")
    return StorageError(f"{what} failed: {exc}")


class SqlStorage:
    """The database seen by the service layer. Write methods return once the change is committed."""

    def __init__(self, engine: AsyncEngine, writer: GroupCommitWriter) -> None:
        self._engine = engine
        self._writer = writer

    # -- reads -------------------------------------------------------------------------------------------

    async def _one(self, query: Select[Any]) -> Row[Any] | None:
        try:
            async with self._engine.connect() as conn:
                row: Row[Any] | None = (await conn.execute(query)).first()
                return row
        except SQLAlchemyError as exc:
            raise storage_failure("read", exc) from exc

    async def _all(self, query: Select[Any]) -> Sequence[Row[Any]]:
        try:
            async with self._engine.connect() as conn:
                rows: Sequence[Row[Any]] = (await conn.execute(query)).all()
                return rows
        except SQLAlchemyError as exc:
            raise storage_failure("read", exc) from exc

    async def read(self, reader: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """Run ``reader`` (an area's read function, e.g. in ``storage/bookings.py``) on a pooled connection."""
        try:
            async with self._engine.connect() as conn:
                return await reader(conn)
        except SQLAlchemyError as exc:
            raise storage_failure("read", exc) from exc

    async def get_station(self, station_id: str) -> Station | None:
        row = await self._one(select(stations).where(stations.c.id == station_id))
        return _station(row) if row else None

    async def registrations(self) -> dict[str, RegistrationStatus]:
        rows = await self._all(select(stations.c.id, stations.c.registration))
        return {row.id: RegistrationStatus(row.registration) for row in rows}

    async def active_transactions(self) -> list[Transaction]:
        query = select(transactions).where(transactions.c.state == TransactionState.ACTIVE.value)
        return [_transaction(row) for row in await self._all(query)]

    async def list_stations(self, limit: int, offset: int, station_ids: Collection[str] | None = None) -> list[Station]:
        query = select(stations).order_by(stations.c.id).limit(limit).offset(offset)
        if station_ids is not None:
            query = query.where(stations.c.id.in_(sorted(station_ids)))
        return [_station(row) for row in await self._all(query)]

    async def list_connectors(self, station_id: str) -> list[ConnectorState]:
        query = (
            select(connectors)
            .where(connectors.c.station_id == station_id)
            .order_by(connectors.c.evse_id, connectors.c.connector_id)
        )
        return [_connector(row) for row in await self._all(query)]

    async def get_token(self, token: str) -> IdTokenRecord | None:
        row = await self._one(select(id_tokens).where(id_tokens.c.token == token))
        return _token(row) if row else None

    async def list_tokens(self, limit: int, offset: int, owner: str | None = None) -> list[IdTokenRecord]:
        query = select(id_tokens).order_by(id_tokens.c.token).limit(limit).offset(offset)
        if owner is not None:
            query = query.where(id_tokens.c.owner == owner)
        return [_token(row) for row in await self._all(query)]

    async def max_transaction_id(self) -> int:
        row = await self._one(select(func.max(transactions.c.id)))
        return int(row[0]) if row and row[0] is not None else 0

    async def get_transaction(self, transaction_id: int) -> Transaction | None:
        row = await self._one(select(transactions).where(transactions.c.id == transaction_id))
        return _transaction(row) if row else None

    async def find_transaction(self, station_id: str, charger_tx_id: str) -> Transaction | None:
        query = select(transactions).where(
            transactions.c.station_id == station_id, transactions.c.charger_tx_id == charger_tx_id
        )
        row = await self._one(query)
        return _transaction(row) if row else None

    async def list_transactions(
        self,
        limit: int,
        offset: int,
        station_id: str | None = None,
        active: bool | None = None,
        station_ids: Collection[str] | None = None,
        owner: str | None = None,
    ) -> list[Transaction]:
        """Newest first; ``station_ids`` limits to those stations, ``owner`` to sessions of the account's tokens."""
        query = select(transactions).order_by(transactions.c.id.desc()).limit(limit).offset(offset)
        if station_id is not None:
            query = query.where(transactions.c.station_id == station_id)
        if station_ids is not None:
            query = query.where(transactions.c.station_id.in_(sorted(station_ids)))
        if owner is not None:
            owned = select(id_tokens.c.token).where(id_tokens.c.owner == owner)
            query = query.where(transactions.c.id_token.in_(owned.scalar_subquery()))
        if active is not None:
            state = TransactionState.ACTIVE if active else TransactionState.ENDED
            query = query.where(transactions.c.state == state.value)
        return [_transaction(row) for row in await self._all(query)]

    async def last_readings_of_active_transactions(self) -> list[tuple[str, int, MeterSample]]:
        """Per transaction in progress, the readings stored at its newest timestamp: (station, evse, sample).

        After a crash these are what the last answered-or-not message carried; a charger that got no reply
        resends exactly that message, and the hot state must recognise it (see ChargerService.load).
        """
        active = select(transactions.c.id).where(transactions.c.state == TransactionState.ACTIVE.value)
        newest = (
            select(meter_values.c.transaction_id, func.max(meter_values.c.timestamp).label("newest"))
            .where(meter_values.c.transaction_id.in_(active))
            .group_by(meter_values.c.transaction_id)
            .subquery()
        )
        query = (
            select(meter_values)
            .join(
                newest,
                and_(
                    meter_values.c.transaction_id == newest.c.transaction_id,
                    meter_values.c.timestamp == newest.c.newest,
                ),
            )
            .order_by(meter_values.c.id)
        )
        found: dict[tuple[str, int, datetime], list[SampledValue]] = {}
        for row in await self._all(query):
            found.setdefault((row.station_id, row.evse_id, row.timestamp), []).append(_sampled_value(row))
        return [(station, evse, MeterSample(at, tuple(values))) for (station, evse, at), values in found.items()]

    async def list_meter_values(self, transaction_id: int, limit: int, offset: int) -> list[dict[str, Any]]:
        query = (
            select(meter_values)
            .where(meter_values.c.transaction_id == transaction_id)
            .order_by(meter_values.c.timestamp, meter_values.c.id)
            .limit(limit)
            .offset(offset)
        )
        return [dict(row._mapping) for row in await self._all(query)]

    async def list_events(self, station_id: str, action: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        query = (
            select(station_events)
            .where(station_events.c.station_id == station_id)
            .order_by(station_events.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        if action is not None:
            query = query.where(station_events.c.action == action)
        return [dict(row._mapping) for row in await self._all(query)]

    async def list_variables(self, station_id: str) -> list[dict[str, Any]]:
        query = select(station_variables).where(station_variables.c.station_id == station_id)
        return [dict(row._mapping) for row in await self._all(query)]

    async def get_reservation(self, reservation_id: int) -> dict[str, Any] | None:
        row = await self._one(select(reservations).where(reservations.c.id == reservation_id))
        return dict(row._mapping) if row else None

    async def grid_setup(self) -> GridSetup:
        """The whole grid setup (nodes, limit windows, wiring, last unmanaged loads); write builders in grid.py."""
        try:
            async with self._engine.connect() as conn:
                return await grid.read_setup(conn)
        except SQLAlchemyError as exc:
            raise storage_failure("read", exc) from exc

    async def session_settings(self, transaction_ids: Iterable[int]) -> dict[int, SessionSettings]:
        """Needs and priority set for these transactions (write builder in smart_charging.py)."""
        try:
            async with self._engine.connect() as conn:
                return await smart_charging.read_session_settings(conn, transaction_ids)
        except SQLAlchemyError as exc:
            raise storage_failure("read", exc) from exc

    async def grid_config(self, now: datetime) -> GridConfig:
        """The stored grid as the scheduler models it, recurring limit windows expanded from ``now``."""
        return (await self.grid_setup()).config(now)

    # -- writes ------------------------------------------------------------------------------------------

    async def write(self, writes: Sequence[Write]) -> None:
        try:
            await self._writer.write(writes)
        except (*DATABASE_ERRORS, WriterClosed) as exc:
            raise storage_failure("write", exc) from exc


# -- write builders: pure functions from domain values to writes --------------------------------------------


def touch_station(station_id: str, seen_at: datetime) -> Write:
    return Write(_TOUCH_STATION, {"b_id": station_id, "b_seen": seen_at})


def record_boot(
    station_id: str, protocol: str, info: StationInfo, registration: RegistrationStatus, at: datetime
) -> Write:
    return Write(
        _UPSERT_STATION,
        {
            "id": station_id,
            "registration": registration.value,
            "protocol": protocol,
            "vendor": info.vendor,
            "model": info.model,
            "serial_number": info.serial_number,
            "firmware_version": info.firmware_version,
            "boot_reason": info.boot_reason,
            "firmware_status": None,
            "diagnostics_status": None,
            "created_at": at,
            "last_boot_at": at,
            "last_seen_at": at,
        },
    )


def set_station_field(station_id: str, field: str, value: str) -> Write:
    return Write(_SET_STATION_FIELD[field], {"b_id": station_id, "b_value": value})


def record_connector(state: ConnectorState) -> Write:
    return Write(
        _UPSERT_CONNECTOR,
        {
            "station_id": state.station_id,
            "evse_id": state.evse_id,
            "connector_id": state.connector_id,
            "status": state.status.value,
            "error_code": state.error_code,
            "info": state.info,
            "vendor_error_code": state.vendor_error_code,
            "status_at": state.timestamp,
        },
    )


def insert_transaction(tx: Transaction, auth_status: str | None, offline: bool) -> Write:
    return Write(
        _INSERT_TRANSACTION,
        {
            "id": tx.id,
            "station_id": tx.station_id,
            "evse_id": tx.evse_id,
            "connector_id": tx.connector_id,
            "charger_tx_id": tx.charger_tx_id,
            "id_token": tx.id_token,
            "auth_status": auth_status,
            "state": tx.state.value,
            "started_at": tx.started_at,
            "meter_start_wh": tx.meter_start_wh,
            "stopped_at": tx.stopped_at,
            "meter_stop_wh": tx.meter_stop_wh,
            "stop_reason": tx.stop_reason,
            "stop_id_token": None,
            "reservation_id": tx.reservation_id,
            "last_seq_no": tx.last_seq_no,
            "seq_nos": tx.seq_nos,
            "started_seq_no": tx.started_seq_no,
            "seq_no_gaps": tx.seq_no_gaps,
            "seq_latest_at": tx.seq_latest_at,
            "charging_state": tx.charging_state,
            "charging_state_at": tx.charging_state_at,
            "offline": offline,
            "remote_start_id": None,
        },
    )


def transaction_progress(tx: Transaction) -> Write:
    """What 2.0.1 events of ``tx`` changed as it now stands: its sequence numbers (highest, seen, latest times,
    Started's, missing) and its charging state."""
    return Write(
        _UPDATE_TRANSACTION_PROGRESS,
        {
            "b_id": tx.id,
            "b_seq": tx.last_seq_no,
            "b_seen": tx.seq_nos,
            "b_latest": tx.seq_latest_at,
            "b_started": tx.started_seq_no,
            "b_gaps": tx.seq_no_gaps,
            "b_state": tx.charging_state,
            "b_state_at": tx.charging_state_at,
        },
    )


def transaction_started_at(transaction_id: int, started_at: datetime, meter_start_wh: float | None) -> Write:
    """An earlier start learnt late (2.0.1 Started after a later event); the meter start when it gave one."""
    return Write(_UPDATE_TRANSACTION_START, {"b_id": transaction_id, "b_at": started_at, "b_meter": meter_start_wh})


def transaction_token(transaction_id: int, token: str, auth_status: str | None) -> Write:
    """The token of a transaction that started without one (2.0.1: authorised after the cable was plugged in)."""
    return Write(_UPDATE_TRANSACTION_TOKEN, {"b_id": transaction_id, "b_token": token, "b_status": auth_status})


def stop_transaction(
    transaction_id: int,
    stopped_at: datetime,
    meter_stop_wh: float | None,
    reason: str | None,
    id_token: str | None,
    seq_no: int | None,
) -> Write:
    return Write(
        _STOP_TRANSACTION,
        {
            "b_id": transaction_id,
            "b_stopped_at": stopped_at,
            "b_meter_stop": meter_stop_wh,
            "b_reason": reason,
            "b_token": id_token,
            "b_seq": seq_no,
        },
    )


def meter_value_writes(
    station_id: str, evse_id: int, transaction_id: int | None, samples: Iterable[MeterSample]
) -> list[Write]:
    return [
        Write(
            _INSERT_METER_VALUE,
            {
                "station_id": station_id,
                "evse_id": evse_id,
                "transaction_id": transaction_id,
                "timestamp": sample.timestamp,
                "measurand": value.measurand,
                "phase": value.phase,
                "unit": value.unit,
                "context": value.context,
                "location": value.location,
                "value": value.value,
                "raw_value": value.raw_value,
            },
        )
        for sample in samples
        for value in sample.values
    ]


def record_event(station_id: str, action: str, payload: dict[str, Any], at: datetime) -> Write:
    return Write(_INSERT_EVENT, {"station_id": station_id, "action": action, "received_at": at, "payload": payload})


def record_variable(station_id: str, row: VariableRow, at: datetime) -> Write:
    params = {
        "station_id": station_id,
        "component": row["component"],
        "component_instance": row.get("component_instance") or "",
        "evse_id": row.get("evse_id") or 0,
        "connector_id": row.get("connector_id") or 0,
        "variable": row["variable"],
        "variable_instance": row.get("variable_instance") or "",
        "attribute_type": row.get("attribute_type") or "Actual",
        "value": row.get("value"),
        "mutability": row.get("mutability"),
        "updated_at": at,
    }
    return Write(_UPSERT_VARIABLE, params)


def record_reservation(
    reservation_id: int,
    station_id: str,
    evse_id: int | None,
    id_token: str,
    expiry: datetime,
    status: str,
    at: datetime,
) -> Write:
    return Write(
        _UPSERT_RESERVATION,
        {
            "id": reservation_id,
            "station_id": station_id,
            "evse_id": evse_id,
            "id_token": id_token,
            "expiry": expiry,
            "status": status,
            "updated_at": at,
        },
    )


def set_reservation_status(reservation_id: int, status: str, at: datetime) -> Write:
    return Write(_SET_RESERVATION_STATUS, {"b_id": reservation_id, "b_status": status, "b_at": at})


def upsert_token(record: IdTokenRecord, at: datetime) -> Write:
    return Write(
        _UPSERT_TOKEN,
        {
            "token": record.token,
            "token_type": record.token_type,
            "status": record.status.value,
            "expiry": record.expiry,
            "parent_id": record.parent_id,
            "group_id": record.group_id,
            "owner": record.owner,
            "created_at": at,
        },
    )


def delete_token(token: str) -> Write:
    return Write(_DELETE_TOKEN, {"b_token": token})


# -- row mappers --------------------------------------------------------------------------------------------


def _station(row: Row[Any]) -> Station:
    m = row._mapping
    info = StationInfo(m["vendor"], m["model"], m["serial_number"], m["firmware_version"], m["boot_reason"])
    return Station(
        StationId(m["id"]),
        RegistrationStatus(m["registration"]),
        m["protocol"],
        info,
        m["last_seen_at"],
        m["firmware_status"],
        m["diagnostics_status"],
    )


def _connector(row: Row[Any]) -> ConnectorState:
    m = row._mapping
    return ConnectorState(
        StationId(m["station_id"]),
        m["evse_id"],
        m["connector_id"],
        ConnectorStatus(m["status"]),
        m["error_code"],
        m["status_at"],
        m["info"],
        m["vendor_error_code"],
    )


def _token(row: Row[Any]) -> IdTokenRecord:
    m = row._mapping
    return IdTokenRecord(
        m["token"],
        AuthorizationStatus(m["status"]),
        m["token_type"],
        m["expiry"],
        m["parent_id"],
        m["group_id"],
        m["owner"],
    )


def _sampled_value(row: Row[Any]) -> SampledValue:
    return SampledValue(
        value=row.value,
        measurand=row.measurand,
        phase=row.phase,
        unit=row.unit,
        context=row.context,
        location=row.location,
        raw_value=row.raw_value,
    )


def _transaction(row: Row[Any]) -> Transaction:
    m = row._mapping
    return Transaction(
        id=m["id"],
        station_id=StationId(m["station_id"]),
        evse_id=m["evse_id"],
        connector_id=m["connector_id"],
        charger_tx_id=m["charger_tx_id"],
        id_token=m["id_token"],
        started_at=m["started_at"],
        meter_start_wh=m["meter_start_wh"],
        state=TransactionState(m["state"]),
        stopped_at=m["stopped_at"],
        meter_stop_wh=m["meter_stop_wh"],
        stop_reason=m["stop_reason"],
        reservation_id=m["reservation_id"],
        last_seq_no=m["last_seq_no"],
        seq_nos=m["seq_nos"],
        started_seq_no=m["started_seq_no"],
        seq_no_gaps=m["seq_no_gaps"],
        seq_latest_at=m["seq_latest_at"],
        charging_state=m["charging_state"],
        charging_state_at=m["charging_state_at"],
    )
