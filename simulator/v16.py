"""OCPP 1.6J adapter: the messages a 1.6 station sends, built from version-neutral core events.

1.6 transaction ids are assigned by the CSMS in the StartTransaction answer. Sessions therefore get
a local placeholder key; queued MeterValues/StopTransaction are built at send time (see `Outbox`)
and use `Session.csms_id`, which the StartTransaction answer fills in before they are sent.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from ocpp.v16 import call

from simulator.clock import format_ts
from simulator.config16 import ConfigStore16
from simulator.meter import sample_to_v16
from simulator.model import ConnectorState, MeterSample, Protocol, Settings, StopReason, TxTrigger
from simulator.outbox import OutboxItem
from simulator.protocol import ProtocolHandler
from simulator.state import CoreEvent, ReservationEnded, Session, StatusChanged, TxEnded, TxStarted, TxUpdated

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from simulator.station import SimStation

__all__ = ["V16Handler"]


def _measurands(value: str | None) -> set[str]:
    return {m.strip() for m in (value or "").split(",") if m.strip()}


def filter_sample(meter_value: dict[str, Any], measurands: set[str]) -> dict[str, Any]:
    """Keep only the configured measurands (MeterValuesSampledData / StopTxnSampledData)."""
    if not measurands:
        return meter_value
    kept = [sv for sv in meter_value["sampled_value"] if sv["measurand"] in measurands]
    return {"timestamp": meter_value["timestamp"], "sampled_value": kept}


class V16Handler(ProtocolHandler):
    protocol = Protocol.V16

    def __init__(self, station: SimStation, connectors: int) -> None:
        super().__init__(station)
        self.config = ConfigStore16(connectors, station.config_overrides)
        self.diagnostics_status = "Idle"
        self.installed_certificates: dict[str, str] = {}
        self._keys = itertools.count(1)

    def settings(self) -> Settings:
        return self.config.settings()

    def new_tx_key(self) -> str:
        return f"local-{next(self._keys)}"

    def heartbeat_interval_set(self, seconds: int) -> None:
        self.config.change("HeartbeatInterval", str(seconds))

    def create_charge_point(self, ws: ClientConnection) -> Any:
        from simulator.v16_cp import ChargePoint16

        return ChargePoint16(self, ws)

    # -- direct requests -------------------------------------------------------------------------

    def boot_request(self, reason: str) -> Any:
        sim = self.station
        return call.BootNotification(
            charge_point_model=sim.model,
            charge_point_vendor=sim.vendor,
            charge_point_serial_number=sim.identity[:25],
            firmware_version=sim.firmware_version,
            meter_type="SimMeter",
        )

    def heartbeat_request(self) -> Any:
        return call.Heartbeat()

    def authorize_request(self, id_tag: str) -> Any:
        return call.Authorize(id_tag=id_tag)

    def authorize_status(self, result: Any) -> str:
        return str(result.id_tag_info["status"])

    # -- queued messages -------------------------------------------------------------------------

    def status_item(self, connector_id: int, state: ConnectorState) -> OutboxItem | None:
        error = "OtherError" if state is ConnectorState.FAULTED else "NoError"
        timestamp = format_ts(self.station.now())
        return OutboxItem(
            "StatusNotification",
            lambda: call.StatusNotification(
                connector_id=connector_id, error_code=error, status=state.value, timestamp=timestamp
            ),
        )

    def _tx_id(self, session: Session) -> int:
        if session.csms_id is None:
            raise LookupError(f"no CSMS transaction id for {session.key}")
        return session.csms_id

    def _sampled(self, sample: MeterSample, key: str) -> dict[str, Any]:
        return filter_sample(sample_to_v16(sample), _measurands(self.config.get(key)))

    def event_items(self, event: CoreEvent) -> list[OutboxItem]:
        if isinstance(event, StatusChanged):
            item = self.status_item(event.connector_id, event.state)
            return [item] if item else []
        if isinstance(event, TxStarted):
            return [self._start_item(event)]
        if isinstance(event, TxUpdated):
            if event.trigger is TxTrigger.CHARGING_STATE:
                return []  # 1.6 reports this through StatusNotification
            return [self._tx_meter_item(event.session, event.samples)]
        if isinstance(event, TxEnded):
            return [self._stop_item(event)]
        if isinstance(event, ReservationEnded):
            return []  # 1.6 has no reservation status message; the connector status says it
        return []

    def _start_item(self, event: TxStarted) -> OutboxItem:
        session = event.session

        def on_result(result: Any) -> None:
            session.csms_id = int(result.transaction_id)
            status = (result.id_tag_info or {}).get("status", "Accepted")
            if status != "Accepted" and self.config.get_bool("StopTransactionOnInvalidId"):
                self._deauthorize(session)

        return OutboxItem(
            "StartTransaction",
            lambda: call.StartTransaction(
                connector_id=session.connector_id,
                id_tag=session.id_tag,
                meter_start=int(round(session.meter_start_wh)),
                timestamp=format_ts(session.started_at),
                reservation_id=session.reservation_id,
            ),
            persistent=True,
            on_result=on_result,
        )

    def _deauthorize(self, session: Session) -> None:
        core = self.station.core
        running = core.connectors[session.connector_id].session
        if running is session:
            core.end_transaction(
                session.connector_id, self.station.now(), StopReason.DEAUTHORIZED, TxTrigger.DEAUTHORIZED
            )

    def _tx_meter_item(self, session: Session, samples: tuple[MeterSample, ...]) -> OutboxItem:
        values = [self._sampled(s, "MeterValuesSampledData") for s in samples]
        return OutboxItem(
            "MeterValues",
            lambda: call.MeterValues(
                connector_id=session.connector_id, transaction_id=self._tx_id(session), meter_value=values
            ),
            persistent=True,
        )

    def _stop_item(self, event: TxEnded) -> OutboxItem:
        session = event.session
        data = [self._sampled(s, "StopTxnSampledData") for s in (event.begin_sample, event.sample)]
        return OutboxItem(
            "StopTransaction",
            lambda: call.StopTransaction(
                meter_stop=int(round(event.sample.energy_wh)),
                timestamp=format_ts(event.sample.timestamp),
                transaction_id=self._tx_id(session),
                reason=event.reason.value,
                id_tag=session.id_tag,
                transaction_data=data,
            ),
            persistent=True,
        )

    def meter_values_item(self, connector_id: int, sample: MeterSample) -> OutboxItem:
        value = self._sampled(sample, "MeterValuesSampledData")
        return OutboxItem("MeterValues", lambda: call.MeterValues(connector_id=connector_id, meter_value=[value]))

    def firmware_status_item(self, status: str, request_id: int | None) -> OutboxItem:
        if request_id is not None:  # security extension: SignedUpdateFirmware
            return OutboxItem(
                "SignedFirmwareStatusNotification",
                lambda: call.SignedFirmwareStatusNotification(status=status, request_id=request_id),
            )
        # Plain 1.6 FirmwareStatus has no signature states; report those as Downloaded.
        plain = status if status not in ("SignatureVerified", "InstallScheduled", "DownloadScheduled") else None
        return OutboxItem(
            "FirmwareStatusNotification", lambda: call.FirmwareStatusNotification(status=plain or "Downloaded")
        )

    def log_status_item(self, status: str, request_id: int | None) -> OutboxItem:
        return OutboxItem(
            "LogStatusNotification",
            lambda: call.LogStatusNotification(status=status, request_id=request_id or 0),
        )

    def diagnostics_status_item(self, status: str) -> OutboxItem:
        return OutboxItem("DiagnosticsStatusNotification", lambda: call.DiagnosticsStatusNotification(status=status))

    def security_event_item(self, event_type: str, tech_info: str | None = None) -> OutboxItem:
        timestamp = format_ts(self.station.now())
        return OutboxItem(
            "SecurityEventNotification",
            lambda: call.SecurityEventNotification(type=event_type, timestamp=timestamp, tech_info=tech_info),
        )
