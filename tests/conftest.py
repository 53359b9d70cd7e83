import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
requires_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is absent: the research-only face data is not part of the repo")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def synthetic_300wlp(tmp_path_factory):
    """A small synthetic 300W-LP tree: 24 faces + 6 mirrored copies."""
    from facekit.synthetic import write_synthetic_300wlp

    root = tmp_path_factory.mktemp("synthetic_300wlp")
    write_synthetic_300wlp(str(root), 24, seed=7)
    return root
