"""The A4 sheet of a building's household QR codes: segno draws each code as SVG, the
page is a template, and Debian's Chromium prints it to PDF (with the Noto CJK fonts
installed by the project's scripts embedded)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import segno


def qr_svg(url: str) -> str:
    return segno.make(url, error="m").svg_inline(scale=4, border=2)


class PrintFailed(Exception):
    pass


async def print_pdf(chromium: str, html: str, timeout_s: float = 60.0) -> bytes:
    with tempfile.TemporaryDirectory(prefix="firstline-sheet-") as tmp:
        page, pdf = Path(tmp) / "sheet.html", Path(tmp) / "sheet.pdf"
        page.write_text(html, encoding="utf-8")
        process = await asyncio.create_subprocess_exec(
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp}/profile",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            page.as_uri(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await asyncio.wait_for(process.communicate(), timeout_s)
        except TimeoutError:
            process.kill()
            raise PrintFailed(f"{chromium} did not print the sheet in {timeout_s:.0f} s") from None
        if not pdf.exists():
            raise PrintFailed(f"{chromium} printed nothing: {err.decode(errors='replace')[-500:]}")
        return pdf.read_bytes()
