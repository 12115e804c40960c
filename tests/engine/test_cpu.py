"""CPU time per domain for the run summary (engine/cpu.py), from the kernel's counts."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from tonegraph.engine.cpu import CpuMeter, said, thread_cpu
from tonegraph.engine.runtime import RunReport


def _spin(seconds: float) -> None:
    """Use ``seconds`` of this thread's CPU time (not wall time)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_each_named_thread_is_counted_under_its_domain_and_the_main_thread_apart():
    meter = CpuMeter("control")
    done, hold = threading.Event(), threading.Event()

    def work() -> None:
        _spin(0.3)
        done.set()
        hold.wait(30)                        # alive when sampled, as the domains are

    t = threading.Thread(target=work, name="tonegraph-render")
    t.start()
    assert done.wait(60)
    cpu = meter.sample()
    hold.set()
    t.join()
    assert 0.25 <= cpu["render"] <= 1.0, cpu
    assert cpu.get("control", 0.0) < 0.25, cpu              # the main thread only waited
    assert list(cpu) == sorted(cpu, key=lambda k: -cpu[k])  # largest first


def test_a_pools_worker_is_counted_under_its_prefix():
    """ml.gan's generator thread is a one-worker pool's, named PREFIX_0."""
    from concurrent.futures import ThreadPoolExecutor

    meter = CpuMeter("control")
    hold = threading.Event()
    with ThreadPoolExecutor(1, thread_name_prefix="tonegraph-generator") as pool:
        pool.submit(_spin, 0.3).result(60)
        pool.submit(hold.wait, 30)
        cpu = meter.sample()
        hold.set()
    assert 0.25 <= cpu["generator"] <= 1.0, cpu


def test_a_thread_that_ended_is_counted_under_the_domain_it_is_named_by():
    meter = CpuMeter("drawing")
    took = []
    t = threading.Thread(target=lambda: (_spin(0.3), took.append(time.thread_time())), name="encoder")
    t.start()
    t.join()
    unnamed, named = meter.sample(), meter.sample({"encoding": took[0]})
    assert "encoding" not in unnamed and unnamed["other threads"] >= 0.25, unnamed   # gone from the kernel's list
    assert named["encoding"] >= 0.3 and named.get("other threads", 0.0) < unnamed["other threads"] - 0.25, named


def test_child_processes_waited_for_are_counted_under_their_name():
    meter = CpuMeter("drawing", "ffmpeg")
    subprocess.run([sys.executable, "-c", "import time\nend = time.process_time() + 0.3\n"
                    "while time.process_time() < end: pass"], check=True)
    cpu = meter.sample()
    assert cpu["ffmpeg"] >= 0.25, cpu


def test_the_run_summary_ends_with_the_cpu_per_domain():
    assert thread_cpu(threading.main_thread().native_id) is not None
    assert thread_cpu(None) is None and thread_cpu(2 ** 31 - 1) is None
    report = RunReport(10, 20, 0, 0, 0, 1.0, 1.0, "duration reached", cpu={"render": 4.5, "audio": 0.25})
    assert report.summary().endswith("; CPU render 4.5 s, audio 0.2 s")
    assert said({}) == "" and "CPU" not in RunReport(1, 1, 0, 0, 0, 1.0, 1.0, "x").summary()
