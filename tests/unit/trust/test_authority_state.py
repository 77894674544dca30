"""What the authority table's decisions say and leave behind: the audit log's words for every
accepted statement, the refusal (reason and words) of each statement the state cannot take,
the exact limits of every time window, which of two revocations wins, and that a dry run on a
copy of the state (what a gateway does before it appends) changes nothing in the original.

Each test starts from the world of test_authority.py: genesis (2 of 3: alice, bob, carol),
province 330000 onboarded with a DSC, province 510000 onboarded with a DSC, all at the
builder's clock (``world.now``: the time the test runs, so certificates made now are valid).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from simulations.registry_builder import Province, RegistryBuilder
from trust import authority, pki, statements
from trust.authority import (
    MAX_RETIREMENT_AHEAD_S,
    STATEMENT_SKEW_S,
    Decision,
    RegistryState,
    Rule,
    Signer,
    fold,
)
from trust.export import export_pem
from trust.log import Leaf
from trust.model import Reason
from trust.statements import (
    ROOT_ISSUER,
    AddCoordinator,
    Approval,
    CaRevocation,
    CertRevocation,
    CrlUpload,
    DscRevocation,
    DscUpload,
    Onboard,
    Proposal,
    Rejection,
    RemoveCoordinator,
    Resume,
    Retirement,
    Suspension,
)

ZJ, SC, HN = "330000", "510000", "460000"


@pytest.fixture
def world() -> RegistryBuilder:
    builder = RegistryBuilder()
    builder.onboard(ZJ, "浙江省")
    builder.onboard(SC, "四川省")
    return builder


def _new_ca(world: RegistryBuilder, code: str, name: str = "海南省") -> pki.Authority:
    return world.new_ca(code, name)


def _coordinator(world: RegistryBuilder, name: str) -> pki.Authority:
    return world.new_coordinator(name)


def _dsc(world: RegistryBuilder, code: str, name: str = "dsc-2") -> x509.Certificate:
    return world.issue_dsc(world.provinces[code].ca, code, name)[0]


def _propose(world: RegistryBuilder, change: statements.Change, **kw: int) -> bytes:
    """alice proposes ``change``; returns its id (nothing approved yet)."""
    base = kw.get("base", world.state.version_of(change))
    statement = world.sign(Proposal(change, base, kw.get("expires", world.now + 3600)), "alice")
    world.accept(statement)
    return statements.statement_id(statement)


def _short(pid: bytes) -> str:
    return pid.hex()[:16]


# -- the audit log's words ------------------------------------------------------------------------
@dataclass(frozen=True)
class Said:
    name: str
    run: Callable[[RegistryBuilder], tuple[Decision, str, str, bytes]]  # decision, words, ...


def said_genesis(w: RegistryBuilder) -> tuple[Decision, str, str, bytes]:
    words = "root metadata v1: 1 root(s), threshold 2 of 3 coordinators (alice, bob, carol)"
    return w.decisions[0], words, "", b""


def said_proposal(w: RegistryBuilder) -> tuple[Decision, str, str, bytes]:
    pid = _propose(w, Onboard(HN, "海南省", _new_ca(w, HN).certificate))
    return w.decisions[-1], f"proposal {_short(pid)} by alice: 1 of 2 approvals", HN, pid


def said_approval(w: RegistryBuilder) -> tuple[Decision, str, str, bytes]:
    pid = _propose(w, Onboard(HN, "海南省", _new_ca(w, HN).certificate))
    decision = w.add(w.sign(Approval(pid), "bob"))
    words = (
        f"approval of {_short(pid)} by bob: approved by alice, bob; province {HN} (海南省) "
        "onboarded"
    )
    return decision, words, HN, pid


def said_approval_of_a_new_ca(w: RegistryBuilder) -> tuple[Decision, str, str, bytes]:
    pid = _propose(w, Onboard(ZJ, "浙江", _new_ca(w, ZJ, "浙江").certificate))
    decision = w.add(w.sign(Approval(pid), "carol"))
    words = (
        f"approval of {_short(pid)} by carol: approved by alice, carol; province {ZJ} has a new "
        "CA (the old one no longer counts)"
    )
    return decision, words, ZJ, pid


def said_rejection(w: RegistryBuilder) -> tuple[Decision, str, str, bytes]:
    pid = _propose(w, Onboard(HN, "海南省", _new_ca(w, HN).certificate))
    decision = w.add(w.sign(Rejection(pid, "not yet"), "carol"))
    return decision, f"proposal {_short(pid)} rejected by carol: not yet", HN, pid


def said_resumption(w: RegistryBuilder) -> tuple[Decision, str, str, bytes]:
    w.accept(w.sign(Suspension(SC, "incident"), "carol"))
    pid = _propose(w, Resume(SC, "fixed"))
    decision = w.add(w.sign(Approval(pid), "bob"))
    words = f"approval of {_short(pid)} by bob: approved by alice, bob; province {SC} resumed"
    return decision, words, SC, pid


def said_addition(w: RegistryBuilder) -> tuple[Decision, str, str, bytes]:
    pid = _propose(w, AddCoordinator(_coordinator(w, "dave").certificate))
    decision = w.add(w.sign(Approval(pid), "bob"))
    words = f"approval of {_short(pid)} by bob: approved by alice, bob; coordinator dave added"
    return decision, words, "", pid


def said_removal(w: RegistryBuilder) -> tuple[Decision, str, str, bytes]:
    pid = _propose(w, RemoveCoordinator("carol"))
    decision = w.add(w.sign(Approval(pid), "bob"))
    words = f"approval of {_short(pid)} by bob: approved by alice, bob; coordinator carol removed"
    return decision, words, "", pid


def said_suspension(w: RegistryBuilder) -> tuple[Decision, str, str, bytes]:
    decision = w.add(w.sign(Suspension(SC, "incident"), "alice"))
    return decision, f"province {SC} suspended by alice: incident", SC, b""


def said_upload(w: RegistryBuilder) -> tuple[Decision, str, str, bytes]:
    dsc = _dsc(w, ZJ)
    decision = w.add(w.sign(DscUpload(dsc), w.provinces[ZJ].ca))
    return decision, f"signing certificate {pki.kid(dsc).hex()} of {ZJ} uploaded", ZJ, b""


def said_retirement(w: RegistryBuilder) -> tuple[Decision, str, str, bytes]:
    zj = w.provinces[ZJ]
    decision = w.add(w.sign(Retirement(zj.kid, w.now + 60), zj.ca))
    return decision, f"signing certificate {zj.kid.hex()} of {ZJ} retires at {w.now + 60}", ZJ, b""


def said_crl(w: RegistryBuilder) -> tuple[Decision, str, str, bytes]:
    zj = w.provinces[ZJ]
    decision = w.add(w.sign(CrlUpload(zj.crl([zj.dsc.serial_number, 77])), zj.ca))
    return decision, f"CRL 1 of {ZJ}: 2 revoked serial(s)", ZJ, b""


def said_dsc_revocation(w: RegistryBuilder) -> tuple[Decision, str, str, bytes]:
    zj = w.provinces[ZJ]
    decision = w.add(w.sign(DscRevocation(zj.kid, w.now, "key_compromise"), "alice"))
    return decision, f"signing certificate {zj.kid.hex()} of {ZJ} revoked by alice", ZJ, b""


def said_ca_revocation(w: RegistryBuilder) -> tuple[Decision, str, str, bytes]:
    serial = w.provinces[ZJ].ca.certificate.serial_number
    decision = w.add(w.sign(CaRevocation(ZJ, serial, w.now, "ca_compromise"), "bob"))
    return decision, f"CA of province {ZJ} (serial {serial:x}) revoked by bob", ZJ, b""


def said_root_cert_revocation(w: RegistryBuilder) -> tuple[Decision, str, str, bytes]:
    decision = w.add(w.sign(CertRevocation(ROOT_ISSUER, 0xABC, w.now, "superseded"), "alice"))
    return decision, "certificate abc of root revoked by alice", "", b""


def said_province_cert_revocation(w: RegistryBuilder) -> tuple[Decision, str, str, bytes]:
    decision = w.add(w.sign(CertRevocation(SC, 0xABC, w.now, "key_compromise"), "alice"))
    return decision, f"certificate abc of {SC} revoked by alice", SC, b""


SAID = [
    Said("genesis", said_genesis),
    Said("a proposal waiting for approvals", said_proposal),
    Said("the approval that onboards", said_approval),
    Said("the approval of a new CA", said_approval_of_a_new_ca),
    Said("a rejection", said_rejection),
    Said("the approval that resumes", said_resumption),
    Said("the approval that adds a coordinator", said_addition),
    Said("the approval that removes a coordinator", said_removal),
    Said("a suspension", said_suspension),
    Said("a DSC upload", said_upload),
    Said("a retirement", said_retirement),
    Said("a CRL", said_crl),
    Said("a national DSC revocation", said_dsc_revocation),
    Said("a CA revocation", said_ca_revocation),
    Said("a revocation of a root-issued certificate", said_root_cert_revocation),
    Said("a revocation of a province-issued certificate", said_province_cert_revocation),
]


@pytest.mark.parametrize("said", SAID, ids=[s.name for s in SAID])
def test_the_audit_log_says_what_each_statement_did(world: RegistryBuilder, said: Said) -> None:
    """The effect in words, the province it concerns and the proposal it belongs to (what
    ``hcx registry audit`` prints and ``pending`` filters by)."""
    decision, words, province, proposal = said.run(world)
    assert (decision.accepted, decision.reason) == (True, Reason.NONE), decision.effect
    assert decision.effect == words
    assert (decision.province, decision.proposal) == (province, proposal)
    assert decision.index == world.decisions.index(decision)
    assert (decision.actor, decision.logged_at) == ("test", world.now)


def test_a_decision_names_the_signer_and_the_leaf(world: RegistryBuilder) -> None:
    statement = world.sign(Suspension(SC, "incident"), "carol")
    decision = world.add(
        statement, logged_at=world.now + 7, actor="spiffe://hcx/national/gateway/g1"
    )
    assert decision == Decision(
        index=len(world.leaves) - 1, kind="suspend", accepted=True, reason=Reason.NONE,
        effect=f"province {SC} suspended by carol: incident",
        signer="spiffe://hcx/national/coordinator/carol",
        actor="spiffe://hcx/national/gateway/g1", logged_at=world.now + 7, province=SC,
    )  # fmt: skip


def test_a_leaf_that_is_no_statement_is_refused_and_counted(world: RegistryBuilder) -> None:
    size, refused = world.state.size, world.state.refused
    decision = world.add(b"\x00not an envelope", logged_at=world.now + 3, actor="gateway g1")
    assert (decision.index, decision.kind, decision.accepted) == (size, "?", False)
    assert decision.reason is not Reason.NONE
    assert decision.effect.startswith("refused: ")
    assert (decision.signer, decision.actor, decision.logged_at) == (
        "?",
        "gateway g1",
        world.now + 3,
    )
    assert (world.state.size, world.state.refused) == (size + 1, refused + 1)
    assert world.add(world.sign(Suspension(SC, "x"), "alice")).index == size + 1


def test_a_refused_statement_is_counted_and_changes_nothing(world: RegistryBuilder) -> None:
    refused = world.state.refused
    statement = world.sign(Suspension(HN, "x"), "alice")
    assert not world.add(statement).accepted
    assert world.state.refused == refused + 1
    assert statements.statement_id(statement) not in world.state.seen


def test_fold_derives_what_a_reader_derives(world: RegistryBuilder) -> None:
    world.add(world.sign(Suspension(HN, "refused"), "alice"))
    state, decisions = fold((world.root.certificate,), world.leaves)
    assert decisions == world.decisions
    assert state.size == len(world.leaves)
    assert state.refused == 1
    assert state.provinces == world.state.provinces
    assert state.pinned_roots == (world.root.certificate,)


# -- refusals ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refusal:
    name: str
    run: Callable[[RegistryBuilder], bytes]  # sets the scene, returns the statement
    reason: Reason
    words: str  # the effect, after "refused: "; {now}, {early}, {late}: the clock, -/+ skew + 1
    province: str = ""


def suspend_unknown(w: RegistryBuilder) -> bytes:
    return w.sign(Suspension(HN, "x"), "alice")


def revoke_unknown_kid(w: RegistryBuilder) -> bytes:
    return w.sign(DscRevocation(b"\x01" * 8, w.now, "unspecified"), "alice")


def retire_unknown_kid(w: RegistryBuilder) -> bytes:
    return w.sign(Retirement(b"\x01" * 8, w.now), w.provinces[ZJ].ca)


def revoke_ca_unknown(w: RegistryBuilder) -> bytes:
    return w.sign(CaRevocation(HN, 5, w.now, "ca_compromise"), "alice")


def revoke_dsc_too_late(w: RegistryBuilder) -> bytes:
    when = w.now + STATEMENT_SKEW_S + 1
    return w.sign(DscRevocation(w.provinces[ZJ].kid, when, "unspecified"), "alice")


def revoke_ca_too_late(w: RegistryBuilder) -> bytes:
    serial = w.provinces[ZJ].ca.certificate.serial_number
    return (w.sign(CaRevocation(ZJ, serial, w.now + STATEMENT_SKEW_S + 1, "unspecified"),
                        "alice"))  # fmt: skip


def revoke_cert_too_late(w: RegistryBuilder) -> bytes:
    return (w.sign(CertRevocation(SC, 7, w.now + STATEMENT_SKEW_S + 1, "unspecified"),
                        "alice"))  # fmt: skip


def retire_too_far(w: RegistryBuilder) -> bytes:
    zj = w.provinces[ZJ]
    return w.sign(Retirement(zj.kid, w.now + MAX_RETIREMENT_AHEAD_S + 1), zj.ca)


def crl_of_another_ca(w: RegistryBuilder) -> bytes:
    zj = w.provinces[ZJ]
    return w.sign(CrlUpload(w.provinces[SC].crl([1])), zj.ca)


def crl_forged(w: RegistryBuilder) -> bytes:
    """A CRL naming 330000's CA as its issuer, signed by another key."""
    zj = w.provinces[ZJ]
    return w.sign(CrlUpload(_crl_signed_by(zj, pki.generate_private_key(), 5)), zj.ca)


