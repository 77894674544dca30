"""A registry built in memory the way the federation builds it, for tests and benchmarks (no
servers, throw-away keys made at run time).

``RegistryBuilder`` makes a national root, three coordinators (2 of 3), the log and trust-list
signers, and a log that starts with the root's genesis metadata. ``onboard`` onboards a province
as coordinators do (alice proposes, bob approves), then the province uploads its DSC signed by
its own CA. Every statement goes through the real authority table (trust.authority) as a leaf
of a real log (trust.log): ``view()`` verifies and folds it like a gateway, ``snapshot()`` is
what a store would hold (tests edit it to tamper), ``write_to(store)`` puts it in a real store.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509

from trust import merkle, pki, statements
from trust.authority import Decision, RegistryState
from trust.codeformat import CodeClaims, issue_token
from trust.kv import KvEntry, KvStore, Snapshot, Write
from trust.log import HEAD_KEY, Leaf, leaf_key, sign_head
from trust.model import Colour
from trust.reader import LogReader
from trust.view import TrustView

COORDINATORS = ("alice", "bob", "carol")


@dataclass
class Province:
    """A province's own keys: its CA (kept by the province) and its current DSC."""

    code: str
    ca: pki.Authority
    dsc: x509.Certificate
    dsc_key: pki.PrivateKey
    now: int = 0  # the builder's clock: CRLs are dated by it, never by the machine's
    crl_number: int = 0

    @property
    def kid(self) -> bytes:
        return pki.kid(self.dsc)

    def token(
        self,
        *,
        issued_at: float | None = None,
        lifetime: int = 300,
        colour: Colour = Colour.GREEN,
        code_id: bytes | None = None,
        key: pki.PrivateKey | None = None,
        kid: bytes | None = None,
    ) -> str:
        iat = int(time.time() if issued_at is None else issued_at)
        claims = CodeClaims(
            issuer=self.code,
            code_id=code_id or secrets.token_bytes(16),
            issued_at=iat,
            expires_at=iat + lifetime,
            colour=colour,
            status_version=1,
            masked_name="张*明",
            id_tail="123X",
        )
        return issue_token(claims, signing_key=key or self.dsc_key, kid=kid or self.kid)

    def crl(
        self, serials: list[int], *, revoked_at: datetime | None = None
    ) -> x509.CertificateRevocationList:
        """A new CRL of ``serials``, signed by the province's CA, with a larger number."""
        self.crl_number += 1
        now = datetime.fromtimestamp(self.now, tz=UTC) if self.now else datetime.now(UTC)
        entries = [
            pki.RevokedEntry(s, revoked_at or now, x509.ReasonFlags.key_compromise) for s in serials
        ]
        return pki.make_crl(
            self.ca.certificate, self.ca.private_key, entries,
            this_update=now - timedelta(minutes=1), next_update=now + timedelta(days=7),
            crl_number=self.crl_number,
        )  # fmt: skip


def _signer(root: pki.Authority, kind: str, at: datetime) -> pki.Authority:
    key = pki.generate_private_key()
    csr = pki.make_csr(key, common_name=f"hcx national {kind} signer")
    sign = pki.sign_log_signer if kind == "log" else pki.sign_trust_list_signer
    return pki.Authority(sign(root, csr, not_before=at), key)


