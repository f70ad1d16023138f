/**
 * The web chat (`/`): one conversation over `/ws` with streamed replies, barge-in by
 * typing, the emotion timeline, "why this reply", thumbs up and down, handoff and
 * takeover notices, in English or Chinese.
 *
 * @module chat
 */

import { ApiError, HeartlineClient, apiRequest } from "./heartline.js";
import { I18n } from "./i18n.js";
import { Timeline } from "./timeline.js";
import { askToken, closeDetail, el, languageToggle, moodClass, signed, takeToken } from "./common.js";

const TOKEN_KEY = "heartline.chat.token";
const SVG_NS = "http://www.w3.org/2000/svg";

const i18n = new I18n();
const $ = (id) => document.getElementById(id);
const ui = {
  app: $("app"),
  form: $("token-form"),
  status: $("status"),
  messages: $("messages"),
  composer: $("composer"),
  input: $("input"),
  send: $("send"),
  banner: $("banner"),
  bannerText: $("banner-text"),
  reconnect: $("reconnect"),
  latest: $("latest"),
  why: $("why"),
  signout: $("signout"),
};

/**
 * One turn as the page knows it.
 * @typedef {object} Turn
 * @property {string} id
 * @property {string} text
 * @property {HeartlineClient} client - the connection (session) it was sent on
 * @property {"sent" | "streaming" | "ended"} state
 * @property {HTMLElement} userItem
 * @property {HTMLElement | null} botItem
 * @property {object | null} emotion
 * @property {object | null} decision
 * @property {boolean} cancelSent
 */

/** @type {Map<string, Turn>} */
const turns = new Map();
/** @type {HeartlineClient | null} */
let client = null;
let token = null;
let agent = null; // the person who has taken the conversation over, if any
/** @type {Turn | null} */
let whyTurn = null;
const timeline = new Timeline($("timeline"), i18n);

languageToggle(i18n, $("lang"));
i18n.onChange(() => {
  renderLatest();
  renderWhy();
  setStatus(client?.connected ? "connected" : ui.status.dataset.state);
});

// The conversation

function scrollToEnd() {
  const list = ui.messages;
  list.scrollTop = list.scrollHeight;
}

function append(item) {
  ui.messages.querySelector(".empty-hint")?.remove();
  const near = ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 120;
  ui.messages.append(item);
  if (near) scrollToEnd();
}

function notice(key, vars, kind = "info") {
  append(el("li", { class: `notice notice-${kind}` }, i18n.element("span", key, vars)));
}

function botItem(turn) {
  if (turn.botItem) return turn.botItem;
  const text = el("span", { class: "msg-text" });
  const item = el(
    "li",
    { class: "msg msg-bot streaming", dataset: { turn: turn.id } },
    i18n.element("div", "chat.bot", undefined, "msg-who"),
    el("div", { class: "bubble", dir: "auto" }, text),
  );
  turn.botItem = item;
  append(item);
  return item;
}

function setBotText(turn, text) {
  botItem(turn).querySelector(".msg-text").textContent = text;
}

function finishBot(turn, end) {
  const item = turn.botItem;
  item.classList.remove("streaming");
  const tools = el("div", { class: "msg-tools" });
  if (end.interrupted) tools.append(i18n.element("span", "chat.interrupted", undefined, "tag"));
  const rate = (score) => () => {
    if (turn.client !== client || !client?.connected) return;
    client.feedback(turn.id, score);
    for (const button of tools.querySelectorAll(".thumb")) {
      button.setAttribute("aria-pressed", String(button.dataset.score === String(score)));
    }
  };
  const thumb = (score, key) => {
    const button = el("button", { type: "button", class: "thumb", dataset: { score: String(score) }, "aria-pressed": "false", onclick: rate(score) }, thumbIcon(score === 1));
    button.dataset.i18nLabel = key;
    button.dataset.i18nTitle = key;
    button.setAttribute("aria-label", i18n.t(key));
    button.title = i18n.t(key);
    return button;
  };
  tools.append(thumb(5, "chat.good"), thumb(1, "chat.bad"));
  const why = i18n.element("button", "chat.why", undefined, "link-button");
  why.type = "button";
  why.addEventListener("click", () => showWhy(turn));
  tools.append(why, el("span", { class: "ack", role: "status" }));
  item.append(tools);
}

