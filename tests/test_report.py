"""The hand-over deck: built by ``task=report`` from MLflow runs and results files, both languages,
no overflowing text, figures cited, numbers equal to the runs', a missing run named by its command."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from pptx import Presentation
from pptx.util import Inches, Pt

from brainscan_exp.notebook import compose_config
from brainscan_exp.report.layout import find_overflows, fitting_size
from brainscan_exp.report.render import missing_tools
from brainscan_exp.report.rules import deck_problems
from brainscan_exp.report.sources import MissingSource
from brainscan_exp.report.strings import integer, number, percent
from brainscan_exp.tracking.mlflow_run import MlflowRun

REPO = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(0)


def _cv_run(uri: str, tmp: Path) -> str:
    regimes = ["sup", "semi", "linear_probe", "label_spreading"]
    rows = []
    for regime in regimes:
        for budget, n in (("6", 6), ("10", 10), ("all", 24)):
            for fold in range(4):
                auc = 0.99 - 0.6 / n + RNG.normal(0, 0.01)
                rows.append(
                    {
                        "regime": regime,
                        "fold": fold,
                        "label_budget": budget,
                        "n_labels": n,
                        "roc_auc": min(auc, 0.999),
                        "sensitivity": 0.9,
                        "specificity": 0.8,
                    }
                )
    folds = pd.DataFrame(rows)
    diffs = pd.DataFrame(
        [
            {"metric": m, "regime": r, "reference": "sup", "mean_diff": d, "t_low": d - 0.05, "t_high": d + 0.05}
            | {"significant": False}
            for m in ("roc_auc", "sensitivity", "specificity")
            for r, d in (("semi", 0.004), ("linear_probe", -0.01))
        ]
    )
    folds.to_csv(tmp / "fold_metrics.csv", index=False)
    diffs.to_csv(tmp / "differences.csv", index=False)
    folds.to_csv(tmp / "label_efficiency.csv", index=False)
    tags = {"task": "cv", "protocol": "cv-parent", "dataset": "demo", "backbone": "tf_efficientnet_lite0"}
    with MlflowRun(uri, "brainscan", "cv-demo", tags) as run:
        full = folds[folds.label_budget == "all"]
        for regime, g in full.groupby("regime"):
            run.log_metrics(
                {
                    f"{regime}/roc_auc_mean": g.roc_auc.mean(),
                    f"{regime}/roc_auc_ci_low": g.roc_auc.min(),
                    f"{regime}/roc_auc_ci_high": g.roc_auc.max(),
                }
            )
        run.log_metrics(
            {
                "data/n_files": 60,
                "data/n_distinct": 57,
                "data/n_labelled_distinct": 32,
                "data/n_pool_distinct": 25,
                "data/n_pool_distinct_new": 24,
                "data/n_pool_copies_of_labelled": 2,
                "data/n_near_copy_groups": 1,
                "data/n_files_in_near_groups": 2,
            }
        )
        run.log_params({"split.n_splits": 2, "split.n_repeats": 2})
        for name in ("fold_metrics.csv", "differences.csv", "label_efficiency.csv"):
            run.log_artifact(tmp / name, "aggregate")
        return run.run_id


def _predict_run(uri: str, tmp: Path) -> str:
    p = RNG.uniform(0, 1, 40)
    table = pd.DataFrame(
        {
            "file": [f"sans_label/{i}.jpg" for i in range(40)],
            "p_cancer": p,
            "p_cancer_pool": p,
            "label_pred": np.where(p >= 0.3, "cancer", "normal"),
            "triage": np.where(p >= 0.3, "cancer", "normal"),
            "label_source": "model",
        }
    )
    table.to_csv(tmp / "predictions.csv", index=False)
    (tmp / "pool_estimate.json").write_text(json.dumps({"rule": "conformal", "threshold": 0.3}))
    tags = {"task": "predict", "dataset": "demo", "regime": "label_spreading", "backbone": "tf_efficientnet_lite2"}
    with MlflowRun(uri, "brainscan", "predict-demo", tags) as run:
        run.log_metrics(
            {
                "operating_threshold": 0.3137,
                "pool_estimate/sensitivity": 0.93,
                "pool_estimate/sensitivity_low": 0.88,
                "pool_estimate/sensitivity_high": 0.97,
                "pool_estimate/specificity": 0.61,
                "predictions/n_review": 17,
                "predictions/expected_missed": 0.4,
                "data/n_labelled_distinct": 32,
                "truth/roc_auc": 0.95,
                "truth/sensitivity": 0.91,
                "truth/specificity": 0.55,
            }
        )
        run.log_params({"target_sensitivity": 0.95})
        run.log_artifact(tmp / "predictions.csv")
        run.log_artifact(tmp / "pool_estimate.json")
        return run.run_id


def _cluster_run(uri: str, tmp: Path) -> str:
    from PIL import Image

    Image.new("RGB", (40, 30)).save(tmp / "projections.png")
    pd.DataFrame(
        {
            "confound": ["label", "mean_intensity", "ud_symmetry", "bbox_aspect"],
            "measure": ["cramers_v", "eta2", "eta2", "eta2"],
            "value": [0.35, 0.21, 0.05, 0.4],
            "n": [20, 60, 60, 60],
            "flagged": [True, True, False, True],
        }
    ).to_csv(tmp / "confound_association.csv", index=False)
    tags = {"task": "cluster", "dataset": "demo", "clusterer": "kmeans", "backbone": "tf_efficientnet_lite0"}
    with MlflowRun(uri, "brainscan", "cluster-demo", tags) as run:
        run.log_metrics({"cluster/n_clusters": 2, "cluster/cramers_v_label": 0.35, "cluster/n_confounds_flagged": 2})
        run.log_artifact(tmp / "projections.png", "figures")
        run.log_artifact(tmp / "confound_association.csv", "cluster")
        return run.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    uri = f"sqlite:///{tmp}/mlflow.db"
    results = tmp / "results"
    results.mkdir()
    for name in ("generalization.json", "bench_features.json", "probe_cv_auc_mri_dataset_brain_cancer_oc.json"):
        shutil.copy(REPO / "scripts" / "results" / name, results / name)
    ids = {"cv": _cv_run(uri, tmp), "predict": _predict_run(uri, tmp), "cluster": _cluster_run(uri, tmp)}
    return {"tmp": tmp, "uri": uri, "results": results, "ids": ids}


def _overrides(store, out: str) -> list[str]:
    return [
        "task=report",
        f"logger.tracking_uri={store['uri']}",
        f"report.results_dir={store['results']}",
        f"report.out_dir={store['tmp'] / out}",
        "report.label_efficiency_datasets=[]",
        "report.render=false",
    ]


@pytest.fixture(scope="module")
def decks(store):
    spec = importlib.util.spec_from_file_location("cost_model", REPO / "scripts" / "cost_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cost_model = module.main

    results = store["results"]
    cost_model(
        [
            "dataset=demo",
            f"logger.tracking_uri={store['uri']}",
            f"cost.bench_json={results / 'bench_features.json'}",
            f"cost.results_json={results / 'cost_model.json'}",
            f"cost.figure={results / 'cost_model.png'}",
            f"cost.curve.results_glob={results}/label_efficiency_*.json",
        ]
    )
    from brainscan_exp.stages import report

    cfg = compose_config(_overrides(store, "reports"))
    report.run(cfg)
    out = store["tmp"] / "reports"
    return {lang: out / f"brainscan_{lang}.pptx" for lang in ("fr", "en")}


def _slides(path: Path) -> list[tuple[str, str, bool]]:
    """(slide text, notes text, has a picture) per slide."""
    out = []
    for slide in Presentation(str(path)).slides:
        body = "\n".join(s.text_frame.text for s in slide.shapes if s.has_text_frame)
        body += "\n".join(c.text for s in slide.shapes if s.has_table for row in s.table.rows for c in row.cells)
        notes = slide.notes_slide.notes_text_frame.text if slide.has_notes_slide else ""
        out.append((body, notes, any(s.shape_type == 13 for s in slide.shapes)))
    return out


def test_both_decks_have_cited_figures_and_no_overflow(decks, store):
    for lang, path in decks.items():
        slides = _slides(path)
        assert len(slides) >= 12, lang
        for number_, (_, notes, has_picture) in enumerate(slides, start=1):
            if has_picture:
                assert re.search(r"MLflow run [0-9a-f]{32}|scripts/results/\w+\.json", notes), (lang, number_)
        assert find_overflows(path) == []
    fr, en = _slides(decks["fr"]), _slides(decks["en"])
    cluster = next(body for body, _, _ in fr if "sans étiquettes suivent" in body)
    assert "luminosité moyenne, forme du crâne" in cluster  # flagged confounds through the glossary
    assert sum(has_picture for _, _, has_picture in fr) >= 7  # pipeline, features, cluster, semi, curve, op, cost
    assert "Réponses au brief" in fr[1][0] and "Answers to the brief" in en[1][0]
    assert len(fr) == len(en)


def test_report_run_logs_the_decks(decks, store):
    client = MlflowClient(store["uri"])
    runs = client.search_runs(
        [client.get_experiment_by_name("brainscan").experiment_id], filter_string="tags.task = 'report'"
    )
    assert runs and {f.path for f in client.list_artifacts(runs[0].info.run_id, "decks")} == {
        "decks/brainscan_fr.pptx",
        "decks/brainscan_en.pptx",
    }


def test_three_numbers_equal_the_runs(decks, store):
    """Recomputed from MLflow with the run ids the notes cite, formatted as each language does."""
    client = MlflowClient(store["uri"])
    for lang, path in decks.items():
        slides = _slides(path)
        cited = {m for _, notes, _ in slides for m in re.findall(r"MLflow run ([0-9a-f]{32})", notes)}
        assert {store["ids"]["cv"], store["ids"]["predict"]} <= cited
        cv = client.get_run(store["ids"]["cv"]).data.metrics
        predict = client.get_run(store["ids"]["predict"]).data.metrics
        text = "\n".join(body for body, _, _ in slides)
        assert number(cv["sup/roc_auc_mean"], lang) in text
        assert number(predict["operating_threshold"], lang) in text
        assert f"{integer(predict['predictions/n_review'], lang)}" in slides[9][0]  # the operating-point slide


def test_missing_run_names_its_command(store, tmp_path):
    from brainscan_exp.stages import report

    cfg = compose_config(_overrides(store, "empty") + [f"logger.tracking_uri=sqlite:///{tmp_path}/empty.db"])
    with pytest.raises(MissingSource, match=r"experiment=cv dataset=demo.*make demo-runs"):
        report.run(cfg)


def test_overflow_is_detected(tmp_path):
    prs = Presentation()
    box = prs.slides.add_slide(prs.slide_layouts[6]).shapes.add_textbox(Inches(1), Inches(1), Inches(2), Inches(0.5))
    box.text_frame.text = "a sentence far too long for a box two inches wide and half an inch tall " * 2
    box.text_frame.paragraphs[0].runs[0].font.size = Pt(18)
    prs.save(tmp_path / "x.pptx")
    assert len(find_overflows(tmp_path / "x.pptx")) == 1
    with pytest.raises(ValueError, match="does not fit"):
        fitting_size([box.text_frame.text], Inches(2), Inches(0.5))
    assert fitting_size(["short"], Inches(2), Inches(0.5)) == 20


def test_the_rules_catch_what_they_forbid(tmp_path):
    from PIL import Image

    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[6])
    box = slide.shapes.add_textbox(Inches(0.5), Inches(0.5), Inches(9), Inches(3))
    box.text_frame.text = "Tête cv_C sur brain_mri_oc/no_meningioma, calcul 0 € ; gpu : 1 € ; lite0/mri/stage3"
    box.text_frame.paragraphs[0].runs[0].font.size = Pt(14)
    Image.new("RGB", (100, 50)).save(tmp_path / "plain.png")
    slide.shapes.add_picture(str(tmp_path / "plain.png"), Inches(0.5), Inches(4), Inches(2))
    prs.save(tmp_path / "bad.pptx")
    found = "\n".join(deck_problems(tmp_path / "bad.pptx", "fr"))
    for expected in ("'cv_C'", "'brain_mri_oc'", "zero amount '0 €'", "without cents '1 €'", "lite0/mri/stage3"):
        assert expected in found, (expected, found)
    assert "not a deck figure" in found


def test_a_small_font_at_placed_size_is_caught(tmp_path):
    from matplotlib.figure import Figure
    from PIL import Image

    from brainscan_exp.report import figures

    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1])
    ax.tick_params(labelsize=9)
    png = figures._save(fig, tmp_path / "f.png")
    with Image.open(png) as image:
        assert figures.placed_font_pt(image, 8.0) == pytest.approx(9)
        assert figures.placed_font_pt(image, 16.0) == pytest.approx(18)


def test_photos_record_their_own_titles_not_hidden_ticks(tmp_path):
    from PIL import Image

    from brainscan_exp.report import figures

    grey = np.full((32, 32), 128, dtype=np.uint8)
    png = figures.photos([(grey, grey), (grey, grey)], ("original", "copie"), (5.6, 5.75), tmp_path / "p.png")
    with Image.open(png) as image:
        assert figures.placed_font_pt(image, 5.6) == pytest.approx(figures.FONT)


def test_decks_follow_the_rules_a_reader_sees(decks):
    """No internal name in slide text, no "0 €", cents below €100, figures >= 12 pt as placed."""
    for lang, path in decks.items():
        assert deck_problems(path, lang) == [], lang


def test_money_has_cents_below_100_and_thousands_separators():
    from brainscan_exp.report.strings import euros

    assert euros(0.4507, "fr") == "0,45\u00a0€" and euros(1.96, "en") == "€1.96"
    assert euros(5000, "fr") == "5\u202f000\u00a0€" and euros(5000, "en") == "€5,000"


def _review_json(path: Path) -> None:
    rows = [
        {"strategy": s, "batch_size": 50, "audit_share": 0.1, "scenario": scenario, "n_pool": 1272, "n_reads": 300}
        | {"missed_before": before, "false_alarms_before": 40, "error_rate_before": 0.05}
        | {"missed_after": after, "false_alarms_after": 30, "error_rate_after": 0.03, "auc_unread_before": 0.95}
        | {"auc_unread_after": 0.97, "normals_auto_share": 0.6, "estimate_low": 1, "estimate_high": 4}
        | {"estimate_covered": True}
        for s in ("committee", "top_score")
        for scenario, before, after in (("brief_cv", 4, 1), ("brain_mri_oc/share_20", 6, 2))
    ]
    chosen = {"strategy": "committee", "batch_size": 50, "audit_share": 0.1, "worst_missed_after": 2}
    chosen |= {"worst_error_rate_after": 0.031}
    path.write_text(
        json.dumps(
            {
                "command": "python scripts/bench_review.py",
                "seconds": 1.0,
                "chosen": chosen,
                "table": rows,
                "worst_cases": [],
            }
        )
    )


def test_the_300_euro_slide_reads_the_review_benchmark_and_is_left_out_without_it(decks, store, tmp_path):
    from brainscan_exp.stages import report

    fr = _slides(decks["fr"])
    assert not any("la boucle de relecture ramène" in body for body, _, _ in fr)
    assert "Mesure en cours" in fr[1][0]
    results = tmp_path / "results"
    shutil.copytree(store["results"], results)
    _review_json(results / "review_benchmark.json")
    overrides = _overrides(store, "with_review")
    overrides[2] = f"report.results_dir={results}"
    report.run(compose_config(overrides))
    path = store["tmp"] / "with_review" / "brainscan_fr.pptx"
    slides = _slides(path)
    assert len(slides) == len(fr) + 1
    page = next(k for k, (body, _, _) in enumerate(slides, start=1) if "la boucle de relecture ramène" in body)
    body, notes, has_picture = slides[page - 1]
    before, after = percent(0.05, "fr", 1), percent(0.03, "fr", 1)  # mean wrong labels: one-shot -> loop
    assert f"de {before} à {after}" in body and has_picture and "scripts/results/review_benchmark.json" in notes
    answers = slides[1][0].splitlines()
    assert answers[answers.index("Que rapportent les 300\u00a0€ de lecture ?") + 2] == str(page)
    assert deck_problems(path, "fr") == []


@pytest.mark.slow
@pytest.mark.skipif(bool(missing_tools()), reason="LibreOffice (soffice) or poppler (pdftoppm) not installed")
def test_rendered_deck_has_one_page_per_slide_and_a_logged_contact_sheet(decks, store):
    """task=report renders both decks (LibreOffice -> PDF -> PNG pages) into contact sheets, logged
    to the report run; each page is read back from the PDF."""
    from PIL import Image

    from brainscan_exp.stages import report

    overrides = [o for o in _overrides(store, "rendered") if o != "report.render=false"]
    report.run(compose_config(overrides))
    out = store["tmp"] / "rendered"
    for lang in ("fr", "en"):
        pages = sorted((out / "rendered" / lang / "pages").glob("*.png"))
        assert len(pages) == len(Presentation(str(out / f"brainscan_{lang}.pptx")).slides)
        with Image.open(out / f"brainscan_{lang}_pages.png") as sheet:
            assert sheet.width > 1000 and sheet.height > 500
        assert deck_problems(out / f"brainscan_{lang}.pptx", lang) == []
    client = MlflowClient(store["uri"])
    run = client.search_runs(
        [client.get_experiment_by_name("brainscan").experiment_id],
        filter_string="tags.task = 'report'",
        order_by=["attributes.start_time DESC"],
    )[0]
    logged = {f.path for f in client.list_artifacts(run.info.run_id, "decks")}
    assert {"decks/brainscan_fr_pages.png", "decks/brainscan_en_pages.png"} <= logged


def test_label_efficiency_summary_is_per_budget(tmp_path):
    from omegaconf import OmegaConf

    from brainscan_exp.stages.cv import save_label_efficiency

    frame = pd.DataFrame(
        {
            "regime": ["sup"] * 4,
            "fold": [0, 1, 0, 1],
            "label_budget": [10, 10, "all", "all"],
            "n_labels": [10, 11, 40, 41],
            "roc_auc": [0.8, 0.9, 0.95, 0.97],
            "sensitivity": [0.5, 0.7, 0.9, 0.9],
            "specificity": [0.6, 0.6, 0.8, 0.9],
            "y_test": [[0, 1]] * 4,
            "p_test": [[0.2, 0.8]] * 4,
        }
    )
    cfg = OmegaConf.create(
        {
            "cv": {"results_json": str(tmp_path / "le.json"), "regimes": {"sup": {}}, "label_budgets": [10, "all"]}
            | {"budget_folds": 2},
            "dataset": {"name": "demo"},
        }
    )
    save_label_efficiency(cfg, frame, "abc123", 1.0)
    saved = json.loads((tmp_path / "le.json").read_text())
    rows = {(r["label_budget"], r["metric"]): r for r in saved["table"]}
    assert saved["run_id"] == "abc123" and saved["dataset"] == "demo"
    assert rows[("10", "roc_auc")]["mean"] == pytest.approx(0.85)
    assert rows[("10", "roc_auc")]["n_labels"] == pytest.approx(10.5)
    assert rows[("all", "sensitivity")]["mean"] == pytest.approx(0.9)
    assert rows[("10", "roc_auc")]["ci_low"] <= 0.85 <= rows[("10", "roc_auc")]["ci_high"]


def _bench_scale_json(path: Path) -> dict:
    """A scale bench's JSON as ``scripts/bench_scale.py`` writes it (sizes 100 k, 250 k, 1 M), made up:
    seconds growing linearly, memory as the square root."""
    stages = ("corpus", "store", "hash_candidates", "ann", "merge_cap", "predict", "review")
    base = {s: (10.0 * (k + 1), 200.0 + 100 * k) for k, s in enumerate(stages)}  # (s, MiB) at 100 k
    sizes = {}
    for n in (100_000, 250_000, 1_000_000):
        f = n / 100_000
        sizes[str(n)] = {
            s: {"seconds": t * f, "peak_rss_mb": m * f**0.5, "label": "measured"} for s, (t, m) in base.items()
        }
        sizes[str(n)]["merge_cap"] |= {"planted_pair_recall": 0.9876, "confirmations_per_image": 1.234}
    label = "extrapolated from 1,000,000 with the 250,000->1,000,000 exponents (time at least linear)"
    extra = {s: {"seconds": t * 40, "peak_rss_mb": m * 40**0.5, "label": label} for s, (t, m) in base.items()}
    extra["confirmation"] = {"pairs": 4.9e6, "seconds": 93_000.0, "label": "extrapolated: pairs per image x 4 M"}
    extra["hashing"] = {"seconds": 86_400.0, "label": "extrapolated: seconds per image x 4 M"}
    report = {
        "command": "python scripts/bench_scale.py",
        "machine": "2 cores (shared), no GPU",
        "corpus": {"copy_rate": 0.2},
        "brief": {
            "n_images": 1410,
            "confirmation_seconds_per_pair": 0.019,
            "hashing_seconds_per_image": 0.0216,
            "label": "measured",
        },
        "sizes": sizes,
        "growth": {"250000->1000000": {s: {"time_exponent": 1.0, "rss_exponent": 0.5} for s in stages}},
        "extrapolated_4M": extra,
    }
    path.write_text(json.dumps(report))
    return report


def test_the_scale_bench_slide_labels_every_number_and_cites_its_json(decks, store, tmp_path):
    """bench_scale.json -> one slide after the compute-cost one: per step, time and peak memory at the
    largest size (under "mesuré") and at 4 M (under "extrapolé"), every bullet's numbers labelled,
    the file cited; without the file the slide is left out."""
    from brainscan_exp.report.deck import _duration, _memory
    from brainscan_exp.stages import report

    assert not any("mémoire d'une seule machine" in body for body, _, _ in _slides(decks["fr"]))
    results = tmp_path / "results"
    shutil.copytree(store["results"], results)
    bench = _bench_scale_json(results / "bench_scale.json")
    overrides = _overrides(store, "with_scale")
    overrides[2] = f"report.results_dir={results}"
    report.run(compose_config(overrides))
    for lang, measured, extrapolated in (("fr", "mesuré", "extrapolé"), ("en", "measured", "extrapolated")):
        path = store["tmp"] / "with_scale" / f"brainscan_{lang}.pptx"
        slides = Presentation(str(path)).slides
        cited = [
            (k, s) for k, s in enumerate(slides, start=1) if "bench_scale.json" in s.notes_slide.notes_text_frame.text
        ]
        page, slide = next((k, s) for k, s in cited if k > 2)  # the title and sources slides cite every file
        assert "scripts/results/bench_scale.json" in slide.notes_slide.notes_text_frame.text
        assert len(slides) == len(_slides(decks[lang])) + 1
        grid = [[c.text for c in row.cells] for row in next(x for x in slide.shapes if x.has_table).table.rows]
        assert measured in grid[0][1] and "1" in grid[0][1] and extrapolated in grid[0][3]
        top = bench["sizes"]["1000000"]
        rows = {r[0]: r[1:] for r in grid[2:]}
        predict = rows["Prédiction sur tout le lot" if lang == "fr" else "Scoring the whole pool"]
        assert predict == [
            _duration(top["predict"]["seconds"], lang),
            _memory(top["predict"]["peak_rss_mb"], lang),
            _duration(bench["extrapolated_4M"]["predict"]["seconds"], lang),
            _memory(bench["extrapolated_4M"]["predict"]["peak_rss_mb"], lang),
        ]
        candidates = rows["Repérage des quasi-copies" if lang == "fr" else "Finding near-copy candidates"]
        stages = ("hash_candidates", "ann", "merge_cap")
        assert candidates[0] == _duration(sum(top[s]["seconds"] for s in stages), lang)
        assert len(rows) == 5  # fingerprints, candidates, confirmation, predict, review
        bullets = [t for x in slide.shapes if x.has_text_frame for t in x.text_frame.text.split("\n") if "• " in t]
        assert bullets and all(
            re.search(measured + "|" + extrapolated, b, re.I) for b in bullets if re.search(r"\d", b)
        )
        assert percent(0.9876, lang, 2) in bullets[0] and number(1.234, lang, 2) in bullets[0]
        assert deck_problems(path, lang) == []
    answers = [[c.text for c in row.cells] for row in next(x for x in slides[1].shapes if x.has_table).table.rows]
    assert next(r[2] for r in answers if r[0].startswith("4 M")) == f"{page - 1}–{page + 1}"  # cost, bench, conditions


def test_the_scale_bench_facts_read_the_first_bench_and_refuse_an_unlabelled_figure(tmp_path):
    from brainscan_exp.report.deck import scale_table
    from brainscan_exp.report.facts import _scale_bench
    from brainscan_exp.report.sources import Results

    bench = _bench_scale_json(tmp_path / "bench_scale.json")
    for size in bench["sizes"].values():  # the first bench: predict's work was called "score", no review
        size["score"] = size.pop("predict")
        del size["review"]
    (tmp_path / "bench_scale.json").write_text(json.dumps(bench))
    section = _scale_bench(Results(tmp_path))
    assert section.tables["stages"].row.tolist() == ["hashing", "candidates", "confirmation", "predict"]
    assert section.values["n"] == 1_000_000 and section.values["n_before"] == 250_000
    assert "tiennent dans la mémoire" in scale_table(section, "fr", 16)["title"]
    over = scale_table(section, "fr", 1)  # a step's peak at 4 M above the machine's memory: the title says which
    assert (
        over["title"] == "À 4 millions d'images, l'étape « repérage des quasi-copies » dépasse la mémoire d'une machine"
    )
    bench["sizes"]["1000000"]["ann"]["label"] = "extrapolated"
    (tmp_path / "bench_scale.json").write_text(json.dumps(bench))
    with pytest.raises(ValueError, match="'measured' is expected"):
        _scale_bench(Results(tmp_path))
