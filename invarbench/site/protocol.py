"""A suite's protocol in plain words: what a board's numbers measured (docs/site.md, "The protocol").

:func:`protocol_lines` turns a suite's settings — as a run recorded them (``RunRecord.suite_settings``)
or as :meth:`invarbench.suites.Suite.settings` gives them — into short sentences for a reader who has
not read the suite file: which images (split, how many, why that many, their data digest), each
attack's budget (ε and norm) and steps, the minimal-distance search, NSPGD's walk and pairs, the
path-width tube, calibration and the human-judged probe sets, each with a link to its method's
documentation. A pure function: no I/O, the same settings give the same lines.

The project's repository (the site's links to it, its docs and CONTRIBUTING, and the protocol's links to the
methods) is the one a build names (``invarbench site build --repository-url``, :func:`using_repository`), by
default the ``Repository`` entry of ``[project.urls]`` in the checkout's pyproject.toml
(:func:`default_repository_url`), else :data:`REPOSITORY_URL`, a placeholder.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from invarbench.errors import ValidationError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: no TOML reader in the standard library
    tomllib = None

REPOSITORY_URL = "https://github.com/invarbench/invarbench"  # the placeholder, where nothing names the repository
DOCS_URL = f"{REPOSITORY_URL}/blob/main/docs"
CONTRIBUTING_URL = f"{REPOSITORY_URL}/blob/main/CONTRIBUTING.md"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"  # the checkout's, where the package runs from one
_REPOSITORY: ContextVar[str] = ContextVar("invarbench_site_repository", default=REPOSITORY_URL)


def check_repository_url(url: str, what: str = "--repository-url") -> str:
    """``url`` as the site links it: an https URL with a host and no quotes, whitespace or angle brackets (it goes
    into HTML attributes), without a trailing ``/``. Raises :class:`~invarbench.errors.ValidationError` (one
    line naming ``what`` and the fix) otherwise."""
    bad = re.search(r"[\s\"'<>`\\]", url)
    parts = urlsplit(url) if not bad else None
    if bad or parts is None or parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise ValidationError(
            f"{what} must be an https URL without quotes, whitespace, query or fragment, such as "
            f"https://github.com/OWNER/REPO; got {url!r}"
        )
    return url.rstrip("/")


def default_repository_url(pyproject: Path | None = None) -> str:
    """The repository a build links to when it names none: ``[project.urls]``'s ``Repository`` entry of
    ``pyproject`` (default: :data:`PYPROJECT`, the checkout's), checked by :func:`check_repository_url`; else
    :data:`REPOSITORY_URL` (no such file or entry, or Python 3.10, which has no TOML reader). Raises
    ``ValidationError`` for an entry that is not one."""
    path = PYPROJECT if pyproject is None else pyproject
    if tomllib is None:
        return REPOSITORY_URL
    try:
        urls = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {}).get("urls", {})
    except (OSError, tomllib.TOMLDecodeError):
        return REPOSITORY_URL
    url = next((v for k, v in urls.items() if k.lower() == "repository"), None) if isinstance(urls, dict) else None
    if url is None:
        return REPOSITORY_URL
    return check_repository_url(str(url), f"[project.urls] Repository in {path}")


def repository_url() -> str:
    """The repository the site being built links to (:func:`using_repository`), else :data:`REPOSITORY_URL`."""
    return _REPOSITORY.get()


def docs_url() -> str:
    """The repository's ``docs/`` folder on its main branch."""
    return f"{repository_url()}/blob/main/docs"


def contributing_url() -> str:
    """The repository's CONTRIBUTING.md on its main branch."""
    return f"{repository_url()}/blob/main/CONTRIBUTING.md"


@contextmanager
def using_repository(url: str | None) -> Iterator[str]:
    """Within the block, the site's links go to ``url`` (checked by :func:`check_repository_url`); None: to
    :func:`default_repository_url`. Yields the URL used. Raises ``ValidationError`` for a URL that is not one."""
    chosen = default_repository_url() if url is None else check_repository_url(url)
    token = _REPOSITORY.set(chosen)
    try:
        yield chosen
    finally:
        _REPOSITORY.reset(token)


# Why a suite evaluates the first images of a split rather than all of them (standard v4 and later), with
# what the published runs of standard v4 took (leaderboard/results; tests/test_site_protocol.py checks the
# figures against the files): on a 2-core CPU the 11 public MNIST networks and the CIFAR-10 ResNet-20 (the
# ResNet-56 about three times a ResNet-20 there, from the ResNet-20's time per forward pass); on one H100 GPU
# the CIFAR-10 ResNet-56.
WHY_FIRST_EXAMPLES = (
    "so that every public model can be on the board: on a 2-core CPU the public MNIST networks took from 12 s to "
    "99 minutes each (7 of 11 under 4 minutes), a CIFAR-10 ResNet-20 60 minutes and a ResNet-56 would take about "
    "three times that; on one H100 GPU the ResNet-56 took under a minute; every number is shown with its 95 % "
    "interval"
)


def heading_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation other than ``-`` and ``_``
    dropped, spaces turned into ``-`` (``"1.1 PGD"`` → ``"11-pgd"``)."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def docs_link(page: str, heading: str | None = None) -> str:
    """The URL of ``docs/<page>`` in the site's repository (:func:`repository_url`), at ``heading``'s anchor
    when given."""
    url = f"{docs_url()}/{page}"
    return f"{url}#{heading_anchor(heading)}" if heading else url


# The documentation of each topic that is not a measurement: (page, heading) in docs/. A measurement's is
# its own declaration (``Measurement.docs``); tests check that each heading exists (:func:`method_docs`).
METHOD_DOCS: dict[str, tuple[str, str]] = {
    "data": ("datasets.md", "The data digest"),
    "checks": ("measurements.md", "4. Reliability checks"),
    "statistics": ("measurements.md", "6. Statistics"),
}


def method_docs() -> dict[str, tuple[str, str]]:
    """Every documented method, (page, heading) in docs/ by name: :data:`METHOD_DOCS`' topics and each
    registered measurement that declares its ``docs``."""
    from invarbench.measurements import MEASUREMENTS

    return {**METHOD_DOCS, **{m.name: m.docs for m in MEASUREMENTS.in_order() if m.docs is not None}}


def method_link(name: str) -> str | None:
    """The URL of ``name``'s documentation (a topic or a measurement), or None when it declares none."""
    docs = method_docs().get(name)
    return docs_link(*docs) if docs is not None else None


@dataclass(frozen=True)
class ProtocolLine:
    """One sentence of a protocol: its ``topic`` ("Data", "L∞ robust accuracy", …), the ``text`` in plain
    words, and ``link``, the http(s) URL of the method's documentation (None: none)."""

    topic: str
    text: str
    link: str | None = None


def number(value: float) -> str:
    """A setting as a reader writes it: ``8/255`` (or ``0.5/255``) for a multiple of 0.1/255 below 1 that
    is not a round decimal, else the shortest decimal (``0.3``, ``2``, ``1,000``)."""
    value = float(value)
    if value.is_integer():
        return f"{int(value):,}"
    k = value * 255
    if 0 < value < 1 and abs(k - round(k, 1)) < 1e-9 and f"{value:g}" != f"{value:.3f}".rstrip("0"):
        return f"{round(k, 1):g}/255"
    return f"{value:g}"


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _split_size(dataset: str) -> int | None:
    """The size of the data set's test split, from its registered description ("… / 10,000 test")."""
    from invarbench.data.registry import DATASETS

    if dataset not in DATASETS:
        return None
    found = re.search(r"([\d,]+) test\b", DATASETS.get(dataset).description)
    return int(found.group(1).replace(",", "")) if found else None


def _expected_digest(dataset: str, n: int) -> str | None:
    from invarbench.data.digests import EXPECTED_DIGESTS

    return EXPECTED_DIGESTS.get(dataset, {}).get(n)


def _where(settings: Mapping[str, Any], *, brief: bool = False) -> str:
    """Which images a suite evaluates: "the first 1,000 images of the 10,000-image mnist test split, in
    published order (" :data:`WHY_FIRST_EXAMPLES` ")" when they are not the whole split; ``brief``: without
    the order and the why."""
    dataset, n = str(settings.get("dataset", "?")), int(settings.get("num_examples", 0))
    total = _split_size(dataset)
    if total is not None and n >= total:
        return f"all {_count(total, 'image')} of the {dataset} test split"
    where = f"the first {_count(n, 'image')} of the " + (f"{total:,}-image " if total is not None else "")
    where += f"{dataset} test split"
    if brief:
        return where
    return where + ", in published order" + (f" ({WHY_FIRST_EXAMPLES})" if total is not None else "")


def _data_line(settings: Mapping[str, Any], digest: str | None) -> ProtocolLine:
    dataset, n = str(settings.get("dataset", "?")), int(settings.get("num_examples", 0))
    where = _where(settings)
    digest = digest or _expected_digest(dataset, n)
    text = f"Every model is evaluated on {where}."
    if digest:
        text += (
            f" Their data digest is {digest}: the sha256 of those images and labels, the same whatever file "
            "they were read from, so a run on other images is never ranked here."
        )
    return ProtocolLine("Data", text, docs_link(*METHOD_DOCS["data"]))


def _norm_name(norm: str) -> str:
    return {"linf": "L∞", "l2": "L2"}.get(norm, norm)


def _pgd_line(norm: str, cfg: Mapping[str, Any]) -> ProtocolLine:
    eps, steps = float(cfg["eps"]), int(cfg["steps"])
    step = cfg.get("step_size")
    step = 2.5 * eps / steps if step is None else float(step)
    restarts = int(cfg.get("restarts", 1))
    start = "a random start in the ball" if cfg.get("random_start", True) else "the clean image"
    text = (
        f"The share of images still classified correctly within an {_norm_name(norm)} ball of radius "
        f"ε = {number(eps)} (pixels in [0, 1]). PGD: {_count(steps, 'step')} of {number(step)} from {start}, "
        f"{_count(restarts, 'restart')}."
    )
    apgd = cfg.get("apgd")
    if apgd:
        targets = int(apgd.get("targets", 9))
        text += (
            f" Then APGD-CE ({_count(int(apgd['steps']), 'step')}, {_count(int(apgd.get('restarts', 1)), 'restart')}) "
            f"and APGD-T ({_count(int(apgd['steps']), 'step')} for each of the "
            f"{_count(targets, 'most likely other class', 'most likely other classes')}), "
            "each on the images the attacks before it left robust (AutoAttack's cascade): an image counts as robust "
            "only if no attack broke it."
        )
    else:
        text += " PGD alone (this suite version runs no APGD attacks)."
    return ProtocolLine(f"{_norm_name(norm)} robust accuracy", text, method_link(f"pgd_{norm}"))


def _min_norm_line(cfg: Mapping[str, Any]) -> ProtocolLine:
    text = (
        f"Without a budget: per image, the smallest L2 perturbation found that changes the "
        f"prediction, by FMN (the fast minimum-norm attack, {_count(int(cfg['steps']), 'step')}) refined onto the "
        f"decision boundary by {_count(int(cfg.get('refine_steps', 20)), 'bisection step')}"
    )
    endpoints = int(cfg.get("search_endpoints", 0))
    if endpoints:
        text += (
            f", or by a gradient-free boundary search along the segments to the {_count(endpoints, 'nearest image')} "
            "of other classes, whichever is closer"
        )
    text += "; the board shows the median over all images (a misclassified image counts as 0)."
    return ProtocolLine("Minimal L2 distance", text, method_link("min_norm"))


def _nspgd_line(cfg: Mapping[str, Any], n: int) -> ProtocolLine:
    pairs = cfg.get("pairs") or {}
    count = min(int(pairs.get("num_pairs", 0)), n) if n else int(pairs.get("num_pairs", 0))
    rule = (
        "a target image of another class drawn with the suite's seed"
        if pairs.get("rule", "seeded_other_class") == "seeded_other_class"
        else "the next image of another class as its target"
    )
    text = (
        f"Excessive invariance: each of the first {_count(count, 'image')} (those the model classifies correctly) "
        f"walks toward {rule}, in steps of "
        f"η = {number(float(cfg['eta']))} of the remaining way, projected so that the model's confidence in the "
        f"source class stays put; a step that lowers it by δ = {number(float(cfg['delta']))} or more ends the walk, "
        f"after at most {_count(int(cfg['max_iter']), 'step')}. Closure: the share of the way to the target covered "
        "(higher: more invariant)."
    )
    return ProtocolLine("NSPGD", text, method_link("nspgd"))


def _path_width_line(cfg: Mapping[str, Any]) -> ProtocolLine:
    radii = [number(float(r)) for r in cfg["radii"]]
    points = [int(p) for p in cfg["points"]]
    text = (
        f"On the NSPGD walks of the first {_count(int(cfg['max_pairs']), 'pair')}, at "
        f"{_count(len(points), 'point')} along each walk (steps {', '.join(map(str, points))}), the model's "
        "confidence in the source class in "
        f"{_count(int(cfg['directions']), 'random direction')} off the path at L2 radii {', '.join(radii)}; a point's "
        f"width is the radius where the {number(100 * float(cfg['q_lo']))} % quantile of that confidence falls below "
        f"{number(100 * float(cfg['width_fraction']))} % of its value on the path (at most {radii[-1]}); "
        "the board shows the mean over points and pairs (wider: more invariant)."
    )
    return ProtocolLine("Path width", text, method_link("path_width"))


def _ece_line(cfg: Mapping[str, Any]) -> ProtocolLine:
    text = (
        f"The expected calibration error of the clean predictions over {_count(int(cfg['bins']), 'bin')} "
        "of equal confidence width (lower: confidence closer to accuracy)."
    )
    return ProtocolLine("Calibration", text, method_link("ece"))


def _human_line(cfg: Mapping[str, Any]) -> ProtocolLine:
    sets = list(cfg.get("sets") or [])
    text = (
        f"The model's agreement with human labels on the invariance examples of Tramèr et "
        f"al. (ICML 2020), sets {', '.join(sets)}: images changed until humans gave another label (does the model "
        "follow them?) or kept it."
    )
    return ProtocolLine("Human-judged invariance", text, method_link("human_invariance"))


def _checks_line(cfg: Mapping[str, Any]) -> ProtocolLine:
    text = (
        f"On the first {_count(int(cfg.get('examples', 100)), 'image')}: randomised outputs, "
        "probabilities instead of logits, zero or NaN gradients, batch-dependent outputs, and a gradient-free search "
        "that beats the gradient attacks; a model that fails one carries a flag."
    )
    return ProtocolLine("Reliability checks", text, docs_link(*METHOD_DOCS["checks"]))


def _other_line(name: str, cfg: Any) -> ProtocolLine:
    """A measurement this module does not describe (a plug-in): its registered summary, else its settings."""
    from invarbench.measurements import MEASUREMENTS

    text = ""
    if name in MEASUREMENTS and MEASUREMENTS.get(name).summary is not None and MEASUREMENTS.get(name).settings:
        try:
            text = MEASUREMENTS.get(name).summary(MEASUREMENTS.get(name).settings(**cfg))
        except (TypeError, ValueError):
            text = ""
    if not text:
        items = cfg.items() if isinstance(cfg, Mapping) else []
        text = ", ".join(f"{k} = {v}" for k, v in items) or "no settings"
    return ProtocolLine(name, f"{text}.", method_link(name))


def protocol_lines(settings: Mapping[str, Any], *, digest: str | None = None) -> list[ProtocolLine]:
    """A suite's settings as plain-language lines, in the order a run measures.

    ``settings``: a suite's settings as :meth:`invarbench.suites.Suite.settings` gives them and a run
    records them (``suite_settings``): ``dataset``, ``num_examples``, ``seed``, ``checks`` and
    ``measurements`` (name → that measurement's settings). ``digest``: the data digest the runs recorded
    ("v1:<sha256>"); None takes the expected digest of the data set's first ``num_examples`` test images
    (:data:`invarbench.data.digests.EXPECTED_DIGESTS`) where it is known. Returns the data line, then a
    line per measurement (PGD L∞ and L2, minimal distance, NSPGD, path width, calibration, human-judged
    invariance, any other measurement by its registered summary; clean accuracy needs none), then the
    reliability checks. Raises ``KeyError`` when a measurement's settings lack a field it always has
    (not a suite's settings)."""
    measurements: Mapping[str, Any] = settings.get("measurements") or {}
    n = int(settings.get("num_examples", 0))
    lines = [_data_line(settings, digest)]
    for name, cfg in measurements.items():
        if name == "clean":
            continue
        if name in ("pgd_linf", "pgd_l2"):
            lines.append(_pgd_line(name.removeprefix("pgd_"), cfg))
        elif name == "min_norm":
            lines.append(_min_norm_line(cfg))
        elif name == "nspgd":
            lines.append(_nspgd_line(cfg, n))
        elif name == "path_width":
            lines.append(_path_width_line(cfg))
        elif name == "ece":
            lines.append(_ece_line(cfg))
        elif name == "human_invariance":
            lines.append(_human_line(cfg))
        else:
            lines.append(_other_line(name, cfg))
    if settings.get("checks"):
        lines.append(_checks_line(settings["checks"]))
    return lines


def protocol_summary(settings: Mapping[str, Any]) -> str:
    """A suite's settings (as :func:`protocol_lines` takes them) in one sentence, for a suite version whose
    one-line description is not registered here: the images, then what is measured, e.g. "All 1,000 images
    of the mnist5k test split: L∞ robust accuracy (ε = 0.3), L2 robust accuracy (ε = 2), minimal L2
    distance, NSPGD, path width, calibration, reliability checks." Raises ``KeyError`` as
    :func:`protocol_lines` does."""
    measurements: Mapping[str, Any] = settings.get("measurements") or {}
    topics = []
    for line in protocol_lines(settings)[1:]:
        topic = line.topic[0].lower() + line.topic[1:] if line.topic[1:2].islower() else line.topic
        norm = {"L∞ robust accuracy": "pgd_linf", "L2 robust accuracy": "pgd_l2"}.get(line.topic)
        if norm is not None:
            topic += f" (ε = {number(float(measurements[norm]['eps']))})"
        topics.append(topic)
    where = _where(settings, brief=True)
    return f"{where[0].upper()}{where[1:]}" + (f": {', '.join(topics)}." if topics else ".")


def intervals_line() -> ProtocolLine:
    """How the intervals are computed, for a board's footnote."""
    return ProtocolLine(
        "Intervals",
        "Every number comes with its 95 % interval: Wilson for accuracies, bootstrap for the median distance and "
        "the calibration error, normal for the means of NSPGD and path widths.",
        docs_link(*METHOD_DOCS["statistics"]),
    )
