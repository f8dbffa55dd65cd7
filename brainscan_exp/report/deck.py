"""The hand-over deck: one builder, one language table per deck, every number from :mod:`.facts`.

Why: the client's *support de présentation* must say what was measured, not what someone typed.
Each slide's notes cite the runs and files its numbers and figures come from; text is sized to
its box (:mod:`.layout`), and a deck with a box that would overflow is not written.
"""

from __future__ import annotations

import math
import re
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image
from pptx import Presentation
from pptx.util import Emu, Inches, Pt

from brainscan_exp.report import figures
from brainscan_exp.report.facts import Facts
from brainscan_exp.report.layout import EMU_PER_PT, fitting_size, rows_height, text_height_pt
from brainscan_exp.report.rules import deck_problems
from brainscan_exp.report.strings import euros, integer, number, percent, signed, term, text

WIDTH, HEIGHT = Inches(13.333), Inches(7.5)
MARGIN = Inches(0.5)
TITLE_TOP, TITLE_HEIGHT = Inches(0.3), Inches(0.9)
BODY_TOP = Inches(1.35)
BODY_HEIGHT = HEIGHT - BODY_TOP - Inches(0.35)
# figures are drawn at the size they are placed (inches): fonts keep their point size on the slide
FIG_W, WIDE_H = Inches(7.9), Inches(3.0)
FIG_SIZE = (7.9, 5.75)  # beside the text, the full body height
WIDE_SIZE = (12.3, 3.0)


