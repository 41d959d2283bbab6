"""Submission by pull request: which cards a branch changed (a real git repository with a base and a head
commit), 'cards validate --changed' and its job summary, the online check of a Hub file (the local Hub
cache, and a mocked metadata response of the Hub's API: no network here), the submission status, and
'eval --pending' on a cards folder with one evaluated and two pending cards, one of which fails."""

from __future__ import annotations

import io
import math
import os
import subprocess
from pathlib import Path

import httpx2
import pytest
import torch
import yaml
from cards_helpers import (
    REPO_ID,
    REVISION,
    make_hub_cache,
    mnist_card_dict,
    mnist_model,
    safetensors_bytes,
    sha256_bytes,
    write_card,
)
from huggingface_hub.utils import _http
from torch import nn
from typer.testing import CliRunner

from invarbench.cards.changes import changed_cards
from invarbench.cli.app import app
from invarbench.cli.summary import md
from invarbench.errors import ValidationError
from invarbench.submissions import EVALUATED, FAILED, PENDING, SuiteTarget, derive_statuses

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def weights() -> bytes:
    return safetensors_bytes(mnist_model())


def shared_card(name: str, weights: bytes, **overrides) -> dict:
    """A valid mnist5k card whose local file is the folder's shared.safetensors."""
    return mnist_card_dict(name, source={"path": "shared.safetensors", "sha256": sha256_bytes(weights)}, **overrides)


@pytest.fixture
def repo(tmp_path, weights):
    """A git repository whose base commit (branch 'main') has four cards and whose head commit (branch
    'pr') modifies one, deletes one, renames one and adds one. Returns (repo, cards folder)."""
    repo = tmp_path / "repo"
    cards = repo / "model_cards"
    (cards / "mnist5k").mkdir(parents=True)
    (cards / "mnist5k" / "shared.safetensors").write_bytes(weights)
    for name in ("keep", "modify", "delete", "old-name"):
        # Long notes of their own: git takes a deleted and an added file that are alike for a rename.
        notes = " ".join(f"{name} {i}" for i in range(300))
        write_card(cards, shared_card(name, weights, notes=notes))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "pr")
    write_card(cards, shared_card("modify", weights, notes="changed notes"))
    (cards / "mnist5k" / "delete.yaml").unlink()
    old = cards / "mnist5k" / "old-name.yaml"
    old.write_text(old.read_text().replace("mnist5k/old-name", "mnist5k/new-name"))
    git(repo, "mv", "model_cards/mnist5k/old-name.yaml", "model_cards/mnist5k/new-name.yaml")
    write_card(cards, shared_card("added", weights))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "head")
    return repo, cards


def test_changed_cards_between_a_base_and_a_head_commit(repo):
    root, cards = repo
    d = cards.resolve() / "mnist5k"
    changes = changed_cards("main", cards)
    assert changes.added == [d / "added.yaml"]
    assert changes.modified == [d / "modify.yaml"]
    assert changes.deleted == [d / "delete.yaml"]
    assert changes.renamed == [(d / "old-name.yaml", d / "new-name.yaml")]
    assert changes.to_validate == [d / "added.yaml", d / "modify.yaml", d / "new-name.yaml"]
    assert changes.merge_base == git(root, "rev-parse", "main").strip()
    # Uncommitted work counts: an edited card and a new file that git does not ignore.
    (cards / "mnist5k" / "keep.yaml").write_text((cards / "mnist5k" / "keep.yaml").read_text() + "# edited\n")
    (cards / "mnist5k" / "draft.yaml").write_text("id: mnist5k/draft\n")
    later = changed_cards("main", cards)
    assert later.added == [d / "added.yaml", d / "draft.yaml"]
    assert later.modified == [d / "keep.yaml", d / "modify.yaml"]
    # Compared with the merge base: a commit on main after the branch point is not the branch's change.
    git(root, "checkout", "-q", "main")
    (cards / "mnist5k" / "on-main.yaml").write_text("id: mnist5k/on-main\n")
    git(root, "add", "model_cards/mnist5k/on-main.yaml")
    git(root, "commit", "-q", "-m", "main moves on")
    git(root, "checkout", "-q", "pr")
    assert changed_cards("main", cards).added == [d / "added.yaml", d / "draft.yaml"]