def crl_same_number(w: RegistryBuilder) -> bytes:
    zj = w.provinces[ZJ]
    w.accept(w.sign(CrlUpload(zj.crl([])), zj.ca))
    zj.crl_number -= 1  # the CA signs another CRL with the same number
    return w.sign(CrlUpload(zj.crl([zj.dsc.serial_number])), zj.ca)


def crl_by_a_coordinator(w: RegistryBuilder) -> bytes:
    return w.sign(CrlUpload(w.provinces[ZJ].crl([])), "alice")


def approve_unknown(w: RegistryBuilder) -> bytes:
    return w.sign(Approval(b"\x02" * 32), "bob")


def reject_applied(w: RegistryBuilder) -> bytes:
    pid = w.propose(Onboard(HN, "海南省", _new_ca(w, HN).certificate))
    return w.sign(Rejection(pid, "too late"), "carol")


def approve_rejected(w: RegistryBuilder) -> bytes:
    pid = _propose(w, Onboard(HN, "海南省", _new_ca(w, HN).certificate))
    w.accept(w.sign(Rejection(pid, "no"), "carol"))
    return w.sign(Approval(pid), "bob")


def resume_not_suspended(w: RegistryBuilder) -> bytes:
    return (w.sign(Proposal(Resume(SC, "why not"), w.state.provinces[SC].version,
                                 w.now + 60), "alice"))  # fmt: skip


