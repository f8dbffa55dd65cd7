"""What a run prints: one line per event, through Hydra's logging, without third-party noise.

Each filter sits on the logger or module the noise comes from, so nothing of ours is hidden:
- Lightning installs its own console handler when it is imported before logging is configured,
  which printed every line twice: its handlers go, its records flow to Hydra's handlers;
- Lightning's per-Trainer banners (accelerators, a product tip) repeat for every phase of a run;
- deprecation warnings raised inside third-party packages are theirs to fix, not the user's
  (Hydra's own start-up ones are filtered before Hydra starts: ``quiet_hydra_startup``).
"""

from __future__ import annotations

import logging
import sys
import warnings

LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")
BANNERS = ("GPU available", "TPU available", "HPU available", "💡 Tip", "LOCAL_RANK", "Seed set to")
THIRD_PARTY = r"(lightning|torch|timm|mlflow|sklearn|umap|hydra|quapy|pytorch_lightning|lightning_utilities)(\..*)?"


class _DropBanners(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(BANNERS)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"{category.__name__}: {message}"


def quiet_hydra_startup() -> None:
    """Before ``@hydra.main`` runs: Hydra 1.4 calls OmegaConf APIs that OmegaConf 2.4 deprecates, once
    per resolver, before any logging is configured."""
    for category in (UserWarning, DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=r"hydra(\..*)?")
    # MLflow's own handler announces the creation of a new store's tables, whoever opens it first
    for name in ("mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def quiet_third_party() -> None:
    """Call once the job's logging is configured (Hydra does it before the task runs)."""
    import lightning.pytorch  # noqa: F401  (it adds its console handler on import: import it now, then remove it)

    banner_filter = _DropBanners()
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
        logger.addFilter(banner_filter)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(banner_filter)
    for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=THIRD_PARTY)
    # Lightning's advice to add DataLoader workers: frozen-feature heads load from memory
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # MLflow's advice about integer columns in a logged dataset's inferred schema (labels are ints)
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer", category=UserWarning)
    warnings.formatwarning = _one_line_warning
    logging.captureWarnings(True)  # warnings become log lines of the ``py.warnings`` logger


def report_input_error(error: BaseException, stream=None) -> None:
    """Print an input error (bad folder, bad file) as the plain lines a person reads, on stderr:
    what is wrong, which files, what to do. No traceback: the input is at fault, not the code."""
    stream = stream or sys.stderr
    stream.write(f"error: {error}\n")
    stream.flush()
