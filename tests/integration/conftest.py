"""The ``transport`` fixture: integration tests that use it run on the native and ASGI transports.

A test (or module) opts in with ``pytest.mark.usefixtures("transport")``, or through a fixture
that requests it (``cluster``, ``mesh``); ``@pytest.mark.native_only`` keeps one test on the
native transport (it exercises something the ASGI server owns).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import hosting


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "transport" in metafunc.fixturenames:
        native_only = metafunc.definition.get_closest_marker("native_only") is not None
        kinds = ["native"] if native_only else list(hosting.TRANSPORTS)
        metafunc.parametrize("transport", kinds, indirect=True)


@pytest.fixture
def transport(request: pytest.FixtureRequest) -> Iterator[str]:
    """The transport servers of this test run on (``native`` or ``asgi``)."""
    previous, hosting.KIND = hosting.KIND, request.param
    try:
        yield request.param
    finally:
        hosting.KIND = previous