def resume_unknown(w: RegistryBuilder) -> bytes:
    return w.sign(Proposal(Resume(HN, "x"), 0, w.now + 60), "alice")


def add_existing_coordinator(w: RegistryBuilder) -> bytes:
    bob = w.coordinators["bob"].certificate
    return (w.sign(Proposal(AddCoordinator(bob), w.state.coordinator_version, w.now + 60),
                        "alice"))  # fmt: skip


def add_a_second_bob(w: RegistryBuilder) -> bytes:
    other = _coordinator(w, "bob").certificate
    return (w.sign(Proposal(AddCoordinator(other), w.state.coordinator_version, w.now + 60),
                        "alice"))  # fmt: skip


def remove_unknown(w: RegistryBuilder) -> bytes:
    return (w.sign(Proposal(RemoveCoordinator("mallory"), w.state.coordinator_version,
                                 w.now + 60), "alice"))  # fmt: skip


def onboard_the_same_ca_again(w: RegistryBuilder) -> bytes:
    ca = w.provinces[ZJ].ca.certificate
    return (w.sign(Proposal(Onboard(ZJ, "浙江省", ca), w.state.provinces[ZJ].version,
                                 w.now + 60), "alice"))  # fmt: skip


def onboard_a_revoked_ca(w: RegistryBuilder) -> bytes:
    """An old CA, replaced and then revoked by serial, cannot come back."""
    old = w.provinces[ZJ].ca.certificate
    w.propose(Onboard(ZJ, "浙江省", _new_ca(w, ZJ, "浙江省").certificate))
    w.accept(w.sign(CaRevocation(ZJ, old.serial_number, w.now, "ca_compromise"), "carol"))
    return (w.sign(Proposal(Onboard(ZJ, "浙江省", old), w.state.provinces[ZJ].version,
                                 w.now + 60), "alice"))  # fmt: skip


