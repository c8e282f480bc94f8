"""OCPP 1.6J handlers for calls the CSMS sends to the station.

Each handler decides its answer synchronously. Anything that sends further messages runs via
`SimStation.after_reply` (after the answer went out), because `call()` inside an `ocpp` handler
would deadlock the connection's read loop; state-change messages are held by `defer_messages`.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from ocpp.v16 import ChargePoint as _ChargePoint, call_result as r
from ocpp.v16.enums import Action

from simulator.clock import format_ts, parse_ts, whole_second_up
from simulator.model import ConnectorState, Reservation, StopReason
from simulator.ocpp_compat import on
from simulator.profile_codec import ProfileFormatError, composite_periods_to_wire, profile_from_v16
from simulator.profiles import Limit, Purpose, RateUnit, TxContext

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from simulator.v16 import V16Handler

__all__ = ["ChargePoint16"]

_PURPOSES = {
    "ChargePointMaxProfile": Purpose.STATION_MAX,
    "TxDefaultProfile": Purpose.TX_DEFAULT,
    "TxProfile": Purpose.TX,
}


class ChargePoint16(_ChargePoint):  # type: ignore[misc]  # ocpp is untyped
    def __init__(self, handler: V16Handler, ws: ClientConnection) -> None:
        super().__init__(handler.station.identity, ws, response_timeout=handler.station.response_timeout)
        self.h = handler
        self.sim = handler.station
        self.core = handler.station.core

    async def route_message(self, raw_msg: str) -> None:
        self.sim.defer_messages()
        try:
            await super().route_message(raw_msg)
        finally:
            self.sim.flush_followups()

    def _connector_ok(self, connector_id: int | None, allow_zero: bool = True) -> bool:
        if connector_id is None:
            return True
        return (allow_zero and connector_id == 0) or connector_id in self.core.connectors

    # -- Core profile ----------------------------------------------------------------------------

    @on(Action.remote_start_transaction)
    def on_remote_start(
        self, id_tag: str, connector_id: int | None = None, charging_profile: dict[str, Any] | None = None, **_: Any
    ) -> Any:
        cid = connector_id if connector_id else self.core.free_connector(id_tag)
        if cid is None or not self.core.startable(cid, id_tag):
            return r.RemoteStartTransaction(status="Rejected")
        profile = None
        if charging_profile is not None:
            try:
                profile = profile_from_v16(charging_profile)
            except (ProfileFormatError, KeyError, ValueError):
                return r.RemoteStartTransaction(status="Rejected")
            if profile.purpose is not Purpose.TX:
                return r.RemoteStartTransaction(status="Rejected")
        self.sim.after_reply(self.sim.remote_start(cid, id_tag, profile=profile, profile_raw=charging_profile))
        return r.RemoteStartTransaction(status="Accepted")

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int, **_: Any) -> Any:
        session = self.core.find_session(csms_id=int(transaction_id))
        if session is None:
            return r.RemoteStopTransaction(status="Rejected")
        self.sim.after_reply(self.sim.stop_session(session.connector_id, StopReason.REMOTE))
        return r.RemoteStopTransaction(status="Accepted")

    @on(Action.reset)
    def on_reset(self, type: str, **_: Any) -> Any:
        self.sim.after_reply_call(self.sim.request_reset, type == "Hard")
        return r.Reset(status="Accepted")

    @on(Action.unlock_connector)
    def on_unlock(self, connector_id: int, **_: Any) -> Any:
        if connector_id not in self.core.connectors:
            return r.UnlockConnector(status="NotSupported")
        if self.core.connectors[connector_id].session is not None:
            self.sim.after_reply(self.sim.stop_session(connector_id, StopReason.UNLOCK))
        return r.UnlockConnector(status="Unlocked")

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str, **_: Any) -> Any:
        status = self.core.set_availability(connector_id, type == "Operative")
        return r.ChangeAvailability(status=status)

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        known, unknown = self.h.config.listing(key)
        return r.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, **_: Any) -> Any:
        status = self.h.config.change(key, value)
        if status == "Accepted" and key == "HeartbeatInterval":
            self.sim.after_reply_call(self.sim.restart_heartbeat)
        return r.ChangeConfiguration(status=status)

    @on(Action.clear_cache)
    def on_clear_cache(self, **_: Any) -> Any:
        self.core.auth_cache.clear()
        return r.ClearCache(status="Accepted")

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, message_id: str | None = None, data: str | None = None, **_: Any) -> Any:
        if vendor_id != self.sim.vendor:
            return r.DataTransfer(status="UnknownVendorId")
        return r.DataTransfer(status="Accepted", data=data)

    # -- Remote trigger --------------------------------------------------------------------------

    def _trigger(self, requested: str, connector_id: int | None) -> str:
        if not self._connector_ok(connector_id):
            return "Rejected"
        sim, h = self.sim, self.h
        if requested == "BootNotification":
            sim.after_reply(sim.send_boot())
        elif requested == "Heartbeat":
            sim.after_reply(sim.send_heartbeat())
        elif requested == "StatusNotification":
            targets = [connector_id] if connector_id else [0, *self.core.connectors]
            for cid in targets:
                state = self.core.connectors[cid].state() if cid else ConnectorState.AVAILABLE
                sim.enqueue(h.status_item(cid, state))
        elif requested == "MeterValues":
            targets = [connector_id] if connector_id else list(self.core.connectors)
            for cid in targets:
                sample = self.core.sample(cid, sim.now(), "Trigger")
                sim.enqueue(h.meter_values_item(cid, sample))
        elif requested == "FirmwareStatusNotification":
            sim.enqueue(h.firmware_status_item(h.firmware_status, None))
        elif requested == "DiagnosticsStatusNotification":
            sim.enqueue(h.diagnostics_status_item(h.diagnostics_status))
        elif requested == "LogStatusNotification":
            sim.enqueue(h.log_status_item(h.log_status, None))
        else:
            return "NotImplemented"  # SignChargePointCertificate: no PKI in the simulator
        return "Accepted"

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, connector_id: int | None = None, **_: Any) -> Any:
        return r.TriggerMessage(status=self._trigger(requested_message, connector_id))

    @on(Action.extended_trigger_message)
    def on_extended_trigger_message(self, requested_message: str, connector_id: int | None = None, **_: Any) -> Any:
        return r.ExtendedTriggerMessage(status=self._trigger(requested_message, connector_id))

    # -- Local authorization list ----------------------------------------------------------------

    @on(Action.send_local_list)
    def on_send_local_list(
        self,
        list_version: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> Any:
        entries = local_authorization_list or []
        if not self.h.config.get_bool("LocalAuthListEnabled"):
            return r.SendLocalList(status="NotSupported")
        if len(entries) > self.h.config.get_int("SendLocalListMaxLength"):
            return r.SendLocalList(status="Failed")
        if update_type == "Differential" and list_version <= self.core.local_list_version:
            return r.SendLocalList(status="VersionMismatch")
        if update_type == "Full":
            self.core.local_list.clear()
        for entry in entries:
            info = entry.get("id_tag_info")
            if info is None:
                self.core.local_list.pop(entry["id_tag"], None)
            else:
                self.core.local_list[entry["id_tag"]] = str(info["status"])
        self.core.local_list_version = list_version
        return r.SendLocalList(status="Accepted")

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **_: Any) -> Any:
        if not self.h.config.get_bool("LocalAuthListEnabled"):
            return r.GetLocalListVersion(list_version=-1)
        return r.GetLocalListVersion(list_version=self.core.local_list_version)

    # -- Smart charging --------------------------------------------------------------------------

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any], **_: Any) -> Any:
        status = self._install_profile(connector_id, cs_charging_profiles)
        if status == "Accepted":
            self.sim.after_reply_call(self.sim.refresh)
        return r.SetChargingProfile(status=status)

    def _install_profile(self, connector_id: int, raw: dict[str, Any]) -> str:
        if not self._connector_ok(connector_id):
            return "Rejected"
        try:
            profile = profile_from_v16(raw)
        except (ProfileFormatError, KeyError, ValueError):
            return "Rejected"
        settings = self.h.settings()
        if profile.stack_level > settings.max_stack_level:
            return "Rejected"
        if len(profile.schedule.periods) > settings.max_schedule_periods:
            return "Rejected"
        if profile.purpose is Purpose.STATION_MAX and connector_id != 0:
            return "Rejected"
        if profile.purpose is Purpose.TX:
            session = self.core.connectors[connector_id].session if connector_id else None
            if session is None:
                return "Rejected"  # a TxProfile needs a running transaction on that connector
            # Until the StartTransaction answer is handled the station does not know the id the CSMS gave the
            # transaction, but the CSMS does: a profile sent right after that answer names it before we can.
            known = session.csms_id is not None
            if profile.transaction_id is not None and known and profile.transaction_id != session.profile_tx_id:
                return "Rejected"
        store = self.core.profiles
        replaces = store.find(profile_ids=[profile.id]) or store.find(
            connector_id=connector_id, purpose=profile.purpose, stack_level=profile.stack_level
        )
        if not replaces and len(store) >= settings.max_profiles:
            return "Rejected"
        store.install(connector_id, profile, self.sim.now(), raw)
        return "Accepted"

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
        **_: Any,
    ) -> Any:
        purpose = _PURPOSES.get(charging_profile_purpose) if charging_profile_purpose else None
        removed = self.core.profiles.clear(
            profile_id=id, connector_id=connector_id, purpose=purpose, stack_level=stack_level
        )
        if removed:
            self.sim.after_reply_call(self.sim.refresh)
        return r.ClearChargingProfile(status="Accepted" if removed else "Unknown")

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(
        self, connector_id: int, duration: int, charging_rate_unit: str | None = None, **_: Any
    ) -> Any:
        if not self._connector_ok(connector_id):
            return r.GetCompositeSchedule(status="Rejected")
        # The schedule starts at the next whole second (the wire has no fractions): truncating instead could put
        # its start before a session that began earlier in the same second, whose profiles would then not apply.
        now = whole_second_up(self.sim.now())
        session = self.core.connectors[connector_id].session if connector_id else None
        tx = TxContext(session.profile_tx_id, session.started_at) if session else None
        periods = self.core.profiles.composite_schedule(connector_id, now, int(duration), tx=tx)
        unit = RateUnit(charging_rate_unit or "A")
        hw = self.core.max_current_a * (len(self.core.connectors) if connector_id == 0 else 1)
        wire = composite_periods_to_wire(
            periods, unit=unit, default_limit=Limit(hw), voltage=self.core.voltage, default_phases=3
        )
        schedule = {
            "duration": int(duration),
            "start_schedule": format_ts(now),
            "charging_rate_unit": unit.value,
            "charging_schedule_period": wire,
        }
        return r.GetCompositeSchedule(
            status="Accepted", connector_id=connector_id, schedule_start=format_ts(now), charging_schedule=schedule
        )

    # -- Reservation -----------------------------------------------------------------------------

    @on(Action.reserve_now)
    def on_reserve_now(
        self,
        connector_id: int,
        expiry_date: str,
        id_tag: str,
        reservation_id: int,
        parent_id_tag: str | None = None,
        **_: Any,
    ) -> Any:
        if connector_id == 0 and not self.h.config.get_bool("ReserveConnectorZeroSupported"):
            return r.ReserveNow(status="Rejected")
        reservation = Reservation(reservation_id, id_tag, parse_ts(expiry_date), parent_id_tag)
        status = self.core.reserve(connector_id or None, reservation)
        return r.ReserveNow(status=status)

    @on(Action.cancel_reservation)
    def on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        ok = self.core.cancel_reservation(reservation_id)
        return r.CancelReservation(status="Accepted" if ok else "Rejected")

    # -- Firmware management and diagnostics -----------------------------------------------------

    def _set_firmware(self, status: str) -> None:
        self.h.firmware_status = status

    @on(Action.update_firmware)
    def on_update_firmware(self, location: str, retrieve_date: str, **_: Any) -> Any:
        statuses = ["Downloading", "Downloaded", "Installing", "Installed"]
        self.sim.after_reply(
            self.sim.status_sequence(
                statuses,
                lambda s: self.h.firmware_status_item(s, None),
                start_at=parse_ts(retrieve_date),
                on_status=self._set_firmware,
            )
        )
        return r.UpdateFirmware()

    @on(Action.signed_update_firmware)
    def on_signed_update_firmware(self, request_id: int, firmware: dict[str, Any], **_: Any) -> Any:
        statuses = ["Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed"]
        self.sim.after_reply(
            self.sim.status_sequence(
                statuses,
                lambda s: self.h.firmware_status_item(s, request_id),
                start_at=parse_ts(firmware["retrieve_date_time"]),
                on_status=self._set_firmware,
            )
        )
        return r.SignedUpdateFirmware(status="Accepted")

    @on(Action.get_diagnostics)
    def on_get_diagnostics(self, location: str, **_: Any) -> Any:
        name = f"diagnostics-{self.sim.identity}-{self.sim.now():%Y%m%dT%H%M%S}.log"

        def note(status: str) -> None:
            self.h.diagnostics_status = status

        self.sim.after_reply(
            self.sim.status_sequence(["Uploading", "Uploaded"], self.h.diagnostics_status_item, on_status=note)
        )
        return r.GetDiagnostics(file_name=name)

    @on(Action.get_log)
    def on_get_log(self, log: dict[str, Any], log_type: str, request_id: int, **_: Any) -> Any:
        name = f"{log_type}-{self.sim.identity}-{self.sim.now():%Y%m%dT%H%M%S}.log"

        def note(status: str) -> None:
            self.h.log_status = status

        self.sim.after_reply(
            self.sim.status_sequence(
                ["Uploading", "Uploaded"], lambda s: self.h.log_status_item(s, request_id), on_status=note
            )
        )
        return r.GetLog(status="Accepted", filename=name)

    # -- Security extension: certificates (the simulator has no PKI; answers stay consistent) ---

    @on(Action.install_certificate)
    def on_install_certificate(self, certificate_type: str, certificate: str, **_: Any) -> Any:
        digest = hashlib.sha256(certificate.encode()).hexdigest()
        self.h.installed_certificates[digest] = certificate_type
        return r.InstallCertificate(status="Accepted")

    @on(Action.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(self, certificate_type: str, **_: Any) -> Any:
        hashes = [
            {"hash_algorithm": "SHA256", "issuer_name_hash": d[:64], "issuer_key_hash": d[:64], "serial_number": d[:20]}
            for d, kind in self.h.installed_certificates.items()
            if kind == certificate_type
        ]
        if not hashes:
            return r.GetInstalledCertificateIds(status="NotFound")
        return r.GetInstalledCertificateIds(status="Accepted", certificate_hash_data=hashes)

    @on(Action.delete_certificate)
    def on_delete_certificate(self, certificate_hash_data: dict[str, Any], **_: Any) -> Any:
        serial = str(certificate_hash_data.get("serial_number", ""))
        match = [d for d in self.h.installed_certificates if d.startswith(serial)]
        for d in match:
            del self.h.installed_certificates[d]
        return r.DeleteCertificate(status="Accepted" if match else "NotFound")

    @on(Action.certificate_signed)
    def on_certificate_signed(self, certificate_chain: str, **_: Any) -> Any:
        return r.CertificateSigned(status="Rejected")  # no SignCertificate request is outstanding
