"""Mutual TLS on every link, with certificates from the federation's PKI.

A process's TLS identity is a directory holding ``key.pem`` (0600), ``cert.pem`` (its
certificate followed by the issuing provincial CA, if any) and ``root.pem`` (the pinned national
root). Servers require and verify a client certificate; channels verify the server against the
root. Plain text exists only behind the loudly named ``allow_insecure_dev_only`` switch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from nodes.identity import Identity, Unauthenticated, identity_from_pem
from trust import pki
from trust.files import PUBLIC, SECRET, write_directory


@dataclass(frozen=True)
class TlsIdentity:
    """PEM material of one TLS endpoint."""

    private_key: bytes
    certificate_chain: bytes
    root: bytes

    @classmethod
    def load(cls, directory: Path) -> TlsIdentity:
        return cls(
            private_key=(directory / "key.pem").read_bytes(),
            certificate_chain=(directory / "cert.pem").read_bytes(),
            root=(directory / "root.pem").read_bytes(),
        )


def write_tls_identity(
    directory: Path,
    *,
    key: pki.PrivateKey,
    certificate: x509.Certificate,
    chain: tuple[x509.Certificate, ...],
    root: x509.Certificate,
) -> TlsIdentity:
    """Store a TLS identity (key 0600) as a new directory, whole or not at all, and return it;
    an existing identity is refused before anything is written (trust.files)."""
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in (certificate, *chain))
    write_directory(
        directory,
        {
            "key.pem": (pki.private_key_to_pem(key), SECRET),
            "cert.pem": (pem, PUBLIC),
            "root.pem": (root.public_bytes(Encoding.PEM), PUBLIC),
        },
    )
    return TlsIdentity.load(directory)


def server_credentials(tls: TlsIdentity) -> grpc.ServerCredentials:
    """Server side: present our chain, require a client certificate chaining to the root."""
    return grpc.ssl_server_credentials(
        [(tls.private_key, tls.certificate_chain)],
        root_certificates=tls.root,
        require_client_auth=True,
    )


def channel_credentials(tls: TlsIdentity) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=tls.root,
        private_key=tls.private_key,
        certificate_chain=tls.certificate_chain,
    )


def _name_options(target: str) -> list[tuple[str, str]]:
    """For a target naming several servers ("ipv4:10.0.0.1:50051,10.0.0.2:50051"), verify
    each server's certificate against the host of the first address (gRPC would otherwise
    check the whole target string)."""
    scheme, _, addresses = target.partition(":")
    if scheme not in ("ipv4", "ipv6", "dns") or "," not in addresses:
        return []
    first = addresses.split(",")[0].removeprefix("//")
    host = first.rsplit(":", 1)[0].strip("[]")  # "10.0.0.1:50051" / "[::1]:50051" -> host
    return [("grpc.ssl_target_name_override", host)]


def split_target(target: str) -> list[str]:
    """One target per server of a target naming several ("ipv4:a:1,b:2" -> "ipv4:a:1",
    "ipv4:b:2"), in their order; any other target as it is."""
    scheme, _, addresses = target.partition(":")
    if scheme not in ("ipv4", "ipv6") or "," not in addresses:
        return [target]
    return [f"{scheme}:{address}" for address in addresses.split(",") if address]


def aio_channel(
    target: str, tls: TlsIdentity | None, *, allow_insecure_dev_only: bool = False
) -> grpc.aio.Channel:
    """A grpc.aio channel: mTLS, or plain text only when explicitly allowed for development."""
    if tls is not None:
        return grpc.aio.secure_channel(
            target, channel_credentials(tls), options=_name_options(target)
        )
    if not allow_insecure_dev_only:
        raise ValueError("no TLS identity given and plain text not allowed")
    return grpc.aio.insecure_channel(target)


def sync_channel(
    target: str, tls: TlsIdentity | None, *, allow_insecure_dev_only: bool = False
) -> grpc.Channel:
    """A blocking channel (CLI), with the same rules as ``aio_channel``."""
    if tls is not None:
        return grpc.secure_channel(target, channel_credentials(tls), options=_name_options(target))
    if not allow_insecure_dev_only:
        raise ValueError("no TLS identity given and plain text not allowed")
    return grpc.insecure_channel(target)


@dataclass(frozen=True)
class Transport:
    """How a process connects and listens: mTLS with ``tls``, or development plain text.

    ``Transport.insecure_dev_only()`` is the only way to get plain text, so it stands out in
    code review; servers and channels made from one Transport always agree.
    """

    tls: TlsIdentity | None
    allow_insecure_dev_only: bool = False

    def __post_init__(self) -> None:
        if self.tls is None and not self.allow_insecure_dev_only:
            raise ValueError(
                "a TLS identity is required (plain text only with --insecure-dev-only)"
            )

    @classmethod
    def mtls(cls, directory: Path) -> Transport:
        return cls(TlsIdentity.load(directory))

    @classmethod
    def insecure_dev_only(cls) -> Transport:
        return cls(None, allow_insecure_dev_only=True)

    @property
    def secure(self) -> bool:
        return self.tls is not None

    def aio_channel(self, target: str) -> grpc.aio.Channel:
        return aio_channel(target, self.tls, allow_insecure_dev_only=self.allow_insecure_dev_only)

    def sync_channel(self, target: str) -> grpc.Channel:
        return sync_channel(target, self.tls, allow_insecure_dev_only=self.allow_insecure_dev_only)

    def node_channel(self, target: str, *, anchor: bytes, name: str) -> grpc.aio.Channel:
        """A channel that opens only to one node: its certificate must chain to ``anchor``
        (the province's own CA, not the national root) and name ``name`` (the node's identity
        DNS name), whatever address ``target`` is. Plain text in development only."""
        if self.tls is None:
            return aio_channel(target, None, allow_insecure_dev_only=self.allow_insecure_dev_only)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=anchor,
            private_key=self.tls.private_key,
            certificate_chain=self.tls.certificate_chain,
        )
        return grpc.aio.secure_channel(
            target, credentials, options=[("grpc.ssl_target_name_override", name)]
        )

    def add_port(self, server: grpc.aio.Server, listen: str) -> int:
        if self.tls is None:
            return server.add_insecure_port(listen)
        return server.add_secure_port(listen, server_credentials(self.tls))


def peer_identity(context: Any) -> Identity:
    """The verified client identity of a call; raises Unauthenticated without one."""
    auth = context.auth_context()
    pems = auth.get("x509_pem_cert") if auth else None
    if not pems:
        raise Unauthenticated("a client certificate is required")
    return identity_from_pem(bytes(pems[0]))
