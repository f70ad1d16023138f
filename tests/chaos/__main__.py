"""Run the chaos suite and print what each fault did.

.venv/bin/python -m tests.chaos                         # every scenario
.venv/bin/python -m tests.chaos --scenarios worker,broker --sessions 40 --turns 12
.venv/bin/python -m tests.chaos --scenarios postgres --postgres-down 30
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.chaos.harness import SCENARIOS, Outcome, run_scenario

_COLUMNS = (
    "sent",
    "answered",
    "resent",
    "resumed",
    "lost",
    "duplicated",
    "garbled",
    "reordered",
    "missing_from_database",
)


def _print(outcomes: Sequence[Outcome]) -> None:
    heads = ("scenario", *(c.replace("_from_database", " from db") for c in _COLUMNS))
    print(" | ".join(heads) + " | slowest turn | why sent again")
    for outcome in outcomes:
        cells = [outcome.scenario, *(str(getattr(outcome, c)) for c in _COLUMNS)]
        why = ", ".join(f"{reason} {count}" for reason, count in sorted(outcome.refusals.items()))
        print(" | ".join(cells) + f" | {outcome.slowest_turn_s:.1f} s | {why}")


async def _run(args: argparse.Namespace) -> list[Outcome]:
    outcomes = []
    for scenario in args.scenarios:
        with tempfile.TemporaryDirectory(prefix=f"heartline-chaos-{scenario}-") as folder:
            print(f"{scenario}: kill -9 while {args.sessions} sessions talk ...", flush=True)
            outcome = await run_scenario(
                scenario,
                Path(folder),
                sessions=args.sessions,
                turns=args.turns,
                postgres_down_s=args.postgres_down,
            )
        outcomes.append(outcome)
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenarios",
        type=lambda text: text.split(","),
        default=list(SCENARIOS),
        help=f"comma-separated, of {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument(
        "--postgres-down",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long the postgres scenario keeps the server down (default 2.0)",
    )
    args = parser.parse_args(argv)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    outcomes = asyncio.run(_run(args))
    _print(outcomes)
    return 0 if all(outcome.clean for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
