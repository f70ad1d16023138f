"""The three roles, assembled from settings: embedded (`serve`), `gateway` and `worker`.

Each role is an async context manager that starts its parts in dependency
order and stops them in reverse: the gateway stops taking messages first, the
worker finishes its turns, the store writes what it holds, the bus closes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import numpy as np
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.bus.base import EventBus
from agent.bus.inprocess import InProcessBus
from agent.bus.mqtt import MqttBus, MqttSettings
from agent.config import Settings
from agent.dialogue import DialogueManager, ManagerSettings, Stages
from agent.dialogue.lookups import serve_session_lookups
from agent.dialogue.presence import announce_presence
from agent.emotion import EmotionRecognizer, LexiconRecognizer
from agent.emotion.batching import MicroBatcher
from agent.emotion.catalog import models_for
from agent.emotion.routing import LanguageRouter
from agent.emotion.service import serve_emotion_requests
from agent.events import HandoffRequested
from agent.gateway import (
    ConnectionLimits,
    Gateway,
    GatewaySettings,
    TokenAuthority,
    serve_gateway,
)
from agent.gateway.admission import AdmissionLimits
from agent.gateway.api_keys import ApiKeys
from agent.gateway.auth import authority_for
from agent.gateway.operator_api import HistoryReader
from agent.gateway.presence import follow_workers
from agent.gateway.roster import Availability
from agent.generation.setup import start_generator
from agent.handoff import HandoffForwarder, HandoffNotifier, WebhookConfig
from agent.metrics import Metrics
from agent.probes import serve_probes
from agent.processes import settle_heap
from agent.values import Exchange
from memory.ledger import InMemoryTurnLedger, TurnLedger
from memory.sql import (
    SqlConversationStore,
    SqlHandoffOutbox,
    SqlTurnLedger,
    WriterConfig,
    open_engine,
    upgrade_schema,
)
from memory.sql.policy_state import PolicyStateSync
from memory.sql.retention import retention_sweeper
from memory.sql.timeline import UserTimeline, user_timeline
from memory.store import ConversationStore
from policies.bandit import LinearBandit
from policies.bandit_policy import BanditPolicy
from policies.flows import load_flow
from policies.learning import BanditLearner
from policies.stack import policy_stack

__all__ = ["Running", "embedded", "gateway", "worker"]

_log = structlog.get_logger(__name__)

MISSED_BEATS_BEFORE_TAKEOVER = 4
"""Beat intervals without a word from a worker before the others take its turns over."""


@dataclass(frozen=True, slots=True)
class Running:
    """What a started role exposes to its caller (the CLI, tests, benchmarks)."""

    metrics: Metrics
    gateway: Gateway | None = None
    manager: DialogueManager | None = None
    store: ConversationStore | None = None
    authority: TokenAuthority | None = None
    engine: AsyncEngine | None = None


def _gateway_settings(settings: Settings) -> GatewaySettings:
    limits = ConnectionLimits(
        soft_frame_bytes=settings.frame_limit_bytes,
        rate_per_s=settings.messages_per_second,
        burst=settings.message_burst,
        idle_timeout_s=settings.idle_timeout,
        send_timeout_s=settings.send_timeout,
        redeliver_after_s=settings.redeliver_after,
    )
    return GatewaySettings(
        host=settings.host,
        port=settings.port,
        limits=limits,
        admission=AdmissionLimits(
            max_in_flight=settings.max_turns_in_flight, max_wait_s=settings.max_turn_wait
        ),
        default_tenant=settings.tenant,
        max_body_bytes=settings.max_body_bytes,
        chat_idle_s=settings.chat_session_idle,
        ws_compression=settings.ws_compression,
    )


def _mqtt_settings(settings: Settings, role: str) -> MqttSettings:
    """Broker settings per role.

    Workers keep no broker session after a disconnect (expiry 0): a dead
    worker's share of the turns must go to the live ones, not wait in its
    queue. A turn lost that way is published again by its gateway
    (`redeliver_after_s`), and the turn ledger drops the duplicates.
    """
    broker = MqttSettings(
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        username=settings.mqtt_username,
        password=settings.mqtt_password.get_secret_value() if settings.mqtt_password else None,
        tls_ca_file=settings.mqtt_tls_ca_file,
        tls_cert_file=settings.mqtt_tls_cert_file,
        tls_key_file=settings.mqtt_tls_key_file,
        client_id_prefix=f"heartline-{role}",
    )
    return dataclasses.replace(broker, session_expiry_s=0) if role == "worker" else broker


async def _start_store(
    stack: AsyncExitStack, settings: Settings
) -> tuple[AsyncEngine, SqlConversationStore]:
    """The database (migrated to the newest schema), the store and, if set, the retention sweep."""
    engine = open_engine(settings.resolved_database_url())
    stack.push_async_callback(engine.dispose)
    await upgrade_schema(engine)
    store = await stack.enter_async_context(
        SqlConversationStore(
            engine,
            cipher=settings.cipher(),
            writer=WriterConfig(max_wait=settings.write_max_wait, max_queue=settings.write_queue),
        )
    )
    if settings.retention_days is not None:
        await stack.enter_async_context(
            retention_sweeper(
                engine,
                keep_for=settings.retention_days * 86_400.0,
                interval=settings.purge_interval,
            )
        )
    return engine, store


async def _start_handoffs(
    stack: AsyncExitStack,
    settings: Settings,
    bus: EventBus,
    engine: AsyncEngine,
    store: ConversationStore,
) -> None:
    """Deliver handoffs to the help-desk webhook, when one is configured (docs/handoff.md)."""
    config = WebhookConfig.from_settings(settings)
    if config is None:
        return

    async def transcript(request: HandoffRequested) -> Sequence[Exchange]:
        return await store.conversation(
            request.session_id, limit=config.max_turns, tenant=request.tenant
        )

    outbox = SqlHandoffOutbox(engine, cipher=settings.cipher())
    notifier = await stack.enter_async_context(HandoffNotifier(outbox, transcript, config))
    await stack.enter_async_context(HandoffForwarder(bus, notifier, group=settings.worker_group))


async def _start_worker(
    stack: AsyncExitStack,
    settings: Settings,
    bus: EventBus,
    metrics: Metrics,
    *,
    shared: bool,
    connected_since: Callable[[], float | None] | None = None,
) -> tuple[DialogueManager, ConversationStore, AsyncEngine]:
    """Database, store, handoffs, ledger and dialogue manager on `bus`; emotion requests.

    `shared` picks the SQL ledger, which several worker processes can share, and
    makes the worker announce itself to the gateways; the embedded process has
    one worker, keeps its ledger in memory and its gateway asks the worker itself.
    """
    engine, store = await _start_store(stack, settings)
    await _start_handoffs(stack, settings, bus, engine, store)
    ledger: TurnLedger = SqlTurnLedger(engine) if shared else InMemoryTurnLedger()
    flow = load_flow() if settings.flow_file is None else load_flow(settings.flow_file)
    learner = BanditLearner(
        LinearBandit(),
        feedback_weight=settings.reward_feedback_weight,
        valence_weight=settings.reward_valence_weight,
    )
    await stack.enter_async_context(
        PolicyStateSync(
            engine,
            tenant=settings.tenant,
            policy="bandit",
            merge=learner.merge_shared,
            interval=settings.policy_sync_interval,
        )
    )
    generator = await start_generator(stack, settings)  # first: a missing LLM fails fast
    stages = Stages(
        recognizer=await _start_recognizer(stack, settings),
        policy=policy_stack(
            rules_file=settings.rules_file,
            flow=flow,
            bandit=BanditPolicy(learner.bandit, rng=np.random.default_rng()),
        ),
        learner=learner,
        flow=flow,
        generator=generator,
        store=store,
    )
    manager_settings = ManagerSettings(
        group=settings.worker_group,
        lease=settings.turn_lease,
        takeover_after=settings.worker_beat_interval * MISSED_BEATS_BEFORE_TAKEOVER,
        sweep_interval=min(5.0, settings.turn_lease / 2),
    )
    manager = DialogueManager(
        bus,
        stages,
        ledger,
        metrics=metrics,
        settings=manager_settings,
        connected_since=connected_since,
    )
    if shared:
        # Beats start before the manager and stop after it: a stopping worker beats
        # "not ready" while it finishes its turns, so no other worker takes them over.
        await stack.enter_async_context(
            announce_presence(
                bus,
                worker_id=manager.worker_id,
                ready=lambda: manager.ready,
                interval=settings.worker_beat_interval,
            )
        )
    await stack.enter_async_context(manager)
    await stack.enter_async_context(
        serve_emotion_requests(bus, stages.recognizer, group=settings.worker_group)
    )
    await stack.enter_async_context(
        serve_session_lookups(bus, store, ledger, group=settings.worker_group)
    )
    return manager, store, engine


async def _start_gateway(
    stack: AsyncExitStack,
    settings: Settings,
    bus: EventBus,
    authority: TokenAuthority,
    metrics: Metrics,
    *,
    ready: Callable[[], bool],
    workers: Callable[[], Availability],
    engine: AsyncEngine | None,
    route_changed: Callable[[], float] = lambda: -math.inf,
    listener: socket.socket | None = None,
) -> Gateway:
    """The gateway; with `engine`, the operator console reads users' histories from it."""
    keys = settings.api_keys
    history: HistoryReader | None = None
    if engine is not None:
        database = engine

        async def history(user_id: str, tenant: str) -> UserTimeline | None:
            return await user_timeline(database, user_id, tenant=tenant)

    return await stack.enter_async_context(
        serve_gateway(
            bus,
            authority=authority,
            metrics=metrics,
            settings=_gateway_settings(settings),
            ready=ready,
            workers=workers,
            route_changed=route_changed,
            api_keys=None if keys is None else ApiKeys.parse(keys.get_secret_value()),
            history=history,
            listener=listener,
        )
    )


