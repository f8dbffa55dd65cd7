"""The deck as a reader sees it: LibreOffice renders it to PDF, poppler rasterises each page, and
the pages go into one contact sheet.

Why: python-pptx writes shapes, not what they look like; an overflowing box, a tiny tick label or
a leftover identifier shows only once rendered. The contact sheet lets a reviewer see every slide
without PowerPoint (it is logged to the ``report`` run).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

TOOLS = ("soffice", "pdftoppm")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def to_pdf(pptx: Path, out_dir: Path, timeout: int = 600) -> Path:
    """LibreOffice's headless conversion, in a private profile (parallel runs do not collide)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="brainscan-soffice-") as profile:
        subprocess.run(
            [
                "soffice",
                f"-env:UserInstallation=file://{profile}",
                "--headless",
                "--convert-to",
                "pdf",
                "--outdir",
                str(out_dir),
                str(pptx),
            ],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
    pdf = out_dir / f"{pptx.stem}.pdf"
    if not pdf.exists():
        raise RuntimeError(f"LibreOffice did not write {pdf}")
    return pdf


def to_pages(pdf: Path, out_dir: Path, dpi: int = 60) -> list[Path]:
    """One PNG per page (``pdftoppm -r dpi``), in page order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir / pdf.stem
    subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(pdf), str(prefix)], check=True, capture_output=True)
    return sorted(out_dir.glob(f"{pdf.stem}-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))


def contact_sheet(pages: list[Path], path: Path, columns: int = 3, gap: int = 12) -> Path:
    """Every page on one image, ``columns`` per row, in reading order."""
    images = [Image.open(p).convert("RGB") for p in pages]
    w, h = max(i.width for i in images), max(i.height for i in images)
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * w + (columns + 1) * gap, rows * h + (rows + 1) * gap), "#9a9a9a")
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        sheet.paste(image, (gap + c * (w + gap), gap + r * (h + gap)))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def render(pptx: Path, work_dir: Path, sheet: Path, dpi: int = 60) -> list[Path]:
    """PDF, one PNG per page under ``work_dir``, and the contact sheet ``sheet``; returns the pages."""
    pages = to_pages(to_pdf(pptx, work_dir), work_dir / "pages", dpi)
    contact_sheet(pages, sheet)
    return pages
