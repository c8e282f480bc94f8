"""OCPP 2.0.1 adapter: messages a 2.0.1 station sends, built from version-neutral core events.

Transactions use station-generated string ids and TransactionEvent(Started/Updated/Ended) with a
per-transaction seqNo. Events created while disconnected carry `offline: true` and their original
timestamps (the flag is read from the queue item when it is finally sent).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ocpp.v201 import call

from simulator.clock import format_ts
from simulator.device_model import DeviceModel
from simulator.meter import sample_to_v201
from simulator.model import ConnectorState, MeterSample, Protocol, Settings, StopReason, TxTrigger
from simulator.outbox import OutboxItem
from simulator.profiles import ChargingProfile, ProfileKind, Purpose, RateUnit, Schedule, SchedulePeriod
from simulator.protocol import ProtocolHandler
from simulator.state import CoreEvent, ReservationEnded, Session, StatusChanged, TxEnded, TxStarted, TxUpdated

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from simulator.station import SimStation

__all__ = ["V201Handler"]

_STOPPED_REASON = {
    StopReason.HARD_RESET: "ImmediateReset",
    StopReason.SOFT_RESET: "Reboot",
    StopReason.UNLOCK: "Other",
}
# A TxProfile-free id range for limits the station sets itself (external constraints).
_EXTERNAL_PROFILE_ID_BASE = 900_000


def _filter(meter_value: dict[str, Any], measurands: str) -> dict[str, Any]:
    wanted = {m.strip() for m in measurands.split(",") if m.strip()}
    if not wanted:
        return meter_value
    kept = [sv for sv in meter_value["sampled_value"] if sv["measurand"] in wanted]
    return {"timestamp": meter_value["timestamp"], "sampled_value": kept}


class V201Handler(ProtocolHandler):
    protocol = Protocol.V201

    def __init__(self, station: SimStation, connectors: int) -> None:
        super().__init__(station)
        self.device_model = DeviceModel(station.identity, connectors, station.vendor, station.model)
        for name, value in station.config_overrides.items():
            component, _, variable = name.partition(".")
            self.device_model.set_internal(component, variable, value)
        self.token_types: dict[str, str] = {}
        self.installed_certificates: dict[str, str] = {}
        self._event_seq = 0

    def settings(self) -> Settings:
        return self.device_model.settings()

    def new_tx_key(self) -> str:
        # Seeded randomness keeps runs reproducible; a UUID string fits the 36-char limit.
        return str(uuid.UUID(int=self.station.rng.getrandbits(128), version=4))

    def heartbeat_interval_set(self, seconds: int) -> None:
        self.device_model.set_internal("OCPPCommCtrlr", "HeartbeatInterval", str(seconds))

    def create_charge_point(self, ws: ClientConnection) -> Any:
        from simulator.v201_cp import ChargePoint201

        return ChargePoint201(self, ws)

    def id_token(self, id_tag: str) -> dict[str, str]:
        return {"id_token": id_tag, "type": self.token_types.get(id_tag, "ISO14443")}

    # -- direct requests -------------------------------------------------------------------------

    def boot_request(self, reason: str) -> Any:
        sim = self.station
        return call.BootNotification(
            charging_station={
                "model": sim.model,
                "vendor_name": sim.vendor,
                "serial_number": sim.identity[:25],
                "firmware_version": sim.firmware_version,
            },
            reason=reason,
        )

    def heartbeat_request(self) -> Any:
        return call.Heartbeat()

    def authorize_request(self, id_tag: str) -> Any:
        return call.Authorize(id_token=self.id_token(id_tag))

    def authorize_status(self, result: Any) -> str:
        return str(result.id_token_info["status"])

    # -- queued messages -------------------------------------------------------------------------

    def status_item(self, connector_id: int, state: ConnectorState) -> OutboxItem | None:
        if connector_id == 0:
            return None  # 2.0.1 reports per EVSE/connector only
        timestamp = format_ts(self.station.now())
        self.device_model.set_internal("EVSE", "AvailabilityState", state.v201, evse_id=connector_id)
        self.device_model.set_internal(
            "Connector", "AvailabilityState", state.v201, evse_id=connector_id, connector_id=1
        )
        return OutboxItem(
            "StatusNotification",
            lambda: call.StatusNotification(
                timestamp=timestamp, connector_status=state.v201, evse_id=connector_id, connector_id=1
            ),
        )

    def event_items(self, event: CoreEvent) -> list[OutboxItem]:
        if isinstance(event, StatusChanged):
            cid = event.connector_id
            was_faulted = bool(cid) and self._was_faulted(cid)
            items = [self.status_item(cid, event.state)]
            faulted = event.state is ConnectorState.FAULTED
            if cid and faulted != was_faulted:
                # A connector problem is also a device-model event (Connector.Problem).
                items.append(self._problem_event(cid, faulted))
            return [i for i in items if i is not None]
        if isinstance(event, TxStarted):
            started = [self._started_item(event)]
            if self.station.core.behaviour.send_charging_needs:
                started.append(self.charging_needs_item(event.session.connector_id))
            return started
        if isinstance(event, TxUpdated):
            return [self._updated_item(event)]
        if isinstance(event, TxEnded):
            return [self._ended_item(event)]
        if isinstance(event, ReservationEnded):
            return [
                OutboxItem(
                    "ReservationStatusUpdate",
                    lambda: call.ReservationStatusUpdate(
                        reservation_id=event.reservation_id, reservation_update_status=event.status
                    ),
                )
            ]
        return []

    def _was_faulted(self, connector_id: int) -> bool:
        return self.device_model.value("Connector", "AvailabilityState", evse_id=connector_id, connector_id=1) == (
            "Faulted"
        )

    def _tx_event(
        self,
        item: OutboxItem,
        event_type: str,
        session: Session,
        timestamp: datetime,
        trigger: TxTrigger,
        seq_no: int,
        info: dict[str, Any],
        samples: list[dict[str, Any]],
        **extra: Any,
    ) -> Any:
        return call.TransactionEvent(
            event_type=event_type,
            timestamp=format_ts(timestamp),
            trigger_reason=trigger.value,
            seq_no=seq_no,
            transaction_info={"transaction_id": session.key, **info},
            meter_value=samples or None,
            offline=True if item.offline else None,
            evse={"id": session.connector_id, "connector_id": 1},
            **extra,
        )

    def _persistent(self, action: str) -> OutboxItem:
        return OutboxItem(action, lambda: None, persistent=True)

    def _started_item(self, event: TxStarted) -> OutboxItem:
        s = event.session
        item = self._persistent("TransactionEvent")
        info: dict[str, Any] = {"charging_state": event.charging_state}
        if s.remote_start_id is not None:
            info["remote_start_id"] = s.remote_start_id
        measurands = self.device_model.value("SampledDataCtrlr", "TxStartedMeasurands")
        samples = [_filter(sample_to_v201(event.sample), measurands)]
        phases = event.sample.phases
        item.build = lambda: self._tx_event(
            item,
            "Started",
            s,
            s.started_at,
            event.trigger,
            event.seq_no,
            info,
            samples,
            id_token=self.id_token(s.id_tag),
            reservation_id=s.reservation_id,
            number_of_phases_used=phases,
        )

        def on_result(result: Any) -> None:
            status = (result.id_token_info or {}).get("status", "Accepted")
            stop_on_invalid = self.device_model.value("TxCtrlr", "StopTxOnInvalidId").lower() == "true"
            core = self.station.core
            if status != "Accepted" and stop_on_invalid and core.connectors[s.connector_id].session is s:
                core.end_transaction(
                    s.connector_id, self.station.now(), StopReason.DEAUTHORIZED, TxTrigger.DEAUTHORIZED
                )

        item.on_result = on_result
        return item

    def _updated_item(self, event: TxUpdated) -> OutboxItem:
        s = event.session
        item = self._persistent("TransactionEvent")
        measurands = self.device_model.value("SampledDataCtrlr", "TxUpdatedMeasurands")
        samples = [_filter(sample_to_v201(x), measurands) for x in event.samples]
        info = {"charging_state": event.charging_state}
        timestamp = event.samples[0].timestamp if event.samples else self.station.now()
        item.build = lambda: self._tx_event(item, "Updated", s, timestamp, event.trigger, event.seq_no, info, samples)
        return item

    def _ended_item(self, event: TxEnded) -> OutboxItem:
        s = event.session
        item = self._persistent("TransactionEvent")
        measurands = self.device_model.value("SampledDataCtrlr", "TxEndedMeasurands")
        samples = [_filter(sample_to_v201(x), measurands) for x in (event.begin_sample, event.sample)]
        info: dict[str, Any] = {
            "charging_state": "EVConnected" if event.reason is not StopReason.EV_DISCONNECTED else "Idle",
            "stopped_reason": _STOPPED_REASON.get(event.reason, event.reason.value),
        }
        if s.remote_start_id is not None:
            info["remote_start_id"] = s.remote_start_id
        extra: dict[str, Any] = {}
        if event.trigger is TxTrigger.STOP_AUTHORIZED:
            extra["id_token"] = self.id_token(s.id_tag)
        item.build = lambda: self._tx_event(
            item, "Ended", s, event.sample.timestamp, event.trigger, event.seq_no, info, samples, **extra
        )
        return item

    def meter_values_item(self, connector_id: int, sample: MeterSample) -> OutboxItem:
        value = _filter(sample_to_v201(sample), self.device_model.value("SampledDataCtrlr", "TxUpdatedMeasurands"))
        return OutboxItem("MeterValues", lambda: call.MeterValues(evse_id=connector_id, meter_value=[value]))

    def firmware_status_item(self, status: str, request_id: int | None) -> OutboxItem:
        return OutboxItem(
            "FirmwareStatusNotification", lambda: call.FirmwareStatusNotification(status=status, request_id=request_id)
        )

    def log_status_item(self, status: str, request_id: int | None) -> OutboxItem:
        return OutboxItem(
            "LogStatusNotification", lambda: call.LogStatusNotification(status=status, request_id=request_id)
        )

    def security_event_item(self, event_type: str, tech_info: str | None = None) -> OutboxItem:
        timestamp = format_ts(self.station.now())
        return OutboxItem(
            "SecurityEventNotification",
            lambda: call.SecurityEventNotification(type=event_type, timestamp=timestamp, tech_info=tech_info),
        )

    # -- other 2.0.1 notifications ---------------------------------------------------------------

    def next_event_id(self) -> int:
        self._event_seq += 1
        return self._event_seq

    def _problem_event(self, connector_id: int, problem: bool) -> OutboxItem:
        data = [
            {
                "event_id": self.next_event_id(),
                "timestamp": format_ts(self.station.now()),
                "trigger": "Alerting",
                "actual_value": "true" if problem else "false",
                "component": {"name": "Connector", "evse": {"id": connector_id, "connector_id": 1}},
                "variable": {"name": "Problem"},
                "event_notification_type": "HardWiredNotification",
                "cleared": None if problem else True,
            }
        ]
        return self.notify_event_item(data)

    def notify_event_item(self, event_data: list[dict[str, Any]]) -> OutboxItem:
        generated = format_ts(self.station.now())
        clean = [{k: v for k, v in d.items() if v is not None} for d in event_data]
        return OutboxItem("NotifyEvent", lambda: call.NotifyEvent(generated_at=generated, seq_no=0, event_data=clean))

    def charging_needs_item(self, connector_id: int) -> OutboxItem:
        c = self.station.core.connectors[connector_id]
        ev = c.ev
        spec = ev.spec if ev is not None else None
        needed_wh = int(ev.wanted_wh) if ev is not None else 0
        phases = spec.phases if spec is not None else 3
        needs: dict[str, Any] = {
            "requested_energy_transfer": "AC_three_phase" if phases == 3 else "AC_single_phase",
            "ac_charging_parameters": {
                "energy_amount": needed_wh,
                "ev_min_current": 6,
                "ev_max_current": int(spec.max_current_a if spec is not None else 16),
                "ev_max_voltage": 400 if phases == 3 else 230,
            },
        }
        if c.departure is not None:
            needs["departure_time"] = format_ts(c.departure)
        return OutboxItem(
            "NotifyEVChargingNeeds",
            lambda: call.NotifyEVChargingNeeds(evse_id=connector_id, charging_needs=needs),
        )

    def apply_external_limit(self, evse_id: int, limit_a: float, source: str = "EMS") -> OutboxItem:
        """An EMS caps an EVSE (0 = station): install it locally and tell the CSMS (NotifyChargingLimit)."""
        profile = ChargingProfile(
            id=_EXTERNAL_PROFILE_ID_BASE + evse_id,
            stack_level=0,
            purpose=Purpose.EXTERNAL,
            kind=ProfileKind.ABSOLUTE,
            schedule=Schedule(RateUnit.AMPS, (SchedulePeriod(0, limit_a),), start_schedule=self.station.now()),
        )
        self.station.core.profiles.install(evse_id, profile, self.station.now())
        self.station.refresh()
        schedule = {
            "id": 1,
            "charging_rate_unit": "A",
            "start_schedule": format_ts(self.station.now()),
            "charging_schedule_period": [{"start_period": 0, "limit": round(limit_a, 1)}],
        }
        return OutboxItem(
            "NotifyChargingLimit",
            lambda: call.NotifyChargingLimit(
                charging_limit={"charging_limit_source": source, "is_grid_critical": False},
                evse_id=evse_id or None,
                charging_schedule=[schedule],
            ),
        )

    def clear_external_limit(self, evse_id: int, source: str = "EMS") -> OutboxItem:
        """The EMS limit is lifted: remove it and send ClearedChargingLimit."""
        self.station.core.profiles.clear(profile_id=_EXTERNAL_PROFILE_ID_BASE + evse_id)
        self.station.refresh()
        return OutboxItem(
            "ClearedChargingLimit",
            lambda: call.ClearedChargingLimit(charging_limit_source=source, evse_id=evse_id or None),
        )