@pytest.mark.parametrize(
    ("base", "message"),
    [
        ("no-such-branch", "--changed no-such-branch: no such git revision in {root} (fetch it first"),
    ],
)
def test_changed_names_a_bad_base(repo, base, message):
    root, cards = repo
    with pytest.raises(ValidationError) as info:
        changed_cards(base, cards)
    assert str(info.value).startswith(message.format(root=root.resolve()))


def test_changed_outside_a_git_checkout(tmp_path):
    (tmp_path / "cards").mkdir()
    with pytest.raises(ValidationError) as info:
        changed_cards("main", tmp_path / "cards")
    assert "is not inside a git checkout" in str(info.value)


def test_validate_changed_accepts_valid_changes_and_writes_the_job_summary(repo, tmp_path, monkeypatch):
    _, cards = repo
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = invoke("cards", "validate", "--changed", "main", "--cards-dir", cards)
    assert result.exit_code == 0, result.output
    d = cards.resolve() / "mnist5k"
    assert f"renamed  {d / 'old-name.yaml'} -> {d / 'new-name.yaml'}\n" in result.stdout
    assert f"deleted  {d / 'delete.yaml'}  (not validated)\n" in result.stdout
    for name in ("added", "modify", "new-name"):
        assert f"ok  {d / name}.yaml  (mnist5k/{name})\n" in result.stdout
    assert "keep" not in result.stdout  # unchanged: not validated one by one
    assert result.stdout.endswith("3 changed card(s) valid; the rules over every card hold.\n")
    text = summary.read_text()
    assert text.startswith("earlier step\n### ✅ Model cards changed since `main`\n")  # appended, as GitHub does
    assert "| `mnist5k/added` | added.yaml | ✅ valid |" in text
    assert "- renamed: old-name.yaml → mnist5k/new-name.yaml" in text
    assert "- deleted: mnist5k/delete.yaml (not validated)" in text
    # 'cards changed' prints the same cards, for the workflow's smoke evaluation.
    listed = invoke("cards", "changed", "main", "--cards-dir", cards)
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines() == [str(d / f"{n}.yaml") for n in ("added", "modify", "new-name")]


def test_validate_changed_refuses_invalid_cards_and_broken_global_rules(repo, tmp_path, monkeypatch, weights):
    _, cards = repo
    d = cards.resolve() / "mnist5k"
    write_card(cards, shared_card("added", weights, num_classes=5))  # wrong for mnist5k
    misplaced = yaml.safe_load((d / "keep.yaml").read_text())
    (d / "elsewhere.yaml").write_text(yaml.safe_dump(misplaced))  # a copy of keep: its id says keep.yaml
    (cards / "stray.yaml").write_text(yaml.safe_dump(misplaced))  # not even in a data set's folder
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = invoke("cards", "validate", "--changed", "main", "--cards-dir", cards)
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert f"Error: model card {d / 'added.yaml'}: num_classes is 5, but data set 'mnist5k' has 10 classes" in errors
    expected = d / "keep.yaml"
    for path in (d / "elsewhere.yaml", cards.resolve() / "stray.yaml"):
        assert f"Error: model card {path} has id 'mnist5k/keep', so it must live at {expected}" in errors
    # elsewhere.yaml also takes keep's id (stray.yaml, outside every data set's folder, is no registered card)
    assert f"Error: model card id 'mnist5k/keep' is used by 2 files ({d / 'elsewhere.yaml'}, " in result.stderr
    assert errors[-1] == "4 problem(s): 5 changed card(s) checked."
    assert f"ok  {d / 'modify.yaml'}  (mnist5k/modify)" in result.stdout
    text = summary.read_text()
    assert text.startswith("### ❌ Model cards changed since `main`\n\n2 of 5 added or modified card(s) valid.")
    assert "| – | added.yaml | ❌ model card " in text