def onboard_stale_base(w: RegistryBuilder) -> bytes:
    ca = _new_ca(w, HN).certificate
    return w.sign(Proposal(Onboard(HN, "海南省", ca), 3, w.now + 60), "alice")


def propose_expiring_now(w: RegistryBuilder) -> bytes:
    ca = _new_ca(w, HN).certificate
    return w.sign(Proposal(Onboard(HN, "海南省", ca), 0, w.now), "alice")


def propose_beyond_a_week(w: RegistryBuilder) -> bytes:
    ca = _new_ca(w, HN).certificate
    expires = w.now + authority.MAX_PROPOSAL_S + 1
    return w.sign(Proposal(Onboard(HN, "海南省", ca), 0, expires), "alice")


def signed_too_early(w: RegistryBuilder) -> bytes:
    statement = w.sign(Suspension(SC, "x"), "alice", signed_at=w.now - STATEMENT_SKEW_S - 1)
    return statement


def signed_too_late(w: RegistryBuilder) -> bytes:
    statement = w.sign(Suspension(SC, "x"), "alice", signed_at=w.now + STATEMENT_SKEW_S + 1)
    return statement


def upload_expired(w: RegistryBuilder) -> bytes:
    key = pki.generate_private_key()
    # Issued at the registry's clock, not the machine's (a late run must not make it valid).
    dsc = pki.sign_dsc(w.provinces[ZJ].ca, pki.make_csr(key, common_name="old"), province=ZJ,
                       name="old", validity=timedelta(seconds=1), not_before=w.moment)  # fmt: skip
    return w.sign(DscUpload(dsc), w.provinces[ZJ].ca)


def upload_the_same_certificate_again(w: RegistryBuilder) -> bytes:
    """Another signed upload of a certificate already registered (not a byte replay)."""
    zj = w.provinces[ZJ]
    return w.sign(DscUpload(zj.dsc), zj.ca)


