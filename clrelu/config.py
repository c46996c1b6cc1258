"""Where clrelu's Hydra configs live, and composing them in-process (for scripts and tests)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig


def config_dir() -> Path:
    """The config folder: shipped inside the package in a wheel, at the top of a source checkout otherwise."""
    packaged = Path(__file__).resolve().parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "conf"


def compose(overrides: list[str] = ()) -> tuple[DictConfig, dict[str, str]]:
    """The config `clrelu run <overrides>` would run, and the chosen option of each group."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = hydra_compose("config", overrides=list(overrides), return_hydra_config=True)
    names = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, names