class Deck:
    """A 16:9 presentation with the four slide shapes the hand-over needs."""

    def __init__(self, lang: str):
        self.lang = lang
        self.prs = Presentation()
        self.prs.slide_width, self.prs.slide_height = WIDTH, HEIGHT
        self.layout = self.prs.slide_layouts[6]  # blank
        self.key, self.keys = "", []  # the slide being built, and every slide's key in order

    def next(self, key: str) -> Deck:
        """Name the next slide (the builder checks the order it planned its page references on)."""
        self.key = key
        return self

    def _box(self, slide, left, top, width, height, texts: list[str], sizes=(20, 18, 16, 14, 12), bold=False):
        size = fitting_size(texts, width, height, sizes)
        box = slide.shapes.add_textbox(left, top, width, height)
        frame = box.text_frame
        frame.word_wrap = True
        for i, line in enumerate(texts):
            paragraph = frame.paragraphs[0] if i == 0 else frame.add_paragraph()
            run = paragraph.add_run()
            run.text = line
            run.font.size = Pt(size)
            run.font.bold = bold
            paragraph.space_after = Pt(0)
        return box

    def slide(self, title: str, cites: list[str]):
        slide = self.prs.slides.add_slide(self.layout)
        self.keys.append(self.key)
        self._box(
            slide, MARGIN, TITLE_TOP, WIDTH - 2 * MARGIN, TITLE_HEIGHT, [title], sizes=(30, 28, 24, 20), bold=True
        )
        notes = [text(self.lang, "notes_sources"), *(f"- {c}" for c in cites)]
        slide.notes_slide.notes_text_frame.text = "\n".join(notes)
        return slide

    def bullets(self, title: str, items: list[str], cites: list[str]):
        slide = self.slide(title, cites)
        self._box(slide, MARGIN, BODY_TOP, WIDTH - 2 * MARGIN, BODY_HEIGHT, [f"• {t}" for t in items])
        return slide

    def picture(self, slide, path: Path, left, top, max_width, max_height):
        with Image.open(path) as im:
            ratio = im.width / im.height
        width = min(max_width, int(max_height * ratio))
        height = int(width / ratio)
        return slide.shapes.add_picture(str(path), left, top, Emu(width), Emu(height))

    def figure(self, title: str, image: Path, items: list[str], cites: list[str], caption: str | None = None):
        """Figure on the left (7.9 in), text on the right."""
        slide = self.slide(title, cites)
        fig_w = FIG_W
        cap_h = Inches(0.5) if caption else 0
        pic = self.picture(slide, image, MARGIN, BODY_TOP, fig_w, BODY_HEIGHT - cap_h)
        if caption:
            self._box(
                slide, MARGIN, pic.top + pic.height, max(pic.width, Inches(3)), cap_h, [caption], sizes=(14, 13, 12)
            )
        left = MARGIN + max(pic.width, Inches(3)) + Inches(0.3)  # a narrow figure leaves the text more room
        self._box(slide, left, BODY_TOP, WIDTH - left - MARGIN, BODY_HEIGHT, [f"• {t}" for t in items])
        return slide

    def wide_figure(self, title: str, image: Path, items: list[str], cites: list[str]):
        """Figure across the slide, text below."""
        slide = self.slide(title, cites)
        pic = self.picture(slide, image, MARGIN, BODY_TOP, WIDTH - 2 * MARGIN, WIDE_H)
        pic.left = int((WIDTH - pic.width) / 2)
        top = pic.top + pic.height + Inches(0.1)
        self._box(slide, MARGIN, top, WIDTH - 2 * MARGIN, HEIGHT - top - Inches(0.3), [f"• {t}" for t in items])
        return slide

    def table(
        self,
        title: str,
        header: list[str],
        rows: list[list[str]],
        cites: list[str],
        caption: str = "",
        widths=None,
        size: float | None = None,
    ):
        """``widths``: each column's (EMU), else the first 3 in and the others equal."""
        slide = self.slide(title, cites)
        size = size or (16 if len(rows) <= 6 else 14 if len(rows) <= 8 else 12)
        row_h = rows_height(1, size)
        cap_h = Inches(0.6) if caption else 0
        shape = slide.shapes.add_table(
            len(rows) + 1, len(header), MARGIN, BODY_TOP, WIDTH - 2 * MARGIN, row_h * (len(rows) + 1)
        )
        if widths is None:
            other = int((WIDTH - 2 * MARGIN - Inches(3.0)) / (len(header) - 1))
            widths = [Inches(3.0)] + [other] * (len(header) - 1)
        for column, width in zip(shape.table.columns, widths):
            column.width = int(width)
        for i, values in enumerate([header, *rows]):
            shape.table.rows[i].height = row_h
            for j, value in enumerate(values):
                cell = shape.table.cell(i, j)
                cell.text = str(value)
                for p in cell.text_frame.paragraphs:
                    for r in p.runs:
                        r.font.size = Pt(size)
                        r.font.bold = i == 0
        if caption:
            top = HEIGHT - Inches(0.3) - cap_h
            self._box(slide, MARGIN, top, WIDTH - 2 * MARGIN, cap_h, [caption], sizes=(14, 13, 12))
        return slide

    def grouped_table(
        self,
        title: str,
        groups: list[tuple[str, int]],
        header: list[str],
        rows: list[list[str]],
        items: list[str],
        cites: list[str],
        widths: list[int],
        size: float = 16,
    ):
        """A table whose first header row groups columns (``(label, span)``: merged cells), then
        bullets in the room left below it (its height as :func:`.layout.find_overflows` counts it)."""
        slide = self.slide(title, cites)
        lines = [[part for label, span in groups for part in [label] + [""] * (span - 1)], header, *rows]
        row_h = rows_height(1, size)
        shape = slide.shapes.add_table(len(lines), len(header), MARGIN, BODY_TOP, sum(widths), row_h * len(lines))
        table = shape.table
        for column, width in zip(table.columns, widths):
            column.width = int(width)
        height = 0.0
        for i, values in enumerate(lines):
            table.rows[i].height = row_h
            for j, value in enumerate(values):
                cell = table.cell(i, j)
                cell.text = str(value)
                for p in cell.text_frame.paragraphs:
                    for r in p.runs:
                        r.font.size = Pt(size)
                        r.font.bold = i <= 1
        spans, start = [], 0  # the group row's cells: each as wide as the columns it spans
        for label, span in groups:
            spans.append((label, sum(widths[start : start + span])))
            start += span
        for i, values in enumerate(lines):  # each row's height as a reader sees it (merged cells: their width)
            cells = spans if i == 0 else list(zip(values, widths))
            needed = max(text_height_pt([(v, size)], w / EMU_PER_PT - 14.4) for v, w in cells)
            height += max(needed + 7.2, row_h / EMU_PER_PT)
        start = 0
        for _, span in groups:
            if span > 1:
                table.cell(0, start).merge(table.cell(0, start + span - 1))
            start += span
        top = BODY_TOP + int(height * EMU_PER_PT) + Inches(0.25)
        self._box(slide, MARGIN, top, WIDTH - 2 * MARGIN, HEIGHT - top - Inches(0.3), [f"• {t}" for t in items])
        return slide

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.prs.save(str(path))
        problems = deck_problems(path, self.lang)
        if problems:
            path.unlink()
            raise ValueError("the deck breaks its reading rules:\n" + "\n".join(problems))
        return path


