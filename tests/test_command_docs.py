"""COMMAND DOCS / INFO / LIST / GETKEYS from docs.json, checked against the
real redis-server, and redis-cli's interactive hints and HELP driven in tmux."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest

from rawresp import Raw

from repram_resp.commands import all_commands, docs


class Tmux:
    """One redis-cli in a detached tmux session on a private tmux server."""

    def __init__(self, port: int):
        assert shutil.which("tmux"), "tmux is needed (apt-get install -y tmux; .ci/run does)"
        self.sock = "repram-test-%s" % uuid.uuid4().hex[:8]
        self.port = port
        self._tmux("new-session", "-d", "-s", "cli", "-x", "250", "-y", "40",
                   "redis-cli -h 127.0.0.1 -p %d" % port)
        self.prompt = "127.0.0.1:%d> " % port
        self.wait_for(lambda text: self.prompt.rstrip() in text)   # tmux trims trailing spaces

    def _tmux(self, *args) -> str:
        return subprocess.run(["tmux", "-L", self.sock, *args], check=True, capture_output=True,
                              text=True, env=dict(os.environ, TERM="xterm")).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "cli")

    def wait_for(self, pred, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if pred(text):
                return text
            assert time.monotonic() < deadline, "tmux screen never matched:\n" + text
            time.sleep(0.02)      # polling a terminal, bounded by the deadline

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-t", "cli", "-l", text)

    def key(self, name: str) -> None:
        self._tmux("send-keys", "-t", "cli", name)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True)


def _cli_session(port: int) -> dict:
    """What redis-cli shows interactively: the hint after 'SET ' and HELP SET."""
    t = Tmux(port)
    try:
        t.type("SET ")
        screen = t.wait_for(lambda s: any(line.startswith(t.prompt + "SET ") and "key" in line
                                          for line in s.splitlines()))
        hint = next(line for line in screen.splitlines() if line.startswith(t.prompt + "SET "))
        t.key("C-u")
        t.type("HELP SET")
        t.key("Enter")
        screen = t.wait_for(lambda s: "group:" in s)
        lines = screen.splitlines()
        start = next(i for i, line in enumerate(lines) if line.endswith("HELP SET"))
        help_text = [line.strip() for line in lines[start + 1:] if line.strip()
                     and not line.startswith(t.prompt.rstrip())]
        return {"hint": hint[len(t.prompt):].rstrip(), "help": help_text}
    finally:
        t.close()


def test_redis_cli_hint_and_help_are_redis(server, real_redis):
    ours, theirs = _cli_session(server.port), _cli_session(real_redis)
    print("redis-cli hint for 'SET ' (ours):  %s" % ours["hint"])
    assert ours["hint"] == theirs["hint"]
    assert ours["hint"] == ("SET key value [NX|XX] [GET] [EX seconds|PX milliseconds|"
                            "EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL]")
    assert ours["help"] == theirs["help"]
    assert ours["help"][0].startswith("SET key value [NX|XX]") and "group: string" in ours["help"]


ENABLED_SAME = ["get", "set", "mset", "scan", "wait", "hello", "exists", "psubscribe"]


@pytest.mark.parametrize("proto", ["2", "3"])
def test_docs_and_info_bytes_equal_redis(both, proto):
    ours, theirs = both
    if proto == "3":
        ours.cmd("HELLO", "3")
        theirs.cmd("HELLO", "3")
    for name in ENABLED_SAME:
        assert ours.cmd("COMMAND", "DOCS", name) == theirs.cmd("COMMAND", "DOCS", name), name
        assert ours.cmd("COMMAND", "INFO", name) == theirs.cmd("COMMAND", "INFO", name), name


def test_every_command_has_docs_and_disabled_say_why(server):
    r = server.client(protocol=3)     # redis-py has no command_docs(); RESP3 gives maps
    d = r.execute_command("COMMAND DOCS", *[c.name for c in all_commands()])
    for c in all_commands():
        entry = d[c.name.encode()] if c.name.encode() in d else d[c.name]
        entry = {(k.decode() if isinstance(k, bytes) else k): v for k, v in entry.items()}
        assert entry["summary"] and entry["since"] and entry["group"], c.name
        if c.disabled_why is not None:
            assert entry["summary"].decode().startswith("disabled in REPRAM: "), c.name
            assert "arguments" in entry or c.name in ("script", "function", "save", "bgrewriteaof"), c.name


def test_subcommands_are_only_ours(both):
    ours, theirs = both
    mine = ours.cmd("COMMAND", "LIST", "FILTERBY", "PATTERN", "client|*")
    real = theirs.cmd("COMMAND", "LIST", "FILTERBY", "PATTERN", "client|*")
    assert b"client|pause" in mine and b"client|reply" in mine and b"client|id" in mine
    for sub in (b"client|id", b"client|kill", b"client|unblock"):
        assert sub in real
    # docs of CLIENT list just the implemented subcommands
    from repram_resp.commands import find
    names = {s.decode().lower() for s in find(b"client").subcommands}
    node = docs.docs_node(find(b"client"))
    subs = docs._mget(node, "subcommands")["%"][0::2]
    assert {s.split("|")[1] for s in subs} == names


GETKEYS_SAME = [
    ("set", "a", "b"), ("set", "a", "b", "GET"), ("mset", "a", "1", "b", "2"), ("mget", "a", "b"),
    ("get", "k"), ("exists", "a", "b", "c"), ("eval", "return 1", "2", "k1", "k2", "arg"),
    ("del", "a", "b"), ("rename", "a", "b"), ("ping",), ("client", "id"), ("nosuch", "a"),
    ("get",), ("get", "a", "b"), ("eval", "return 1", "x"), ("watch", "w1", "w2"),
]


@pytest.mark.parametrize("argv", GETKEYS_SAME, ids=" ".join)
@pytest.mark.parametrize("sub", ["GETKEYS", "GETKEYSANDFLAGS"])
def test_getkeys_same_as_redis(both, argv, sub):
    ours, theirs = both
    assert ours.cmd("COMMAND", sub, *argv) == theirs.cmd("COMMAND", sub, *argv)


def test_list_filterby_through_redis_py(server):
    r = server.client()
    scripting = r.command_list(category="scripting")
    assert {b"eval", b"evalsha", b"fcall"} <= set(scripting)
    assert set(r.command_list(pattern="set*")) == {b"set", b"setex", b"setnx", b"setrange"}
    assert r.command_list(module="x") == []
    info = r.command()
    assert "@string" in [c if isinstance(c, str) else c.decode() for c in info["get"]["acl_categories"]]
    assert r.command_getkeysandflags("SET", "k", "v") in ([[b"k", [b"OW", b"update"]]],
                                                          [["k", ["OW", "update"]]])


def test_generator_reproduces_the_committed_file(tmp_path, monkeypatch):
    """docs.json is what gen_docs.py makes from this redis-server (so the
    file cannot drift from the table: every command of the table is in it)."""
    from repram_resp.commands import gen_docs
    exe = shutil.which("redis-server")
    data = gen_docs.generate(exe)
    committed = docs.data()
    for c in all_commands():
        if c.name in data["commands"]:
            assert c.name in committed, "run python3 -m repram_resp.commands.gen_docs"
            assert committed[c.name] == data["commands"][c.name], c.name
