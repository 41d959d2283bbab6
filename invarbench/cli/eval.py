"""``invarbench eval``: evaluate a registered model with a suite and store the run."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from invarbench.cards import resolve_card
from invarbench.cli.common import CardsDirOption, DbOption, console, fail, progress_bars, user_errors
from invarbench.cli.outcome import outcome_markdown, render_outcome
from invarbench.cli.pending import eval_pending
from invarbench.cli.registry_help import RegistryHelp
from invarbench.cli.summary import append_summary, code, summarise_failure
from invarbench.errors import OptionError
from invarbench.evaluation import EvalOptions, distributed, evaluate
from invarbench.evaluation.runner import describe_failure, resume_hint
from invarbench.store import Store

# The flag of each evaluation option (EvalOptions' field, the Python API's keyword) that an OptionError names.
OPTION_FLAGS = {
    "suite": "--suite",
    "limit": "--limit",
    "batch_size": "--batch-size",
    "seed": "--seed",
    "device": "--device",
    "data_dir": "--data-dir",
    "data": "--data",
    "resume": "--resume",
    "precision": "--precision",
    "compile": "--compile",
}


@contextmanager
def option_errors() -> Iterator[None]:
    """An :class:`OptionError` said with the command line's flag (``--batch-size``, not ``batch_size``)
    as one line on stderr and exit code 1."""
    try:
        yield
    except OptionError as exc:
        raise fail(exc.naming(OPTION_FLAGS[exc.option])) from None


def _suite_help() -> str:
    from invarbench.measurements import MEASUREMENTS

    return (
        "Suite to run: 'standard', or 'quick' for CPUs and smoke tests; or the path of a suite file of your own "
        f"(my_suite.yaml, see docs/suites.md), whose measurements are among: {', '.join(MEASUREMENTS.names())}."
    )


def eval_command(
    model: Annotated[
        str | None,
        typer.Argument(
            help="A model card id such as 'mnist5k/lenet-standard', or a path to a card YAML file. Not with --pending.",
            show_default=False,
        ),
    ] = None,
    suite: Annotated[
        str, RegistryHelp(_suite_help, "Suite to run, or the path of a suite file of your own.")
    ] = "standard",
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Evaluate only the first N examples of the test split (published order). Such "
            "a smoke run is stored and shown, but never ranked on the leaderboard.",
            show_default=False,
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto (a CUDA GPU when available, else the CPU), cpu or cuda.")] = "auto",
    batch_size: Annotated[
        str,
        typer.Option(
            metavar="B|auto",
            help="Examples per batch: the unit of seeding, progress, storage and --resume (another size draws other "
            "random numbers). 'auto': batches of 250 (the numbers of --batch-size 250), with as many images given "
            "to the model at once as fit, found per measurement, backing off on out-of-memory errors.",
        ),
    ] = "250",
    seed: Annotated[
        int | None,
        typer.Option(
            help="Seed of every batch's random numbers (random starts, path-width directions) "
            "and of the reliability checks; the NSPGD pairs and the bootstrap intervals keep "
            "the suite's seed. Default: the suite's seed.",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of downloaded data sets (for torchvision data sets).", show_default=False),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="A custom evaluation set npz:PATH (arrays x: uint8 images, NHWC or NCHW; y: "
            "labels) that replaces the images of the card's data set; that data set still selects the "
            "suite.",
            show_default=False,
        ),
    ] = None,
    cards_dir: CardsDirOption = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the newest unfinished (killed or failed) run of this model with "
            "the same options, from its last stored batch. Without it, a new run starts.",
        ),
    ] = False,
    pending: Annotated[
        bool,
        typer.Option(
            "--pending",
            help="Instead of MODEL: evaluate every registered card without a finished full run of the current "
            "version of --suite (pending and failed ones; see 'invarbench cards status'), one after another, "
            "continuing past failures; at the end, which failed and why (exit code 1 if any did).",
        ),
    ] = False,
    precision: Annotated[
        str,
        typer.Option(
            metavar="float32|bf16",
            help="float32, or bf16: the model's forward passes under bfloat16 autocast (faster on recent GPUs; "
            "lower precision can mask gradients). Recorded as the run's model dtype.",
        ),
    ] = "float32",
    compile_model: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="torch.compile the model's network; its effect on logits and gradients is measured first and "
            "recorded with the run, whose device reads '... · torch.compile'.",
        ),
    ] = False,
    dist_timeout: Annotated[
        float,
        typer.Option(
            "--dist-timeout",
            help="Under torchrun: minutes a process waits for the others at each exchange of batches before "
            "the run fails (resumable). A process that dies fails the run at once; this catches one that hangs. "
            "Must exceed the slowest batch.",
        ),
    ] = distributed.DEFAULT_TIMEOUT_MINUTES,
) -> None:
    """Evaluate MODEL with a suite, store every score with its provenance, and print a summary.

    With --pending, every registered card that is not yet evaluated with the suite's current version.
    In GitHub Actions ($GITHUB_STEP_SUMMARY set) the outcome is also appended to the job summary.
    """
    options = EvalOptions(
        suite=suite,
        limit=limit,
        batch_size=batch_size,
        seed=seed,
        device=device,
        data_dir=data_dir,
        data=data,
        resume=resume,
        precision=precision,
        compile=compile_model,
    )
    with user_errors(), option_errors():
        ranks = distributed.ranks_from_environment(dist_timeout)
        options.validate()  # once, before anything loads
    if pending and ranks is not None:
        raise fail("--pending runs one process: launch it without torchrun, or evaluate one MODEL per torchrun")
    if pending or model is None:
        if pending and model is not None:
            raise fail(f"give MODEL or --pending, not both (got '{model}' and --pending)")
        if not pending:
            raise fail(
                "missing MODEL: a card id such as 'mnist5k/lenet-standard' (see 'invarbench cards list'), or --pending"
            )
        if resume or data is not None:
            raise fail(
                "--pending resumes interrupted runs by itself and evaluates the test split: "
                "leave out --resume and --data"
            )
        eval_pending(options, db, cards_dir)
        return
    options = dataclasses.replace(options, ranks=ranks)
    with user_errors(), option_errors(), summarise_failure(f"{code(model)}: evaluation failed"):
        ref = resolve_card(model, cards_dir)
        store = Store(db) if ranks is None or ranks.main else None  # rank 0 alone writes the store
        try:
            if ranks is None or ranks.main:
                with progress_bars() as progress:
                    outcome = evaluate(ref, store, options, progress)
            else:
                outcome = evaluate(ref, store, options)
        except KeyboardInterrupt:
            typer.echo(f"Interrupted: {resume_hint(model)}.", err=True)
            raise typer.Exit(code=130) from None
        except BaseException as exc:
            if not distributed.is_stopped(exc):
                raise
            raise fail(describe_failure(exc)) from None
        finally:
            distributed.leave()
    if ranks is not None and not ranks.main:
        return  # rank 0 prints the outcome
    if outcome.resumed:
        console.print(f"Resumed run {outcome.run_id}: {outcome.batches_reused} stored batch(es) reused.")
    elif resume:
        console.print(f"No unfinished run matched: started run {outcome.run_id}.")
    console.print(render_outcome(outcome))
    if outcome.execution is not None and outcome.execution.get("images_at_once"):
        sizes = ", ".join(f"{k} {v}" for k, v in outcome.execution["images_at_once"].items())
        console.print(f"Images given to the model at once (--batch-size auto): {sizes}.")
    if outcome.execution is not None and outcome.execution.get("compile"):
        effect = outcome.execution["compile"]
        console.print(
            f"--compile, on {effect['examples']} examples: logits differ by at most "
            f"{effect['max_abs_logit_difference']:.3g}, input gradients by "
            f"{effect['max_relative_gradient_difference']:.3g} (relative), "
            f"{effect['predictions_changed']} prediction(s) changed."
        )
    append_summary(outcome_markdown(outcome))
