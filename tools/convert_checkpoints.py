"""Convert the public checkpoints (PyTorch pickles) into the safetensors files beside their cards.

    python tools/convert_checkpoints.py                 # convert all, write model_cards/<dataset>/<name>.safetensors
    python tools/convert_checkpoints.py --check         # re-convert into a temporary folder, compare bytes
    python tools/convert_checkpoints.py --dataset mnist mnist/eran-fc6x100   # some of them

For each conversion in ``tools/checkpoints/<dataset>.py`` the step reads the card
(``model_cards/<dataset>/<name>.yaml``), checks the upstream file's sha256 against
``origin.sha256``, loads it with ``torch.load(path, map_location="cpu", weights_only=True)`` (this
script is the only place where a pickle is read, and only one whose checksum the card pins),
selects and renames its tensors, loads them strictly into the card's registered architecture
(every parameter present, none left over, every shape equal) and writes the tensors as
safetensors with deterministic bytes: keys sorted, contiguous, metadata ``{"format": "pt"}``. The
same upstream file therefore gives the same bytes on every machine, and ``--check`` proves that
the committed files are what the upstream files convert to (and that each card's
``source.sha256`` is theirs).

Upstream files are read from ``--source`` (default ``../shared/external/checkpoints`` next to the
repository). Each problem is one ``error:`` line naming the card and the fix; the other
conversions still run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import pkgutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make 'tools' and 'invarbench' importable
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from safetensors.torch import save  # noqa: E402

from invarbench.cards.catalog import load_card  # noqa: E402
from invarbench.errors import InvarbenchError  # noqa: E402
from invarbench.models.architectures import build_architecture  # noqa: E402
from tools import checkpoints  # noqa: E402
from tools.checkpoints import Conversion, ConversionError  # noqa: E402

DEFAULT_SOURCE = ROOT.parent / "shared" / "external" / "checkpoints"
DEFAULT_CARDS = ROOT / "model_cards"
METADATA = {"format": "pt"}
# Batch-norm step counters only matter for training; old checkpoints lack them (the loader allows that too).
_OPTIONAL_SUFFIXES = (".num_batches_tracked",)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def datasets() -> list[str]:
    """The data sets that have a conversion module in ``tools/checkpoints``."""
    return sorted(m.name for m in pkgutil.iter_modules(checkpoints.__path__) if not m.name.startswith("_"))


def conversions(dataset: str) -> list[Conversion]:
    return list(importlib.import_module(f"tools.checkpoints.{dataset}").CONVERSIONS)


def strict_state(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load ``state`` into ``module``: every key present and no other, equal shapes and dtypes.

    Raises :class:`ConversionError` naming the keys that differ."""
    expected = module.state_dict()
    missing = sorted(k for k in expected if k not in state and not k.endswith(_OPTIONAL_SUFFIXES))
    unexpected = sorted(k for k in state if k not in expected)
    misshaped = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state and (state[k].shape != expected[k].shape or state[k].dtype != expected[k].dtype)
    )
    problems = [
        f"{label}: {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("other shape or dtype", misshaped))
        if keys
    ]
    if problems:
        raise ConversionError("the tensors do not fit the card's architecture (" + "; ".join(problems) + ")")
    module.load_state_dict(state, strict=False)


