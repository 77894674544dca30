"""Debian's Chromium driven by Playwright (its own driver, no browser download), with a fake
camera that films a QR code: a ``.y4m`` video made from a real token
(``--use-file-for-fake-video-capture``). In CI a missing browser fails the run."""

from __future__ import annotations

import base64
import hashlib
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import segno
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from PIL import Image

from tests.support import in_ci

WIDTH, HEIGHT = 640, 480
PHONE = {"width": 390, "height": 844}  # a phone-sized screen


def chromium() -> str:
    """Debian's chromium; skipped where it is missing, except in CI, where that fails."""
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if path is None:
        if in_ci():
            pytest.fail("chromium is not installed (apt-get install chromium); CI needs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def qr_frame(text: str) -> Image.Image:
    """A camera frame: the QR code on white, centred, as a phone's screen would be filmed."""
    qr = segno.make(text, error="m")
    rows = [tuple(row) for row in qr.matrix_iter(scale=1, border=4)]
    modules = Image.new("L", (len(rows[0]), len(rows)), 255)
    modules.putdata([0 if dark else 255 for row in rows for dark in row])
    scale = max(1, (min(WIDTH, HEIGHT) - 20) // modules.width)
    image = modules.resize(
        (modules.width * scale, modules.height * scale), Image.Resampling.NEAREST
    )
    frame = Image.new("L", (WIDTH, HEIGHT), 255)
    frame.paste(image, ((WIDTH - image.width) // 2, (HEIGHT - image.height) // 2))
    return frame


def write_y4m(path: Path, text: str, frames: int = 5) -> Path:
    """A YUV4MPEG2 video of ``frames`` frames of the QR of ``text`` (4:2:0, grey)."""
    frame = qr_frame(text)
    luma = frame.tobytes()
    chroma = bytes([128]) * ((WIDTH // 2) * (HEIGHT // 2))
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + luma + chroma + chroma)
    return path


def spki_pin(certificate_pem: bytes) -> str:
    """The base64 SHA-256 of a certificate's public key, for --ignore-certificate-errors-spki-list:
    Chromium then trusts exactly the station's key, not any certificate."""
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@asynccontextmanager
async def browser(
    playwright: Any, *, camera: Path | None, pin: str, locale: str = "en-US"
) -> AsyncIterator[Any]:
    """A headless Chromium page on a phone-sized screen; ``camera`` films that video."""
    args = [
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--use-fake-ui-for-media-stream",
        "--autoplay-policy=no-user-gesture-required",
        f"--ignore-certificate-errors-spki-list={pin}",
    ]
    if camera is not None:
        args += [
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}",
        ]
    launched = await playwright.chromium.launch(executable_path=chromium(), args=args)
    try:
        context = await launched.new_context(
            viewport=PHONE, locale=locale, permissions=["camera"], is_mobile=True, has_touch=True
        )
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on(
            "response",
            lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        page.errors = errors
        yield page
    finally:
        await launched.close()
