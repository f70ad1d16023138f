"""The chaos suite's quicker scenarios, in CI: a worker and the broker killed under load.

The full suite (both workers, PostgreSQL and a gateway too) prints its table with
`.venv/bin/python -m tests.chaos`; docs/reliability.md records it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.harness import run_scenario
from tests.fixtures.mqtt import find_mosquitto
from tests.fixtures.private_postgres import server_binaries
from tests.fixtures.services import missing

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.mark.parametrize("scenario", ["worker", "broker"])
async def test_nothing_is_lost_duplicated_garbled_reordered_or_missing(
    scenario: str, tmp_path: Path
) -> None:
    if find_mosquitto() is None or server_binaries() is None:
        missing("the chaos suite needs mosquitto, initdb and pg_ctl")
    outcome = await run_scenario(scenario, tmp_path, sessions=10, turns=8)
    assert outcome.answered == outcome.sent == 80
    assert outcome.clean, outcome
