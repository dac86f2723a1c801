"""Small compiled helpers (``_native.pyx``), optional like the fast lane.

* ``Glob``: Redis's ``stringmatchlen`` in C, used by ``glob.compile_glob``
  (issue 7: compiling a pattern of any length is O(1), matching is the loop
  Redis runs); without it glob.py's regex translation is used.
* ``Bulk``: the parser assembles a large bulk in place in its final
  ``bytes`` (issue 7: peak ~1x the value, see protocol.py); without it the
  bulk is cut out of the query buffer (a second copy: ~2x).

Loaded under the same rules as the lane (lane.py): ``REPRAM_NO_EXTENSIONS=1``
never loads it, ``REPRAM_REQUIRE_EXTENSIONS=1`` makes a missing build an
error.  The Python paths are the specification; tests compare the two.
"""

from __future__ import annotations

import importlib
import os

NO_EXTENSIONS_ENV = "REPRAM_NO_EXTENSIONS"             # "1": never load an extension
REQUIRE_EXTENSIONS_ENV = "REPRAM_REQUIRE_EXTENSIONS"   # "1": fail if one cannot load (CI)


def load_extension(name: str, what: str):
    """Import the compiled module repram_resp.<name> under the rules above:
    (module, "") or (None, why it is not loaded).  Shared with lane.py (this
    module imports nothing of the package, so the command table's imports
    can reach it first)."""
    if os.environ.get(NO_EXTENSIONS_ENV, "") not in ("", "0"):
        return None, "%s is set" % NO_EXTENSIONS_ENV
    try:
        return importlib.import_module("." + name, __package__), ""
    except ImportError as exc:
        if os.environ.get(REQUIRE_EXTENSIONS_ENV, "") not in ("", "0"):
            raise ImportError("%s=1 but %s does not load: %s" % (REQUIRE_EXTENSIONS_ENV, what, exc)) from exc
        return None, "the compiled extension is not built (%s)" % exc


_native, why_not = load_extension("_native", "the _native extension")
Glob = _native.Glob if _native is not None else None
Bulk = _native.Bulk if _native is not None else None

AVAILABLE = Glob is not None
