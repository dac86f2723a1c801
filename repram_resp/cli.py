"""``repram-resp [conf-file] [--directive value ...]`` -- used like redis-server."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys

from . import __version__
from .config import ConfigError, load

USAGE = """Usage: repram-resp [/path/to/repram.conf] [--directive value ...]
       repram-resp --version | --help

Examples:
       repram-resp                                  (127.0.0.1:6379, single node)
       repram-resp conf/repram.conf
       repram-resp --port 7001 --peers 127.0.0.1:17002,127.0.0.1:17003
Directives are listed in conf/repram.conf."""


def _setup_logging(cfg) -> None:
    from .server import _LOGLEVELS
    if cfg.logfile:
        try:
            handler = logging.FileHandler(cfg.logfile)
        except OSError as e:
            raise ConfigError("bad value for 'logfile': cannot open '%s': %s" % (
                cfg.logfile, e.strerror)) from None
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname).1s %(name)s: %(message)s"))
    root = logging.getLogger("repram")
    root.handlers[:] = [handler]
    root.setLevel(_LOGLEVELS[cfg.loglevel])
    root.propagate = False


def _new_loop(choice: str) -> asyncio.AbstractEventLoop:
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
            return uvloop.new_event_loop()
        except ImportError:
            if choice == "uvloop":
                raise ConfigError("bad value for 'event-loop': uvloop is not installed "
                                  "(pip install uvloop)") from None
    return asyncio.new_event_loop()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv and argv[0] in ("-v", "--version"):
        print("repram-resp %s" % __version__)
        return 0
    try:
        cfg = load(argv)
        loop = _new_loop(cfg.event_loop)
        _setup_logging(cfg)
    except ConfigError as e:
        print("repram-resp: %s" % e, file=sys.stderr)
        return 1
    from .server import Server
    server = Server(cfg)
    # The data path allocates short-lived lists (argv, reply batches) but
    # makes no reference cycles; young-generation collections every 700
    # allocations cost ~3% of GET throughput (measured), so collect rarely,
    # and keep everything loaded at startup out of every collection.
    gc.set_threshold(100_000, 50, 100)
    gc.freeze()
    asyncio.set_event_loop(loop)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.request_shutdown, signal.Signals(sig).name)
    try:
        loop.run_until_complete(server.serve_forever())
    except OSError as e:
        # On stderr whatever loglevel / logfile say: a node that cannot bind
        # must never exit 1 silently.
        print("repram-resp: cannot start: %s" % e, file=sys.stderr)
        if cfg.logfile:
            logging.getLogger("repram").error("cannot start: %s", e)
        return 1
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
