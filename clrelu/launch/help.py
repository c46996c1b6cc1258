"""`clrelu run --help`: the config groups a user chooses from (not the ones clrelu fills in itself), Hydra's
launchers and sweepers that are installed, the options of the command line, and the composed config."""

from __future__ import annotations

from omegaconf import OmegaConf, open_dict

from clrelu.config import config_dir
from clrelu.launch.arguments import check_option_names, loader, valid_options

PLUGIN_GROUPS = ("hydra/launcher", "hydra/sweeper")
NOT_USER_GROUPS = ("hydra", "experiment_strategy")  # clrelu fills these in from the options chosen


def help_text(overrides: list[str]) -> str:
    from hydra import initialize_config_dir

    with initialize_config_dir(str(config_dir()), version_base="1.3", job_name="clrelu"):
        check_option_names(overrides)
        from hydra.types import RunMode

        cfg = loader().load_configuration("config", list(overrides), run_mode=RunMode.MULTIRUN,
                                          validate_sweep_overrides=False)
        groups = [g for g in sorted(loader().list_groups("")) if g not in NOT_USER_GROUPS]
        lines = [f"{group}: {', '.join(loader().get_group_options(group))}" for group in (*groups, *PLUGIN_GROUPS)]
    header, footer = cfg.hydra.help.header, cfg.hydra.help.footer
    with open_dict(cfg):
        del cfg["hydra"]
    return "\n".join([header, "== Config groups (choose one option each: group=option) ==", *lines, "",
                      f"== Options == {valid_options()}", "",
                      "== Config (defaults and your overrides) ==", OmegaConf.to_yaml(cfg), footer])


def show_help(overrides: list[str]) -> None:
    print(help_text(overrides), end="")
