"""Rich rendering of the fleet: a live per-station table and the final summary."""

from __future__ import annotations

from datetime import datetime

from rich.table import Table

from simulator.fleet import FleetSummary
from simulator.model import ConnectorState, StationSnapshot

__all__ = ["render_stations", "render_summary"]

_STYLE = {
    ConnectorState.AVAILABLE: "green",
    ConnectorState.PREPARING: "yellow",
    ConnectorState.CHARGING: "bold cyan",
    ConnectorState.SUSPENDED_EV: "blue",
    ConnectorState.SUSPENDED_EVSE: "magenta",
    ConnectorState.FINISHING: "yellow",
    ConnectorState.RESERVED: "bright_black",
    ConnectorState.UNAVAILABLE: "red",
    ConnectorState.FAULTED: "bold red",
}


def _connectors(snap: StationSnapshot) -> str:
    return " ".join(f"[{_STYLE[c.state]}]{c.connector_id}:{c.state.value}[/]" for c in snap.connectors)


def render_stations(snaps: list[StationSnapshot], sim_time: datetime, max_rows: int = 60) -> Table:
    """Per-station table; with many stations the busiest `max_rows` are shown."""
    total_kw = sum(s.power_w for s in snaps) / 1000
    total_kwh = sum(s.energy_wh for s in snaps) / 1000
    connected = sum(1 for s in snaps if s.connected)
    table = Table(
        title=f"csms-sim  {sim_time:%Y-%m-%d %H:%M:%S}Z  connected {connected}/{len(snaps)}  "
        f"{total_kw:.1f} kW  {total_kwh:.1f} kWh",
        expand=False,
    )
    table.add_column("Station")
    table.add_column("Protocol")
    table.add_column("Online", justify="center")
    table.add_column("Connectors")
    table.add_column("Sessions", justify="right")
    table.add_column("kW", justify="right")
    table.add_column("kWh", justify="right")
    table.add_column("Queued", justify="right")
    shown = snaps
    if len(snaps) > max_rows:
        shown = sorted(snaps, key=lambda s: (s.active_sessions, s.power_w), reverse=True)[:max_rows]
    for snap in shown:
        table.add_row(
            snap.identity,
            snap.protocol.value,
            "[green]yes[/]" if snap.connected else "[red]no[/]",
            _connectors(snap),
            str(snap.active_sessions),
            f"{snap.power_w / 1000:.1f}",
            f"{snap.energy_wh / 1000:.2f}",
            str(snap.queued_messages) if snap.queued_messages else "",
        )
    if len(snaps) > max_rows:
        table.caption = f"{len(snaps) - max_rows} more stations not shown"
    return table


def render_summary(summary: FleetSummary, sim_elapsed_s: float) -> Table:
    table = Table(title="Simulation summary", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("simulated time", f"{sim_elapsed_s / 3600:.2f} h"),
        ("stations (connected at end)", f"{summary.stations} ({summary.connected})"),
        ("EV arrivals", str(summary.arrivals)),
        ("sessions started / completed", f"{summary.sessions_started} / {summary.sessions_completed}"),
        ("energy delivered", f"{summary.energy_kwh:.2f} kWh"),
        ("messages sent", str(summary.messages_sent)),
        ("still queued", str(summary.queued_messages)),
        ("reconnects", str(summary.reconnects)),
        ("errors", str(summary.errors)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table