def scorecard(facts: Facts, bars: dict, lang: str) -> tuple[list[list[str]], int, bool]:
    """Rows (criterion, bar, measured, met, worst case, met), criteria met, and whether truth was used."""
    predict, semi, gen = facts["predict"].values, facts["semi"].values, facts["generalization"].values
    truth = predict["truth"]
    measured = {
        "roc_auc": truth.get("roc_auc", semi["regime_auc"].get(predict["regime"], semi["sup_auc"])),
        "sensitivity": truth.get("sensitivity", predict["sens"]),
        "specificity": truth.get("specificity", predict["spec"]),
    }
    worst = {
        "roc_auc": gen["worst_auc"],
        "sensitivity": gen["worst_sensitivity"],
        "specificity": gen["worst_specificity"],
    }
    names = {"roc_auc": "crit_auc", "sensitivity": "crit_sens", "specificity": "crit_spec"}
    yes, no = text(lang, "yes"), text(lang, "no")
    rows, n_met = [], 0
    for key, bar in bars.items():
        met = bool(measured[key] >= bar)
        n_met += met
        rows.append(
            [
                text(lang, names[key]),
                f"≥ {number(bar, lang, 2)}",
                number(measured[key], lang),
                yes if met else no,
                number(worst[key], lang),
                yes if worst[key] >= bar else no,
            ]
        )
    return rows, n_met, bool(truth)


def _probe_label(variant: str, lang: str) -> str:
    """``lite0/mri/stage3`` -> ``Lite0, avec prétraitement IRM, couche 3``."""
    parts = variant.split("/")
    out = [parts[0].replace("lite", "Lite")]
    if len(parts) > 1:
        out.append(text(lang, "probe_mri" if parts[1] == "mri" else "probe_default"))
    if len(parts) > 2:
        level = parts[2]
        out.append(
            text(lang, "probe_head") if level == "head" else text(lang, "probe_stage", n=level.removeprefix("stage"))
        )
    return ", ".join(out)


def _cap(phrase: str) -> str:
    """First letter up, the rest as written (``un GPU`` -> ``Un GPU``)."""
    return phrase[:1].upper() + phrase[1:]


def _dataset_name(name: str, lang: str) -> str:
    names = {
        "fr": {"oc": "données du brief", "brain_mri_oc": "second jeu", "demo": "démonstration"},
        "en": {"oc": "brief's data", "brain_mri_oc": "second dataset", "demo": "demo data"},
    }
    return names[lang].get(name, term(lang, name))


def _review_numbers(review, lang: str) -> dict[str, str]:
    """The review benchmark's headline numbers, formatted: mean wrong-label rate on the pools of
    the brief's size (at least half the largest pool) and on the smaller ones, today's one-shot
    review -> the loop, and the worst-case missed tumours of each."""
    rows, chosen = review.tables["scenarios"], review.values
    large = rows.n_pool >= 0.5 * rows.n_pool.max() if len(rows) else rows.n_pool.astype(bool)
    big, small = rows[large], rows[~large]
    return {
        "before": percent(big.error_rate_before.mean() if len(big) else math.nan, lang, 1),
        "after": percent(big.error_rate_after.mean() if len(big) else math.nan, lang, 1),
        "small_before": percent(small.error_rate_before.mean() if len(small) else math.nan, lang, 1),
        "small_after": percent(small.error_rate_after.mean() if len(small) else math.nan, lang, 1),
        "small_n": integer(small.n_pool.max() if len(small) else math.nan, lang),
        "missed_before": integer(rows.missed_before.max() if len(rows) else math.nan, lang),
        "missed_after": integer(chosen.get("worst_missed_after", rows.missed_after.max()), lang),
    }


