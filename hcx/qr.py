"""Reading a code from a picture of its QR code (a photo or a screenshot, PNG or JPEG).

The decoder is zxing-cpp (the C++ port of ZXing, wheels on PyPI, Apache-2.0), the most widely
used open QR reader; Pillow opens the image. Exactly one QR code must be in the picture: a
checkpoint that decoded the wrong one of two codes would verify somebody else.
"""

from __future__ import annotations

from pathlib import Path

from trust.errors import InvalidRequest

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # a phone photo is a few MB; refuse before decoding
MAX_IMAGE_PIXELS = 40_000_000  # a 48-megapixel phone photo fits; checked before pixels load
DECODE_PIXELS = 4_000_000  # larger pictures are scaled down first: a QR code needs far fewer
FORMATS = ["PNG", "JPEG"]  # nothing else is opened (no EPS, no multi-frame GIF or TIFF)


def read_qr_image(path: Path) -> str:
    """The text of the one QR code in the image at ``path``; InvalidRequest says what is wrong."""
    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    qr_only = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise InvalidRequest(f"{path} is larger than {MAX_IMAGE_BYTES // 2**20} MiB")
        with Image.open(path, formats=FORMATS) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise InvalidRequest(
                    f"{path} is {width}x{height} pixels, more than {MAX_IMAGE_PIXELS:,}"
                )
            if width * height > DECODE_PIXELS:
                scale = (DECODE_PIXELS / (width * height)) ** 0.5
                image.draft("L", (int(width * scale), int(height * scale)))  # JPEG: cheap
                image.thumbnail((int(width * scale), int(height * scale)))
            grey = image.convert("L")
        found = zxingcpp.read_barcodes(grey, formats=qr_only)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise InvalidRequest(f"cannot read {path} as a PNG or JPEG image: {e}") from e
    except (TypeError, ValueError) as e:  # the decoder refused the pixel data
        raise InvalidRequest(f"cannot decode {path}: {e}") from e
    if not found:
        raise InvalidRequest(f"no QR code found in {path}")
    if len(found) > 1:
        raise InvalidRequest(f"{path} shows {len(found)} QR codes; take a picture of one")
    return str(found[0].text)
