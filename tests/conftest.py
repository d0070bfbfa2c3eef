"""Shared test fixtures.

Tests that read real rating files use the ``data_home`` fixture. It points at
the folder named by ``FLOWREC_DATA`` or, failing that, ``../shared/data``
beside the repository. Where neither exists the tests are skipped, except
under CI (``CI`` set), where a missing folder is an error: CI always has it.
"""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _find_data_home():
    configured = os.environ.get("FLOWREC_DATA")
    if configured:
        return Path(configured)
    return REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_home():
    """Folder holding the real rating files (ml-100k/, ml-latest-small/, jester/ ...)."""
    path = _find_data_home()
    if not path.is_dir():
        message = (
            f"real rating data not found at {path}; set FLOWREC_DATA to the folder "
            "that holds ml-100k/, ml-latest-small/ and jester/"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
