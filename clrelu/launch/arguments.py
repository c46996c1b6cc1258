"""`clrelu run`'s command line: Hydra's options, each spelled out in full, and none that reads a file as code.

Hydra parses its command line with argparse, which accepts any unambiguous prefix of a long option
(`--exp=x` for `--experimental-rerun=x`, which unpickles `x`). clrelu reads the command line first, with
every option matched exactly, refuses the options it does not allow, and hands Hydra a command line
rebuilt from what it read (`--option=value`), so Hydra never sees a spelling clrelu did not check. The
overrides' config group options are checked here too: a name, never a path. Nothing here imports torch, so
that `clrelu run --help` does not either.
"""

from __future__ import annotations

from dataclasses import dataclass

from clrelu.errors import ConfigError


@dataclass(frozen=True)
class Option:
    long: str
    short: str | None = None
    takes: str = "flag"  # flag | value | optional (a value that may be left out)
    choices: tuple[str, ...] | None = None


# Hydra 1.3's options (hydra/_internal/utils.py, get_args_parser); tests/test_launch.py checks this list against it.
OPTIONS = (
    Option("--help", "-h"),
    Option("--hydra-help"),
    Option("--version"),
    Option("--cfg", "-c", "value", ("job", "hydra", "all")),
    Option("--resolve"),
    Option("--package", "-p", "value"),
    Option("--run", "-r"),
    Option("--multirun", "-m"),
    Option("--shell-completion", "-sc"),
    Option("--config-path", "-cp", "value"),
    Option("--config-name", "-cn", "value"),
    Option("--config-dir", "-cd", "value"),
    Option("--experimental-rerun", None, "value"),
    Option("--info", "-i", "optional", ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")),
)
BY_NAME = {name: option for option in OPTIONS for name in (option.long, option.short) if name}

# options clrelu refuses, and why
REFUSED = {
    "--experimental-rerun": "it unpickles a file, and unpickling can run any code; clrelu reads no such file",
    "--config-path": "clrelu runs its own config (conf/config.yaml), whose checks keep run folders safe",
    "--config-name": "clrelu runs its own config (conf/config.yaml), whose checks keep run folders safe",
    "--config-dir": "add a folder of your own configs with hydra.searchpath=[file:///absolute/folder] instead",
}


@dataclass(frozen=True)
class CommandLine:
    """What `clrelu run` was asked: Hydra's options by long name (flags as True), and the overrides."""

    options: dict[str, str | bool]
    overrides: list[str]

    @property
    def multirun(self) -> bool:
        return bool(self.options.get("--multirun"))

    @property
    def runs(self) -> bool:
        """Whether Hydra will run jobs (and so write folders), rather than print something and stop."""
        shows = ("--help", "--hydra-help", "--version", "--cfg", "--shell-completion", "--info")
        return not any(self.options.get(name) for name in shows)

    def for_hydra(self, extra_overrides: list[str] = ()) -> list[str]:
        """The command line to hand Hydra: every option as `--long` or `--long=value`, then the overrides."""
        words = []
        for name, value in self.options.items():
            words.append(name if value is True else f"{name}={value}")
        return [*words, *self.overrides, *extra_overrides]


def _option_word(word: str) -> tuple[Option, str | None] | None:
    """The option `word` names exactly (with its `=value` part, if any), or None."""
    if word in BY_NAME:
        return BY_NAME[word], None
    name, equals, value = word.partition("=")
    if equals and name.startswith("--") and name in BY_NAME and BY_NAME[name].takes != "flag":
        return BY_NAME[name], value
    return None


def valid_options() -> str:
    return ", ".join(o.long + (f"/{o.short}" if o.short else "") for o in OPTIONS if o.long not in REFUSED)


def parse(arguments: list[str]) -> CommandLine:
    """Read `clrelu run`'s arguments; a ConfigError names a word that is not an option spelled in full, an
    option clrelu refuses, or a value an option cannot take."""
    options: dict[str, str | bool] = {}
    overrides: list[str] = []
    words = list(arguments)
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if not word.startswith("-"):
            overrides.append(word)
            continue
        found = _option_word(word)
        if found is None:
            raise ConfigError(f"{word}: not an option of clrelu run (options are spelled in full: {valid_options()})")
        option, value = found
        if option.long in REFUSED:
            raise ConfigError(f"{option.long}: refused; {REFUSED[option.long]}")
        if option.takes == "flag":
            value = True
        elif value is None and option.takes == "value":
            if index == len(words) or words[index].startswith("-"):
                raise ConfigError(f"{word}: needs a value")
            value = words[index]
            index += 1
        elif value is None:  # an optional value: the next word when it is one of the choices
            if index < len(words) and option.choices and words[index] in option.choices:
                value = words[index]
                index += 1
            else:
                value = True
        if option.choices and value is not True and value not in option.choices:
            raise ConfigError(f"{option.long}={value}: unknown choice; valid choices are {', '.join(option.choices)}")
        options[option.long] = value
    return CommandLine(options, overrides)


def loader():
    """Hydra's config loader over clrelu's config folder (inside `hydra.initialize_config_dir`)."""
    from hydra.core.global_hydra import GlobalHydra

    return GlobalHydra.instance().config_loader()


def check_option_names(overrides: list[str]) -> None:
    """Refuse a config group option that is a path (`model=../stream/synthetic`), also among a sweep's values,
    naming the group's options. Inside `hydra.initialize_config_dir`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    config_loader = loader()
    groups = set(config_loader.list_groups(""))
    for override in OverridesParser.create().parse_overrides(overrides):
        group = override.key_or_group
        if not (group in groups or group.startswith("hydra/")) or override.is_delete():
            continue
        if override.is_sweep_override():
            values = list(override.sweep_string_iterator()) if override.is_discrete_sweep() else []
        else:
            values = [override.get_value_element_as_str()]
        for value in values:
            if "/" in value or "\\" in value or value.startswith(".."):
                options = config_loader.get_group_options(group)
                raise ConfigError(f"{group}={value}: a config option is a name, not a path; valid choices are "
                                  f"{', '.join(options)}")
