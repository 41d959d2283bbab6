"""Hostile documents around evaluation, as a stranger's pull request brings them: model cards (YAML
anchors and aliases, deep nesting, NaN and infinity in any number), site builds into a folder that is
in use or is not a site, a refused ``pack``, a Git LFS pointer in place of a model file, a read-only
database folder, and usage errors. Each is refused with one line that names the problem (the field
and the file), exit code 1 (2 for usage errors, click's convention), and nothing written or changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import types
import typing
from pathlib import Path

import pydantic
import pytest
import typer
import yaml
from cards_helpers import (
    card_dict,
    mnist_card_dict,
    mnist_model,
    safetensors_bytes,
    sha256_bytes,
    tiny_model,
    write_card,
)
from typer.testing import CliRunner

from invarbench.cards.catalog import MAX_CARD_BYTES, load_card, parse_card_yaml
from invarbench.cards.schema import ModelCard
from invarbench.cli import app
from invarbench.errors import ValidationError
from invarbench.site import publish
from invarbench.site.build import build_site
from invarbench.store import Store
from invarbench.store.results_files import import_path

runner = CliRunner()
RESULTS = Path(__file__).resolve().parents[1] / "leaderboard" / "results"
ALIASES = "YAML anchors and aliases (&name, *name) are not allowed in model cards: write each value out"


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes (what "nothing changed" compares)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- YAML anchors, aliases and nesting ------------------------------------------------------------

# 1 KB that a plain YAML loader expands to 9**9 (387 million) strings: "billion laughs".
ALIAS_BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_an_alias_bomb_card_is_one_line_in_validate_show_and_list_at_once(tmp_path):
    assert len(ALIAS_BOMB) < 1024
    root = tmp_path / "cards"
    path = write_card(root, mnist_card_dict("good"), safetensors_bytes(mnist_model()))
    bomb = path.parent / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB + "id: mnist5k/bomb\nnotes: *i\n")
    line = f"Error: invalid YAML in model card {bomb} (line 1, column 4): {ALIASES}\n"
    started = time.monotonic()
    validate = invoke("cards", "validate", bomb, "--cards-dir", root)
    show = invoke("cards", "show", bomb, "--cards-dir", root)
    listing = invoke("cards", "list", "--cards-dir", root)
    assert time.monotonic() - started < 30  # a plain loader takes minutes and gigabytes
    assert (validate.exit_code, show.exit_code, listing.exit_code) == (1, 1, 1)
    assert validate.stderr == line + "1 of 1 card(s) failed.\n"
    assert show.stderr == line
    assert listing.stderr.endswith(line)
    assert "valid" not in validate.stdout


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("id: &x mnist5k/a\nname: x\n", "(line 1, column 5)"),  # an anchor alone
        ("base: {eps: 0.1}\ntraining: {<<: *base}\n", "(line 2, column 16)"),  # an alias without its anchor
        ("base: &b {method: standard}\ntraining:\n  <<: *b\n", "(line 1, column 7)"),  # a merge key
    ],
)
def test_anchors_and_aliases_are_refused_wherever_they_are(tmp_path, text, where):
    path = tmp_path / "card.yaml"
    path.write_text(text)
    with pytest.raises(ValidationError) as info:
        load_card(path)
    assert str(info.value) == f"invalid YAML in model card {path} {where}: {ALIASES}"


def test_parse_card_yaml_names_the_document_it_was_given():
    # What a results file's card_yaml is parsed with: the same guards, the error naming the results file.
    where = "leaderboard/results/x.json (card_yaml)"
    with pytest.raises(ValidationError) as info:
        parse_card_yaml(ALIAS_BOMB, where)
    assert str(info.value) == f"invalid YAML in model card {where} (line 1, column 4): {ALIASES}"
    with pytest.raises(ValidationError) as info:
        parse_card_yaml("notes: " + "x" * MAX_CARD_BYTES, where)
    assert str(info.value) == f"model card {where} is 65,543 bytes; a card is at most 65,536 bytes"
    assert parse_card_yaml(yaml.safe_dump(card_dict()), where) == card_dict()


def test_deep_nesting_is_refused_without_a_recursion_error(tmp_path):
    path = tmp_path / "card.yaml"
    path.write_text("notes: " + "[" * 60_000)
    with pytest.raises(ValidationError) as info:
        load_card(path)
    assert str(info.value) == (
        f"invalid YAML in model card {path} (line 1, column 39): nested more than 32 levels deep: a card is a "
        "few levels"
    )


# --- every float of a card is finite --------------------------------------------------------------

# A valid card that gives every float field of the schema a value (the test below fails when a new
# float field has none here, so that no float field goes untested).
ORIGIN = {
    "repository": "https://github.com/someone/models",
    "commit": "0123456789abcdef0123456789abcdef01234567",
    "path": "weights/tiny.pt",
    "sha256": "1" * 64,
    "license": "MIT",
    "authors": "Someone",
    "training": "not stated upstream",
    "reported": [
        {"metric": "clean accuracy", "value": 99.0, "unit": "percent", "split": "MNIST test set", "where": "README"}
    ],
}


def _every_float_card() -> dict:
    data = card_dict(
        training={"method": "pgd-at", "norm": "linf", "eps": 0.1},
        preprocessing={"input_size": [1, 8, 8], "mean": [0.5], "std": [0.25]},
    )
    if "origin" in ModelCard.model_fields:
        data["origin"] = json.loads(json.dumps(ORIGIN))
    return data


def _float_paths(model: type[pydantic.BaseModel], prefix: tuple = ()) -> list[tuple]:
    """The path of every float the schema takes, found by walking the pydantic models' annotations.

    A path is a tuple of field names, with 0 for "the first item of a list"."""

    def walk(annotation: object, path: tuple) -> list[tuple]:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            return walk(typing.get_args(annotation)[0], path)
        if origin in (typing.Union, types.UnionType):
            return [p for arg in typing.get_args(annotation) for p in walk(arg, path)]
        if origin is list:
            return walk(typing.get_args(annotation)[0], (*path, 0))
        if origin is typing.Literal or annotation in (int, str, bool, type(None)) or origin is dict:
            return []  # dict[str, object]: architecture kwargs, checked below
        if annotation is float:
            return [path]
        if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
            return _float_paths(annotation, path)
        raise AssertionError(f"the schema has a field of a type this test does not know: {path} {annotation!r}")

    return [p for name, field in model.model_fields.items() for p in walk(field.annotation, (*prefix, name))]


def _set(data: dict, path: tuple, value: object) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def _get(data: dict, path: tuple) -> object:
    for part in path:
        data = data[part]
    return data


FLOAT_PATHS = _float_paths(ModelCard)


def test_the_schema_walk_finds_the_known_float_fields():
    known = {("training", "eps"), ("preprocessing", "mean", 0), ("preprocessing", "std", 0)}
    assert known <= set(FLOAT_PATHS)
    for path in FLOAT_PATHS:  # every float field has a value in the card the next test mangles
        assert isinstance(_get(_every_float_card(), path), float), f"give {path} a value in _every_float_card"


@pytest.mark.parametrize("path", FLOAT_PATHS, ids=lambda p: ".".join(map(str, p)))
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), "nan", "inf", "-Infinity"])
def test_nan_and_infinity_are_refused_in_every_float_field(tmp_path, path, bad):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(_every_float_card()))
    load_card(good)  # valid as it is
    data = _every_float_card()
    _set(data, path, bad)
    card = tmp_path / "card.yaml"
    card.write_text(yaml.safe_dump(data))
    with pytest.raises(ValidationError) as info:
        load_card(card)
    message = str(info.value)
    field = ".".join(map(str, path))  # e.g. preprocessing.std.0
    assert message.startswith(f"invalid model card {card}: {field}"), message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"hidden": float("nan")}, "hidden must be a finite number, got nan"),
        ({"extra": {"scales": [1.0, float("-inf")]}}, "extra.scales[1] must be a finite number, got -inf"),
    ],
)
def test_nan_and_infinity_are_refused_in_architecture_kwargs(tmp_path, kwargs, named):
    data = card_dict()
    data["architecture"]["kwargs"].update(kwargs)
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValidationError) as info:
        load_card(path)
    assert str(info.value) == (
        f"invalid model card {path}: architecture.kwargs: {named} (NaN and infinity are not numbers)"
    )


def test_a_nan_std_never_reaches_eval(tmp_path):
    root = tmp_path / "cards"
    data = mnist_card_dict("nanstd", preprocessing={"input_size": [1, 28, 28], "mean": [0.1307], "std": [0.3081]})
    path = write_card(root, data, safetensors_bytes(mnist_model()))
    text = path.read_text().replace("0.3081", ".nan")
    assert ".nan" in text
    path.write_text(text)
    db = tmp_path / "r.db"
    result = invoke("eval", "mnist5k/nanstd", "--cards-dir", root, "--db", f"sqlite:///{db}", "--limit", 2)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: invalid model card {path}: preprocessing.std.0: must be a finite number, got nan (NaN and "
        "infinity are not numbers a card can hold)\n"
    )
    assert not db.exists() or Store(f"sqlite:///{db}").list_runs() == []


# --- atomic site builds ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Two databases of the published results: both reference models, and only lenet-standard."""
    if not RESULTS.is_dir():
        pytest.skip("no published results in this checkout")
    folder = tmp_path_factory.mktemp("stores")
    both = Store(f"sqlite:///{folder / 'both.db'}")
    import_path(both, RESULTS)
    one = Store(f"sqlite:///{folder / 'one.db'}")
    import_path(one, next((RESULTS / "mnist5k").glob("lenet-standard__*.json")))
    return both, one


