"""The authority table, attacked: every row tried with the wrong role, the wrong province, a
replayed statement, a manipulated time, a forged threshold, and a lower authority occupying a
higher authority's place. One named row per attack (table-driven, as in TUF's own tests).

Each row starts from the same world: genesis (2 of 3: alice, bob, carol), province 330000
onboarded with a DSC, province 510000 onboarded with a DSC. It submits the attack as the next
leaf of the log and checks what the authority table decided, then what a verifier says about
a code of 330000 afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from simulations.registry_builder import RegistryBuilder
from trust import pki, statements
from trust.authority import AUTHORITY, MAX_PROPOSAL_S, STATEMENT_SKEW_S, Decision
from trust.errors import VerificationError
from trust.model import Reason
from trust.statements import (
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
    RootMetadata,
    Suspension,
)
from trust.verify import check_code

NOW = 1_760_000_000  # a fixed past clock: anything issued at the machine's clock fails at once
ZJ, SC, HN = "330000", "510000", "460000"


@pytest.fixture
def world() -> RegistryBuilder:
    builder = RegistryBuilder(clock=NOW)
    builder.onboard(ZJ, "浙江省")
    builder.onboard(SC, "四川省")
    return builder


def verdict(world: RegistryBuilder, token: str, *, at: float | None = None) -> Reason:
    try:
        check_code(token, world.view(), now=NOW + 1 if at is None else at)
    except VerificationError as e:
        return e.reason
    return Reason.NONE


def _province_ca(world: RegistryBuilder, code: str) -> pki.Authority:
    return world.provinces[code].ca


def _stranger_coordinator(world: RegistryBuilder) -> pki.Authority:
    """A coordinator certificate the root issued, but that the coordinator set never added."""
    return world.new_coordinator("mallory")


def _new_ca(world: RegistryBuilder, code: str) -> pki.Authority:
    return world.new_ca(code, "x")


def _proposal(world: RegistryBuilder, change: statements.Change, **kw: int) -> bytes:
    base = kw.get("base", world.state.version_of(change))
    expires = kw.get("expires", NOW + 3600)
    statement = world.sign(Proposal(change, base, expires), "alice", signed_at=kw.get("at"))
    world.accept(statement)
    return statements.statement_id(statement)


@dataclass(frozen=True)
class Attack:
    name: str
    run: Callable[[RegistryBuilder], Decision]
    accepted: bool
    reason: Reason
    afterwards: Reason | None = None  # what check_code says of a fresh 330000 code afterwards


def _hn_onboarded(world: RegistryBuilder) -> bool:
    return HN in world.state.provinces


# -- root metadata ------------------------------------------------------------------------------
def root_by_coordinator(w: RegistryBuilder) -> Decision:
    body = RootMetadata(2, (w.root.certificate,), 1, (w.coordinators["alice"].certificate,))
    return w.add(w.sign(body, "alice"))


def root_replayed(w: RegistryBuilder) -> Decision:
    return w.add(w.leaves[0].statement)


def root_skips_a_version(w: RegistryBuilder) -> Decision:
    body = RootMetadata(
        3, (w.root.certificate,), 2, tuple(c.certificate for c in w.coordinators.values())
    )
    return w.add(w.sign(body, w.root))


def root_threshold_above_coordinators(w: RegistryBuilder) -> Decision:
    body = RootMetadata(2, (w.root.certificate,), 3, (w.coordinators["alice"].certificate,))
    return w.add(w.sign(body, w.root))


def root_by_a_foreign_root(w: RegistryBuilder) -> Decision:
    other = w.new_root()
    body = RootMetadata(2, (other.certificate,), 1, (w.coordinators["alice"].certificate,))
    return w.add(w.sign(body, other))


# -- onboarding (M of N) --------------------------------------------------------------------------
def onboard_by_one_coordinator(w: RegistryBuilder) -> Decision:
    ca = _new_ca(w, HN)
    _proposal(w, Onboard(HN, "海南省", ca.certificate))
    assert not _hn_onboarded(w)  # 1 of 2: nothing applies
    return w.decisions[-1]


def onboard_same_coordinator_twice(w: RegistryBuilder) -> Decision:
    ca = _new_ca(w, HN)
    pid = _proposal(w, Onboard(HN, "海南省", ca.certificate))
    decision = w.add(w.sign(Approval(pid), "alice"))  # a second signature of the proposer
    assert not _hn_onboarded(w)
    return decision


def onboard_approved_by_a_province(w: RegistryBuilder) -> Decision:
    pid = _proposal(w, Onboard(HN, "海南省", _new_ca(w, HN).certificate))
    return w.add(w.sign(Approval(pid), _province_ca(w, ZJ)))


def onboard_approved_by_a_stranger(w: RegistryBuilder) -> Decision:
    pid = _proposal(w, Onboard(HN, "海南省", _new_ca(w, HN).certificate))
    return w.add(w.sign(Approval(pid), _stranger_coordinator(w)))


def onboard_approved_by_a_revoked_coordinator(w: RegistryBuilder) -> Decision:
    pid = _proposal(w, Onboard(HN, "海南省", _new_ca(w, HN).certificate))
    serial = w.coordinators["bob"].certificate.serial_number
    w.accept(w.sign(CertRevocation("root", serial, NOW, "key_compromise"), "carol"))
    return w.add(w.sign(Approval(pid), "bob"))


def onboard_approval_replayed(w: RegistryBuilder) -> Decision:
    pid = _proposal(w, Onboard(HN, "海南省", _new_ca(w, HN).certificate))
    approval = w.sign(Approval(pid), "bob")
    w.accept(approval)
    return w.add(approval)


def onboard_approval_after_expiry(w: RegistryBuilder) -> Decision:
    pid = _proposal(w, Onboard(HN, "海南省", _new_ca(w, HN).certificate), expires=NOW + 60)
    late = NOW + 120
    return w.add(w.sign(Approval(pid), "bob", signed_at=late), logged_at=late)


def onboard_approval_backdated(w: RegistryBuilder) -> Decision:
    pid = _proposal(w, Onboard(HN, "海南省", _new_ca(w, HN).certificate))
    return w.add(w.sign(Approval(pid), "bob", signed_at=NOW - 86400))


def onboard_approval_from_the_future(w: RegistryBuilder) -> Decision:
    pid = _proposal(w, Onboard(HN, "海南省", _new_ca(w, HN).certificate))
    return w.add(w.sign(Approval(pid), "bob", signed_at=NOW + STATEMENT_SKEW_S + 5))


def onboard_proposal_lives_too_long(w: RegistryBuilder) -> Decision:
    change = Onboard(HN, "海南省", _new_ca(w, HN).certificate)
    return w.add(w.sign(Proposal(change, 0, NOW + MAX_PROPOSAL_S + 60), "alice"))


def onboard_ca_of_another_province(w: RegistryBuilder) -> Decision:
    return w.add(w.sign(Proposal(Onboard(HN, "海南省", _new_ca(w, SC).certificate), 0, NOW + 600),
                        "alice"))  # fmt: skip


def onboard_self_signed_ca(w: RegistryBuilder) -> Decision:
    ca = w.new_ca(HN, "海南省", root=w.new_root())
    return w.add(w.sign(Proposal(Onboard(HN, "海南省", ca.certificate), 0, NOW + 600), "alice"))


def onboard_approvers_counted_after_removal(w: RegistryBuilder) -> Decision:
    """bob approves, then bob is removed (2 of 3: alice + carol): bob's approval no longer
    counts, so carol's approval... is the second valid one; dave's absence keeps it honest."""
    pid = _proposal(w, Onboard(HN, "海南省", _new_ca(w, HN).certificate))
    w.propose(RemoveCoordinator("bob"), approvers=("carol",))
    assert not _hn_onboarded(w)
    return w.add(w.sign(Approval(pid), "bob"))


def replace_ca_with_stale_base(w: RegistryBuilder) -> Decision:
    pid = _proposal(w, Onboard(ZJ, "浙江省", _new_ca(w, ZJ).certificate))
    w.accept(w.sign(Suspension(ZJ, "incident"), "carol"))  # the province changed meanwhile
    return w.add(w.sign(Approval(pid), "bob"))


# -- suspension and resumption -------------------------------------------------------------------
def suspend_by_a_province(w: RegistryBuilder) -> Decision:
    return w.add(w.sign(Suspension(SC, "rival"), _province_ca(w, ZJ)))


def suspend_by_a_stranger(w: RegistryBuilder) -> Decision:
    return w.add(w.sign(Suspension(ZJ, "?"), _stranger_coordinator(w)))


def suspend_by_one_coordinator(w: RegistryBuilder) -> Decision:
    return w.add(w.sign(Suspension(ZJ, "incident 42"), "carol"))


def suspend_replayed(w: RegistryBuilder) -> Decision:
    statement = w.sign(Suspension(ZJ, "incident 42"), "carol")
    w.accept(statement)
    pid = _proposal(w, Resume(ZJ, "fixed"))
    w.accept(w.sign(Approval(pid), "bob"))
    return w.add(statement)  # the old suspension again, to undo the resumption's timing


def resume_by_one_coordinator(w: RegistryBuilder) -> Decision:
    w.accept(w.sign(Suspension(ZJ, "incident"), "carol"))
    _proposal(w, Resume(ZJ, "fixed"))
    return w.decisions[-1]


def resume_made_before_a_new_suspension(w: RegistryBuilder) -> Decision:
    w.accept(w.sign(Suspension(ZJ, "incident 1"), "carol"))
    pid = _proposal(w, Resume(ZJ, "incident 1 over"))
    w.accept(w.sign(Suspension(ZJ, "incident 2"), "carol"))
    return w.add(w.sign(Approval(pid), "bob"))


def resume_rejected_then_approved(w: RegistryBuilder) -> Decision:
    w.accept(w.sign(Suspension(ZJ, "incident"), "carol"))
    pid = _proposal(w, Resume(ZJ, "fixed?"))
    w.accept(w.sign(Rejection(pid, "not yet"), "carol"))
    return w.add(w.sign(Approval(pid), "bob"))


# -- the province's own statements ---------------------------------------------------------------
def upload_by_another_province(w: RegistryBuilder) -> Decision:
    dsc, _ = w.issue_dsc(_province_ca(w, SC), SC, "x")
    return w.add(w.sign(DscUpload(dsc), _province_ca(w, ZJ)))


def upload_by_a_coordinator(w: RegistryBuilder) -> Decision:
    dsc, _ = w.issue_dsc(_province_ca(w, ZJ), ZJ, "x")
    return w.add(w.sign(DscUpload(dsc), "alice"))


def upload_dsc_of_a_replaced_ca(w: RegistryBuilder) -> Decision:
    old = _province_ca(w, ZJ)
    w.propose(Onboard(ZJ, "浙江省", _new_ca(w, ZJ).certificate))
    dsc, _ = w.issue_dsc(old, ZJ, "late")
    return w.add(w.sign(DscUpload(dsc), old))


def upload_replayed(w: RegistryBuilder) -> Decision:
    return w.add(w.leaves[-1].statement)  # 510000's upload again


def retire_by_another_province(w: RegistryBuilder) -> Decision:
    return w.add(w.sign(Retirement(w.provinces[ZJ].kid, NOW - 10), _province_ca(w, SC)))


def retire_too_far_ahead(w: RegistryBuilder) -> Decision:
    return w.add(w.sign(Retirement(w.provinces[ZJ].kid, NOW + 40 * 86400), _province_ca(w, ZJ)))


def retire_later_does_not_delay(w: RegistryBuilder) -> Decision:
    zj = w.provinces[ZJ]
    w.accept(w.sign(Retirement(zj.kid, NOW - 100), zj.ca))
    return w.add(w.sign(Retirement(zj.kid, NOW + 86400), zj.ca))


def crl_by_another_province(w: RegistryBuilder) -> Decision:
    zj = w.provinces[ZJ]
    return w.add(w.sign(CrlUpload(w.provinces[SC].crl([zj.dsc.serial_number])), zj.ca))


def crl_replayed_older(w: RegistryBuilder) -> Decision:
    zj = w.provinces[ZJ]
    older = zj.crl([])
    newer = zj.crl([zj.dsc.serial_number])
    w.accept(w.sign(CrlUpload(newer), zj.ca))
    return w.add(w.sign(CrlUpload(older), zj.ca))  # to cancel the revocation


def crl_later_omits_an_entry(w: RegistryBuilder) -> Decision:
    zj = w.provinces[ZJ]
    w.accept(w.sign(CrlUpload(zj.crl([zj.dsc.serial_number])), zj.ca))
    return w.add(w.sign(CrlUpload(zj.crl([])), zj.ca))  # accepted, but revocation is monotonic


# -- revocation: one signature, earliest time, nobody can block it -------------------------------
def revoke_by_a_province_statement(w: RegistryBuilder) -> Decision:
    zj = w.provinces[ZJ]
    return w.add(w.sign(DscRevocation(zj.kid, NOW, "key_compromise"), zj.ca))


def revoke_effective_in_the_future(w: RegistryBuilder) -> Decision:
    return w.add(w.sign(DscRevocation(w.provinces[ZJ].kid, NOW + 86400, "unspecified"), "alice"))


def province_future_crl_cannot_delay_coordinators(w: RegistryBuilder) -> Decision:
    """The attack of the old registry: the province revoked its own key far in the future to
    occupy the key; the coordinators' revocation then failed. Now both count, earliest wins."""
    zj = w.provinces[ZJ]
    far = datetime.fromtimestamp(NOW + 10 * 365 * 86400, tz=UTC)
    w.accept(w.sign(CrlUpload(zj.crl([zj.dsc.serial_number], revoked_at=far)), zj.ca))
    return w.add(w.sign(DscRevocation(zj.kid, NOW, "key_compromise"), "alice"))


