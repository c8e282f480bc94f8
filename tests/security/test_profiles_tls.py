"""Security profiles 2 and 3 on the TLS port: server certificates, TLS versions and suites, client certificates
(chain, expiry, subject), all created on the fly with trustme. Real server, real TLS over loopback."""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import trustme
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage, InvalidStatus

from csms.config import load_settings
from csms.errors import ConfigError
from csms.runtime.app import CentralSystem
from csms.runtime.tls import server_context
from simulator.station import SimStation
from tests.conftest import make_settings
from tests.http_api import admin_client
from tests.ocpp_client import RawClient
from tests.security.helpers import V16_BOOT, basic, events, handshake, set_security, ws_url

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "tls-Passw0rd-0123"
CPO = "ACME Charging"

# A00.FR.317: the suites every CSMS must offer on TLS 1.2.
REQUIRED_SUITES = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "AES128-GCM-SHA256",  # TLS_RSA_WITH_AES_128_GCM_SHA256
    "AES256-GCM-SHA384",  # TLS_RSA_WITH_AES_256_GCM_SHA384
]


@dataclass
class Pki:
    server_ca: trustme.CA
    station_ca: trustme.CA
    settings: dict[str, object]

    def client(self, cert: trustme.LeafCert | None = None, **versions: ssl.TLSVersion) -> ssl.SSLContext:
        """A station's TLS context trusting our server CA, optionally presenting ``cert``."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.server_ca.configure_trust(context)
        for name, version in versions.items():
            setattr(context, name, version)
        if cert is not None:
            cert.configure_cert(context)
        return context

    def station_cert(self, cn: str, org: str | None = CPO, ca: trustme.CA | None = None, **kw: Any) -> trustme.LeafCert:
        return (ca or self.station_ca).issue_cert(
            f"{cn.lower()}.stations.test", common_name=cn, organization_name=org, **kw
        )


@pytest.fixture(scope="module")
def pki_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[trustme.CA, trustme.CA, dict[str, object]]]:
    """A server CA with an RSA and an ECDSA server certificate for 127.0.0.1, and a CA for station certificates."""
    directory = tmp_path_factory.mktemp("pki")
    server_ca = trustme.CA(organization_name="CSMS test server CA")
    station_ca = trustme.CA(organization_name="CSMS test station CA")
    rsa = server_ca.issue_cert("127.0.0.1", key_type=trustme.KeyType.RSA)
    ecdsa = server_ca.issue_cert("127.0.0.1", key_type=trustme.KeyType.ECDSA)
    rsa.private_key_and_cert_chain_pem.write_to_path(str(directory / "rsa.pem"))
    ecdsa.private_key_and_cert_chain_pem.write_to_path(str(directory / "ecdsa.pem"))
    station_ca.cert_pem.write_to_path(str(directory / "stations-ca.pem"))
    settings: dict[str, object] = {
        "tls_port": 0,
        "tls_cert_file": str(directory / "rsa.pem"),
        "tls_key_file": str(directory / "rsa.pem"),
        "tls_ecdsa_cert_file": str(directory / "ecdsa.pem"),
        "tls_ecdsa_key_file": str(directory / "ecdsa.pem"),
        "tls_client_ca_file": str(directory / "stations-ca.pem"),
        "cpo_name": CPO,
    }
    yield server_ca, station_ca, settings


@pytest.fixture
def pki(pki_files: tuple[trustme.CA, trustme.CA, dict[str, object]]) -> Pki:
    return Pki(*pki_files)


@pytest.fixture
async def tls_csms(tmp_path: Path, pki: Pki) -> AsyncIterator[CentralSystem]:
    """The central system with its TLS port open next to the plain one."""
    system = CentralSystem(make_settings(tmp_path, security=pki.settings))
    await system.start()
    try:
        yield system
    finally:
        await system.stop()


def only_tls_transport_errors(caplog: pytest.LogCaptureFixture) -> None:
    """With PYTHONASYNCIODEBUG=1 asyncio logs every failed TLS handshake as an ERROR; nothing else may be one."""
    errors = [r.getMessage() for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert all(m.startswith("Error on transport creation for incoming connection") for m in errors), errors


async def tls_refused(url: str, context: ssl.SSLContext, headers: dict[str, str] | None = None) -> bool:
    """True when the TLS layer ends the connection (no HTTP answer at all)."""
    try:
        async with connect(url, subprotocols=["ocpp1.6"], ssl=context, additional_headers=headers, open_timeout=5):  # type: ignore[list-item]
            return False
    except InvalidStatus:
        return False
    except (OSError, EOFError, Exception):  # SSLError, reset, or websockets' InvalidMessage after a TLS 1.3 alert
        return True


async def handshake_events(system: CentralSystem, count: int) -> list[dict[str, Any]]:
    """The newest TlsHandshakeFailed events once ``count`` exist (stored from a task; bounded wait)."""
    for _ in range(200):
        found = await events(system, kind="TlsHandshakeFailed")
        if len(found) >= count:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {count} TlsHandshakeFailed events")


# -- profile 2 ------------------------------------------------------------------------------------------------


async def test_profile_2_needs_tls_and_the_password(tls_csms: CentralSystem, pki: Pki) -> None:
    """A profile 2 station is upgraded over TLS with its password; without it or with a wrong one it gets 401."""
    await set_security(tls_csms, "CP-2", profile=2, password=PASSWORD)
    url = ws_url(tls_csms, "CP-2", tls=True)
    assert (await handshake(url, None, pki.client()))[0] == 401
    assert (await handshake(url, basic("CP-2", "wrong-" + PASSWORD), pki.client()))[0] == 401
    client = await RawClient.open(url, ssl=pki.client(), additional_headers=basic("CP-2", PASSWORD))
    assert (await client.result("BootNotification", V16_BOOT))["status"] == "Accepted"
    assert client.connection.transport.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
    await client.close()


async def test_profile_0_and_1_stations_are_refused_on_the_tls_port(tls_csms: CentralSystem, pki: Pki) -> None:
    """A profile 1 station over TLS, and an unsecured one, get 403 with a ProfileMismatch event (A00.FR.002)."""
    await set_security(tls_csms, "CP-1", profile=1, password=PASSWORD)
    assert (await handshake(ws_url(tls_csms, "CP-1", tls=True), basic("CP-1", PASSWORD), pki.client()))[0] == 403
    assert (await handshake(ws_url(tls_csms, "NEW-1", tls=True), None, pki.client()))[0] == 403
    mismatches = await events(tls_csms, kind="ProfileMismatch")
    assert {e["station_id"] for e in mismatches} == {"CP-1", "NEW-1"}


@pytest.mark.parametrize("suite", REQUIRED_SUITES)
async def test_each_required_tls12_suite_connects_without_compression(
    tls_csms: CentralSystem, pki: Pki, suite: str
) -> None:
    """Every A00.FR.317 suite is offered on TLS 1.2 (RSA and ECDSA certificates), and TLS is never compressed."""
    await set_security(tls_csms, "CP-S", profile=2, password=PASSWORD)
    context = pki.client(maximum_version=ssl.TLSVersion.TLSv1_2)
    context.set_ciphers(suite)
    url = ws_url(tls_csms, "CP-S", tls=True)
    async with connect(url, subprotocols=["ocpp1.6"], ssl=context, additional_headers=basic("CP-S", PASSWORD)) as ws:  # type: ignore[list-item]
        tls = ws.transport.get_extra_info("ssl_object")
        assert (tls.version(), tls.cipher()[0], tls.compression()) == ("TLSv1.2", suite, None)


async def test_tls13_connects(tls_csms: CentralSystem, pki: Pki) -> None:
    """TLS 1.3 is accepted."""
    await set_security(tls_csms, "CP-13", profile=2, password=PASSWORD)
    context = pki.client(minimum_version=ssl.TLSVersion.TLSv1_3)
    url = ws_url(tls_csms, "CP-13", tls=True)
    async with connect(url, subprotocols=["ocpp1.6"], ssl=context, additional_headers=basic("CP-13", PASSWORD)) as ws:  # type: ignore[list-item]
        assert ws.transport.get_extra_info("ssl_object").version() == "TLSv1.3"


@pytest.mark.allow_error_logs
async def test_tls11_client_is_refused_with_an_event(
    tls_csms: CentralSystem, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """A station offering only TLS 1.1 (or older) is refused in the handshake (A00.FR.312-.314) and audited."""
    await set_security(tls_csms, "CP-OLD", profile=2, password=PASSWORD)
    with warnings.catch_warnings():  # the client is deliberately obsolete
        warnings.simplefilter("ignore", DeprecationWarning)
        context = pki.client(minimum_version=ssl.TLSVersion.TLSv1_1, maximum_version=ssl.TLSVersion.TLSv1_1)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client's OpenSSL offer TLS 1.1 at all
    assert await tls_refused(ws_url(tls_csms, "CP-OLD", tls=True), context, basic("CP-OLD", PASSWORD))
    (event,) = await handshake_events(tls_csms, 1)
    assert "PROTOCOL" in event["detail"].upper(), event
    assert event["remote_ip"] == "127.0.0.1" and event["station_id"] is None  # no path before TLS
    only_tls_transport_errors(caplog)


# -- profile 3 ------------------------------------------------------------------------------------------------


async def test_profile_3_accepts_the_station_certificate(tls_csms: CentralSystem, pki: Pki) -> None:
    """A certificate from the station CA with CN == identity and O == CPO name opens the connection."""
    await set_security(tls_csms, "CP-3", profile=3)
    context = pki.client(pki.station_cert("CP-3"))
    client = await RawClient.open(ws_url(tls_csms, "CP-3", tls=True), ssl=context)
    assert (await client.result("BootNotification", V16_BOOT))["status"] == "Accepted"
    await client.close()


@pytest.mark.parametrize(
    ("identity", "cn", "org", "kind", "detail"),
    [
        ("CP-3", None, None, "CertificateMissing", "no client certificate"),
        ("CP-3", "CP-4", CPO, "CertificateRejected", "is not the station identity"),  # A's certificate used by B
        ("CP-33", "CP-3", CPO, "CertificateRejected", "is not the station identity"),  # no substring match
        ("CP-3", "CP-3", "Other CPO", "CertificateRejected", "is not the CPO name"),
        ("CP-3", "CP-3", f"{CPO} Ltd", "CertificateRejected", "is not the CPO name"),
        ("CP-3", "CP-3", None, "CertificateRejected", "is not the CPO name"),
    ],
)
async def test_profile_3_refuses_certificates_of_someone_else(
    tls_csms: CentralSystem, pki: Pki, identity: str, cn: str | None, org: str | None, kind: str, detail: str
) -> None:
    """No certificate, another station's CN, a CN that merely contains the identity, or a wrong O: 403 and an
    event saying which (CN and O compared exactly)."""
    await set_security(tls_csms, identity, profile=3)
    context = pki.client(pki.station_cert(cn, org) if cn else None)
    status, _, _ = await handshake(ws_url(tls_csms, identity, tls=True), None, context)
    assert status == 403
    (event,) = await events(tls_csms, station_id=identity, kind=kind)
    assert detail in event["detail"]
    assert event["remote_ip"] == "127.0.0.1"


@pytest.mark.allow_error_logs
async def test_profile_3_refuses_expired_and_foreign_certificates_in_the_handshake(
    tls_csms: CentralSystem, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """An expired certificate and one from another CA end the TLS handshake (A00.FR.407), each with an event."""
    await set_security(tls_csms, "CP-3", profile=3)
    url = ws_url(tls_csms, "CP-3", tls=True)
    now = datetime.now(UTC)
    expired = pki.station_cert("CP-3", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1))
    assert await tls_refused(url, pki.client(expired))
    foreign = pki.station_cert("CP-3", ca=trustme.CA(organization_name=CPO))
    assert await tls_refused(url, pki.client(foreign))
    found = await handshake_events(tls_csms, 2)
    details = [e["detail"] for e in found]
    assert any("certificate has expired" in d for d in details), details
    assert any("unable to get local issuer certificate" in d for d in details), details
    assert all(e["remote_ip"] == "127.0.0.1" for e in found), found
    only_tls_transport_errors(caplog)


@pytest.mark.allow_error_logs
async def test_plain_http_to_the_tls_port_is_audited_with_peer_and_identity(
    tls_csms: CentralSystem, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """ws:// (plain HTTP) to the TLS port fails the handshake; the event names the peer and, from the request
    line, the station; an unreadable identity in the path is left out."""
    await set_security(tls_csms, "CP-PLAIN", profile=2, password=PASSWORD)
    plain = f"ws://127.0.0.1:{tls_csms.ocpp_tls_port}/ocpp/"
    for identity in ["CP-PLAIN", "bad%ZZid"]:
        try:
            async with connect(plain + identity, subprotocols=["ocpp1.6"], open_timeout=5):  # type: ignore[list-item]
                raise AssertionError("a plain websocket was upgraded on the TLS port")
        except (OSError, EOFError, InvalidMessage):
            pass
    found = await handshake_events(tls_csms, 2)
    by_station = {e["station_id"]: e for e in found}
    assert set(by_station) == {"CP-PLAIN", None}, found
    assert all(e["remote_ip"] == "127.0.0.1" for e in found), found
    assert "plain HTTP request for /ocpp/CP-PLAIN on the TLS port" in by_station["CP-PLAIN"]["detail"]
    assert "HTTP_REQUEST" in by_station["CP-PLAIN"]["detail"].upper().replace(" ", "_")
    only_tls_transport_errors(caplog)


async def test_tls_settings_errors_name_the_key(tmp_path: Path) -> None:
    """A TLS port without a certificate, or an unreadable one, is a config error naming the key."""
    without = load_settings(None, security={"tls_port": 0})
    with pytest.raises(ConfigError, match="security.tls_cert_file"):
        server_context(without.security, lambda reason: None)
    (tmp_path / "bad.pem").write_text("not a certificate")
    bad = load_settings(
        None,
        security={"tls_port": 0, "tls_cert_file": str(tmp_path / "bad.pem"), "tls_key_file": str(tmp_path / "bad.pem")},
    )
    with pytest.raises(ConfigError, match="security.tls_cert_file"):
        server_context(bad.security, lambda reason: None)


async def test_client_certificate_headers_do_not_stand_in_for_a_certificate(tls_csms: CentralSystem, pki: Pki) -> None:
    """Headers a TLS-terminating proxy would set (the PEM, or Envoy's subject) are ignored: a profile 3 station
    sending them without a real certificate gets 403 on either port."""
    await set_security(tls_csms, "CP-3", profile=3)
    pem = pki.station_cert("CP-3").cert_chain_pems[0].bytes().decode()
    headers = {
        "X-SSL-Client-Cert": quote(pem),
        "X-Client-Cert": quote(pem),
        "X-Forwarded-Client-Cert": f'Subject="O={CPO},CN=CP-3"',
    }
    assert (await handshake(ws_url(tls_csms, "CP-3"), headers))[0] == 403
    assert (await handshake(ws_url(tls_csms, "CP-3", tls=True), headers, pki.client()))[0] == 403
    assert (await events(tls_csms, station_id="CP-3", kind="CertificateMissing"))[0]["detail"].startswith("tls port")


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_simulated_profile_2_station_rotates_its_password_over_tls(
    tls_csms: CentralSystem, pki: Pki, protocol: str
) -> None:
    """A simulated station on the TLS port boots with its password, accepts a generated one, and reconnects over
    TLS with it; the old password is refused from then on."""
    identity = f"SIM-TLS-{protocol[-3:]}"
    await set_security(tls_csms, identity, profile=2, password=PASSWORD)
    station = SimStation(
        identity,
        f"wss://127.0.0.1:{tls_csms.ocpp_tls_port}/ocpp",
        protocol,
        password=PASSWORD,
        response_timeout=5.0,
        backoff_s=(0.05, 0.2),
        ssl_context=pki.client(),
    )
    await station.start()
    try:
        await station.wait_connected(5.0)
        async with admin_client(tls_csms.api_port) as http:
            response = await http.post(
                f"/stations/{identity}/security/rotate-password", json={"generate_password": True}
            )
        assert response.status_code == 200 and response.json()["station_answer"] == "Accepted", response.text
        await station.link.go_offline()
        station.link.go_online()
        await station.wait_connected(5.0)
        url = ws_url(tls_csms, identity, tls=True)
        assert (await handshake(url, basic(identity, PASSWORD), pki.client()))[0] == 401
    finally:
        await station.stop()


# -- the simulator CLI over TLS ----------------------------------------------------------------------------------

SIM_SCENARIO = """
[simulation]
speed = 60.0
duration_s = {duration}
tick_s = 5.0

[stations]
count = 1
id_prefix = "{prefix}"
connectors = 1
{tls}

[stations.protocol_mix]
"{protocol}" = 1

[[ev_models]]
name = "generic"
capacity_kwh = 50.0

[arrivals]
per_connector_per_hour = [{zeros}]
"""


async def run_sim(tmp_path: Path, *args: str, prefix: str, protocol: str, tls: str = "") -> tuple[int, str]:
    """`python -m simulator run` (the csms-sim CLI) with one station for 3 real seconds; its exit status and output."""
    scenario = tmp_path / f"{prefix}.toml"
    zeros = ", ".join(["0"] * 24)
    scenario.write_text(SIM_SCENARIO.format(duration=180, prefix=prefix, protocol=protocol, tls=tls, zeros=zeros))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        "run",
        "--scenario",
        str(scenario),
        "--no-live",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, output.decode(errors="replace")


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_simulator_cli_connects_a_profile_2_station_over_tls(
    tls_csms: CentralSystem, pki: Pki, tmp_path: Path, protocol: str
) -> None:
    """`csms-sim run --url wss://... --ca FILE --password P` boots its station on the TLS port (profile 2)."""
    identity = f"SIM2{protocol[-1]}-001"
    await set_security(tls_csms, identity, profile=2, password=PASSWORD)
    pki.server_ca.cert_pem.write_to_path(str(tmp_path / "server-ca.pem"))
    url = f"wss://127.0.0.1:{tls_csms.ocpp_tls_port}/ocpp"
    status, output = await run_sim(
        tmp_path,
        *("--url", url, "--ca", str(tmp_path / "server-ca.pem"), "--password", PASSWORD),
        prefix=f"SIM2{protocol[-1]}",
        protocol=protocol,
    )
    assert status == 0, output
    station = await tls_csms.storage.get_station(identity)
    assert station is not None and station.protocol == protocol, output
    assert await events(tls_csms, station_id=identity, kind="AuthFailed") == []


async def test_simulator_scenario_connects_a_profile_3_station_with_its_certificate(
    tls_csms: CentralSystem, pki: Pki, tmp_path: Path
) -> None:
    """A scenario naming the CA and a per-station certificate path ("{identity}") connects on profile 3; a station
    whose certificate names someone else is refused with CertificateRejected."""
    for identity, cn in [("SIM3-001", "SIM3-001"), ("SIMX-001", "SIM3-001")]:
        await set_security(tls_csms, identity, profile=3)
        pki.station_cert(cn).private_key_and_cert_chain_pem.write_to_path(str(tmp_path / f"{identity}.pem"))
    pki.server_ca.cert_pem.write_to_path(str(tmp_path / "server-ca.pem"))
    tls = f'tls_ca_file = "{tmp_path / "server-ca.pem"}"\ntls_cert_file = "{tmp_path}/{{identity}}.pem"'
    url = f"wss://127.0.0.1:{tls_csms.ocpp_tls_port}/ocpp"
    for prefix in ["SIM3", "SIMX"]:
        status, output = await run_sim(tmp_path, "--url", url, prefix=prefix, protocol="ocpp2.0.1", tls=tls)
        assert status == 0, output
    station = await tls_csms.storage.get_station("SIM3-001")
    assert station is not None and station.protocol == "ocpp2.0.1"
    assert await tls_csms.storage.get_station("SIMX-001") is None
    (refused, *_) = await events(tls_csms, station_id="SIMX-001", kind="CertificateRejected")
    assert "is not the station identity" in refused["detail"] and refused["remote_ip"] == "127.0.0.1"


async def test_simulator_cli_reports_an_unreadable_certificate(tmp_path: Path) -> None:
    """A missing --cert file is a clear error (exit 2) before any station starts."""
    status, output = await run_sim(
        tmp_path,
        "--url",
        "wss://127.0.0.1:1/ocpp",
        "--cert",
        str(tmp_path / "none.pem"),
        prefix="S",
        protocol="ocpp1.6",
    )
    assert status == 2 and "TLS error" in output and "none.pem" in output, output


def _crl(ca: trustme.CA, revoked: list[trustme.LeafCert], path: Path) -> Path:
    """A CRL signed by ``ca`` listing ``revoked`` (made with cryptography: trustme makes no CRLs)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes()).subject
    now = datetime.now(UTC)
    builder = x509.CertificateRevocationListBuilder().issuer_name(issuer)
    builder = builder.last_update(now - timedelta(hours=1)).next_update(now + timedelta(days=1))
    for leaf in revoked:
        serial = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).serial_number
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now - timedelta(minutes=5))
        builder = builder.add_revoked_certificate(entry.build())
    crl = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return path


