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

import os

# The lane's variables (lane.py; not imported from there: lane.py loads the
# command table, which imports glob.py, which imports this module).
NO_EXTENSIONS_ENV = "REPRAM_NO_EXTENSIONS"
REQUIRE_EXTENSIONS_ENV = "REPRAM_REQUIRE_EXTENSIONS"

Glob = Bulk = None
why_not = ""

if os.environ.get(NO_EXTENSIONS_ENV, "") not in ("", "0"):
    why_not = "%s is set" % NO_EXTENSIONS_ENV
else:
    try:
        from ._native import Bulk, Glob
    except ImportError as exc:
        if os.environ.get(REQUIRE_EXTENSIONS_ENV, "") not in ("", "0"):
            raise ImportError("%s=1 but the _native extension does not load: %s"
                              % (REQUIRE_EXTENSIONS_ENV, exc)) from exc
        why_not = "the compiled extension is not built (%s)" % exc

AVAILABLE = Glob is not None
