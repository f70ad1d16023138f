"""Once the models are loaded, start-up's objects leave the collector's scans for good."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_settling_freezes_what_start_up_made_and_trims_the_heap() -> None:
    # In a fresh interpreter: freezing in this one would keep the test run's garbage.
    script = textwrap.dedent(
        """
        import gc, sys
        from agent.processes import settle_heap
        trimmed = settle_heap()
        print(gc.get_freeze_count() > 10_000, trimmed or not sys.platform.startswith("linux"))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["True", "True"]
