"""Where clrelu's Hydra configs live, composing them in-process (for scripts and tests), and the presets' resolver."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def vandeven_class_order(seed: int) -> list[int]:
    """The digits of the split MNIST tasks, in order, that van de Ven et al.'s code (data/load.py) uses for a seed:
    0-9 for seed 0, else the labels relabelled by np.random.permutation(10) right after np.random.seed(seed), so
    that task t holds the digits whose new labels are 2t and 2t+1. Used by experiment=vandeven_split_mnist as
    ${vandeven_class_order:${seed}}."""
    if seed == 0:
        return list(range(10))
    import numpy as np

    return np.argsort(np.random.RandomState(seed).permutation(10)).tolist()


if not OmegaConf.has_resolver("vandeven_class_order"):
    OmegaConf.register_new_resolver("vandeven_class_order", vandeven_class_order)


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
