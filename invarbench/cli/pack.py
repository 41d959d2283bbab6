"""``invarbench pack``: turn your own model into a torch.export program (.pt2) for a card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from invarbench.cli.common import user_errors, yaml_mapping


def pack_command(
    spec: Annotated[
        str,
        typer.Argument(
            metavar="MODULE:FACTORY",
            help="MODULE:FACTORY that returns your nn.Module, e.g. 'mynet:build' or 'path/to/mynet.py:build' "
            "(an nn.Module instance works too).",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option(metavar="FILE.pt2", help="The .pt2 file to write.", show_default=False)],
    input_size: Annotated[
        tuple[int, int, int],
        typer.Option(
            metavar="C H W",
            help="CHANNELS HEIGHT WIDTH of one input image, e.g. --input-size 3 32 32.",
            show_default=False,
        ),
    ],
    weights: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="State dict to load first: .safetensors, or a torch checkpoint (read with weights_only=True).",
            show_default=False,
        ),
    ] = None,
    kwargs: Annotated[
        str | None,
        typer.Option(
            "--kwargs",
            metavar="YAML",
            help="Keyword arguments for FACTORY as YAML/JSON, e.g. '{depth: 28}'.",
            show_default=False,
        ),
    ] = None,
    num_classes: Annotated[
        int | None, typer.Option(help="Fail unless the model returns this many logits.", show_default=False)
    ] = None,
) -> None:
    """Export your model (your code, on your machine) to a .pt2 file that invarbench loads without your code.

    The model is put in eval mode and exported with a dynamic batch dimension, in its own floating
    dtype (a .half() or .bfloat16() model stays in half precision; invarbench casts its float32
    images to that dtype); the file is then loaded back through invarbench's own checks and
    compared with your module. Prints the dtype, the sha256 and the card fields for the file.
    Normalisation may stay inside the model (then leave mean and std out of the card) or go into
    the card's preprocessing, not both.
    """
    from invarbench.models.pack import pack

    with user_errors():
        factory_kwargs = None if kwargs is None else yaml_mapping(kwargs, "--kwargs", "{depth: 28}")
        result = pack(spec, out, input_size, weights=weights, factory_kwargs=factory_kwargs, num_classes=num_classes)
    dtype = str(result.dtype).removeprefix("torch.")
    typer.echo(
        f"Wrote {result.path} ({result.size_bytes:,} bytes): {result.num_classes} logits for {dtype} inputs "
        f"{list(result.input_size)}, max |difference| to your module {result.max_abs_diff:.2g}"
    )
    typer.echo(f"sha256 {result.sha256}")
    typer.echo("Card fields (see docs/model-cards.md):")
    typer.echo(f"  num_classes: {result.num_classes}")
    typer.echo("  format: torch-export")
    typer.echo(f"  source: {{path: {result.path.name}, sha256: {result.sha256}}}")
    typer.echo(f"  preprocessing: {{input_size: {list(result.input_size)}}}")
