"""The configuration reference page, generated from conf/: every group, option and key with its default and the
comment beside it in its YAML file, so that the page cannot drift from the configs.

    python scripts/config_reference.py > reference.md     # print the page

As an MkDocs hook (mkdocs.yml: `hooks: [scripts/config_reference.py]`) it adds the page to the site at build time as
reference/configuration.md, and `mkdocs serve` rebuilds it when a file under conf/ changes.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

CONF = Path(__file__).resolve().parent.parent / "conf"
PAGE = "reference/configuration.md"

# What each group is for; a group that is not named here is listed after these, with its options.
GROUPS = {
    "model": "The network: its hidden layers, activation and heads (`model=...`).",
    "stream": "The tasks, one after another: dataset, split or transform, scenario (`stream=...`).",
    "strategy": "How the trainer fights forgetting or loss of plasticity (`strategy=...`).",
    "optimizer": "The optimizer, built for every task over the parameters that learn (`optimizer=...`).",
    "experiment": "Presets that set model, stream, optimizer and trainer together (`experiment=...`).",
    "experiment_strategy": "A preset's settings for one strategy, loaded by itself when `experiment=E strategy=S` "
                           "has a file `E/S.yaml`; never chosen on the command line.",
}
KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w-]*):(?: +(?P<value>.*?))?(?: +# ?(?P<comment>.*))?$")
COMMENT_LINE = re.compile(r"^(?P<indent> *)# ?(?P<text>.*)$")


def option_files() -> list[tuple[str, str, Path]]:
    """(group, option, file) for every YAML file under conf/; the primary config is group ''."""
    found = []
    for path in sorted(CONF.rglob("*.yaml")):
        parts = path.relative_to(CONF).with_suffix("").parts
        if len(parts) == 1:
            found.append(("", parts[0], path))
            continue
        depth = 2 if parts[0] == "hydra" else 1
        found.append(("/".join(parts[:depth]), "/".join(parts[depth:]), path))
    return found


def read_comments(text: str) -> tuple[list[str], dict[str, str], set[str]]:
    """The comment lines above the first key (the file's description); each key's comment by dotted key (the
    comment on its line and the comment lines indented further below it); and the keys whose value is a flow
    mapping written on their line (`{task: 1, class: 2}`), one value in the reference."""
    header: list[str] = []
    comments: dict[str, str] = {}
    flow: set[str] = set()
    parents: list[tuple[int, str]] = []  # (indent, key) of the mappings that enclose the current line
    last: tuple[int, str] | None = None  # the latest key: (indent, dotted key)
    block_indent = None  # inside a block scalar (| or >): its key's indent
    for line in text.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        if block_indent is not None:
            if indent > block_indent:
                continue
            block_indent = None
        comment = COMMENT_LINE.match(line)
        if comment:
            if last is None:
                if not comment["text"].startswith("@package"):
                    header.append(comment["text"])
            elif indent > last[0]:
                comments[last[1]] = f"{comments.get(last[1], '')} {comment['text'].strip()}".strip()
            continue
        match = KEY_LINE.match(line)
        if not match:  # an item of a block list, or a flow value going on
            continue
        while parents and parents[-1][0] >= indent:
            parents.pop()
        dotted = ".".join([key for _, key in parents] + [match["key"]])
        if match["comment"]:
            comments[dotted] = match["comment"].strip()
        last = (indent, dotted)
        value = match["value"] or ""
        if value in ("|", ">", "|-", ">-"):
            block_indent = indent
        elif value.startswith("{"):
            flow.add(dotted)
        elif not value:
            parents.append((indent, match["key"]))
    return header, comments, flow


def flatten(node, prefix: str = "", leaves: set[str] = frozenset()) -> dict[str, object]:
    """A loaded YAML mapping as {"a.b": value}; lists, empty mappings and the mappings at `leaves` are values."""
    if isinstance(node, dict) and node and prefix[:-1] not in leaves:
        flat = {}
        for key, value in node.items():
            flat.update(flatten(value, f"{prefix}{key}.", leaves))
        return flat
    return {prefix[:-1]: node}


def package(group: str, text: str) -> str:
    """The dotted prefix of the file's keys in the composed config (Hydra's default package, or `@package`)."""
    declared = re.search(r"^# @package (\S+)", text, re.MULTILINE)
    if declared:
        return "" if declared[1] == "_global_" else declared[1]
    return group.replace("/", ".")


def shown(value) -> str:
    """A default as a table cell: YAML's flow style; a text of several lines by its length."""
    if isinstance(value, str) and "\n" in value:
        return f"*(a text of {value.count(chr(10))} lines)*"
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, allow_unicode=True).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    return f"`{text}`".replace("|", "\\|")


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def description(header: list[str]) -> list[str]:
    """The file's description as Markdown: its prose as a paragraph, lines indented by two spaces (commands) as a
    code block."""
    prose = " ".join(line for line in header if not line.startswith("  "))
    code = [line.strip() for line in header if line.startswith("  ")]
    return [prose, ""] + (["```bash", *code, "```", ""] if code else [])


