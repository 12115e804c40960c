"""tonegraph analyze --scheduler ADDR against peers that are not Dask schedulers: one
that accepts and never answers, and one that sends garbage.  Each ends within the
connect-and-handshake deadline (shortened here) with one line and exit code 1.  The
peers are this test's own, on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tonegraph.engine.cli import main
from tonegraph.tools import library


class Peer:
    """A TCP server on 127.0.0.1 that accepts every connection and sends ``reply``
    (nothing: it never answers), keeping the connections open."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = f"tcp://127.0.0.1:{self.server.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:         # closed
                return
            self.conns.append(conn)
            if self.reply:
                conn.sendall(self.reply)

    def close(self) -> None:
        self.server.close()
        for c in self.conns:
            c.close()


@pytest.mark.parametrize("reply, reason", [
    (b"", "it accepted the connection but sent nothing within 0.5 s"),
    # Its first eight bytes read as a frame length of exabytes, which Dask allocated.
    (b"\x00\x00\x00\x00\x00\x00\x00\x2d" + b"garbage, not Dask" * 64, "what it sent is not Dask's handshake"),
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "what it sent is not Dask's handshake"),
])
def test_a_peer_that_is_not_a_dask_scheduler_is_one_line(tmp_path, capsys, monkeypatch, reply, reason):
    monkeypatch.setattr(library, "SCHEDULER_DEADLINE", 0.5)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "song.wav").write_bytes(b"RIFF")
    peer = Peer(reply)
    try:
        t0 = time.monotonic()
        code = main(["analyze", str(tmp_path / "lib"), "-o", str(tmp_path / "map"), "--scheduler",
                     peer.address, "-q"])
        took = time.monotonic() - t0
    finally:
        peer.close()
    err = capsys.readouterr().err
    assert code == 1 and err == f"error: --scheduler {peer.address}: not a Dask scheduler ({reason})\n", err
    assert took < 5.0, took          # the deadline is 0.5 s; a hang would be the test's timeout
