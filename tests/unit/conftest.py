"""Fixtures for unit tests."""

from typing import Any

import pytest

from tests.support.scenario import small_cluster


@pytest.fixture
def cluster() -> dict[str, Any]:
    return small_cluster()