def test_validate_changed_names_a_duplicate_id(repo, weights):
    _, cards = repo
    (cards / "mnist5k" / "added.yml").write_text(yaml.safe_dump(shared_card("added", weights)))
    result = invoke("cards", "validate", "--changed", "main", "--cards-dir", cards)
    assert result.exit_code == 1
    d = cards.resolve() / "mnist5k"
    assert f"so it must live at {d / 'added.yaml'}" in result.stderr  # the .yml is misplaced for its id ...
    assert "model card id 'mnist5k/added' is used by 2 files" in result.stderr  # ... and takes another's id


def test_validate_changed_with_paths_is_refused(repo):
    _, cards = repo
    result = invoke("cards", "validate", cards / "mnist5k" / "keep.yaml", "--changed", "main", "--cards-dir", cards)
    assert result.exit_code == 1
    assert result.stderr == "Error: give card files or --changed BASE, not both\n"


def test_markdown_escaping_keeps_hostile_text_as_text():
    assert md("a | b <script>x</script> [l](http://e) `c`\nnext") == (
        "a \\| b &lt;script&gt;x&lt;/script&gt; \\[l\\](http://e) \\`c\\` next"
    )


# --- the online check of a Hub file ----------------------------------------------------------------


def hub_card(root: Path, sha256: str, *, revision: str = REVISION, file: str = "lenet.safetensors") -> Path:
    hub = {"hub": {"repo_id": REPO_ID, "revision": revision, "file": file, "sha256": sha256}}
    return write_card(root, mnist_card_dict("remote", source=hub))


def test_online_check_in_the_local_hub_cache(tmp_path, weights):
    make_hub_cache(Path(os.environ["HF_HOME"]) / "hub", REPO_ID, REVISION, {"lenet.safetensors": weights})
    card = hub_card(tmp_path / "cards", sha256_bytes(weights))
    result = invoke("cards", "validate", card, "--online", "--cards-dir", tmp_path / "cards")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"ok  {card}  (mnist5k/remote)\n    note: lenet.safetensors found in the local Hub cache at "
        f"{REVISION[:12]} (HF_HUB_OFFLINE), sha256 matches\n1 card(s) valid.\n"
    )
    other = hub_card(tmp_path / "cards", sha256_bytes(weights), revision="f" * 40)
    missing = invoke("cards", "validate", other, "--online", "--cards-dir", tmp_path / "cards")
    assert missing.exit_code == 1
    assert f"has {REPO_ID} but not its revision {'f' * 40}; HF_HUB_OFFLINE is set" in missing.stderr
    wrong = hub_card(tmp_path / "cards", "1" * 64)
    mismatch = invoke("cards", "validate", wrong, "--online", "--cards-dir", tmp_path / "cards")
    assert mismatch.exit_code == 1 and "checksum mismatch for lenet.safetensors" in mismatch.stderr


