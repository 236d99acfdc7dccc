"""HTTP/1.1 over a bare socket: requests sent exactly as written (headers of any bytes, bodies
in slow pieces), answers read as they come."""
import socket
import time


def connect(host, port, timeout=30):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def head(method, path, headers, body_len=None):
    lines = [f"{method} {path} HTTP/1.1".encode()]
    if not any(k.lower() == "host" for k in headers):
        lines.append(b"Host: localhost")
    for k, v in headers.items():
        lines.append(k.encode() + b": " + (v if isinstance(v, bytes) else v.encode("utf-8")))
    if body_len is not None:
        lines.append(f"Content-Length: {body_len}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n"


def read_answer(s):
    """(status, headers with lower-case names, body) of the next answer on `s`; None when the
    server closed the connection first."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        piece = s.recv(65536)
        if not piece:
            return None
        buf += piece
    top, rest = buf.split(b"\r\n\r\n", 1)
    first, *fields = top.decode("latin-1").split("\r\n")
    status = int(first.split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (f.split(":", 1) for f in fields)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        piece = s.recv(65536)
        if not piece:
            break
        rest += piece
    return status, headers, rest[:length]


def request(host, port, method, path, headers=None, body=b""):
    with connect(host, port) as s:
        s.sendall(head(method, path, headers or {}, len(body) if body or method in ("POST", "PUT") else None))
        try:
            s.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered (413) before the body was read: the answer is what counts
        return read_answer(s)


def closed_within(s, seconds):
    """Seconds until the server closed `s` (reading and dropping what it sends), or None."""
    start = time.time()
    s.settimeout(0.5)
    while time.time() - start < seconds:
        try:
            if not s.recv(65536):
                return time.time() - start
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.time() - start
    return None


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0
