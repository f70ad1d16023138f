"""One event bus across several processes of one machine, without a broker.

`heartline serve --workers N` runs a supervising process and N serving
processes. The supervisor runs a `BusHub` on a Unix socket; each serving
process runs a `LinkedBus`, an `EventBus` that is the in-process bus plus a
link to the hub. Across the processes linked to one hub, subscriptions behave
as with one MQTT broker:

- an ungrouped subscription gets every matching event published by any
  process, its own included;
- a group's event goes to exactly one member of the group, in the publishing
  process when it has one (a session's turns, published by its gateway, are
  answered by the worker of the same process, never serialised); otherwise to
  one process that has a member, round robin among them.

Locality is the point. Each link keeps a table of the other processes'
(filter, group) interests, which the hub broadcasts as they change and sends
whole to a link that joins. A publish delivers locally first, then asks the
table whether any other process wants the event; only then is it encoded (the
events codec's JSON, as on MQTT) and written, once, to the hub, naming its
destinations and the groups each is to serve. The hub relays each its copy
without decoding it. So an event only this process wants (a session's reply
deltas) costs what it costs on the in-process bus, plus a dict lookup.

Ordering and delivery: the events one process publishes reach each other
process in the order published (one stream each way through the hub).
Delivery is at most once: the processes are one machine's, and losing the hub
means the supervisor is gone (below). A subscription's interest reaches the
other processes one hub round trip after it is made, and entering `subscribe`
does not wait for that; an event published meanwhile elsewhere misses it, as
with a broker whose SUBACK is not yet sent. A group member that leaves while
an event routed to its process is on the way takes that event with it.

Bounds: every frame is length-prefixed and checked where it is read; one too
long, or not a message, is logged and dropped, and a stream that cannot be
trusted after it is disconnected. The hub never waits on a link: a link whose
unread frames pass the hub's buffer bound is disconnected and logged. A link
waits, in `publish`, only while its own unsent bytes pass a high-water mark.

If the hub goes away: the serving processes are the supervisor's children, so
a lost hub means a lost supervisor (or one shutting down). A link then ends
every subscription at once (readers get `BusClosedError`), refuses to
`publish` and `subscribe` with `BusClosedError`, and its `wait_closed()`
returns, so the process shuts down instead of serving half a bus with nobody
left to restart or stop it. There is no reconnecting.
"""

from agent.bus.link.hub import BusHub
from agent.bus.link.linked import LinkedBus

__all__ = ["BusHub", "LinkedBus"]
