/**
 * The operator page's script (plain JavaScript, no build step, no external code): it reads
 * `/v1/status` once, then follows `/v1/events` (fetch streaming, so the bearer token travels in a
 * header) and renders every `tick` from the status document it carries, so every number shown is
 * a number of `/v1/status`. Numbers carry their raw value in `data-value`.
 */

export const UI_SCRIPT = `
"use strict";
const HISTORY_TICKS = 60;
const EVENTS_SHOWN = 50;
const RETRY_MS = 2000;
const params = new URLSearchParams(location.search);
if (params.has("token")) {
  sessionStorage.setItem("ferry-token", params.get("token"));
  history.replaceState(null, "", location.pathname);
}
const token = sessionStorage.getItem("ferry-token");
const headers = token ? { authorization: "Bearer " + token } : {};
const lagHistory = new Map();
const $ = (id) => document.getElementById(id);

function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  }
  for (const child of children || []) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function bytes(n) {
  if (typeof n !== "number") return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? Math.round(n) + " B" : n.toFixed(1) + " " + units[i];
}

function duration(s) {
  if (typeof s !== "number") return "-";
  s = Math.max(0, Math.round(s));
  if (s >= 86400) return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  if (s >= 3600) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  if (s >= 60) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  return s + "s";
}

/** A cell showing \`text\` with the raw number in data-value. */
function num(field, value, text) {
  return el("td", { "data-field": field, "data-value": value === null ? "null" : value },
    [text === undefined ? String(value) : text]);
}

function card(field, label, value, text) {
  return el("div", { class: "card" }, [
    el("div", { class: "label" }, [label]),
    el("div", { class: "value", "data-field": field, "data-value": value }, [text ?? value]),
  ]);
}

function spark(points) {
  const max = Math.max(1, ...points);
  const step = 120 / Math.max(1, HISTORY_TICKS - 1);
  const coords = points.map((p, i) => (i * step).toFixed(1) + "," + (22 - (p / max) * 20).toFixed(1));
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 120 24");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", coords.join(" "));
  svg.append(line);
  return svg;
}

function table(id, head, rows) {
  const body = rows.length ? rows : [el("tr", {}, [el("td", { colspan: head.length }, ["(none)"])])];
  $(id).replaceChildren(el("table", {}, [
    el("thead", {}, [el("tr", {}, head.map((h) => el("th", {}, [h])))]),
    el("tbody", {}, body),
  ]));
}

function renderPrimary(s, writesPerS) {
  $("title").textContent = "ferry primary";
  $("summary").replaceChildren(
    card("current_lsn", "current LSN", s.current_lsn),
    card("writes_per_s", "writes / s", writesPerS ?? 0),
    card("applied_lsn", "state applied", s.applied_lsn),
    card("commit_watermark", "commit watermark (" + s.commit_policy + ")", s.commit_watermark),
    card("wal_retained_bytes", "WAL retained", s.wal_retained_bytes, bytes(s.wal_retained_bytes)),
    card("retention_floor_lsn", "retention floor", s.retention_floor_lsn ?? "-"),
  );
  for (const r of s.replicas) {
    const h = lagHistory.get(r.id) || [];
    h.push(r.lag_lsn);
    while (h.length > HISTORY_TICKS) h.shift();
    lagHistory.set(r.id, h);
  }
  table("replicas", ["replica", "region", "healthy", "lag (records)", "lag", "lag chart",
    "acked", "durable"], s.replicas.map((r) => el("tr", { "data-replica": r.id }, [
    el("td", {}, [r.id]), el("td", {}, [r.region ?? "-"]),
    el("td", { "data-field": "healthy", "data-value": r.healthy, class: r.healthy ? "yes" : "no" },
      [r.healthy ? "yes" : "no" + (r.rebootstrapping ? " (re-bootstrapping)" : "")]),
    num("lag_lsn", r.lag_lsn), num("lag_ms", r.lag_ms, r.lag_ms + " ms"),
    el("td", {}, [spark(lagHistory.get(r.id) || [])]),
    num("last_acked_lsn", r.last_acked_lsn), num("last_durable_lsn", r.last_durable_lsn),
  ])));
  table("slots", ["slot", "restart LSN", "retained", "growth", "invalidated in", "state"],
    s.slots.map((x) => el("tr", { "data-slot": x.replica_id }, [
      el("td", {}, [x.replica_id]), num("restart_lsn", x.restart_lsn),
      num("retained_bytes", x.retained_bytes, bytes(x.retained_bytes)),
      num("growth_bytes_per_s", x.growth_bytes_per_s,
        x.growth_bytes_per_s === null ? "-" : bytes(x.growth_bytes_per_s) + "/s"),
      el("td", { "data-field": "eta_invalidation_s", "data-value": x.eta_invalidation_s ?? "null",
        class: x.eta_invalidation_s !== null && x.eta_invalidation_s < 600 ? "soon" : "" },
        [duration(x.eta_invalidation_s)]),
      el("td", {}, [x.invalidation_reason ? "invalidated (" + x.invalidation_reason + ")" : "live"]),
    ])));
  const c = s.commit_waits || {};
  $("commits").replaceChildren(card("commit_reached", "reached", c.reached ?? 0),
    card("commit_timed_out", "timed out", c.timed_out ?? 0),
    card("commit_not_required", "not required", c.not_required ?? 0));
}

function renderReplica(s) {
  $("title").textContent = "ferry replica " + s.replica_id;
  $("summary").replaceChildren(
    card("state", "state", s.state),
    card("applied_lsn", "applied LSN", s.applied_lsn),
    card("primary_current_lsn", "primary LSN", s.primary_current_lsn),
    card("lag_lsn", "behind (records)", Math.max(0, s.primary_current_lsn - s.applied_lsn)),
    card("rebootstraps_total", "re-bootstraps", s.rebootstraps_total),
    card("apply_errors_total", "apply errors", s.apply_errors_total),
  );
  const r = s.rebootstrap;
  const parts = [];
  if (r) {
    const share = r.entries_total ? Math.min(1, r.entries_loaded / Math.max(1, r.entries_total)) : 0;
    parts.push(el("div", { "data-field": "rebootstrap", "data-value": r.entries_loaded }, [
      "loaded " + r.entries_loaded + (r.entries_total !== undefined ? " of " + r.entries_total : "") +
        " entries, " + bytes(r.bytes_loaded) + (r.eta_s !== undefined ? ", about " + duration(r.eta_s) + " to go" : ""),
    ]), el("div", { class: "progress" }, [el("div", { style: "width:" + (share * 100).toFixed(1) + "%" })]));
  } else parts.push(el("p", {}, ["not re-bootstrapping"]));
  $("replica-detail").replaceChildren(...parts);
}

function render(status, writesPerS) {
  const isReplica = status.role === "replica";
  for (const node of document.querySelectorAll("[data-role]")) {
    node.hidden = node.dataset.role !== (isReplica ? "replica" : "primary");
  }
  if (isReplica) renderReplica(status); else renderPrimary(status, writesPerS);
  $("status-line").textContent = "updated " + new Date().toLocaleTimeString();
}

function addEvent(event) {
  const list = $("events");
  const what = [event.replica_id, event.reason, event.to].filter((x) => x !== undefined).join(" ");
  list.prepend(el("li", { "data-event": event.type },
    [new Date(event.ts_unix_ms).toLocaleTimeString() + "  " + event.type + "  " + what]));
  while (list.children.length > EVENTS_SHOWN) list.lastChild.remove();
}

function handle(block) {
  const data = block.split("\\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6));
  if (!data.length) return;
  const event = JSON.parse(data.join("\\n"));
  if (event.type === "tick") render(event.status, event.writes_per_s);
  else addEvent(event);
}

async function follow() {
  for (;;) {
    try {
      const response = await fetch("/v1/events", { headers });
      if (!response.ok) throw new Error("events: HTTP " + response.status);
      $("error").textContent = "";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let pending = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        pending += value;
        let end;
        while ((end = pending.indexOf("\\n\\n")) >= 0) {
          handle(pending.slice(0, end));
          pending = pending.slice(end + 2);
        }
      }
    } catch (error) {
      $("error").textContent = String(error.message || error);
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

fetch("/v1/status", { headers }).then(async (response) => {
  if (!response.ok) throw new Error("status: HTTP " + response.status + " (add ?token=...)");
  render(await response.json());
}).catch((error) => { $("error").textContent = String(error.message || error); });
follow();
`;
