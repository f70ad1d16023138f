/**
 * The operator console (`/operator`): live sessions with their mood, the handoff
 * queue, a session's transcript and mood trajectory, a user's emotional history, and
 * taking a session over. Data from the operator API; live updates from its WebSocket.
 *
 * @module operator
 */

import { ApiError, OperatorApi } from "./heartline.js";
import { I18n } from "./i18n.js";
import { Timeline } from "./timeline.js";
import { ago, askToken, claimsOf, closeDetail, el, languageToggle, moodClass, signed, takeToken } from "./common.js";

const TOKEN_KEY = "heartline.operator.token";

const i18n = new I18n();
const $ = (id) => document.getElementById(id);
const ui = {
  app: $("app"),
  form: $("token-form"),
  status: $("status"),
  whoami: $("whoami"),
  banner: $("banner"),
  bannerText: $("banner-text"),
  reconnect: $("reconnect"),
  signout: $("signout"),
  queue: $("queue"),
  queueCount: $("queue-count"),
  sessions: $("sessions"),
  sessionsCount: $("sessions-count"),
  empty: $("detail-empty"),
  body: $("detail-body"),
  title: $("detail-title"),
  meta: $("detail-meta"),
  handoff: $("detail-handoff"),
  error: $("detail-error"),
  takeover: $("takeover"),
  release: $("release"),
  transcript: $("transcript"),
  composer: $("agent-composer"),
  input: $("agent-input"),
  send: $("agent-send"),
  hint: $("compose-hint"),
  historyTitle: $("history-title"),
  historyNote: $("history-note"),
  historyTable: $("history-sessions"),
};

/** @type {OperatorApi | null} */
let api = null;
let me = null;
/** @type {import("./heartline.js").MessageSocket | null} */
let watch = null;
/** @type {Map<string, object>} live sessions by id */
const sessions = new Map();
let selected = null; // the selected session's id
let selectedEnded = false;
/** @type {object[]} the selected session's transcript */
let transcript = [];
let history = null; // the selected user's history answer, or an ApiError
const trajectory = new Timeline($("trajectory"), i18n, { emptyKey: "op.no_mood" });
const historyChart = new Timeline($("history"), i18n, { emptyKey: "op.history.none" });

languageToggle(i18n, $("lang"));
i18n.onChange(() => {
  renderLists();
  renderDetail();
  renderHistory();
  renderWhoami();
});

// Lists

function moodChip(mood) {
  if (!mood) return el("span", { class: "chip chip-none", text: i18n.t("op.no_mood") });
  return el("span", { class: `chip ${moodClass(mood.valence)}`, title: `valence ${signed(mood.valence)}` }, `${i18n.term(mood.dominant)} ${signed(mood.valence)}`);
}

function sessionRow(session, { queue = false } = {}) {
  const parts = [
    el("span", { class: "row-user", text: session.user_id }),
    moodChip(session.mood),
    el("span", { class: "row-meta muted" }, `${i18n.t(`op.channel.${session.channel}`)} · ${turnCount(session.turns)} · ${ago(i18n, session.last_at)}`),
  ];
  if (session.agent) parts.push(el("span", { class: "tag tag-human", text: i18n.t("op.taken_by", { agent: session.agent }) }));
  if (queue && session.handoff) {
    parts.push(el("span", { class: "row-reason", text: session.handoff.reason }));
    parts.push(el("span", { class: "tag tag-handoff", text: i18n.t("op.waiting", { since: ago(i18n, session.handoff.at) }) }));
  } else if (session.handoff && !session.agent) {
    parts.push(el("span", { class: "tag tag-handoff", text: i18n.t("op.needs_person") }));
  }
  const button = el(
    "button",
    { type: "button", class: "session-row", "aria-current": session.session_id === selected ? "true" : false, dataset: { session: session.session_id }, onclick: () => select(session.session_id) },
    ...parts,
  );
  return el("li", {}, button);
}

function renderLists() {
  const all = [...sessions.values()].sort((a, b) => b.last_at - a.last_at);
  const waiting = all.filter((s) => s.handoff && !s.agent).sort((a, b) => a.handoff.at - b.handoff.at);
  ui.sessions.replaceChildren(...(all.length ? all.map((s) => sessionRow(s)) : [el("li", { class: "muted empty-row", text: i18n.t("op.sessions.empty") })]));
  ui.queue.replaceChildren(...(waiting.length ? waiting.map((s) => sessionRow(s, { queue: true })) : [el("li", { class: "muted empty-row", text: i18n.t("op.queue.empty") })]));
  ui.sessionsCount.textContent = String(all.length);
  ui.queueCount.textContent = String(waiting.length);
  ui.queueCount.classList.toggle("count-alert", waiting.length > 0);
}

// The selected session

/** Add a transcript entry unless it is there already (entries are numbered by `seq`). */
function addEntry(entry) {
  if (transcript.some((known) => known.seq === entry.seq)) return;
  transcript.push(entry);
  transcript.sort((a, b) => a.seq - b.seq);
}

