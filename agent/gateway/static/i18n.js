/**
 * The pages' words in English and Chinese, and the language switch.
 *
 * Elements carry `data-i18n="key"` (their text), `data-i18n-placeholder`,
 * `data-i18n-title` or `data-i18n-label` (aria-label), and `data-i18n-vars` (JSON)
 * for the `{name}` fields of the text, or `data-term` (an emotion label, strategy or
 * tone); `apply()` fills them in the current language.
 *
 * @module i18n
 */

const EN = {
  "app.name": "Heartline",
  "chat.title": "Heartline chat",
  "operator.title": "Heartline operator console",
  "lang.toggle": "中文",
  "lang.toggle.label": "Switch the interface to Chinese",
  "status.connecting": "Connecting…",
  "status.connected": "Connected",
  "status.closed": "Disconnected",
  "status.human": "With {agent}",
  "token.title": "Sign in",
  "token.help": "Paste the access token you were given.",
  "token.help.operator": "Paste an operator token.",
  "token.field": "Access token",
  "token.submit": "Continue",
  "token.refused": "This token was refused: {message}",
  "token.unreachable": "The server could not be reached.",
  "token.forget": "Sign out",
  "conn.closed": "The connection closed ({detail}).",
  "conn.reconnect": "Reconnect",
  "conn.new_session": "New conversation",
  "chat.placeholder": "Type a message…",
  "chat.send": "Send",
  "chat.stop": "Stop",
  "chat.empty": "Say hello. Replies stream in as they are written, and the chart follows how you feel.",
  "chat.you": "You",
  "chat.bot": "Assistant",
  "chat.interrupted": "interrupted",
  "chat.good": "Good reply",
  "chat.bad": "Bad reply",
  "chat.feedback_ack": "Thanks for the feedback",
  "chat.why": "Why?",
  "chat.handoff": "Handing over to a person: {reason}",
  "chat.takeover.on": "{agent} joined the conversation.",
  "chat.takeover.off": "{agent} left; the assistant answers again.",
  "chat.error": "Error ({code}): {message}",
  "chat.send_failed": "Not sent: the connection is closed.",
  "timeline.title": "Emotion timeline",
  "timeline.empty": "Each message you send adds a point here.",
  "timeline.valence": "Valence",
  "timeline.arousal": "Arousal",
  "timeline.turn": "Turn",
  "timeline.label": "Valence and arousal per turn",
  "timeline.latest": "Latest: {label} · valence {valence} · arousal {arousal}",
  "why.title": "Why this reply",
  "why.empty": "The decision behind each reply shows here.",
  "why.turn": "For the message “{text}”",
  "why.action": "Action",
  "why.strategy": "Strategy",
  "why.tone": "Tone",
  "why.policy": "Decided by",
  "why.confidence": "Confidence",
  "why.reasons": "Reasons",
  "why.abstained": "Had nothing to say",
  "op.sessions": "Live sessions",
  "op.sessions.empty": "No one is chatting right now.",
  "op.queue": "Handoff queue",
  "op.queue.empty": "Nobody is waiting for a person.",
  "op.select": "Pick a session to see its conversation.",
  "op.turns": "{count} turns",
  "op.turns.one": "1 turn",
  "op.waiting": "waiting {since}",
  "op.taken_by": "with {agent}",
  "op.no_mood": "no reading yet",
  "op.takeover": "Take over",
  "op.release": "Give back to the bot",
  "op.transcript": "Conversation",
  "op.transcript.empty": "Nothing said yet.",
  "op.trajectory": "Mood in this session",
  "op.history": "Emotional history of {user}",
  "op.history.none": "No earlier turns are stored for this user.",
  "op.history.sessions": "Sessions: {count}",
  "op.needs_person": "waiting for a person",
  "op.turns.header": "Turns",
  "op.history.unavailable": "This gateway keeps no history: {message}",
  "op.compose": "Write to the customer…",
  "op.compose.locked": "Take the session over to write to the customer.",
  "op.send": "Send",
  "op.ended": "This session has ended.",
  "op.user": "Customer",
  "op.assistant": "Assistant",
  "op.signed_in": "Signed in as {name}",
  "op.channel.ws": "web",
  "op.channel.http": "API",
  "op.handoff_reason": "Handoff: {reason}",
  "op.started": "Started",
  "op.mood": "Mood",
  "op.mean_valence": "Mean valence",
  "op.failed": "{message}",
  "ago.now": "just now",
  "ago.min": "{n} min ago",
  "ago.h": "{n} h ago",
  "action.reply": "reply",
  "action.handoff": "hand off to a person",
  "action.end": "end the conversation",
};

