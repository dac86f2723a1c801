"""Regenerate ``docs.json`` from a real redis-server's own COMMAND DOCS / INFO.

Run by hand (not at import) after adding a command to the table:

    python3 -m repram_resp.commands.gen_docs [path/to/redis-server]

It starts a throwaway redis-server (7.0.15 in this project) on a free
loopback port, asks it ``COMMAND DOCS`` and ``COMMAND INFO`` in RESP3 for
every command of our table plus ``EXTRA`` (commands other teams are adding),
and writes them, with every subcommand, to ``docs.json`` beside this file.
The table joins the file at import (``docs.py``); nothing here runs in the
server.

The file keeps RESP3's types, so the replies are Redis's byte for byte in
both protocols: a JSON string is a bulk string, an int an integer, a list an
array, ``{"+": s}`` a simple string, ``{"~": [...]}`` a set and
``{"%": [k, v, k, v ...]}`` a map.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time

# Commands not (yet) in our table whose Redis docs the file should carry:
# sharded pub/sub (issue 10, team 10b).
EXTRA = ("ssubscribe", "sunsubscribe", "spublish")

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "docs.json")
NAMES_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "redis_names.json")


def _read(f):
    line = f.readline()
    t, rest = line[:1], line[1:-2]
    if t == b"+":
        return {"+": rest.decode()}
    if t == b"-":
        raise RuntimeError(rest.decode())
    if t == b":":
        return int(rest)
    if t == b"_":
        return None
    if t in (b"$", b"="):
        n = int(rest)
        data = f.read(n + 2)[:-2]
        return data.decode()
    if t in (b"*", b"~", b">"):
        items = [_read(f) for _ in range(int(rest))]
        return {"~": items} if t == b"~" else items
    if t == b"%":
        out = []
        for _ in range(int(rest)):
            out.append(_read(f))
            out.append(_read(f))
        return {"%": out}
    raise RuntimeError("unexpected reply %r" % line)


def _cmd(sock, f, *args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    sock.sendall(b"".join(out))
    return _read(f)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sorted_info(inf):
    # Redis keeps subcommands in a hash table: their order differs from one
    # run to the next, so sort them for a stable file.
    subs = inf[9]
    items = subs["~"] if isinstance(subs, dict) else subs
    items = sorted(items, key=lambda s: s[0])
    inf = list(inf)
    inf[9] = {"~": items} if isinstance(subs, dict) else items
    return inf


def _sorted_docs(node):
    if node is None:
        return None
    kv = list(node["%"])
    for i in range(0, len(kv), 2):
        if kv[i] == "subcommands":
            sub = kv[i + 1]["%"]
            pairs = sorted(zip(sub[0::2], sub[1::2]))
            kv[i + 1] = {"%": [x for p in pairs for x in p]}
    return {"%": kv}


def _all_names(infos) -> dict:
    """name (``cmd`` or ``cmd|sub``) -> its ACL categories, for every command."""
    out = {}

    def add(inf):
        out[inf[0]] = sorted(c["+"] for c in inf[6]["~"])
        subs = inf[9]
        for s in subs["~"] if isinstance(subs, dict) else subs:
            add(s)
    for inf in infos:
        add(inf)
    return dict(sorted(out.items()))


def generate(redis_server: str) -> dict:
    from . import all_commands
    names = sorted({c.name for c in all_commands()} | set(EXTRA))
    port = _free_port()
    proc = subprocess.Popen([redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        f = sock.makefile("rb")
        _cmd(sock, f, "HELLO", "3")
        version = None
        info = _cmd(sock, f, "INFO", "server")
        for line in info.splitlines():
            if line.startswith("redis_version:"):
                version = line.split(":", 1)[1]
        docs = _cmd(sock, f, "COMMAND", "DOCS", *names)["%"]
        docs = dict(zip(docs[0::2], docs[1::2]))
        infos = _cmd(sock, f, "COMMAND", "INFO", *names)
        out = {"redis_version": version, "commands": {}}
        # Every name Redis knows, subcommands included: ACL rules may name
        # commands we lack (redis_names.json, read by repram_resp/acl.py).
        out["names"] = _all_names(_cmd(sock, f, "COMMAND", "INFO"))
        for name, inf in zip(names, infos):
            if inf is None:
                continue     # ours only (e.g. none today); the table's own fields answer
            out["commands"][name] = {"info": _sorted_info(inf), "docs": _sorted_docs(docs.get(name))}
        sock.close()
        return out
    finally:
        proc.terminate()
        proc.wait(10)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    exe = argv[0] if argv else shutil.which("redis-server")
    if not exe:
        print("redis-server not found", file=sys.stderr)
        return 1
    data = generate(exe)
    with open(NAMES_OUT, "w") as f:
        json.dump({"redis_version": data["redis_version"], "names": data.pop("names")}, f,
                  indent=0)
        f.write("\n")
    with open(OUT, "w") as f:
        json.dump(data, f, indent=None, separators=(",", ":"), sort_keys=False)
        f.write("\n")
    print("wrote %d commands from redis %s to %s" % (len(data["commands"]), data["redis_version"], OUT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