async function select(sessionId) {
  if (selectedEnded && selected !== sessionId) sessions.delete(selected); // kept while shown
  selected = sessionId;
  selectedEnded = false;
  transcript = [];
  history = null;
  showError("");
  renderLists();
  renderDetail();
  renderHistory();
  try {
    const detail = await api.session(sessionId);
    if (selected !== sessionId) return;
    const arrivedMeanwhile = transcript;
    transcript = detail.transcript ?? [];
    arrivedMeanwhile.forEach(addEntry);
    const { transcript: _, ...session } = detail;
    sessions.set(sessionId, { ...sessions.get(sessionId), ...session });
  } catch (error) {
    if (selected !== sessionId) return;
    if (error instanceof ApiError && error.status === 404) selectedEnded = true;
    else showError(error.message);
  }
  renderLists();
  renderDetail();
  loadHistory(sessionId);
}

async function loadHistory(sessionId) {
  const session = sessions.get(sessionId);
  if (!session) return;
  let stored = 0;
  try {
    const answer = await api.history(session.user_id, session.tenant);
    stored = answer.turns.filter((turn) => turn.session_id === sessionId).length;
    if (selected === sessionId) history = answer;
  } catch (error) {
    if (selected === sessionId) history = error;
  }
  if (selected !== sessionId) return;
  renderHistory();
  // Turns are stored a moment after they are answered: read again until this session's are in.
  const missing = stored < (sessions.get(sessionId)?.turns ?? 0);
  const hopeless = history instanceof ApiError && history.status !== 404;
  if (missing && !hopeless) refreshHistorySoon(sessionId);
}

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = !message;
}

function entryItem(entry) {
  const who = entry.role === "user" ? i18n.t("op.user") : entry.role === "agent" ? entry.agent ?? "" : i18n.t("op.assistant");
  const time = new Date(entry.at * 1000).toLocaleTimeString(i18n.lang === "zh" ? "zh-CN" : "en", { hour: "2-digit", minute: "2-digit" });
  const head = el("div", { class: "msg-who" }, who, el("span", { class: "muted small", text: ` · ${time}` }));
  const item = el("li", { class: `msg msg-${entry.role === "user" ? "customer" : entry.role}` }, head, el("div", { class: "bubble", dir: "auto", text: entry.text }));
  if (entry.dominant) item.append(el("div", { class: "msg-meta" }, el("span", { class: "chip", text: i18n.term(entry.dominant) })));
  return item;
}

function renderTranscript() {
  const items = transcript.filter((entry) => entry.text).map(entryItem);
  ui.transcript.replaceChildren(...(items.length ? items : [el("li", { class: "muted empty-row", text: i18n.t("op.transcript.empty") })]));
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

function renderDetail() {
  const session = selected ? sessions.get(selected) : null;
  ui.empty.hidden = Boolean(session);
  ui.body.hidden = !session;
  if (!session) return;
  ui.title.replaceChildren(session.user_id, " ", moodChip(session.mood));
  const opened = new Date(session.opened_at * 1000).toLocaleTimeString(i18n.lang === "zh" ? "zh-CN" : "en");
  ui.meta.textContent = `${i18n.t(`op.channel.${session.channel}`)} · ${session.tenant} · ${session.session_id.slice(0, 8)} · ${opened} · ${turnCount(session.turns)}`;
  if (selectedEnded) ui.meta.textContent += ` · ${i18n.t("op.ended")}`;
  ui.handoff.hidden = !session.handoff;
  if (session.handoff) ui.handoff.textContent = i18n.t("op.handoff_reason", { reason: session.handoff.reason });
  const mine = session.agent === me;
  const other = session.agent && !mine;
  ui.takeover.hidden = mine;
  ui.takeover.disabled = Boolean(other) || session.channel !== "ws" || selectedEnded;
  ui.takeover.title = other ? i18n.t("op.taken_by", { agent: session.agent }) : "";
  ui.release.hidden = !mine;
  ui.input.disabled = !mine || selectedEnded;
  ui.send.disabled = !mine || selectedEnded;
  ui.hint.hidden = mine;
  renderTranscript();
  trajectory.set(
    (session.trajectory ?? []).map((point) => ({ ...point, title: new Date(point.at * 1000).toLocaleTimeString() })),
  );
}

function renderHistory() {
  const session = selected ? sessions.get(selected) : null;
  ui.historyTitle.textContent = session ? i18n.t("op.history", { user: session.user_id }) : "";
  const body = ui.historyTable.querySelector("tbody");
  if (!history || history instanceof Error) {
    historyChart.set([]);
    ui.historyTable.hidden = true;
    ui.historyNote.textContent = historyProblem(history);
    return;
  }
  const separators = [];
  const points = history.turns.map((turn, i) => {
    if (i > 0 && turn.session_id !== history.turns[i - 1].session_id) separators.push(i);
    return { ...turn, tick: i + 1, title: new Date(turn.at * 1000).toLocaleString() };
  });
  historyChart.set(points, separators);
  ui.historyNote.textContent = i18n.t("op.history.sessions", { count: history.sessions.length });
  body.replaceChildren(
    ...[...history.sessions].reverse().map((s) =>
      el(
        "tr",
        {},
        el("td", { text: new Date(s.started_at * 1000).toLocaleString(i18n.lang === "zh" ? "zh-CN" : "en") }),
        el("td", { text: String(s.turns) }),
        el("td", {}, el("span", { class: `chip ${moodClass(s.mean_valence)}`, text: i18n.term(s.mood_group) })),
        el("td", { text: s.mean_valence === null || s.mean_valence === undefined ? "" : signed(s.mean_valence) }),
      ),
    ),
  );
  ui.historyTable.hidden = history.sessions.length === 0;
}

function historyProblem(error) {
  if (!(error instanceof Error)) return "";
  if (error instanceof ApiError && error.status === 404) return ""; // no turns stored yet: the chart says so
  if (error instanceof ApiError && error.status === 503) return i18n.t("op.history.unavailable", { message: error.message });
  return error.message;
}

let historyTimer = 0;

/** Read the history again a moment after the selected session's turn count changed. */
function refreshHistorySoon(sessionId) {
  clearTimeout(historyTimer);
  historyTimer = setTimeout(() => {
    if (selected === sessionId) loadHistory(sessionId);
  }, 1500);
}

function turnCount(count) {
  return i18n.t(count === 1 ? "op.turns.one" : "op.turns", { count });
}

function renderWhoami() {
  ui.whoami.textContent = me ? i18n.t("op.signed_in", { name: me }) : "";
}

// Taking over

async function act(action) {
  const sessionId = selected;
  showError("");
  try {
    const session = await action(sessionId);
    if (session?.session_id) sessions.set(session.session_id, { ...sessions.get(session.session_id), ...session });
  } catch (error) {
    showError(error.message);
  }
  renderLists();
  renderDetail();
}

ui.takeover.addEventListener("click", () => act((id) => api.takeover(id)));
ui.release.addEventListener("click", () => act((id) => api.release(id)));
ui.composer.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = ui.input.value.trim();
  if (!text || !selected) return;
  ui.send.disabled = true;
  showError("");
  try {
    await api.say(selected, text);
    ui.input.value = "";
  } catch (error) {
    showError(error.message);
  } finally {
    renderDetail();
    ui.input.focus();
  }
});
ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});

