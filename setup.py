"""Build script for the optional compiled fast lane (repram_resp/_lane.pyx).

Everything else is in pyproject.toml.  The extension is optional in the
aio-libs way: with no C compiler (or REPRAM_NO_EXTENSIONS=1 at install time)
the build skips it with a warning and the package installs pure Python; the
server then logs "fast lane off" and INFO shows repram_fast_lane:no.

Cython is a build requirement (pyproject.toml), so a build from the git tree
regenerates the C from the .pyx and the two never drift; an sdist ships the
generated _lane.c, which is compiled directly when Cython is not importable
(e.g. ``pip install --no-build-isolation`` on a machine without it).
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
# (module, source stem): the fast lane, and the small helpers of native.py (issue 7)
MODULES = [("repram_resp._lane", "_lane"), ("repram_resp._native", "_native")]


def _want() -> bool:
    return os.environ.get("REPRAM_NO_EXTENSIONS", "") in ("", "0")


def _extensions():
    if not _want():
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        cythonize = None
    out = []
    for name, stem in MODULES:
        pyx = os.path.join("repram_resp", stem + ".pyx")
        c = os.path.join("repram_resp", stem + ".c")
        if cythonize is not None and os.path.exists(os.path.join(HERE, pyx)):
            out += cythonize([Extension(name, [pyx])],
                             compiler_directives={"language_level": "3"}, quiet=True)
        elif os.path.exists(os.path.join(HERE, c)):
            out.append(Extension(name, [c]))
        else:
            print("repram-resp: neither Cython nor %s: building without %s" % (c, name),
                  file=sys.stderr)
    return out


class OptionalBuildExt(build_ext):
    """build_ext that turns a failed compile into a warning (no compiler,
    no Python headers): the package then runs its pure-Python path."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # distutils raises several unrelated types here
            self._skip(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skip(exc)

    @staticmethod
    def _skip(exc):
        print("repram-resp: WARNING: the fast lane extension could not be built (%s); "
              "installing the pure-Python path" % exc, file=sys.stderr)


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
