"""The operator console (`/operator`) in a real headless Chromium, beside a customer's web chat."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from agent.app import Running
from agent.gateway.auth import Role
from tests.fixtures.browser import Chromium, colour_pixels
from tests.support.pages import (
    AROUSAL_RGB,
    EXPECT_MS,
    VALENCE_RGB,
    replies_done,
    root_url,
    say,
    serving,
    token,
)


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Running]:
    async with serving(tmp_path / "data") as running:
        yield running


async def _customer(chromium: Chromium, app: Running) -> Page:
    page = await chromium.page(f"{root_url(app)}/?token={token(app, 'alice')}")
    await expect(page.locator("#status")).to_have_text("Connected", timeout=EXPECT_MS)
    return page


async def _console(chromium: Chromium, app: Running) -> Page:
    staff = token(app, "dana", role=Role.OPERATOR)
    page = await chromium.page(f"{root_url(app)}/operator?token={staff}")
    await expect(page.locator("#status")).to_have_text("Connected", timeout=EXPECT_MS)
    return page


def _kinds(classes: list[str]) -> list[str]:
    """The conversation's items as a person tells them apart, handoff notices left out (the
    policies decide whether a turn asks for a person again)."""
    kinds = []
    for names in classes:
        found = names.split()
        if "msg-user" in found:
            kinds.append("user")
        elif "msg-bot" in found:
            kinds.append("bot")
        elif "msg-agent" in found:
            kinds.append("agent")
        elif "notice" in found and "notice-handoff" not in found:
            kinds.append("notice")
    return kinds


async def test_the_console_lists_a_live_session_with_its_mood(
    app: Running, chromium: Chromium
) -> None:
    customer = await _customer(chromium, app)
    console = await _console(chromium, app)
    await expect(console.locator("#whoami")).to_have_text("Signed in as dana")
    await say(customer, "I'm furious, it broke again!")
    await replies_done(customer, 1)

    row = console.locator("#sessions .session-row")
    await expect(row).to_have_count(1)
    await expect(row.locator(".row-user")).to_have_text("alice")
    # Live, from the console's socket: the mood, then the turn count.
    await expect(row.locator(".chip")).to_have_text(re.compile(r"^anger −0\.\d\d$"))
    await expect(row).to_contain_text("web · 1 turn")

    await row.click()
    transcript = console.locator("#transcript .msg")
    await expect(transcript).to_have_count(2)
    await expect(transcript.nth(0)).to_contain_text("I'm furious, it broke again!")
    await expect(transcript.nth(0).locator(".chip")).to_have_text("anger")
    reply = await customer.locator(".msg-bot .msg-text").text_content()
    assert reply
    await expect(transcript.nth(1)).to_contain_text(reply)
    await expect(console.locator("#trajectory .point-label")).to_have_text(["anger"])

    await console.get_by_role("button", name="Switch the interface to Chinese").click()
    await expect(console.locator("#takeover")).to_have_text("接管")
    await expect(row.locator(".chip")).to_have_text(re.compile(r"^愤怒 −0\.\d\d$"))


async def test_a_user_token_is_refused(app: Running, chromium: Chromium) -> None:
    page = await chromium.page(f"{root_url(app)}/operator?token={token(app, 'alice')}")
    form = page.locator("#token-form")
    await expect(form).to_be_visible(timeout=EXPECT_MS)
    await expect(form.locator(".form-error")).to_contain_text("This token was refused")
    await expect(form.locator(".form-error")).to_contain_text("operator")
    await expect(page.locator("#app")).to_be_hidden()
    await form.locator("input[name=token]").fill(token(app, "dana", role=Role.OPERATOR))
    await form.get_by_role("button", name="Continue").click()
    await expect(page.locator("#status")).to_have_text("Connected", timeout=EXPECT_MS)


async def test_takeover_silences_the_bot_until_released(app: Running, chromium: Chromium) -> None:
    customer = await _customer(chromium, app)
    console = await _console(chromium, app)
    await say(customer, "I want to talk to a human, this is ridiculous")
    await replies_done(customer, 1)
    await expect(customer.locator(".notice-handoff")).to_be_visible()

    # The session waits in the handoff queue.
    waiting = console.locator("#queue .session-row")
    await expect(waiting).to_have_count(1)
    await expect(console.locator("#queue-count")).to_have_text("1")
    await waiting.click()
    await console.get_by_role("button", name="Take over").click()
    await expect(console.get_by_role("button", name="Give back to the bot")).to_be_visible()
    await expect(console.locator("#queue .session-row")).to_have_count(0)
    await expect(customer.locator(".notice-human")).to_have_text(["dana joined the conversation."])
    await expect(customer.locator("#status")).to_have_text("With dana")

    await console.locator("#agent-input").fill("Hi, I'm Dana. Let me look at your order.")
    await console.locator("#agent-input").press("Enter")
    agent = customer.locator(".msg-agent")
    await expect(agent.locator(".bubble")).to_have_text(
        ["Hi, I'm Dana. Let me look at your order."]
    )
    await expect(agent.locator(".msg-who")).to_have_text(["dana"])
    await expect(console.locator("#transcript .msg-agent")).to_have_count(1)

    await say(customer, "Thank you, Dana")
    # The turn is still read (its mood shows) and reaches the console, but the bot is silent.
    await expect(customer.locator(".msg-user .chip")).to_have_count(2)
    await expect(console.locator("#transcript .msg-customer")).to_have_count(2)
    await expect(console.locator("#transcript .msg-customer").nth(1)).to_contain_text("Thank you")

    await console.get_by_role("button", name="Give back to the bot").click()
    await expect(customer.locator(".notice-human").nth(1)).to_have_text(
        "dana left; the assistant answers again."
    )
    await expect(console.get_by_role("button", name="Take over")).to_be_visible()
    await say(customer, "Where is my order?")
    await replies_done(customer, 2)

    items = customer.locator("#messages > li")
    classes = [await items.nth(i).get_attribute("class") or "" for i in range(await items.count())]
    assert _kinds(classes) == [
        "user",  # asks for a person
        "bot",
        "notice",  # dana joined
        "agent",
        "user",  # "Thank you, Dana": no bot reply follows
        "notice",  # dana left
        "user",
        "bot",  # the bot answers again
    ]
    await expect(customer.locator("#status")).to_have_text("Connected")


async def test_a_users_emotional_history_is_drawn_across_sessions(
    app: Running, chromium: Chromium
) -> None:
    first = await _customer(chromium, app)
    await say(first, "I'm furious, it broke again!")
    await replies_done(first, 1)
    await say(first, "Thanks so much, that is wonderful news!")
    await replies_done(first, 2)
    await first.close()
    second = await _customer(chromium, app)
    await say(second, "I am so sad, nothing works")
    await replies_done(second, 1)

    console = await _console(chromium, app)
    await console.locator("#sessions .session-row").first.click()
    await expect(console.locator("#history-title")).to_have_text("Emotional history of alice")
    # Turns are stored off the reply's path; the console reads them again as they land.
    labels = console.locator("#history .point-label")
    await expect(labels).to_have_count(3, timeout=EXPECT_MS)
    await expect(labels.nth(0)).to_have_text("anger")
    await expect(console.locator("#history .chart-separator")).to_have_count(1)
    await expect(console.locator("#history-sessions tbody tr")).to_have_count(2)

    png = await console.locator("#history .chart-plot").screenshot()
    assert colour_pixels(png, VALENCE_RGB) > 100
    assert colour_pixels(png, AROUSAL_RGB) > 100
