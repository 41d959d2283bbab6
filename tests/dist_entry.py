"""The command line as the distributed tests launch it (``torchrun ... tests/dist_entry.py eval ...``):
with a fixed git commit (commits may land while the tests run, and the commit is part of what a
resumed run matches), and, when ``INVARBENCH_TEST_RANK_FAILS`` is ``RANK:CALL:HOW``, rank RANK
fails at its CALL-th batch: ``kill`` (SIGKILL, as an out-of-memory killer would) or ``hang`` (sleeps
far longer than the collectives' timeout)."""

from __future__ import annotations

import os
import signal
import time

import invarbench.evaluation.runner as runner
import invarbench.store.probes as probes

probes.git_commit = lambda: "0" * 40

_plan = os.environ.get("INVARBENCH_TEST_RANK_FAILS")
if _plan:
    _rank, _call, _how = _plan.split(":")
    if os.environ.get("RANK") == _rank:
        _real = runner.measure_one
        _calls = [0]

        def _failing(*args, **kwargs):
            _calls[0] += 1
            if _calls[0] == int(_call):
                if _how == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(3600)
            return _real(*args, **kwargs)

        runner.measure_one = _failing

from invarbench.cli import main  # noqa: E402

main()
