"""Heartline: a real-time, emotion-aware conversational agent framework.

Importing this package is cheap on purpose: `policies` and `memory` import the
shared value types (`agent.values`) and errors (`agent.errors`) from here, and
must never pull in the runtime (bus, gateway, models) by doing so.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
