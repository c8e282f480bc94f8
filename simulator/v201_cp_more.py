"""OCPP 2.0.1 handlers (mixin): smart charging, reservations, firmware/logs, certificates, and
the monitoring/display/network calls the simulator answers without simulating them.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ocpp.v201 import call, call_result as r
from ocpp.v201.enums import Action

from simulator.clock import format_ts, parse_ts, whole_second_up
from simulator.model import Reservation
from simulator.ocpp_compat import on
from simulator.outbox import OutboxItem
from simulator.profile_codec import ProfileFormatError, composite_periods_to_wire, profile_from_v201
from simulator.profiles import InstalledProfile, Limit, ProfileKind, Purpose, RateUnit, TxContext

if TYPE_CHECKING:
    from simulator.core import StationCore
    from simulator.station import SimStation
    from simulator.v201 import V201Handler

__all__ = ["MoreHandlers"]

_PURPOSES = {
    "ChargingStationMaxProfile": Purpose.STATION_MAX,
    "ChargingStationExternalConstraints": Purpose.EXTERNAL,
    "TxDefaultProfile": Purpose.TX_DEFAULT,
    "TxProfile": Purpose.TX,
}


class MoreHandlers:
    # Set by ChargePoint201.__init__.
    h: V201Handler
    sim: SimStation
    core: StationCore

    # -- smart charging --------------------------------------------------------------------------

    def _install_profile(self, evse_id: int, raw: dict[str, Any]) -> str:
        if evse_id != 0 and evse_id not in self.core.connectors:
            return "Rejected"
        try:
            profile = profile_from_v201(raw)
        except (ProfileFormatError, KeyError, ValueError):
            return "Rejected"
        settings = self.h.settings()
        if profile.stack_level > settings.max_stack_level:
            return "Rejected"
        if len(profile.schedule.periods) > settings.max_schedule_periods:
            return "Rejected"
        if profile.purpose is Purpose.STATION_MAX and (evse_id != 0 or profile.kind is ProfileKind.RELATIVE):
            return "Rejected"  # K01.FR.03 / K01.FR.38
        if profile.purpose is Purpose.TX:
            session = self.core.connectors[evse_id].session if evse_id else None
            # K01.FR.03/09/16: a TxProfile targets a running transaction by its id.
            if session is None or profile.transaction_id != session.key:
                return "Rejected"
        store = self.core.profiles
        replaces = store.find(profile_ids=[profile.id]) or store.find(
            connector_id=evse_id, purpose=profile.purpose, stack_level=profile.stack_level
        )
        if not replaces and len(store) >= settings.max_profiles:
            return "Rejected"
        store.install(evse_id, profile, self.sim.now(), raw)
        self._count_profiles()
        return "Accepted"

    def _count_profiles(self) -> None:
        self.h.device_model.set_internal(
            "SmartChargingCtrlr", "Entries", str(len(self.core.profiles)), variable_instance="ChargingProfiles"
        )

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        status = self._install_profile(evse_id, charging_profile)
        if status == "Accepted":
            self.sim.after_reply_call(self.sim.refresh)
        return r.SetChargingProfile(status=status)

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(
        self,
        charging_profile_id: int | None = None,
        charging_profile_criteria: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        crit = charging_profile_criteria or {}
        purpose_name = crit.get("charging_profile_purpose")
        removed = self.core.profiles.clear(
            profile_id=charging_profile_id,
            connector_id=crit.get("evse_id"),
            purpose=_PURPOSES.get(purpose_name) if purpose_name else None,
            stack_level=crit.get("stack_level"),
        )
        if removed:
            self._count_profiles()
            self.sim.after_reply_call(self.sim.refresh)
        return r.ClearChargingProfile(status="Accepted" if removed else "Unknown")

    @on(Action.get_charging_profiles)
    def on_get_charging_profiles(
        self, request_id: int, charging_profile: dict[str, Any], evse_id: int | None = None, **_: Any
    ) -> Any:
        purpose_name = charging_profile.get("charging_profile_purpose")
        sources = charging_profile.get("charging_limit_source")
        found = self.core.profiles.find(
            profile_ids=charging_profile.get("charging_profile_id"),
            connector_id=evse_id,
            purpose=_PURPOSES.get(purpose_name) if purpose_name else None,
            stack_level=charging_profile.get("stack_level"),
        )
        # Only CSMS-set profiles (source CSO) are stored with their wire form.
        found = [ip for ip in found if ip.raw and (not sources or "CSO" in sources)]
        if not found:
            return r.GetChargingProfiles(status="NoProfiles")
        self.sim.after_reply_call(self._report_profiles, request_id, found)
        return r.GetChargingProfiles(status="Accepted")

    def _report_profiles(self, request_id: int, found: list[InstalledProfile]) -> None:
        by_evse: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for ip in found:
            by_evse[ip.connector_id].append(dict(ip.raw))
        groups = sorted(by_evse.items())
        for i, (evse, profiles) in enumerate(groups):
            tbc = i < len(groups) - 1
            payload = call.ReportChargingProfiles(
                request_id=request_id,
                charging_limit_source="CSO",
                charging_profile=profiles,
                evse_id=evse,
                tbc=tbc,
            )
            self.sim.enqueue(_const_item("ReportChargingProfiles", payload))

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(
        self, duration: int, evse_id: int, charging_rate_unit: str | None = None, **_: Any
    ) -> Any:
        if evse_id != 0 and evse_id not in self.core.connectors:
            return r.GetCompositeSchedule(status="Rejected")
        # The schedule starts at the next whole second (the wire has no fractions): truncating instead could put
        # its start before a session that began earlier in the same second, whose profiles would then not apply.
        now = whole_second_up(self.sim.now())
        session = self.core.connectors[evse_id].session if evse_id else None
        tx = TxContext(session.key, session.started_at) if session else None
        periods = self.core.profiles.composite_schedule(evse_id, now, int(duration), tx=tx)
        unit = RateUnit(charging_rate_unit or "A")
        hw = self.core.max_current_a * (len(self.core.connectors) if evse_id == 0 else 1)
        wire = composite_periods_to_wire(
            periods, unit=unit, default_limit=Limit(hw), voltage=self.core.voltage, default_phases=3
        )
        schedule = {
            "evse_id": evse_id,
            "duration": int(duration),
            "schedule_start": format_ts(now),
            "charging_rate_unit": unit.value,
            "charging_schedule_period": wire,
        }
        return r.GetCompositeSchedule(status="Accepted", schedule=schedule)

    # -- reservations ----------------------------------------------------------------------------

    @on(Action.reserve_now)
    def on_reserve_now(
        self,
        id: int,
        expiry_date_time: str,
        id_token: dict[str, Any],
        evse_id: int | None = None,
        group_id_token: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        if self.h.device_model.value("ReservationCtrlr", "Enabled").lower() != "true":
            return r.ReserveNow(status="Rejected")
        group = str(group_id_token["id_token"]) if group_id_token else None
        reservation = Reservation(id, str(id_token["id_token"]), parse_ts(expiry_date_time), group)
        return r.ReserveNow(status=self.core.reserve(evse_id or None, reservation))

    @on(Action.cancel_reservation)
    def on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        ok = self.core.cancel_reservation(reservation_id)
        return r.CancelReservation(status="Accepted" if ok else "Rejected")

    # -- firmware and logs -----------------------------------------------------------------------

    def _set_firmware(self, status: str) -> None:
        self.h.firmware_status = status

    def _set_log(self, status: str) -> None:
        self.h.log_status = status

    @on(Action.update_firmware)
    def on_update_firmware(self, request_id: int, firmware: dict[str, Any], **_: Any) -> Any:
        statuses = ["Downloading", "Downloaded"]
        if firmware.get("signature"):
            statuses.append("SignatureVerified")
        statuses += ["Installing", "Installed"]
        self.sim.after_reply(
            self.sim.status_sequence(
                statuses,
                lambda s: self.h.firmware_status_item(s, request_id),
                start_at=parse_ts(firmware["retrieve_date_time"]),
                on_status=self._set_firmware,
            )
        )
        return r.UpdateFirmware(status="Accepted")

    @on(Action.get_log)
    def on_get_log(self, log: dict[str, Any], log_type: str, request_id: int, **_: Any) -> Any:
        name = f"{log_type}-{self.sim.identity}-{self.sim.now():%Y%m%dT%H%M%S}.log"
        self.sim.after_reply(
            self.sim.status_sequence(
                ["Uploading", "Uploaded"], lambda s: self.h.log_status_item(s, request_id), on_status=self._set_log
            )
        )
        return r.GetLog(status="Accepted", filename=name)

    @on(Action.publish_firmware)
    def on_publish_firmware(self, location: str, checksum: str, request_id: int, **_: Any) -> Any:
        return r.PublishFirmware(status="Rejected")  # the simulator is no local controller

    @on(Action.unpublish_firmware)
    def on_unpublish_firmware(self, checksum: str, **_: Any) -> Any:
        return r.UnpublishFirmware(status="NoFirmware")

    # -- certificates (no PKI: answers are consistent, nothing is verified) ----------------------

    @on(Action.install_certificate)
    def on_install_certificate(self, certificate_type: str, certificate: str, **_: Any) -> Any:
        self.h.installed_certificates[hashlib.sha256(certificate.encode()).hexdigest()] = certificate_type
        return r.InstallCertificate(status="Accepted")

    @on(Action.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(self, certificate_type: list[str] | None = None, **_: Any) -> Any:
        chain = [
            {
                "certificate_type": kind,
                "certificate_hash_data": {
                    "hash_algorithm": "SHA256",
                    "issuer_name_hash": digest[:64],
                    "issuer_key_hash": digest[:64],
                    "serial_number": digest[:20],
                },
            }
            for digest, kind in self.h.installed_certificates.items()
            if not certificate_type or kind in certificate_type
        ]
        if not chain:
            return r.GetInstalledCertificateIds(status="NotFound")
        return r.GetInstalledCertificateIds(status="Accepted", certificate_hash_data_chain=chain)

    @on(Action.delete_certificate)
    def on_delete_certificate(self, certificate_hash_data: dict[str, Any], **_: Any) -> Any:
        serial = str(certificate_hash_data.get("serial_number", ""))
        match = [d for d in self.h.installed_certificates if d.startswith(serial)]
        for digest in match:
            del self.h.installed_certificates[digest]
        return r.DeleteCertificate(status="Accepted" if match else "NotFound")

    @on(Action.certificate_signed)
    def on_certificate_signed(self, certificate_chain: str, **_: Any) -> Any:
        return r.CertificateSigned(status="Rejected")  # no SignCertificate request is outstanding

    # -- network, monitoring, display messages: answered, not simulated --------------------------

    @on(Action.set_network_profile)
    def on_set_network_profile(self, configuration_slot: int, connection_data: dict[str, Any], **_: Any) -> Any:
        return r.SetNetworkProfile(status="Rejected")

    @on(Action.get_monitoring_report)
    def on_get_monitoring_report(self, request_id: int, **_: Any) -> Any:
        return r.GetMonitoringReport(status="NotSupported")

    @on(Action.set_monitoring_base)
    def on_set_monitoring_base(self, monitoring_base: str, **_: Any) -> Any:
        return r.SetMonitoringBase(status="NotSupported")

    @on(Action.set_monitoring_level)
    def on_set_monitoring_level(self, severity: int, **_: Any) -> Any:
        return r.SetMonitoringLevel(status="Rejected")

    @on(Action.set_variable_monitoring)
    def on_set_variable_monitoring(self, set_monitoring_data: list[dict[str, Any]], **_: Any) -> Any:
        results = [
            {
                "status": "UnsupportedMonitorType",
                "type": d["type"],
                "severity": d["severity"],
                "component": d["component"],
                "variable": d["variable"],
            }
            for d in set_monitoring_data
        ]
        return r.SetVariableMonitoring(set_monitoring_result=results)

    @on(Action.clear_variable_monitoring)
    def on_clear_variable_monitoring(self, id: list[int], **_: Any) -> Any:
        return r.ClearVariableMonitoring(clear_monitoring_result=[{"status": "NotFound", "id": i} for i in id])

    @on(Action.get_display_messages)
    def on_get_display_messages(self, request_id: int, **_: Any) -> Any:
        return r.GetDisplayMessages(status="Unknown")

    @on(Action.set_display_message)
    def on_set_display_message(self, message: dict[str, Any], **_: Any) -> Any:
        return r.SetDisplayMessage(status="Rejected")

    @on(Action.clear_display_message)
    def on_clear_display_message(self, id: int, **_: Any) -> Any:
        return r.ClearDisplayMessage(status="Unknown")


def _const_item(action: str, payload: Any) -> OutboxItem:
    return OutboxItem(action, lambda: payload)