def _duration(seconds: float, lang: str) -> str:
    """``45 s``, ``12 min``, ``6,3 h``, ``2,8 jours``; ``—`` when not measured."""
    if seconds is None or math.isnan(seconds):
        return "—"
    if seconds < 90:
        return f"{integer(seconds, lang)} s"
    if seconds < 90 * 60:
        return f"{integer(seconds / 60, lang)} min"
    if seconds < 48 * 3600:
        return f"{number(seconds / 3600, lang, 1)} h"
    return f"{number(seconds / 86400, lang, 1)} {text(lang, 'days')}"


def _memory(mb: float, lang: str) -> str:
    """Peak memory from MiB: ``850 Mo``, ``1,2 Go``; ``—`` when not measured."""
    if mb is None or math.isnan(mb):
        return "—"
    if mb < 1024:
        return f"{integer(mb, lang)} {text(lang, 'mb')}"
    return f"{number(mb / 1024, lang, 1)} {text(lang, 'gb')}"


def scale_table(section, lang: str, machine_gb: float) -> dict:
    """The scale bench's slide in ``lang``: title, grouped header, rows and bullets. Columns 1-2
    are the bench's measured figures at its largest size, 3-4 its 4 M extrapolations; every
    bullet with a number says which it is."""
    L, v, table = lang, section.values, section.tables["stages"]
    n, n_before = integer(v["n"], L), v["n_before"]
    rows = [
        [text(L, f"scale_row_{r.row}"), _duration(r.seconds, L), _memory(r.peak_mb, L)]
        + [_duration(r.seconds_4m, L), _memory(r.peak_mb_4m, L)]
        for r in table.itertuples()
    ]
    with_memory = table[table.peak_mb_4m.notna()]
    items = [
        text(
            L,
            "scale_pipe_1",
            n=n,
            copy_rate=percent(v["copy_rate"], L, 0),
            recall=percent(v["recall"], L, 2),  # 99.96 % must not read as 100 %
            confirmations=number(v["confirmations_per_image"], L, 2),
        )
    ]
    if {"hashing", "confirmation"} & set(table.row):
        items.append(
            text(
                L,
                "scale_pipe_2",
                n_brief=integer(v["n_brief"], L),
                hash_s=number(v["hash_s_per_image"], L, 3),
                pair_s=number(v["confirm_s_per_pair"], L, 3),
            )
        )
    if n_before is None or not len(with_memory):
        items.append(text(L, "scale_pipe_3_none"))
        return {
            "title": text(L, "scale_pipe_title_measured", n=n),
            "groups": [("", 1), (text(L, "scale_measured", n=n), 2), (text(L, "scale_extrapolated"), 2)],
            "header": text(L, "scale_pipe_header").split("|"),
            "rows": rows,
            "items": items,
        }
    items.append(text(L, "scale_pipe_3", n=n, n_before=integer(n_before, L)))
    worst = with_memory.loc[with_memory.peak_mb_4m.idxmax()]
    fits = bool(worst.peak_mb_4m <= machine_gb * 1024)
    cores = re.match(r"\s*(\d+) cores", v["machine"])
    items.append(
        text(
            L,
            "scale_pipe_4_fits" if fits else "scale_pipe_4_over",
            memory=_memory(worst.peak_mb_4m, L),
            stage=text(L, f"scale_row_{worst.row}").lower(),
            machine_gb=integer(machine_gb, L),
            total=_duration(table.seconds_4m.sum(), L),
            cores=text(L, "scale_cores", cores=cores.group(1)) if cores else text(L, "scale_bench_machine"),
        )
    )
    title = "scale_pipe_title_fits" if fits else "scale_pipe_title_over"
    return {
        "title": text(L, title, stage=text(L, f"scale_row_{worst.row}").lower()),
        "groups": [("", 1), (text(L, "scale_measured", n=n), 2), (text(L, "scale_extrapolated"), 2)],
        "header": text(L, "scale_pipe_header").split("|"),
        "rows": rows,
        "items": items,
    }


