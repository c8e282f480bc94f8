"""TLS for simulated stations (OCPP security profiles 2 and 3): a trust store and, for profile 3, a client
certificate per station.

A profile 3 certificate carries the station identity as its CN, so a fleet needs one per station: a certificate or
key path may contain ``{identity}``, replaced by each station's identity (``certs/{identity}.pem``).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TlsOptions", "TlsSetupError"]


class TlsSetupError(ValueError):
    """A trust store, certificate or key that cannot be loaded; the message names the file."""


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """How stations open ``wss://`` connections.

    ``ca_file``: the CA bundle that signed the CSMS certificate (None: the system trust store).
    ``cert_file`` / ``key_file``: the station's client certificate and key (profile 3); ``key_file`` defaults to
    ``cert_file`` (one PEM with both). ``password`` decrypts an encrypted key.
    """

    ca_file: Path | None = None
    cert_file: str | None = None
    key_file: str | None = None
    password: str | None = None

    def context(self, identity: str) -> ssl.SSLContext:
        """The client context for station ``identity``.

        Raises:
            TlsSetupError: a file is missing or unreadable, or the key does not match the certificate.
        """
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # A00.FR.312: never below TLS 1.2
        if self.ca_file is not None:
            try:
                context.load_verify_locations(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise TlsSetupError(f"CA file {self.ca_file}: {exc}") from None
        if self.cert_file is not None:
            cert = self.cert_file.replace("{identity}", identity)
            key = (self.key_file or self.cert_file).replace("{identity}", identity)
            try:
                context.load_cert_chain(cert, key, password=self.password)
            except (OSError, ssl.SSLError) as exc:
                raise TlsSetupError(f"client certificate {cert} with key {key}: {exc}") from None
        return context
