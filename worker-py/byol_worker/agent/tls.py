"""TLS settings of the agent's gRPC connection: the CA that signed the coordinator's certificate (the agent
verifies the coordinator), an optional client certificate and key (mTLS), and a server-name override for
when the address dialled is not a name in the certificate (e.g. tests dialling 127.0.0.1)."""
from __future__ import annotations

from dataclasses import dataclass

import grpc

PEM_CERT = b"-----BEGIN CERTIFICATE-----"


class TlsFlagError(ValueError):
    """A TLS flag names a file that cannot be used; `flag` names the flag."""

    def __init__(self, flag: str, value: str, reason: str) -> None:
        super().__init__(reason)
        self.flag, self.value, self.reason = flag, value, reason


@dataclass(frozen=True)
class TlsSettings:
    root_pem: bytes
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    server_name: str = ""

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.root_pem, private_key=self.key_pem,
                                            certificate_chain=self.cert_pem)

    def channel_options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def _read(flag: str, path: str, marker: bytes, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise TlsFlagError(flag, path, str(e)) from None
    if marker not in data:
        raise TlsFlagError(flag, path, f"no PEM {what} in the file")
    return data


def load_tls(ca: str, cert: str, key: str, server_name: str) -> TlsSettings | None:
    """None when no TLS flag is given (plaintext). Raises TlsFlagError naming the flag."""
    if not ca:
        for flag, value in (("--tls-cert", cert), ("--tls-key", key), ("--tls-server-name", server_name)):
            if value:
                raise TlsFlagError(flag, value, "needs --tls-ca (the CA that signed the coordinator's certificate)")
        return None
    if bool(cert) != bool(key):
        raise TlsFlagError("--tls-cert" if not cert else "--tls-key", cert or key, "--tls-cert and --tls-key go together")
    return TlsSettings(
        root_pem=_read("--tls-ca", ca, PEM_CERT, "certificate"),
        cert_pem=_read("--tls-cert", cert, PEM_CERT, "certificate") if cert else None,
        key_pem=_read("--tls-key", key, b"PRIVATE KEY-----", "private key") if key else None,
        server_name=server_name)
