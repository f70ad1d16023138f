/**
 * The emotion timeline: valence (-1..1, left axis) and arousal (0..1, right axis) per
 * turn as two lines in an SVG chart, with each turn's dominant label at its point.
 * Both pages draw their charts with it.
 *
 * The chart is a legend, then three SVGs side by side: the valence axis, the plot and
 * the arousal axis. Only the plot scrolls sideways when there are more turns than fit,
 * so the axes and the legend stay in view.
 *
 * @module timeline
 */

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 220;
const TOP = 28; // room for the labels above the highest points
const BOTTOM = 34; // the turn numbers and the axis title
const AXIS = 46; // width of each axis
const EDGE = 34; // room between the plot's edge and the first and last points
const MIN_STEP = 56; // pixels between turns before the plot scrolls sideways

/**
 * @typedef {object} TimelinePoint
 * @property {number} valence - -1..1
 * @property {number} arousal - 0..1
 * @property {string} dominant - the dominant label (shown at the point)
 * @property {string} [title] - a tooltip for the point (e.g. the message)
 * @property {string | number} [tick] - the x-axis label (default: the turn's number)
 */

function node(tag, attributes = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

function clamp(value, low, high) {
  return Math.min(high, Math.max(low, Number.isFinite(value) ? value : 0));
}

/** About how wide a label is drawn, in pixels (CJK characters are wider). */
function labelWidth(text) {
  let width = 0;
  for (const char of text) width += /[\u2e80-\u9fff\uff00-\uffef]/.test(char) ? 12 : 6.8;
  return width;
}

/** Whether neighbouring labels would overlap at this distance between points. */
function crowded(labels, step) {
  return labels.some((label, i) => i > 0 && (labelWidth(label) + labelWidth(labels[i - 1])) / 2 + 8 > step);
}

const yValence = (v) => HEIGHT - BOTTOM - ((clamp(v, -1, 1) + 1) / 2) * (HEIGHT - TOP - BOTTOM);
const yArousal = (a) => HEIGHT - BOTTOM - clamp(a, 0, 1) * (HEIGHT - TOP - BOTTOM);
const GRID = [-1, -0.5, 0, 0.5, 1];

/** A chart in a container element, redrawn when its data, size or language change. */
export class Timeline {
  /**
   * @param {HTMLElement} container - an empty element; the chart fills it
   * @param {import("./i18n.js").I18n} i18n
   * @param {object} [options]
   * @param {string} [options.emptyKey] - the string shown while there are no points
   */
  constructor(container, i18n, { emptyKey = "timeline.empty" } = {}) {
    this.i18n = i18n;
    this.emptyKey = emptyKey;
    /** @type {TimelinePoint[]} */ this.points = [];
    /** @type {number[]} */ this.separators = [];
    container.classList.add("timeline");
    this.legend = document.createElement("div");
    this.legend.className = "chart-legend";
    this.left = node("svg", { class: "chart-axis-left", width: AXIS, height: HEIGHT, "aria-hidden": "true" });
    this.right = node("svg", { class: "chart-axis-right", width: AXIS, height: HEIGHT, "aria-hidden": "true" });
    this.plot = node("svg", { class: "chart-plot", height: HEIGHT, role: "img" });
    this.scroller = document.createElement("div");
    this.scroller.className = "chart-scroll";
    this.scroller.append(this.plot);
    const frame = document.createElement("div");
    frame.className = "chart-frame";
    frame.append(this.left, this.scroller, this.right);
    container.replaceChildren(this.legend, frame);
    this._width = 0;
    new ResizeObserver(() => {
      if (this._available() !== this._width) this.draw();
    }).observe(this.scroller);
    i18n.onChange(() => this.draw());
    this.draw();
  }

  /**
   * Show these points (oldest first); `separators` are indices where a new group
   * (session) begins, drawn as dashed lines.
   *
   * @param {TimelinePoint[]} points
   * @param {number[]} [separators]
   */
  set(points, separators = []) {
    const grew = points.length > this.points.length;
    this.points = points;
    this.separators = separators;
    this.draw();
    if (grew) this.scroller.scrollLeft = this.scroller.scrollWidth; // keep the latest in view
  }

  _available() {
    return Math.max(160, Math.floor(this.scroller.clientWidth));
  }

  /** Draw the chart again from `points`. */
  draw() {
    const { i18n, points } = this;
    const available = this._available();
    this._width = available;
    const count = points.length;
    const labels = points.map((point) => i18n.term(point.dominant));
    const slanted = count > 1 && crowded(labels, Math.max(MIN_STEP, (available - 2 * EDGE) / (count - 1)));
    const right = slanted ? EDGE + 40 : EDGE; // slanted labels lean right
    const width = Math.max(available, EDGE + right + Math.max(0, count - 1) * MIN_STEP);
    const step = count > 1 ? (width - EDGE - right) / (count - 1) : 0;
    const x = (i) => (count > 1 ? EDGE + i * step : width / 2);

    this._drawLegend();
    this._drawAxes();
    const plot = this.plot;
    plot.replaceChildren();
    plot.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
    plot.setAttribute("width", String(width));
    plot.setAttribute("aria-label", i18n.t("timeline.label"));
    for (const v of GRID) {
      const y = yValence(v);
      plot.append(node("line", { x1: 0, x2: width, y1: y, y2: y, class: v === 0 ? "chart-zero" : "chart-grid" }));
    }
    plot.append(node("text", { x: width / 2, y: HEIGHT - 4, class: "axis-title", "text-anchor": "middle" }, i18n.t("timeline.turn")));
    if (count === 0) {
      plot.append(node("text", { x: width / 2, y: (TOP + HEIGHT - BOTTOM) / 2 - 8, class: "chart-empty", "text-anchor": "middle" }, i18n.t(this.emptyKey)));
      return;
    }
    for (const index of this.separators) {
      if (index <= 0 || index >= count) continue;
      const at = (x(index - 1) + x(index)) / 2;
      plot.append(node("line", { x1: at, x2: at, y1: 4, y2: HEIGHT - BOTTOM, class: "chart-separator" }));
    }
    const every = Math.max(1, Math.ceil(28 / Math.max(step, 1)));
    points.forEach((point, i) => {
      if (i % every !== 0 && i !== count - 1) return;
      const bottom = HEIGHT - BOTTOM;
      plot.append(node("line", { x1: x(i), x2: x(i), y1: bottom, y2: bottom + 4, class: "chart-axis" }));
      plot.append(node("text", { x: x(i), y: bottom + 16, class: "chart-tick", "text-anchor": "middle" }, String(point.tick ?? i + 1)));
    });
    const line = (y, field) => points.map((p, i) => `${x(i).toFixed(1)},${y(p[field]).toFixed(1)}`).join(" ");
    plot.append(node("polyline", { points: line(yArousal, "arousal"), class: "line-arousal" }));
    plot.append(node("polyline", { points: line(yValence, "valence"), class: "line-valence" }));
    points.forEach((point, i) => {
      const group = node("g", { class: "chart-point" });
      const summary = `${i18n.term(point.dominant)} · ${i18n.t("timeline.valence")} ${point.valence.toFixed(2)} · ${i18n.t("timeline.arousal")} ${point.arousal.toFixed(2)}`;
      group.append(node("title", {}, point.title ? `${point.title}\n${summary}` : summary));
      group.append(node("circle", { cx: x(i), cy: yArousal(point.arousal), r: 4, class: "dot-arousal" }));
      const vy = yValence(point.valence);
      group.append(node("circle", { cx: x(i), cy: vy, r: 5, class: "dot-valence" }));
      const ly = vy - 11 > 12 ? vy - 11 : vy + 19;
      const attributes = { x: x(i), y: ly, class: "point-label", "text-anchor": slanted ? "start" : "middle" };
      if (slanted) attributes.transform = `rotate(-32 ${x(i)} ${ly})`;
      group.append(node("text", attributes, labels[i]));
      plot.append(group);
    });
  }

  _drawLegend() {
    const { i18n } = this;
    const item = (className, text) => {
      const span = document.createElement("span");
      span.className = className;
      span.textContent = text;
      return span;
    };
    this.legend.replaceChildren(
      item("legend-valence", `${i18n.t("timeline.valence")} (−1…+1)`),
      item("legend-arousal", `${i18n.t("timeline.arousal")} (0…1)`),
    );
  }

  _drawAxes() {
    const { i18n, left, right } = this;
    left.replaceChildren();
    right.replaceChildren();
    for (const v of GRID) {
      const y = yValence(v) + 4;
      const label = v === 0 ? "0" : `${v > 0 ? "+" : "−"}${Math.abs(v)}`;
      left.append(node("text", { x: AXIS - 6, y, class: "chart-tick tick-valence", "text-anchor": "end" }, label));
      right.append(node("text", { x: 6, y, class: "chart-tick tick-arousal", "text-anchor": "start" }, String((v + 1) / 2)));
    }
    const mid = (TOP + HEIGHT - BOTTOM) / 2;
    left.append(node("text", { x: 10, y: mid, class: "axis-title title-valence", "text-anchor": "middle", transform: `rotate(-90 10 ${mid})` }, i18n.t("timeline.valence")));
    right.append(node("text", { x: AXIS - 8, y: mid, class: "axis-title title-arousal", "text-anchor": "middle", transform: `rotate(90 ${AXIS - 8} ${mid})` }, i18n.t("timeline.arousal")));
  }
}
