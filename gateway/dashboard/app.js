// RVA store dashboard: plain JS, no build step. Reads the REST API and listens to the live WebSocket.
// The token comes from the URL fragment (#token=…, never sent to any server) or the sign-in form, and
// is kept in sessionStorage (this tab only). Browsers cannot set headers on WebSockets, so the token
// travels as the "bearer.<token>" subprotocol.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: null, store: null, config: null, ws: null, events: 0, retry: 1000, heatUrl: null,
  camera: null, values: new Map() };

function readToken() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    sessionStorage.setItem("rva-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("rva-token");
}

async function api(path, opts = {}) {
  const res = await fetch(path, { ...opts, headers: { Authorization: `Bearer ${state.token}`, ...(opts.headers || {}) } });
  if (res.status === 401) { signOut("Your session expired or the token is invalid."); throw new Error("401"); }
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res;
}

function signOut(message) {
  sessionStorage.removeItem("rva-token");
  state.token = null;
  if (state.ws) state.ws.close();
  $("board").classList.add("hidden");
  $("login").classList.remove("hidden");
  $("login-error").textContent = message || "";
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function setValue(node, key, value) {
  const text = String(value);
  if (state.values.has(key) && state.values.get(key) !== text) {
    node.classList.remove("flash"); void node.offsetWidth; node.classList.add("flash");
  }
  state.values.set(key, text);
  node.textContent = text;
}

function fmtSeconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 90) return `${Math.round(s)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function fmtTime(ts) { return new Date(ts * 1000).toLocaleTimeString([], { hour12: false }); }

// -- rendering -------------------------------------------------------------------------------------

function renderZones(occupancy) {
  const counts = new Map(occupancy.map((o) => [`${o.camera}/${o.zone}`, o.count]));
  const ul = $("zones");
  let total = 0;
  for (const cam of state.config.cameras) {
    for (const z of cam.zones) {
      const key = `${cam.id}/${z.name}`;
      const count = Math.max(0, counts.get(key) || 0);
      total += count;
      let li = ul.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (!li) {
        li = el("li"); li.dataset.key = key;
        li.append(el("span", "name", z.name), el("span", "value"), el("span", "sub", state.config.cameras.length > 1 ? cam.id : ""));
        const meter = el("div", "meter"); meter.append(el("span")); li.append(meter);
        li.querySelector(".value").dataset.testid = `occupancy-${cam.id}-${z.name}`;
        ul.append(li);
      }
      setValue(li.querySelector(".value"), `occ:${key}`, count);
      const cap = z.capacity || Math.max(10, count);
      li.querySelector(".meter > span").style.width = `${Math.min(100, (100 * count) / cap)}%`;
      li.querySelector(".meter").classList.toggle("over", Boolean(z.capacity) && count > z.capacity);
      li.querySelector(".sub").textContent = (state.config.cameras.length > 1 ? `${cam.id} · ` : "") +
        (z.capacity ? `capacity ${z.capacity}` : "");
    }
  }
  setValue($("total-occupancy"), "total", total);
}

function renderQueues(queues) {
  const byKey = new Map(queues.map((q) => [`${q.camera}/${q.queue}`, q]));
  const ul = $("queues");
  const configured = state.config.cameras.flatMap((c) => c.queues.map((q) => ({ cam: c.id, q })));
  if (!configured.length) return;
  ul.querySelector(".muted")?.remove();
  for (const { cam, q } of configured) {
    const key = `${cam}/${q.name}`;
    const live = byKey.get(key) || { waiting: 0, served: 0, abandoned: 0, wait_estimate_s: 0 };
    let li = ul.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (!li) {
      li = el("li"); li.dataset.key = key;
      li.append(el("span", "name", q.name), el("span", "value"), el("span", "sub"));
      li.querySelector(".value").dataset.testid = `queue-${cam}-${q.name}`;
      ul.append(li);
    }
    setValue(li.querySelector(".value"), `q:${key}`, Math.max(0, live.waiting));
    li.querySelector(".sub").textContent = `waiting · est. wait ${fmtSeconds(live.wait_estimate_s)} · ` +
      `served ${live.served} · left ${live.abandoned}`;
  }
}

function renderLines(lines) {
  const ul = $("lines");
  if (!lines.length) return;
  ul.querySelector(".muted")?.remove();
  for (const ln of lines) {
    const key = `${ln.camera}/${ln.line}`;
    let li = ul.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (!li) {
      li = el("li"); li.dataset.key = key;
      li.append(el("span", "name", ln.line), el("span", "value"), el("span", "sub"));
      li.querySelector(".value").dataset.testid = `line-${ln.camera}-${ln.line}`;
      ul.append(li);
    }
    setValue(li.querySelector(".value"), `ln:${key}`, `${ln.in} / ${ln.out}`);
    li.querySelector(".sub").textContent = "in / out since midnight";
  }
}

function renderFunnel(steps) {
  const box = $("funnel");
  if (!steps.length) return;
  box.replaceChildren(...steps.map((s) => {
    const step = el("div", "step");
    const label = el("div", "label");
    label.append(el("span", "", s.zone), el("span", "", `${s.visitors} · ${(100 * s.conversion).toFixed(0)}%`));
    const bar = el("div", "bar"); const fill = el("span");
    fill.style.width = `${Math.max(2, 100 * s.conversion)}%`;
    bar.append(fill); step.append(label, bar);
    return step;
  }));
}

function addAlert(a, prepend = true) {
  const ul = $("alerts");
  ul.querySelector(".muted")?.remove();
  const li = el("li");
  li.append(el("time", "", fmtTime(a.ts)), el("span", `sev sev-${a.severity}`, a.severity.toUpperCase()), el("span", "", a.message));
  prepend ? ul.prepend(li) : ul.append(li);
  while (ul.children.length > 50) ul.lastChild.remove();
}

function describe(e) {
  const what = e.zone || e.line || e.queue || "";
  const dir = e.direction ? ` (${e.direction})` : "";
  const extra = e.dwell_s !== undefined ? ` after ${fmtSeconds(e.dwell_s)}` : e.wait_s !== undefined ? ` waited ${fmtSeconds(e.wait_s)}` : "";
  const who = e.track_id !== undefined ? `#${e.track_id} ` : "";
  return `${e.camera}: ${who}${e.type.replace("_", " ")} ${what}${dir}${extra}`;
}

