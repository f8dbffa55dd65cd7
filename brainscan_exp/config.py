"""Where the Hydra configs are: the checkout's top-level ``conf/``, or the copy shipped in the wheel.

The design card keeps ``conf/`` at the top of the project; ``pyproject.toml`` maps it onto the package
``brainscan_exp.conf`` so that a non-editable ``pip install .`` carries it (``pkg://brainscan_exp.conf``).
"""

from __future__ import annotations

import os
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]
SOURCE_CONF = SOURCE_ROOT / "conf"
PACKAGED_CONF = "pkg://brainscan_exp.conf"


def in_checkout() -> bool:
    """True when running from a source checkout (editable install or ``python -m`` in the repo)."""
    return (SOURCE_CONF / "train.yaml").is_file()


def config_path() -> str:
    """The config search path for ``@hydra.main`` and ``initialize_config_dir``-style callers."""
    return str(SOURCE_CONF) if in_checkout() else PACKAGED_CONF


def set_project_root() -> None:
    """Outputs (cache/, logs/, mlruns/) go under the checkout; an installed package writes under the cwd."""
    if in_checkout():
        os.environ.setdefault("PROJECT_ROOT", str(SOURCE_ROOT))


def initialize_configs():
    """Hydra's compose-API context for the same configs the CLI reads (notebooks, tests)."""
    from hydra import initialize_config_dir, initialize_config_module

    if in_checkout():
        return initialize_config_dir(config_dir=str(SOURCE_CONF), version_base="1.3")
    return initialize_config_module(config_module="brainscan_exp.conf", version_base="1.3")
