"""The results door: every check a results document from outside passes before it is imported or published.

Results files (``leaderboard/results/**.json``, the interchange format of :mod:`invarbench.store.export`)
reach the repository by pull request from people we do not know, and ``invarbench results import`` and
``invarbench site build --results`` read them. A document is therefore read as strictly as a model card:

- **the bytes**: at most :data:`MAX_RESULTS_FILE_BYTES` per file, strict JSON (no bare ``NaN``), no
  key twice in one object (a reviewer reads the first, a plain parser keeps the last);
- **names that become paths** (the card id, its data set, the suite name, artifact names and paths)
  match the card-id grammar (:data:`invarbench.cards.schema.NAME_RE`): no ``..``, ``/``, absolute
  paths or upper case;
- **the card** (``model.card_yaml``) is parsed by the card loader (the same guards as a card file:
  size, duplicate keys, tags, anchors and aliases) and validated by the card schema; it must be the
  card the document names (id, data set, display name, training method, sha256, Hub pin);
- **every metric** is one the measurement registry declares, and lies in its spec's declared range
  (:class:`invarbench.measurements.MetricSpec` ``lower``/``upper``/``finite``); ``n`` is a whole
  number from 0 and at most the number of values its measurement stored;
- **the metrics follow from the per-example values**: they are recomputed with the suite settings the
  run recorded (or the packaged suite of that name and version) by the same aggregation the runner
  uses, and must be equal to the last bit (:func:`check_metrics_follow`); the flags read from the values
  must be those the run carries;
- **artifacts**: at most :data:`MAX_ARTIFACT_BYTES` each and :data:`MAX_ARTIFACTS_BYTES` together.

Every problem is one line that names the file and the field and ends with the fix
(:class:`invarbench.errors.ValidationError`); nothing is written before every document passed.

What the door cannot check: that the per-example values are what the model computes (``invarbench
results verify`` re-runs batches for that), or who made the file. The ``content_sha256`` a document
carries is a checksum of its content that anyone can recompute after editing it: it catches accidents
(a hand edit, a bad merge), not forgery.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from invarbench.errors import InvarbenchError, ValidationError

if TYPE_CHECKING:
    from invarbench.store.documents import ResultsDoc

MAX_RESULTS_FILE_BYTES = 64 * 2**20  # a full standard run on 10 000 examples is a few MB
MAX_ARTIFACT_BYTES = 8 * 2**20  # one image strip is a few KB
MAX_ARTIFACTS_BYTES = 64 * 2**20  # all the artifacts of one document together
MAX_TEXT_CHARS = 2000  # a text field of the run (device, versions, data source, a flag): shown on the site
_SHOWN = 60  # characters of a refused value quoted in an error
FIX = "fix the file or re-export it with 'invarbench results export'"


def shown(value: Any) -> str:
    """A value as an error line quotes it: its repr, cut to a few dozen characters."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def one_line(text: str, limit: int = 1000) -> str:
    """An error message as the door prints it: one line (a control or line-separator character from the file
    written as its escape), at most ``limit`` characters."""
    line = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return line if len(line) <= limit else line[: limit - 1] + "…"


# --- the bytes -------------------------------------------------------------------------------------
def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _reject_constant(name: str) -> float:
    raise ValueError(f'{name} is not JSON (write non-finite numbers as the strings "NaN", "Infinity", "-Infinity")')