def convert(conversion: Conversion, source: Path, cards_dir: Path) -> tuple[bytes, Path, str]:
    """The safetensors bytes of one conversion, the committed file's path, and the card's ``source.sha256``.

    Raises :class:`ConversionError` or :class:`InvarbenchError` (one line each)."""
    card_path = cards_dir / conversion.dataset / f"{conversion.name}.yaml"
    ref = load_card(card_path, check_location=True, cards_dir=cards_dir)
    card = ref.card
    if card.origin is None:
        raise ConversionError(f"{card_path} has no 'origin': a converted checkpoint records its upstream file")
    if card.architecture is None or card.source.path is None or card.source.sha256 is None:
        raise ConversionError(f"{card_path} must be a safetensors card with a local source.path and sha256")
    licence = card_path.parent / conversion.licence
    if not licence.is_file():
        raise ConversionError(f"the licence notice {licence} is missing: copy the upstream LICENSE file there")
    upstream = source / conversion.upstream
    if not upstream.is_file():
        raise ConversionError(
            f"upstream file {upstream} not found: pass --source DIR, the folder that holds "
            f"{conversion.upstream} (fetched from {card.origin.repository} at {card.origin.commit[:12]})"
        )
    digest = sha256_file(upstream)
    if digest != card.origin.sha256:
        raise ConversionError(
            f"{upstream} has sha256 {digest}, the card's origin.sha256 is {card.origin.sha256}: "
            f"take the file from {card.origin.repository} at commit {card.origin.commit}, path {card.origin.path}"
        )
    obj = torch.load(upstream, map_location="cpu", weights_only=True)
    state = conversion.select(obj)
    module = build_architecture(card.architecture.name, **card.architecture.kwargs)
    strict_state(module, state)
    tensors = {k: state[k].detach().to("cpu").contiguous().clone() for k in sorted(state)}
    data = save(tensors, metadata=dict(METADATA))
    return data, card_path.parent / card.source.path, card.source.sha256


def run(selected: list[Conversion], source: Path, cards_dir: Path, check: bool) -> int:
    failures = 0
    with tempfile.TemporaryDirectory(prefix="invarbench-convert-") as tmp:
        for conversion in selected:
            try:
                data, target, card_sha = convert(conversion, source, cards_dir)
            except (ConversionError, InvarbenchError, OSError) as exc:
                print(f"error: {conversion.card}: {exc}", file=sys.stderr)
                failures += 1
                continue
            digest = sha256_bytes(data)
            if check:
                fresh = Path(tmp) / conversion.dataset / target.name
                fresh.parent.mkdir(parents=True, exist_ok=True)
                fresh.write_bytes(data)
                if not target.is_file():
                    problem = f"{target} is missing: run python tools/convert_checkpoints.py {conversion.card}"
                elif fresh.read_bytes() != target.read_bytes():
                    problem = f"{target} differs from the conversion of the upstream file (sha256 {digest})"
                elif card_sha != digest:
                    problem = f"the card's source.sha256 is {card_sha}, the file's is {digest}: correct the card"
                else:
                    print(f"ok {conversion.card}  {target.name}  sha256 {digest}")
                    continue
                print(f"error: {conversion.card}: {problem}", file=sys.stderr)
                failures += 1
                continue
            target.write_bytes(data)
            note = "" if card_sha == digest else f"  (set the card's source.sha256 to {digest})"
            print(f"wrote {target}  sha256 {digest}{note}")
            if note:
                failures += 1
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "cards", nargs="*", metavar="CARD_ID", help="convert only these cards (e.g. mnist/eran-fc6x100)"
    )
    parser.add_argument("--dataset", choices=datasets(), help="convert only this data set's checkpoints")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder of the upstream files")
    parser.add_argument("--cards-dir", type=Path, default=DEFAULT_CARDS, help="the model cards folder")
    parser.add_argument("--check", action="store_true", help="convert into a temporary folder and compare bytes")
    args = parser.parse_args(argv)
    selected = [c for d in ([args.dataset] if args.dataset else datasets()) for c in conversions(d)]
    unknown = sorted(set(args.cards) - {c.card for c in selected})
    if unknown:
        print(
            f"error: no conversion for {', '.join(unknown)}; known: {', '.join(c.card for c in selected)}",
            file=sys.stderr,
        )
        return 1
    if args.cards:
        selected = [c for c in selected if c.card in args.cards]
    return run(selected, args.source, args.cards_dir, args.check)


if __name__ == "__main__":
    sys.exit(main())
