"""The rules a deck must pass as a reader sees it, checked on every deck written (and by the tests).

Why: a deck is read without us in the room. Slide text must not show internal names (they stay in
the notes), money must read as money, each slide carries one message, and a figure's text must
stay legible at the size it is placed. :func:`brainscan_exp.report.deck.Deck.save` refuses a deck
that breaks one.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image
from pptx import Presentation

from brainscan_exp.report.figures import placed_font_pt
from brainscan_exp.report.layout import find_overflows

MIN_FONT_PT = 12
MAX_BULLETS = 4
# what slide text must not show: snake_case names, config keys (key=value), commands in backticks,
# run ids, arrows between internal names, paths with two or more slashes
INTERNAL = re.compile(r"\b[A-Za-z0-9]+(?:_[A-Za-z0-9]+)+\b|\b\w+=\S|`|\b[0-9a-f]{32}\b|->|\b\w+(?:/\w+){2,}")
ZERO_EUROS = re.compile(r"(?<![\d,.\u202f])0\s?€|€0(?![.,]\d)")
AMOUNT = re.compile(r"(\d[\d\u202f]*(?:,\d+)?)[ \u00a0]€|€(\d[\d,]*(?:\.\d+)?)")


def deck_problems(path: Path, lang: str) -> list[str]:
    """What the deck rules forbid, as readable lines (empty: the deck passes): overflow, more than 4
    bullets, internal names, zero or cent-less small amounts, figures under 12 pt once placed."""
    problems = [f"overflow: {o}" for o in find_overflows(path)]
    for k, slide in enumerate(Presentation(str(path)).slides, start=1):
        texts = [s.text_frame.text for s in slide.shapes if s.has_text_frame]
        texts += [c.text for s in slide.shapes if s.has_table for row in s.table.rows for c in row.cells]
        body = "\n".join(texts)
        bullets = body.count("• ")
        if bullets > MAX_BULLETS:
            problems.append(f"slide {k}: {bullets} bullets (one message: at most {MAX_BULLETS})")
        problems += [f"slide {k}: internal name {m.group(0)!r}" for m in INTERNAL.finditer(body)]
        problems += [f"slide {k}: zero amount {m.group(0)!r}" for m in ZERO_EUROS.finditer(body)]
        for m in AMOUNT.finditer(body):
            raw = m.group(1) or m.group(2)
            value = float(raw.replace("\u202f", "").replace(",", ".") if lang == "fr" else raw.replace(",", ""))
            if value < 100 and not re.search(r"[.,]\d\d$", raw):
                problems.append(f"slide {k}: amount under 100 without cents {m.group(0)!r}")
        for shape in slide.shapes:
            if shape.shape_type == 13:  # picture
                with Image.open(io.BytesIO(shape.image.blob)) as image:
                    font = placed_font_pt(image, shape.width / 914400)
                if font is None:
                    problems.append(f"slide {k}: a picture that is not a deck figure (no font record)")
                elif font < MIN_FONT_PT:
                    problems.append(f"slide {k}: smallest figure font {font:.1f} pt once placed")
    return problems