const QUIET = new Set(["heatmap_snapshot"]);  // counted, not listed: nothing a store manager reads

function addEvent(e) {
  state.events += 1;
  setValue($("events-count"), "events", state.events);
  if (QUIET.has(e.type)) return;
  const ul = $("events");
  const li = el("li");
  li.append(el("time", "", fmtTime(e.ts)), el("span", "", describe(e)));
  ul.prepend(li);
  while (ul.children.length > 40) ul.lastChild.remove();
}

function applyMetrics(m) {
  renderZones(m.occupancy || []);
  renderQueues(m.queues || []);
  renderLines(m.lines || []);
  $("updated").textContent = `updated ${fmtTime(m.ts || Date.now() / 1000)}`;
}

// -- data ------------------------------------------------------------------------------------------

const timers = {};
function soon(name, fn, ms) {  // at most one refresh per `ms` however many events ask for it
  if (!timers[name]) timers[name] = setTimeout(() => { timers[name] = null; fn(); }, ms);
}

async function loadHeatmap() {
  if (!state.camera) return;
  try {
    const res = await api(`/v1/stores/${encodeURIComponent(state.store)}/cameras/${encodeURIComponent(state.camera)}/heatmap.png`);
    const url = URL.createObjectURL(await res.blob());
    if (state.heatUrl) URL.revokeObjectURL(state.heatUrl);
    state.heatUrl = url;
    $("heatmap").src = url;
    $("heat-info").textContent = `Camera ${state.camera}.`;
  } catch (err) { console.warn("heatmap", err); }
}