REFUSALS = [
    Refusal("suspension of a province not onboarded", suspend_unknown, Reason.UNKNOWN_PROVINCE,
            f"province {HN} is not onboarded", HN),
    Refusal("national revocation of an unknown kid", revoke_unknown_kid, Reason.UNKNOWN_KID,
            "no signing certificate 0101010101010101"),
    Refusal("retirement of an unknown kid", retire_unknown_kid, Reason.UNKNOWN_KID,
            "no signing certificate 0101010101010101"),
    Refusal("CA revocation of a province not onboarded", revoke_ca_unknown,
            Reason.UNKNOWN_PROVINCE, f"province {HN} is not onboarded", HN),
    Refusal("DSC revocation effective after signing + skew", revoke_dsc_too_late, Reason.BAD_TIME,
            "a revocation cannot take effect in the future", ZJ),
    Refusal("CA revocation effective after signing + skew", revoke_ca_too_late, Reason.BAD_TIME,
            "a revocation cannot take effect in the future", ZJ),
    Refusal("certificate revocation effective after signing + skew", revoke_cert_too_late,
            Reason.BAD_TIME, "a revocation cannot take effect in the future", SC),
    Refusal("retirement 30 days and a second ahead", retire_too_far, Reason.BAD_TIME,
            "a retirement is announced at most 30 days ahead", ZJ),
    Refusal("CRL of another province's CA", crl_of_another_ca, Reason.WRONG_PROVINCE,
            f"the CRL is not one of {ZJ}'s CA", ZJ),
    Refusal("CRL whose signature is not the CA's", crl_forged, Reason.BAD_SIGNATURE,
            "CRL: CRL signature does not verify with the issuer's key", ZJ),
    Refusal("CRL with the number of the previous one", crl_same_number, Reason.REPLAYED,
            "CRL number 1 does not increase", ZJ),
    Refusal("CRL signed by a coordinator", crl_by_a_coordinator, Reason.WRONG_ROLE,
            "spiffe://hcx/national/coordinator/alice is not a provincial CA"),
    Refusal("approval of an unknown proposal", approve_unknown, Reason.NOT_FOUND,
            "no proposal 0202020202020202"),
    Refusal("rejection of an applied proposal", reject_applied, Reason.PROPOSAL_CLOSED,
            "the proposal is applied"),
    Refusal("approval of a rejected proposal", approve_rejected, Reason.PROPOSAL_CLOSED,
            "the proposal is rejected"),
    Refusal("resumption of a province not suspended", resume_not_suspended,
            Reason.INVALID_REQUEST, f"{SC} is not suspended", SC),
    Refusal("resumption of a province not onboarded", resume_unknown, Reason.UNKNOWN_PROVINCE,
            f"province {HN} unknown", HN),
    Refusal("adding a coordinator already in the set", add_existing_coordinator,
            Reason.ALREADY_EXISTS, "bob is a coordinator"),
    Refusal("adding a second coordinator named bob", add_a_second_bob, Reason.ALREADY_EXISTS,
            "bob is a coordinator"),
    Refusal("removing a coordinator not in the set", remove_unknown, Reason.NOT_FOUND,
            "no coordinator mallory"),
    Refusal("onboarding the CA the province already has", onboard_the_same_ca_again,
            Reason.ALREADY_EXISTS, f"{ZJ} already has this CA", ZJ),
    Refusal("onboarding a revoked CA again", onboard_a_revoked_ca, Reason.KEY_REVOKED,
            "this CA certificate is revoked", ZJ),
    Refusal("onboarding against a base that is not current", onboard_stale_base,
            Reason.STALE_PROPOSAL, "base version 3, current is 0", HN),
    Refusal("proposal expiring the moment it is logged", propose_expiring_now, Reason.BAD_TIME,
            "a proposal must expire within 7 days of signing"),
    Refusal("proposal expiring a second after a week", propose_beyond_a_week, Reason.BAD_TIME,
            "a proposal must expire within 7 days of signing"),
    Refusal("statement signed skew + 1 s before it was logged", signed_too_early,
            Reason.BAD_TIME,
            "signed at {early}, logged at {now}: more than 300 s apart"),
    Refusal("statement signed skew + 1 s after it was logged", signed_too_late, Reason.BAD_TIME,
            "signed at {late}, logged at {now}: more than 300 s apart"),
    Refusal("upload of an expired DSC", upload_expired, Reason.EXPIRED,
            "the signing certificate has already expired", ZJ),
    Refusal("a second upload of a registered DSC", upload_the_same_certificate_again,
            Reason.REPLAYED, "this signing certificate is already registered", ZJ),
]  # fmt: skip


@pytest.mark.parametrize("refusal", REFUSALS, ids=[r.name for r in REFUSALS])
def test_a_statement_the_state_cannot_take_is_refused(
    world: RegistryBuilder, refusal: Refusal
) -> None:
    statement = refusal.run(world)
    before = _snapshot(world.state)
    decision = world.add(statement)
    assert (decision.accepted, decision.reason) == (False, refusal.reason), decision.effect
    skew = STATEMENT_SKEW_S + 1
    words = refusal.words.format(now=world.now, early=world.now - skew, late=world.now + skew)
    assert decision.effect == f"refused: {words}"
    assert decision.province == refusal.province
    assert _snapshot(world.state)[:-2] == before[:-2]  # only the size and the refusals count