// Live updates

function setStatus(state) {
  ui.status.className = `status status-${state}`;
  ui.status.dataset.i18n = `status.${state}`;
  i18n.apply(ui.status.parentElement);
}

function follow() {
  const socket = api.watch();
  watch = socket;
  socket.on("snapshot", (m) => {
    sessions.clear();
    for (const session of m.sessions) sessions.set(session.session_id, session);
    if (selected && !sessions.has(selected)) selectedEnded = true;
    renderLists();
    renderDetail();
  });
  socket.on("session", (m) => {
    const before = sessions.get(m.session.session_id);
    sessions.set(m.session.session_id, { ...before, ...m.session });
    renderLists();
    if (m.session.session_id !== selected) return;
    renderDetail();
    if (before?.turns !== m.session.turns) refreshHistorySoon(selected);
  });
  socket.on("closed", (m) => {
    if (m.session_id === selected) {
      selectedEnded = true;
      renderDetail();
    }
    if (m.session_id !== selected) sessions.delete(m.session_id);
    renderLists();
  });
  socket.on("transcript", (m) => {
    if (m.session_id !== selected) return;
    addEntry(m.entry);
    renderTranscript();
  });
  socket.on("close", (info) => {
    if (socket !== watch) return;
    setStatus("closed");
    ui.bannerText.textContent = i18n.t("conn.closed", { detail: closeDetail(info) });
    ui.banner.hidden = false;
  });
  return socket.connect().then(
    () => {
      ui.banner.hidden = true;
      setStatus("connected");
    },
    () => {},
  );
}

async function start() {
  let token = takeToken(TOKEN_KEY);
  let problem = "";
  for (;;) {
    if (!token) {
      ui.app.hidden = true;
      setStatus("closed");
      token = await askToken(ui.form, TOKEN_KEY, problem);
    }
    api = new OperatorApi(token);
    try {
      const list = await api.sessions();
      for (const session of list) sessions.set(session.session_id, session);
      break;
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        problem = i18n.t("token.refused", { message: error.message });
        sessionStorage.removeItem(TOKEN_KEY);
        token = null;
        continue;
      }
      setStatus("closed");
      ui.bannerText.textContent = error.status === 0 ? i18n.t("token.unreachable") : error.message;
      ui.banner.hidden = false;
      ui.reconnect.onclick = () => location.reload();
      return;
    }
  }
  me = claimsOf(token).sub ?? null;
  renderWhoami();
  ui.form.hidden = true;
  ui.app.hidden = false;
  ui.signout.hidden = false;
  renderLists();
  ui.reconnect.addEventListener("click", follow);
  await follow();
}

ui.signout.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  watch?.close();
  location.reload();
});
setInterval(() => {
  if (!ui.app.hidden) renderLists();
}, 30_000);

start();
