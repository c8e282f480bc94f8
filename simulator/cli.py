"""`csms-sim`: run a simulated fleet against a CSMS, with a live table and a final summary."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Annotated

import ocpp.messages
import typer
from rich.console import Console
from rich.live import Live
from rich.logging import RichHandler

from simulator.dashboard import render_stations, render_summary
from simulator.fleet import Fleet
from simulator.scenario import Scenario, ScenarioError, load_scenario
from simulator.tls import TlsOptions, TlsSetupError

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, help="OCPP 1.6J / 2.0.1 charge-point simulator.")
console = Console()

_PROTOCOLS = ("mixed", "1.6", "2.0.1")


def _load(path: Path) -> Scenario:
    try:
        return load_scenario(path)
    except ScenarioError as exc:
        console.print(f"[red]scenario error:[/] {exc}")
        raise typer.Exit(code=2) from None


@app.command()
def run(
    url: Annotated[str, typer.Option(help="CSMS endpoint; the station identity is appended")] = (
        "ws://127.0.0.1:9000/ocpp"
    ),
    scenario: Annotated[Path, typer.Option(help="TOML scenario file")] = Path("config/scenarios/demo.toml"),
    stations: Annotated[int | None, typer.Option(min=1, help="number of stations (overrides the scenario)")] = None,
    protocol: Annotated[str | None, typer.Option(help="mixed | 1.6 | 2.0.1 (default: the scenario's mix)")] = None,
    speed: Annotated[float | None, typer.Option(min=0.001, help="simulated seconds per real second")] = None,
    duration: Annotated[
        float | None, typer.Option(min=0, help="simulated seconds to run (0 = until Ctrl-C); real = duration/speed")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (overrides the scenario)")] = None,
    password: Annotated[str | None, typer.Option(help="Basic-auth password for every station")] = None,
    ca: Annotated[
        Path | None, typer.Option(help="wss://: CA file of the CSMS certificate (default: system trust store)")
    ] = None,
    cert: Annotated[
        str | None,
        typer.Option(help="wss:// profile 3: client certificate PEM; '{identity}' in the path is each station's id"),
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="key of --cert (default: the --cert file); may use '{identity}'")
    ] = None,
    key_password: Annotated[str | None, typer.Option(help="password of an encrypted --key")] = None,
    live: Annotated[bool, typer.Option(help="live table (--no-live prints a status line instead)")] = True,
    log_level: Annotated[str, typer.Option(help="log level for simulator/ocpp/websockets")] = "WARNING",
) -> None:
    """Run a fleet until the duration ends or Ctrl-C, then print a summary."""
    if protocol is not None and protocol not in _PROTOCOLS:
        console.print(f"[red]--protocol must be one of {', '.join(_PROTOCOLS)}[/]")
        raise typer.Exit(code=2)
    scen = _load(scenario)
    logging.basicConfig(
        level=log_level.upper(), handlers=[RichHandler(console=console, show_path=False)], format="%(message)s"
    )
    # Schema validation in a worker thread costs more than the validation itself for small messages.
    ocpp.messages.ASYNC_VALIDATION = False
    tls = None
    if ca is not None or cert is not None:
        cfg = scen.stations
        tls = TlsOptions(
            ca or cfg.tls_ca_file,
            cert or cfg.tls_cert_file,
            key or (cfg.tls_key_file if cert is None else None),
            key_password or cfg.tls_key_password,
        )
    try:
        fleet = Fleet(scen, url, count=stations, protocol=protocol, speed=speed, seed=seed, password=password, tls=tls)
    except TlsSetupError as exc:
        console.print(f"[red]TLS error:[/] {exc}")
        raise typer.Exit(code=2) from None
    sim_duration = scen.simulation.duration_s if duration is None else duration
    asyncio.run(_run(fleet, sim_duration, live))


async def _run(fleet: Fleet, duration_s: float, live: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_signal() -> None:
        nonlocal interrupts
        interrupts += 1
        stop.set()
        if interrupts > 1:  # a second Ctrl-C: stop waiting for a graceful shutdown
            raise SystemExit(130)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal)

    started = fleet.clock.now()
    await fleet.start()
    runner = asyncio.create_task(fleet.run(duration_s or None, stop))
    try:
        if live:
            with Live(
                render_stations(fleet.snapshots(), fleet.clock.now()), console=console, refresh_per_second=2
            ) as view:
                while not runner.done():
                    await asyncio.wait({runner}, timeout=0.5)
                    view.update(render_stations(fleet.snapshots(), fleet.clock.now()))
        else:
            while not runner.done():
                await asyncio.wait({runner}, timeout=5.0)
                s = fleet.summary()
                console.print(
                    f"{fleet.clock.now():%H:%M:%S} connected {s.connected}/{s.stations} active {s.active_sessions} "
                    f"{s.power_kw:.1f} kW {s.energy_kwh:.1f} kWh queued {s.queued_messages}"
                )
        await runner
    finally:
        stop.set()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await fleet.stop(graceful=True)
        elapsed = (fleet.clock.now() - started).total_seconds()
        console.print(render_summary(fleet.summary(), elapsed))


@app.command()
def validate(scenario: Annotated[Path, typer.Argument(help="TOML scenario file")]) -> None:
    """Check a scenario file and print what it describes."""
    scen = _load(scenario)
    st = scen.stations
    mix = ", ".join(f"{k.value} {v:g}" for k, v in st.protocol_mix.items())
    console.print(
        f"[green]ok[/] {scenario}: {st.count} stations x {st.connectors} connectors ({mix}), "
        f"{len(scen.ev_models)} EV models, speed {scen.simulation.speed:g}, {scen.simulation.duration_s:g} s simulated"
    )


def main() -> None:
    app()
