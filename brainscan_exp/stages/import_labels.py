"""The import stage (``task=import_labels``): a radiologist's answers into the expert-label ledger.

From an answer file (``review.answers=PATH``: Label Studio's JSON export or a CSV ``file,label``)
or straight from the Label Studio project (``review.label_studio.url``). The ledger validates and
appends them whole or not at all; the run prints new / already known / conflicting / unreadable.
"""

from __future__ import annotations

import logging

from hydra.utils import instantiate
from omegaconf import DictConfig

from brainscan_exp.data.errors import AnswerFileError
from brainscan_exp.review import label_studio
from brainscan_exp.review.answers import answers_from_tasks, read_answers
from brainscan_exp.stages.common import open_run
from brainscan_exp.stages.predict import ledger_of

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, float]:
    r = cfg.review
    if r.answers:
        answers, source = read_answers(r.answers), str(r.answers)
    elif r.label_studio.url:
        client = label_studio.LabelStudioClient(r.label_studio.url, r.label_studio.token)
        project = client.ensure_project(r.label_studio.project, label_studio.label_config_xml())
        source = f"label_studio:{r.label_studio.url}/projects/{project}"
        answers = answers_from_tasks(client.export(project), source)
    else:
        raise AnswerFileError(
            "task=import_labels has no answers to import.",
            fix="give review.answers=PATH (Label Studio JSON export or CSV file,label) or "
            "review.label_studio.url=URL (with review.label_studio.token or LABEL_STUDIO_TOKEN).",
        )
    catalogue = instantiate(cfg.dataset)
    ledger = ledger_of(cfg)
    report = ledger.append(answers, catalogue.files[["file", "pixel_hash"]], source)
    with open_run(cfg, run_name="import_labels") as tracker:
        metrics = {
            "import/new": float(report.new),
            "import/known": float(report.known),
            "import/conflicting": float(report.conflicting),
            "import/unreadable": float(report.unreadable),
            "import/ledger_rows": float(len(ledger.read())),
        }
        tracker.log_metrics(metrics)
        tracker.set_tags({"answers_source": source})
        tracker.log_artifact(ledger.path, "review")
    log.info(report.line())
    log.info("ledger %s now holds %d answers", ledger.path, int(metrics["import/ledger_rows"]))
    return metrics
