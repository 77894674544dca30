"""Reading a code from a picture of its QR code (a photo or a screenshot, PNG or JPEG).

The decoder is zxing-cpp (the C++ port of ZXing, wheels on PyPI, Apache-2.0), the most widely
used open QR reader; Pillow opens the image. Exactly one QR code must be in the picture: a
checkpoint that decoded the wrong one of two codes would verify somebody else.
"""

from __future__ import annotations

from pathlib import Path

from trust.errors import InvalidRequest

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # a phone photo is a few MB; refuse before decoding


def read_qr_image(path: Path) -> str:
    """The text of the one QR code in the image at ``path``; InvalidRequest says what is wrong."""
    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    QR_ONLY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)

    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise InvalidRequest(f"{path} is larger than {MAX_IMAGE_BYTES // 2**20} MiB")
        with Image.open(path) as image:
            image.load()
            found = zxingcpp.read_barcodes(image, formats=QR_ONLY)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise InvalidRequest(f"cannot read {path} as an image: {e}") from e
    if not found:
        raise InvalidRequest(f"no QR code found in {path}")
    if len(found) > 1:
        raise InvalidRequest(f"{path} shows {len(found)} QR codes; take a picture of one")
    return str(found[0].text)
