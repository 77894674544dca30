"""The national tier's and the provinces' registry operations, as the simulation plays them.

Every change goes through the Registry API as a statement signed by its authority: the root's
genesis, coordinators' proposals and approvals (2 of 3), a province's DSC and CRL signed by its
own CA and submitted by its operator, a coordinator's revocation. The same functions serve the
simulation's set-up (fast, in-process) and its scenario; the scenario also runs the operators'
real `hcx` commands where it shows a procedure.
"""

from __future__ import annotations

import time

from cryptography import x509

from healthcode.v1 import registry_pb2, registry_pb2_grpc
from nodes.provincial.keys import (
    ProvinceDir,
    crl_statement,
    init_province,
    province_crl,
    upload_statement,
)
from nodes.tls import Transport
from simulations.identities import LocalPki
from trust import pki, statements
from trust.files import replace_file

PROPOSAL_LIFETIME_S = 3600


def submit(transport: Transport, address: str, statement: bytes) -> registry_pb2.SubmitResponse:
    with transport.sync_channel(address) as channel:
        reply: registry_pb2.SubmitResponse = registry_pb2_grpc.RegistryStub(channel).Submit(
            registry_pb2.SubmitRequest(statement=statement), timeout=10
        )
    return reply


def submit_genesis(identities: LocalPki, address: str) -> None:
    """Coordinator alice submits the root's genesis metadata (the log's first entry)."""
    genesis = (identities.national / "genesis.cbor").read_bytes()
    submit(identities.coordinator("alice"), address, genesis)


def onboard(
    identities: LocalPki, address: str, files: ProvinceDir, *, province: str, name: str
) -> x509.Certificate:
    """The province's CSR, the root's signature on the offline station, alice's proposal and
    bob's approval: the province is onboarded, 2 of 3."""
    csr = init_province(files, province=province)
    ca = pki.sign_provincial_ca(identities.root, csr, province=province, name=name)
    replace_file(files.ca_cert, pki.certificate_to_pem(ca))
    replace_file(files.root / "root.pem", pki.certificate_to_pem(identities.root.certificate))
    body = statements.Proposal(statements.Onboard(province, name, ca), 0,
                               int(time.time()) + PROPOSAL_LIFETIME_S)  # fmt: skip
    alice = identities.coordinator_authority("alice")
    proposed = submit(identities.coordinator("alice"), address, identities.sign(body, alice))
    bob = identities.coordinator_authority("bob")
    approval = identities.sign(statements.Approval(proposed.proposal_id), bob)
    submit(identities.coordinator("bob"), address, approval)
    return ca


def upload(identities: LocalPki, address: str, files: ProvinceDir, *, province: str,
           certificate: x509.Certificate) -> None:  # fmt: skip
    """The province's operator submits a DSC and a fresh CRL, both signed by its CA."""
    operator = identities.operator(province)
    submit(operator, address, upload_statement(files, certificate))
    submit(operator, address, crl_statement(files, province_crl(files)))


def revoke(
    identities: LocalPki, address: str, kid: bytes, reason: str, *, by: str = "carol"
) -> None:
    """One coordinator revokes a signing certificate (removing trust takes one signature)."""
    signer = identities.coordinator_authority(by)
    order = statements.DscRevocation(kid, int(time.time()), reason)
    submit(identities.coordinator(by), address, identities.sign(order, signer))