async def test_profile_3_refuses_a_revoked_certificate(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """With the station CA's CRL configured, a revoked station certificate fails the handshake with an event;
    a certificate the CRL does not list still connects."""
    revoked, good = pki.station_cert("CP-3"), pki.station_cert("CP-3")
    crl = _crl(pki.station_ca, [revoked], tmp_path / "stations.crl.pem")
    system = CentralSystem(make_settings(tmp_path, security={**pki.settings, "tls_client_crl_file": str(crl)}))
    await system.start()
    try:
        await set_security(system, "CP-3", profile=3)
        url = ws_url(system, "CP-3", tls=True)
        assert await tls_refused(url, pki.client(revoked))
        [event] = await handshake_events(system, 1)
        assert "certificate revoked" in event["detail"] and event["remote_ip"] == "127.0.0.1"
        client = await RawClient.open(url, ssl=pki.client(good))
        assert (await client.result("BootNotification", V16_BOOT))["status"] == "Accepted"
        await client.close()
    finally:
        await system.stop()
    only_tls_transport_errors(caplog)


def test_a_crl_without_a_client_ca_is_a_config_error(tmp_path: Path, pki: Pki) -> None:
    settings = {**pki.settings, "tls_client_ca_file": None, "tls_client_crl_file": str(tmp_path / "x.pem")}
    with pytest.raises(ConfigError, match=r"security\.tls_client_crl_file"):
        server_context(make_settings(tmp_path, security=settings).security, lambda failure: None)


@pytest.mark.allow_error_logs
async def test_expired_station_certificates_are_accepted_only_when_configured(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """A00.FR.430: with security.tls_accept_expired_client_certificates the station's expired certificate connects,
    with a CertificateExpiredAccepted event each time; the rest is still checked: another station's expired
    certificate gets 403, an expired one from another CA fails the handshake. A valid one raises no event. (Off,
    the default, an expired certificate fails the handshake: test_profile_3_refuses_expired_and_foreign_...)"""
    now = datetime.now(UTC)
    past = {"not_before": now - timedelta(days=30), "not_after": now - timedelta(days=1)}
    settings = {**pki.settings, "tls_accept_expired_client_certificates": True}
    system = CentralSystem(make_settings(tmp_path, security=settings))
    await system.start()
    try:
        await set_security(system, "CP-OLD", profile=3)
        url = ws_url(system, "CP-OLD", tls=True)
        client = await RawClient.open(url, ssl=pki.client(pki.station_cert("CP-OLD", **past)))
        assert (await client.result("BootNotification", V16_BOOT))["status"] == "Accepted"
        await client.close()
        (event,) = await events(system, station_id="CP-OLD", kind="CertificateExpiredAccepted")
        assert "A00.FR.430" in event["detail"] and event["remote_ip"] == "127.0.0.1", event
        other = pki.client(pki.station_cert("CP-OTHER", **past))
        assert (await handshake(url, context=other))[0] == 403
        foreign = pki.station_cert("CP-OLD", ca=trustme.CA(organization_name=CPO), **past)
        assert await tls_refused(url, pki.client(foreign))
        assert (await handshake(url, context=pki.client(pki.station_cert("CP-OLD"))))[0] == 101
        assert len(await events(system, station_id="CP-OLD", kind="CertificateExpiredAccepted")) == 1
    finally:
        await system.stop()
    only_tls_transport_errors(caplog)


def test_accepting_expired_certificates_without_a_client_ca_is_a_config_error(tmp_path: Path, pki: Pki) -> None:
    settings = {**pki.settings, "tls_client_ca_file": None, "tls_accept_expired_client_certificates": True}
    with pytest.raises(ConfigError, match=r"security\.tls_accept_expired_client_certificates"):
        server_context(make_settings(tmp_path, security=settings).security, lambda failure: None)


def legacy_client(pki: Pki, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A 1.6 legacy station's TLS: only ``version`` (1.0 or 1.1) and only TLS_RSA_WITH_AES_128_CBC_SHA."""
    with warnings.catch_warnings():  # the client is deliberately obsolete
        warnings.simplefilter("ignore", DeprecationWarning)
        context = pki.client(minimum_version=version, maximum_version=version)
    context.set_ciphers("AES128-SHA:@SECLEVEL=0")  # let the client's OpenSSL offer TLS 1.0/1.1 at all
    return context


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
async def test_listed_v16_legacy_station_may_use_tls_1_0_or_1_1(
    tmp_path: Path, pki: Pki, version: ssl.TLSVersion
) -> None:
    """A00.FR.324: a station listed in security.tls_legacy_v16_stations connects over TLS 1.0/1.1 with
    TLS_RSA_WITH_AES_128_CBC_SHA and OCPP 1.6. Over the same old TLS, an unlisted station, or the listed one
    speaking 2.0.1 (which bans TLS < 1.2), gets 403 and a LegacyTlsRefused event. A TLS 1.2 client still gets an
    AEAD suite. (Without the setting TLS 1.1 fails the handshake: test_tls11_client_is_refused_with_an_event.)"""
    settings = {**pki.settings, "tls_legacy_v16_stations": ["CP-LEGACY"]}
    system = CentralSystem(make_settings(tmp_path, security=settings))
    await system.start()
    try:
        for identity in ["CP-LEGACY", "CP-MODERN"]:
            await set_security(system, identity, profile=2, password=PASSWORD)
        url = ws_url(system, "CP-LEGACY", tls=True)
        old = legacy_client(pki, version)
        client = await RawClient.open(url, ssl=old, additional_headers=basic("CP-LEGACY", PASSWORD))
        ssl_object = client.connection.transport.get_extra_info("ssl_object")
        assert (ssl_object.version(), ssl_object.cipher()[0]) == (version.name.replace("_", "."), "AES128-SHA")
        assert (await client.result("BootNotification", V16_BOOT))["status"] == "Accepted"
        await client.close()
        modern = ws_url(system, "CP-MODERN", tls=True)
        assert (await handshake(modern, basic("CP-MODERN", PASSWORD), old))[0] == 403
        v201 = await handshake(url, basic("CP-LEGACY", PASSWORD), old, subprotocols=("ocpp2.0.1",))
        assert v201[0] == 403 and "TLS 1.2" in v201[2], v201
        refused = await events(system, kind="LegacyTlsRefused")
        assert {e["station_id"] for e in refused} == {"CP-LEGACY", "CP-MODERN"}, refused
        current = pki.client(maximum_version=ssl.TLSVersion.TLSv1_2)
        headers = basic("CP-MODERN", PASSWORD)
        async with connect(modern, subprotocols=["ocpp1.6"], ssl=current, additional_headers=headers) as ws:  # type: ignore[list-item]
            assert "GCM" in ws.transport.get_extra_info("ssl_object").cipher()[0]
    finally:
        await system.stop()