async function loadFunnel() {
  try {
    renderFunnel(await (await api(`/v1/stores/${encodeURIComponent(state.store)}/metrics/funnel`)).json());
  } catch (err) { console.warn("funnel", err); }
}

async function loadAlerts() {
  try {
    const alerts = await (await api(`/v1/stores/${encodeURIComponent(state.store)}/alerts?limit=20`)).json();
    alerts.forEach((a) => addAlert(a, false));
  } catch (err) { console.warn("alerts", err); }
}

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/v1/stores/${encodeURIComponent(state.store)}/live/ws`,
    ["rva.v1", `bearer.${state.token}`]);
  state.ws = ws;
  ws.onopen = () => { $("conn").textContent = "live"; $("conn").className = "conn conn-on"; state.retry = 1000; };
  ws.onmessage = (msg) => {
    const m = JSON.parse(msg.data);
    if (m.type === "metrics") applyMetrics(m);
    else if (m.type === "event") {
      addEvent(m.event);
      if (m.event.type === "heatmap_snapshot" && m.event.camera === state.camera) soon("heat", loadHeatmap, 3000);
      if (m.event.type === "zone_enter") soon("funnel", loadFunnel, 5000);
    }
    else if (m.type === "alert") addAlert(m.alert);
  };
  ws.onclose = (ev) => {
    $("conn").textContent = "offline"; $("conn").className = "conn conn-off";
    if (ev.code === 4401) { signOut(ev.reason); return; }
    if (state.ws === ws && state.token) setTimeout(connect, state.retry);
    state.retry = Math.min(state.retry * 2, 30000);
  };
}

async function openStore(store) {
  state.store = store;
  history.replaceState(null, "", `/dashboard/${encodeURIComponent(store)}`);
  const [storeInfo, cameras] = await Promise.all([
    (await api(`/v1/stores/${encodeURIComponent(store)}`)).json(),
    (await api(`/v1/stores/${encodeURIComponent(store)}/cameras`)).json(),
  ]);
  state.config = { cameras };
  $("store-name").textContent = storeInfo.name;
  const camSel = $("camera-select");
  camSel.replaceChildren(...cameras.map((c) => { const o = el("option", "", c.id); o.value = c.id; return o; }));
  state.camera = cameras.length ? cameras[0].id : null;
  camSel.onchange = () => { state.camera = camSel.value; loadHeatmap(); };
  applyMetrics(await (await api(`/v1/stores/${encodeURIComponent(store)}/live`)).json());
  $("login").classList.add("hidden");
  $("board").classList.remove("hidden");
  connect();
  loadHeatmap(); loadFunnel(); loadAlerts();
  setInterval(loadHeatmap, 60000);
  setInterval(loadFunnel, 60000);
}

async function start() {
  state.token = readToken();
  $("login-form").onsubmit = (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("rva-token", $("token-input").value.trim());
    location.reload();
  };
  if (!state.token) { signOut(""); return; }
  let stores;
  try { stores = await (await api("/v1/stores")).json(); } catch (err) { return; }
  const sel = $("store-select");
  sel.replaceChildren(...stores.map((s) => { const o = el("option", "", s.name); o.value = s.id; return o; }));
  sel.onchange = () => { location.href = `/dashboard/${encodeURIComponent(sel.value)}`; };
  const fromPath = decodeURIComponent(location.pathname.replace(/^\/dashboard\/?/, ""));
  const store = stores.find((s) => s.id === fromPath) ? fromPath : stores[0]?.id;
  if (!store) { $("store-name").textContent = "No store visible to this token"; return; }
  sel.value = store;
  await openStore(store);
}

document.addEventListener("DOMContentLoaded", start);
