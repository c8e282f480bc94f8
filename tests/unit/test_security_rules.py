"""Pure charger-security rules: listener requirements, Basic-auth parsing, certificate subjects, redaction and the
auth-failure throttle (time passed in)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, strategies as st

from csms.domain.security import (
    REDACTED,
    CredentialError,
    FailureThrottle,
    Listener,
    Requirement,
    SecurityProfile,
    VerifiedLogins,
    parse_basic_auth,
    redact_secrets,
    requirement,
    secret_candidates,
    subject_problem,
)


@pytest.mark.parametrize(
    ("profile", "listener", "expected"),
    [
        (SecurityProfile.UNSECURED, Listener.PLAIN, Requirement.NOTHING),
        (SecurityProfile.BASIC, Listener.PLAIN, Requirement.PASSWORD),
        (SecurityProfile.TLS_BASIC, Listener.PLAIN, Requirement.WRONG_LISTENER),
        (SecurityProfile.MUTUAL_TLS, Listener.PLAIN, Requirement.WRONG_LISTENER),
        (SecurityProfile.UNSECURED, Listener.TLS, Requirement.WRONG_LISTENER),
        (SecurityProfile.BASIC, Listener.TLS, Requirement.WRONG_LISTENER),
        (SecurityProfile.TLS_BASIC, Listener.TLS, Requirement.PASSWORD),
        (SecurityProfile.MUTUAL_TLS, Listener.TLS, Requirement.CERTIFICATE),
    ],
)
def test_each_profile_is_served_on_one_listener_only(
    profile: SecurityProfile, listener: Listener, expected: Requirement
) -> None:
    """Profiles 0/1 only on the plain port, 2/3 only on the TLS port; 3 needs a certificate, 1/2 a password."""
    assert requirement(profile, listener) is expected


def _header(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


@given(user=st.text(st.characters(blacklist_characters=":", blacklist_categories=("Cs",)), min_size=1), pw=st.binary())
def test_basic_auth_splits_at_the_first_colon_and_keeps_password_bytes(user: str, pw: bytes) -> None:
    """Any user without ':' and any password bytes (':' and non-UTF-8 included) survive the round trip."""
    parsed = parse_basic_auth(_header(user.encode() + b":" + pw))
    assert (parsed.username, parsed.password) == (user, pw)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "no Authorization header"),
        ("Bearer abc", "not Basic"),
        ("Basic !!!", "not valid base64"),
        (_header(b"no-colon"), "no ':'"),
        (_header(b"\xff\xfe:pw"), "not UTF-8"),
    ],
)
def test_unreadable_basic_auth_is_a_credential_error(header: str | None, message: str) -> None:
    """Missing, non-Basic, non-base64, colon-less or non-UTF-8-user headers are refused with the reason."""
    with pytest.raises(CredentialError, match=message):
        parse_basic_auth(header)


def test_hex_looking_passwords_are_also_tried_decoded() -> None:
    """32..40 hex digits stand for the raw key too; anything else is only itself."""
    key = bytes(range(20))
    assert secret_candidates(key.hex().encode()) == (key.hex().encode(), key)
    assert secret_candidates(b"not-hex-at-all-0123456789") == (b"not-hex-at-all-0123456789",)
    assert secret_candidates(b"ab" * 15) == (b"ab" * 15,)  # 30 digits: too short for a key


def _subject(cn: list[str], org: list[str]) -> tuple[tuple[tuple[str, str], ...], ...]:
    return tuple((("commonName", v),) for v in cn) + tuple((("organizationName", v),) for v in org)


@pytest.mark.parametrize(
    ("cn", "org", "identity", "ok"),
    [
        (["CP-1"], ["CPO"], "CP-1", True),
        (["CP-1"], ["CPO"], "CP-12", False),  # no substring match (SteVe's mistake)
        (["CP-12"], ["CPO"], "CP-1", False),
        (["cp-1"], ["CPO"], "CP-1", False),
        ([], ["CPO"], "CP-1", False),  # a CPO certificate without CN cannot claim any identity (MaEVe's)
        (["CP-1", "CP-2"], ["CPO"], "CP-1", False),
        (["CP-1"], ["CPO Ltd"], "CP-1", False),
        (["CP-1"], [], "CP-1", False),
    ],
)
def test_certificate_subject_must_name_exactly_this_station_and_the_cpo(
    cn: list[str], org: list[str], identity: str, ok: bool
) -> None:
    """CN equals the identity and O the CPO name, exactly and once."""
    assert (subject_problem(_subject(cn, org), identity, "CPO") is None) is ok


def test_password_values_are_redacted_in_both_versions() -> None:
    """AuthorizationKey values and BasicAuthPassword attribute values are masked; other values kept."""
    v16 = {"key": "AuthorizationKey", "value": "secret-secret-123"}
    v201 = {
        "setVariableData": [
            {"attributeValue": "pw", "component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}},
            {"attributeValue": "60", "component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
        ]
    }
    assert redact_secrets(v16) == {"key": "AuthorizationKey", "value": REDACTED}
    values = [item["attributeValue"] for item in redact_secrets(v201)["setVariableData"]]
    assert values == [REDACTED, "60"]
    assert redact_secrets({"key": "HeartbeatInterval", "value": "60"})["value"] == "60"
    get_configuration = {"key": ["AuthorizationKey", "HeartbeatInterval"]}  # 1.6 asks with a list of names
    assert redact_secrets(get_configuration) == get_configuration


def test_throttle_locks_after_limit_failures_in_the_window_and_unlocks_after_the_lockout() -> None:
    """Failures older than the window do not count; the lock lasts exactly the lockout; success clears."""
    throttle = FailureThrottle(limit=3, window=60, lockout=30, max_keys=100)
    assert not throttle.fail("cp", 0) and not throttle.fail("cp", 10)
    assert not throttle.fail("cp", 70)  # the failure at 0 left the window
    assert throttle.locked_for("cp", 70) == 0
    assert not throttle.fail("cp", 71)  # 10 left too: 70, 71
    assert throttle.fail("cp", 72)  # 70, 71, 72
    assert throttle.locked_for("cp", 80) == 22
    assert throttle.locked_for("cp", 102) == 0
    throttle.fail("other", 0)
    throttle.succeed("other")
    assert not throttle.fail("other", 1) and not throttle.fail("other", 2)


def test_throttle_memory_is_bounded() -> None:
    """A flood of distinct keys keeps at most max_keys failure counters and max_keys locks."""
    throttle = FailureThrottle(limit=1, window=60, lockout=30, max_keys=50)
    for n in range(10_000):
        throttle.fail(f"ip-{n}", n / 1000)
    assert len(throttle) <= 100
    assert throttle.locked_for("ip-9999", 10) > 0  # the newest are kept


def test_verified_logins_bind_the_password_to_its_hash_and_forget_the_least_recently_used() -> None:
    logins = VerifiedLogins(max_entries=2, key=b"k" * 32)
    first, second, third = (logins.digest(f"$argon2id$hash-{n}", b"password") for n in range(3))
    assert len({first, second, third}) == 3  # same password, other hash (another salt): another entry
    assert logins.digest("$argon2id$hash-0", b"password") == first
    assert logins.digest("$argon2id$hash-0", b"passwort") != first
    assert VerifiedLogins(2, b"x" * 32).digest("$argon2id$hash-0", b"password") != first  # keyed per process
    logins.remember(first)
    logins.remember(second)
    assert logins.known(first)  # now the most recently used
    logins.remember(third)
    assert len(logins) == 2
    assert logins.known(first) and logins.known(third) and not logins.known(second)


def test_verified_logins_keep_nothing_when_told_to() -> None:
    logins = VerifiedLogins(max_entries=0, key=b"k" * 32)
    digest = logins.digest("$argon2id$hash", b"password")
    logins.remember(digest)
    assert not logins.known(digest) and len(logins) == 0
