"""A bare RESP client for byte-exact assertions: send commands, read back
whole reply frames as the exact bytes the server sent."""

from __future__ import annotations

import socket


def encode(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def read_frame(f) -> bytes:
    """One whole reply (RESP2 or RESP3) from a binary file object."""
    line = f.readline()
    if not line:
        raise ConnectionError("connection closed by server")
    t = line[:1]
    if t in b"+-:_#,(":
        return line
    if t in b"$=!":
        n = int(line[1:-2])
        return line if n < 0 else line + f.read(n + 2)
    if t in b"*~>%|":
        n = int(line[1:-2])
        if n < 0:
            return line
        out = line + b"".join(read_frame(f) for _ in range(2 * n if t in b"%|" else n))
        return out + read_frame(f) if t == b"|" else out   # an attribute precedes a reply
    raise AssertionError("bad reply line %r" % line)


class Raw:
    """One connection.  ``cmd``/``call`` send a command and return its reply."""

    def __init__(self, port: int, rcvbuf: int | None = None, timeout: float = 10):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.f = self.sock.makefile("rb")

    def send(self, *args) -> None:
        self.sock.sendall(encode(*args))

    def read(self) -> bytes:
        return read_frame(self.f)

    reply = read

    def cmd(self, *args) -> bytes:
        self.send(*args)
        return self.read()

    call = cmd

    def close(self) -> None:
        self.f.close()
        self.sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
