"""The static site: one board per data set and suite version, honest shared ranks, downloads, builds
from the published results files, and byte-identical rebuilds."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from invarbench.cli.app import app
from invarbench.site.build import LeaderboardRow, MetricCell, build_site, leaderboard, shared_ranks
from invarbench.store import Store

RESULTS = Path(__file__).resolve().parents[1] / "leaderboard" / "results"
runner = CliRunner()


def _row(name: str, value: float, low: float, high: float) -> LeaderboardRow:
    return LeaderboardRow(
        card_id=name,
        name=name,
        training="standard",
        suite="s v1",
        run_id=0,
        examples=10,
        full_examples=10,
        data="d",
        kind="full",
        provenance=[],
        finished="",
        flags=[],
        metrics={"robust_accuracy_linf": MetricCell(value, low, high)},
    )


def test_models_whose_intervals_overlap_share_a_rank():
    rows = [
        _row("a", 0.80, 0.75, 0.85),
        _row("b", 0.78, 0.73, 0.83),  # overlaps a: shares rank 1
        _row("c", 0.60, 0.55, 0.65),  # below both a and b entirely: rank 3
        _row("d", 0.58, 0.50, 0.74),  # overlaps b (0.73 < 0.74) but lies below a: rank 2
    ]
    assert shared_ranks(rows, "robust_accuracy_linf") == [1, 1, 3, 2]
    assert shared_ranks(rows, "no_such_metric") == [1, 2, 3, 4]


def _published_boards() -> dict[str, set[str]]:
    """The published results files, read directly: board id -> the card ids on it."""
    boards: dict[str, set[str]] = {}
    for path in RESULTS.glob("*/*.json"):
        doc = json.loads(path.read_text())
        board = f"{doc['model']['dataset']}-{doc['run']['suite_name']}-v{doc['run']['suite_version']}"
        boards.setdefault(board, set()).add(doc["model"]["card_id"])
    return boards


@pytest.fixture(scope="module")
def published_site(tmp_path_factory) -> Path:
    """The site built once from every published results file, as `site build --results` builds it."""
    out = tmp_path_factory.mktemp("published") / "site"
    result = runner.invoke(app, ["site", "build", "--results", str(RESULTS), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _board_table(html: str, board: str) -> str:
    section = re.search(rf'<h2 id="board-{re.escape(board)}">.*?</table>', html, flags=re.S)
    assert section, board
    return section.group(0)


def test_the_published_results_build_a_site_with_a_board_per_suite_version_and_downloads(published_site, tmp_path):
    out = published_site
    html = (out / "index.html").read_text()
    boards = _published_boards()
    assert len(boards) >= 2 and "mnist5k-standard-v5" in boards
    assert sorted(re.findall(r'<h2 id="board-([^"]+)">', html)) == sorted(boards)
    for board, card_ids in boards.items():
        # Every published model on its own board, in its table and in both downloads; nothing else.
        table = _board_table(html, board)
        assert sorted(re.findall(r'data-model="([^"]+)"', table)) == sorted(card_ids)
        docs = json.loads((out / "boards" / f"{board}.json").read_text())
        assert sorted(d["model"]["card_id"] for d in docs) == sorted(card_ids)
        rows = list(csv.DictReader(io.StringIO((out / "boards" / f"{board}.csv").read_text())))
        assert {r["card_id"] for r in rows} == card_ids
        assert f'href="boards/{board}.json"' in html and f'href="boards/{board}.csv"' in html
    # The two reference models: their robust accuracies' intervals do not overlap, so ranks 1 and 2.
    table = _board_table(html, "mnist5k-standard-v5")
    assert re.findall(r'data-model="([^"]+)"', table) == ["mnist5k/lenet-pgd-at", "mnist5k/lenet-standard"]
    assert re.findall(r'<td data-sort="(\d+)">', table) == ["1", "2"]
    assert "gradient_attack_weaker_than_search" in table and 'data-field="seconds"' in table
    # Built again from the same results: the same bytes, everywhere.
    again = tmp_path / "again"
    assert runner.invoke(app, ["site", "build", "--results", str(RESULTS), "--out", str(again)]).exit_code == 0
    for path in out.rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (again / path.relative_to(out)).read_bytes(), path


def test_a_board_never_mixes_suite_versions(tmp_path):
    """The same model under two versions of one suite: two boards, one run each."""
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    from invarbench.store.results_files import import_path

    import_path(store, RESULTS / "mnist5k")
    path = next((RESULTS / "mnist5k").glob("lenet-standard__standard-v*.json"))
    doc = json.loads(path.read_text())
    doc["artifacts"] = []  # a copy elsewhere: without the files beside the original
    doc["run"]["uid"] = "00000000-0000-0000-0000-000000000000"
    doc["run"]["suite_version"] = 99
    from invarbench.store.documents import content_digest

    doc["content_sha256"] = content_digest(doc)
    other = tmp_path / "v99.json"
    other.write_text(json.dumps(doc))
    import_path(store, other)
    published = json.loads(path.read_text())["run"]["suite_version"]
    boards = leaderboard(store)
    assert [(b.suite, b.version) for b in boards] == [("standard", published), ("standard", 99)]
    assert [len(b.rows) for b in boards] == [2, 1]
    build_site(store, tmp_path / "site")
    html = (tmp_path / "site" / "index.html").read_text()
    assert f"mnist5k · standard v{published}" in html and "mnist5k · standard v99" in html


def test_results_and_db_together_are_refused(tmp_path):
    result = runner.invoke(app, ["site", "build", "--results", str(RESULTS), "--db", "sqlite://", "--out", "x"])
    assert result.exit_code == 1 and "give --results or --db, not both" in result.stderr
    missing = runner.invoke(app, ["site", "build", "--results", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "results folder not found" in missing.stderr


def test_every_ranked_model_has_a_page_with_its_metrics_flags_provenance_and_figures(published_site):
    out = published_site
    pages = sorted(str(p.relative_to(out / "models").with_suffix("")) for p in (out / "models").rglob("*.html"))
    expected = [f"{board}/{card.split('/')[1]}" for board, cards in _published_boards().items() for card in cards]
    assert pages == sorted(expected)
    page = out / "models" / "mnist5k-standard-v5" / "lenet-pgd-at.html"
    html = page.read_text()
    assert "gradient_attack_weaker_than_search</span>: a gradient-free boundary search found closer" in html
    assert "Robust accuracy (L∞)" in html and "suite settings hash" in html and "float32" in html
    assert html.count("<svg") == 2 and html.count('<figure class="plot"><svg role="img"') == 2
    assert "Equi-confidence tube" in html and "Histogram of the minimal adversarial L2 distance of 979 examples" in html
    doc = json.loads(page.with_suffix(".json").read_text())
    assert doc["model"]["card_id"] == "mnist5k/lenet-pgd-at"
    index = (out / "index.html").read_text()
    assert 'class="scatter"' in index and "Sensitivity against invariance" in index


def test_every_internal_link_resolves_and_none_leaves_the_site_but_the_hub_and_papers(published_site):
    """Links out of the site go to the Hub, to the project's repository (its docs, CONTRIBUTING) and to the
    addresses the published cards state (papers; the upstream repository a checkpoint came from)."""
    from invarbench.site.protocol import REPOSITORY_URL

    out = published_site
    stated = set()
    for path in RESULTS.glob("*/*.json"):
        stated |= set(re.findall(r"https://[^\s\"']+", json.loads(path.read_text())["model"]["card_yaml"]))
    for page in out.rglob("*.html"):
        html = page.read_text()
        for href in re.findall(r'(?:href|xlink:href)="([^"#][^"]*)"', html):
            if href.startswith("https://"):
                continue
            target = (page.parent / href.split("#")[0]).resolve()
            assert target.is_file(), (page.name, href)
        outside = html.replace("https://huggingface.co/", "").replace(f'href="{REPOSITORY_URL}', 'href="')
        for url in sorted(stated, key=len, reverse=True):  # an upstream file's link extends its repository's
            outside = outside.replace(f'href="{url}', 'href="')
        assert not re.search(r'(?:src|href)="(?:https?:)?//', outside)


def test_a_hostile_card_name_renders_as_text(tmp_path):
    from invarbench.store.documents import content_digest
    from invarbench.store.results_files import import_path

    path = next((RESULTS / "mnist5k").glob("lenet-standard__standard-v*.json"))
    doc = json.loads(path.read_text())
    doc["artifacts"] = []  # a copy elsewhere: without the files beside the original
    doc["model"]["name"] = "<script>alert(1)</script>"
    doc["model"]["card_yaml"] = doc["model"]["card_yaml"].replace(
        "name: LeNet (standard training)", "name: <script>alert(1)</script>"
    )
    doc["model"]["card_sha256"] = hashlib.sha256(doc["model"]["card_yaml"].encode()).hexdigest()
    doc["content_sha256"] = content_digest(doc)
    hostile = tmp_path / "hostile.json"
    hostile.write_text(json.dumps(doc))
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    import_path(store, hostile)
    build_site(store, tmp_path / "site")
    for page in (tmp_path / "site").rglob("*.html"):
        html = page.read_text()
        assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (tmp_path / "site" / "index.html").read_text()


def test_registered_cards_without_a_run_are_listed_as_pending(tmp_path):
    cards = tmp_path / "cards"
    shutil.copytree(Path(__file__).resolve().parents[1] / "model_cards", cards)
    extra = (cards / "mnist5k" / "lenet-standard.yaml").read_text()
    (cards / "mnist5k" / "lenet-new.yaml").write_text(
        extra.replace("id: mnist5k/lenet-standard", "id: mnist5k/lenet-new").replace(
            "name: LeNet (standard training)", "name: A new LeNet"
        )
    )
    out = tmp_path / "site"
    result = runner.invoke(
        app, ["site", "build", "--results", str(RESULTS), "--out", str(out), "--cards-dir", str(cards)]
    )
    assert result.exit_code == 0, result.output
    html = (out / "index.html").read_text()
    board = re.search(r'<h2 id="board-mnist5k-standard-v5">.*?(?=<h2 id="board-|$)', html, flags=re.S).group(0)
    pending = re.search(r'<p class="pending"[^>]*>(.*?)</p>', board, flags=re.S).group(1)
    assert "<code>mnist5k/lenet-new</code> (A new LeNet)" in pending
    assert "lenet-standard" not in pending and "lenet-pgd-at" not in pending


def test_serve_refuses_a_folder_without_a_site(tmp_path):
    result = runner.invoke(app, ["site", "serve", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "no site in" in result.stderr


# --- NSPGD image strips ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_run_db(tmp_path_factory) -> Path:
    """A database with a full quick-suite run of the bundled standard LeNet: ranked, so it gets a model page."""
    from invarbench.cards import resolve_card
    from invarbench.evaluation import EvalOptions, evaluate

    path = tmp_path_factory.mktemp("quick") / "quick.db"
    store = Store(f"sqlite:///{path}")
    assert evaluate(resolve_card("mnist5k/lenet-standard"), store, EvalOptions(suite="quick", device="cpu")).ranked
    store.close()
    return path


def _quick_run_store(tmp_path: Path, db: Path) -> tuple[Store, int]:
    """A copy of the quick run's database, and the run's id."""
    shutil.copy(db, tmp_path / "quick.db")
    store = Store(f"sqlite:///{tmp_path / 'quick.db'}")
    [run] = store.list_runs()
    return store, run.id


def test_a_model_page_shows_the_image_strips_the_run_stored(tmp_path, quick_run_db):
    from PIL import Image

    store, run_id = _quick_run_store(tmp_path, quick_run_db)
    stored = {a.name: a.data for a in store.get_run(run_id).artifacts}
    strips = sorted(n for n in stored if n.startswith("nspgd-strip-") and n.endswith(".json"))
    assert len(strips) == 4  # the quick suite's drawn pairs all walk on this model
    build_site(store, tmp_path / "site")
    [page] = (tmp_path / "site" / "models").rglob("*.html")
    html = page.read_text()
    for name in strips:
        doc = json.loads(stored[name])
        png = page.parent / page.stem / doc["image"]
        assert png.read_bytes() == stored[doc["image"]]  # the run's own picture, copied as it is
        width, height = Image.open(png).size
        figure = re.search(rf'<figure class="strip" id="pair-{doc["pair"]}".*?</figure>', html, flags=re.S).group(0)
        # One window onto the PNG per panel, each at its own offset, the panel's numbers under it.
        lefts = [int(v) for v in re.findall(r"object-position: -(\d+)px 0", figure)]
        panel = (width - (len(doc["panels"]) - 1) * 4) // len(doc["panels"])
        assert lefts == [k * (panel + 4) for k in range(len(doc["panels"]))]
        assert figure.count(f'src="{page.stem}/{doc["image"]}"') == len(doc["panels"])
        assert f'height="{height}"' in figure
        confidences = re.findall(r'<span class="conf"[^>]*>([^<]*)</span>', figure)
        assert confidences == [f"{p['p_source']:.3f}" for p in doc["panels"]]
        predicted = re.findall(r'<span class="pred">class (\d+)</span>', figure)
        assert predicted == [str(p["predicted"]) for p in doc["panels"]]
        assert re.findall(r'<span class="label">([^<]*)</span>', figure) == [p["label"] for p in doc["panels"]]
        assert f"a class {doc['source_label']} source" in figure and f"the class {doc['target_label']} target" in figure
    # A second build gives the same bytes, pictures included.
    build_site(store, tmp_path / "again")
    for path in (tmp_path / "site").rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (tmp_path / "again" / path.relative_to(tmp_path / "site")).read_bytes()


def _strip_run(dataset: str, source: int, target: int, predicted: list[int]):
    """A stored run of ``dataset`` with one NSPGD strip (source, walk, end point, target) as the run writes it."""
    from types import SimpleNamespace

    from PIL import Image

    panels = [
        {"label": label, "p_source": 0.9, "predicted": k, "distance_to_target_l2": 10.0 - i}
        for i, (label, k) in enumerate(zip(["source", "step 5", "end (step 9)", "target"], predicted, strict=True))
    ]
    buf = io.BytesIO()
    Image.new("RGB", (4 * 32 + 3 * 4, 32), "white").save(buf, format="PNG")
    doc = {"pair": 0, "image": "nspgd-strip-00000.png", "source": 55, "target": 816, "source_label": source}
    doc |= {"target_label": target, "accepted_steps": 9, "panels": panels}
    files = {"nspgd-strip-00000.json": json.dumps(doc).encode(), "nspgd-strip-00000.png": buf.getvalue()}
    return SimpleNamespace(dataset=dataset, artifacts=[SimpleNamespace(name=n, data=d) for n, d in files.items()])


def test_a_strips_caption_names_the_classes_as_the_data_set_does():
    from invarbench.site.build import _strips

    # CIFAR-10's published order: 8 is ship, 9 truck, 1 automobile.
    [strip] = _strips(_strip_run("cifar10", 8, 9, [8, 8, 1, 9]), "page")
    assert "example 55 (ship) toward example 816 (truck)" in strip.caption
    assert "a ship source" in strip.alt and "predicted automobile" in strip.alt and "the truck target" in strip.alt
    assert [p.predicted_name for p in strip.panels] == ["ship", "ship", "automobile", "truck"]
    # MNIST's classes are its digits: "class 7".
    [strip] = _strips(_strip_run("mnist", 7, 1, [7, 7, 7, 1]), "page")
    assert "example 55 (class 7) toward example 816 (class 1)" in strip.caption
    assert [p.predicted_name for p in strip.panels] == ["class 7", "class 7", "class 7", "class 1"]
    # A data set the registry does not know (a plug-in's run imported elsewhere): the label.
    [strip] = _strips(_strip_run("someone-elses", 2, 3, [2, 2, 2, 3]), "page")
    assert "(class 2) toward example 816 (class 3)" in strip.caption


def test_a_malformed_strip_is_left_out_not_shown_wrong(tmp_path, quick_run_db):
    store, run_id = _quick_run_store(tmp_path, quick_run_db)
    strips = [a.name for a in store.get_run(run_id).artifacts if a.name.startswith("nspgd-strip-")]
    names = sorted(n for n in strips if n.endswith(".json"))
    store.add_artifact(run_id, names[0], b"{not json")
    broken = json.loads(next(a.data for a in store.get_run(run_id).artifacts if a.name == names[1]))
    broken["image"] = "../../index.html"  # a path out of the run's files: never followed
    store.add_artifact(run_id, names[1], json.dumps(broken).encode())
    store.add_artifact(run_id, names[2].replace(".json", ".png"), b"not a png")
    store.add_artifact(run_id, "notes.json", b"{}")  # not a strip: ignored
    build_site(store, tmp_path / "site")
    [page] = (tmp_path / "site" / "models").rglob("*.html")
    html = page.read_text()
    assert re.findall(r'<figure class="strip" id="pair-(\d+)"', html) == [str(int(names[3][12:17]))]
    pictures = sorted(p.name for p in (page.parent / page.stem).iterdir())
    assert pictures == ["human-invariance-disagreements.png", names[3].replace(".json", ".png")]


def test_the_board_and_the_pages_show_each_cards_submission_status(tmp_path):
    """Registered cards against the published runs: evaluated ones are ranked, a card with no run is
    pending, a card whose newest full attempt failed is listed with the stored error, and a card
    that now pins another file is pending again, which its page says."""
    from invarbench.store.provenance import Provenance
    from invarbench.store.results_files import import_path

    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    import_path(store, RESULTS / "mnist5k")
    [board] = leaderboard(store)
    cards = tmp_path / "cards"  # the reference models' cards: the public checkpoints' boards are not this test's
    shutil.copytree(Path(__file__).resolve().parents[1] / "model_cards" / "mnist5k", cards / "mnist5k")
    standard = (cards / "mnist5k" / "lenet-standard.yaml").read_text()
    for name in ("lenet-new", "lenet-broken"):
        (cards / "mnist5k" / f"{name}.yaml").write_text(
            standard.replace("mnist5k/lenet-standard", f"mnist5k/{name}").replace("(standard training)", name)
        )
    at = cards / "mnist5k" / "lenet-pgd-at.yaml"
    pinned = re.search(r"sha256: ([0-9a-f]{64})", at.read_text()).group(1)
    at.write_text(at.read_text().replace(pinned, "d" * 64))  # the card now pins another file
    file_sha = re.search(r"sha256: ([0-9a-f]{64})", standard).group(1)
    model = store.upsert_model(
        card_id="mnist5k/lenet-broken",
        name="lenet-broken",
        dataset="mnist5k",
        card_yaml="id: mnist5k/lenet-broken\n",
        card_sha256="c" * 64,
        file_sha256=file_sha,
        hub_repo=None,
        hub_revision=None,
        training_method="standard",
    )
    full = board.rows[0].full_examples
    run = store.start_run(
        model,
        Provenance(
            suite_name=board.suite,
            suite_version=board.version,
            dataset="mnist5k",
            invarbench_version="0",
            git_commit=None,
            torch_version="2",
            device="cpu",
            seed=0,
            batch_size=250,
            examples_requested=full,
            examples_effective=full,
            suite_num_examples=full,
            data_source=None,
            model_dtype="float32",
            suite_settings=None,
            suite_settings_hash=None,
            data_digest=None,
        ),
    )
    store.fail_run(run, "model card mnist5k/lenet-broken: the model returned NaN or Inf logits <b>here</b>")

    build_site(store, tmp_path / "site", cards)
    html = (tmp_path / "site" / "index.html").read_text()
    pending = re.search(r'<p class="pending"[^>]*>(.*?)</p>', html, flags=re.S).group(1)
    assert re.findall(r"<code>([^<]+)</code>", pending) == ["mnist5k/lenet-new", "mnist5k/lenet-pgd-at"]
    failed = re.search(r'<div class="failed"[^>]*>(.*?)</div>', html, flags=re.S).group(1)
    assert f"<code>mnist5k/lenet-broken</code> (LeNet lenet-broken), run {run}:" in failed
    assert "NaN or Inf logits &lt;b&gt;here&lt;/b&gt;" in failed  # the stored error, as text
    pages = {p.stem: p.read_text() for p in (tmp_path / "site" / "models").rglob("*.html")}
    assert 'data-state="evaluated"' in pages["lenet-standard"]
    assert (
        'data-state="pending"' in pages["lenet-pgd-at"]
        and "the card now pins another model file" in pages["lenet-pgd-at"]
    )


def test_the_compare_tables_short_names_tell_the_models_apart():
    from invarbench.site.compare import short_titles

    titles = [
        "Wong et al. CIFAR small, cascade stage 0 (certified training, L∞ 8/255)",
        "Wong et al. CIFAR small, cascade stage 0 (certified training, L2 36/255)",
        "Marabou CIFAR-10 large CNN (VNN-COMP 2021; standard training)",
        "LeNet",
        "Twin (same)",
        "Twin (same)",
    ]
    assert short_titles(titles) == [
        "Wong et al. CIFAR small,… (L∞ 8/255)",  # the clauses that tell the two apart
        "Wong et al. CIFAR small,… (L2 36/255)",
        "Marabou CIFAR-10 large CNN",  # no parenthesis: the training is in the table
        "LeNet",
        "Twin (same)",  # nothing tells them apart: the full names
        "Twin (same)",
    ]
    assert short_titles([]) == []


# --- the compare page of two published CIFAR-10 models: a low-confidence certified one and a ResNet ----------

CIFAR_PAIR = ("wong-scaled-small-8px-stage0", "akamaster-resnet20")


@pytest.fixture(scope="module")
def cifar_pair_site(tmp_path_factory) -> Path:
    """The site of two published CIFAR-10 results (Wong et al.'s small certified network, unsure everywhere,
    and the standard ResNet-20), built from copies of their results files and artifacts."""
    results = tmp_path_factory.mktemp("cifar-pair") / "results"
    (results / "cifar10").mkdir(parents=True)
    for name in CIFAR_PAIR:
        src = RESULTS / "cifar10" / f"{name}__standard-v4.json"
        if not src.is_file():
            pytest.skip(f"no published result {src.name}")
        shutil.copy(src, results / "cifar10" / src.name)
        if src.with_suffix(".artifacts").is_dir():
            shutil.copytree(src.with_suffix(".artifacts"), results / "cifar10" / src.with_suffix(".artifacts").name)
    from invarbench.site.build import build_site_from_results

    out = tmp_path_factory.mktemp("cifar-pair-site") / "site"
    build_site_from_results(results, out)
    return out


def _published(name: str) -> dict:
    return json.loads((RESULTS / "cifar10" / f"{name}__standard-v4.json").read_text())


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def test_a_tubes_caption_says_what_colour_and_width_show_and_how_many_pairs_it_averages(cifar_pair_site):
    """The tube's caption, on the model page and on the compare page: colour is the confidence (not the
    invariance), the width is where the edge lies, marked by the path width; and the number of pairs it
    averages over, the rows of the results' per-example ``p0`` (40 for the certified network, 94 for the
    ResNet: only pairs whose source the model classifies correctly walk)."""
    compare = (cifar_pair_site / "compare-cifar10-standard-v4.html").read_text()
    assert "wider, brighter" not in compare and "brightness is confidence, not invariance" in _text(compare)
    counts = {}
    for name in CIFAR_PAIR:
        doc = _published(name)
        pairs = sum(len(e["values"]["p0"]) for e in doc["examples"] if e["measurement"] == "path_width")
        width = next(m["value"] for m in doc["metrics"] if m["name"] == "path_width")
        counts[name] = pairs
        said = f"mean over {pairs} pairs: those of the first 100 NSPGD pairs whose source image the model classifies"
        page = _text((cifar_pair_site / "models" / "cifar10-standard-v4" / f"{name}.html").read_text())
        caption = re.search(r"Read it left to right along the NSPGD walk.*?more invariant model\.", page).group(0)
        assert said in caption and "brightness shows the confidence, not the invariance" in caption, caption
        assert f"the dashed red line is the path width ({width:.3g})" in caption, caption
        figure = re.search(rf'<figure data-model="{name}" hidden><img src="boards/[^"]*/tubes/.*?</figure>', compare)
        assert figure is not None, name
        text = _text(figure.group(0))
        assert f"Mean over {pairs} pairs: those of the first 100 NSPGD pairs" in text, text
        assert f"path width {width:.3g} (the dashed red line)" in text, text
    assert counts == {"wong-scaled-small-8px-stage0": 40, "akamaster-resnet20": 94}


def test_the_compare_pages_nspgd_walks_say_the_end_points_prediction_and_confidence(cifar_pair_site):
    """Under each model's NSPGD walk on the compare page: the end point's predicted class (its CIFAR-10 name)
    and the source-class confidence there and at the source, as the strip's artifact (JSON) stores them and
    the model page shows them."""
    from invarbench.data import class_name

    compare = (cifar_pair_site / "compare-cifar10-standard-v4.html").read_text()
    for name in CIFAR_PAIR:
        strip = rf'<figure data-model="{name}" hidden><img src="models/[^"]*nspgd-strip-(\d+)\.png".*?</figure>'
        figure = re.search(strip, compare)
        assert figure is not None, name
        folder = RESULTS / "cifar10" / f"{name}__standard-v4.artifacts"
        doc = json.loads((folder / f"nspgd-strip-{figure.group(1)}.json").read_text())
        start, end = doc["panels"][0], doc["panels"][-2]
        assert end["label"].startswith("end (step ")
        said = (
            f"{end['label'].capitalize()}: predicted {class_name('cifar10', end['predicted'])}, confidence in the "
            f"source class ({class_name('cifar10', doc['source_label'])}) {end['p_source']:.3f} "
            f"(at the source: {start['p_source']:.3f})."
        )
        assert said in _text(figure.group(0)), _text(figure.group(0))
        # The model page says the same numbers under the same panel.
        page = (cifar_pair_site / "models" / "cifar10-standard-v4" / f"{name}.html").read_text()
        panel = re.search(rf'<li><span class="label">{re.escape(end["label"])}</span>.*?</li>', page).group(0)
        assert f"{end['p_source']:.3f}" in panel and class_name("cifar10", end["predicted"]) in panel
