// CodeRunner dashboard: the live parts of any page. One WebSocket to /api/ws (the session cookie authenticates it;
// the controller checks the page's Origin) carries every subscription the page's elements ask for:
//   [data-testid="ws-status"]          the connection's state ("Connected", "Reconnecting…")
//   [data-live-status="<deployment>"]  text and class status-<STATUS> follow status_update
//   [data-live-instances="<deployment>"]  the instance table, read again when the status or the count changes
//   [data-live-logs="<deployment>"]    appends .log-line elements, at most MAX_LINES of them
//   [data-live-filter="<deployment>"]  filters those lines (on the controller, and the lines already shown)
//   [data-live-metric="cpu|memory"][data-live-deployment="<deployment>"]  value and a chart of the last minutes
// Pages work without this script; it only adds to them. No inline script, no eval: the CSP allows neither.

const MAX_LINES = 1000; // lines kept in view per log element; the export link has the older ones
// Lines added to the page in one frame at most: a frame that comes late (a busy machine, a flood) shows the newest
// and says how many it skipped, instead of building a thousand rows in one long task.
const MAX_PER_FRAME = 250;
const TAIL = 200; // recent lines asked for when a log view first subscribes
const SAMPLES = 300; // chart points: five minutes of metrics_update at one a second
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 8000;
const FILTER_DELAY_MS = 250;
// The instance table is read again (GET /deployments/:id/instances.json) on each change of status or instance count,
// and then every 2 s while an instance is not yet running, 15 times at most (30 s), as no event says when one is.
const INSTANCES_RECHECK_MS = 2000;
const INSTANCES_RECHECKS = 15;
const SESSION_ENDED = 4401;

const logViews = new Map(); // deploymentId -> LogView
const statusTargets = new Map(); // deploymentId -> [element]
const metricTargets = new Map(); // deploymentId -> [Metric]
const instanceTables = new Map(); // deploymentId -> InstanceTable
const indicators = [];

let socket = null;
let attempt = 0;
let stopped = false;

function setIndicator(state, text) {
  for (const element of indicators) {
    element.classList.remove("connected", "reconnecting", "connecting", "ended");
    element.classList.add(state);
    element.textContent = text;
  }
}

function send(event, data) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ event, data }));
}

class LogView {
  constructor(deploymentId, element) {
    this.deploymentId = deploymentId;
    this.element = element;
    this.filter = "";
    // instanceId -> {seq, timestamp} of the last line shown: a resume asks for what follows, and repeats are dropped.
    this.last = new Map();
    this.pending = []; // lines waiting for the next frame
    this.scheduled = false;
    this.live = []; // the .log-line elements this script added, oldest first
    // Whether the view follows the newest line: read on scroll, so that a frame never waits for a layout to ask.
    this.follow = true;
    element.addEventListener("scroll", () => {
      this.follow = element.scrollHeight - element.scrollTop - element.clientHeight < 24;
    }, { passive: true });
    for (const line of element.querySelectorAll(".log-line[data-instance][data-seq]")) {
      const seq = Number(line.dataset.seq);
      const known = this.last.get(line.dataset.instance);
      // Without its time, a server-rendered line counts as the newest: lines up to its seq are repeats.
      if (!known || known.seq < seq) this.last.set(line.dataset.instance, { seq, timestamp: line.dataset.timestamp || "9999" });
    }
  }

  subscription() {
    // batch: lines come as log_batch events, many to a message: at thousands of lines a second one message and one
    // JSON.parse per line would take the whole main thread.
    const data = { deploymentId: this.deploymentId, batch: true };
    if (this.filter) data.filter = this.filter;
    if (this.last.size > 0) data.after = Object.fromEntries([...this.last].map(([id, last]) => [id, last.seq]));
    // Instances not named in `after` (new ones, or all of them the first time) start with the recent lines.
    data.tail = TAIL;
    return data;
  }

  receive(lines) {
    for (const line of lines) {
      const last = this.last.get(line.instanceId);
      // A repeat has a seq already shown and no later time (times are ISO 8601, comparable as text). A lower seq
      // with a later time is an instance whose agent started again under the same id: its sequence starts anew.
      if (last && line.seq <= last.seq && line.timestamp <= last.timestamp) continue;
      this.last.set(line.instanceId, { seq: line.seq, timestamp: line.timestamp });
      this.pending.push(line);
    }
    // Whatever is beyond the window would be dropped from view on arrival: do not keep it while the tab sleeps.
    if (this.pending.length > MAX_LINES) this.pending.splice(0, this.pending.length - MAX_LINES);
    if (this.pending.length > 0 && !this.scheduled) {
      this.scheduled = true;
      requestAnimationFrame(() => this.flush());
    }
  }

  notice(text) {
    this.pending.push({ notice: text });
    if (!this.scheduled) {
      this.scheduled = true;
      requestAnimationFrame(() => this.flush());
    }
  }

