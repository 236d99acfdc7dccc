"""Hostile requests against a running `batchops local`: each gets a 4xx in S3 Control's error
shape (or its connection closed, for a client too slow or too many), and the process lives on,
answering, with its memory bounded. The body-level cases are tests/hostile_cases.py, which the
rehearsal sends through its API Gateway too."""
import concurrent.futures
import os
import socket
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from hostile_cases import cases, check  # noqa: E402
from rawhttp import closed_within, connect, head, read_answer, request, rss_mib  # noqa: E402

# The server's bounds (cli/src/http.rs, functions/job-intake/src/api.rs).
HEADER_READ_TIMEOUT = 10
BODY_DEADLINE = 20
MAX_CONNECTIONS = 512
# Loose: the bound is that it does not grow with what clients send, far below this.
MAX_RSS_MIB = 400

CASES = cases()


def alive(local):
    host, port, proc = local
    assert proc.poll() is None, "batchops local died"
    answer = request(host, port, "GET", "/v20180820/jobs?maxResults=1")
    assert answer and answer[0] == 200, answer


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_hostile_request_gets_a_4xx_and_the_process_lives(local, case):
    host, port, _ = local
    answer = request(host, port, case.method, case.path, case.headers, case.body)
    assert answer is not None, f"{case.name}: the connection closed without an answer"
    print(f"{case.name}: {answer[0]} {check(case, *answer)[:120]}")
    alive(local)


def test_heads_too_large_get_431(local):
    host, port, _ = local
    # 200 headers are sent whole: the answer is a 431. A 1 MB header may be cut off by the
    # close that follows the 431 before the client has sent it all, then read as a reset.
    for headers, strict in (({f"X-H{i}": "v" for i in range(200)}, True), ({"X-Big": "x" * (1 << 20)}, False)):
        with connect(host, port) as s:
            try:
                s.sendall(head("GET", "/v20180820/jobs", headers))
                answer = read_answer(s)
            except (BrokenPipeError, ConnectionResetError):
                answer = None
        assert (answer is None and not strict) or (answer and answer[0] == 431), answer
    alive(local)


def test_malformed_http_is_refused(local):
    host, port, _ = local
    for raw in [
        b"GET /v20180820/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200),  # a TLS ClientHello
        b"GET /v20180820/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
        b"GET \x00\xff HTTP/1.1\r\n\r\n",
    ]:
        with connect(host, port, timeout=15) as s:
            s.sendall(raw)
            answer = read_answer(s)
        assert answer is None or 400 <= answer[0] < 500, (raw[:40], answer)
    alive(local)


def test_slow_and_silent_clients_are_cut_off(local):
    host, port, _ = local

    def silent():
        with connect(host, port) as s:
            return closed_within(s, HEADER_READ_TIMEOUT + 8)

    def idle_after_an_answer():
        with connect(host, port) as s:
            s.sendall(head("GET", "/v20180820/jobs?maxResults=1", {}))
            assert read_answer(s)[0] == 200
            return closed_within(s, HEADER_READ_TIMEOUT + 8)

    def slow_head():
        with connect(host, port) as s:
            s.sendall(b"GET /v20180820/jobs HTTP/1.1\r\nHost: x\r\n")
            start = time.time()
            while time.time() - start < HEADER_READ_TIMEOUT + 8:
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    return time.time() - start
                left = closed_within(s, 1)
                if left is not None:
                    return time.time() - start
            return None

    def slow_body():
        with connect(host, port, timeout=BODY_DEADLINE + 10) as s:
            s.sendall(head("POST", "/v20180820/jobs", {"Content-Type": "application/json"}, body_len=10_000))
            s.sendall(b'{"Priority": ')
            start = time.time()
            answer = read_answer(s)
            return time.time() - start, answer

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(f) for f in (silent, idle_after_an_answer, slow_head, slow_body)]
        silent_s, idle_s, slow_head_s, (slow_body_s, answer) = [f.result() for f in futures]
    print(f"closed: silent after {silent_s}s, idle after {idle_s}s, slow head after {slow_head_s}s; "
          f"slow body answered after {slow_body_s:.1f}s: {answer and answer[0]}")
    for what, seconds in (("silent", silent_s), ("idle", idle_s), ("slow head", slow_head_s)):
        assert seconds is not None, f"a {what} connection was still open after {HEADER_READ_TIMEOUT + 8}s"
    assert answer is not None and answer[0] == 408, answer
    assert b"RequestTimeout" in answer[2], answer
    alive(local)


def test_a_flood_of_connections_is_bounded(local):
    """Two thousand connections that send nothing: the server holds at most MAX_CONNECTIONS
    of them and closes the others at once; once they go, it answers again."""
    host, port, proc = local
    socks = []
    try:
        for _ in range(2_000):
            socks.append(socket.create_connection((host, port), timeout=10))
        time.sleep(1)
        closed = 0
        for s in socks:
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    closed += 1
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed += 1
        print(f"2,000 connections: {closed} closed at once, {2_000 - closed} held; RSS {rss_mib(proc.pid):.0f} MiB")
        assert closed >= 2_000 - MAX_CONNECTIONS - 50, closed
        assert proc.poll() is None
    finally:
        for s in socks:
            s.close()
    time.sleep(0.5)
    alive(local)


def test_memory_is_bounded_after_it_all(local):
    """Runs last: after every case above, the process is alive and its memory stays bounded."""
    host, port, proc = local
    before = rss_mib(proc.pid)
    big = b'{"Description": "' + b"x" * (2 << 20) + b'"}'
    for _ in range(20):
        request(host, port, "POST", "/v20180820/jobs", {"Content-Type": "application/json"}, big)
    after = rss_mib(proc.pid)
    print(f"RSS after the suite: {before:.0f} MiB; after 20 more 2 MB bodies: {after:.0f} MiB")
    assert after < MAX_RSS_MIB, after
    alive(local)
