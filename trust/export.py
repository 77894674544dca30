"""Export the verified registry as PEM files laid out for ``openssl verify -crl_check``.

Layout under the output directory::

    root.pem                      the national root(s) of the log's root metadata
    <province>/ca.pem             the provincial CA
    <province>/crl.pem            the province's CRL (signed by its CA)
    <province>/dsc/<kid>.pem      each signing certificate

so that, per DSC: ``openssl verify -crl_check -CAfile root.pem -untrusted P/ca.pem
-CRLfile P/crl.pem P/dsc/KID.pem``. Revocations ordered by coordinators (revoke-dsc,
revoke-ca) are statements in the log, not X.509 CRLs: only a provincial CA can sign its CRL,
and the national root signs no registry content (docs/registry.md, "Known limits").
"""

from __future__ import annotations

from pathlib import Path

from trust import pki
from trust.view import TrustView


def export_pem(view: TrustView, out: Path) -> list[Path]:
    """Write every verified certificate and the latest CRL of each province."""
    out.mkdir(parents=True, exist_ok=True)
    roots = b"".join(pki.certificate_to_pem(root) for root in view.roots)
    written = [_write(out / "root.pem", roots)]
    for province in view.provinces():
        directory = out / province.code
        (directory / "dsc").mkdir(parents=True, exist_ok=True)
        written.append(
            _write(directory / "ca.pem", pki.certificate_to_pem(province.ca_certificate))
        )
        crl = view.state.crls.get(province.code)
        if crl is not None:
            written.append(_write(directory / "crl.pem", pki.crl_to_pem(crl)))
    for signer in view.signers():
        path = out / signer.province / "dsc" / f"{signer.kid.hex()}.pem"
        written.append(_write(path, pki.certificate_to_pem(signer.certificate)))
    return written


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