@pytest.fixture
def hub_api(monkeypatch):
    """The Hub's API answered by a handler (``hub_api.answer``) through huggingface_hub's own HTTP client:
    the requests it makes are recorded in ``hub_api.requests``."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    class Api:
        requests: list[httpx2.Request] = []
        answer = None

    def handle(request: httpx2.Request) -> httpx2.Response:
        Api.requests.append(request)
        return Api.answer(request)

    _http.set_client_factory(
        lambda: httpx2.Client(
            transport=httpx2.MockTransport(handle), event_hooks={"request": [_http.hf_request_event_hook]}
        )
    )
    yield Api
    _http.set_client_factory(_http.default_client_factory)


def paths_info(size: int, sha256: str | None) -> list[dict]:
    entry = {"type": "file", "path": "lenet.safetensors", "size": size, "oid": "b" * 40}
    if sha256:
        entry["lfs"] = {"oid": sha256, "size": size, "pointerSize": 134}
    return [entry]


def test_online_check_reads_the_hub_metadata_and_downloads_nothing(tmp_path, hub_api, weights):
    sha = sha256_bytes(weights)
    hub_api.answer = lambda request: httpx2.Response(200, json=paths_info(len(weights), sha))
    card = hub_card(tmp_path / "cards", sha)
    result = invoke("cards", "validate", card, "--online", "--cards-dir", tmp_path / "cards")
    assert result.exit_code == 0, result.output
    assert (
        f"note: lenet.safetensors found on the Hub at {REVISION[:12]} ({len(weights):,} bytes), sha256 matches"
        in result.stdout
    )
    (request,) = hub_api.requests
    assert request.method == "POST"
    assert request.url.path == f"/api/models/{REPO_ID}/paths-info/{REVISION}"
    assert b"paths=lenet.safetensors" in request.content


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            lambda r: httpx2.Response(200, json=paths_info(1000, "2" * 64)),
            f"checksum mismatch for lenet.safetensors: the card says sha256 {'1' * 64}, the Hub has {'2' * 64} for "
            f"it at revision {REVISION[:12]}. Copy the sha256",
        ),
        (
            lambda r: httpx2.Response(200, json=[]),
            f"file 'lenet.safetensors' not found in {REPO_ID} at revision {REVISION[:12]}: check source.hub.file",
        ),
        (
            lambda r: httpx2.Response(404, headers={"X-Error-Code": "RevisionNotFound"}, request=r),
            f"revision {REVISION} not found in '{REPO_ID}': check source.hub.revision",
        ),
        (
            lambda r: httpx2.Response(404, headers={"X-Error-Code": "RepoNotFound"}, request=r),
            f"Hub repository '{REPO_ID}' not found (or private: log in with 'hf auth login')",
        ),
        (
            lambda r: httpx2.Response(200, json=paths_info(3 * 1024**3, "1" * 64)),
            "lenet.safetensors is 3,221,225,472 bytes, over the 2,147,483,648-byte limit",
        ),
    ],
)
def test_online_check_names_what_is_wrong(tmp_path, hub_api, answer, message):
    hub_api.answer = answer
    card = hub_card(tmp_path / "cards", "1" * 64)
    result = invoke("cards", "validate", card, "--online", "--cards-dir", tmp_path / "cards")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: model card {card}: {message}")
    assert len(hub_api.requests) == 1  # one metadata call; nothing downloaded


def test_online_check_downloads_a_file_without_lfs_metadata_within_the_cap(tmp_path, hub_api, weights):
    sha = sha256_bytes(weights)

    def answer(request):
        if request.url.path.endswith(f"/paths-info/{REVISION}"):
            return httpx2.Response(200, json=paths_info(len(weights), None))
        assert "/resolve/" in request.url.path
        headers = {"X-Repo-Commit": REVISION, "ETag": f'"{"b" * 40}"', "Content-Length": str(len(weights))}
        return httpx2.Response(200, headers=headers, content=b"" if request.method == "HEAD" else weights)

    hub_api.answer = answer
    card = hub_card(tmp_path / "cards", sha)
    result = invoke("cards", "validate", card, "--online", "--cards-dir", tmp_path / "cards")
    assert result.exit_code == 0, result.output
    assert "not in LFS: downloaded), sha256 matches" in result.stdout
    assert any("/resolve/" in r.url.path and r.method == "GET" for r in hub_api.requests)


# --- submission status and eval --pending -----------------------------------------------------------


class _NaNOnBrightImages(nn.Module):
    """Finite logits on the load check's mid-grey probe, NaN for any image with a pixel above 0.9 (every
    MNIST digit): loads, then fails its run."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        bright = x.flatten(1).amax(dim=1, keepdim=True) > 0.9
        return torch.where(bright, torch.full_like(logits, math.nan), logits)


TINY_SUITE = """\
name: tiny-test
version: 1
dataset: mnist5k
description: a few examples and steps, for the tests of eval --pending
changelog: ["1: first version"]
include: quick/mnist5k
num_examples: 8
checks: {examples: 4}
measurements:
  pgd_linf: {steps: 2}
  pgd_l2: {steps: 2}
  min_norm: {steps: 2}
  nspgd:
    max_iter: 3
    pairs: {num_pairs: 2}
  path_width:
    points: [0, 2]
    directions: 2
    max_pairs: 1
"""


