"""Pure domain rules, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.domain.metering import MeterSample, SampledValue, energy_wh
from csms.domain.stations import RegistrationStatus, decide_boot, is_valid_identity
from csms.domain.tokens import AuthorizationStatus, IdTokenRecord, authorize

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("identity", "valid"),
    [("CP-1", True), ("a" * 48, True), ("a" * 49, False), ("", False), ("a:b", False), ("a/b", False), ("a b", False)],
)
def test_identity_rules(identity: str, valid: bool) -> None:
    """Identities are 1-48 characters without ':', '/', spaces or control characters."""
    assert is_valid_identity(identity) is valid


@pytest.mark.parametrize(
    ("known", "auto", "unknown_status", "expected", "register"),
    [
        (RegistrationStatus.ACCEPTED, False, RegistrationStatus.REJECTED, RegistrationStatus.ACCEPTED, False),
        (RegistrationStatus.REJECTED, True, RegistrationStatus.REJECTED, RegistrationStatus.REJECTED, False),
        (None, True, RegistrationStatus.REJECTED, RegistrationStatus.ACCEPTED, True),
        (None, False, RegistrationStatus.REJECTED, RegistrationStatus.REJECTED, True),
        (None, False, RegistrationStatus.PENDING, RegistrationStatus.PENDING, True),
    ],
)
def test_boot_policy(
    known: RegistrationStatus | None,
    auto: bool,
    unknown_status: RegistrationStatus,
    expected: RegistrationStatus,
    register: bool,
) -> None:
    """Known stations keep their status; unknown ones follow auto_register and unknown_station_status."""
    decision = decide_boot(known, auto, unknown_status)
    assert (decision.status, decision.register) == (expected, register)


@pytest.mark.parametrize(
    ("record", "allow_unknown", "busy", "expected"),
    [
        (None, False, False, AuthorizationStatus.INVALID),
        (None, True, False, AuthorizationStatus.ACCEPTED),
        (IdTokenRecord("T", AuthorizationStatus.BLOCKED), True, False, AuthorizationStatus.BLOCKED),
        (IdTokenRecord("T", AuthorizationStatus.ACCEPTED, expiry=NOW), False, False, AuthorizationStatus.EXPIRED),
        (
            IdTokenRecord("T", AuthorizationStatus.ACCEPTED, expiry=NOW + timedelta(seconds=1)),
            False,
            False,
            AuthorizationStatus.ACCEPTED,
        ),
        (IdTokenRecord("T", AuthorizationStatus.ACCEPTED), False, True, AuthorizationStatus.CONCURRENT_TX),
    ],
)
def test_authorize(
    record: IdTokenRecord | None, allow_unknown: bool, busy: bool, expected: AuthorizationStatus
) -> None:
    """Token status, expiry, unknown-token policy and concurrent use decide authorization."""
    assert authorize(record, NOW, allow_unknown, busy).status is expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ((SampledValue(1500.0, unit="Wh"),), 1500.0),
        ((SampledValue(1.5, unit="kWh"),), 1500.0),
        ((SampledValue(10.0, phase="L1"), SampledValue(30.0)), 30.0),
        ((SampledValue(None, raw_value="signed"),), None),
        ((SampledValue(16.0, measurand="Current.Import", unit="A"),), None),
    ],
)
def test_energy_register(values: tuple[SampledValue, ...], expected: float | None) -> None:
    """The whole-meter import register is read in Wh; phases, other measurands and signed data are skipped."""
    assert energy_wh(MeterSample(NOW, values)) == expected
