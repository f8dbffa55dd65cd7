"""``BrainscanRayLauncher``: every job of the sweep is one Ray task with its own resources.

Jobs run in parallel as far as the cluster's resources allow (``remote.num_cpus``/``num_gpus``
per job). A job that raises comes back as a failed ``JobReturn`` (Hydra's ``run_job`` catches it,
as with the joblib launcher): the sweep goes on and Hydra reports the failure at the end. A task
whose worker died (out of memory, node lost) is turned into a failed ``JobReturn`` too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


def _execute_job(
    idx: int,
    overrides: Sequence[str],
    hydra_context: HydraContext,
    config: DictConfig,
    task_function: TaskFunction,
    singleton_state: dict[Any, Any],
) -> JobReturn:
    """Runs in the Ray worker: rebuilds Hydra's global state, composes the job's config, runs it."""
    setup_globals()
    Singleton.set_state(singleton_state)
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
    HydraConfig.instance().set_config(sweep_config)
    return run_job(
        hydra_context=hydra_context,
        config=sweep_config,
        task_function=task_function,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


def _lost_job(overrides: Sequence[str], error: BaseException) -> JobReturn:
    ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
    ret.return_value = error  # JobReturn keeps the exception: Hydra raises it after the sweep
    return ret


class BrainscanRayLauncher(Launcher):
    def __init__(self, address: str | None = None, init: DictConfig | None = None, remote: DictConfig | None = None):
        self.address = address
        self.init = OmegaConf.to_container(init, resolve=True) if isinstance(init, DictConfig) else dict(init or {})
        self.remote = (
            OmegaConf.to_container(remote, resolve=True) if isinstance(remote, DictConfig) else dict(remote or {})
        )
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import ray

        setup_globals()
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)

        started = False
        if not ray.is_initialized():
            ray.init(address=self.address, **self.init)
            started = self.address is None  # a local Ray of our own; a cluster is left running
        try:
            job = ray.remote(**self.remote)(_execute_job) if self.remote else ray.remote(_execute_job)
            log.info("Ray launcher: %d jobs (%s each), sweep dir %s", len(job_overrides), self.remote, sweep_dir)
            singleton_state = Singleton.get_state()
            refs = []
            for offset, overrides in enumerate(job_overrides):
                idx = initial_job_idx + offset
                log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
                refs.append(
                    job.remote(idx, overrides, self.hydra_context, self.config, self.task_function, singleton_state)
                )
            returns = []
            for overrides, ref in zip(job_overrides, refs):
                try:
                    returns.append(ray.get(ref))
                except Exception as exc:  # the worker died: that job failed, the others stand
                    log.error("job %s lost: %s", " ".join(overrides), exc)
                    returns.append(_lost_job(overrides, exc))
            return returns
        finally:
            if started:
                ray.shutdown()
