"""The wheel carries every subpackage and the configs (a non-editable install must run)."""

from __future__ import annotations

import tomllib
from conftest import PROJECT_ROOT

from brainscan_exp import config


def test_listed_packages_match_the_folders():
    listed = set(tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(PROJECT_ROOT).parts)
        for top in ("brainscan_exp", "hydra_plugins")
        for p in (PROJECT_ROOT / top).rglob("__init__.py")
    }
    conf = PROJECT_ROOT / "conf"
    configs = {"brainscan_exp.conf"} | {
        ".".join(("brainscan_exp", "conf", *d.relative_to(conf).parts))
        for d in conf.rglob("*")
        if d.is_dir() and "__pycache__" not in d.parts
    }
    assert listed == on_disk | configs, "update [tool.setuptools] packages in pyproject.toml"


def test_checkout_reads_the_top_level_conf_and_an_install_the_packaged_copy(monkeypatch, tmp_path):
    assert config.config_path() == str(PROJECT_ROOT / "conf")
    monkeypatch.setattr(config, "SOURCE_CONF", tmp_path / "conf")  # as in site-packages: no conf/ beside
    assert config.config_path() == "pkg://brainscan_exp.conf"


def test_hydra_plugins_stays_a_namespace_package():
    """An __init__.py in hydra_plugins/ would hide Hydra's installed plugins (joblib, submitit)."""
    assert not (PROJECT_ROOT / "hydra_plugins" / "__init__.py").exists()
    assert (PROJECT_ROOT / "hydra_plugins" / "brainscan_ray_launcher" / "__init__.py").exists()
