"""SessionRelay: a session's traffic with a real in-process bus."""

from __future__ import annotations

import pytest

from agent.bus.inprocess import InProcessBus
from agent.errors import BusError
from agent.gateway.admission import Admission
from agent.gateway.limits import ConnectionLimits
from agent.gateway.protocol import ServerMessage, UserMessage
from agent.gateway.relay import Ending, SessionRelay
from agent.gateway.roster import Availability
from agent.metrics import Metrics


async def _ignore(_: ServerMessage | Ending) -> None:
    return None


async def test_a_turn_the_bus_could_not_take_is_withdrawn() -> None:
    bus = InProcessBus()
    async with bus:
        relay = SessionRelay(
            bus,
            user_id="u1",
            tenant="default",
            limits=ConnectionLimits(),
            metrics=Metrics(),
            channel="ws",
            deliver=_ignore,
            workers=lambda: Availability.AVAILABLE,
            admission=Admission(),
        )
        async with relay:
            bus.close()  # the bus fails under the session
            with pytest.raises(BusError):
                await relay.submit(UserMessage(id="a", text="hello"))
            # The client is told to send it again: the gateway must not deliver it later.
            assert relay.core.in_flight == ()
            assert relay.core.redelivery_due(10.0) is None
        # Leaving told staff consoles nothing (the bus is down): a warning, not a failure.
