"""The hand-over deck: one builder, one language table per deck, every number from :mod:`.facts`.

Why: the client's *support de présentation* must say what was measured, not what someone typed.
Each slide's notes cite the runs and files its numbers and figures come from; text is sized to
its box (:mod:`.layout`), and a deck with a box that would overflow is not written.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

from PIL import Image
from pptx import Presentation
from pptx.util import Emu, Inches, Pt

from brainscan_exp.report import figures
from brainscan_exp.report.facts import Facts
from brainscan_exp.report.layout import find_overflows, fitting_size, rows_height
from brainscan_exp.report.strings import euros, integer, number, percent, signed, text

WIDTH, HEIGHT = Inches(13.333), Inches(7.5)
MARGIN = Inches(0.5)
TITLE_TOP, TITLE_HEIGHT = Inches(0.3), Inches(0.9)
BODY_TOP = Inches(1.35)
BODY_HEIGHT = HEIGHT - BODY_TOP - Inches(0.35)


class Deck:
    """A 16:9 presentation with the four slide shapes the hand-over needs."""

    def __init__(self, lang: str):
        self.lang = lang
        self.prs = Presentation()
        self.prs.slide_width, self.prs.slide_height = WIDTH, HEIGHT
        self.layout = self.prs.slide_layouts[6]  # blank

    def _box(self, slide, left, top, width, height, texts: list[str], sizes=(20, 18, 16, 14, 12, 11), bold=False):
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
        fig_w = Inches(7.9)
        cap_h = Inches(0.5) if caption else 0
        pic = self.picture(slide, image, MARGIN, BODY_TOP, fig_w, BODY_HEIGHT - cap_h)
        if caption:
            self._box(slide, MARGIN, pic.top + pic.height, fig_w, cap_h, [caption], sizes=(12, 11, 10))
        left = MARGIN + fig_w + Inches(0.2)
        self._box(slide, left, BODY_TOP, WIDTH - left - MARGIN, BODY_HEIGHT, [f"• {t}" for t in items])
        return slide

    def wide_figure(self, title: str, image: Path, items: list[str], cites: list[str]):
        """Figure across the slide, text below."""
        slide = self.slide(title, cites)
        pic = self.picture(slide, image, MARGIN, BODY_TOP, WIDTH - 2 * MARGIN, Inches(3.6))
        pic.left = int((WIDTH - pic.width) / 2)
        top = pic.top + pic.height + Inches(0.1)
        self._box(slide, MARGIN, top, WIDTH - 2 * MARGIN, HEIGHT - top - Inches(0.3), [f"• {t}" for t in items])
        return slide

    def table(
        self, title: str, header: list[str], rows: list[list[str]], cites: list[str], caption: str = "", first=None
    ):
        slide = self.slide(title, cites)
        size = 14 if len(rows) <= 8 else 12
        row_h = rows_height(1, size)
        cap_h = Inches(0.6) if caption else 0
        shape = slide.shapes.add_table(
            len(rows) + 1, len(header), MARGIN, BODY_TOP, WIDTH - 2 * MARGIN, row_h * (len(rows) + 1)
        )
        first = first or Inches(3.0)
        other = int((WIDTH - 2 * MARGIN - first) / (len(header) - 1))
        for j, column in enumerate(shape.table.columns):
            column.width = first if j == 0 else other
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
            self._box(slide, MARGIN, top, WIDTH - 2 * MARGIN, cap_h, [caption], sizes=(12, 11, 10))
        return slide

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.prs.save(str(path))
        overflows = find_overflows(path)
        if overflows:
            path.unlink()
            raise ValueError("text would overflow its box:\n" + "\n".join(map(str, overflows)))
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
    bars = settings["definition_of_done"]
    deck = Deck(lang)
    all_cites = sorted({c for s in facts.sections.values() if s for c in s.cites})

    deck.bullets(
        text(L, "title"),
        [
            text(L, "subtitle", client=settings["client"]),
            text(L, "subtitle2", dataset=facts.dataset, commit=settings["commit"], date=date.today().isoformat()),
        ],
        all_cites,
    )
    dod_rows, n_met, with_truth = scorecard(facts, bars, L)
    cheapest = min(cost["options"], key=lambda o: o["cost_eur"])
    pages = {"dod": 11}
    verdict = text(L, "semi_diff" if semi["delta_significant"] else "semi_same")
    deck.bullets(
        text(L, "summary_title"),
        [
            text(
                L,
                "summary_data",
                n_files=integer(d["n_files"], L),
                n_distinct=integer(d["n_distinct"], L),
                n_labelled=integer(d["n_labelled_distinct"], L),
                n_pool=integer(d["n_pool_distinct_new"], L),
            ),
            text(
                L,
                "summary_cv",
                auc=number(semi["sup_auc"], L),
                low=number(semi["sup_auc_low"], L),
                high=number(semi["sup_auc_high"], L),
            ),
            text(
                L,
                "summary_semi",
                delta=signed(semi["delta"], L),
                dlow=signed(semi["delta_low"], L),
                dhigh=signed(semi["delta_high"], L),
                verdict=verdict,
            ),
            text(L, "summary_op", sens=number(pr["sens"], L), n_review=integer(pr["n_review"], L)),
            text(L, "summary_dod", n_met=n_met, n_total=len(dod_rows), page=pages["dod"]),
            text(L, "summary_scale", cost=euros(cheapest["cost_eur"], L), budget=euros(cost["budget_eur"], L)),
        ],
        [*facts["data"].cites, *facts["predict"].cites, *facts["cost"].cites],
    )
    data_items = [
        text(L, "data_1"),
        text(
            L,
            "data_2",
            n_files=integer(d["n_files"], L),
            n_distinct=integer(d["n_distinct"], L),
            n_copies=integer(d["n_copies"], L),
        ),
        text(L, "data_3", n_near_groups=integer(d["n_near_groups"], L), n_near_files=integer(d["n_near_files"], L)),
        text(L, "data_4"),
    ]
    if "mosaic" in facts["data"].files:
        deck.figure(
            text(L, "data_title"),
            facts["data"].files["mosaic"],
            data_items,
            facts["data"].cites,
            text(L, "data_caption"),
        )
    else:
        deck.bullets(text(L, "data_title"), data_items, facts["data"].cites)

    steps = text(
        L,
        "pipe_steps",
        backbone=pr["backbone"].replace("tf_efficientnet_", ""),
        head=pr["regime"],
        rule=pr["rule"],
        n_reads=integer(pr["n_review"], L),
    ).split("|")
    deck.wide_figure(
        text(L, "pipeline_title"),
        figures.pipeline(steps, fig_dir / "pipeline.png"),
        [text(L, "pipeline_caption"), text(L, "pipeline_1", n_scenarios=gen.values["n_scenarios"])],
        [*facts["predict"].cites, *gen.cites],
    )

    probe = facts["probe"]
    features_items = [text(L, "features_1"), text(L, "features_2")]
    if probe is not None:
        features_items.append(text(L, "features_3", best=probe.values["best"], auc=number(probe.values["best_auc"], L)))
        deck.figure(
            text(L, "features_title"),
            figures.probe_bars(probe.tables["probe"], L, fig_dir / "probe.png"),
            features_items,
            probe.cites,
        )
    else:
        deck.bullets(
            text(L, "features_title"),
            [*features_items, text(L, "missing_optional", what="probe_cv_auc_*.json", command=facts.missing["probe"])],
            [],
        )

    cluster = facts["cluster"]
    if cluster is not None:
        c = cluster.values
        deck.figure(
            text(L, "cluster_title"),
            cluster.files["projections"],
            [
                text(L, "cluster_1", clusterer=c["clusterer"], n_clusters=integer(c["n_clusters"], L)),
                text(L, "cluster_2", v_label=number(c["v_label"], L)),
                text(
                    L,
                    "cluster_3",
                    n_flagged=integer(c["n_flagged"], L),
                    flagged=", ".join(c["flagged"]) or text(L, "none"),
                ),
                text(L, "cluster_4"),
            ],
            cluster.cites,
        )
    else:
        deck.bullets(
            text(L, "cluster_title"),
            [text(L, "missing_optional", what="cluster", command=facts.missing["cluster"])],
            [],
        )

    deck.figure(
        text(L, "semi_title"),
        figures.forest(facts["semi"].tables["differences"], ["roc_auc", "sensitivity"], L, fig_dir / "forest.png"),
        [
            text(L, "semi_1", n_folds=semi["n_folds"]),
            text(L, "semi_2"),
            text(
                L,
                "summary_semi",
                delta=signed(semi["delta"], L),
                dlow=signed(semi["delta_low"], L),
                dhigh=signed(semi["delta_high"], L),
                verdict=verdict,
            ),
            text(L, "semi_3", n_sig=semi["n_sig_better"], n_regimes=semi["n_regimes"]),
        ],
        facts["semi"].cites,
    )

    le_items = []
    budget_values = cost.get("dataset_budget", {})
    for name, v in le.values["per_dataset"].items():
        regime, curve = le.values["fits"][name]
        n_more = v["n_all"] + budget_values.get("reads", 0)
        le_items.append(
            f"{name} — "
            + text(
                L,
                "le_1",
                regime=regime,
                auc_small=number(v["auc_small"], L),
                n_small=integer(v["n_small"], L),
                auc_all=number(v["auc_all"], L),
                n_all=integer(v["n_all"], L),
            )
        )
        le_items.append(
            text(L, "le_2", b=number(curve.b, L, 2), n_more=integer(n_more, L), auc_more=number(curve.auc(n_more), L))
        )
    first = next(iter(le.values["per_dataset"].values()), {"budget_folds": 0})
    le_items.append(text(L, "le_3", budget_folds=first["budget_folds"]))
    deck.figure(
        text(L, "le_title"),
        figures.label_efficiency(le.tables, le.values["fits"], L, fig_dir / "label_efficiency.png"),
        le_items,
        le.cites,
    )

    yes, no = text(L, "yes"), text(L, "no")
    scen = gen.tables["scenarios"]
    deck.table(
        text(L, "gen_title"),
        text(L, "gen_header").split("|"),
        [
            [
                r.scenario,
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
        text(L, "gen_caption", head=gen.values["head"], embedding=gen.values["embedding"], rule=gen.values["rule"]),
        first=Inches(2.9),
    )

    review = settings["review_budget_eur"]
    deck.figure(
        text(L, "op_title"),
        figures.score_histogram(
            facts["predict"].tables["predictions"].p_cancer.to_numpy(float), pr["threshold"], L, fig_dir / "scores.png"
        ),
        [
            text(L, "op_1"),
            text(L, "op_2", target=number(pr["target"], L, 2), rule=pr["rule"], threshold=number(pr["threshold"], L)),
            text(
                L,
                "op_3",
                sens=number(pr["sens"], L),
                sens_low=number(pr["sens_low"], L),
                sens_high=number(pr["sens_high"], L),
                spec=number(pr["spec"], L),
            ),
            text(
                L,
                "op_4",
                n_review=integer(pr["n_review"], L),
                budget=euros(review, L),
                missed=number(pr["expected_missed"], L, 1),
            ),
        ],
        facts["predict"].cites,
    )

    measure_a = text(L, "measure_truth" if with_truth else "measure_pool")
    source_a = text(L, "source_truth" if with_truth else "source_pool")
    deck.table(
        text(L, "dod_title"),
        text(L, "dod_header", measure_a=measure_a).split("|"),
        dod_rows,
        [*facts["predict"].cites, *facts["semi"].cites, *gen.cites],
        text(L, "dod_caption", measure_a=measure_a, source_a=source_a),
    )
    if len(deck.prs.slides) != pages["dod"]:
        raise RuntimeError(f"the synthesis cites the scorecard as page {pages['dod']}, it is {len(deck.prs.slides)}")

    tp = cost["throughput"]
    split = cost["budget_split"]
    scale_items = [text(L, "scale_1", rate=number(tp["images_per_s"], L, 1), cores=tp["cores"], runtime=tp["runtime"])]
    scale_items += [
        text(L, "scale_2", option=o["name"], cost=euros(o["cost_eur"], L), hours=number(o["hours"], L, 1))
        for o in cost["options"]
    ]
    scale_items.append(
        text(
            L,
            "scale_3",
            budget=euros(cost["budget_eur"], L),
            compute=euros(split["compute_eur"], L),
            reads=integer(split["reads"], L),
            share=percent(split["share_of_images"], L, 2),
        )
    )
    deck.figure(
        text(L, "scale_title"),
        figures.cost_bars(cost["options"], cost["budget_eur"], L, fig_dir / "cost.png"),
        scale_items,
        facts["cost"].cites,
    )
    audit = cost["audit"]
    deck.bullets(
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
                bar=number(audit["bar"], L, 2),
            ),
            text(L, "cond_3", worst_auc=number(gen.values["worst_auc"], L), auc_bar=number(bars["roc_auc"], L, 2)),
            text(L, "cond_4"),
            text(L, "cond_5"),
        ],
        [*facts["cost"].cites, *gen.cites],
    )
    b = budget_values
    nan = math.nan
    deck.bullets(
        text(L, "budget_title", budget=euros(b.get("budget_eur", nan), L), dataset=b.get("dataset", "?")),
        [
            text(
                L,
                "budget_1",
                reads=integer(b.get("reads", nan), L),
                cost_per_read=euros(b.get("cost_per_read_eur", nan), L, 2),
                share=percent(b.get("share_of_pool", nan), L),
                n_pool=integer(b.get("n_pool", nan), L),
            ),
            text(
                L,
                "budget_2",
                before=number(b.get("expected_missed_without_review", nan), L, 1),
                after=number(b.get("expected_missed_after_review", nan), L, 1),
            ),
            text(
                L,
                "budget_3",
                auc_now=number(b.get("auc_now_fitted", nan), L),
                auc_more=number(b.get("auc_after_fitted", nan), L),
                n_now=integer(b.get("labels_now", nan), L),
                n_more=integer(b.get("labels_after", nan), L),
            ),
            text(L, "budget_4"),
        ],
        [*facts["cost"].cites, f"MLflow run {b.get('predict_run_id')} (predict, {b.get('dataset')})"],
    )
    deck.bullets(text(L, "next_title"), [text(L, f"next_{i}") for i in range(1, 5)], [*facts["cost"].cites, *gen.cites])
    deck.bullets(text(L, "sources_title"), all_cites, all_cites)
    return deck.save(out)
