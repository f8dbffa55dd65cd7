"""The report stage (``task=report``): the hand-over decks, French and English, as a run.

Reads cfg, collects the numbers from MLflow runs of ``report.dataset`` and from
``scripts/results`` (:mod:`brainscan_exp.report.facts`), writes ``reports/brainscan_<lang>.pptx``,
renders them (LibreOffice, then poppler) into ``reports/brainscan_<lang>_pages.png`` contact sheets
when both are installed, and logs all of them as artefacts of a ``report`` run. A missing run
stops it with the command that produces it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from brainscan_exp.report import render
from brainscan_exp.report.deck import build
from brainscan_exp.report.facts import collect
from brainscan_exp.report.sources import Results, Runs
from brainscan_exp.stages.common import open_run
from brainscan_exp.tracking.mlflow_run import git_commit

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, float]:
    runs = Runs(cfg.logger.tracking_uri, cfg.logger.experiment_name, cfg.report.dataset)
    facts = collect(
        runs,
        Results(Path(cfg.report.results_dir)),
        list(cfg.report.label_efficiency_datasets),
        cfg.cost.curve.regime,
        cfg.report.probe,
    )
    for section, command in facts.missing.items():
        log.warning("optional section %r missing (its slide has no figure, or is left out): `%s`", section, command)
    settings = {
        "client": cfg.report.client,
        "commit": git_commit(cfg.paths.root_dir)[:10],
        "definition_of_done": OmegaConf.to_container(cfg.definition_of_done, resolve=True),
        "review_budget_eur": cfg.review.budget_eur,
        "machine_gb": cfg.report.get("scale_machine_gb", 16),
    }
    out_dir = Path(cfg.report.out_dir)
    with open_run(cfg, run_name=f"report-{cfg.report.dataset}", report_dataset=cfg.report.dataset) as tracker:
        decks = {}
        for lang in cfg.report.languages:
            decks[lang] = build(facts, lang, settings, out_dir / f"brainscan_{lang}.pptx")
            tracker.log_artifact(decks[lang], "decks")
            log.info("deck written: %s", decks[lang])
        missing = render.missing_tools()
        if not cfg.report.get("render", True):
            pass
        elif missing:
            log.warning("decks not rendered (%s not installed): no contact sheet", ", ".join(missing))
        else:  # what a reader sees: every page, rendered by LibreOffice, on one image
            for lang, deck in decks.items():
                sheet = render.render(deck, out_dir / "rendered" / lang, out_dir / f"brainscan_{lang}_pages.png")
                tracker.log_artifact(out_dir / f"brainscan_{lang}_pages.png", "decks")
                log.info("deck rendered: %s (%d pages)", out_dir / f"brainscan_{lang}_pages.png", len(sheet))
        tracker.set_tags({f"cites/{k}": v for k, v in facts.runs().items()})
        return {"report/n_decks": float(len(decks))}
