"""The web chat (`/`) in a real headless Chromium against the embedded server."""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from agent.app import Running
from tests.fixtures.browser import Chromium, colour_pixels
from tests.support.pages import (
    AROUSAL_RGB,
    EXPECT_MS,
    VALENCE_RGB,
    Frames,
    replies_done,
    root_url,
    say,
    serving,
    token,
)

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Running]:
    async with serving(tmp_path / "data") as running:
        yield running


@pytest.fixture
async def slow_app(tmp_path: Path) -> AsyncIterator[Running]:
    """Replies stream slowly enough for a person to type into one."""
    async with serving(tmp_path / "data", token_delay=0.3) as running:
        yield running


async def _open_chat(chromium: Chromium, app: Running, *, locale: str = "en-US") -> Page:
    page = await chromium.page(f"{root_url(app)}/?token={token(app)}", locale=locale)
    await expect(page.locator("#status")).to_have_attribute(
        "data-state", "connected", timeout=EXPECT_MS
    )
    return page


async def test_a_reply_streams_in_and_the_timeline_and_why_panel_follow(
    app: Running, chromium: Chromium
) -> None:
    page = await chromium.new_page()
    frames = Frames(page)
    await page.goto(f"{root_url(app)}/?token={token(app)}")
    await expect(page.locator("#status")).to_have_text("Connected", timeout=EXPECT_MS)
    # The token left the address bar (it stays in this tab's sessionStorage).
    assert "token" not in page.url
    plot = page.locator("#timeline .chart-plot")
    blank = await plot.screenshot()

    await say(page, "I'm furious, it broke again!")
    bot = page.locator(".msg-bot .msg-text")
    # The reply shows while it is still streaming, before it has ended.
    await expect(page.locator(".msg-bot.streaming .msg-text")).not_to_have_text(
        "", timeout=EXPECT_MS
    )
    await replies_done(page, 1)
    end = frames.of("reply_end")[0]
    assert end["text"] == "".join(delta["text"] for delta in frames.of("reply_delta"))
    await expect(bot).to_have_text(end["text"])
    assert len(frames.of("reply_delta")) >= 2

    labels = page.locator("#timeline .point-label")
    await expect(labels).to_have_text(["anger"])
    await expect(page.locator("#latest")).to_contain_text("anger")
    await expect(page.locator(".msg-user .chip")).to_have_text(["anger"])
    await expect(page.locator("#why .why-strategy")).to_have_text("de-escalate")
    await expect(page.locator("#why .why-action")).to_have_text("reply")
    await expect(page.locator("#why .why-policy")).to_have_text(re.compile(r"^rules"))
    await expect(page.locator("#why .why-reasons li").first).to_be_visible()

    await say(page, "Thanks so much, that is wonderful news!")
    await replies_done(page, 2)
    await expect(labels).to_have_count(2)
    second = await labels.nth(1).text_content()
    assert second not in (None, "anger")
    # The happier turn's valence point sits higher on the chart.
    dots = page.locator("#timeline .chart-point .dot-valence")
    angry, happy = [float(await dots.nth(i).get_attribute("cy") or "nan") for i in (0, 1)]
    assert happy < angry
    await expect(page.locator("#why .why-for")).to_contain_text("wonderful news")

    # The chart's plot shows both lines in their colours (and showed neither before).
    drawn = await plot.screenshot()
    for colour in (VALENCE_RGB, AROUSAL_RGB):
        assert colour_pixels(blank, colour) == 0
        assert colour_pixels(drawn, colour) > 100


async def test_thumbs_up_is_acknowledged(app: Running, chromium: Chromium) -> None:
    page = await chromium.new_page()
    frames = Frames(page)
    await page.goto(f"{root_url(app)}/?token={token(app)}")
    await say(page, "Where is my order?")
    await replies_done(page, 1)
    good = page.get_by_role("button", name="Good reply")
    await good.click()
    await expect(page.locator(".msg-bot .ack")).to_have_text("Thanks for the feedback")
    await expect(good).to_have_attribute("aria-pressed", "true")
    turn_id = frames.of("reply_end")[0]["turn_id"]
    assert frames.of("feedback", sent=True) == [
        {"type": "feedback", "turn_id": turn_id, "score": 5}
    ]


async def test_typing_while_a_reply_streams_interrupts_it(
    slow_app: Running, chromium: Chromium
) -> None:
    page = await chromium.new_page()
    frames = Frames(page)
    await page.goto(f"{root_url(slow_app)}/?token={token(slow_app)}")
    await say(page, "Can you explain how returns work for a damaged parcel?")
    await expect(page.locator(".msg-bot.streaming .msg-text")).not_to_have_text(
        "", timeout=EXPECT_MS
    )
    await page.locator("#input").press_sequentially("wait")
    await expect(page.locator(".msg-bot .tag")).to_have_text("interrupted", timeout=EXPECT_MS)
    assert frames.of("cancel", sent=True) == [{"type": "cancel"}]  # once, not per key
    end = frames.of("reply_end")[0]
    assert end["interrupted"] is True
    await expect(page.locator(".msg-bot .msg-text")).to_have_text(end["text"])
    # What was typed stays in the box, unsent.
    await expect(page.locator("#input")).to_have_value("wait")
    await expect(page.locator(".msg-user")).to_have_count(1)


