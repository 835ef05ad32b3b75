"""Which of this machine's CPUs each local instance runs on.

On AWS every instance of a job has its own vCPUs; here the instances share the machine's.
Each local instance is held to its own share of the CPUs (instance ``i`` of ``n`` gets CPUs
``i, i+n, ...``, or one CPU in turn when there are more instances than CPUs), so a script
that sizes itself by the CPUs it may use (Preprocess's workers, the serving stack's) sees
its instance's share, and two instances do not each start a worker per CPU of the machine.
"""

from __future__ import annotations

import contextlib
import os


def machine_cpus() -> list[int]:
    """The CPUs this process may use, in order."""
    return sorted(os.sched_getaffinity(0))


def share(index: int, count: int, cpus: list[int] | None = None) -> set[int]:
    """Instance ``index``'s CPUs among ``count`` instances."""
    available = cpus if cpus is not None else machine_cpus()
    if count <= 1:
        return set(available)
    if count >= len(available):
        return {available[index % len(available)]}
    return set(available[index::count])


def hold(pid: int, index: int, count: int) -> None:
    """Hold process ``pid`` (just started) to its instance's CPUs. Set from here, after the
    start, rather than in the child before it execs (unsafe in a process running threads,
    as the emulator does): the child's main thread, and every process it starts later,
    runs on them; the child reads its CPUs only after importing its libraries."""
    # a process that has already ended (a script that failed at once) has nothing to hold
    with contextlib.suppress(ProcessLookupError):
        if count > 1:
            os.sched_setaffinity(pid, share(index, count))
