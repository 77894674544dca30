"""The authority table, and the registry state it derives from the log, one leaf at a time.

``AUTHORITY`` says, per registry statement kind (and per key family that is not a statement):
who signs it (role and scope), how many signatures it needs, who may submit it, which statement
wins when two conflict, and whether it may ever change. docs/security.md shows the same table
(a test holds them equal), and :class:`RegistryState` reads it for every leaf.

The state is a deterministic function of the log's leaves: ``apply`` judges each leaf by the
leaf's own time (``logged_at``), never by the reader's clock, so every reader of the same log
derives the same state. A leaf the table does not allow is refused (it changes nothing and is
reported); gateways run the same ``apply`` on a copy before they append, so a refused leaf in
a log means a gateway was wrong or its log key was stolen.

Thresholds follow TUF's root role: adding or restoring trust (onboarding, resuming, adding or
removing a coordinator) needs ``threshold`` distinct, current, unrevoked coordinators within the
proposal's lifetime; removing trust (suspending, revoking) needs one. Revocation is monotonic:
the effective time of a key's revocation is the earliest of every valid revocation, and never
later than the revoking statement's own signing time plus the allowed skew.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from cryptography import x509

from trust import pki
from trust.errors import HcxError
from trust.log import Leaf
from trust.model import Reason
from trust.statements import (
    ROOT_ISSUER,
    AddCoordinator,
    Approval,
    Body,
    CaRevocation,
    CertRevocation,
    Change,
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
    SignedStatement,
    Suspension,
    open_statement,
)

STATEMENT_SKEW_S = 300  # a statement's signing time must be this close to the log's time
MAX_PROPOSAL_S = 7 * 24 * 3600  # a proposal lives at most a week
MAX_RETIREMENT_AHEAD_S = 30 * 24 * 3600  # a retirement can be announced up to 30 days ahead


class Signer(enum.Enum):
    ROOT = "national root"
    COORDINATOR = "coordinator"
    PROVINCIAL_CA = "provincial CA"
    LOG_KEY = "log key"
    NODE = "node (its mTLS identity)"


@dataclass(frozen=True)
class Rule:
    """One row of the authority table."""

    kind: str
    family: str
    signer: Signer
    scope: str
    threshold: bool  # True: M of N coordinators (a proposal and its approvals)
    writers: frozenset[str]  # caller roles that may submit it
    wins: str
    changes: str

    @property
    def signatures(self) -> str:
        return "M of N coordinators" if self.threshold else "1"


def _rule(
    kind: str,
    family: str,
    signer: Signer,
    *,
    scope: str = "any",
    threshold: bool = False,
    writers: tuple[str, ...] = ("coordinator",),
    wins: str,
    changes: str,
) -> Rule:
    return Rule(kind, family, signer, scope, threshold, frozenset(writers), wins, changes)


AUTHORITY: Mapping[str, Rule] = {
    r.kind: r
    for r in (
        _rule("root", "root metadata", Signer.ROOT, scope="a root of the current metadata "
              "(genesis: a pinned root)", wins="the next version (exactly +1)",
              changes="only by a new version signed by a current root; rotation: the old "
              "root signs the metadata naming its successor"),
        _rule("onboard", "provinces", Signer.COORDINATOR, threshold=True,
              wins="the proposal whose base is the province's current version; any other "
              "goes stale", changes="a new CA only by another M-of-N onboarding"),
        _rule("resume", "provinces", Signer.COORDINATOR, threshold=True,
              wins="applies only if nothing changed the province since its base (a later "
              "suspension makes it stale)", changes="yes, by a suspension"),
        _rule("suspend", "provinces", Signer.COORDINATOR,
              wins="always applies (removes trust) and makes pending proposals stale",
              changes="lifted only by an M-of-N resume"),
        _rule("add-coordinator", "coordinators", Signer.COORDINATOR, threshold=True,
              wins="base must be the coordinator set's current version",
              changes="by M-of-N removal, revocation, or new root metadata"),
        _rule("remove-coordinator", "coordinators", Signer.COORDINATOR, threshold=True,
              wins="base must be the coordinator set's current version; refused if fewer "
              "than M would remain", changes="by M-of-N addition or new root metadata"),
        _rule("propose", "proposals", Signer.COORDINATOR,
              wins="counts as its proposer's approval",
              changes="closed when applied, rejected, stale or expired (at most 7 days)"),
        _rule("approve", "proposals", Signer.COORDINATOR,
              wins="each coordinator counts once; only current, unrevoked coordinators count",
              changes="never"),
        _rule("reject", "proposals", Signer.COORDINATOR,
              wins="one rejection closes the proposal (adding trust needs consent)",
              changes="never"),
        _rule("upload-dsc", "signing certificates", Signer.PROVINCIAL_CA, scope="own province",
              writers=("operator",), wins="the first certificate of a kid; another "
              "certificate with the same kid is refused",
              changes="never (it is retired or revoked instead)"),
        _rule("retire-dsc", "signing certificates", Signer.PROVINCIAL_CA,
              scope="own province", writers=("operator",), wins="the earliest retirement time",
              changes="only to an earlier time"),
        _rule("crl", "revocations", Signer.PROVINCIAL_CA, scope="own province",
              writers=("operator",), wins="union of every CRL: a serial once listed stays "
              "revoked, from its earliest date (never after the CRL's signing time + skew)",
              changes="the CRL number must increase"),
        _rule("revoke-dsc", "revocations", Signer.COORDINATOR,
              wins="the earliest effective time of any valid revocation",
              changes="never undone"),
        _rule("revoke-ca", "revocations", Signer.COORDINATOR,
              wins="the earliest effective time; every certificate of that CA falls with it",
              changes="never undone"),
        _rule("revoke-cert", "revocations", Signer.COORDINATOR,
              wins="the earliest effective time", changes="never undone"),
        _rule("node-registration", "nodes (routing, not trust)", Signer.NODE,
              scope="own province, own node id", writers=("node",),
              wins="a new registration of a node id replaces the old one atomically",
              changes="lives as long as its lease; only its owner keeps it alive"),
        _rule("tree-head", "log head", Signer.LOG_KEY, writers=("gateway with the log key",),
              wins="compare-and-put on the tree size: one of two concurrent appends wins",
              changes="only grows; every head extends the previous one"),
    )
}  # fmt: skip


def authority_table_markdown() -> str:
    """The authority table as docs/security.md shows it (a test holds the two equal)."""
    lines = [
        "| statement | family | signed by | scope | signatures | submitted by | wins | changes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rule in AUTHORITY.values():
        cells = (
            f"`{rule.kind}`", rule.family, rule.signer.value, rule.scope, rule.signatures,
            ", ".join(sorted(rule.writers)), rule.wins, rule.changes,
        )  # fmt: skip
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


class Refused(HcxError):
    """A statement the authority table does not allow (its reason says why)."""


@dataclass(frozen=True)
class Decision:
    """What one leaf did to the state."""

    index: int
    kind: str
    accepted: bool
    reason: Reason
    effect: str  # in words, for the audit log and the monitor
    signer: str  # the signer's identity (SPIFFE id or subject)
    actor: str
    logged_at: int
    province: str = ""
    proposal: bytes = b""


# -- state entries (immutable: a state is copied before a dry run) ------------------------------
@dataclass(frozen=True)
class Coordinator:
    name: str
    certificate: x509.Certificate
    fingerprint: bytes


@dataclass(frozen=True)
class ProvinceState:
    code: str
    name: str
    ca: x509.Certificate
    version: int
    suspended: bool = False
    why: str = ""
    ca_revoked_at: float | None = None
    ca_replaced_at: dict[bytes, float] = field(default_factory=dict)  # old CA fingerprints


@dataclass(frozen=True)
class SigningKey:
    kid: bytes
    province: str
    certificate: x509.Certificate
    ca_fingerprint: bytes
    retired_at: int | None = None
    revocations: tuple[tuple[float, str], ...] = ()


@dataclass(frozen=True)
class ProposalState:
    id: bytes
    change: Change
    base: int
    expires_at: int
    proposer: str
    index: int
    approvals: tuple[tuple[bytes, str], ...] = ()  # (coordinator fingerprint, name)
    status: str = "pending"  # pending, applied, rejected
    closed_by: str = ""


@dataclass
class RegistryState:
    """Everything the log says, as of its ``size`` leaves (trust.view serves it)."""

    pinned_roots: tuple[x509.Certificate, ...]
    roots: tuple[x509.Certificate, ...] = ()
    root_version: int = 0
    threshold: int = 0
    coordinators: dict[bytes, Coordinator] = field(default_factory=dict)
    coordinator_version: int = 0
    provinces: dict[str, ProvinceState] = field(default_factory=dict)
    signing_keys: dict[bytes, SigningKey] = field(default_factory=dict)
    crl_numbers: dict[str, int] = field(default_factory=dict)  # by CA fingerprint (hex)
    crls: dict[str, x509.CertificateRevocationList] = field(default_factory=dict)  # latest
    revoked: dict[tuple[str, int], tuple[float, str]] = field(default_factory=dict)
    proposals: dict[bytes, ProposalState] = field(default_factory=dict)
    seen: set[bytes] = field(default_factory=set)
    size: int = 0
    refused: int = 0

    def __post_init__(self) -> None:
        if not self.roots:
            self.roots = tuple(self.pinned_roots)

    def copy(self) -> RegistryState:
        """A copy to try a statement on (entries are immutable; only the maps are copied)."""
        return replace(
            self,
            coordinators=dict(self.coordinators),
            provinces=dict(self.provinces),
            signing_keys=dict(self.signing_keys),
            crl_numbers=dict(self.crl_numbers),
            crls=dict(self.crls),
            revoked=dict(self.revoked),
            proposals=dict(self.proposals),
            seen=set(self.seen),
        )

    def apply(self, leaf: Leaf, *, opened: SignedStatement | None = None) -> Decision:
        """Judge the next leaf of the log; the state changes only if it is accepted.
        ``opened``: the leaf's statement already decoded and its signature checked (readers
        check signatures of many leaves in parallel first; the judging itself is in order)."""
        index = self.size
        self.size += 1
        try:
            signed = opened if opened is not None else open_statement(leaf.statement)
        except HcxError as e:
            self.refused += 1
            return Decision(index, "?", False, e.reason, f"refused: {e.message}", "?",
                            leaf.actor, leaf.logged_at)  # fmt: skip
        judge = _Judge(self, signed, leaf, index)
        try:
            effect = judge.run()
        except Refused as e:
            self.refused += 1
            return judge.decision(False, e.reason, f"refused: {e.message}")
        self.seen.add(signed.id)
        return judge.decision(True, Reason.NONE, effect)

    # -- reads --------------------------------------------------------------------------------
    def province_of_kid(self, kid: bytes) -> str | None:
        key = self.signing_keys.get(kid)
        return key.province if key else None

    def pending(self, *, now: float) -> list[ProposalState]:
        """Proposals still open at ``now`` (not applied, rejected, stale or expired)."""
        return [p for p in self.proposals.values() if self.proposal_status(p, now=now) == "pending"]

    def proposal_status(self, proposal: ProposalState, *, now: float) -> str:
        if proposal.status != "pending":
            return proposal.status
        if now > proposal.expires_at:
            return "expired"
        if proposal.base != self.version_of(proposal.change):
            return "stale"
        return "pending"

    def version_of(self, change: Change) -> int:
        if isinstance(change, Onboard | Resume):
            province = self.provinces.get(change.province)
            return province.version if province else 0
        return self.coordinator_version

    def caller_revoked(self, *, issuer: str, serial: int, now: float) -> bool:
        found = self.revoked.get((issuer, serial))
        return found is not None and found[0] <= now


def _refuse(reason: Reason, message: str) -> Refused:
    return Refused(message, reason=reason)


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


class _Judge:
    """Checks one signed statement against the table and the state, and applies it."""

    def __init__(self, state: RegistryState, signed: SignedStatement, leaf: Leaf, index: int):
        self.state = state
        self.signed = signed
        self.statement = signed.statement
        self.leaf = leaf
        self.index = index
        self.now = leaf.logged_at
        self.signer_name = pki.spiffe_id(signed.signer) or signed.signer.subject.rfc4514_string()
        self.province = ""
        self.proposal = b""

    def decision(self, accepted: bool, reason: Reason, effect: str) -> Decision:
        return Decision(self.index, self.statement.kind, accepted, reason, effect,
                        self.signer_name, self.leaf.actor, self.leaf.logged_at,
                        self.province, self.proposal)  # fmt: skip

    def run(self) -> str:
        if self.signed.id in self.state.seen:
            raise _refuse(Reason.REPLAYED, "this signed statement was already accepted")
        if abs(self.statement.signed_at - self.now) > STATEMENT_SKEW_S:
            raise _refuse(
                Reason.BAD_TIME,
                f"signed at {self.statement.signed_at}, logged at {self.now}: more than "
                f"{STATEMENT_SKEW_S} s apart",
            )
        body = self.statement.body
        if self.state.root_version == 0 and not isinstance(body, RootMetadata):
            raise _refuse(Reason.UNKNOWN_SIGNER, "the log has no root metadata yet")
        return self._apply(body)

    def _apply(self, body: Body) -> str:
        match body:
            case RootMetadata():
                return self._root(body)
            case Proposal():
                return self._propose(body)
            case Approval():
                return self._approve(body)
            case Rejection():
                return self._reject(body)
            case Suspension():
                return self._suspend(body)
            case DscUpload():
                return self._upload(body)
            case Retirement():
                return self._retire(body)
            case CrlUpload():
                return self._crl(body)
            case DscRevocation():
                return self._revoke_dsc(body)
            case CaRevocation():
                return self._revoke_ca(body)
            case CertRevocation():
                return self._revoke_cert(body)
        raise _refuse(Reason.MALFORMED, f"no rule for {type(body).__name__}")

    # -- who signed ----------------------------------------------------------------------------
    def _coordinator(self) -> Coordinator:
        """The signer as a current, unrevoked coordinator (WRONG_ROLE / UNKNOWN_SIGNER / …)."""
        cert = self.signed.signer
        sid = pki.spiffe_id(cert) or ""
        if not sid.startswith(f"{pki.NATIONAL_SPIFFE_ID}/coordinator/"):
            raise _refuse(Reason.WRONG_ROLE, f"{self.signer_name} is not a coordinator")
        try:
            pki.verify_national_leaf(cert, self.state.roots, at=_at(self.now), kind="coordinator")
        except HcxError as e:
            raise _refuse(Reason.SIGNER_REVOKED, f"coordinator certificate: {e.message}") from e
        found = self.state.coordinators.get(pki.fingerprint(cert))
        if found is None:
            raise _refuse(Reason.UNKNOWN_SIGNER, f"{sid} is not in the coordinator set")
        if self.state.caller_revoked(issuer=ROOT_ISSUER, serial=cert.serial_number, now=self.now):
            raise _refuse(Reason.SIGNER_REVOKED, f"the certificate of {sid} is revoked")
        return found

    def _provincial_ca(self, province: str) -> ProvinceState:
        """The signer as the current, unrevoked CA of ``province`` (the statement's scope)."""
        cert = self.signed.signer
        own = pki.province_of(cert)
        if own is None or pki.spiffe_id(cert) != pki.provincial_ca_spiffe_id(own):
            raise _refuse(Reason.WRONG_ROLE, f"{self.signer_name} is not a provincial CA")
        if own != province:
            raise _refuse(Reason.WRONG_PROVINCE, f"the CA of {own} cannot act for {province}")
        self.province = province
        record = self.state.provinces.get(province)
        if record is None:
            raise _refuse(Reason.UNKNOWN_PROVINCE, f"province {province} is not onboarded")
        if pki.fingerprint(cert) != pki.fingerprint(record.ca):
            raise _refuse(Reason.UNKNOWN_SIGNER, f"not the current CA of province {province}")
        if record.ca_revoked_at is not None and record.ca_revoked_at <= self.now:
            raise _refuse(Reason.SIGNER_REVOKED, f"the CA of province {province} is revoked")
        return record

    def _root_signer(self) -> None:
        cert = self.signed.signer
        allowed = self.state.roots if self.state.root_version else self.state.pinned_roots
        if not any(pki.fingerprint(cert) == pki.fingerprint(r) for r in allowed):
            raise _refuse(Reason.WRONG_ROLE, "root metadata must be signed by a current root")
        try:
            pki.verify_root(cert, at=_at(self.now))
        except HcxError as e:
            raise _refuse(Reason.SIGNER_REVOKED, f"root certificate: {e.message}") from e

    # -- root metadata ------------------------------------------------------------------------
    def _root(self, body: RootMetadata) -> str:
        self._root_signer()
        if body.version != self.state.root_version + 1:
            raise _refuse(
                Reason.REPLAYED
                if body.version <= self.state.root_version
                else Reason.STALE_PROPOSAL,
                f"root metadata version {body.version} does not follow {self.state.root_version}",
            )
        for root in body.roots:
            try:
                pki.verify_root(root, at=_at(self.now))
            except HcxError as e:
                raise _refuse(Reason.INVALID_REQUEST, f"a listed root: {e.message}") from e
        if self.state.root_version == 0 and not any(
            pki.fingerprint(r) == pki.fingerprint(self.signed.signer) for r in body.roots
        ):
            raise _refuse(Reason.INVALID_REQUEST, "genesis must list the root that signs it")
        coordinators = self._coordinator_set(body.coordinators, body.roots)
        if body.threshold > len(coordinators):
            raise _refuse(Reason.INVALID_REQUEST, "threshold exceeds the number of coordinators")
        state = self.state
        state.roots, state.root_version, state.threshold = body.roots, body.version, body.threshold
        state.coordinators = coordinators
        state.coordinator_version += 1
        names = ", ".join(sorted(c.name for c in coordinators.values()))
        return (
            f"root metadata v{body.version}: {len(body.roots)} root(s), threshold "
            f"{body.threshold} of {len(coordinators)} coordinators ({names})"
        )

    def _coordinator_set(
        self, certificates: tuple[x509.Certificate, ...], roots: tuple[x509.Certificate, ...]
    ) -> dict[bytes, Coordinator]:
        found: dict[bytes, Coordinator] = {}
        for cert in certificates:
            coordinator = self._check_coordinator_cert(cert, roots)
            if any(c.name == coordinator.name for c in found.values()):
                raise _refuse(Reason.ALREADY_EXISTS, f"two coordinators named {coordinator.name}")
            found[coordinator.fingerprint] = coordinator
        return found

    def _check_coordinator_cert(
        self, cert: x509.Certificate, roots: tuple[x509.Certificate, ...]
    ) -> Coordinator:
        try:
            pki.verify_national_leaf(cert, roots, at=_at(self.now), kind="coordinator")
        except HcxError as e:
            raise _refuse(Reason.INVALID_REQUEST, f"coordinator certificate: {e.message}") from e
        name = (pki.spiffe_id(cert) or "").rsplit("/", 1)[-1]
        return Coordinator(name=name, certificate=cert, fingerprint=pki.fingerprint(cert))

    # -- proposals ----------------------------------------------------------------------------
    def _propose(self, body: Proposal) -> str:
        coordinator = self._coordinator()
        if not self.now < body.expires_at <= self.statement.signed_at + MAX_PROPOSAL_S:
            raise _refuse(Reason.BAD_TIME, "a proposal must expire within 7 days of signing")
        self._check_base(body.change, body.base)
        self._check_change(body.change)
        self.proposal = self.signed.id
        proposal = ProposalState(
            id=self.signed.id, change=body.change, base=body.base, expires_at=body.expires_at,
            proposer=coordinator.name, index=self.index,
            approvals=((coordinator.fingerprint, coordinator.name),),
        )  # fmt: skip
        self.state.proposals[proposal.id] = proposal
        return self._maybe_apply(
            proposal, f"proposal {proposal.id.hex()[:16]} by {coordinator.name}"
        )

    def _approve(self, body: Approval) -> str:
        coordinator = self._coordinator()
        proposal = self._open_proposal(body.proposal)
        if any(fp == coordinator.fingerprint for fp, _ in proposal.approvals):
            raise _refuse(Reason.ALREADY_EXISTS, f"{coordinator.name} already approved it")
        proposal = replace(
            proposal, approvals=(*proposal.approvals, (coordinator.fingerprint, coordinator.name))
        )
        self.state.proposals[proposal.id] = proposal
        return self._maybe_apply(
            proposal, f"approval of {proposal.id.hex()[:16]} by {coordinator.name}"
        )

    def _reject(self, body: Rejection) -> str:
        coordinator = self._coordinator()
        proposal = self._open_proposal(body.proposal)
        self.state.proposals[proposal.id] = replace(
            proposal, status="rejected", closed_by=f"{coordinator.name}: {body.why}"
        )
        return f"proposal {proposal.id.hex()[:16]} rejected by {coordinator.name}: {body.why}"

    def _open_proposal(self, proposal_id: bytes) -> ProposalState:
        self.proposal = proposal_id
        proposal = self.state.proposals.get(proposal_id)
        if proposal is None:
            raise _refuse(Reason.NOT_FOUND, f"no proposal {proposal_id.hex()[:16]}")
        status = self.state.proposal_status(proposal, now=self.now)
        if status == "stale":
            raise _refuse(Reason.STALE_PROPOSAL, "the proposal's subject changed since it was made")
        if status != "pending":
            raise _refuse(Reason.PROPOSAL_CLOSED, f"the proposal is {status}")
        self._describe_subject(proposal.change)
        return proposal

    def _describe_subject(self, change: Change) -> None:
        if isinstance(change, Onboard | Resume):
            self.province = change.province

    def _check_base(self, change: Change, base: int) -> None:
        self._describe_subject(change)
        current = self.state.version_of(change)
        if base != current:
            raise _refuse(Reason.STALE_PROPOSAL, f"base version {base}, current is {current}")

    def _valid_approvals(self, proposal: ProposalState) -> list[str]:
        """Distinct approvers that are still current, unrevoked coordinators now."""
        names = []
        for fingerprint, name in proposal.approvals:
            coordinator = self.state.coordinators.get(fingerprint)
            if coordinator is None or self.state.caller_revoked(
                issuer=ROOT_ISSUER, serial=coordinator.certificate.serial_number, now=self.now
            ):
                continue
            names.append(name)
        return names

    def _maybe_apply(self, proposal: ProposalState, what: str) -> str:
        approvers = self._valid_approvals(proposal)
        if len(approvers) < self.state.threshold:
            return f"{what}: {len(approvers)} of {self.state.threshold} approvals"
        self._check_base(proposal.change, proposal.base)
        self._check_change(proposal.change)
        effect = self._change(proposal.change)
        self.state.proposals[proposal.id] = replace(
            proposal, status="applied", closed_by=", ".join(approvers)
        )
        return f"{what}: approved by {', '.join(approvers)}; {effect}"

    # -- changes that add or restore trust ------------------------------------------------------
    def _check_change(self, change: Change) -> None:
        match change:
            case Onboard():
                self._check_onboard(change)
            case Resume():
                record = self.state.provinces.get(change.province)
                if record is None:
                    raise _refuse(Reason.UNKNOWN_PROVINCE, f"province {change.province} unknown")
                if not record.suspended:
                    raise _refuse(Reason.INVALID_REQUEST, f"{change.province} is not suspended")
            case AddCoordinator():
                coordinator = self._check_coordinator_cert(change.certificate, self.state.roots)
                if coordinator.fingerprint in self.state.coordinators or any(
                    c.name == coordinator.name for c in self.state.coordinators.values()
                ):
                    raise _refuse(Reason.ALREADY_EXISTS, f"{coordinator.name} is a coordinator")
            case RemoveCoordinator():
                if not any(c.name == change.name for c in self.state.coordinators.values()):
                    raise _refuse(Reason.NOT_FOUND, f"no coordinator {change.name}")
                if len(self.state.coordinators) - 1 < self.state.threshold:
                    raise _refuse(Reason.INVALID_REQUEST, "fewer coordinators than the threshold")

    def _check_onboard(self, change: Onboard) -> None:
        try:
            named = pki.verify_provincial_ca(change.ca, self.state.roots, at=_at(self.now))
        except HcxError as e:
            raise _refuse(Reason.CHAIN_INVALID, f"provincial CA: {e.message}") from e
        if named != change.province:
            raise _refuse(Reason.WRONG_PROVINCE, f"the CA is for province {named}")
        current = self.state.provinces.get(change.province)
        if current is not None and pki.fingerprint(current.ca) == pki.fingerprint(change.ca):
            raise _refuse(Reason.ALREADY_EXISTS, f"{change.province} already has this CA")
        serial = change.ca.serial_number
        if self.state.caller_revoked(issuer=ROOT_ISSUER, serial=serial, now=self.now):
            raise _refuse(Reason.KEY_REVOKED, "this CA certificate is revoked")

    def _change(self, change: Change) -> str:
        state = self.state
        match change:
            case Onboard():
                current = state.provinces.get(change.province)
                if current is None:
                    state.provinces[change.province] = ProvinceState(
                        change.province, change.name, change.ca, version=1
                    )
                    return f"province {change.province} ({change.name}) onboarded"
                replaced = {**current.ca_replaced_at, pki.fingerprint(current.ca): float(self.now)}
                state.provinces[change.province] = replace(
                    current, name=change.name, ca=change.ca, version=current.version + 1,
                    ca_revoked_at=None, ca_replaced_at=replaced,
                )  # fmt: skip
                return f"province {change.province} has a new CA (the old one no longer counts)"
            case Resume():
                current = state.provinces[change.province]
                state.provinces[change.province] = replace(
                    current, suspended=False, why=change.why, version=current.version + 1
                )
                return f"province {change.province} resumed"
            case AddCoordinator():
                coordinator = self._check_coordinator_cert(change.certificate, state.roots)
                state.coordinators[coordinator.fingerprint] = coordinator
                state.coordinator_version += 1
                return f"coordinator {coordinator.name} added"
            case RemoveCoordinator():
                for fingerprint, c in list(state.coordinators.items()):
                    if c.name == change.name:
                        del state.coordinators[fingerprint]
                state.coordinator_version += 1
                return f"coordinator {change.name} removed"
        raise _refuse(Reason.MALFORMED, "unknown change")

    # -- changes that remove trust (one signature) --------------------------------------------
    def _suspend(self, body: Suspension) -> str:
        coordinator = self._coordinator()
        self.province = body.province
        current = self.state.provinces.get(body.province)
        if current is None:
            raise _refuse(Reason.UNKNOWN_PROVINCE, f"province {body.province} is not onboarded")
        self.state.provinces[body.province] = replace(
            current, suspended=True, why=body.why, version=current.version + 1
        )
        return f"province {body.province} suspended by {coordinator.name}: {body.why}"

    def _effective(self, revoked_at: int) -> float:
        """A revocation takes effect at its stated time, never later than its signing + skew."""
        latest = self.statement.signed_at + STATEMENT_SKEW_S
        if revoked_at > latest:
            raise _refuse(Reason.BAD_TIME, "a revocation cannot take effect in the future")
        return float(revoked_at)

    def _revoke_dsc(self, body: DscRevocation) -> str:
        coordinator = self._coordinator()
        key = self.state.signing_keys.get(body.kid)
        if key is None:
            raise _refuse(Reason.UNKNOWN_KID, f"no signing certificate {body.kid.hex()}")
        self.province = key.province
        when = self._effective(body.revoked_at)
        self.state.signing_keys[body.kid] = replace(
            key, revocations=(*key.revocations, (when, f"revoked nationally: {body.reason}"))
        )
        return (
            f"signing certificate {body.kid.hex()} of {key.province} revoked by {coordinator.name}"
        )

    def _revoke_ca(self, body: CaRevocation) -> str:
        coordinator = self._coordinator()
        self.province = body.province
        current = self.state.provinces.get(body.province)
        if current is None:
            raise _refuse(Reason.UNKNOWN_PROVINCE, f"province {body.province} is not onboarded")
        when = self._effective(body.revoked_at)
        self._revoke_serial(ROOT_ISSUER, body.serial, when, f"provincial CA revoked: {body.reason}")
        if current.ca.serial_number == body.serial:
            earliest = when if current.ca_revoked_at is None else min(when, current.ca_revoked_at)
            self.state.provinces[body.province] = replace(current, ca_revoked_at=earliest)
        return (
            f"CA of province {body.province} (serial {body.serial:x}) revoked by {coordinator.name}"
        )

    def _revoke_cert(self, body: CertRevocation) -> str:
        coordinator = self._coordinator()
        if body.issuer != ROOT_ISSUER:
            self.province = body.issuer
        when = self._effective(body.revoked_at)
        self._revoke_serial(body.issuer, body.serial, when, f"revoked nationally: {body.reason}")
        return f"certificate {body.serial:x} of {body.issuer} revoked by {coordinator.name}"

    def _revoke_serial(self, issuer: str, serial: int, when: float, why: str) -> None:
        existing = self.state.revoked.get((issuer, serial))
        if existing is None or when < existing[0]:
            self.state.revoked[(issuer, serial)] = (when, why)

    # -- the province's own statements --------------------------------------------------------
    def _upload(self, body: DscUpload) -> str:
        certificate = body.certificate
        named = pki.province_of(certificate)
        record = self._provincial_ca(named or pki.province_of(self.signed.signer) or "")
        if named != record.code:
            raise _refuse(Reason.WRONG_PROVINCE, f"the DSC names province {named}")
        if certificate.not_valid_after_utc <= _at(self.now):
            raise _refuse(Reason.EXPIRED, "the signing certificate has already expired")
        try:
            at = max(_at(self.now), certificate.not_valid_before_utc)
            pki.verify_dsc_chain(certificate, record.ca, self.state.roots, at=at)
        except HcxError as e:
            raise _refuse(e.reason if e.reason is not Reason.NONE else Reason.CHAIN_INVALID,
                          f"signing certificate: {e.message}") from e  # fmt: skip
        kid = pki.kid(certificate)
        existing = self.state.signing_keys.get(kid)
        if existing is not None:
            same = pki.fingerprint(existing.certificate) == pki.fingerprint(certificate)
            raise _refuse(
                Reason.REPLAYED if same else Reason.ALREADY_EXISTS,
                "this signing certificate is already registered" if same
                else f"kid {kid.hex()} collides with another certificate",
            )  # fmt: skip
        self.state.signing_keys[kid] = SigningKey(
            kid, record.code, certificate, pki.fingerprint(record.ca)
        )
        return f"signing certificate {kid.hex()} of {record.code} uploaded"

    def _retire(self, body: Retirement) -> str:
        key = self.state.signing_keys.get(body.kid)
        if key is None:
            raise _refuse(Reason.UNKNOWN_KID, f"no signing certificate {body.kid.hex()}")
        self._provincial_ca(key.province)
        if body.retired_at > self.statement.signed_at + MAX_RETIREMENT_AHEAD_S:
            raise _refuse(Reason.BAD_TIME, "a retirement is announced at most 30 days ahead")
        when = body.retired_at if key.retired_at is None else min(key.retired_at, body.retired_at)
        self.state.signing_keys[body.kid] = replace(key, retired_at=when)
        return f"signing certificate {body.kid.hex()} of {key.province} retires at {when}"

    def _crl(self, body: CrlUpload) -> str:
        crl = body.crl
        record = self._provincial_ca(pki.province_of(self.signed.signer) or "")
        if crl.issuer != record.ca.subject:
            raise _refuse(Reason.WRONG_PROVINCE, f"the CRL is not one of {record.code}'s CA")
        try:
            pki.verify_crl(crl, record.ca)
        except HcxError as e:
            raise _refuse(Reason.BAD_SIGNATURE, f"CRL: {e.message}") from e
        number = _crl_number(crl)
        issuer = pki.fingerprint(record.ca).hex()  # numbers are per CA: a new CA starts again
        if number <= self.state.crl_numbers.get(issuer, -1):
            raise _refuse(Reason.REPLAYED, f"CRL number {number} does not increase")
        self.state.crl_numbers[issuer] = number
        self.state.crls[record.code] = crl
        latest = float(self.statement.signed_at + STATEMENT_SKEW_S)
        for entry in crl:
            when = min(entry.revocation_date_utc.timestamp(), latest)
            self._revoke_serial(
                record.code, entry.serial_number, when, "revoked by its provincial CA"
            )
        return f"CRL {number} of {record.code}: {len(list(crl))} revoked serial(s)"


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return 0


def fold(
    pinned_roots: tuple[x509.Certificate, ...], leaves: list[Leaf]
) -> tuple[RegistryState, list[Decision]]:
    """The state a log of ``leaves`` derives from the pinned roots, with every decision."""
    state = RegistryState(pinned_roots=pinned_roots)
    return state, [state.apply(leaf) for leaf in leaves]
