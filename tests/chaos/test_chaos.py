"""The chaos suite's quicker parts, in CI: a worker, the broker and the gateway killed under
load, and 2,000 fuzzed frames.

The full suite (both workers and PostgreSQL too) prints its table with
`.venv/bin/python -m tests.chaos`, the full fuzz (10^5 frames) its counts with
`.venv/bin/python -m tests.chaos.fuzz`; docs/reliability.md records both.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.fuzz import main as fuzz_main
from tests.chaos.harness import run_scenario
from tests.fixtures.mqtt import find_mosquitto
from tests.fixtures.private_postgres import server_binaries
from tests.fixtures.services import missing

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.mark.parametrize("scenario", ["worker", "broker", "gateway"])
async def test_nothing_is_lost_duplicated_garbled_reordered_or_missing(
    scenario: str, tmp_path: Path
) -> None:
    if find_mosquitto() is None or server_binaries() is None:
        missing("the chaos suite needs mosquitto, initdb and pg_ctl")
    outcome = await run_scenario(scenario, tmp_path, sessions=10, turns=8)
    assert outcome.answered == outcome.sent == 80
    assert outcome.clean, outcome
    if scenario == "gateway":  # every user's session resumed, nothing sent anew
        assert (outcome.resumed, outcome.resent) == (10, 0), outcome


def test_wrong_frames_each_get_one_documented_error_and_no_connection_drops() -> None:
    assert fuzz_main(["--frames", "2000", "--seed", "11"]) == 0
