"""Helpers for the HTTP API tests: one request with the stdlib http.client,
raw-socket exchanges for malformed input, curl."""

from __future__ import annotations

import http.client
import socket
import subprocess
import time


def http_port(node) -> int:
    return node.server.http.port


def req(port, method, path, body=None, headers=None, timeout=10, context=None, host="127.0.0.1"):
    """(status, lower-case headers, body) of one request on a fresh connection."""
    if context is not None:
        c = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def raw_exchange(port, data: bytes, timeout=5.0) -> bytes:
    """Send data, then read until the server closes (or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def curl(*args, timeout=20) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "15", *args], capture_output=True,
                          timeout=timeout)


def alive(port) -> bool:
    return req(port, "GET", "/v1/health")[0] == 200
