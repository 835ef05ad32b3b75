"""Each local instance on its own CPUs: the shares, and a started process held to its own."""

import os
import subprocess
import sys

from local_mode import cores


def test_instances_share_the_cpus_in_turn() -> None:
    cpus = [0, 1, 2, 3]
    assert cores.share(0, 1, cpus) == {0, 1, 2, 3}
    assert [cores.share(i, 2, cpus) for i in range(2)] == [{0, 2}, {1, 3}]
    assert [cores.share(i, 3, cpus) for i in range(3)] == [{0, 3}, {1}, {2}]
    # more instances than CPUs: one CPU each, in turn
    assert [cores.share(i, 6, cpus) for i in range(6)] == [{0}, {1}, {2}, {3}, {0}, {1}]


def test_a_started_process_and_what_it_starts_see_only_their_share() -> None:
    mine = cores.machine_cpus()
    script = (
        "import os, subprocess, sys, time\n"
        "time.sleep(0.5)\n"
        "print(sorted(os.sched_getaffinity(0)))\n"
        "count = 'import os; print(len(os.sched_getaffinity(0)))'\n"
        "print(subprocess.run([sys.executable, '-c', count], capture_output=True, text=True)"
        ".stdout.strip())\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    cores.hold(child.pid, 1, 2)
    out, _ = child.communicate(timeout=30)
    seen, grandchild = out.split("\n")[:2]
    expected = sorted(cores.share(1, 2, mine))
    assert seen == str(expected)
    assert int(grandchild) == len(expected)
    assert sorted(os.sched_getaffinity(0)) == mine  # this process keeps its own


def test_holding_a_process_that_has_ended_is_no_error() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    cores.hold(child.pid, 0, 2)  # reaped already: nothing to hold, and no exception