def _crl_signed_by(
    province: Province, key: pki.PrivateKey, number: int
) -> x509.CertificateRevocationList:
    now = datetime.fromtimestamp(province.now, tz=UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(province.ca.certificate.subject)
        .last_update(now - timedelta(minutes=1))
        .next_update(now + timedelta(days=1))
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


# -- the exact limits of every window -------------------------------------------------------------
def _revoke_dsc_at_the_limit(w: RegistryBuilder) -> Decision:
    when = w.now + STATEMENT_SKEW_S
    return w.add(w.sign(DscRevocation(w.provinces[ZJ].kid, when, "unspecified"), "alice"))


def _retire_at_the_limit(w: RegistryBuilder) -> Decision:
    zj = w.provinces[ZJ]
    return w.add(w.sign(Retirement(zj.kid, w.now + MAX_RETIREMENT_AHEAD_S), zj.ca))


def _signed_skew_before(w: RegistryBuilder) -> Decision:
    return w.add(w.sign(Suspension(SC, "x"), "alice", signed_at=w.now - STATEMENT_SKEW_S))


def _signed_skew_after(w: RegistryBuilder) -> Decision:
    return w.add(w.sign(Suspension(SC, "x"), "alice", signed_at=w.now + STATEMENT_SKEW_S))


def _propose_for_a_week(w: RegistryBuilder) -> Decision:
    ca = _new_ca(w, HN).certificate
    return w.add(w.sign(Proposal(Onboard(HN, "海南省", ca), 0, w.now + authority.MAX_PROPOSAL_S),
                        "alice"))  # fmt: skip


def _propose_for_a_second(w: RegistryBuilder) -> Decision:
    ca = _new_ca(w, HN).certificate
    return w.add(w.sign(Proposal(Onboard(HN, "海南省", ca), 0, w.now + 1), "alice"))


@pytest.mark.parametrize(
    "run",
    [
        pytest.param(_revoke_dsc_at_the_limit, id="revocation effective at signing + skew"),
        pytest.param(_retire_at_the_limit, id="retirement exactly 30 days ahead"),
        pytest.param(_signed_skew_before, id="signed exactly skew before it was logged"),
        pytest.param(_signed_skew_after, id="signed exactly skew after it was logged"),
        pytest.param(_propose_for_a_week, id="proposal living exactly a week"),
        pytest.param(_propose_for_a_second, id="proposal living one second"),
    ],
)
def test_the_limit_of_every_window_is_inside_it(
    world: RegistryBuilder, run: Callable[[RegistryBuilder], Decision]
) -> None:
    decision = run(world)
    assert (decision.accepted, decision.reason) == (True, Reason.NONE), decision.effect


# -- which revocation wins --------------------------------------------------------------------
def test_a_second_revocation_at_the_same_time_keeps_the_first_reason(
    world: RegistryBuilder,
) -> None:
    zj = world.provinces[ZJ]
    serial = zj.dsc.serial_number
    world.accept(world.sign(CertRevocation(ZJ, serial, world.now - 10, "key_compromise"), "alice"))
    world.accept(world.sign(CertRevocation(ZJ, serial, world.now - 10, "superseded"), "bob"))
    world.accept(world.sign(CertRevocation(ZJ, serial, world.now - 5, "unspecified"), "carol"))
    signer = world.view().signer(zj.kid)
    assert signer is not None
    assert (signer.revoked_at, signer.revocation_reason) == (
        world.now - 10, "revoked nationally: key_compromise"
    )  # fmt: skip


def test_an_earlier_revocation_replaces_a_later_one(world: RegistryBuilder) -> None:
    zj = world.provinces[ZJ]
    serial = zj.dsc.serial_number
    world.accept(world.sign(CertRevocation(ZJ, serial, world.now - 5, "superseded"), "alice"))
    world.accept(world.sign(CertRevocation(ZJ, serial, world.now - 50, "key_compromise"), "bob"))
    signer = world.view().signer(zj.kid)
    assert signer is not None
    assert (signer.revoked_at, signer.revocation_reason) == (
        world.now - 50, "revoked nationally: key_compromise"
    )  # fmt: skip


def test_a_revocation_of_another_serial_does_not_touch_this_one(world: RegistryBuilder) -> None:
    zj = world.provinces[ZJ]
    world.accept(world.sign(CertRevocation(ZJ, zj.dsc.serial_number, world.now - 5, "superseded"),
                            "alice"))  # fmt: skip
    world.accept(world.sign(CertRevocation(ZJ, zj.dsc.serial_number + 1, world.now - 50,
                                           "key_compromise"), "bob"))  # fmt: skip
    world.accept(world.sign(CertRevocation(SC, zj.dsc.serial_number, world.now - 60,
                                           "key_compromise"), "bob"))  # fmt: skip
    signer = world.view().signer(zj.kid)
    assert signer is not None
    assert (signer.revoked_at, signer.revocation_reason) == (world.now - 5, "revoked nationally: "
                                                             "superseded")  # fmt: skip


def test_a_provinces_crl_says_who_revoked(world: RegistryBuilder) -> None:
    zj = world.provinces[ZJ]
    revoked = datetime.fromtimestamp(world.now - 30, tz=UTC)
    world.accept(world.sign(CrlUpload(zj.crl([zj.dsc.serial_number], revoked_at=revoked)), zj.ca))
    signer = world.view().signer(zj.kid)
    assert signer is not None
    assert (signer.revoked_at, signer.revocation_reason) == (
        world.now - 30, "revoked by its provincial CA"
    )  # fmt: skip


def test_a_national_dsc_revocation_says_why(world: RegistryBuilder) -> None:
    zj = world.provinces[ZJ]
    world.accept(world.sign(DscRevocation(zj.kid, world.now - 3, "key_compromise"), "alice"))
    signer = world.view().signer(zj.kid)
    assert signer is not None
    assert (signer.revoked_at, signer.revocation_reason) == (
        world.now - 3, "revoked nationally: key_compromise"
    )  # fmt: skip


def test_the_earliest_ca_revocation_wins(world: RegistryBuilder) -> None:
    """Two revocations of the current CA: the province's signers fall at the earliest time,
    whichever order they came in, and the serial is revoked for the root's callers too."""
    serial = world.provinces[ZJ].ca.certificate.serial_number
    world.accept(world.sign(CaRevocation(ZJ, serial, world.now - 10, "ca_compromise"), "alice"))
    world.accept(world.sign(CaRevocation(ZJ, serial, world.now - 40, "ca_compromise"), "bob"))
    world.accept(world.sign(CaRevocation(ZJ, serial, world.now - 20, "ca_compromise"), "carol"))
    assert world.state.provinces[ZJ].ca_revoked_at == world.now - 40
    assert world.state.revoked[(ROOT_ISSUER, serial)] == (
        world.now - 40, "provincial CA revoked: ca_compromise"
    )  # fmt: skip
    assert world.state.caller_revoked(issuer=ROOT_ISSUER, serial=serial, now=world.now - 40)
    assert not world.state.caller_revoked(issuer=ROOT_ISSUER, serial=serial, now=world.now - 41)


def test_revoking_an_old_cas_serial_leaves_the_current_ca(world: RegistryBuilder) -> None:
    old = world.provinces[ZJ].ca.certificate
    world.propose(Onboard(ZJ, "浙江省", _new_ca(world, ZJ, "浙江省").certificate))
    world.accept(
        world.sign(CaRevocation(ZJ, old.serial_number, world.now, "ca_compromise"), "alice")
    )
    assert world.state.provinces[ZJ].ca_revoked_at is None
    assert world.state.caller_revoked(issuer=ROOT_ISSUER, serial=old.serial_number, now=world.now)


def test_a_crl_entry_takes_effect_at_its_own_date(world: RegistryBuilder) -> None:
    """Earlier than the CRL's signing: the entry's date; later: the signing time + skew."""
    zj = world.provinces[ZJ]
    past = datetime.fromtimestamp(world.now - 3600, tz=UTC)
    world.accept(world.sign(CrlUpload(zj.crl([zj.dsc.serial_number], revoked_at=past)), zj.ca))
    assert world.state.revoked[(ZJ, zj.dsc.serial_number)] == (
        world.now - 3600, "revoked by its provincial CA"
    )  # fmt: skip


def test_the_latest_crl_is_exported(world: RegistryBuilder, tmp_path: Path) -> None:
    """``hcx registry export`` writes each province's latest CRL for openssl."""
    zj = world.provinces[ZJ]
    world.accept(world.sign(CrlUpload(zj.crl([])), zj.ca))
    latest = zj.crl([zj.dsc.serial_number])
    world.accept(world.sign(CrlUpload(latest), zj.ca))
    export_pem(world.view(), tmp_path)
    assert (tmp_path / ZJ / "crl.pem").read_bytes() == pki.crl_to_pem(latest)
    assert not (tmp_path / SC / "crl.pem").exists()


def test_a_crl_without_a_number_counts_as_number_zero(world: RegistryBuilder) -> None:
    zj = world.provinces[ZJ]
    now = datetime.fromtimestamp(world.now, tz=UTC)
    unnumbered = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(zj.ca.certificate.subject)
        .last_update(now - timedelta(minutes=1))
        .next_update(now + timedelta(days=1))
        .sign(zj.ca.private_key, hashes.SHA256())
    )
    decision = world.add(world.sign(CrlUpload(unnumbered), zj.ca))
    assert decision.effect == f"CRL 0 of {ZJ}: 0 revoked serial(s)"
    again = world.add(world.sign(CrlUpload(unnumbered), zj.ca))
    assert (again.reason, again.effect) == (Reason.REPLAYED,
                                            "refused: CRL number 0 does not increase")  # fmt: skip
    assert world.add(world.sign(CrlUpload(zj.crl([])), zj.ca)).accepted  # number 1


