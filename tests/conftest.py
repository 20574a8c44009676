"""Shared test setup: a private compile cache, so tests never touch the user's cache."""

from __future__ import annotations

import os
import tempfile

import pytest

# Set before any divergence is compiled (collection imports the package, not the catalog).
if "FMICL_CACHE_DIR" not in os.environ:
    os.environ["FMICL_CACHE_DIR"] = tempfile.mkdtemp(prefix="fmicl-test-cache-")

CATALOG = ["kl", "js", "pearson", "sh", "tsallis", "vlc", "reverse_kl", "neyman", "jeffrey"]


@pytest.fixture(params=CATALOG)
def catalog_name(request: pytest.FixtureRequest) -> str:
    """Each built-in divergence name in turn."""
    return str(request.param)
