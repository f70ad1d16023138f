/**
 * What both pages share: the token (from `?token=`, sessionStorage or a form), the
 * language switch, and small DOM helpers.
 *
 * @module common
 */

/**
 * The token for this tab: `?token=` of the address on first load (then kept in
 * sessionStorage and taken out of the address bar), else the one kept before.
 *
 * @param {string} key - the sessionStorage key (one per page)
 * @returns {string | null}
 */
export function takeToken(key) {
  const url = new URL(location.href);
  const given = url.searchParams.get("token");
  if (given) {
    sessionStorage.setItem(key, given);
    url.searchParams.delete("token");
    history.replaceState(history.state, "", url.pathname + url.search + url.hash);
    return given;
  }
  return sessionStorage.getItem(key);
}

/**
 * Show the sign-in form and resolve with the token the person enters.
 *
 * @param {HTMLFormElement} form - holds an `input[name=token]` and a `.form-error` element
 * @param {string} key - the sessionStorage key to keep the token under
 * @param {string} [problem] - why the form shows (a refused token), shown above it
 * @returns {Promise<string>}
 */
export function askToken(form, key, problem = "") {
  form.hidden = false;
  const error = form.querySelector(".form-error");
  error.textContent = problem;
  error.hidden = !problem;
  const input = form.querySelector("input[name=token]");
  input.focus();
  return new Promise((resolve) => {
    const submit = (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      form.removeEventListener("submit", submit);
      sessionStorage.setItem(key, token);
      input.value = "";
      form.hidden = true;
      resolve(token);
    };
    form.addEventListener("submit", submit);
  });
}

/**
 * The claims of a JWT, read without checking its signature (for display only: the
 * server checks it).
 *
 * @param {string} token
 * @returns {Record<string, any>}
 */
export function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = part + "=".repeat((4 - (part.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}

/**
 * A new element with attributes, properties and children.
 *
 * @param {string} tag
 * @param {Record<string, any>} [props] - `class`, `text`, `dataset`, attributes, `on<event>` handlers
 * @param {...(Node | string | null | undefined | false)} children
 * @returns {HTMLElement}
 */
export function el(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") element.className = value;
    else if (name === "text") element.textContent = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) element.append(child);
  }
  return element;
}

/**
 * A number with a sign and two decimals, for valence.
 * @param {number} value
 * @returns {string}
 */
export function signed(value) {
  const fixed = Math.abs(value).toFixed(2);
  if (fixed === "0.00") return fixed;
  return (value < 0 ? "−" : "+") + fixed;
}

/**
 * The CSS class of a valence: "mood-bad", "mood-low", "mood-ok" or "mood-good".
 * @param {number} valence
 * @returns {string}
 */
export function moodClass(valence) {
  if (valence <= -0.4) return "mood-bad";
  if (valence < -0.05) return "mood-low";
  if (valence < 0.3) return "mood-ok";
  return "mood-good";
}

/**
 * How long ago `at` (epoch seconds) was, in words.
 * @param {import("./i18n.js").I18n} i18n
 * @param {number} at
 * @returns {string}
 */
export function ago(i18n, at) {
  const seconds = Math.max(0, Date.now() / 1000 - at);
  if (seconds < 60) return i18n.t("ago.now");
  if (seconds < 3600) return i18n.t("ago.min", { n: Math.floor(seconds / 60) });
  return i18n.t("ago.h", { n: Math.floor(seconds / 3600) });
}

/**
 * Wire the language toggle button and keep the document in the current language.
 * @param {import("./i18n.js").I18n} i18n
 * @param {HTMLButtonElement} button
 */
export function languageToggle(i18n, button) {
  button.addEventListener("click", () => i18n.toggle());
  i18n.apply(document);
}

/**
 * A close code in words, for the "connection closed" notice.
 * @param {{code: number, reason: string}} close
 * @returns {string}
 */
export function closeDetail(close) {
  return close.reason ? `${close.code} ${close.reason}` : String(close.code);
}
