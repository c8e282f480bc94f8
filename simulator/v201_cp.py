"""OCPP 2.0.1 handlers for calls the CSMS sends: transactions, availability, device model, auth.

Smart charging, reservations, firmware/logs and the rarely used calls live in `v201_cp_more`.
As in 1.6, answers are decided synchronously and further messages go out via `after_reply`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ocpp.v201 import ChargePoint as _ChargePoint, call, call_result as r
from ocpp.v201.enums import Action

from simulator.clock import format_ts
from simulator.model import StopReason, TxTrigger
from simulator.ocpp_compat import on
from simulator.outbox import OutboxItem
from simulator.profile_codec import ProfileFormatError, profile_from_v201
from simulator.profiles import Purpose
from simulator.state import TxUpdated
from simulator.v201_cp_more import MoreHandlers

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from simulator.v201 import V201Handler

__all__ = ["ChargePoint201"]


class ChargePoint201(MoreHandlers, _ChargePoint):  # type: ignore[misc]  # ocpp is untyped
    def __init__(self, handler: V201Handler, ws: ClientConnection) -> None:
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

    # -- transactions ----------------------------------------------------------------------------

    @on(Action.request_start_transaction)
    def on_request_start(
        self,
        id_token: dict[str, Any],
        remote_start_id: int,
        evse_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        tag = str(id_token["id_token"])
        cid = evse_id if evse_id else self.core.free_connector(tag)
        if cid is None or not self.core.startable(cid, tag):
            return r.RequestStartTransaction(status="Rejected")
        profile = None
        if charging_profile is not None:
            try:
                profile = profile_from_v201(charging_profile)
            except (ProfileFormatError, KeyError, ValueError):
                return r.RequestStartTransaction(status="Rejected")
            if profile.purpose is not Purpose.TX:
                return r.RequestStartTransaction(status="Rejected")
        self.h.token_types[tag] = str(id_token.get("type", "ISO14443"))
        self.sim.after_reply(
            self.sim.remote_start(
                cid, tag, remote_start_id=remote_start_id, profile=profile, profile_raw=charging_profile
            )
        )
        return r.RequestStartTransaction(status="Accepted")

    @on(Action.request_stop_transaction)
    def on_request_stop(self, transaction_id: str, **_: Any) -> Any:
        session = self.core.find_session(key=transaction_id)
        if session is None:
            return r.RequestStopTransaction(status="Rejected")
        self.sim.after_reply(self.sim.stop_session(session.connector_id, StopReason.REMOTE))
        return r.RequestStopTransaction(status="Accepted")

    @on(Action.get_transaction_status)
    def on_get_transaction_status(self, transaction_id: str | None = None, **_: Any) -> Any:
        queued = [i for i in self.sim.outbox.items() if i.persistent]
        if transaction_id is None:
            return r.GetTransactionStatus(messages_in_queue=bool(queued))
        ongoing = self.core.find_session(key=transaction_id) is not None
        return r.GetTransactionStatus(messages_in_queue=bool(queued), ongoing_indicator=ongoing)

    @on(Action.cost_updated)
    def on_cost_updated(self, total_cost: float, transaction_id: str, **_: Any) -> Any:
        return r.CostUpdated()

    # -- station control -------------------------------------------------------------------------

    @on(Action.reset)
    def on_reset(self, type: str, evse_id: int | None = None, **_: Any) -> Any:
        if evse_id is not None:
            return r.Reset(status="Rejected")  # resetting a single EVSE is not simulated
        scheduled = type == "OnIdle" and bool(self.core.sessions())
        self.sim.after_reply_call(self.sim.request_reset, True, type == "OnIdle")
        return r.Reset(status="Scheduled" if scheduled else "Accepted")

    @on(Action.unlock_connector)
    def on_unlock(self, evse_id: int, connector_id: int, **_: Any) -> Any:
        if evse_id not in self.core.connectors or connector_id != 1:
            return r.UnlockConnector(status="UnknownConnector")
        if self.core.connectors[evse_id].session is not None:
            return r.UnlockConnector(status="OngoingAuthorizedTransaction")
        return r.UnlockConnector(status="Unlocked")

    @on(Action.change_availability)
    def on_change_availability(self, operational_status: str, evse: dict[str, Any] | None = None, **_: Any) -> Any:
        target = int(evse["id"]) if evse else 0
        status = self.core.set_availability(target, operational_status == "Operative")
        if status != "Rejected":
            available = "true" if any(c.operative for c in self.core.connectors.values()) else "false"
            self.h.device_model.set_internal("ChargingStation", "Available", available)
        return r.ChangeAvailability(status=status)

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, evse: dict[str, Any] | None = None, **_: Any) -> Any:
        return r.TriggerMessage(status=self._trigger(requested_message, int(evse["id"]) if evse else None))

    def _trigger(self, requested: str, evse_id: int | None) -> str:
        if evse_id is not None and evse_id not in self.core.connectors:
            return "Rejected"
        sim, h, core = self.sim, self.h, self.core
        targets = [evse_id] if evse_id else list(core.connectors)
        if requested == "BootNotification":
            sim.after_reply(sim.send_boot())
        elif requested == "Heartbeat":
            sim.after_reply(sim.send_heartbeat())
        elif requested == "StatusNotification":
            for cid in targets:
                sim.enqueue(h.status_item(cid, core.connectors[cid].state()))
        elif requested == "MeterValues":
            for cid in targets:
                sim.enqueue(h.meter_values_item(cid, core.sample(cid, sim.now(), "Trigger")))
        elif requested == "TransactionEvent":
            sessions = [core.connectors[cid].session for cid in targets if core.connectors[cid].session]
            if not sessions:
                return "Rejected"
            sim.after_reply_call(self._trigger_tx, [s.connector_id for s in sessions if s is not None])
        elif requested == "FirmwareStatusNotification":
            sim.enqueue(h.firmware_status_item(h.firmware_status, None))
        elif requested == "LogStatusNotification":
            sim.enqueue(h.log_status_item(h.log_status, None))
        else:
            return "NotImplemented"  # certificate signing and firmware publishing are not simulated
        return "Accepted"

    def _trigger_tx(self, connector_ids: list[int]) -> None:
        for cid in connector_ids:
            c = self.core.connectors[cid]
            if c.session is not None:
                sample = self.core.sample(cid, self.sim.now(), "Trigger")
                event = TxUpdated(c.session, (sample,), TxTrigger.TRIGGER, c.session.next_seq(), c.charging_state())
                self.sim.enqueue(self.h.event_items(event)[0])

    # -- device model ----------------------------------------------------------------------------

    @on(Action.get_variables)
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        return r.GetVariables(get_variable_result=[self.h.device_model.get(d) for d in get_variable_data])

    @on(Action.set_variables)
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        results = []
        for data in set_variable_data:
            result, changed = self.h.device_model.set(data)
            results.append(result)
            if changed is not None and changed.variable == "HeartbeatInterval":
                self.sim.after_reply_call(self.sim.restart_heartbeat)
        return r.SetVariables(set_variable_result=results)

    def _send_report(self, request_id: int, entries: list[dict[str, Any]]) -> None:
        per_message = int(
            self.h.device_model.value("DeviceDataCtrlr", "ItemsPerMessage", variable_instance="GetReport")
        )
        chunks = [entries[i : i + per_message] for i in range(0, len(entries), per_message)] or [[]]
        generated = format_ts(self.sim.now())
        for seq, chunk in enumerate(chunks):
            tbc = seq < len(chunks) - 1
            self.sim.enqueue(_notify_report_item(request_id, generated, seq, chunk, tbc))

    @on(Action.get_base_report)
    def on_get_base_report(self, request_id: int, report_base: str, **_: Any) -> Any:
        entries = self.h.device_model.report(report_base)
        self.sim.after_reply_call(self._send_report, request_id, entries)
        return r.GetBaseReport(status="Accepted")

    @on(Action.get_report)
    def on_get_report(self, request_id: int, component_variable: list[dict[str, Any]] | None = None, **_: Any) -> Any:
        dm = self.h.device_model
        entries = dm.report_for(component_variable) if component_variable else dm.report("FullInventory")
        if not entries:
            return r.GetReport(status="EmptyResultSet")
        self.sim.after_reply_call(self._send_report, request_id, entries)
        return r.GetReport(status="Accepted")

    # -- authorization ---------------------------------------------------------------------------

    @on(Action.clear_cache)
    def on_clear_cache(self, **_: Any) -> Any:
        self.core.auth_cache.clear()
        return r.ClearCache(status="Accepted")

    @on(Action.send_local_list)
    def on_send_local_list(
        self,
        version_number: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> Any:
        entries = local_authorization_list or []
        if update_type == "Differential" and version_number <= self.core.local_list_version:
            return r.SendLocalList(status="VersionMismatch")
        if update_type == "Full":
            self.core.local_list.clear()
        for entry in entries:
            tag = str(entry["id_token"]["id_token"])
            info = entry.get("id_token_info")
            if info is None:
                self.core.local_list.pop(tag, None)
            else:
                self.core.local_list[tag] = str(info["status"])
                self.h.token_types[tag] = str(entry["id_token"].get("type", "ISO14443"))
        self.core.local_list_version = version_number
        self.h.device_model.set_internal("LocalAuthListCtrlr", "Entries", str(len(self.core.local_list)))
        return r.SendLocalList(status="Accepted")

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **_: Any) -> Any:
        return r.GetLocalListVersion(version_number=self.core.local_list_version)

    @on(Action.customer_information)
    def on_customer_information(
        self,
        request_id: int,
        report: bool,
        clear: bool,
        id_token: dict[str, Any] | None = None,
        customer_identifier: str | None = None,
        **_: Any,
    ) -> Any:
        tag = str(id_token["id_token"]) if id_token else customer_identifier
        if tag is None:
            return r.CustomerInformation(status="Invalid")
        known = tag in self.core.auth_cache or tag in self.core.local_list
        if clear:
            self.core.auth_cache.pop(tag, None)
        if report:
            text = f"idToken {tag}: {'cached' if known else 'no data'}"
            generated = format_ts(self.sim.now())
            self.sim.enqueue(
                _item(
                    "NotifyCustomerInformation",
                    call.NotifyCustomerInformation(data=text, seq_no=0, generated_at=generated, request_id=request_id),
                )
            )
        return r.CustomerInformation(status="Accepted")

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, message_id: str | None = None, data: Any = None, **_: Any) -> Any:
        if vendor_id != self.sim.vendor:
            return r.DataTransfer(status="UnknownVendorId")
        return r.DataTransfer(status="Accepted", data=data)


def _item(action: str, payload: Any) -> OutboxItem:
    return OutboxItem(action, lambda: payload)


def _notify_report_item(
    request_id: int, generated: str, seq: int, chunk: list[dict[str, Any]], tbc: bool
) -> OutboxItem:
    return _item(
        "NotifyReport",
        call.NotifyReport(
            request_id=request_id, generated_at=generated, seq_no=seq, report_data=chunk or None, tbc=tbc
        ),
    )