def test_a_rebuild_leaves_nothing_of_the_earlier_build(stores, tmp_path):
    both, one = stores
    out = tmp_path / "site"
    build_site(both, out)
    withdrawn = sorted(p.relative_to(out) for p in out.rglob("*lenet-pgd-at*"))
    assert withdrawn, "the robust model has a page"
    (out / "stray.html").write_text("left by hand")
    index = build_site(one, out)
    assert index == out / "index.html"
    assert not any((out / p).exists() for p in withdrawn)
    assert not (out / "stray.html").exists()
    assert (out / publish.MARKER).is_file()
    # the folder holds exactly what a build into a new folder holds
    build_site(one, tmp_path / "fresh")
    assert tree(out) == tree(tmp_path / "fresh")
    # nothing left beside it but the lock file
    assert sorted(p.name for p in tmp_path.iterdir()) == [".fresh.lock", ".site.lock", "fresh", "site"]


def test_a_rebuild_without_renameat2_also_replaces_the_folder(stores, tmp_path, monkeypatch):
    both, one = stores
    out = tmp_path / "site"
    build_site(both, out)
    monkeypatch.setattr(publish, "_exchange", lambda a, b: False)
    build_site(one, out)
    build_site(one, tmp_path / "fresh")
    assert tree(out) == tree(tmp_path / "fresh")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".fresh.lock", ".site.lock", "fresh", "site"]