const ZH = {
  "app.name": "Heartline",
  "chat.title": "Heartline 对话",
  "operator.title": "Heartline 客服控制台",
  "lang.toggle": "English",
  "lang.toggle.label": "将界面切换为英文",
  "status.connecting": "正在连接…",
  "status.connected": "已连接",
  "status.closed": "连接已断开",
  "status.human": "{agent} 正在为您服务",
  "token.title": "登录",
  "token.help": "请粘贴您获得的访问令牌。",
  "token.help.operator": "请粘贴客服（operator）令牌。",
  "token.field": "访问令牌",
  "token.submit": "继续",
  "token.refused": "令牌被拒绝：{message}",
  "token.unreachable": "无法连接服务器。",
  "token.forget": "退出登录",
  "conn.closed": "连接已关闭（{detail}）。",
  "conn.reconnect": "重新连接",
  "conn.new_session": "新的对话",
  "chat.placeholder": "输入消息…",
  "chat.send": "发送",
  "chat.stop": "停止",
  "chat.empty": "打个招呼吧。回复会逐字显示，图表会跟随您的情绪变化。",
  "chat.you": "您",
  "chat.bot": "助手",
  "chat.interrupted": "已中断",
  "chat.good": "回复有帮助",
  "chat.bad": "回复没帮助",
  "chat.feedback_ack": "感谢您的反馈",
  "chat.why": "为什么？",
  "chat.handoff": "正在为您转接人工客服：{reason}",
  "chat.takeover.on": "{agent} 加入了对话。",
  "chat.takeover.off": "{agent} 已离开，助手将继续为您服务。",
  "chat.error": "错误（{code}）：{message}",
  "chat.send_failed": "未发送：连接已关闭。",
  "timeline.title": "情绪时间线",
  "timeline.empty": "您发送的每条消息都会在这里添加一个点。",
  "timeline.valence": "效价",
  "timeline.arousal": "唤醒度",
  "timeline.turn": "轮次",
  "timeline.label": "每轮的效价与唤醒度",
  "timeline.latest": "最新：{label} · 效价 {valence} · 唤醒度 {arousal}",
  "why.title": "为什么这样回复",
  "why.empty": "每条回复背后的决策会显示在这里。",
  "why.turn": "针对消息“{text}”",
  "why.action": "动作",
  "why.strategy": "策略",
  "why.tone": "语气",
  "why.policy": "决策者",
  "why.confidence": "置信度",
  "why.reasons": "理由",
  "why.abstained": "未表态的策略",
  "op.sessions": "进行中的会话",
  "op.sessions.empty": "目前没有人在对话。",
  "op.queue": "转人工队列",
  "op.queue.empty": "没有人在等待人工客服。",
  "op.select": "选择一个会话以查看对话内容。",
  "op.turns": "{count} 轮",
  "op.turns.one": "1 轮",
  "op.waiting": "已等待 {since}",
  "op.taken_by": "由 {agent} 接管",
  "op.no_mood": "暂无情绪读数",
  "op.takeover": "接管",
  "op.release": "交还给机器人",
  "op.transcript": "对话记录",
  "op.transcript.empty": "还没有任何消息。",
  "op.trajectory": "本次会话的情绪",
  "op.history": "{user} 的情绪历史",
  "op.history.none": "没有保存该用户以前的对话。",
  "op.history.sessions": "会话数：{count}",
  "op.needs_person": "等待人工",
  "op.turns.header": "轮次",
  "op.history.unavailable": "此网关不保存历史：{message}",
  "op.compose": "给客户发消息…",
  "op.compose.locked": "接管会话后才能给客户发消息。",
  "op.send": "发送",
  "op.ended": "该会话已结束。",
  "op.user": "客户",
  "op.assistant": "助手",
  "op.signed_in": "当前登录：{name}",
  "op.channel.ws": "网页",
  "op.channel.http": "API",
  "op.handoff_reason": "转人工：{reason}",
  "op.started": "开始时间",
  "op.mood": "情绪",
  "op.mean_valence": "平均效价",
  "op.failed": "{message}",
  "ago.now": "刚刚",
  "ago.min": "{n} 分钟前",
  "ago.h": "{n} 小时前",
  "action.reply": "回复",
  "action.handoff": "转接人工",
  "action.end": "结束对话",
};

