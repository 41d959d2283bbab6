"""Every command and every option of the ``invarbench`` command line is documented.

The test walks the real Typer application (``typer.main.get_command(app)``) and collects

- every command path: the root ``invarbench``, each group (``invarbench results``) and each
  command (``invarbench results export``);
- every option of each of them by its long names (``--batch-size``; a ``--flag/--no-flag`` pair
  gives both), skipping ``--help`` and anything hidden.

The documentation is README.md plus docs/*.md. The rule it enforces, the stricter of the two
possible ones:

1. a command is documented when its full spelling, ``invarbench`` followed by its path
   (``invarbench results export``), appears in at least one of those files (the words may be
   separated by any whitespace, so a wrapped line counts; a bare ``export`` does not);
2. an option is documented when its long name appears, as a whole word (``--out`` is not found
   inside ``--output``), **in the same file** as its command's full spelling. An option named
   only in a file that never names its command does not count: a reader of that file could not
   tell which command it belongs to. (README's command-line section names every command with
   its options, so it satisfies this rule for all of them; docs/*.md add the detail.)

A second, stricter check covers README.md's own summary: the first code block under its
"## The command line" heading has one entry per command (a line ``invarbench PATH …``, continued
on indented lines), and each entry must list every option of its command and no option that the
command does not have. That block is generated from the application
(``python -m invarbench.cli.usage --write README.md``), and a third check fails while README.md's
copy differs from what the application gives now; the second one checks the generator.

A failure lists exactly what is missing. The test also asserts that every command and group has
a non-empty help text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from invarbench.cli import usage
from invarbench.cli.app import app
from invarbench.site.reference_table import replace_block

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _long_options(command) -> list[str]:
    names: list[str] = []
    for param in command.params:
        if getattr(param, "param_type_name", None) != "option" or getattr(param, "hidden", False):
            continue
        for name in (*param.opts, *param.secondary_opts):
            if name.startswith("--") and name != "--help" and name not in names:
                names.append(name)
    return names


def _collect() -> dict[str, tuple[object, list[str]]]:
    """{'invarbench results export': (command, ['--format', ...]), ...}"""
    root = typer.main.get_command(app)
    return {" ".join(("invarbench", *path)): (cmd, _long_options(cmd)) for path, cmd in usage.commands(root)}


def _spelling(command_name: str) -> re.Pattern[str]:
    words = r"\s+".join(re.escape(w) for w in command_name.split())
    return re.compile(rf"(?<![\w-]){words}(?![\w-])")


def _option(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")


def _texts() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in DOC_FILES}


def undocumented(commands: dict[str, tuple[object, list[str]]], texts: dict[str, str]) -> list[str]:
    """One line per command or option that the rule in the module docstring finds undocumented."""
    missing: list[str] = []
    for name, (_, options) in commands.items():
        naming = [f for f, text in texts.items() if _spelling(name).search(text)]
        if not naming:
            missing.append(f"command '{name}': named in none of {', '.join(texts)}")
            continue
        for option in options:
            if not any(_option(option).search(texts[f]) for f in naming):
                missing.append(
                    f"option '{name} {option}': absent from every file that names '{name}' ({', '.join(naming)})"
                )
    return missing


def readme_entries(readme: str, names: set[str]) -> dict[str, set[str]]:
    """{command name: the long options its entries list} from the README's command-line code block.
    An entry's command is the longest known command name its first words spell."""
    section = readme.split("\n## The command line\n", 1)
    assert len(section) == 2, "README.md has no '## The command line' section"
    block = re.search(r"^```[^\n]*\n(.*?)^```", section[1], re.DOTALL | re.MULTILINE)
    assert block, "README.md's command-line section has no code block"
    entries: list[list[str]] = []
    for line in block.group(1).splitlines():
        if line.startswith("invarbench"):
            entries.append([line])
        elif line.strip() and line[0].isspace() and entries:
            entries[-1].append(line)
    listed: dict[str, set[str]] = {}
    for lines in entries:
        text = " ".join(lines)
        words = text.split()
        name = "invarbench"
        for word in words[1:]:
            if f"{name} {word}" not in names:
                break
            name = f"{name} {word}"
        listed.setdefault(name, set()).update(re.findall(r"(?<![\w-])--[a-z][\w-]*", text))
    return listed


def readme_mismatches(commands: dict[str, tuple[object, list[str]]], readme: str) -> list[str]:
    """One line per command missing from the README's block, option missing from its command's
    entry, or option listed there that the command does not have."""
    listed = readme_entries(readme, set(commands))
    problems: list[str] = []
    for name, (cmd, options) in commands.items():
        is_group = getattr(cmd, "commands", None) is not None
        if name not in listed:
            if not is_group or options:  # a group without options is covered by its commands' entries
                problems.append(f"'{name}': no entry in README.md's command-line code block")
            continue
        problems += [f"'{name} {o}': not in its README.md entry" for o in options if o not in listed[name]]
        problems += [
            f"'{name} {o}': listed in README.md but not an option of the command"
            for o in sorted(listed[name] - set(options))
        ]
    return problems


