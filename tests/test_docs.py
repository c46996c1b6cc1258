"""Every command in README.md and docs/ runs, and says what the page says it prints; every path they name exists.

How a page's code blocks are checked, in order, in one scratch folder per page (with ../shared/data pointing at
$CLRELU_DATA, and scripts/ and examples/ beside it, as in a checkout):

- ```bash blocks: each command runs (`clrelu ...` in this process through clrelu.cli.main, as faithful as a fresh
  process for everything but launchers, kills and locks, which get a real process); `pip install` lines are not
  run but must be what CI runs (.ci/run) or name extras that exist; a line of .ci/run is left to CI.
- ```console blocks: each `$ command` runs and must print the lines below it (timings, timestamps and process ids
  aside); `# killed after task N` after a command kills it there; `&` runs it in the background.
- ```python blocks run in this process.
- ```text blocks are output: `<!-- docs-test: output of: COMMAND -->` after one makes the test run COMMAND (or
  take the output of the same command or python block just above) and compare; `contents of: GLOB` compares a
  file the commands wrote.
- After a block, `<!-- docs-test: reduced OVERRIDES -->` marks long commands: each `clrelu run` of the block is
  composed as written (the points of its sweep) and run with OVERRIDES (each replaces the same key, or is added;
  `without:KEY` drops the override of KEY);
  a block without `clrelu run` gets OVERRIDES added to its scripts' arguments. `compose only: WHY` only composes
  the block's commands; `not run: WHY` skips the block.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
import runpy
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import has_dataset

from clrelu.cli import main

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
CI = (REPO / ".ci" / "run").read_text()
CI_LINES = {line.strip() for line in CI.splitlines()}
MARKER = re.compile(r"^<!-- docs-test: (?P<kind>reduced|compose only|not run|output of|contents of):? ?(?P<arg>.*?) -->$")
GENERATED = "reference/configuration.md"  # written by scripts/config_reference.py when the site is built
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\w*)")


@dataclass
class Block:
    lang: str
    text: str
    line: int
    marker: tuple[str, str] | None = None


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a page, each with the docs-test marker right after it, if any."""
    found: list[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start, indent = i, len(fence["indent"])
        i += 1
        body = []
        while i < len(lines) and not lines[i].strip().startswith("```"):
            body.append(lines[i][indent:])
            i += 1
        block = Block(fence["lang"], "\n".join(body), start + 1)
        marker = MARKER.match(lines[i + 1].strip()) if i + 1 < len(lines) else None
        if marker:
            block.marker = (marker["kind"], marker["arg"])
        found.append(block)
        i += 1
    return found


def commands(text: str) -> list[str]:
    """The commands of a bash block: one a line, `\\` continuing a line."""
    return [line.strip() for line in text.replace("\\\n", " ").splitlines() if line.strip()]


def console(text: str) -> list[tuple[str, list[str]]]:
    """The `$ command` lines of a console block, each with the lines it prints."""
    found: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            found.append((line[2:], []))
        elif found:
            found[-1][1].append(line)
    return found


def normalised(text: str) -> str:
    """Output without what changes from run to run: timings, timestamps, process ids, trailing spaces."""
    text = re.sub(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", "<when>", text)
    text = re.sub(r"(<when>[^\s/]*)_[0-9a-f]{6}\b", r"\1_<suffix>", text)  # a default folder's random suffix
    text = re.sub(r"\[\d{4}-\d\d-\d\d [\d:,]+\]", "[<when>]", text)
    text = re.sub(r"\(train [\d.]+ s, eval [\d.]+ s\)", "(train <s> s, eval <s> s)", text)
    text = re.sub(r"pid \d+", "pid <n>", text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def override_key(arg: str) -> str | None:
    if "=" not in arg or arg.startswith("-"):
        return None
    return arg.split("=", 1)[0].lstrip("+~")


def reduce(args: list[str], reduced: list[str]) -> list[str]:
    """`args` with each of `reduced` replacing the override of the same key, or added; `without:KEY` removes the
    override of KEY."""
    args = list(args)
    for extra in reduced:
        if extra.startswith("without:"):
            args = [a for a in args if override_key(a) != extra.removeprefix("without:")]
            continue
        key = override_key(extra)
        same = [i for i, a in enumerate(args) if key is not None and override_key(a) == key]
        if same:
            args[same[0]] = extra
        else:  # before Hydra's own flags, which take the words after them
            flags = [i for i, a in enumerate(args) if a in ("--cfg", "--help", "--info")]
            args.insert(flags[0] if flags else len(args), extra)
    return args


def compose_sweep(args: list[str]) -> int:
    """Compose `clrelu run ARGS` for the points of its sweep: every point when there are at most 12, else enough
    points that every value of every swept key is composed at least once; the number of configs composed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from clrelu.config import compose

    overrides = [a for a in args if a not in ("-m", "--multirun", "--help", "--cfg", "job")]
    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for text, override in zip(overrides, parsed):
        if override.is_interval_sweep():  # an Optuna interval: composed at both ends
            key = text.split("=", 1)[0]
            choices.append([f"{key}={override.value().start}", f"{key}={override.value().end}"])
        elif override.is_sweep_override():
            key = text.split("=", 1)[0]
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([text])
    product = list(itertools.product(*choices))
    if len(product) > 12:
        longest = max(len(c) for c in choices)
        product = [tuple(c[i % len(c)] for c in choices) for i in range(longest)]
    for point in product:
        cfg, _ = compose(list(point))
        OmegaConf.to_container(cfg, resolve=True)
    return len(product)


@dataclass
class Shell:
    """A scratch checkout where a page's commands run one after another."""

    work: Path
    env: dict
    outputs: dict = field(default_factory=dict)
    background: list = field(default_factory=list)
    last_start: float = 0.0

    def run(self, line: str, expect_error: bool = False) -> str:
        """Run one command line as the page gives it; its output (stdout and stderr, in order)."""
        killed = re.search(r"#\s*killed after task (\d+)\s*$", line)
        words = shlex.split(line, comments=True)
        in_background = words[-1] == "&"
        words = [w for w in words if w != "&"]
        env = dict(self.env)
        assigned = set()
        while words and re.match(r"^[A-Z_]+=", words[0]):
            name, value = words.pop(0).split("=", 1)
            env[name] = value
            assigned.add(name)
        added_paths = [str(self.work / p) for p in env.pop("PYTHONPATH").split(os.pathsep)] if "PYTHONPATH" in assigned \
            else []
        env["PYTHONPATH"] = self.env["PYTHONPATH"]
        if words[:3] == ["python", "-m", "clrelu.cli"]:
            words = ["clrelu", *words[3:]]
        if words[0] == "clrelu" and words[1] == "run" and not any(w.startswith("hydra.run.dir") for w in words):
            self._next_second()  # two runs started in one second would share a timestamped folder
        needs_process = killed or in_background or any(w.startswith("hydra/launcher=") for w in words)
        if words[0] == "clrelu" and not needs_process:
            output, code = self._in_process(lambda: main(words[1:]), env, added_paths)
        elif words[:2] == ["python", "-c"] and len(words) == 3:  # Python code: run here, like a python block
            output, code = self._in_process(lambda: exec(compile(words[2], line, "exec"), {}) or 0, env, added_paths)
        elif words[0] == "python" and words[1].startswith("scripts/"):  # a script, run here as its own __main__
            sys.argv = [str(self.work / words[1]), *words[2:]]
            output, code = self._in_process(lambda: runpy.run_path(sys.argv[0], run_name="__main__") and 0, env,
                                            added_paths)
        else:
            argv = [sys.executable, "-m", "clrelu.cli", *words[1:]] if words[0] == "clrelu" else words
            if words[0] == "python":
                argv = [sys.executable, *words[1:]]
            if words[0] not in ("clrelu", "python"):
                argv = ["bash", "-c", " ".join(shlex.quote(w) for w in words)]
            if killed or in_background:
                return self._start(argv, env, int(killed[1]) if killed else None)
            done = subprocess.run(argv, cwd=self.work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, timeout=900)
            output, code = done.stdout, done.returncode
        assert (code != 0) == expect_error, f"`{line}` exited with {code}:\n{output[-3000:]}"
        self.outputs[line] = output
        return output

    def _next_second(self) -> None:
        while int(time.time()) == int(self.last_start):
            time.sleep(0.05)
        self.last_start = time.time()

    def _in_process(self, command, env: dict, paths: list[str]) -> tuple[str, int]:
        """Run `command()` in this process as if in a process of its own started in the scratch folder with `env`
        and `paths` before the others on its Python path (what its PYTHONPATH adds): its output and exit code."""
        import torch

        threads, saved_env, saved_path = torch.get_num_threads(), dict(os.environ), list(sys.path)
        saved_argv = list(sys.argv)
        sys.path[:0] = paths
        torch.set_num_threads(1)  # threads do not change what a run computes; one keeps a shared machine quiet
        buffer = io.StringIO()
        os.environ.clear()
        os.environ.update(env)
        cwd = os.getcwd()
        os.chdir(self.work)
        try:
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                try:
                    code = command()
                except SystemExit as exc:  # Hydra's --help ends with sys.exit(0)
                    code = exc.code or 0
        finally:
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(saved_env)
            sys.argv, sys.path[:] = saved_argv, saved_path
            torch.set_num_threads(threads)
        return buffer.getvalue(), code

    def _start(self, argv: list[str], env: dict, kill_after: int | None) -> str:
        """Start a process; kill it once it reports the end of task `kill_after`, or leave it running in the
        background once it has printed its first line (it then holds its folder's lock)."""
        process = subprocess.Popen(argv, cwd=self.work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        for line in process.stdout:
            if kill_after is None:
                self.background.append(process)
                return ""
            if line.startswith(f"after task {kill_after} "):
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=60)
                return ""
        raise AssertionError(f"{argv} ended before it could be killed or left running")

    def close(self) -> None:
        for process in self.background:
            process.kill()
            process.wait(timeout=60)


def scratch(tmp_path: Path) -> Shell:
    """A folder laid out like a checkout beside ../shared/data, for commands written to run from the checkout."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(Path(os.environ["CLRELU_DATA"]).resolve())
    work = tmp_path / "clrelu"
    work.mkdir()
    for name in ("scripts", "examples"):
        if (REPO / name).exists():
            (work / name).symlink_to(REPO / name)
    (work / "docs" / "results").mkdir(parents=True)  # where the results pages' figures are written
    env = {**os.environ, "CLRELU_DATA": str(tmp_path / "shared" / "data"),
           "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return Shell(work, env)


def check_pip(line: str) -> None:
    """A `pip install` line is not run here: either CI runs it as written, or each part names extras that exist
    and a torch that CI installs (or PyTorch's CPU wheel index)."""
    if line in CI_LINES:
        return
    pyproject = (REPO / "pyproject.toml").read_text()
    section = pyproject.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    extras = set(re.findall(r"^([\w-]+) = \[", section, flags=re.MULTILINE))
    assert {"test", "vision", "docs"} <= extras
    for part in line.split("&&"):
        words = shlex.split(part)
        if words[:2] != ["pip", "install"]:
            continue
        for word in words[2:]:
            named = re.match(r"^\.\[(.*)\]$", word)
            if named:
                assert set(named[1].split(",")) <= extras, f"`{line}`: no such extra in pyproject.toml"
            elif word.startswith(("torch==", "torchvision==")):
                assert word in CI, f"`{line}`: {word} is not what CI installs"
            else:
                assert word in ("-e", ".", "torch", "--index-url", "https://download.pytorch.org/whl/cpu"), \
                    f"`{line}`: {word} is neither an extra nor a torch CI installs"


def run_page(path: Path, shell: Shell) -> None:
    page_blocks = blocks(path)
    python_output = None
    for block in page_blocks:
        kind, arg = block.marker or (None, "")
        where = f"{path.relative_to(REPO)}:{block.line}"
        if kind == "not run":
            assert arg, f"{where}: say why the block is not run"
            continue
        if block.lang in ("bash", "console"):
            pairs = console(block.text) if block.lang == "console" else [(c, None) for c in commands(block.text)]
            block_runs = any(re.search(r"\bclrelu run\b", c) for c, _ in pairs)  # reduced applies to those, else scripts
            for line, expected in pairs:
                if "pip install" in line:
                    check_pip(line)
                    continue
                if line in CI_LINES:
                    continue  # CI runs it as written
                words = shlex.split(line, comments=True)
                clrelu_run = "clrelu" in words and words[words.index("clrelu") + 1] == "run"
                if kind in ("reduced", "compose only") and clrelu_run:
                    args = words[words.index("clrelu") + 2:]
                    assert compose_sweep(args) >= 1, where
                    if kind == "compose only":
                        continue
                if kind == "compose only":
                    raise AssertionError(f"{where}: `{line}` cannot be checked by composing it")
                if kind == "reduced" and (clrelu_run or ("scripts/" in line and not block_runs)):
                    line = " ".join(shlex.quote(w) for w in reduce(words, arg.split()))
                output = shell.run(line, expect_error=bool(expected) and any("clrelu: error" in e for e in expected))
                if expected:
                    assert normalised(output) == normalised("\n".join(expected)), \
                        f"{where}: `{line}` printed\n{output}\ninstead of\n" + "\n".join(expected)
        elif block.lang == "python":
            buffer = io.StringIO()
            cwd = os.getcwd()
            os.chdir(shell.work)
            try:
                with contextlib.redirect_stdout(buffer):
                    exec(compile(block.text, where, "exec"), {"__name__": "__docs__"})
            finally:
                os.chdir(cwd)
            python_output = buffer.getvalue()
        elif kind == "output of":
            if arg == "python":
                output = python_output
            else:
                output = shell.outputs.get(arg) or shell.run(arg)
            assert output is not None and normalised(output) == normalised(block.text), \
                f"{where}: `{arg}` printed\n{output}\ninstead of\n{block.text}"
        elif kind == "contents of":
            found = sorted(shell.work.glob(arg))
            assert len(found) == 1, f"{where}: {arg} matches {found}"
            assert found[0].read_text().strip() == block.text.strip(), f"{where}: {found[0]} holds\n{found[0].read_text()}"


needs_data = pytest.mark.skipif(not (has_dataset("MNIST") and has_dataset("FashionMNIST")),
                                reason="the docs' commands use MNIST and Fashion-MNIST: set CLRELU_DATA=../shared/data")


@needs_data
@pytest.mark.parametrize("path", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_command_of_the_page_runs_and_prints_what_it_says(path, tmp_path):
    shell = scratch(tmp_path)
    try:
        run_page(path, shell)
    finally:
        shell.close()


# --- what can be checked without running anything ------------------------------------------------------------------

PATH = re.compile(r"(?<![\w/.~-])((?:clrelu|conf|scripts|tests|docs|examples|hydra_plugins)/[\w./-]*[\w/])(?![\w*<])")


def named_paths(text: str) -> set[str]:
    return {m for m in PATH.findall(text) if "<" not in m and "*" not in m}


BARE_NAME = re.compile(r"(?<![/\w.-])([A-Za-z_][\w-]*\.(?:py|yaml))\b")  # a file named without its folder
WRITTEN_BY_HYDRA = {"multirun.yaml", "overrides.yaml", "hydra.yaml"}


def repository_file_names() -> set[str]:
    return {p.name for p in REPO.rglob("*") if ".git" not in p.parts and "site" not in p.parts}


@pytest.mark.parametrize("path", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_path_the_page_names_exists(path):
    text = path.read_text()
    missing = sorted(p for p in named_paths(text) if not (REPO / p).exists())
    names = set(BARE_NAME.findall(text)) - WRITTEN_BY_HYDRA
    missing += sorted(names - repository_file_names()) if names else []
    links = re.findall(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)", text)
    missing += sorted(link for link in links if not (path.parent / link).exists()
                      and (path.parent / link).resolve() != REPO / "docs" / GENERATED)
    assert not missing, f"{path.relative_to(REPO)} names what does not exist: {missing}"


@pytest.mark.parametrize("path", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_section_holds_content(path):
    """A heading is followed by more than another heading or a remark in parentheses (a placeholder)."""
    text = re.sub(r"```.*?```", "CODE", path.read_text(), flags=re.DOTALL)
    sections = re.split(r"^#{1,6} .*$", text, flags=re.MULTILINE)[1:]
    headings = re.findall(r"^#{1,6} (.*)$", text, flags=re.MULTILINE)
    for heading, body in zip(headings, sections):
        next_level = body.strip()
        if not next_level:
            continue  # a heading whose subsections hold its content
        assert not re.fullmatch(r"\(.*\)", next_level, flags=re.DOTALL), \
            f"{path.relative_to(REPO)}: section '{heading}' holds only a remark: {next_level[:100]}"


@pytest.mark.parametrize("path", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_commands_sit_in_fenced_blocks(path):
    """An indented command would escape the checks above: commands go in ```bash or ```console blocks."""
    inside = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip().startswith("```"):
            inside = not inside
        elif not inside and re.match(r"^ {4,}(\$ )?(clrelu|python|pip|CLRELU_DATA=)\b", line):
            raise AssertionError(f"{path.relative_to(REPO)}:{number}: a command outside a fenced block: {line}")


def test_the_readme_install_commands_are_what_ci_runs():
    readme = blocks(REPO / "README.md")
    install = [b.text for b in readme if b.lang == "bash" and "pip install" in b.text]
    assert install[:2] == [
        "pip install torch==2.13.0 && pip install -e . && CLRELU_DATA=../shared/data clrelu run model=mlp stream=split_mnist",
        'pip install torch==2.14.1 torchvision==0.29.1 && pip install -e ".[test,vision]" && pytest']
    assert all(command in CI_LINES for command in install[:2])


def test_the_readme_stays_short():
    assert len((REPO / "README.md").read_bytes()) <= 15_000


# --- the configuration reference, generated from conf/ ---------------------------------------------------------------

def config_reference():
    import importlib.util

    spec = importlib.util.spec_from_file_location("config_reference", REPO / "scripts" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_configuration_reference_has_every_key_of_every_yaml_with_its_default_and_comment():
    import yaml

    reference = config_reference()
    page = reference.render()
    sections = dict(re.findall(r"^File: `(conf/\S+)`\n(.*?)(?=^File: |\Z)", page, flags=re.MULTILINE | re.DOTALL))
    files = sorted((REPO / "conf").rglob("*.yaml"))
    assert sorted(sections) == [f.relative_to(REPO).as_posix() for f in files] and len(files) > 30
    for path in files:
        text = path.read_text()
        section = sections[path.relative_to(REPO).as_posix()]
        rows = {line.split(" | ")[0].strip("| `"): line for line in section.splitlines() if line.startswith("| `")}
        header, comments, flow = reference.read_comments(text)
        data = yaml.safe_load(text) or {}
        group = "/".join(path.relative_to(REPO / "conf").parts[:-1][:2 if "hydra" in path.parts else 1])
        prefix = reference.package(group, text)
        for key, value in reference.flatten({k: v for k, v in data.items() if k != "defaults"}, leaves=flow).items():
            full = f"{prefix}.{key}" if prefix else key
            assert full in rows, f"{path}: {full} is not in the reference"
            assert reference.shown(value) in rows[full], f"{path}: {full}'s default is not {value}"
        for key, comment in comments.items():  # every comment beside a key, in full
            assert comment.replace("|", "\\|") in section, f"{path}: the comment of {key}"
        for line in header:
            assert line.strip() in section, f"{path}: its description"


def test_the_reference_reads_comments_the_way_the_yaml_files_write_them():
    header, comments, flow = config_reference().read_comments(
        "# @package _global_\n# What the file is.\n#   clrelu run x=1\n"
        "a: 1        # one\nb:\n  c: [1, 2]  # two\n            # and more\n  d: |\n    # not a comment\n"
        "e: {x: 1, y: 2}  # three\n")
    assert header == ["What the file is.", "  clrelu run x=1"]
    assert comments == {"a": "one", "b.c": "two and more", "e": "three"} and flow == {"e"}


def test_the_reference_names_only_paths_that_exist():
    page = config_reference().render()
    assert not sorted(p for p in named_paths(page) if not (REPO / p).exists())