  // One DOM update per frame, however many lines came: the page stays responsive at thousands of lines a second.
  flush() {
    this.scheduled = false;
    let lines = this.pending;
    this.pending = [];
    const view = this.element;
    const skipped = lines.length - MAX_PER_FRAME;
    if (skipped > 0) {
      lines = lines.slice(skipped);
      lines.unshift({ notice: `${skipped} lines not shown (too many at once); the export has them` });
    }
    const fragment = document.createDocumentFragment();
    const needle = this.filter.toLowerCase();
    for (const line of lines) {
      const row = document.createElement("div");
      if (line.notice) {
        row.className = "log-line log-notice";
        row.textContent = line.notice;
        row.searchText = "";
      } else {
        row.className = `log-line level-${line.level}`;
        row.dataset.instance = line.instanceId;
        row.dataset.seq = String(line.seq);
        row.dataset.timestamp = line.timestamp;
        row.textContent = `${line.timestamp.slice(11, 23)} ${line.instanceId.slice(0, 8)} ${line.message}`;
        row.searchText = line.message.toLowerCase();
        if (needle && !row.searchText.includes(needle)) row.hidden = true;
      }
      fragment.append(row);
      this.live.push(row);
    }
    view.querySelector(".log-empty")?.remove(); // the server's "No log lines yet."
    view.append(fragment);
    const excess = this.live.length - MAX_LINES;
    if (excess > 0) for (const row of this.live.splice(0, excess)) row.remove();
    if (this.follow) view.scrollTop = view.scrollHeight;
  }

  setFilter(text) {
    this.filter = text;
    const needle = text.toLowerCase();
    for (const row of this.live) {
      if (row.searchText !== undefined && row.searchText !== "") row.hidden = Boolean(needle) && !row.searchText.includes(needle);
    }
    for (const row of this.element.querySelectorAll(".log-line")) {
      if (row.searchText === undefined) row.hidden = Boolean(needle) && !row.textContent.toLowerCase().includes(needle);
    }
    // The controller filters from here on (a subscription replaces the previous one of the deployment).
    send("subscribe_logs", this.subscription());
  }
}

class Metric {
  constructor(element) {
    this.kind = element.dataset.liveMetric;
    this.value = element.querySelector("[data-metric-value]") || element;
    this.line = element.querySelector("svg polyline");
    this.samples = [];
  }

  update(value) {
    if (typeof value !== "number") return;
    this.value.textContent = `${value.toFixed(1)}%`;
    this.samples.push(Math.max(0, Math.min(100, value)));
    if (this.samples.length > SAMPLES) this.samples.shift();
    if (!this.line) return;
    const box = this.line.ownerSVGElement.viewBox.baseVal;
    const step = box.width / (SAMPLES - 1);
    const offset = (SAMPLES - this.samples.length) * step;
    this.line.setAttribute("points", this.samples.map((v, i) =>
      `${(offset + i * step).toFixed(1)},${(box.height - (v / 100) * box.height).toFixed(1)}`).join(" "));
  }
}

// The instance table of a deployment page: its rows as the server renders them, replaced from the JSON route.
class InstanceTable {
  constructor(deploymentId, element) {
    this.deploymentId = deploymentId;
    this.element = element;
    this.body = element.querySelector("tbody");
    this.table = element.querySelector("[data-instances-table]");
    this.empty = element.querySelector("[data-instances-empty]");
    this.known = null; // "status/count" of the last status_update acted on
    this.status = element.dataset.renderedStatus;
    this.timer = 0;
    this.rechecks = 0;
    this.loading = false;
    this.again = false; // a change came while the rows were being read: read them once more
  }

  // The first status_update tells what the page was rendered with, or what changed since.
  statusChanged(status, count) {
    const key = `${status}/${count}`;
    if (this.known === key) return;
    const first = this.known === null;
    this.known = key;
    this.status = status;
    this.rechecks = 0;
    if (first && this.matches(status, count)) return;
    this.refresh();
  }

  matches(status, count) {
    const rows = this.body ? this.body.querySelectorAll("tr") : [];
    const shown = [...rows].filter((row) => row.dataset.state === "running").length;
    return status === this.element.dataset.renderedStatus && rows.length === count && (status !== "RUNNING" || shown > 0);
  }