def revoke_ca_by_an_operator(w: RegistryBuilder) -> Decision:
    serial = _province_ca(w, ZJ).certificate.serial_number
    return w.add(w.sign(CaRevocation(ZJ, serial, NOW, "ca_compromise"), _province_ca(w, SC)))


def revoke_ca_by_one_coordinator(w: RegistryBuilder) -> Decision:
    serial = _province_ca(w, ZJ).certificate.serial_number
    return w.add(w.sign(CaRevocation(ZJ, serial, NOW, "ca_compromise"), "carol"))


def revoked_coordinator_keeps_signing(w: RegistryBuilder) -> Decision:
    serial = w.coordinators["alice"].certificate.serial_number
    w.accept(w.sign(CertRevocation("root", serial, NOW, "key_compromise"), "bob"))
    return w.add(w.sign(Suspension(SC, "from a stolen key"), "alice"))


# -- the coordinator set -------------------------------------------------------------------------
def add_coordinator_by_one(w: RegistryBuilder) -> Decision:
    _proposal(w, AddCoordinator(_stranger_coordinator(w).certificate))
    assert len(w.state.coordinators) == 3
    return w.decisions[-1]


def remove_below_the_threshold(w: RegistryBuilder) -> Decision:
    w.propose(RemoveCoordinator("carol"))
    return w.add(w.sign(Proposal(RemoveCoordinator("bob"), w.state.coordinator_version,
                                 NOW + 600), "alice"))  # fmt: skip


