/**
 * Heartline's browser client: the WebSocket protocol v1 (docs/protocol.md) and the
 * operator API, as one small ES module with no dependencies.
 *
 * ```js
 * import { HeartlineClient } from "/static/heartline.js";
 *
 * const client = new HeartlineClient({ token });
 * client.on("reply_delta", (m) => output.append(m.text));
 * client.on("emotion", (m) => console.log(m.dominant, m.valence));
 * client.on("close", (e) => console.log("closed", e.code));
 * await client.connect();                 // resolves with the `ready` message
 * const turnId = client.send("Where is my order?");
 * client.feedback(turnId, 5);             // after its reply: a thumbs-up
 * client.close();
 * ```
 *
 * @module heartline
 */

/** The protocol version this module speaks. */
export const PROTOCOL = 1;

/** Close code of a normal close (by the client). */
export const CLOSE_NORMAL = 1000;

/**
 * The WebSocket URL for `path` on the server that served this page (or on `base`).
 *
 * @param {string} path - e.g. "/ws" or "/v1/operator/ws"
 * @param {string} [base] - an http(s) URL; default: this page's address
 * @returns {string} the ws: or wss: URL
 */
export function socketUrl(path, base = globalThis.location?.href) {
  const url = new URL(path, base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

let counter = 0;

/**
 * A fresh id for a `user_message`: unique within the session, 1-64 characters of
 * `A-Z a-z 0-9 _ . : -` (the protocol's id alphabet). Works outside secure contexts too.
 *
 * @param {string} [prefix]
 * @returns {string}
 */
export function newId(prefix = "t") {
  const bytes = new Uint8Array(6);
  crypto.getRandomValues(bytes);
  const random = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  counter += 1;
  return `${prefix}-${counter}-${random}`;
}

/**
 * @typedef {{type: string, [field: string]: any}} ServerMessage
 * A server message: a JSON object whose `type` says which (docs/protocol.md).
 */

/**
 * @typedef {object} CloseInfo
 * @property {number} code - the WebSocket close code (1006: closed without a handshake or a close frame)
 * @property {string} reason - the server's close reason, if any
 * @property {boolean} wasClean
 * @property {boolean} wasReady - whether `ready` (or a snapshot) had arrived before the close
 */

/**
 * A JSON-over-WebSocket connection that dispatches each message by its `type`.
 * `HeartlineClient` and `OperatorWatch` build on it.
 */
export class MessageSocket {
  /**
   * @param {string} url - the ws: or wss: URL, token included
   * @param {string} readyType - the first message that means "connected"
   */
  constructor(url, readyType) {
    /** @private */ this._url = url;
    /** @private */ this._readyType = readyType;
    /** @private @type {Map<string, Set<(message: any) => void>>} */ this._handlers = new Map();
    /** @private @type {WebSocket | null} */ this._socket = null;
    /** @private */ this._ready = false;
  }

  /**
   * Call `handler` for each server message of `type`. `"*"` receives every message;
   * `"close"` receives a `CloseInfo` once the connection is over.
   *
   * @param {string} type
   * @param {(message: any) => void} handler
   * @returns {() => void} a function that removes the handler
   */
  on(type, handler) {
    let set = this._handlers.get(type);
    if (!set) {
      set = new Set();
      this._handlers.set(type, set);
    }
    set.add(handler);
    return () => set.delete(handler);
  }

  /** Whether the connection is open and the server said it is ready. */
  get connected() {
    return this._ready && this._socket?.readyState === WebSocket.OPEN;
  }

  /**
   * Open the connection. Resolves with the first message of the ready type; rejects
   * with an `Error` (its `close` a `CloseInfo`) when the connection closes before it:
   * for example when the server refused the token (browsers only see code 1006).
   *
   * @returns {Promise<ServerMessage>}
   */
  connect() {
    if (this._socket) throw new Error("connect() was already called; make a new client");
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this._url);
      this._socket = socket;
      socket.addEventListener("message", (event) => {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          return;
        }
        if (!message || typeof message.type !== "string") return;
        if (!this._ready && message.type === this._readyType) {
          this._ready = true;
          resolve(message);
        }
        this._emit(message.type, message);
        this._emit("*", message);
      });
      socket.addEventListener("close", (event) => {
        const info = {
          code: event.code,
          reason: event.reason,
          wasClean: event.wasClean,
          wasReady: this._ready,
        };
        if (!this._ready) {
          const error = new Error(`connection closed before it was ready (code ${event.code})`);
          error.close = info;
          reject(error);
        }
        this._ready = false;
        this._emit("close", info);
      });
    });
  }

  /**
   * Send one client message (a JSON object with its `type`).
   *
   * @param {{type: string, [field: string]: any}} message
   * @throws {Error} when not connected
   */
  sendMessage(message) {
    if (!this.connected) throw new Error("not connected");
    this._socket.send(JSON.stringify(message));
  }

  /**
   * Close the connection cleanly (code 1000 by default). Safe to call more than once.
   *
   * @param {number} [code]
   * @param {string} [reason]
   */
  close(code = CLOSE_NORMAL, reason = "") {
    const socket = this._socket;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(code, reason);
  }

  /** @private */
  _emit(type, value) {
    for (const handler of this._handlers.get(type) ?? []) {
      try {
        handler(value);
      } catch (error) {
        // One failing handler must not starve the others; report it as the browser would.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

/**
 * A conversation over `/ws`: one session, from `ready` to `close`.
 *
 * Server messages (`ready`, `emotion`, `decision`, `reply_start`, `reply_delta`,
 * `reply_end`, `handoff`, `feedback_ack`, `takeover`, `agent_message`, `error`) reach
 * the handlers registered with `on(type, handler)`.
 */
export class HeartlineClient extends MessageSocket {
  /**
   * @param {object} options
   * @param {string} options.token - a user token (`heartline token --user NAME`)
   * @param {string} [options.url] - the WebSocket URL; default `/ws` on this page's server
   */
  constructor({ token, url = socketUrl("/ws") }) {
    const address = new URL(url);
    // Browsers cannot set headers on a WebSocket: the token travels as `?token=`.
    address.searchParams.set("token", token);
    super(address.toString(), "ready");
    /** The session id from `ready` (null before). @type {string | null} */
    this.sessionId = null;
    /** The user id the token names, from `ready` (null before). @type {string | null} */
    this.userId = null;
    this.on("ready", (ready) => {
      this.sessionId = ready.session_id;
      this.userId = ready.user_id;
    });
  }

  /**
   * Send the user's message; a reply still streaming is cancelled by the server
   * (barge-in).
   *
   * @param {string} text - not blank, at most 16,000 characters
   * @param {object} [options]
   * @param {string} [options.id] - the turn id; default: a fresh one (`newId()`)
   * @param {Record<string, number>} [options.signals] - the client's own emotion scores
   * @returns {string} the turn id, which the turn's server messages carry as `turn_id`
   */
  send(text, { id = newId(), signals } = {}) {
    const message = { type: "user_message", id, text };
    if (signals) message.signals = signals;
    this.sendMessage(message);
    return id;
  }

  /** Stop the reply in flight, if any (a no-op otherwise). */
  cancel() {
    this.sendMessage({ type: "cancel" });
  }

  /**
   * Rate a reply: 1 (worst) to 5 (best); a thumbs-up is 5, a thumbs-down 1. The
   * server answers with `feedback_ack`.
   *
   * @param {string} turnId
   * @param {1 | 2 | 3 | 4 | 5} score
   */
  feedback(turnId, score) {
    if (!Number.isInteger(score) || score < 1 || score > 5) {
      throw new RangeError("score must be an integer from 1 to 5");
    }
    this.sendMessage({ type: "feedback", turn_id: turnId, score });
  }
}

/** An error answer of the HTTP API: `{"error": {"message", "type", "param", "code"}}`. */
export class ApiError extends Error {
  /**
   * @param {number} status - the HTTP status (0: the server could not be reached)
   * @param {{message?: string, type?: string, param?: string | null, code?: string | null}} body
   */
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.name = "ApiError";
    /** @type {number} */ this.status = status;
    /** @type {string | null} */ this.code = body.code ?? null;
    /** @type {string | null} */ this.type = body.type ?? null;
    /** @type {string | null} */ this.param = body.param ?? null;
  }
}

/**
 * Call the server's HTTP API with `Authorization: Bearer <token>`.
 *
 * @param {string} token
 * @param {string} method - "GET", "POST", ...
 * @param {string} path - e.g. "/v1/operator/sessions"
 * @param {object} [body] - sent as JSON
 * @param {string} [base] - the server's root URL; default this page's server
 * @returns {Promise<any>} the JSON answer
 * @throws {ApiError} for an error status, or when the server cannot be reached (status 0)
 */
export async function apiRequest(token, method, path, body, base = globalThis.location?.href) {
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(new URL(path, base), init);
  } catch (error) {
    throw new ApiError(0, { message: `the server could not be reached (${error.message})` });
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data?.error ?? {});
  return data;
}

/**
 * The operator API (`/v1/operator/...`), for staff with an operator token
 * (`heartline token --operator NAME`). Every method throws `ApiError` on
 * refusal: 401 for a bad token, 403 for a user token, 404 for an unknown session,
 * 409 when another agent has the session or this one has not taken it over.
 */
export class OperatorApi {
  /**
   * @param {string} token - an operator token
   * @param {object} [options]
   * @param {string} [options.base] - the server's root URL; default this page's server
   */
  constructor(token, { base = globalThis.location?.href } = {}) {
    /** @private */ this._token = token;
    /** @private */ this._base = base;
  }

  /** @private */
  _call(method, path, body) {
    return apiRequest(this._token, method, path, body, this._base);
  }

  /** Live sessions, newest activity first. @returns {Promise<object[]>} */
  async sessions() {
    return (await this._call("GET", "/v1/operator/sessions")).sessions;
  }

  /** Sessions waiting for a person, oldest handoff first. @returns {Promise<object[]>} */
  async handoffs() {
    return (await this._call("GET", "/v1/operator/handoffs")).sessions;
  }

  /**
   * One live session with its transcript (last 50 entries).
   * @param {string} sessionId
   * @returns {Promise<object>}
   */
  session(sessionId) {
    return this._call("GET", `/v1/operator/sessions/${encodeURIComponent(sessionId)}`);
  }

  /**
   * Take the session over: the bot stops answering it.
   * @param {string} sessionId
   * @returns {Promise<object>} the session
   */
  takeover(sessionId) {
    return this._call("POST", `/v1/operator/sessions/${encodeURIComponent(sessionId)}/takeover`);
  }

  /**
   * Say something to the customer of a session this agent has taken over.
   * @param {string} sessionId
   * @param {string} text
   * @returns {Promise<{id: string}>}
   */
  say(sessionId, text) {
    const path = `/v1/operator/sessions/${encodeURIComponent(sessionId)}/messages`;
    return this._call("POST", path, { text });
  }

  /**
   * Give the session back to the bot.
   * @param {string} sessionId
   * @returns {Promise<object>} the session
   */
  release(sessionId) {
    return this._call("POST", `/v1/operator/sessions/${encodeURIComponent(sessionId)}/release`);
  }

  /**
   * A user's emotional history across sessions, oldest first.
   * @param {string} userId
   * @param {string} [tenant] - default: the server's default tenant
   * @returns {Promise<{user_id: string, tenant: string, sessions: object[], turns: object[]}>}
   */
  history(userId, tenant) {
    const query = tenant ? `?tenant=${encodeURIComponent(tenant)}` : "";
    return this._call("GET", `/v1/operator/users/${encodeURIComponent(userId)}/history${query}`);
  }

  /**
   * Follow live sessions over `/v1/operator/ws`: `snapshot` first, then `session`,
   * `closed` and `transcript` messages. Call `connect()` on the result.
   *
   * @param {object} [options]
   * @param {string} [options.url] - default `/v1/operator/ws` on this page's server
   * @returns {MessageSocket}
   */
  watch({ url = socketUrl("/v1/operator/ws", this._base) } = {}) {
    const address = new URL(url);
    address.searchParams.set("token", this._token);
    return new MessageSocket(address.toString(), "snapshot");
  }
}