def option_section(group: str, option: str, path: Path, level: str) -> list[str]:
    text = path.read_text()
    header, comments, flow = read_comments(text)
    data = yaml.safe_load(text) or {}
    prefix = package(group, text)
    relative = path.relative_to(CONF.parent).as_posix()
    title = f"`{group}={option}`" if group and group != "experiment_strategy" else f"`{option}`"
    lines = [f"{level} {title}", "", f"File: `{relative}`", "", *description(header)]
    defaults = data.pop("defaults", None)
    if defaults is not None:
        items = ", ".join(shown(item) for item in defaults)
        note = f" ({cell(comments['defaults'])})" if comments.get("defaults") else ""
        lines += [f"Defaults list: {items}{note}.", ""]
    flat = flatten(data, leaves=flow)
    if flat:
        lines += ["| key | default | comment |", "| --- | --- | --- |"]
        for key, value in flat.items():
            full = f"{prefix}.{key}" if prefix else key
            lines.append(f"| `{full}` | {shown(value)} | {cell(comments.get(key, ''))} |")
        lines.append("")
    return lines


def render() -> str:
    """The whole page, as Markdown."""
    files = option_files()
    found_groups = sorted({group for group, _, _ in files if group})
    order = [g for g in GROUPS if g in found_groups] + [g for g in found_groups if g not in GROUPS]
    lines = [
        "# Configuration reference",
        "",
        "Generated from the YAML files under `conf/` when the site is built: every config group, every option "
        "and every key, with its default and the comment beside it in the file. Choose an option with "
        "`clrelu run GROUP=OPTION`, change a key with `clrelu run KEY=VALUE` (for example `clrelu run "
        "model=sparse model.k=0.2`), and print the composed config of any command with `--cfg job`.",
        "",
        "Groups: " + ", ".join(f"[`{g}`](#{g.replace('/', '')})" for g in order) + ".",
        "",
        "## The primary config",
        "",
    ]
    for group, option, path in files:
        if not group:
            lines += option_section(group, option, path, "###")
    for group in order:
        lines += [f"## `{group}` {{#{group.replace('/', '')}}}", ""]
        if group in GROUPS:
            lines += [GROUPS[group], ""]
        options = [(option, path) for g, option, path in files if g == group]
        lines += ["Options: " + ", ".join(f"`{option}`" for option, _ in options) + ".", ""]
        for option, path in options:
            lines += option_section(group, option, path, "###")
    return "\n".join(lines)


def on_files(files, config):
    """MkDocs hook: add the generated page to the site."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render()))
    return files


def on_serve(server, config, builder):
    """MkDocs hook: `mkdocs serve` rebuilds the page when a config changes."""
    server.watch(str(CONF))
    return server


if __name__ == "__main__":
    print(render())