async def _start_recognizer(stack: AsyncExitStack, settings: Settings) -> EmotionRecognizer:
    """The configured models by language, each behind a micro-batcher, lexicon as fallback.

    Loading takes a second or so and blocks, so it runs on a worker thread.
    """
    models = await asyncio.to_thread(
        models_for,
        settings.emotion_model,
        precision=settings.emotion_precision,
        domain=settings.emotion_domain,
    )
    settle_heap()
    batched: dict[int, EmotionRecognizer] = {}
    for model in models.values():
        if id(model) not in batched:  # one batcher per model, shared by its languages
            batched[id(model)] = await stack.enter_async_context(MicroBatcher(model))
    routes = {language: batched[id(model)] for language, model in models.items()}
    _log.info("emotion models ready", models={k: v.name for k, v in routes.items()})
    return LanguageRouter(routes, fallback=LexiconRecognizer())


@asynccontextmanager
async def embedded(
    settings: Settings, *, bus: EventBus | None = None, listener: socket.socket | None = None
) -> AsyncIterator[Running]:
    """Everything in one process: in-process bus, SQLite (by default), worker and gateway.

    One of several serving processes (`agent.processes`) passes `bus`, linked to the
    other processes' (staff consoles see every session), and `listener`, the socket
    they all accept on; a session's own turns and replies stay inside the process
    that accepted it. The caller opens and closes a bus it passes.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    authority, _ = authority_for(settings)
    metrics = Metrics()
    async with AsyncExitStack() as stack:
        if bus is None:
            bus = await stack.enter_async_context(InProcessBus())
        manager, store, engine = await _start_worker(stack, settings, bus, metrics, shared=False)

        def workers() -> Availability:
            return Availability.AVAILABLE if manager.ready else Availability.NONE

        gateway = await _start_gateway(
            stack,
            settings,
            bus,
            authority,
            metrics,
            ready=lambda: manager.ready,
            workers=workers,
            engine=engine,
            listener=listener,
        )
        yield Running(
            metrics=metrics,
            gateway=gateway,
            manager=manager,
            store=store,
            authority=authority,
            engine=engine,
        )


@asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[Running]:
    """A stateless gateway on the MQTT bus; run as many as you like behind a load balancer."""
    authority, created = authority_for(settings)
    if created:
        _log.warning(
            "created a new token secret; gateways must share one (set HEARTLINE_SECRET)",
            path=str(settings.data_dir / "secret.key"),
        )
    metrics = Metrics()
    async with AsyncExitStack() as stack:
        engine = None
        if settings.database_url is not None:  # for the operator console's histories
            engine = open_engine(settings.database_url)
            stack.push_async_callback(engine.dispose)
        bus = await stack.enter_async_context(MqttBus(_mqtt_settings(settings, "gateway")))
        roster = await stack.enter_async_context(
            follow_workers(bus, interval=settings.worker_beat_interval)
        )

        def workers() -> Availability:
            return roster.availability(time.monotonic(), listening_since=bus.connected_since)

        def route_changed() -> float:
            """When a worker last came or went or the broker connection came back, on the
            wall clock turns are stamped with."""
            now = time.monotonic()
            roster.count(now)
            changed = max(roster.changed_at, bus.connected_since or -math.inf)
            return time.time() - (now - changed)

        served = await _start_gateway(
            stack,
            settings,
            bus,
            authority,
            metrics,
            ready=lambda: bus.connected and workers() is Availability.AVAILABLE,
            workers=workers,
            route_changed=route_changed,
            engine=engine,
        )
        yield Running(metrics=metrics, gateway=served, authority=authority)


@asynccontextmanager
async def worker(settings: Settings) -> AsyncIterator[Running]:
    """A dialogue worker on the MQTT bus; workers split the turns through a shared subscription."""
    if settings.database_url is None:
        _log.warning(
            "no database URL: using the local SQLite file, which only workers on this host share",
            url=settings.sqlite_url(),
        )
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    metrics = Metrics()
    async with AsyncExitStack() as stack:
        bus = await stack.enter_async_context(MqttBus(_mqtt_settings(settings, "worker")))
        manager, store, engine = await _start_worker(
            stack, settings, bus, metrics, shared=True, connected_since=lambda: bus.connected_since
        )
        if settings.probe_port is not None:
            await stack.enter_async_context(
                serve_probes(
                    settings.host,
                    settings.probe_port,
                    metrics=metrics,
                    ready=lambda: manager.ready and bus.connected,
                )
            )
        yield Running(metrics=metrics, manager=manager, store=store, engine=engine)