def test_eval_pending_evaluates_what_is_pending_continues_past_a_failure_and_reports_it(tmp_path, monkeypatch):
    cards = tmp_path / "cards"
    net = mnist_model()
    for name in ("done", "todo"):
        write_card(cards, mnist_card_dict(name), safetensors_bytes(net))
    program = torch.export.export(
        _NaNOnBrightImages(net).eval(),
        (torch.rand(2, 1, 28, 28),),
        dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
    )
    buf = io.BytesIO()
    torch.export.save(program, buf)
    data = mnist_card_dict("broken", format="torch-export", source={"path": "broken.pt2", "sha256": "0" * 64})
    del data["architecture"]
    write_card(cards, data, buf.getvalue())
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY_SUITE)
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    common = ["--suite", suite, "--db", db, "--cards-dir", cards, "--device", "cpu"]

    first = invoke("eval", "mnist5k/done", *common)
    assert first.exit_code == 0, first.output
    before = invoke("cards", "status", "--suite", suite, "--db", db, "--cards-dir", cards)
    assert before.exit_code == 0, before.output
    assert [line.split("│")[1:4] for line in before.stdout.splitlines() if "mnist5k/" in line] == [
        [" mnist5k/broken ", " tiny-test v1 ", " pending   "],
        [" mnist5k/done   ", " tiny-test v1 ", " evaluated "],
        [" mnist5k/todo   ", " tiny-test v1 ", " pending   "],
    ]

    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = invoke("eval", "--pending", *common)
    assert result.exit_code == 1, result.output
    assert "evaluated already: mnist5k/done (run 1)\n2 card(s) to evaluate with suite" in result.stdout
    assert "1 of 2 card(s) evaluated." in result.stdout
    stderr = result.stderr.splitlines()
    assert stderr[-2] == "1 failed:"
    assert stderr[-1].startswith("  mnist5k/broken: model card mnist5k/broken: ")
    assert "NaN or Inf logits" in stderr[-1]
    text = summary.read_text()
    assert text.startswith("### ❌ Pending evaluations: 1 of 2 evaluated\n\n### ✅ `mnist5k/todo`: suite tiny-test v1")
    assert "\n- `mnist5k/broken`: model card mnist5k/broken: " in text

    after = invoke("cards", "status", "--suite", suite, "--db", db, "--cards-dir", cards)
    rows = {line.split("│")[1].strip(): line for line in after.stdout.splitlines() if "mnist5k/" in line}
    assert " evaluated " in rows["mnist5k/done"] and " evaluated " in rows["mnist5k/todo"]
    assert " failed " in rows["mnist5k/broken"] and "NaN" in after.stdout
    assert after.stdout.rstrip().endswith("2 evaluated, 0 pending, 1 failed")
    # From published results: the export has the finished full runs only, so the failed card is pending there.
    results = tmp_path / "results"
    exported = invoke("results", "export", "--out", results, "--db", db)
    assert exported.exit_code == 0, exported.output
    published = invoke("cards", "status", "--suite", suite, "--results", results, "--cards-dir", cards)
    assert published.exit_code == 0, published.output
    assert published.stdout.rstrip().endswith("2 evaluated, 1 pending, 0 failed")
    # Nothing is evaluated twice: only the failed card is tried again.
    again = invoke("eval", "--pending", *common)
    assert again.exit_code == 1
    assert "1 card(s) to evaluate" in again.stdout and "0 of 1 card(s) evaluated." in again.stdout


def test_eval_pending_with_nothing_pending_and_misuse(tmp_path):
    cards = tmp_path / "cards"
    cards.mkdir()
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    result = invoke("eval", "--pending", "--db", db, "--cards-dir", cards)
    assert result.exit_code == 0, result.output
    assert result.stdout == "Nothing pending: every registered card has a finished full run of suite standard.\n"
    both = invoke("eval", "mnist5k/lenet-standard", "--pending", "--db", db)
    assert both.exit_code == 1
    assert both.stderr == "Error: give MODEL or --pending, not both (got 'mnist5k/lenet-standard' and --pending)\n"
    neither = invoke("eval", "--db", db)
    assert neither.exit_code == 1 and neither.stderr.startswith("Error: missing MODEL: ")


