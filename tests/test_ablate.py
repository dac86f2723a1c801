"""benchmarks/ablate.py cuts features out of a copy of the sources by exact
text patches; this keeps them matching the code, so the cost benchmarks
(feature_cost.py, throughput.py's ours-nostats) never silently measure an
unpatched copy."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import ablate  # noqa: E402


@pytest.mark.parametrize("feature", sorted(ablate.PATCHES))
def test_patches_match_the_sources(feature):
    ablate.check(feature)


def test_a_stale_patch_is_reported(tmp_path, monkeypatch):
    monkeypatch.setitem(ablate.PATCHES, "stale", [("setup.py", "no such text anywhere", "x", 1)])
    with pytest.raises(SystemExit, match="expected 1 occurrence"):
        ablate.check("stale")