def test_a_second_build_while_one_writes_fails_with_one_line_and_changes_nothing(stores, tmp_path):
    both, _ = stores
    out = tmp_path / "site"
    build_site(both, out)
    before = tree(out)
    with publish.build_lock(out.resolve()):  # a build in progress
        result = invoke("site", "build", "--results", RESULTS, "--out", out)
    assert result.exit_code == 1
    assert result.stderr == f"Error: another site build is writing {out.resolve()}; wait for it or use another --out\n"
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".site.lock", "site"]


def test_a_folder_that_is_not_a_site_is_never_replaced(tmp_path):
    home = tmp_path / "home"
    (home / "notes").mkdir(parents=True)
    (home / "notes" / "thesis.tex").write_text("years of work")
    before = tree(home)
    result = invoke("site", "build", "--db", f"sqlite:///{tmp_path / 'r.db'}", "--out", home)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: --out {home} is not empty and is not an earlier site build (it has no .invarbench-site file), so "
        "the build will not replace it: give a new or empty folder; nothing was changed\n"
    )
    assert tree(home) == before
    a_file = tmp_path / "site.html"
    a_file.write_text("x")
    result = invoke("site", "build", "--db", f"sqlite:///{tmp_path / 'r.db'}", "--out", a_file)
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"Error: --out {a_file} is a file, not a folder: give a folder for the site; nothing was changed\n"
    )
    assert a_file.read_text() == "x"


def test_an_empty_folder_and_a_site_built_before_the_marker_are_replaced(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    empty = tmp_path / "empty"
    empty.mkdir()
    build_site(store, empty)
    assert (empty / "index.html").is_file()
    older = tmp_path / "older"
    older.mkdir()
    (older / "index.html").write_text("<!doctype html>\n<title>invarbench leaderboard</title>\n")
    (older / "gone.html").write_text("a withdrawn model")
    build_site(store, older)
    assert not (older / "gone.html").exists() and (older / publish.MARKER).is_file()


def test_a_build_that_fails_leaves_the_earlier_site_and_no_temporary_folder(tmp_path, monkeypatch):
    store = Store(f"sqlite:///{tmp_path / 'db' / 'r.db'}")
    out = tmp_path / "site"
    build_site(store, out)
    before = tree(out)

    def broken(store: Store, folder: Path, cards_dir: Path | None = None) -> Path:
        (folder / "index.html").write_text("<!doctype html>\n<p>half a page")
        raise RuntimeError("a template fails half-way")

    monkeypatch.setattr("invarbench.site.build.render_site", broken)
    with pytest.raises(RuntimeError):
        build_site(store, out)
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".site.lock", "db", "site"]


