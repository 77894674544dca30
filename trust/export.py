"""Export the verified registry as PEM files laid out for ``openssl verify -crl_check``.

Layout under the output directory::

    root.pem                      the pinned national root(s)
    root-crl.pem                  the root's CRL of provincial CAs (when any was revoked)
    <province>/ca.pem             the provincial CA
    <province>/crl.pem            the province's CRL (signed by its CA)
    <province>/dsc/<kid>.pem      each signing certificate

so that, per DSC: ``openssl verify -crl_check -CAfile root.pem -untrusted P/ca.pem
-CRLfile P/crl.pem P/dsc/KID.pem``.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from trust import pki, records
from trust.view import TrustView


def export_pem(view: TrustView, root: x509.Certificate, out: Path) -> list[Path]:
    """Write every verified certificate and CRL of ``view``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [_write(out / "root.pem", pki.certificate_to_pem(root))]
    crls = {key: value for key, value, _ in view.accepted_entries() if key.startswith("crl/")}
    if records.ROOT_CRL in crls:
        crl = records.decode_crl(crls[records.ROOT_CRL])
        written.append(_write(out / "root-crl.pem", pki.crl_to_pem(crl)))
    for province in view.provinces():
        directory = out / province.code
        (directory / "dsc").mkdir(parents=True, exist_ok=True)
        written.append(
            _write(directory / "ca.pem", pki.certificate_to_pem(province.ca_certificate))
        )
        raw_crl = crls.get(records.crl_key(province.code))
        if raw_crl is not None:
            crl_pem = pki.crl_to_pem(records.decode_crl(raw_crl))
            written.append(_write(directory / "crl.pem", crl_pem))
    for signer in view.signers():
        path = out / signer.province / "dsc" / f"{signer.kid.hex()}.pem"
        written.append(_write(path, pki.certificate_to_pem(signer.certificate)))
    return written


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
