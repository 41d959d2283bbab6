"""One evaluation over several processes launched by ``torchrun`` (one per GPU, on one machine or many).

``torchrun --nproc-per-node N -m invarbench eval CARD ...`` starts N copies of the command; each
reads its rank from the environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) and joins one process group (the ``gloo`` back end: only small
Python objects travel, never tensors, so no NCCL is needed).

How the work is shared, and why the numbers equal a single process's exactly:

- The unit is the batch of ``--batch-size`` examples, exactly as in a single process: batch
  ``start`` draws from a generator seeded by ``batch_seed(seed, start)`` and its NSPGD and path-width
  pairs are those whose source lies in it. Whole batches go to ranks, so every per-example value is
  the one a single process computes, and the stored batch grid does not depend on the number of
  ranks: a run interrupted with N ranks resumes with any number, one included.
- Balanced *work*, not balanced counts: each batch's cost is estimated from the suite (forward and
  backward passes per example for the attacks, per pair for NSPGD and path widths, which cost far
  more), the batches still to compute are sorted by that cost and dealt out in rounds of one batch
  per rank, so the batches of a round cost about the same and no rank waits long for another.
- After each round every rank's results are gathered (``all_gather_object``); rank 0 alone writes
  the store (each computed batch in its own transaction, as in a single process) and every rank
  merges the same values into the same metrics.
- Failure: an error on any rank (NaN logits, a store error) is gathered with the round and ends
  every rank with that message; a rank that dies closes its connections, so the others' next
  collective fails at once; a rank that hangs is given up after ``timeout`` (``--dist-timeout``).
  Rank 0 marks the run failed (resumable); SIGTERM (what torchrun sends the surviving ranks when
  one fails) is turned into an exception so that this happens too.
"""

from __future__ import annotations

import datetime
import os
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from invarbench.errors import InvarbenchError, ModelOutputError, ValidationError
from invarbench.measurements import MEASUREMENTS

DEFAULT_TIMEOUT_MINUTES = 60.0


class DistributedError(InvarbenchError):
    """Another rank of a distributed run failed, died, or did not answer within the timeout."""


@dataclass(frozen=True)
class Ranks:
    """This process's place in a distributed run: ``rank`` in ``0..world-1``, ``local_rank`` on its
    machine (its GPU index), and the collectives' ``timeout_s`` (seconds)."""

    rank: int
    world: int
    local_rank: int
    timeout_s: float

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes the store and prints."""
        return self.rank == 0


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(
            f"environment variable {name}={raw!r} is not a whole number: launch with torchrun"
        ) from None


def ranks_from_environment(timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES) -> Ranks | None:
    """The :class:`Ranks` torchrun's environment describes, or None for a single process (no
    ``WORLD_SIZE``, or ``WORLD_SIZE=1``). Raises :class:`ValidationError` for an inconsistent
    environment or a timeout that is not positive."""
    if not timeout_minutes > 0:
        raise ValidationError(f"--dist-timeout must be a positive number of minutes, got {timeout_minutes}")
    world = _env_int("WORLD_SIZE")
    if world is None or world == 1:
        return None
    rank = _env_int("RANK")
    if world < 1 or rank is None or not 0 <= rank < world:
        raise ValidationError(
            f"torchrun's environment is inconsistent (RANK={os.environ.get('RANK')}, WORLD_SIZE={world}): "
            "launch with 'torchrun --nproc-per-node N -m invarbench eval ...'"
        )
    local = _env_int("LOCAL_RANK")
    return Ranks(rank=rank, world=world, local_rank=rank if local is None else local, timeout_s=timeout_minutes * 60)


class _Stopped(BaseException):
    """SIGTERM arrived (torchrun stops the surviving ranks when one fails)."""


def _on_sigterm(signum: int, frame: object) -> None:  # noqa: ARG001 - a signal handler's signature
    raise _Stopped


def join(ranks: Ranks) -> None:
    """Join the process group (gloo, with ``ranks.timeout_s`` on every collective) and turn SIGTERM
    into an exception, so that a stopped rank 0 marks its run failed. Raises
    :class:`DistributedError` when the rendezvous fails."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    try:
        dist.init_process_group(
            backend="gloo",
            rank=ranks.rank,
            world_size=ranks.world,
            timeout=datetime.timedelta(seconds=ranks.timeout_s),
        )
    except Exception as exc:  # noqa: BLE001 - any rendezvous failure is reported the same way
        raise DistributedError(
            f"rank {ranks.rank} could not join the other {ranks.world - 1} process(es): {exc}"
        ) from None
    signal.signal(signal.SIGTERM, _on_sigterm)