# -- what the state keeps ---------------------------------------------------------------------
def test_a_suspension_moves_the_provinces_version_by_one(world: RegistryBuilder) -> None:
    before = world.state.provinces[SC].version
    world.accept(world.sign(Suspension(SC, "incident"), "alice"))
    province = world.state.provinces[SC]
    assert (province.suspended, province.why, province.version) == (True, "incident", before + 1)
    assert world.view().province(SC).version == before + 1  # type: ignore[union-attr]


def test_a_rejection_closes_the_proposal_with_its_reason(world: RegistryBuilder) -> None:
    pid = _propose(world, Onboard(HN, "海南省", _new_ca(world, HN).certificate))
    world.accept(world.sign(Rejection(pid, "not yet"), "carol"))
    proposal = world.state.proposals[pid]
    assert (proposal.status, proposal.closed_by) == ("rejected", "carol: not yet")
    assert world.state.proposal_status(proposal, now=world.now) == "rejected"
    assert world.state.pending(now=world.now) == []


def test_pending_lists_the_proposals_still_open(world: RegistryBuilder) -> None:
    """What ``hcx registry pending`` shows: not applied, rejected, stale or expired."""
    open_one = _propose(world, Onboard(HN, "海南省", _new_ca(world, HN).certificate),
                        expires=world.now + 100)  # fmt: skip
    applied = world.propose(AddCoordinator(_coordinator(world, "dave").certificate))
    world.accept(world.sign(Suspension(SC, "incident"), "bob"))
    stale = _propose(world, Resume(SC, "fixed"))
    world.accept(world.sign(Suspension(SC, "again: the resumption is stale"), "carol"))
    rejected = _propose(world, RemoveCoordinator("carol"))
    world.accept(world.sign(Rejection(rejected, "no"), "bob"))
    assert world.state.proposal_status(world.state.proposals[stale], now=world.now) == "stale"
    assert world.state.proposals[applied].status == "applied"
    assert [p.id for p in world.state.pending(now=world.now)] == [open_one]
    assert [p.id for p in world.state.pending(now=world.now + 100)] == [open_one]
    assert world.state.pending(now=world.now + 101) == []
    proposal = world.state.proposals[open_one]
    assert world.state.proposal_status(proposal, now=world.now + 101) == "expired"


