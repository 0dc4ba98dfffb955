"""The reliability suite: markers only (helpers live in _support.py, fixtures in tests/)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: a long end-to-end reliability test (deselect with -m 'not slow')"
    )