  async refresh() {
    if (!this.body) return;
    if (this.loading) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.loading = true;
    this.again = false;
    try {
      const response = await fetch(`/deployments/${encodeURIComponent(this.deploymentId)}/instances.json`,
        { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const rows = await response.json();
      this.render(rows);
      const starting = this.status === "PROVISIONING" || this.status === "RUNNING";
      if (!this.again && starting && rows.some((row) => row.state !== "running") && this.rechecks < INSTANCES_RECHECKS) {
        this.rechecks += 1;
        this.timer = setTimeout(() => this.refresh(), INSTANCES_RECHECK_MS);
      }
    } catch (error) {
      console.warn("live: instance table not refreshed", error);
    } finally {
      this.loading = false;
      if (this.again) this.refresh();
    }
  }

  render(rows) {
    const fragment = document.createDocumentFragment();
    for (const instance of rows) {
      const tr = document.createElement("tr");
      tr.dataset.testid = "instance-row";
      tr.dataset.state = instance.state;
      const id = document.createElement("code");
      id.textContent = instance.id;
      const state = document.createElement("td");
      state.textContent = instance.state;
      if (instance.stale) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = "stale";
        state.append(" ", badge);
      }
      const cell = (text) => { const td = document.createElement("td"); td.textContent = text; return td; };
      const first = document.createElement("td");
      first.append(id);
      tr.append(first, state, cell(instance.configVersion), cell(instance.hostname), cell(instance.lastHeartbeat));
      fragment.append(tr);
    }
    this.body.replaceChildren(fragment);
    if (this.table) this.table.hidden = rows.length === 0;
    if (this.empty) this.empty.hidden = rows.length > 0;
  }
}

function subscribeAll() {
  for (const id of statusTargets.keys()) send("subscribe_status", { deploymentId: id });
  for (const id of metricTargets.keys()) send("subscribe_metrics", { deploymentId: id });
  for (const view of logViews.values()) send("subscribe_logs", view.subscription());
}

function handle(frame) {
  const data = frame.data || {};
  switch (frame.event) {
    case "log_batch":
      logViews.get(data.deploymentId)?.receive(data.lines || []);
      break;
    case "log_update":
      logViews.get(data.deploymentId)?.receive([data]);
      break;
    case "logs_dropped":
      logViews.get(data.deploymentId)?.notice(`${data.count} lines skipped (too many at once); the export has them`);
      break;
    case "status_update":
      for (const element of statusTargets.get(data.deploymentId) || []) {
        element.textContent = data.status;
        // The badge's colour is its class, as the server renders it.
        for (const name of [...element.classList]) if (name.startsWith("status-")) element.classList.remove(name);
        element.classList.add(`status-${data.status}`);
      }
      instanceTables.get(data.deploymentId)?.statusChanged(data.status, data.instances);
      break;
    case "metrics_update":
      for (const metric of metricTargets.get(data.deploymentId) || []) metric.update(data.metrics?.[metric.kind]);
      break;
    case "subscription_error":
      for (const element of statusTargets.get(data.deploymentId) || []) element.textContent = data.message;
      break;
  }
}

function connect() {
  if (stopped) return;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/api/ws`);
  socket = ws;
  ws.addEventListener("open", () => {
    attempt = 0;
    setIndicator("connected", "Connected");
    subscribeAll();
  });
  ws.addEventListener("message", (event) => {
    try {
      handle(JSON.parse(event.data));
    } catch (error) {
      console.warn("live: unreadable frame", error);
    }
  });
  ws.addEventListener("close", (event) => {
    if (socket !== ws) return;
    socket = null;
    if (event.code === SESSION_ENDED) {
      // Signed out or expired: a new socket would be refused. The next page load asks to sign in.
      stopped = true;
      setIndicator("ended", "Session ended");
      return;
    }
    setIndicator("reconnecting", "Reconnecting…");
    // Capped exponential backoff with jitter, so that a restarted controller is not met by every tab at once.
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt) * (0.75 + Math.random() / 2);
    attempt += 1;
    setTimeout(connect, delay);
  });
}

function listFor(map, key) {
  if (!map.has(key)) map.set(key, []);
  return map.get(key);
}

function start() {
  indicators.push(...document.querySelectorAll('[data-testid="ws-status"]'));
  for (const element of document.querySelectorAll("[data-live-status]")) {
    listFor(statusTargets, element.dataset.liveStatus).push(element);
  }
  for (const element of document.querySelectorAll("[data-live-instances]")) {
    const id = element.dataset.liveInstances;
    instanceTables.set(id, new InstanceTable(id, element));
    // The table follows status_update: subscribe to it even if no badge on the page does.
    listFor(statusTargets, id);
  }
  for (const element of document.querySelectorAll("[data-live-metric][data-live-deployment]")) {
    listFor(metricTargets, element.dataset.liveDeployment).push(new Metric(element));
  }
  for (const element of document.querySelectorAll("[data-live-logs]")) {
    const id = element.dataset.liveLogs;
    if (!logViews.has(id)) logViews.set(id, new LogView(id, element));
  }
  for (const input of document.querySelectorAll("[data-live-filter]")) {
    const view = logViews.get(input.dataset.liveFilter);
    if (!view) continue;
    let timer = 0;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => view.setFilter(input.value.trim()), FILTER_DELAY_MS);
    });
    if (input.value.trim()) view.filter = input.value.trim();
  }
  // A page with nothing live holds no socket.
  if (statusTargets.size + metricTargets.size + logViews.size === 0) return;
  setIndicator("connecting", "Connecting…");
  connect();
}

start();