def test_the_walk_sees_the_whole_command_line():
    """Guard against a walk that finds nothing and so passes vacuously."""
    commands = _collect()
    for name in (
        "invarbench",
        "invarbench eval",
        "invarbench pack",
        "invarbench results export",
        "invarbench cards new",
        "invarbench db upgrade",
        "invarbench site build",
        "invarbench suites show",
    ):
        assert name in commands
    assert "--batch-size" in commands["invarbench eval"][1]
    assert "--version" in commands["invarbench"][1]
    assert "--help" not in {o for _, opts in commands.values() for o in opts}
    assert sum(len(opts) for _, opts in commands.values()) >= 50


def test_every_command_has_help_text():
    empty = [name for name, (cmd, _) in _collect().items() if not (cmd.help or "").strip()]
    assert not empty, "commands without help text: " + ", ".join(empty)


def test_every_command_and_option_is_documented():
    missing = undocumented(_collect(), _texts())
    assert not missing, (
        f"{len(missing)} undocumented command(s)/option(s) (document them in README.md's command-line "
        "section and in docs/*.md):\n  " + "\n  ".join(missing)
    )


def test_the_readme_command_line_lists_every_command_with_its_options():
    problems = readme_mismatches(_collect(), (ROOT / "README.md").read_text(encoding="utf-8"))
    assert not problems, (
        f"{len(problems)} mismatch(es) between the command line and README.md's command-line code block:\n  "
        + "\n  ".join(problems)
    )


def test_the_rule_catches_an_undocumented_option_and_command():
    """The check can fail: a made-up option, or a made-up command, is reported by name."""
    commands = _collect()
    texts = _texts()
    cmd, options = commands["invarbench results export"]
    commands["invarbench results export"] = (cmd, [*options, "--made-up-option"])
    commands["invarbench made-up-command"] = (cmd, [])
    missing = undocumented(commands, texts)
    assert any("'invarbench results export --made-up-option'" in line for line in missing)
    assert any("'invarbench made-up-command'" in line for line in missing)
    # An option named only in a file that never names its command does not count.
    only_elsewhere = {"a.md": "invarbench results export --format", "b.md": "--out"}
    expected = (
        "option 'invarbench results export --out': absent from every file that names 'invarbench results export' (a.md)"
    )
    assert undocumented({"invarbench results export": (cmd, ["--format", "--out"])}, only_elsewhere) == [expected]
    # Whole words only: '--out' is not found inside '--output', nor 'results export' inside 'results exporter'.
    assert undocumented({"invarbench results export": (cmd, ["--out"])}, {"a.md": "invarbench results export --output"})
    assert undocumented({"invarbench results export": (cmd, [])}, {"a.md": "invarbench results exporter"})


def test_the_readme_check_catches_missing_and_stale_options():
    """The README check can fail: a missing entry, a missing option and a stale option are named;
    an option on an entry's continuation line counts, and a group needs no entry of its own."""
    commands = _collect()
    group, _ = commands["invarbench results"]
    export, _ = commands["invarbench results export"]
    upgrade, _ = commands["invarbench db upgrade"]
    fake = {
        "invarbench results": (group, []),
        "invarbench results export": (export, ["--format", "--out", "--db"]),
        "invarbench db upgrade": (upgrade, ["--db"]),
    }
    readme = (
        "# x\n\n## The command line\n\n```\n"
        "invarbench results export [--fromat json|csv] [--out PATH]\n"
        "                          [--db URL]\n"
        "```\n"
    )
    assert readme_mismatches(fake, readme) == [
        "'invarbench results export --format': not in its README.md entry",
        "'invarbench results export --fromat': listed in README.md but not an option of the command",
        "'invarbench db upgrade': no entry in README.md's command-line code block",
    ]


def test_the_readme_command_block_is_the_one_the_application_gives():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert usage.command_block() in readme, (
        "README.md's command-line block is stale: regenerate it with python -m invarbench.cli.usage --write README.md"
    )


def test_the_command_block_follows_the_application():
    """A new command, option, argument or metavar shows in the block; the markers let --write replace it."""
    toy = typer.Typer(add_completion=False)

    @toy.command("run")
    def run(
        target: Annotated[str, typer.Argument()],
        count: Annotated[int, typer.Option(help="How many.")] = 1,
        out: Annotated[Path | None, typer.Option(metavar="FILE.txt", help="Where.")] = None,
        fast: Annotated[bool, typer.Option(help="Hurry.")] = False,
    ) -> None:
        """Run."""

    @toy.command("list")
    def list_(data_dir: Annotated[Path | None, typer.Option(help="Folder.")] = None) -> None:
        """List."""

    block = usage.command_block(toy)
    lines = block.splitlines()
    assert lines[0] == usage.START and lines[-1] == usage.END
    assert lines[2:-2] == [
        "invarbench run TARGET [--count N] [--out FILE.txt] [--fast/--no-fast]",
        "invarbench list [--data-dir DIR]",
    ]
    readme = f"# x\n\n{usage.START}\n```\nold\n```\n{usage.END}\n\nafter\n"
    assert replace_block(readme, block) == f"# x\n\n{block}\n\nafter\n"