def leave() -> None:
    """Leave the process group, if joined."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def stopped_message() -> str:
    return "stopped by SIGTERM (torchrun stops every process of a run when one of them fails)"


def is_stopped(exc: BaseException) -> bool:
    """Whether ``exc`` is the SIGTERM that :func:`join` turns into an exception."""
    return isinstance(exc, _Stopped)


def _collective(ranks: Ranks, what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DistributedError(
            f"rank {ranks.rank}: another process of the run died, failed or did not answer within "
            f"{ranks.timeout_s / 60:g} minutes while {what} ({detail}); the finished batches are stored: "
            "rerun the same command with --resume (with any number of processes)"
        ) from None


def all_gather(ranks: Ranks, obj: Any, what: str) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank. Raises :class:`DistributedError` when a
    rank died or timed out."""
    import torch.distributed as dist

    out: list[Any] = [None] * ranks.world
    _collective(ranks, what, lambda: dist.all_gather_object(out, obj))
    return out


def broadcast(ranks: Ranks, obj: Any, what: str) -> Any:
    """Rank 0's ``obj`` on every rank. Raises :class:`DistributedError` when a rank died or timed out."""
    import torch.distributed as dist

    box = [obj if ranks.main else None]
    _collective(ranks, what, lambda: dist.broadcast_object_list(box, src=0))
    return box[0]


# ------------------------------------------------------------------------------------------------
# The work of a batch, and the schedule


def batch_cost(suite: Any, start: int, stop: int) -> float:
    """An estimate of the work of examples ``start:stop`` of ``suite``, in forward+backward passes of
    one image (a forward pass counts 1/3): the clean pass, then what each of the suite's measurements
    declares (``Measurement.cost``: PGD/APGD and FMN steps per example, NSPGD steps and path-width
    forward passes per pair, ...), in the registry's order. Only an estimate for the schedule: no number
    depends on it."""
    cost = float(stop - start)  # the clean forward pass and its bookkeeping
    for m in MEASUREMENTS.in_order():
        settings = suite.measurements.get(m.name)
        if m.cost is not None and settings is not None:
            cost += m.cost(settings, suite, start, stop)
    return cost


def schedule(costs: Mapping[int, float], world: int) -> list[list[int | None]]:
    """Rounds of batch starts, one per rank (None: that rank waits out the round): the batches sorted
    by decreasing ``costs`` (ties: by start) and dealt out ``world`` at a time, so the batches of a
    round cost about the same. Every rank computes the same schedule from the same costs."""
    order = sorted(costs, key=lambda s: (-costs[s], s))
    rounds: list[list[int | None]] = []
    for i in range(0, len(order), world):
        chunk: list[int | None] = list(order[i : i + world])
        rounds.append(chunk + [None] * (world - len(chunk)))
    return rounds


@dataclass(frozen=True)
class RankFailure:
    """An error on one rank, as gathered: its type's name, message, and whether it is the model's."""

    rank: int
    kind: str
    message: str
    model_output: bool


def reraise(failures: Sequence[RankFailure]) -> None:
    """Raise the first rank's error on every rank (a :class:`ModelOutputError` stays one)."""
    if not failures:
        return
    first = failures[0]
    text = first.message if first.rank == 0 else f"rank {first.rank}: {first.message}"
    if first.model_output:
        raise ModelOutputError(text)
    if first.kind in ("InvarbenchError", "ValidationError", "DistributedError"):
        raise InvarbenchError(text)
    raise DistributedError(f"rank {first.rank} failed: {first.kind}: {first.message}")


def failure_of(rank: int, exc: Exception) -> RankFailure:
    return RankFailure(rank, type(exc).__name__, str(exc), isinstance(exc, ModelOutputError))


def sharded(
    ranks: Ranks,
    starts: Mapping[int, int],
    costs: Mapping[int, float],
    compute: Callable[[int, int], Any],
) -> Iterator[list[Any]]:
    """Compute the batches ``starts`` (start -> stop) across the ranks, round by round (see
    :func:`schedule`): this rank computes its batch of each round with ``compute(start, stop)``, and
    every rank receives each round's results of all ranks (rank order, None for a rank without a
    batch that round). An exception on any rank is raised on every rank after the round; a rank that
    dies or times out raises :class:`DistributedError`."""
    for round_ in schedule({s: costs[s] for s in starts}, ranks.world):
        mine = round_[ranks.rank]
        payload: Any = None
        if mine is not None:
            try:
                payload = compute(mine, starts[mine])
            except Exception as exc:  # noqa: BLE001 - gathered, then raised on every rank
                payload = failure_of(ranks.rank, exc)
        gathered = all_gather(ranks, payload, f"gathering batches {[s for s in round_ if s is not None]}")
        reraise([p for p in gathered if isinstance(p, RankFailure)])
        yield [p for p in gathered if p is not None]