# --- pack, Git LFS pointers, a read-only database folder --------------------------------------------

DRIFTING = textwrap.dedent('''
    import torch
    from torch import nn

    class Drifting(nn.Module):
        """Its logits depend on a Python counter, which torch.export freezes at its value when traced."""

        calls = 0

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = nn.Linear(64, 3)

        def forward(self, x):
            Drifting.calls += 1
            return self.fc(x.flatten(1)) + Drifting.calls

    def build():
        return Drifting()
''')


def test_pack_leaves_no_file_it_refused(tmp_path, monkeypatch):
    (tmp_path / "drifting_net.py").write_text(DRIFTING)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "drifting_net", raising=False)
    out = tmp_path / "out" / "m.pt2"
    result = invoke("pack", "drifting_net:build", "--out", out, "--input-size", 1, 8, 8)
    sys.modules.pop("drifting_net", None)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the packed program disagrees with the original module")
    assert result.stderr.count("\n") == 1
    assert list(out.parent.iterdir()) == []  # neither the .pt2 nor its temporary folder


LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 247524\n"
)
LFS_FIX = (
    "is a Git LFS pointer for a 247,524-byte file, not the file itself: fetch the real file with 'git lfs pull' "
    "(after 'git lfs install'; or download it from the repository's web page), then retry"
)


def test_a_git_lfs_pointer_in_place_of_the_model_file_says_so(tmp_path):
    root = tmp_path / "cards"
    real = safetensors_bytes(mnist_model())
    path = write_card(root, mnist_card_dict("lfs"), real)  # the card pins the real file ...
    (path.parent / "lfs.safetensors").write_text(LFS_POINTER)  # ... a clone without Git LFS has the pointer
    line = f"Error: model card {path}: lfs.safetensors {LFS_FIX}\n"
    validate = invoke("cards", "validate", path, "--cards-dir", root)
    assert validate.exit_code == 1
    assert validate.stderr == line + "1 of 1 card(s) failed.\n"
    db = tmp_path / "r.db"
    evaluated = invoke("eval", "mnist5k/lfs", "--cards-dir", root, "--db", f"sqlite:///{db}", "--limit", 2)
    assert evaluated.exit_code == 1
    assert evaluated.stderr.endswith(f"model card {path}: lfs.safetensors {LFS_FIX}\n")
    assert evaluated.stderr.count("\n") == 1


def test_a_git_lfs_pointer_is_refused_by_cards_new_and_pack(tmp_path):
    pointer = tmp_path / "cards" / "mnist5k" / "tiny.safetensors"
    pointer.parent.mkdir(parents=True)
    pointer.write_text(LFS_POINTER)
    fields = ("--name", "Tiny", "--architecture", "lenet", "--training", "standard", "--license", "MIT")
    new = invoke(
        "cards",
        "new",
        "--id",
        "mnist5k/tiny",
        "--file",
        pointer,
        *fields,
        "--submitted-by",
        "me",
        "--no-input",
        "--cards-dir",
        tmp_path / "cards",
    )
    assert new.exit_code == 1
    assert new.stderr == f"Error: --file: tiny.safetensors {LFS_FIX}\n"
    assert not (pointer.parent / "tiny.yaml").exists()
    packed = invoke(
        "pack", "torch.nn:Identity", "--weights", pointer, "--out", tmp_path / "m.pt2", "--input-size", 1, 8, 8
    )
    assert packed.exit_code == 1
    assert packed.stderr == f"Error: --weights: tiny.safetensors {LFS_FIX}\n"
    assert not (tmp_path / "m.pt2").exists()


def test_a_real_model_file_is_not_taken_for_a_pointer(tmp_path):
    from invarbench.cards.checksum import lfs_pointer_size

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(safetensors_bytes(tiny_model()))
    text = tmp_path / "notes.txt"
    text.write_text("version https://git-lfs.github.com/spec/v1\n" + "x" * 2000)  # too long for a pointer
    pointer = tmp_path / "p"
    pointer.write_text(LFS_POINTER)
    assert (lfs_pointer_size(weights), lfs_pointer_size(text), lfs_pointer_size(pointer)) == (None, None, 247524)
    assert sha256_bytes(weights.read_bytes())  # and the file hashes as before