/** A thumb drawn in SVG (👍, or 👎 when `down`): no emoji font needed. */
function thumbIcon(down) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "18");
  svg.setAttribute("height", "18");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", down ? "thumb-icon thumb-down" : "thumb-icon");
  const group = document.createElementNS(SVG_NS, "g");
  if (down) group.setAttribute("transform", "rotate(180 12 12)");
  const cuff = document.createElementNS(SVG_NS, "rect");
  for (const [name, value] of Object.entries({ x: 2.5, y: 10, width: 3.5, height: 11, rx: 1 })) cuff.setAttribute(name, String(value));
  const hand = document.createElementNS(SVG_NS, "path");
  hand.setAttribute("d", "M6 11 10.2 3.2C11.8 3.2 13 4.4 13 6V9.2H18.6C20.1 9.2 21.2 10.6 20.9 12L19.6 19.2C19.4 20.3 18.5 21 17.4 21H6Z");
  group.append(cuff, hand);
  svg.append(group);
  return svg;
}

function userItem(text) {
  return el(
    "li",
    { class: "msg msg-user" },
    i18n.element("div", "chat.you", undefined, "msg-who"),
    el("div", { class: "bubble", dir: "auto" }, text),
    el("div", { class: "msg-meta" }),
  );
}

function streamingTurn() {
  for (const turn of turns.values()) if (turn.state === "streaming" && turn.client === client) return turn;
  return null;
}

// The side panels

function points() {
  const result = [];
  for (const turn of turns.values()) {
    if (!turn.emotion) continue;
    const { valence, arousal, dominant } = turn.emotion;
    const title = turn.text.length > 60 ? `${turn.text.slice(0, 57)}…` : turn.text;
    result.push({ valence, arousal, dominant, title });
  }
  return result;
}

function renderLatest() {
  const last = [...turns.values()].reverse().find((turn) => turn.emotion);
  if (!last) {
    ui.latest.textContent = "";
    return;
  }
  const { dominant, valence, arousal } = last.emotion;
  ui.latest.textContent = i18n.t("timeline.latest", {
    label: i18n.term(dominant),
    valence: signed(valence),
    arousal: arousal.toFixed(2),
  });
}

function showWhy(turn) {
  whyTurn = turn;
  renderWhy();
}

function renderWhy() {
  const decision = whyTurn?.decision;
  if (!decision) {
    ui.why.replaceChildren(i18n.element("p", "why.empty", undefined, "muted"));
    return;
  }
  const text = whyTurn.text.length > 80 ? `${whyTurn.text.slice(0, 77)}…` : whyTurn.text;
  const row = (key, value, className) =>
    [el("dt", { text: i18n.t(key) }), el("dd", { class: className, text: value })];
  const facts = el(
    "dl",
    { class: "facts" },
    ...row("why.action", i18n.t(`action.${decision.action}`), "why-action"),
    ...row("why.strategy", i18n.term(decision.strategy), "why-strategy"),
    ...row("why.tone", i18n.term(decision.tone), "why-tone"),
    ...row("why.policy", decision.policy, "why-policy"),
    ...row("why.confidence", `${Math.round(decision.confidence * 100)}%`, "why-confidence"),
  );
  const parts = [el("p", { class: "why-for muted", text: i18n.t("why.turn", { text }) }), facts];
  if (decision.reasons?.length) {
    parts.push(el("h3", { text: i18n.t("why.reasons") }));
    parts.push(el("ul", { class: "why-reasons" }, ...decision.reasons.map((r) => el("li", { text: r }))));
  }
  if (decision.abstained?.length) {
    parts.push(el("p", { class: "muted", text: `${i18n.t("why.abstained")}: ${decision.abstained.join(", ")}` }));
  }
  ui.why.replaceChildren(...parts);
}

