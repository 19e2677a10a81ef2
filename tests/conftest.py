from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference data in ../shared/data; tests using it skip when absent."""
    if not SHARED.is_dir():
        pytest.skip(f"reference data not found at {SHARED} (../shared is absent on this machine)")
    return SHARED
