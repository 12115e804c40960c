"""CPU time per domain of a run, for its summary.

When GL, ffmpeg and torch share two cores, which of them took the time decides what
to change (torch's threads, x264's preset, the patch's size).  The kernel keeps each
thread's CPU time (``/proc/self/task/TID/stat``); Python's threads are named by what
they run (``tonegraph-audio``, ``tonegraph-render``, the render's ``encoder``), the
control loop runs in the main thread, and the threads Python did not start (torch's
workers, PortAudio's callback, the GL driver's) count together as "other threads".
Child processes (ffmpeg) are counted when they have been waited for.
"""

from __future__ import annotations

import os
import re
import resource
import threading
import time

#: Python thread names -> the domain they are counted under.
DOMAINS = {"tonegraph-audio": "audio", "tonegraph-render": "render", "encoder": "encoding",
           "tonegraph-reload": "reload", "tonegraph-generator": "generator"}
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def thread_cpu(native_id: int | None) -> float | None:
    """A thread's CPU time [s] (user + system) by the kernel, None where unreadable."""
    if native_id is None:
        return None
    try:
        with open(f"/proc/self/task/{native_id}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK      # utime, stime (fields 14, 15)
    except (OSError, IndexError, ValueError):
        return None


class CpuMeter:
    """CPU time from its start: per domain of the Python threads alive when sampled,
    the main thread as ``main``, the rest of the process as "other threads", and child
    processes waited for since.  A thread that has ended is gone from the kernel's
    list: its time counts as "other threads" unless the caller names it (``ended``)."""

    def __init__(self, main: str = "control", children: str = "child processes") -> None:
        self.main, self.children = main, children
        self.main_id = threading.main_thread().native_id
        self.main0 = thread_cpu(self.main_id) or 0.0
        self.process0 = time.process_time()
        self.children0 = self._children()
        self.known0 = self._python_threads()

    @staticmethod
    def _children() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    def _python_threads(self) -> dict[int, tuple[str, float]]:
        out = {}
        for t in threading.enumerate():
            if t.native_id is None or t.native_id == self.main_id:
                continue
            cpu = thread_cpu(t.native_id)
            if cpu is not None:
                name = re.sub(r"_\d+$", "", t.name)      # a pool's worker: PREFIX_N
                out[t.native_id] = (DOMAINS.get(t.name, DOMAINS.get(name, "other Python threads")), cpu)
        return out

    def sample(self, ended: dict[str, float] | None = None) -> dict[str, float]:
        """CPU seconds per domain since the meter started, largest first, 0.0s left out;
        ``ended``: domains of threads that ended since, with the time each recorded."""
        spent: dict[str, float] = {self.main: max(0.0, (thread_cpu(self.main_id) or 0.0) - self.main0)}
        for domain, cpu in (ended or {}).items():
            spent[domain] = spent.get(domain, 0.0) + cpu
        for tid, (domain, cpu) in self._python_threads().items():
            before = self.known0.get(tid, (domain, 0.0))[1]
            spent[domain] = spent.get(domain, 0.0) + max(0.0, cpu - before)
        total = time.process_time() - self.process0
        spent["other threads"] = max(0.0, total - sum(spent.values()))
        spent[self.children] = max(0.0, self._children() - self.children0)
        return dict(sorted(((k, v) for k, v in spent.items() if v >= 0.005), key=lambda kv: -kv[1]))


def said(cpu: dict[str, float]) -> str:
    """``{"render": 4.5, "audio": 0.3}`` -> "CPU render 4.5 s, audio 0.3 s"."""
    return ("CPU " + ", ".join(f"{k} {v:.1f} s" for k, v in cpu.items())) if cpu else ""
