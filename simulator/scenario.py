"""Scenario files (TOML) describing a simulated fleet, parsed into validated pydantic models.

Every table forbids unknown keys, so a typo fails loudly: `ScenarioError` names the file and the
dotted path of the offending key (e.g. `stations.conectors: Extra inputs are not permitted`).
All durations are simulated seconds unless the key says otherwise.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulator.ev import EVSpec
from simulator.model import Protocol

__all__ = [
    "ArrivalConfig",
    "BehaviourMix",
    "EVModelConfig",
    "IdTagConfig",
    "Scenario",
    "ScenarioError",
    "SimulationConfig",
    "StationsConfig",
    "StayConfig",
    "load_scenario",
    "parse_scenario",
]

Share = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulationConfig(_Strict):
    name: str = "scenario"
    speed: float = Field(60.0, gt=0, description="simulated seconds per real second")
    duration_s: float = Field(3600.0, ge=0, description="simulated seconds to run; 0 = until interrupted")
    seed: int = 1
    start: datetime | None = Field(None, description="simulated start time (default: now)")
    tick_s: float = Field(5.0, gt=0, description="physics step of each station")
    arrival_tick_s: float = Field(30.0, gt=0, description="how often arrivals are drawn")


class StationsConfig(_Strict):
    count: int = Field(10, ge=1, le=10_000)
    id_prefix: str = Field("SIM", min_length=1, max_length=30)
    connectors: int = Field(2, ge=1, le=16)
    max_current_a: float = Field(32.0, gt=0)
    voltage: float = Field(230.0, gt=0)
    password: str | None = None
    # wss:// (security profiles 2 and 3): the CA of the CSMS certificate; for profile 3 each station's client
    # certificate and key ("{identity}" in a path is replaced by the station identity). See simulator/tls.py.
    tls_ca_file: Path | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_key_password: str | None = None
    protocol_mix: dict[Protocol, float] = Field(default_factory=lambda: {Protocol.V16: 0.5, Protocol.V201: 0.5})
    meter_interval_s: int = Field(60, ge=1)

    @field_validator("protocol_mix")
    @classmethod
    def _weights(cls, mix: dict[Protocol, float]) -> dict[Protocol, float]:
        if not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        return mix


class BehaviourMix(_Strict):
    """Shares of stations with each non-ideality (exclusive; the rest behave ideally)."""

    ignore_profiles_share: Share = 0.0
    delayed_share: Share = 0.0
    delay_s: float = Field(120.0, ge=0)
    underdraw_share: Share = 0.0
    underdraw_factor: float = Field(0.7, gt=0, le=1)
    charging_needs_share: Share = Field(0.0, description="2.0.1 stations sending NotifyEVChargingNeeds")

    @model_validator(mode="after")
    def _exclusive(self) -> BehaviourMix:
        if self.ignore_profiles_share + self.delayed_share + self.underdraw_share > 1.0 + 1e-9:
            raise ValueError("ignore_profiles_share + delayed_share + underdraw_share must be <= 1")
        return self


class EVModelConfig(_Strict):
    name: str
    weight: float = Field(1.0, gt=0)
    capacity_kwh: float = Field(gt=0)
    max_current_a: float = Field(16.0, gt=0)
    phases: int = Field(3, ge=1, le=3)
    taper_soc: float = Field(0.8, gt=0, le=1)

    def spec(self, voltage: float) -> EVSpec:
        return EVSpec(
            name=self.name,
            capacity_kwh=self.capacity_kwh,
            max_current_a=self.max_current_a,
            phases=self.phases,
            voltage=voltage,
            taper_soc=self.taper_soc,
        )


class ArrivalConfig(_Strict):
    per_connector_per_hour: list[float] = Field(
        default_factory=lambda: [0.2] * 24,
        description="expected arrivals per free connector and hour, one value per hour of day (UTC)",
    )
    initial_soc_min: Share = 0.1
    initial_soc_max: Share = 0.6

    @field_validator("per_connector_per_hour")
    @classmethod
    def _hours(cls, rates: list[float]) -> list[float]:
        if len(rates) != 24:
            raise ValueError(f"needs 24 values (one per hour of day), got {len(rates)}")
        if any(r < 0 for r in rates):
            raise ValueError("rates must be >= 0")
        return rates

    @model_validator(mode="after")
    def _soc_range(self) -> ArrivalConfig:
        if self.initial_soc_min > self.initial_soc_max:
            raise ValueError("initial_soc_min must be <= initial_soc_max")
        return self


class StayConfig(_Strict):
    """Plugged-in duration, triangular between min and max with the given mode (minutes)."""

    min_minutes: float = Field(30.0, gt=0)
    mode_minutes: float = Field(120.0, gt=0)
    max_minutes: float = Field(480.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> StayConfig:
        if not self.min_minutes <= self.mode_minutes <= self.max_minutes:
            raise ValueError("need min_minutes <= mode_minutes <= max_minutes")
        return self


class IdTagConfig(_Strict):
    prefix: str = Field("TAG", min_length=1, max_length=12)
    count: int = Field(100, ge=1)
    tags: list[str] = Field(default_factory=list, description="explicit tags (override prefix/count)")
    unknown_share: Share = Field(0.0, description="arrivals presenting a tag the CSMS should not know")

    def all_tags(self) -> list[str]:
        return self.tags or [f"{self.prefix}{i:05d}" for i in range(1, self.count + 1)]


def _default_evs() -> list[EVModelConfig]:
    return [EVModelConfig(name="generic", capacity_kwh=60.0)]


class Scenario(_Strict):
    simulation: SimulationConfig = Field(default_factory=SimulationConfig)
    stations: StationsConfig = Field(default_factory=StationsConfig)
    behaviour: BehaviourMix = Field(default_factory=BehaviourMix)
    ev_models: list[EVModelConfig] = Field(default_factory=_default_evs, min_length=1)
    arrivals: ArrivalConfig = Field(default_factory=ArrivalConfig)
    stay: StayConfig = Field(default_factory=StayConfig)
    id_tags: IdTagConfig = Field(default_factory=IdTagConfig)


class ScenarioError(ValueError):
    """A scenario file that cannot be read or does not validate; the message names the bad key."""


def _location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(top level)"


def parse_scenario(data: dict[str, Any], source: str = "<scenario>") -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{_location(err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ScenarioError(f"{source}: {problems}") from None


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a TOML scenario file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: invalid TOML: {exc}") from None
    return parse_scenario(data, str(path))
