"""Where clrelu's Hydra configs live; composing them in-process (for scripts and tests); the presets' resolver;
refusing keys the configs do not define; and comparing the config of a run with the one it started with."""

from __future__ import annotations

import secrets
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from clrelu import checks
from clrelu.errors import ConfigError

RUN_CONTROL_KEYS = ("resume", "skip_finished")  # how a run was launched, not what it computes
# Keys that do not change what a run computes, so a resume may change them (hydra.* is never compared).
NOT_COMPARED_ON_RESUME = (*RUN_CONTROL_KEYS, "threads", "logger")


def vandeven_class_order(seed: int) -> ListConfig:
    """The digits of the split MNIST tasks, in order, that van de Ven et al.'s code (data/load.py) uses for a seed:
    0-9 for seed 0, else the labels relabelled by np.random.permutation(10) right after np.random.seed(seed), so
    that task t holds the digits whose new labels are 2t and 2t+1. Used by experiment=vandeven_split_mnist as
    ${vandeven_class_order:${seed}}."""
    if seed == 0:
        return OmegaConf.create(list(range(10)))  # a ListConfig, not a list: `--cfg job --resolve` can print it
    import numpy as np

    return OmegaConf.create(np.argsort(np.random.RandomState(seed).permutation(10)).tolist())


def unique_suffix() -> str:
    """Six random hex digits, so that runs launched at the same second get folders of their own (used by the
    default run and sweep folders as ${unique_suffix:}; one value per composed config)."""
    return secrets.token_hex(3)


if not OmegaConf.has_resolver("vandeven_class_order"):
    OmegaConf.register_new_resolver("vandeven_class_order", vandeven_class_order)
if not OmegaConf.has_resolver("unique_suffix"):
    OmegaConf.register_new_resolver("unique_suffix", unique_suffix, use_cache=True)


def config_dir() -> Path:
    """The config folder: shipped inside the package in a wheel, at the top of a source checkout otherwise."""
    packaged = Path(__file__).resolve().parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "conf"


def compose(overrides: list[str] = ()) -> tuple[DictConfig, dict[str, str]]:
    """The config `clrelu run <overrides>` would run, and the chosen option of each group."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = hydra_compose("config", overrides=list(overrides), return_hydra_config=True)
        check_known_keys(cfg, list(overrides), GlobalHydra.instance().config_loader())
    names = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, names


def check_known_keys(cfg: DictConfig, overrides: list[str], loader, config_name: str = "config") -> None:
    """Refuse a key that `+key=value` or `++key=value` added and the YAML configs do not define.

    Hydra itself refuses `key=value` for a key that does not exist, but `+` and `++` add keys, so a typo
    such as `+trainer.epoch=3` would be ignored. The valid keys are those of the config composed from the
    YAML files with every other override. A key added directly under a node with a `_target_` is left to
    the check of the target's arguments (`+optimizer.nesterov=true` is a keyword of torch.optim.SGD).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    parsed = OverridesParser.create().parse_overrides(overrides)
    groups = set(cfg.hydra.runtime.choices)
    added = {i for i, o in enumerate(parsed) if (o.is_add() or o.is_force_add()) and o.key_or_group not in groups
             and not o.key_or_group.startswith("hydra.")}
    if not added:
        return
    base_overrides = [text for i, text in enumerate(overrides) if i not in added]
    base = loader.load_configuration(config_name=config_name, overrides=base_overrides, run_mode=RunMode.RUN)
    for key in (parsed[i].key_or_group for i in sorted(added)):
        if _has(base, key):
            continue
        parent_key = key.rpartition(".")[0]
        parent = _node(base, parent_key)
        if isinstance(parent, DictConfig) and "_target_" in parent:
            continue
        while not isinstance(parent, DictConfig):  # the nearest node the YAML files define
            parent_key = parent_key.rpartition(".")[0]
            parent = _node(base, parent_key)
        valid = [k for k in parent if k not in ("hydra", "_target_", "_partial_")]
        raise ConfigError(f"{key}: unknown config key; valid keys here are {', '.join(valid)}")


def _node(cfg: DictConfig, key: str):
    return OmegaConf.select(cfg, key) if key else cfg


def _has(cfg: DictConfig, key: str) -> bool:
    """Whether `key` (dotted) exists in `cfg`, even with a null value."""
    parent_key, _, name = key.rpartition(".")
    parent = _node(cfg, parent_key)
    return isinstance(parent, DictConfig) and name in parent


def job_config(cfg: DictConfig) -> dict:
    """The config a run computes with, resolved, as plain data (no `hydra` node)."""
    return {key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
            for key in cfg if key != "hydra"}


def _flat(node, prefix: str = "") -> dict:
    """A nested config as {"a.b.c": value}."""
    if isinstance(node, dict):
        flat = {}
        for key, value in node.items():
            flat.update(_flat(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: node}


def config_difference(started: dict, now: dict) -> str | None:
    """The first key (in sorted order) whose value differs between the config a run started with and
    `now`, said in words, or None when they agree on every key that changes results."""
    before, after = _flat(started), _flat(now)
    for key in sorted(set(before) | set(after)):
        if key.split(".")[0] in NOT_COMPARED_ON_RESUME or before.get(key) == after.get(key):
            continue
        was, now_ = (flat.get(key, "(not set)") for flat in (before, after))
        return f"{key} was {was} in that run and is {now_} now"
    return None


def check_seeds(cfg: DictConfig) -> int:
    """The run's seed, after checking it and the stream's (each an integer in [0, 2**32))."""
    seed = checks.seed("seed", cfg.seed)
    if "seed" in cfg.get("stream", {}):
        checks.seed("stream.seed", cfg.stream.seed)
    return seed