def _as_unprivileged(args: list[str]) -> subprocess.CompletedProcess:
    """Run the CLI as a user to whom the permission bits apply (root writes anywhere): as ``nobody``
    through util-linux's ``setpriv`` when the tests run as root."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: permission bits do not apply")
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    env = {**os.environ, "HOME": tempfile.gettempdir()}
    return subprocess.run(  # our own interpreter and CLI
        [*prefix, sys.executable, "-m", "invarbench", *args], capture_output=True, text=True, env=env, check=False
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_a_read_only_database_folder_is_named(tmp_path):
    base = Path(tempfile.mkdtemp(prefix="invarbench-ro-"))  # reachable by the unprivileged user
    try:
        os.chmod(base, 0o755)
        folder = base / "ro"
        folder.mkdir()
        Store(f"sqlite:///{folder / 'r.db'}").close()  # an existing database ...
        os.chmod(folder / "r.db", 0o666)
        os.chmod(folder, 0o555)  # ... in a folder nobody may write
        for db in (folder / "r.db", folder / "new.db"):
            result = _as_unprivileged(["results", "list", "--db", f"sqlite:///{db}"])
            assert result.returncode == 1, result.stderr
            assert result.stderr == (
                f"Error: the database folder {folder} is not writable: make it writable, or choose another --db "
                "(or $INVARBENCH_DB)\n"
            )
        result = _as_unprivileged(["results", "list", "--db", f"sqlite:///{folder / 'sub' / 'r.db'}"])
        assert result.returncode == 1
        assert result.stderr == (
            f"Error: cannot create the database folder {folder / 'sub'} (Permission denied): create it, or choose "
            "another --db (or $INVARBENCH_DB)\n"
        )
        assert sorted(p.name for p in folder.iterdir()) == ["r.db"]
    finally:
        os.chmod(base / "ro", 0o755)
        shutil.rmtree(base)


# --- usage errors: click's code 2, for every command ----------------------------------------------


def _commands(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    """Every command under ``group``, with its path (typer carries its own copy of click: duck-typed)."""
    found = []
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):
            found += _commands(command, (*prefix, name))
        else:
            found.append(((*prefix, name), command))
    return found


COMMANDS = _commands(typer.main.get_command(app))


def _options(command: object) -> list:
    """The command's options that take one value (not flags, not arguments)."""
    return [o for o in command.params if getattr(o, "is_flag", None) is False and o.nargs == 1]


def _bad_values(option: object) -> list[str]:
    """Values that the parser itself refuses for an integer ``option``: not an integer, below its minimum."""
    annotation = getattr(getattr(option, "type_descriptor", None), "annotation", None)
    if int not in (annotation, *typing.get_args(annotation)):
        return []
    low = getattr(option, "min", None)
    return ["2.5"] + ([str(low - 1)] if low is not None else [])


def test_the_command_walk_finds_every_command():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"eval", "pack", "site build", "site serve", "cards validate", "results import", "db status"} <= names
    checked = {(o.opts[0], value) for _, c in COMMANDS for o in _options(c) for value in _bad_values(o)}
    assert {("--limit", "0"), ("--limit", "2.5"), ("--port", "-1"), ("--port", "2.5")} <= checked


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_usage_errors_exit_with_code_2_in_every_command(path, command):
    result = invoke(*path, "--no-such-option")
    assert result.exit_code == 2, result.output
    assert "No such option: --no-such-option" in result.stderr
    for option in _options(command):
        for value in _bad_values(option):
            result = invoke(*path, option.opts[0], value)
            assert result.exit_code == 2, (option.opts[0], value, result.output)
            assert "Usage:" in result.stderr and option.opts[0] in result.stderr, result.stderr


def test_limit_0_and_friends_are_usage_errors_and_a_bad_card_is_an_error(tmp_path):
    for value in ("0", "-1", "2.5"):
        result = invoke("eval", "mnist5k/lenet-standard", "--limit", value)
        assert result.exit_code == 2, result.output
        assert "Invalid value for '--limit'" in result.stderr
    missing = invoke("eval", "mnist5k/no-such-model", "--cards-dir", tmp_path, "--limit", 2)
    assert missing.exit_code == 1
    assert missing.stderr.startswith("Error: unknown model 'mnist5k/no-such-model'.")
    assert missing.stderr.count("\n") == 1