async def test_chinese_toggle_and_a_chinese_reply(app: Running, chromium: Chromium) -> None:
    page = await _open_chat(chromium, app)
    await expect(page.locator("#send")).to_have_text("Send")
    await page.get_by_role("button", name="Switch the interface to Chinese").click()
    await expect(page.locator("#send")).to_have_text("发送")
    await expect(page.locator("#timeline-title")).to_have_text("情绪时间线")
    await expect(page.locator("#input")).to_have_attribute("placeholder", "输入消息…")
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    await expect(page).to_have_title("Heartline 对话")
    await expect(page.locator("#status")).to_have_text("已连接")

    await say(page, "我非常生气，订单还没到！")
    await replies_done(page, 1)
    await expect(page.locator(".msg-bot .msg-text")).to_have_text(CJK)
    await expect(page.locator("#timeline .point-label")).to_have_text(["愤怒"])
    await expect(page.locator("#why .why-strategy")).to_have_text("缓和")
    await expect(page.get_by_role("button", name="回复有帮助")).to_be_visible()

    await page.locator("#lang").click()
    await expect(page.locator("#send")).to_have_text("Send")
    await expect(page.locator("#timeline .point-label")).to_have_text(["anger"])
    await expect(page.locator(".msg-user .chip")).to_have_text(["anger"])


async def test_a_chinese_browser_starts_in_chinese(app: Running, chromium: Chromium) -> None:
    page = await _open_chat(chromium, app, locale="zh-CN")
    await expect(page.locator("#send")).to_have_text("发送")
    await expect(page.locator("#lang")).to_have_text("English")


async def test_enter_that_confirms_an_ime_candidate_does_not_send(
    app: Running, chromium: Chromium
) -> None:
    page = await _open_chat(chromium, app)
    await page.locator("#input").focus()
    ime = await page.context.new_cdp_session(page)
    await ime.send(
        "Input.imeSetComposition", {"text": "ni", "selectionStart": 2, "selectionEnd": 2}
    )
    await ime.send(
        "Input.dispatchKeyEvent",
        {"type": "rawKeyDown", "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 229},
    )
    await ime.send("Input.insertText", {"text": "你好"})
    await expect(page.locator("#input")).to_have_value("你好")
    await page.locator("#input").press("Enter")
    await expect(page.locator(".msg-user .bubble")).to_have_text(["你好"])
    await replies_done(page, 1)
    await expect(page.locator(".msg-bot .msg-text")).to_have_text(CJK)


async def test_without_a_token_a_form_asks_for_one(app: Running, chromium: Chromium) -> None:
    page = await chromium.page(f"{root_url(app)}/")
    form = page.locator("#token-form")
    await expect(form).to_be_visible()
    await form.locator("input[name=token]").fill("not-a-token")
    await form.get_by_role("button", name="Continue").click()
    await expect(form.locator(".form-error")).to_contain_text("This token was refused")
    await form.locator("input[name=token]").fill(token(app))
    await form.get_by_role("button", name="Continue").click()
    await expect(page.locator("#status")).to_have_text("Connected", timeout=EXPECT_MS)
    await expect(form).to_be_hidden()
    # The token is kept for this tab: a reload connects again without the form.
    await page.reload()
    await expect(page.locator("#status")).to_have_text("Connected", timeout=EXPECT_MS)


async def test_server_errors_are_shown(tmp_path: Path, chromium: Chromium) -> None:
    async with serving(tmp_path / "data", frame_limit_bytes=1024) as app:
        page = await _open_chat(chromium, app)
        await say(page, "x" * 2000)  # more than this server takes in one frame
        await expect(page.locator(".notice-error")).to_contain_text("Error (too_large)")
        await expect(page.locator(".notice-error")).to_contain_text("1024 bytes")
        await expect(page.locator("#status")).to_have_text("Connected")
        await say(page, "Where is my order?")
        await replies_done(page, 1)
        await chromium.close()


async def test_a_closed_connection_says_so_and_reconnects(
    tmp_path: Path, chromium: Chromium
) -> None:
    async with serving(tmp_path / "data", idle_timeout=1.0) as app:
        page = await _open_chat(chromium, app)
        banner = page.locator("#banner")
        # The server closes a session idle for a second.
        await expect(banner).to_contain_text("The connection closed (1001 idle)", timeout=EXPECT_MS)
        await expect(page.locator("#status")).to_have_text("Disconnected")
        await expect(page.locator("#input")).to_be_disabled()
        await banner.get_by_role("button", name="Reconnect").click()
        await expect(page.locator(".notice-divider")).to_have_text("New conversation")
        # A new session, which idles out in its turn.
        await expect(banner).to_be_visible(timeout=EXPECT_MS)
        await expect(page.locator(".notice-divider")).to_have_count(1)
        await chromium.close()


async def test_the_documented_snippet_works_on_another_site(
    app: Running, chromium: Chromium
) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "pages.md").read_text(encoding="utf-8")
    snippet = doc.split("```html\n", 1)[1].split("```", 1)[0]
    root = root_url(app)
    html = (
        snippet.replace("http://127.0.0.1:8765", root)
        .replace("ws://127.0.0.1:8765", "ws" + root.removeprefix("http"))
        .replace("PASTE A TOKEN", token(app))
    )
    assert root in html
    with _site(html) as site:  # another origin: a page of the user's own
        page = await chromium.page(site)
        await expect(page.locator("#thanks")).to_be_visible(timeout=EXPECT_MS)
        await expect(page.locator("#reply")).not_to_have_text("")
        await expect(page.locator("#mood")).not_to_have_text("…")
        await chromium.close()


@contextmanager
def _site(html: str) -> Iterator[str]:
    """A web server of its own on this machine that answers every GET with `html`."""
    body = html.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/shop.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