def read_results_file(file: Path) -> Any:
    """The parsed JSON of a results file, read strictly.

    Raises :class:`ValidationError` (one line naming ``file``) for a file over
    :data:`MAX_RESULTS_FILE_BYTES`, text that is not UTF-8 JSON, a bare ``NaN``/``Infinity``, or an
    object with a key twice.
    """
    size = file.stat().st_size
    if size > MAX_RESULTS_FILE_BYTES:
        raise ValidationError(
            f"{file} is {size:,} bytes; a results file is at most {MAX_RESULTS_FILE_BYTES:,} bytes (export runs "
            "one per file with 'invarbench results export --out FOLDER')"
        )
    with open(file, "rb") as fh:
        raw = fh.read(MAX_RESULTS_FILE_BYTES + 1)  # a file that grew since stat() is still capped
    if len(raw) > MAX_RESULTS_FILE_BYTES:
        raise ValidationError(f"{file} is over {MAX_RESULTS_FILE_BYTES:,} bytes, the most a results file may be")
    try:
        return json.loads(
            raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_object_without_duplicates
        )
    except _DuplicateKey as exc:
        raise ValidationError(
            f"{file}: the key {shown(exc.key)} appears twice in one object (a reader would see the first, the "
            f"import the last): keep one; {FIX}"
        ) from None
    except RecursionError:
        raise ValidationError(f"{file} is not valid JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ValidationError(f"{file} is not valid JSON: {str(exc)[:200]}") from None


# --- names that become paths ------------------------------------------------------------------------
def is_name(value: object) -> bool:
    """Whether ``value`` is one name of the card-id grammar (lowercase letters, digits, '.', '_', '-'; no '..')."""
    from invarbench.cards.schema import NAME_RE

    return isinstance(value, str) and bool(NAME_RE.match(value)) and ".." not in value and len(value) <= 200


def is_card_id(value: object) -> bool:
    """Whether ``value`` is a card id ``<dataset>/<name>`` of two :func:`is_name` parts."""
    return isinstance(value, str) and value.count("/") == 1 and all(is_name(p) for p in value.split("/"))


def check_name(value: object, where: str, *, card_id: bool = False, fix: str = FIX) -> None:
    """Raise ValidationError (naming ``where``, ending with ``fix``) unless ``value`` is a name (or, with
    ``card_id``, a card id) of the card-id grammar."""
    if not (is_card_id(value) if card_id else is_name(value)):
        grammar = "'<dataset>/<name>', each part" if card_id else "a name"
        raise ValidationError(
            f"{where} = {shown(value)} must be {grammar} in lowercase letters, digits, '.', '_' or '-' (no '..', "
            f"'/' or leading '.'), since it becomes part of a file path; {fix}"
        )


def inside(folder: Path, path: Path) -> Path:
    """``path`` resolved, after checking that it lies under ``folder`` (resolved: links followed).

    Raises ValidationError when it does not: a name that would write or read outside its folder.
    """
    root = folder.resolve()
    target = path.resolve()
    if target != root and root not in target.parents:
        raise ValidationError(f"{path} lies outside {folder}: refused (a name in the results is not a plain name)")
    return target


# --- metrics against their registered specs -----------------------------------------------------------
def _bound(x: float) -> str:
    return "∞" if x == math.inf else "-∞" if x == -math.inf else f"{x:g}"


def _measurement_of(metric: str) -> Any:
    from invarbench.measurements import MEASUREMENTS

    return next((m for m in MEASUREMENTS.in_order() if any(s.name == metric for s in m.metrics)), None)


def check_metric_specs(doc: ResultsDoc, source: str, counts: dict[str, int]) -> None:
    """Each metric of ``doc`` against its registered spec: known, once, in range, finite where the spec says,
    ``stderr`` ≥ 0, ``ci_low`` ≤ ``ci_high``, ``0 ≤ n ≤`` the values its measurement stored (``counts``:
    measurement -> number of stored values; a measurement that stores none reads others': the most of any).
    Raises ValidationError naming the first field that is not."""
    from invarbench.measurements import metric_spec, metric_specs

    seen: set[str] = set()
    for i, m in enumerate(doc.metrics):
        at = f"{source}: metrics[{i}]"
        spec = metric_spec(m.name)
        if spec is None:
            known = ", ".join(s.name for s in metric_specs())
            raise ValidationError(
                f"{at}.name = {shown(m.name)} is not a metric this invarbench knows ({known}); a measurement of "
                "one's own is loaded with $INVARBENCH_MEASUREMENTS"
            )
        if m.name in seen:
            raise ValidationError(f"{at}.name = {shown(m.name)} appears twice in metrics; {FIX}")
        seen.add(m.name)
        at = f"{source}: run.metrics.{m.name}"
        v = m.value
        if v is None:
            raise ValidationError(f'{at}.value is null; a metric\'s value is a number or "NaN"; {FIX}')
        if not math.isnan(v):
            if math.isinf(v) and (spec.finite or v < 0):
                raise ValidationError(f"{at}.value = {shown(v)} is not finite, which {m.name} always is; {FIX}")
            if not spec.lower <= v <= spec.upper:
                raise ValidationError(
                    f"{at}.value = {v:g} is outside [{_bound(spec.lower)}, {_bound(spec.upper)}] ({spec.unit}); {FIX}"
                )
        if m.stderr is not None and (m.stderr < 0 or m.stderr == math.inf):
            raise ValidationError(f"{at}.stderr = {shown(m.stderr)} must be a number from 0; {FIX}")
        if m.ci_low is not None and m.ci_high is not None and m.ci_low > m.ci_high:
            raise ValidationError(f"{at}.ci_low = {m.ci_low:g} is above ci_high = {m.ci_high:g}; {FIX}")
        if m.n < 0:
            raise ValidationError(f"{at}.n = {m.n} is negative: n counts examples; {FIX}")
        measurement = _measurement_of(m.name)
        if measurement.fields:
            stored, of = counts.get(measurement.name, 0), f"per-{measurement.per} value(s) of {measurement.name}"
        else:  # it stores nothing of its own and reads the values of others (ECE reads clean's)
            stored, of = max(counts.values(), default=0), "values of any measurement"
        if m.n > stored:
            raise ValidationError(f"{at}.n = {m.n}, but the document stores {stored} {of}; {FIX}")


# --- the per-example values ----------------------------------------------------------------------------
def per_example_values(doc: ResultsDoc, source: str) -> tuple[dict[str, dict[str, list]], dict[str, int]]:
    """The document's per-example values concatenated in batch order (as the runner's aggregation reads
    them), and per measurement the number of values (examples, or pairs) it stored.

    Checks the shape on the way: each (measurement, batch) once; in a batch, only fields a registered
    measurement declares, all of one length (what the values are, the aggregation checks).
    Raises ValidationError naming the batch and the field."""
    from invarbench.measurements import MEASUREMENTS
    from invarbench.store.codec import decode_floats

    seen: set[tuple[str, int]] = set()
    batches: dict[str, list[tuple[int, dict[str, list]]]] = {}
    counts: dict[str, int] = {}
    for i, e in enumerate(doc.examples):
        at = f"{source}: examples[{i}] ({shown(e.measurement)} from {e.batch_start})"
        key = (e.measurement, e.batch_start)
        if key in seen:
            raise ValidationError(f"{at}: this measurement's batch appears twice; {FIX}")
        seen.add(key)
        values = decode_floats(e.values)
        lengths = {len(v) for v in values.values()}
        if len(lengths) > 1:
            raise ValidationError(f"{at}.values: its fields have different lengths {sorted(lengths)}; {FIX}")
        if e.measurement in MEASUREMENTS:  # a field it lacks (an older version's file) the aggregation asks for
            declared = set(MEASUREMENTS.get(e.measurement).fields)
            if not set(values) <= declared:
                wrong = sorted(set(values) - declared)
                raise ValidationError(
                    f"{at}.values: fields {', '.join(map(shown, wrong))} are not among those {e.measurement} "
                    f"stores ({', '.join(sorted(declared))}); {FIX}"
                )
        batches.setdefault(e.measurement, []).append((e.batch_start, values))
        counts[e.measurement] = counts.get(e.measurement, 0) + (lengths.pop() if lengths else 0)
    merged: dict[str, dict[str, list]] = {}
    for measurement, items in batches.items():
        into = merged.setdefault(measurement, {})
        for _, values in sorted(items, key=lambda item: item[0]):
            for name, vals in values.items():
                into.setdefault(name, []).extend(vals)
    return merged, counts


# --- the metrics follow from the values ------------------------------------------------------------------
class NotRecomputable(ValidationError):
    """A document whose metrics cannot be recomputed: it recorded no suite settings, and this invarbench has
    no packaged suite of its name and version (a file of an older suite version)."""


def recorded_suite(
    suite_name: str,
    suite_version: int,
    dataset: str,
    settings: dict[str, Any] | None,
    settings_hash: str | None,
    where: str,
) -> Any:
    """The suite a run was measured with (an :class:`invarbench.suites.Suite`): built from the resolved
    settings it recorded (format version 3 on), after checking them against their recorded hash; for a
    run that recorded none, the packaged suite ``suite_name`` for ``dataset`` when its version is
    ``suite_version``. Raises :class:`NotRecomputable` when neither is available, ValidationError (naming
    ``where``) when the recorded settings are not valid."""
    import pydantic

    from invarbench.measurements import load_plugins
    from invarbench.suites import load_suite
    from invarbench.suites.schema import Suite

    if settings is None:
        try:
            suite = load_suite(suite_name, dataset)
        except InvarbenchError:
            suite = None
        if suite is None or suite.version != suite_version:
            raise NotRecomputable(
                f"{where}: run.suite_settings is not recorded and this invarbench has no {suite_name} v{suite_version} "
                f"for {dataset}, so its metrics cannot be recomputed from its per-example values (a file of an "
                "older suite version): evaluate the model with the current suite and export that run"
            )
        return suite
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    if hashlib.sha256(text.encode()).hexdigest() != settings_hash:
        raise ValidationError(f"{where}: run.suite_settings_hash is not the sha256 of run.suite_settings; {FIX}")
    load_plugins()
    try:
        suite = Suite.model_validate(
            {
                "name": suite_name,
                "version": suite_version,
                "dataset": dataset,
                "description": "the settings the run recorded",
                "changelog": [f"{suite_version}: as recorded by the run"],
                "num_examples": settings.get("num_examples"),
                "seed": settings.get("seed"),
                "checks": settings.get("checks", {}),
                "measurements": settings.get("measurements"),
            }
        )
    except Exception as exc:  # noqa: BLE001 - settings from outside reach every measurement's own validator
        first = exc.errors()[0]["msg"] if isinstance(exc, pydantic.ValidationError) else f"{type(exc).__name__}: {exc}"
        raise ValidationError(
            f"{where}: run.suite_settings are not the settings of a suite ({first.removeprefix('Value error, ')[:200]})"
            f"; {FIX}"
        ) from None
    if settings.get("dataset") != dataset:
        raise ValidationError(
            f"{where}: run.suite_settings.dataset = {shown(settings.get('dataset'))} is not the run's "
            f"{dataset!r}; {FIX}"
        )
    return suite


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


def check_metrics_follow(
    per_example: dict[str, dict[str, list]],
    metrics: Sequence[Any],
    flags: Iterable[str],
    suite: Any,
    where: str,
) -> None:
    """Check that ``metrics`` (objects with ``name``, ``value``, ``stderr``, ``ci_low``, ``ci_high``, ``n``:
    a results document's or a stored run's) are exactly what the suite's aggregation computes from
    ``per_example`` (the concatenated per-example values of all batches), and that the flags the
    measurements read from those values are among ``flags``, no more and no fewer.

    The same aggregation as the runner's (:func:`invarbench.evaluation.measure.aggregate`), so "exactly"
    means bit for bit. Raises ValidationError naming ``where`` and the first metric (and field) that
    does not follow; a value the aggregation cannot read (wrong type, missing field) is refused the same way.
    """
    from invarbench.attacks.checks import FLAG_NAMES
    from invarbench.measurements import aggregate, result_flags

    try:
        recomputed = {m.name: m for m in aggregate(per_example, suite)}
        read_flags = set(result_flags(per_example, suite))
    except Exception as exc:  # noqa: BLE001 - values from outside reach numeric code: any failure is a bad file
        raise ValidationError(
            f"{where}: examples: the per-example values cannot be aggregated ({type(exc).__name__}: "
            f"{str(exc)[:150]}); {FIX}"
        ) from None
    stored = {m.name: m for m in metrics}
    for name in recomputed:
        if name not in stored:
            raise ValidationError(f"{where}: run.metrics.{name} is missing; the suite's measurements compute it; {FIX}")
    for name, m in stored.items():
        again = recomputed.get(name)
        if again is None:
            raise ValidationError(
                f"{where}: run.metrics.{name} does not follow from the per-example values: the suite the run "
                f"recorded computes no {name}; {FIX}"
            )
        for field in ("value", "stderr", "ci_low", "ci_high", "n"):
            ours, theirs = getattr(m, field), getattr(again, field)
            if not (ours == theirs if field == "n" else _same(ours, theirs)):
                raise ValidationError(
                    f"{where}: run.metrics.{name}.{field} = {shown(ours)} does not follow from the per-example values "
                    f"(they give {shown(theirs)}); {FIX}"
                )
    checked = set(flags) - set(FLAG_NAMES)  # the reliability checks' flags come from the attacks, not the values
    if checked != read_flags:
        missing, extra = sorted(read_flags - checked), sorted(checked - read_flags)
        what = f"lacks {', '.join(missing)}" if missing else f"has {', '.join(extra)}, which the values do not give"
        raise ValidationError(f"{where}: run.flags {what}; {FIX}")


# --- the card inside ------------------------------------------------------------------------------------
def check_card(doc: ResultsDoc, source: str) -> Any:
    """Parse ``model.card_yaml`` with the card loader, validate it with the card schema, and check that it is
    the card the document names. Returns the :class:`invarbench.cards.schema.ModelCard`."""
    from invarbench.cards.catalog import card_from_data, parse_card_yaml

    model = doc.model
    where = f"{source}: model.card_yaml"
    card = card_from_data(parse_card_yaml(model.card_yaml, where), where)
    if hashlib.sha256(model.card_yaml.encode("utf-8")).hexdigest() != model.card_sha256:
        raise ValidationError(f"{source}: model.card_sha256 is not the sha256 of model.card_yaml; {FIX}")
    hub = card.source.hub
    expected: list[tuple[str, Any, Any]] = [
        ("card_id", model.card_id, card.id),
        ("dataset", model.dataset, card.dataset),
        ("name", model.name, card.name),
        ("training_method", model.training_method, card.training.method),
        ("file_sha256", model.file_sha256, hub.sha256 if hub is not None else card.source.sha256),
        ("hub_repo", model.hub_repo, hub.repo_id if hub is not None else None),
        ("hub_revision", model.hub_revision, hub.revision if hub is not None else None),
    ]
    for field, value, card_value in expected:
        if value != card_value:
            raise ValidationError(
                f"{source}: model.{field} = {shown(value)} is not the card's {shown(card_value)} (model.card_yaml); "
                f"{FIX}"
            )
    return card


# --- everything -------------------------------------------------------------------------------------------
def check_document(doc: ResultsDoc, source: str, *, allow_unproven: bool = False) -> str | None:
    """Every check of the results door on a document that parsed (:func:`invarbench.store.documents.parse_document`):
    names, the card inside, metrics against their specs, the metrics following from the per-example values.

    Raises ValidationError, one line naming ``source`` and the field, at the first problem. A document whose
    metrics cannot be recomputed (:class:`NotRecomputable`: an old file of a suite version this invarbench
    does not have) is refused too, unless ``allow_unproven``: then every other check still applies and the
    reason is returned (None for a document that proved itself)."""
    model, run = doc.model, doc.run
    check_name(model.card_id, f"{source}: model.card_id", card_id=True)
    check_name(model.dataset, f"{source}: model.dataset")
    check_name(run.dataset, f"{source}: run.dataset")
    check_name(run.suite_name, f"{source}: run.suite_name")
    if run.dataset != model.dataset or not model.card_id.startswith(f"{model.dataset}/"):
        raise ValidationError(
            f"{source}: run.dataset = {shown(run.dataset)} is not the model's data set {shown(model.dataset)} "
            f"(model.card_id {shown(model.card_id)}); {FIX}"
        )
    texts = [
        *((f"run.{key}", value) for key, value in run.model_dump().items()),
        *((f"run.flags[{i}]", flag) for i, flag in enumerate(run.flags)),
        *((f"artifacts[{i}].media_type", a.media_type) for i, a in enumerate(doc.artifacts)),
    ]
    for field, value in texts:
        if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
            raise ValidationError(
                f"{source}: {field} is {len(value):,} characters long; a text field is at most {MAX_TEXT_CHARS:,}; "
                f"{FIX}"
            )
    if run.status != "finished":
        raise ValidationError(
            f"{source}: run.status = {shown(run.status)}; results files hold finished runs only (export writes no "
            "other); finish the run and re-export it"
        )
    names: set[str] = set()
    for i, a in enumerate(doc.artifacts):
        check_name(a.name, f"{source}: artifacts[{i}].name")
        if a.name in names:
            raise ValidationError(f"{source}: artifacts[{i}].name = {shown(a.name)} appears twice; {FIX}")
        names.add(a.name)
        if a.size_bytes > MAX_ARTIFACT_BYTES:
            raise ValidationError(
                f"{source}: artifacts[{i}].size_bytes = {a.size_bytes:,} is over {MAX_ARTIFACT_BYTES:,}, the most an "
                "artifact may be"
            )
        if a.data_base64 is not None and len(a.data_base64) > 4 * (MAX_ARTIFACT_BYTES // 3 + 1):
            raise ValidationError(
                f"{source}: artifacts[{i}].data_base64 is over {MAX_ARTIFACT_BYTES:,} bytes, the most an artifact "
                "may be"
            )
        if a.path is not None:
            parts = PurePosixPath(a.path).parts
            if len(parts) != 2 or not all(is_name(p) for p in parts) or parts[1] != a.name:
                raise ValidationError(
                    f"{source}: artifacts[{i}].path = {shown(a.path)} must be '<folder>.artifacts/{a.name}' beside the "
                    f"file, in plain names; {FIX}"
                )
    total = sum(a.size_bytes for a in doc.artifacts)
    if total > MAX_ARTIFACTS_BYTES:
        raise ValidationError(
            f"{source}: artifacts: {total:,} bytes together, over {MAX_ARTIFACTS_BYTES:,}, the most one run may carry"
        )
    check_card(doc, source)
    per_example, counts = per_example_values(doc, source)
    check_metric_specs(doc, source, counts)
    clean = len(per_example.get("clean", {}).get("label", []))
    if clean != run.examples_effective:
        raise ValidationError(
            f"{source}: run.examples_effective = {run.examples_effective}, but the document stores {clean} clean "
            f"example(s); {FIX}"
        )
    try:
        suite = recorded_suite(
            run.suite_name,
            run.suite_version,
            run.dataset,
            _settings(run),
            getattr(run, "suite_settings_hash", None),
            source,
        )
    except NotRecomputable as exc:
        if allow_unproven:
            return str(exc)
        raise
    check_metrics_follow(per_example, doc.metrics, run.flags, suite, source)
    return None


def _settings(run: Any) -> dict[str, Any] | None:
    from invarbench.store.codec import decode_floats

    value = getattr(run, "suite_settings", None)
    return decode_floats(value) if isinstance(value, dict) else value


# --- URLs shown as links ------------------------------------------------------------------------------------
def http_url(value: object) -> str | None:
    """``value`` when it is an ``http://`` or ``https://`` URL without spaces or control characters, else None
    (a ``javascript:``, ``data:`` or relative URL is never made a link)."""
    if not isinstance(value, str) or len(value) > 2000:
        return None
    lowered = value.lower()
    if not lowered.startswith(("http://", "https://")) or len(value) <= len("https://"):
        return None
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        return None
    return value