function setStatus(state) {
  ui.status.dataset.state = state;
  ui.status.className = `status status-${agent && state === "connected" ? "human" : state}`;
  if (agent && state === "connected") {
    ui.status.dataset.i18n = "status.human";
    ui.status.dataset.i18nVars = JSON.stringify({ agent });
  } else {
    ui.status.dataset.i18n = `status.${state}`;
    delete ui.status.dataset.i18nVars;
  }
  i18n.apply(ui.status.parentElement);
}

function setComposerEnabled(enabled) {
  ui.input.disabled = !enabled;
  ui.send.disabled = !enabled;
}

// Server messages

function attach(connection) {
  const turnOf = (message) => {
    const turn = turns.get(message.turn_id);
    return turn && turn.client === connection ? turn : null;
  };
  connection.on("emotion", (m) => {
    const turn = turnOf(m);
    if (!turn) return;
    turn.emotion = m;
    const meta = turn.userItem.querySelector(".msg-meta");
    const chip = el("span", { class: `chip ${moodClass(m.valence)}`, title: `valence ${signed(m.valence)}`, dataset: { term: m.dominant } });
    chip.textContent = i18n.term(m.dominant);
    meta.replaceChildren(chip);
    timeline.set(points());
    renderLatest();
  });
  connection.on("decision", (m) => {
    const turn = turnOf(m);
    if (!turn) return;
    turn.decision = m;
    showWhy(turn);
  });
  connection.on("reply_start", (m) => {
    const turn = turnOf(m);
    if (!turn) return;
    turn.state = "streaming";
    // A repeated reply_start means the reply starts over: drop what came before.
    setBotText(turn, "");
    turn.botItem.classList.add("streaming");
  });
  connection.on("reply_delta", (m) => {
    const turn = turnOf(m);
    if (!turn) return;
    turn.state = "streaming";
    const text = botItem(turn).querySelector(".msg-text");
    text.textContent += m.text;
    const list = ui.messages;
    if (list.scrollHeight - list.scrollTop - list.clientHeight < 160) scrollToEnd();
  });
  connection.on("reply_end", (m) => {
    const turn = turnOf(m);
    if (!turn) return;
    turn.state = "ended";
    if (!m.text) {
      // A person has the conversation (generator "human"), or the reply was cut
      // before its first word: there is no reply to show.
      turn.botItem?.remove();
      turn.botItem = null;
      return;
    }
    const list = ui.messages;
    const near = list.scrollHeight - list.scrollTop - list.clientHeight < 160;
    setBotText(turn, m.text);
    finishBot(turn, m);
    if (near) scrollToEnd();
  });
  connection.on("feedback_ack", (m) => {
    const turn = turnOf(m);
    const ack = turn?.botItem?.querySelector(".ack");
    if (!ack) return;
    ack.replaceChildren(i18n.element("span", "chat.feedback_ack"));
  });
  connection.on("handoff", (m) => notice("chat.handoff", { reason: m.reason }, "handoff"));
  connection.on("takeover", (m) => {
    agent = m.active ? m.agent : null;
    notice(m.active ? "chat.takeover.on" : "chat.takeover.off", { agent: m.agent }, "human");
    setStatus("connected");
  });
  connection.on("agent_message", (m) => {
    append(
      el(
        "li",
        { class: "msg msg-agent", dataset: { id: m.id } },
        el("div", { class: "msg-who", text: m.agent }),
        el("div", { class: "bubble", dir: "auto", text: m.text }),
      ),
    );
  });
  connection.on("error", (m) => {
    const turn = turnOf(m);
    if (turn && turn.state !== "ended") {
      turn.state = "ended";
      turn.botItem?.classList.remove("streaming");
    }
    notice("chat.error", { code: m.code, message: m.message }, "error");
  });
  connection.on("close", (info) => {
    if (connection !== client || !info.wasReady) return;
    for (const turn of turns.values()) {
      if (turn.client === connection && turn.state !== "ended") {
        turn.state = "ended";
        turn.botItem?.classList.remove("streaming");
      }
    }
    agent = null;
    showClosed(info);
  });
}

