"""Huge and slow clients against a real server: heads are bounded, slow heads and stalled bodies cut."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import Server, start_server

pytestmark = pytest.mark.slow

LIMITS = """
max_header_bytes = 4096
header_timeout_seconds = 1
body_timeout_seconds = 1
"""
#: Only bounds a test that would otherwise hang; every wait below ends on the server's doing.
PATIENCE = 120


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("connections"), LIMITS)
    yield server
    server.stop()


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE)


def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def read_answer(sock: socket.socket) -> bytes:
    """One answer on a kept-alive connection: its head, then content-length bytes of body."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def status_and_error(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["error"] if body.startswith(b"{") else {}


def test_a_head_past_the_limit_is_a_431_and_the_connection_closes(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 20_000)
        status, error = status_and_error(until_closed(sock))
    assert status == 431
    assert error["message"] == "The request's line and headers pass 4096 bytes."
    assert error["type"] == "invalid_request_error"
    assert "refused 127.0.0.1" in server.log.read_text()


def test_a_head_within_the_limit_is_served_with_a_large_body_in_the_same_write(server: Server) -> None:
    """The head limit counts the head only, however the body's bytes arrive alongside it."""
    body = b'{"prompt": "a kite", "size": "256x256"' + b" " * 300_000 + b"}"
    head = (
        "POST /v1/images/generations HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nX-Pad: {'p' * 3000}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with connect(server) as sock:
        sock.sendall(head.encode() + body)
        answer = until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]


def test_a_connection_that_sends_nothing_gets_a_408(server: Server) -> None:
    with connect(server) as sock:
        status, error = status_and_error(until_closed(sock))
    assert status == 408
    assert error["message"] == "The request's line and headers did not arrive within 1 seconds."


def test_a_head_sent_a_byte_at_a_time_is_cut_at_its_deadline(server: Server) -> None:
    """Slowloris: each byte keeps the connection busy, none extends the head's deadline."""
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
        deadline = time.monotonic() + PATIENCE
        while not select.select([sock], [], [], 0.05)[0]:
            assert time.monotonic() < deadline, "the server never cut the dripping head"
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                break
        status, _ = status_and_error(until_closed(sock))
    assert status == 408


def test_a_stalled_body_is_cut_and_everyone_else_is_served(server: Server) -> None:
    head = (
        "POST /v1/images/generations HTTP/1.1\r\nHost: localhost\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    )
    with connect(server) as sock:
        sock.sendall(head.encode() + b'{"prompt": "')
        assert not until_closed(sock), "cut off without an answer: the client stopped sending"
    assert httpx.get(f"{server.url}/health", timeout=PATIENCE).status_code == 200
    assert "its body sent nothing for 1 s" in server.log.read_text()


def test_kept_alive_connections_serve_each_request_within_its_own_deadline(server: Server) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"
    with connect(server) as sock:
        for _ in range(3):
            sock.sendall(request)
            assert read_answer(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /health HTTP/1.1\r\n")  # a fourth request starts, then stalls
        status, _ = status_and_error(until_closed(sock))
    assert status == 408