ATTACKS = [
    Attack("root metadata signed by a coordinator", root_by_coordinator, False, Reason.WRONG_ROLE),
    Attack("genesis replayed", root_replayed, False, Reason.REPLAYED),
    Attack("root metadata skips a version", root_skips_a_version, False, Reason.STALE_PROPOSAL),
    Attack("threshold above the coordinators", root_threshold_above_coordinators, False,
           Reason.INVALID_REQUEST),
    Attack("root metadata by a foreign root", root_by_a_foreign_root, False, Reason.WRONG_ROLE),
    Attack("onboarding by one coordinator stays pending", onboard_by_one_coordinator, True,
           Reason.NONE),
    Attack("forged threshold: the same coordinator twice", onboard_same_coordinator_twice, False,
           Reason.ALREADY_EXISTS),
    Attack("onboarding approved by a province", onboard_approved_by_a_province, False,
           Reason.WRONG_ROLE),
    Attack("onboarding approved by a root-issued stranger", onboard_approved_by_a_stranger, False,
           Reason.UNKNOWN_SIGNER),
    Attack("onboarding approved by a revoked coordinator",
           onboard_approved_by_a_revoked_coordinator, False, Reason.SIGNER_REVOKED),
    Attack("approval replayed", onboard_approval_replayed, False, Reason.REPLAYED),
    Attack("approval after the proposal expired", onboard_approval_after_expiry, False,
           Reason.PROPOSAL_CLOSED),
    Attack("approval back-dated a day", onboard_approval_backdated, False, Reason.BAD_TIME),
    Attack("approval from the future", onboard_approval_from_the_future, False, Reason.BAD_TIME),
    Attack("proposal that lives more than 7 days", onboard_proposal_lives_too_long, False,
           Reason.BAD_TIME),
    Attack("onboarding with another province's CA", onboard_ca_of_another_province, False,
           Reason.WRONG_PROVINCE),
    Attack("onboarding a CA outside the federation", onboard_self_signed_ca, False,
           Reason.CHAIN_INVALID),
    Attack("approval of a coordinator removed meanwhile",
           onboard_approvers_counted_after_removal, False, Reason.UNKNOWN_SIGNER),
    Attack("new CA approved after the province changed", replace_ca_with_stale_base, False,
           Reason.STALE_PROPOSAL, afterwards=Reason.PROVINCE_SUSPENDED),
    Attack("suspension of another province by a province", suspend_by_a_province, False,
           Reason.WRONG_ROLE),
    Attack("suspension by a root-issued stranger", suspend_by_a_stranger, False,
           Reason.UNKNOWN_SIGNER),
    Attack("suspension by one coordinator", suspend_by_one_coordinator, True, Reason.NONE,
           afterwards=Reason.PROVINCE_SUSPENDED),
    Attack("suspension replayed after a resumption", suspend_replayed, False, Reason.REPLAYED),
    Attack("resumption by one coordinator stays pending", resume_by_one_coordinator, True,
           Reason.NONE, afterwards=Reason.PROVINCE_SUSPENDED),
    Attack("resumption approved after a new suspension", resume_made_before_a_new_suspension,
           False, Reason.STALE_PROPOSAL, afterwards=Reason.PROVINCE_SUSPENDED),
    Attack("resumption approved after a rejection", resume_rejected_then_approved, False,
           Reason.PROPOSAL_CLOSED, afterwards=Reason.PROVINCE_SUSPENDED),
    Attack("DSC of another province uploaded", upload_by_another_province, False,
           Reason.WRONG_PROVINCE),
    Attack("DSC uploaded by a coordinator", upload_by_a_coordinator, False, Reason.WRONG_ROLE),
    Attack("DSC signed by a replaced CA", upload_dsc_of_a_replaced_ca, False,
           Reason.UNKNOWN_SIGNER, afterwards=Reason.KEY_REVOKED),
    Attack("DSC upload replayed", upload_replayed, False, Reason.REPLAYED),
    Attack("retirement by another province", retire_by_another_province, False,
           Reason.WRONG_PROVINCE),
    Attack("retirement announced 40 days ahead", retire_too_far_ahead, False, Reason.BAD_TIME),
    Attack("a later retirement does not delay an earlier one", retire_later_does_not_delay, True,
           Reason.NONE, afterwards=Reason.KEY_RETIRED),
    Attack("CRL of another province", crl_by_another_province, False, Reason.WRONG_PROVINCE),
    Attack("older CRL replayed over a newer one", crl_replayed_older, False, Reason.REPLAYED,
           afterwards=Reason.KEY_REVOKED),
    Attack("a later CRL omitting a serial does not un-revoke", crl_later_omits_an_entry, True,
           Reason.NONE, afterwards=Reason.KEY_REVOKED),
    Attack("national revocation signed by a province", revoke_by_a_province_statement, False,
           Reason.WRONG_ROLE),
    Attack("revocation that takes effect in the future", revoke_effective_in_the_future, False,
           Reason.BAD_TIME),
    Attack("a province's far-future revocation cannot delay the coordinators'",
           province_future_crl_cannot_delay_coordinators, True, Reason.NONE,
           afterwards=Reason.KEY_REVOKED),
    Attack("CA revocation by a province", revoke_ca_by_an_operator, False, Reason.WRONG_ROLE),
    Attack("CA revocation by one coordinator", revoke_ca_by_one_coordinator, True, Reason.NONE,
           afterwards=Reason.KEY_REVOKED),
    Attack("a revoked coordinator keeps signing", revoked_coordinator_keeps_signing, False,
           Reason.SIGNER_REVOKED),
    Attack("coordinator added by one coordinator stays pending", add_coordinator_by_one, True,
           Reason.NONE),
    Attack("removal below the threshold", remove_below_the_threshold, False,
           Reason.INVALID_REQUEST),
]  # fmt: skip


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_authority_table_under_attack(world: RegistryBuilder, attack: Attack) -> None:
    token = world.provinces[ZJ].token(issued_at=NOW)
    assert verdict(world, token) is Reason.NONE  # the world is sound before the attack
    decision = attack.run(world)
    assert (decision.accepted, decision.reason) == (attack.accepted, attack.reason), decision
    expected = attack.afterwards if attack.afterwards is not None else Reason.NONE
    assert verdict(world, token, at=NOW + 2) is expected