class RegistryBuilder:
    """A root, coordinators, signers and a growing registry log, all in memory."""

    def __init__(
        self,
        *,
        threshold: int = 2,
        clock: float | None = None,
        like: RegistryBuilder | None = None,
    ) -> None:
        """``like``: another builder whose root and signers this one shares (a fork of it)."""
        self.now = int(clock if clock is not None else time.time())
        # Every certificate is issued at the builder's clock, never the machine's: a module's
        # NOW is taken at import, and a long run reaches its tests many minutes later.
        self.root: pki.Authority = like.root if like else pki.create_root_ca(now=self.moment)
        self.coordinators: dict[str, pki.Authority] = (
            dict(like.coordinators) if like else {n: self.new_coordinator(n) for n in COORDINATORS}
        )
        self.log_signer: pki.Authority = (
            like.log_signer if like else _signer(self.root, "log", self.moment)
        )
        self.trust_list_signer: pki.Authority = (
            like.trust_list_signer if like else _signer(self.root, "trust-list", self.moment)
        )
        self.leaves: list[Leaf] = []
        self.decisions: list[Decision] = []
        self.state = RegistryState(pinned_roots=(self.root.certificate,))
        self.provinces: dict[str, Province] = {}
        certs = tuple(c.certificate for c in self.coordinators.values())
        self.add(self.sign(statements.RootMetadata(1, (self.root.certificate,), threshold, certs),
                           self.root))  # fmt: skip

    @property
    def moment(self) -> datetime:
        """The builder's clock as a datetime: certificates are issued at it, never at the
        machine's, so a test run that reaches a module minutes after importing it (its NOW)
        verifies the same."""
        return datetime.fromtimestamp(self.now, UTC)

    @property
    def roots(self) -> list[x509.Certificate]:
        return [self.root.certificate]

    # -- statements ----------------------------------------------------------------------------
    def sign(
        self, body: statements.Body, signer: str | pki.Authority, *, signed_at: int | None = None
    ) -> bytes:
        authority = self.coordinators[signer] if isinstance(signer, str) else signer
        statement = statements.make(body, signed_at=self.now if signed_at is None else signed_at)
        return statements.sign(statement, authority.private_key, authority.certificate)

    def add(
        self, statement: bytes, *, logged_at: int | None = None, actor: str = "test"
    ) -> Decision:
        """Append ``statement`` as the next leaf (accepted or not) and return the decision."""
        leaf = Leaf.make(statement, logged_at=self.now if logged_at is None else logged_at,
                         actor=actor)  # fmt: skip
        self.leaves.append(leaf)
        decision = self.state.apply(leaf)
        self.decisions.append(decision)
        return decision

    def accept(self, statement: bytes) -> Decision:
        """``add`` that must be accepted."""
        decision = self.add(statement)
        assert decision.accepted, decision.effect
        return decision

    def propose(self, change: statements.Change, *, approvers: tuple[str, ...] = ("bob",)) -> bytes:
        """alice proposes ``change`` and ``approvers`` approve; returns the proposal's id."""
        base = self.state.version_of(change)
        proposal = self.sign(statements.Proposal(change, base, self.now + 3600), "alice")
        self.accept(proposal)
        pid = statements.statement_id(proposal)
        for name in approvers:
            self.accept(self.sign(statements.Approval(pid), name))
        return pid

    # -- certificates, all issued at the builder's clock ------------------------------------------
    def new_root(self) -> pki.Authority:
        """Another national root (a successor, or a stranger's)."""
        return pki.create_root_ca(now=self.moment)

    def new_ca(
        self, code: str, name: str = "测试省", *, root: pki.Authority | None = None
    ) -> pki.Authority:
        """A provincial CA for ``code`` issued by ``root`` (the builder's), not yet onboarded."""
        key = pki.generate_private_key()
        csr = pki.make_csr(key, common_name=f"hcx province {code} CA")
        cert = pki.sign_provincial_ca(root or self.root, csr, province=code, name=name,
                                      now=self.moment)  # fmt: skip
        return pki.Authority(cert, key)

    def new_coordinator(self, name: str, *, root: pki.Authority | None = None) -> pki.Authority:
        """A coordinator certificate issued by ``root``, not added to the coordinator set."""
        key = pki.generate_private_key()
        csr = pki.make_csr(key, common_name=f"hcx national coordinator {name}")
        cert = pki.sign_national_leaf(root or self.root, csr, kind="coordinator", name=name,
                                      not_before=self.moment)  # fmt: skip
        return pki.Authority(cert, key)

    def issue_dsc(
        self, ca: pki.Authority, code: str, name: str
    ) -> tuple[x509.Certificate, pki.PrivateKey]:
        """A DSC signed by ``ca``, not uploaded."""
        key = pki.generate_private_key()
        dsc = pki.sign_dsc(ca, pki.make_csr(key, common_name=name), province=code, name=name,
                           not_before=self.moment)  # fmt: skip
        return dsc, key

    def onboard(self, code: str, name: str = "测试省") -> Province:
        """A province onboarded 2 of 3, with one DSC uploaded (signed by its own CA)."""
        ca = self.new_ca(code, name)
        self.propose(statements.Onboard(code, name, ca.certificate))
        dsc, key = self.new_dsc(ca, code, "dsc-1")
        province = Province(code, ca, dsc, key, now=self.now)
        self.provinces[code] = province
        return province

    def new_dsc(
        self, ca: pki.Authority, code: str, name: str
    ) -> tuple[x509.Certificate, pki.PrivateKey]:
        dsc, key = self.issue_dsc(ca, code, name)
        self.accept(self.sign(statements.DscUpload(dsc), ca))
        return dsc, key

    # -- the log as a store and as a view ----------------------------------------------------------
    def head(self, size: int | None = None, *, at: int | None = None) -> bytes:
        size = len(self.leaves) if size is None else size
        root = merkle.root([leaf.hash for leaf in self.leaves[:size]])
        return sign_head(size=size, root=root, at=self.now if at is None else at,
                         signer=self.log_signer)  # fmt: skip

    def snapshot(self, size: int | None = None) -> Snapshot:
        size = len(self.leaves) if size is None else size
        entries = [
            KvEntry(leaf_key(i), leaf.raw, i + 1) for i, leaf in enumerate(self.leaves[:size])
        ]
        entries.append(KvEntry(HEAD_KEY, self.head(size), size))
        return Snapshot(tuple(entries), size)

    def view(self, *, rejected: list[str] | None = None) -> TrustView:
        """A gateway's view of this log (verified and folded by trust.reader)."""
        view = TrustView(
            roots=self.roots,
            on_rejected=(lambda k, why: rejected.append(k)) if rejected is not None else None,
        )
        reader = LogReader(view)
        assert reader.load(self.snapshot()), reader.inconsistent
        return view

    async def write_to(self, store: KvStore) -> None:
        """The whole log into ``store`` (one transaction per leaf, head last), as gateways do."""
        revision = 0
        for i, leaf in enumerate(self.leaves):
            head = self.head(i + 1)
            revision = await store.transact(
                [Write(leaf_key(i), leaf.raw, expect_revision=0),
                 Write(HEAD_KEY, head, expect_revision=revision)]
            )  # fmt: skip