def test_province_of_kid(world: RegistryBuilder) -> None:
    assert world.state.province_of_kid(world.provinces[SC].kid) == SC
    assert world.state.province_of_kid(b"\x01" * 8) is None


def test_a_new_ca_resets_its_revocation_and_remembers_the_old_one(world: RegistryBuilder) -> None:
    old = world.provinces[ZJ].ca.certificate
    before = world.state.provinces[ZJ].version
    world.accept(
        world.sign(CaRevocation(ZJ, old.serial_number, world.now - 5, "ca_compromise"), "bob")
    )
    new = _new_ca(world, ZJ, "浙江").certificate
    world.propose(Onboard(ZJ, "浙江", new))
    province = world.state.provinces[ZJ]
    assert (province.ca, province.name, province.version) == (new, "浙江", before + 1)
    assert province.ca_revoked_at is None
    assert province.ca_replaced_at == {pki.fingerprint(old): float(world.now)}


# -- a dry run on a copy ----------------------------------------------------------------------
def _snapshot(state: RegistryState) -> tuple[object, ...]:
    return (
        dict(state.coordinators), state.coordinator_version, dict(state.provinces),
        dict(state.signing_keys), dict(state.crl_numbers), dict(state.crls), dict(state.revoked),
        dict(state.proposals), set(state.seen), state.root_version, state.roots, state.size,
        state.refused,
    )  # fmt: skip


def _dry_suspension(w: RegistryBuilder) -> bytes:
    return w.sign(Suspension(SC, "x"), "alice")


def _dry_upload(w: RegistryBuilder) -> bytes:
    return w.sign(DscUpload(_dsc(w, ZJ)), w.provinces[ZJ].ca)


def _dry_crl(w: RegistryBuilder) -> bytes:
    zj = w.provinces[ZJ]
    return w.sign(CrlUpload(zj.crl([zj.dsc.serial_number])), zj.ca)


def _dry_revocation(w: RegistryBuilder) -> bytes:
    return w.sign(CertRevocation(ZJ, 99, w.now, "unspecified"), "alice")


def _dry_proposal(w: RegistryBuilder) -> bytes:
    return w.sign(Proposal(Onboard(HN, "海南省", _new_ca(w, HN).certificate), 0, w.now + 60),
                  "alice")  # fmt: skip


def _dry_addition(w: RegistryBuilder) -> bytes:
    pid = _propose(w, AddCoordinator(_coordinator(w, "dave").certificate))
    return w.sign(Approval(pid), "bob")


def _dry_retirement(w: RegistryBuilder) -> bytes:
    zj = w.provinces[ZJ]
    return w.sign(Retirement(zj.kid, w.now + 60), zj.ca)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_dry_suspension, id="a suspension"),
        pytest.param(_dry_upload, id="a DSC upload"),
        pytest.param(_dry_retirement, id="a retirement"),
        pytest.param(_dry_crl, id="a CRL"),
        pytest.param(_dry_revocation, id="a revocation"),
        pytest.param(_dry_proposal, id="a proposal"),
        pytest.param(_dry_addition, id="the approval that adds a coordinator"),
    ],
)
def test_a_dry_run_on_a_copy_changes_nothing(
    world: RegistryBuilder, make: Callable[[RegistryBuilder], bytes]
) -> None:
    """A gateway tries each statement on a copy before appending: the state it serves is
    untouched, and the same statement is still accepted (not a replay) when it is appended."""
    statement = make(world)
    before = _snapshot(world.state)
    copy = world.state.copy()
    tried = copy.apply(Leaf.make(statement, logged_at=world.now, actor="dry run"))
    assert tried.accepted, tried.effect
    assert _snapshot(copy) != before
    assert _snapshot(world.state) == before
    assert world.add(statement) == replace(tried, actor="test")


# -- the table in docs/security.md ------------------------------------------------------------
def test_a_row_that_names_only_its_signer_is_the_common_case() -> None:
    """Any scope, one signature, submitted by coordinators."""
    rule = authority._rule("suspend", "provinces", Signer.COORDINATOR, wins="w", changes="c")
    assert rule == Rule("suspend", "provinces", Signer.COORDINATOR, "any", False,
                        frozenset({"coordinator"}), "w", "c")  # fmt: skip
    assert rule.signatures == "1"


def test_a_threshold_row_needs_m_of_n() -> None:
    rule = authority._rule("onboard", "provinces", Signer.COORDINATOR, scope="own province",
                           threshold=True, writers=("operator", "coordinator"), wins="w",
                           changes="c")  # fmt: skip
    assert (rule.scope, rule.writers, rule.signatures) == (
        "own province", frozenset({"operator", "coordinator"}), "M of N coordinators"
    )  # fmt: skip


def test_the_markdown_table_lists_writers_and_escapes_bars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rule = Rule("x", "a|b", Signer.PROVINCIAL_CA, "own province", True,
                frozenset({"operator", "coordinator"}), "first | wins", "never")  # fmt: skip
    monkeypatch.setattr(authority, "AUTHORITY", {"x": rule})
    assert authority.authority_table_markdown().splitlines()[2] == (
        r"| `x` | a\|b | provincial CA | own province | M of N coordinators | coordinator, "
        r"operator | first \| wins | never |"
    )
