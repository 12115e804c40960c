"""A network namespace of a test's own, for anything multicast (Ableton Link, mDNS):
only ``lo``, up, with a multicast route, so nothing reaches a real network."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import ROOT


def in_network_namespace(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``argv`` in a network namespace of its own (only ``lo``, up, with a multicast
    route): mDNS there reaches no real network."""
    import os
    import shlex

    if os.geteuid() != 0:
        pytest.fail("a network namespace needs root (make test runs as root in CI)")
    script = ("ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo && "
              + " ".join(shlex.quote(a) for a in argv))
    return subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
