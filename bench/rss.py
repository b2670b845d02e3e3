"""Peak resident memory of the current process, for the benchmarks' RSS comparisons."""

from __future__ import annotations

import resource


def peak_rss_kb() -> int:
    """This process's peak RSS in KiB since its exec: ``VmHWM``.

    ``ru_maxrss`` is not used for comparisons: Linux carries it over ``execve`` from the
    forked copy of the parent, so every child would report at least its parent's peak (the
    benchmark scripts hold whole corpora). ``VmHWM`` belongs to the new address space. Falls
    back to ``ru_maxrss`` where ``/proc`` is missing.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