function showClosed(info) {
  setStatus("closed");
  setComposerEnabled(false);
  ui.bannerText.dataset.i18n = "conn.closed";
  ui.bannerText.dataset.i18nVars = JSON.stringify({ detail: closeDetail(info) });
  i18n.apply(ui.banner);
  ui.banner.hidden = false;
}

// Connecting

async function explainRefusal(candidate) {
  try {
    await apiRequest(candidate, "GET", "/v1/models");
    return null; // the token is fine; the connection failed for another reason
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      return i18n.t("token.refused", { message: error.message });
    }
    return i18n.t("token.unreachable");
  }
}

async function connect() {
  const connection = new HeartlineClient({ token });
  attach(connection);
  const previous = client;
  client = connection;
  setStatus("connecting");
  try {
    await connection.connect();
  } catch (error) {
    client = previous;
    return error.close ?? { code: 1006, reason: "", wasReady: false };
  }
  if (previous) {
    // The old session's replies can no longer be rated.
    for (const turn of turns.values()) {
      if (turn.client !== connection) turn.botItem?.querySelectorAll(".thumb").forEach((b) => (b.disabled = true));
    }
    notice("conn.new_session", undefined, "divider");
  }
  ui.banner.hidden = true;
  ui.form.hidden = true;
  ui.app.hidden = false;
  ui.signout.hidden = false;
  setComposerEnabled(true);
  setStatus("connected");
  ui.input.focus();
  return null;
}

async function start() {
  token = takeToken(TOKEN_KEY);
  let problem = "";
  for (;;) {
    if (!token) {
      ui.app.hidden = true;
      setStatus("closed");
      token = await askToken(ui.form, TOKEN_KEY, problem);
    }
    const failure = await connect();
    if (!failure) return;
    const refusal = await explainRefusal(token);
    if (refusal === null) {
      ui.app.hidden = false;
      showClosed(failure);
      return;
    }
    problem = refusal;
    sessionStorage.removeItem(TOKEN_KEY);
    token = null;
  }
}

async function reconnect() {
  ui.reconnect.disabled = true;
  try {
    const failure = await connect();
    if (failure) {
      const refusal = await explainRefusal(token);
      if (refusal !== null) {
        sessionStorage.removeItem(TOKEN_KEY);
        token = null;
        ui.banner.hidden = true;
        await start();
        return;
      }
      showClosed(failure);
    }
  } finally {
    ui.reconnect.disabled = false;
  }
}

// The composer

function autosize() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 160)}px`;
}

/** Typing while a reply streams interrupts it (once per reply). */
function bargeIn() {
  const turn = streamingTurn();
  if (!turn || turn.cancelSent || !client?.connected) return;
  turn.cancelSent = true;
  client.cancel();
}

ui.input.addEventListener("input", (event) => {
  autosize();
  if (!event.inputType?.startsWith("delete") && ui.input.value.trim()) bargeIn();
});
ui.input.addEventListener("compositionstart", bargeIn);
ui.input.addEventListener("keydown", (event) => {
  // Enter sends, Shift+Enter is a new line; Enter that confirms an IME candidate is neither.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});
ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.input.value.trim();
  if (!text) return;
  if (!client?.connected) {
    notice("chat.send_failed", undefined, "error");
    return;
  }
  const item = userItem(text);
  const id = client.send(text);
  const turn = { id, text, client, state: "sent", userItem: item, botItem: null, emotion: null, decision: null, cancelSent: false };
  // A turn still streaming is cut short by the server (barge-in): its reply_end says so.
  turns.set(id, turn);
  append(item);
  scrollToEnd();
  ui.input.value = "";
  autosize();
});
ui.reconnect.addEventListener("click", reconnect);
ui.signout.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  client?.close();
  location.reload();
});

start();
