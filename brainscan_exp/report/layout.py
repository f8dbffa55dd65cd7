"""Slide geometry and the no-overflow rule: text is sized to its box, and a built deck is checked.

Why: python-pptx writes text without laying it out, so a long sentence silently spills out of
its box (and off the slide) until someone opens the file. The estimate below is deliberately
conservative: characters per line from the box width and an average glyph width of
``CHAR_WIDTH`` x the font size, lines times ``LINE_HEIGHT`` x the font size, plus the box's
margins, must fit the box; boxes and tables must lie inside the slide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from pptx import Presentation
from pptx.util import Emu

CHAR_WIDTH = 0.55  # average glyph advance / font size (Calibri-like sans, mixed case and digits)
LINE_HEIGHT = 1.2  # line pitch / font size
EMU_PER_PT = 12700
DEFAULT_MARGIN = (Emu(91440), Emu(45720))  # python-pptx defaults: 0.1 in left/right, 0.05 in top/bottom


def lines_needed(text: str, width_pt: float, size_pt: float) -> int:
    per_line = max(int(width_pt / (CHAR_WIDTH * size_pt)), 1)
    lines = 0
    for paragraph in text.split("\n"):
        words, line = paragraph.split(" "), 0
        current = 0
        for word in words:  # greedy word wrap, as a renderer would
            need = len(word) if current == 0 else current + 1 + len(word)
            if need <= per_line:
                current = need
            else:
                line += 1 if current else 0
                current = len(word)
                while current > per_line:  # a word longer than a line breaks
                    line += 1
                    current -= per_line
        lines += line + 1
    return lines


def text_height_pt(paragraphs: list[tuple[str, float]], width_pt: float) -> float:
    """Height of ``(text, font size)`` paragraphs laid out in ``width_pt``."""
    return sum(lines_needed(text, width_pt, size) * size * LINE_HEIGHT for text, size in paragraphs)


@dataclass(frozen=True)
class Overflow:
    slide: int
    shape: str
    needed_pt: float
    available_pt: float
    text: str

    def __str__(self) -> str:
        return (
            f"slide {self.slide}, {self.shape}: needs {self.needed_pt:.0f} pt, has {self.available_pt:.0f} pt "
            f"({self.text[:60]!r})"
        )


def _paragraphs(text_frame, default_size: float) -> list[tuple[str, float]]:
    out = []
    for p in text_frame.paragraphs:
        sizes = [r.font.size.pt for r in p.runs if r.font.size is not None]
        if p.font.size is not None:
            sizes.append(p.font.size.pt)
        out.append(("".join(r.text for r in p.runs), max(sizes) if sizes else default_size))
    return out


def _inner(frame, width: int, height: int) -> tuple[float, float]:
    left = frame.margin_left if frame.margin_left is not None else DEFAULT_MARGIN[0]
    right = frame.margin_right if frame.margin_right is not None else DEFAULT_MARGIN[0]
    top = frame.margin_top if frame.margin_top is not None else DEFAULT_MARGIN[1]
    bottom = frame.margin_bottom if frame.margin_bottom is not None else DEFAULT_MARGIN[1]
    return (width - left - right) / EMU_PER_PT, (height - top - bottom) / EMU_PER_PT


def find_overflows(path: str | Path, default_size: float = 18.0) -> list[Overflow]:
    """Every text box whose estimated text is taller than the box, every table taller than the
    room left below its top, and every shape that sticks out of the slide."""
    prs = Presentation(str(path))
    slide_w, slide_h = prs.slide_width, prs.slide_height
    found = []
    for number, slide in enumerate(prs.slides, start=1):
        for shape in slide.shapes:
            if (
                shape.left < 0
                or shape.top < 0
                or shape.left + shape.width > slide_w
                or shape.top + shape.height > slide_h
            ):
                found.append(Overflow(number, shape.name, shape.height / EMU_PER_PT, 0.0, "outside the slide"))
            if shape.has_text_frame and shape.text_frame.text.strip():
                width, height = _inner(shape.text_frame, shape.width, shape.height)
                needed = text_height_pt(_paragraphs(shape.text_frame, default_size), width)
                if needed > height:
                    found.append(Overflow(number, shape.name, needed, height, shape.text_frame.text))
            if shape.has_table:
                table = shape.table
                total = 0.0
                for row in table.rows:
                    heights = []
                    for col, cell in zip(table.columns, row.cells):
                        width, _ = _inner(cell, col.width, 0)
                        heights.append(text_height_pt(_paragraphs(cell.text_frame, default_size), width))
                    total += max(max(heights) + 7.2, row.height / EMU_PER_PT)  # cell margins 0.05 in x 2
                room = (slide_h - shape.top) / EMU_PER_PT
                if total > room:
                    found.append(Overflow(number, shape.name, total, room, "table"))
    return found


def fitting_size(texts: list[str], width_emu: int, height_emu: int, sizes=(20, 18, 16, 14, 12, 11)) -> float:
    """The largest font size at which ``texts`` (one paragraph each) fit the box; raises if none."""
    width, height = (width_emu - 2 * DEFAULT_MARGIN[0]) / EMU_PER_PT, (height_emu - 2 * DEFAULT_MARGIN[1]) / EMU_PER_PT
    for size in sizes:
        if text_height_pt([(t, size) for t in texts], width) <= height:
            return size
    needed = text_height_pt([(t, sizes[-1]) for t in texts], width)
    raise ValueError(f"text does not fit its box even at {sizes[-1]} pt ({needed:.0f} > {height:.0f} pt): {texts[0]!r}")


def rows_height(n_rows: int, size: float) -> int:
    """A table row's height in EMU at one line of ``size`` pt (plus the cell margins)."""
    return int(math.ceil((size * LINE_HEIGHT + 7.2) * EMU_PER_PT)) * n_rows