def plan(facts: Facts) -> list[str]:
    """The slides in order: the answers slide cites pages from it."""
    keys = ["title", "answers", "data", "pipeline", "features", "cluster", "semi", "le", "gen", "op", "dod"]
    keys += ["scale"] + (["scale_pipeline"] if facts["scale_bench"] is not None else [])
    keys += ["cond"] + (["review"] if facts["review"] is not None else []) + ["next", "sources"]
    return keys


def build(facts: Facts, lang: str, settings: dict, out: Path) -> Path:
    """Both languages call this; ``settings``: client, commit, definition_of_done, review budget."""
    L = lang
    fig_dir = out.parent / "figures" / lang
    d = facts["data"].values
    semi = facts["semi"].values
    pr = facts["predict"].values
    gen = facts["generalization"]
    cost = facts["cost"].values
    le = facts["label_efficiency"]
    review = facts["review"]
    bars = settings["definition_of_done"]
    deck = Deck(lang)
    order = plan(facts)
    page = {key: i + 1 for i, key in enumerate(order)}
    all_cites = sorted({c for s in facts.sections.values() if s for c in s.cites})
    target = percent(pr["target"], L, 0)

    deck.next("title").bullets(
        text(L, "title"),
        [
            text(L, "subtitle", client=settings["client"]),
            text(
                L,
                "subtitle2",
                dataset=_dataset_name(facts.dataset, L),
                commit=settings["commit"][:7],
                date=date.today().isoformat(),
            ),
        ],
        all_cites,
    )

    # the brief's questions, each answered with its number and the slide that shows it
    dod_rows, n_met, with_truth = scorecard(facts, bars, L)
    cheapest = min(cost["options"], key=lambda o: o["cost_eur"])
    split = cost["budget_split"]
    delta = signed(semi["delta"], L)
    semi_case = "diff" if semi["delta_significant"] and semi["delta"] > 0 else "same"
    if semi["delta_significant"] and semi["delta"] < 0:
        semi_case = "worse"
    answers = [
        [text(L, "q_semi"), text(L, f"a_semi_{semi_case}", delta=delta), str(page["semi"])],
        [text(L, "q_error"), text(L, "a_error", target=target, sens=percent(pr["sens"], L, 1)), str(page["op"])],
        [
            text(L, "q_dod"),
            text(L, "a_dod_yes" if n_met == len(dod_rows) else "a_dod_no", n_met=n_met, n_total=len(dod_rows)),
            str(page["dod"]),
        ],
        [
            text(L, "q_scale"),
            text(L, "a_scale", cost=euros(cheapest["cost_eur"], L), reads=integer(split["reads"], L)),
            f"{page['scale']}–{page['cond']}",
        ],
    ]
    if review is not None:
        answers.append([text(L, "q_review"), text(L, "a_review", **_review_numbers(review, L)), str(page["review"])])
    else:
        answers.append([text(L, "q_review"), text(L, "a_review_missing"), "—"])
    deck.next("answers").table(
        text(L, "answers_title"),
        text(L, "answers_header").split("|"),
        answers,
        [*facts["semi"].cites, *facts["predict"].cites, *gen.cites, *facts["cost"].cites]
        + (review.cites if review is not None else []),
        widths=[Inches(3.9), Inches(7.3), Inches(1.1)],
        size=18,
    )

    data_items = [
        text(L, "data_1", n_files=integer(d["n_files"], L), n_distinct=integer(d["n_distinct"], L)),
        text(L, "data_2", n_near_groups=integer(d["n_near_groups"], L), n_near_files=integer(d["n_near_files"], L)),
        text(L, "data_3"),
    ]
    data_title = text(L, "data_title", n_copies=integer(d["n_copies"], L))
    pairs = facts["data"].tables.get("near_pairs")
    deck.next("data")
    if pairs is not None and len(pairs):
        images = [(_grey(a), _grey(b)) for a, b in zip(pairs.a, pairs.b)]
        titles = ("original", "copie" if L == "fr" else "copy")
        size = (FIG_SIZE[1] * 2 / len(images) * 0.98, FIG_SIZE[1])  # a few large images, not thumbnails
        pic = figures.photos(images, titles, size, fig_dir / "near_copies.png")
        deck.figure(data_title, pic, [*data_items, text(L, "data_caption")], facts["data"].cites)
    else:
        deck.bullets(data_title, data_items, facts["data"].cites)

    steps = text(
        L,
        "pipe_steps",
        backbone=pr["backbone"].replace("tf_efficientnet_", "EfficientNet-").replace("lite", "Lite"),
        head=term(L, "fixed_C") if "linear_probe" in pr["regime"] else term(L, pr["regime"]),
        target=target,
        n_reads=integer(pr["n_review"], L),
    ).split("|")
    deck.next("pipeline").wide_figure(
        text(L, "pipeline_title"),
        figures.pipeline(steps, WIDE_SIZE, fig_dir / "pipeline.png"),
        [text(L, "pipeline_1"), text(L, "pipeline_2", n_scenarios=gen.values["n_scenarios"])],
        [*facts["predict"].cites, *gen.cites],
    )

    probe = facts["probe"]
    deck.next("features")
    if probe is not None:
        table = probe.tables["probe"].sort_values("auc")
        best = _probe_label(probe.values["best"], L)
        deck.figure(
            text(L, "features_title"),
            figures.hbars(
                [_probe_label(v, L) for v in table.label],
                table.auc.to_numpy(float),
                text(L, "features_xlabel"),
                FIG_SIZE,
                fig_dir / "probe.png",
                low=table.low.to_numpy(float),
                high=table.high.to_numpy(float),
                highlight=(table.label == probe.values["best"]).to_numpy(),
                xlim=(max(0.5, float(table.low.min()) - 0.05), 1.0),
                lang=L,
            ),
            [text(L, "features_1", best=best, auc=number(probe.values["best_auc"], L)), text(L, "features_2")],
            probe.cites,
        )
    else:
        deck.bullets(text(L, "features_title"), [text(L, "features_2"), text(L, "missing_optional")], [])

    cluster = facts["cluster"]
    deck.next("cluster")
    if cluster is not None:
        c = cluster.values
        assoc = cluster.tables["association"].sort_values("value")
        items = [
            text(L, "cluster_1", clusterer=_cap(term(L, c["clusterer"])), n_clusters=integer(c["n_clusters"], L)),
            text(L, "cluster_2", v_label=number(c["v_label"], L, 2)),
            text(
                L,
                "cluster_3",
                n_flagged=integer(c["n_flagged"], L),
                flagged=", ".join(term(L, f) for f in c["flagged"]) or text(L, "none"),
            ),
            text(L, "cluster_4"),
        ]
        confounds = assoc[assoc.factor != "label"]
        strongest = float(confounds.value.max()) if len(confounds) else 0.0
        case = "tumour" if not c["n_flagged"] else "acq" if strongest >= c["v_label"] else "mixed"
        deck.figure(
            text(L, f"cluster_title_{case}"),
            figures.hbars(
                [term(L, f) for f in assoc.factor],
                assoc.value.to_numpy(float),
                text(L, "cluster_xlabel"),
                FIG_SIZE,
                fig_dir / "cluster.png",
                highlight=(assoc.factor == "label").to_numpy(),
                lang=L,
            ),
            items,
            cluster.cites,
        )
    else:
        deck.bullets(text(L, "cluster_title_missing"), [text(L, "missing_optional")], [])

    deck.next("semi").figure(
        text(L, f"semi_title_{semi_case}"),
        figures.forest(facts["semi"].tables["differences"], L, FIG_SIZE, fig_dir / "forest.png"),
        [
            text(
                L,
                "semi_0",
                auc=number(semi["sup_auc"], L),
                low=number(semi["sup_auc_low"], L),
                high=number(semi["sup_auc_high"], L),
            ),
            text(L, "semi_1", delta=delta, dlow=signed(semi["delta_low"], L), dhigh=signed(semi["delta_high"], L)),
            text(L, "semi_2", n_sig=semi["n_sig_better"], n_regimes=semi["n_regimes"]),
            text(L, "semi_3", n_folds=semi["n_folds"]),
        ],
        facts["semi"].cites,
    )

    regime = le.values["regime"]
    curves, fits, le_items = {}, {}, []
    for name, table in le.tables.items():
        sub = table[(table.metric == "roc_auc") & (table.regime == regime)]
        if len(sub):
            curves[name] = sub
    for name, v in le.values["per_dataset"].items():
        fits[name] = le.values["fits"][name][1]
        le_items.append(
            text(
                L,
                "le_1",
                dataset=_cap(_dataset_name(name, L)),
                auc_small=number(v["auc_small"], L),
                n_small=integer(v["n_small"], L),
                auc_all=number(v["auc_all"], L),
                n_all=integer(v["n_all"], L),
            )
        )
    first = next(iter(le.values["per_dataset"].values()), {"budget_folds": 0})
    le_items = le_items[:3] + [text(L, "le_2", regime=term(L, regime), budget_folds=first["budget_folds"])]
    deck.next("le")
    if not curves:
        deck.bullets(text(L, "le_title"), [text(L, "missing_optional")], le.cites)
    else:
        deck.figure(
            text(L, "le_title"),
            figures.label_efficiency(
                curves, fits, {n: _dataset_name(n, L) for n in curves}, L, FIG_SIZE, fig_dir / "label_efficiency.png"
            ),
            le_items,
            le.cites,
        )

    yes, no = text(L, "yes"), text(L, "no")
    scen = gen.tables["scenarios"]
    deck.next("gen").table(
        text(L, "gen_title", worst_auc=number(gen.values["worst_auc"], L, 2)),
        text(L, "gen_header").split("|"),
        [
            [
                term(L, r.scenario),
                integer(r.n_scored, L),
                number(r.roc_auc, L),
                f"{number(r.auc_low, L, 2)}–{number(r.auc_high, L, 2)}",
                number(r.sensitivity, L),
                number(r.specificity, L),
                percent(r.review_share, L, 0),
                yes if r.dod_met else no,
            ]
            for r in scen.itertuples()
        ],
        gen.cites,
        text(
            L,
            "gen_caption",
            head=term(L, gen.values["head"]),
            embedding=term(L, gen.values["embedding"]),
            rule=term(L, gen.values["rule"]),
        ),
        widths=[Inches(w) for w in (4.3, 1.0, 1.05, 1.3, 1.3, 1.3, 0.9, 1.1)],
    )

    deck.next("op").figure(
        text(L, "op_title", target=target),
        figures.score_histogram(
            facts["predict"].tables["predictions"].p_cancer.to_numpy(float),
            pr["threshold"],
            L,
            FIG_SIZE,
            fig_dir / "scores.png",
        ),
        [
            text(L, "op_1", threshold=number(pr["threshold"], L)),
            text(
                L,
                "op_2",
                sens=number(pr["sens"], L, 2),
                sens_low=number(pr["sens_low"], L, 2),
                sens_high=number(pr["sens_high"], L, 2),
                spec=number(pr["spec"], L, 2),
            ),
            text(
                L,
                "op_3",
                n_review=integer(pr["n_review"], L),
                budget=euros(settings["review_budget_eur"], L),
                missed=number(pr["expected_missed"], L, 1),
            ),
        ],
        facts["predict"].cites,
    )

    measure_a = text(L, "measure_truth" if with_truth else "measure_pool")
    source_a = text(L, "source_truth" if with_truth else "source_pool")
    deck.next("dod").table(
        text(L, "dod_title_yes" if n_met == len(dod_rows) else "dod_title_no", n_met=n_met, n_total=len(dod_rows)),
        text(L, "dod_header", measure_a=measure_a).split("|"),
        dod_rows,
        [*facts["predict"].cites, *facts["semi"].cites, *gen.cites],
        text(L, "dod_caption", measure_a=measure_a, source_a=source_a),
    )

    tp = cost["throughput"]
    scale_items = [text(L, "scale_1", rate=integer(tp["images_per_s"], L), cores=tp["cores"])]
    scale_items += [
        text(
            L,
            "scale_2",
            option=_cap(term(L, o["name"])),
            cost=euros(o["cost_eur"], L),
            hours=number(o["hours"], L, 1),
        )
        for o in cost["options"]
    ]
    deck.next("scale").figure(
        text(L, "scale_title", cost=euros(math.ceil(max(o["cost_eur"] for o in cost["options"])), L)),
        figures.cost_bars(cost["options"], cost["budget_eur"], L, FIG_SIZE, fig_dir / "cost.png"),
        scale_items[:4],
        facts["cost"].cites,
    )
    if facts["scale_bench"] is not None:
        slide = scale_table(facts["scale_bench"], L, settings.get("machine_gb", 16))
        deck.next("scale_pipeline").grouped_table(
            slide["title"],
            slide["groups"],
            slide["header"],
            slide["rows"],
            slide["items"],
            facts["scale_bench"].cites,
            widths=[Inches(3.9)] + [Inches(2.1)] * 4,
        )
    audit = cost["audit"]
    deck.next("cond").bullets(
        text(L, "cond_title"),
        [
            text(
                L,
                "cond_1",
                reads=integer(split["reads"], L),
                share=percent(split["share_of_images"], L, 2),
                n_images=integer(cost["n_images"], L),
            ),
            text(
                L,
                "cond_2",
                audit=integer(audit["tumours"], L),
                audit_reads=integer(audit["reads"], L),
                bar=percent(audit["bar"], L, 0),
            ),
            text(L, "cond_3", worst_auc=number(gen.values["worst_auc"], L, 2), auc_bar=number(bars["roc_auc"], L, 2)),
            text(L, "cond_4"),
        ],
        [*facts["cost"].cites, *gen.cites],
    )

    if review is not None:
        rows, chosen = review.tables["scenarios"], review.values
        n_reads = rows.n_reads.max() if "n_reads" in rows and len(rows) else math.nan
        covered = int(rows.estimate_covered.astype(bool).sum()) if "estimate_covered" in rows else 0
        numbers = _review_numbers(review, L)
        small = (rows.n_pool < 0.5 * rows.n_pool.max()).any() if len(rows) else False
        deck.next("review").figure(
            text(L, "review_title_finding", **numbers),
            figures.review_bars(rows, L, FIG_SIZE, fig_dir / "review.png"),
            [
                text(
                    L,
                    "review_1",
                    n_reads=integer(n_reads, L),
                    batch=integer(chosen.get("batch_size", math.nan), L),
                    audit=percent(chosen.get("audit_share", math.nan), L, 0),
                ),
                text(L, "review_2", **numbers),
                *([text(L, "review_3", **numbers)] if small else []),
                text(L, "review_4", covered=covered, n=len(rows)),
            ],
            review.cites,
        )
    deck.next("next").bullets(
        text(L, "next_title"), [text(L, f"next_{i}") for i in range(1, 5)], [*facts["cost"].cites, *gen.cites]
    )
    n_runs = sum(c.startswith("MLflow") for c in all_cites)
    deck.next("sources").bullets(
        text(L, "sources_title"),
        [
            text(L, "sources_1"),
            text(L, "sources_2"),
            text(L, "sources_3", n_runs=n_runs, n_files=len(all_cites) - n_runs),
        ],
        all_cites,
    )
    if deck.keys != order:
        raise RuntimeError(f"the answers slide cites pages planned as {order}, the deck is {deck.keys}")
    return deck.save(out)


def _grey(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))
