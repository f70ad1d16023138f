from collections.abc import AsyncIterator

import pytest

from tests.support.gateway import Env, running


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with running() as environment:
        yield environment