/** GoEmotions' 28 labels, the response strategies and tones, in Chinese. */
const ZH_TERMS = {
  admiration: "钦佩",
  amusement: "愉悦",
  anger: "愤怒",
  annoyance: "烦恼",
  approval: "认可",
  caring: "关心",
  confusion: "困惑",
  curiosity: "好奇",
  desire: "渴望",
  disappointment: "失望",
  disapproval: "不赞成",
  disgust: "厌恶",
  embarrassment: "尴尬",
  excitement: "兴奋",
  fear: "恐惧",
  gratitude: "感激",
  grief: "悲痛",
  joy: "喜悦",
  love: "喜爱",
  nervousness: "紧张",
  optimism: "乐观",
  pride: "自豪",
  realization: "领悟",
  relief: "宽慰",
  remorse: "懊悔",
  sadness: "悲伤",
  surprise: "惊讶",
  neutral: "中性",
  empathize: "共情",
  apologize: "致歉",
  reassure: "安抚",
  inform: "告知",
  clarify: "澄清",
  encourage: "鼓励",
  celebrate: "庆贺",
  "de-escalate": "缓和",
  warm: "温暖",
  calm: "平静",
  upbeat: "积极",
};

/** @type {Record<string, Record<string, string>>} */
export const STRINGS = { en: EN, zh: ZH };

const STORAGE_KEY = "heartline.lang";

/**
 * The language to start with: the one chosen last time, else the browser's.
 * @returns {"en" | "zh"}
 */
export function initialLanguage() {
  const chosen = globalThis.localStorage?.getItem(STORAGE_KEY);
  if (chosen === "en" || chosen === "zh") return chosen;
  const wanted = globalThis.navigator?.languages ?? [globalThis.navigator?.language ?? "en"];
  for (const tag of wanted) {
    const lower = String(tag).toLowerCase();
    if (lower.startsWith("zh")) return "zh";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

/** The pages' current language and its strings. */
export class I18n {
  /** @param {"en" | "zh"} lang */
  constructor(lang = initialLanguage()) {
    /** @type {"en" | "zh"} */ this.lang = lang;
    /** @private @type {Set<() => void>} */ this._listeners = new Set();
  }

  /**
   * The string for `key` with its `{name}` fields filled from `vars`.
   * @param {string} key
   * @param {Record<string, string | number>} [vars]
   * @returns {string}
   */
  t(key, vars = {}) {
    const template = STRINGS[this.lang][key] ?? EN[key] ?? key;
    return template.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
  }

  /**
   * An emotion label, strategy, tone or action value in the current language.
   * @param {string} term
   * @returns {string}
   */
  term(term) {
    if (this.lang === "zh") return ZH_TERMS[term] ?? term;
    return term;
  }

  /**
   * Switch language, remember it, re-fill the document and tell the listeners.
   * @param {"en" | "zh"} lang
   */
  set(lang) {
    this.lang = lang;
    globalThis.localStorage?.setItem(STORAGE_KEY, lang);
    this.apply(document);
    for (const listener of this._listeners) listener();
  }

  /** Switch to the other language. */
  toggle() {
    this.set(this.lang === "en" ? "zh" : "en");
  }

  /** @param {() => void} listener - called after each language change */
  onChange(listener) {
    this._listeners.add(listener);
  }

  /**
   * Fill every element under `root` that names a string key.
   * @param {ParentNode} root
   */
  apply(root) {
    if (root === document) {
      document.documentElement.lang = this.lang === "zh" ? "zh-CN" : "en";
    }
    for (const element of root.querySelectorAll("[data-term]")) {
      element.textContent = this.term(element.dataset.term);
    }
    for (const element of root.querySelectorAll("[data-i18n]")) {
      element.textContent = this.t(element.dataset.i18n, varsOf(element));
    }
    for (const [attribute, data] of [
      ["placeholder", "i18nPlaceholder"],
      ["title", "i18nTitle"],
      ["aria-label", "i18nLabel"],
    ]) {
      for (const element of root.querySelectorAll(`[data-${kebab(data)}]`)) {
        element.setAttribute(attribute, this.t(element.dataset[data], varsOf(element)));
      }
    }
  }

  /**
   * An element whose text is the string `key`, kept in the current language by `apply`.
   * @param {string} tag
   * @param {string} key
   * @param {Record<string, string | number>} [vars]
   * @param {string} [className]
   * @returns {HTMLElement}
   */
  element(tag, key, vars, className) {
    const element = document.createElement(tag);
    element.dataset.i18n = key;
    if (vars) element.dataset.i18nVars = JSON.stringify(vars);
    if (className) element.className = className;
    element.textContent = this.t(key, vars);
    return element;
  }
}

function varsOf(element) {
  const raw = element.dataset.i18nVars;
  if (!raw) return {};
  try {
    return JSON.parse(raw);
  } catch {
    return {};
  }
}

function kebab(name) {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