def test_every_statement_kind_has_a_row_and_a_decoder() -> None:
    kinds = set(statements.KIND_OF.values()) | set(statements.CHANGE_KINDS.values())
    assert kinds <= set(AUTHORITY)
    assert {r.kind for r in AUTHORITY.values() if r.threshold} == set(
        statements.CHANGE_KINDS.values()
    )


def test_onboarding_two_of_three_applies_and_a_code_verifies(world: RegistryBuilder) -> None:
    hn = world.onboard(HN, "海南省")
    assert verdict(world, hn.token(issued_at=NOW)) is Reason.NONE
    assert world.state.provinces[HN].version == 1


def test_revocation_effective_time_is_the_earliest(world: RegistryBuilder) -> None:
    zj = world.provinces[ZJ]
    world.accept(world.sign(DscRevocation(zj.kid, NOW - 100, "key_compromise"), "alice"))
    world.accept(world.sign(DscRevocation(zj.kid, NOW - 50, "key_compromise"), "bob"))
    assert world.view().signer(zj.kid).revoked_at == NOW - 100  # type: ignore[union-attr]


def test_crl_entry_dated_in_the_future_takes_effect_at_signing(world: RegistryBuilder) -> None:
    zj = world.provinces[ZJ]
    far = datetime.fromtimestamp(NOW + 86400, tz=UTC)
    world.accept(world.sign(CrlUpload(zj.crl([zj.dsc.serial_number], revoked_at=far)), zj.ca))
    revoked_at = world.view().signer(zj.kid).revoked_at  # type: ignore[union-attr]
    assert revoked_at == NOW + STATEMENT_SKEW_S


