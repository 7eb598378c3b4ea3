"""The ``transport`` fixture: integration tests that use it run on every transport.

A test (or module) opts in with ``pytest.mark.usefixtures("transport")``, or through a fixture
that requests it (``cluster``, ``mesh``). ``@pytest.mark.native_only`` keeps one test on the
listening transports, websockets and picows (it exercises something the ASGI server owns);
``@pytest.mark.websockets_only`` keeps it on websockets alone (it exercises something only that
adapter offers, e.g. an asynchronous ``authenticate`` hook or permessage-deflate).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import hosting


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "transport" in metafunc.fixturenames:
        if metafunc.definition.get_closest_marker("websockets_only") is not None:
            kinds = ["websockets"]
        elif metafunc.definition.get_closest_marker("native_only") is not None:
            kinds = sorted(hosting.LISTENING)
        else:
            kinds = list(hosting.TRANSPORTS)
        metafunc.parametrize("transport", kinds, indirect=True)


@pytest.fixture
def transport(request: pytest.FixtureRequest) -> Iterator[str]:
    """The transport servers of this test run on (``websockets``, ``picows`` or ``asgi``)."""
    previous, hosting.KIND = hosting.KIND, request.param
    try:
        yield request.param
    finally:
        hosting.KIND = previous
