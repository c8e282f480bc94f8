"""OCPP 1.6J / 2.0.1 charge-point simulator (a black box to the CSMS: it never imports `csms`).

Main entry points: `SimStation` (one station), `Fleet` + `load_scenario` (many, from TOML),
`SimClock` (simulated time), `EVSpec`/`EVState` (vehicles) and `Behaviour` (non-idealities).
"""

from simulator.clock import SimClock, format_ts, parse_ts
from simulator.connection import NotConnectedError
from simulator.ev import EVSpec, EVState
from simulator.fleet import Fleet, FleetSummary
from simulator.model import Behaviour, ConnectorSnapshot, ConnectorState, Protocol, StationSnapshot, StopReason
from simulator.scenario import Scenario, ScenarioError, load_scenario
from simulator.station import SimStation

__all__ = [
    "Behaviour",
    "ConnectorSnapshot",
    "ConnectorState",
    "EVSpec",
    "EVState",
    "Fleet",
    "FleetSummary",
    "NotConnectedError",
    "Protocol",
    "Scenario",
    "ScenarioError",
    "SimClock",
    "SimStation",
    "StationSnapshot",
    "StopReason",
    "format_ts",
    "load_scenario",
    "parse_ts",
]
