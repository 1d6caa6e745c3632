"""What real sockets do to a real server: a client that hangs up mid-body is a quiet 499."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Server

pytestmark = pytest.mark.slow


def counted(server: Server, status: str) -> float:
    scrape = httpx.get(f"{server.url}/metrics", timeout=60).text
    return sum(
        s.value
        for f in text_string_to_metric_families(scrape)
        for s in f.samples
        if s.name == "easel_requests_total" and s.labels.get("status") == status
    )


def test_a_client_that_hangs_up_mid_body_is_a_quiet_499(lenient_server: Server) -> None:
    before, errors = counted(lenient_server, "499"), counted(lenient_server, "500")
    head = (
        "POST /v1/images/edits HTTP/1.1\r\nHost: localhost\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", lenient_server.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"--b\r\n" + b"x" * 10_000)
    deadline = time.monotonic() + 120
    while counted(lenient_server, "499") <= before:  # the server saw the hang-up and counted it
        assert time.monotonic() < deadline, "the hang-up was never counted"
        time.sleep(0.05)
    assert counted(lenient_server, "500") == errors, "the client's doing: no 5xx"
    assert "ClientDisconnect" not in lenient_server.log.read_text(), "no traceback"