def test_status_derivation_rule():
    """The pure rule: the pinned file decides, full runs only, the newest full attempt's error."""
    from types import SimpleNamespace as NS

    from invarbench.cards.catalog import CardRef
    from invarbench.cards.schema import ModelCard

    def ref(name: str, sha: str) -> CardRef:
        card = ModelCard.model_validate(mnist_card_dict(name, source={"path": "w.safetensors", "sha256": sha}))
        return CardRef(card=card, path=Path(f"{name}.yaml"), sha256="")

    def run(i, name, sha, status, examples=8, error=None, version=1, data=None):
        model = NS(card_id=f"mnist5k/{name}", file_sha256=sha)
        return NS(
            id=i,
            model=model,
            dataset="mnist5k",
            suite_name="s",
            suite_version=version,
            data_source=data,
            data_digest=None,
            status=status,
            examples_effective=examples,
            examples_requested=examples,
            error=error,
        )

    a, b = "a" * 64, "b" * 64
    cards = [ref("ok", a), ref("repinned", b), ref("failed", a), ref("smoke", a), ref("retry", a)]
    runs = [
        run(1, "ok", a, "finished"),
        run(2, "repinned", a, "finished"),  # the card now pins another file
        run(3, "failed", a, "failed", error="first"),
        run(4, "failed", a, "failed", error="newest"),
        run(5, "failed", a, "failed", examples=2, error="a smoke run's"),
        run(6, "smoke", a, "finished", examples=2),
        run(7, "smoke", a, "finished", data="npz:x.npz"),
        run(8, "smoke", a, "finished", version=0),
        run(9, "retry", a, "failed", error="old"),
        run(10, "retry", a, "running"),
    ]
    got = {s.card_id: s for s in derive_statuses(cards, runs, {"mnist5k": SuiteTarget("s", 1, 8)})}
    assert {k: (s.state, s.run_id, s.reason) for k, s in got.items()} == {
        "mnist5k/ok": (EVALUATED, 1, None),
        "mnist5k/repinned": (PENDING, None, None),
        "mnist5k/failed": (FAILED, 4, "newest"),
        "mnist5k/smoke": (PENDING, None, None),
        "mnist5k/retry": (PENDING, None, None),
    }
    assert got["mnist5k/retry"].running


def test_a_submission_is_evaluated_by_the_leaderboards_rule_of_a_full_run():
    """The status calls the leaderboard's rule (invarbench.leaderboard_policy.is_full): a copy of the official
    split (its data digest the expected one) counts, the data set's own files with other examples do not."""
    from types import SimpleNamespace as NS

    from invarbench.cards.catalog import CardRef
    from invarbench.cards.schema import ModelCard
    from invarbench.data.digests import EXPECTED_DIGESTS

    sha, expected, other = "a" * 64, EXPECTED_DIGESTS["mnist5k"][200], "v1:" + "0" * 64
    cards = [
        CardRef(
            card=ModelCard.model_validate(mnist_card_dict(n, source={"path": "w.safetensors", "sha256": sha})),
            path=Path(f"{n}.yaml"),
            sha256="",
        )
        for n in ("copy", "altered")
    ]

    def run(i, name, source, digest):
        model = NS(card_id=f"mnist5k/{name}", file_sha256=sha)
        fields = dict(dataset="mnist5k", suite_name="s", suite_version=1, status="finished", error=None)
        return NS(id=i, model=model, data_source=source, data_digest=digest, examples_effective=200, **fields)

    runs = [run(1, "copy", "npz:/data/copy.npz", expected), run(2, "altered", None, other)]
    got = {s.card_id: s.state for s in derive_statuses(cards, runs, {"mnist5k": SuiteTarget("s", 1, 200)})}
    assert got == {"mnist5k/copy": EVALUATED, "mnist5k/altered": PENDING}
