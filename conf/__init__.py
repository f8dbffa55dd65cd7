"""The Hydra configs, shipped in the wheel as ``brainscan_exp.conf`` (``pkg://brainscan_exp.conf``)."""
