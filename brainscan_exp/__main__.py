"""``python -m brainscan_exp``: the Hydra app (single runs and ``-m`` sweeps)."""

from __future__ import annotations

from brainscan_exp.console import quiet_hydra_startup

quiet_hydra_startup()

import hydra  # noqa: E402  (after its start-up warnings are filtered)
from omegaconf import DictConfig  # noqa: E402

from brainscan_exp.config import config_path, set_project_root  # noqa: E402

set_project_root()


@hydra.main(version_base="1.3", config_path=config_path(), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from brainscan_exp.tasks import run_task  # heavy imports after Hydra has parsed the command line

    return run_task(cfg)


if __name__ == "__main__":
    main()