def test_ca_revocation_revokes_the_provinces_callers(world: RegistryBuilder) -> None:
    ca = world.provinces[ZJ].ca.certificate
    view = world.view()
    assert not view.certificate_revoked(issuer_province=ZJ, serial=12345)
    world.accept(world.sign(CaRevocation(ZJ, ca.serial_number, NOW - 1, "ca_compromise"), "bob"))
    assert world.view().certificate_revoked(issuer_province=ZJ, serial=12345)


def test_root_rotation_moves_readers_to_the_successor(world: RegistryBuilder) -> None:
    """A reader pinning only the old root follows the cross-signed metadata to the new root:
    v2 (signed by the old root) lists both; v3 (signed by the new one) only the new root and
    coordinators it issued. Then the old root can sign nothing more, and a code still verifies
    for a reader that never re-pinned by hand."""
    successor = world.new_root()
    old_coordinators = tuple(c.certificate for c in world.coordinators.values())
    both = (world.root.certificate, successor.certificate)
    world.accept(world.sign(RootMetadata(2, both, 2, old_coordinators), world.root))
    renewed = {n: world.new_coordinator(n, root=successor) for n in ("alice", "bob", "carol")}
    certs = tuple(c.certificate for c in renewed.values())
    world.accept(world.sign(RootMetadata(3, (successor.certificate,), 2, certs), successor))
    refused = world.add(world.sign(RootMetadata(4, both, 1, certs), world.root))
    assert refused.reason is Reason.WRONG_ROLE
    world.coordinators.update(renewed)
    ca = world.new_ca(HN, "海南省", root=successor)
    world.propose(Onboard(HN, "海南省", ca.certificate))
    assert HN in world.view().state.provinces
    assert [c.subject for c in world.view().roots] == [successor.certificate.subject]


def test_a_replacement_ca_numbers_its_crls_afresh(world: RegistryBuilder) -> None:
    """CRL numbers are per CA: after a new CA is approved, its CRL number 1 is accepted
    (found by running the runbook's CA-compromise procedure)."""
    zj = world.provinces[ZJ]
    world.accept(world.sign(CrlUpload(zj.crl([])), zj.ca))
    world.accept(world.sign(CrlUpload(zj.crl([])), zj.ca))
    new_ca = _new_ca(world, ZJ)
    world.propose(Onboard(ZJ, "浙江省", new_ca.certificate))
    from simulations.registry_builder import Province

    fresh = Province(ZJ, new_ca, zj.dsc, zj.dsc_key, now=NOW)
    world.accept(world.sign(CrlUpload(fresh.crl([])), new_ca))
