"""Fixtures the node tests share."""

from __future__ import annotations

import pytest

from ..jack import JackServer


@pytest.fixture
def jack():
    """A private JACK dummy server for one test."""
    server = JackServer()
    server.start()
    yield server
    server.stop()
