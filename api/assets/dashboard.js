// Ackbox dashboard: plain JS, no build step. Reads /dashboard/api/summary with an admin key every 5 s.
"use strict";

const REFRESH_MS = 5000;
const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];
const $ = (id) => document.getElementById(id);

// A job to open at once (#job=<id>, alone or with the key), read before takeKey clears the fragment.
const linkedJob = (location.hash.match(/job=([^&]+)/) || [])[1];
// A filtered job list to open at once (#status=failed&kind=...&queue=...&tenant=...): a link an operator can share.
const linkedFilter = Object.fromEntries(["status", "kind", "queue", "tenant"]
  .map((k) => [k, (location.hash.match(new RegExp("[#&]" + k + "=([^&]+)")) || [])[1]]).filter(([, v]) => v));

// The key comes from the URL fragment (#key=..., never sent to a server) or the login box, and lives in this tab.
function takeKey() {
  const m = location.hash.match(/key=([^&]+)/);
  if (m) {
    sessionStorage.setItem("ackbox-key", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname); // keep the key out of the address bar and history
  }
  return sessionStorage.getItem("ackbox-key");
}

async function api(path, method, payload) {
  const headers = { Authorization: "Bearer " + sessionStorage.getItem("ackbox-key") };
  if (payload !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method: method || "GET", headers,
                                  body: payload === undefined ? undefined : JSON.stringify(payload) });
  if (res.status === 401 || res.status === 403) {
    sessionStorage.removeItem("ackbox-key");
    showLogin(res.status === 403 ? "That key is not an admin key." : "That key is unknown or revoked.");
    throw new Error("not authorised");
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.detail || res.statusText);
  return body;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c === null || c === undefined ? "" : c);
  return e;
}

function age(secs) {
  if (secs < 1) return Math.round(secs * 1000) + " ms";
  if (secs < 60) return secs.toFixed(1) + " s";
  if (secs < 3600) return Math.floor(secs / 60) + " min " + Math.floor(secs % 60) + " s";
  return Math.floor(secs / 3600) + " h " + Math.floor((secs % 3600) / 60) + " min";
}

function time(t) {
  return t ? new Date(t).toISOString().replace("T", " ").slice(0, 19) : "";
}

function renderCounts(rows) {
  const kinds = [...new Set(rows.map((r) => r.kind))].sort();
  const get = (kind, status) => (rows.find((r) => r.kind === kind && r.status === status) || { count: 0 }).count;
  const table = $("counts");
  table.replaceChildren(el("tr", {}, el("th", {}, "kind"), ...STATUSES.map((s) => el("th", { class: "num" }, s))));
  for (const kind of kinds) {
    table.append(el("tr", { "data-kind": kind }, el("td", { class: "mono" }, kind),
      ...STATUSES.map((s) => el("td", { class: "num" + (s === "failed" && get(kind, s) ? " failed" : ""),
                                        "data-kind": kind, "data-status": s }, String(get(kind, s))))));
  }
  const total = (s) => rows.filter((r) => r.status === s).reduce((n, r) => n + r.count, 0);
  table.append(el("tr", { class: "total" }, el("td", {}, "all kinds"),
    ...STATUSES.map((s) => el("td", { class: "num", "data-total-status": s }, String(total(s))))));
}

function renderLag(rows) {
  const table = $("lag");
  table.replaceChildren(el("tr", {}, el("th", {}, "group"), el("th", { class: "num" }, "partition"),
                                     el("th", { class: "num" }, "lag"), el("th", {}, "reported")));
  for (const r of rows) {
    table.append(el("tr", {}, el("td", { class: "mono" }, r.group_id), el("td", { class: "num" }, String(r.partition)),
      el("td", { class: "num", "data-lag-partition": String(r.partition) }, String(r.lag)), el("td", {}, time(r.reported_at))));
  }
  if (!rows.length) table.append(el("tr", {}, el("td", { colspan: "4" }, "no worker has reported in the last 2 minutes")));
  $("lag-total").textContent = String(rows.reduce((n, r) => n + r.lag, 0));
}

function renderFailures(rows) {
  const table = $("failures");
  table.replaceChildren(el("tr", {}, ...["job", "kind", "tenant", "attempts", "code", "message", "finished"].map((h) => el("th", {}, h))));
  for (const f of rows) {
    const link = el("a", { href: "#", class: "mono" }, f.id);
    link.addEventListener("click", (e) => { e.preventDefault(); lookup(f.id); });
    table.append(el("tr", { "data-job-id": f.id }, el("td", {}, link), el("td", { class: "mono" }, f.kind),
      el("td", {}, f.tenant || "–"), el("td", { class: "num" }, String(f.attempts)),
      el("td", { class: "mono failed" }, f.code || ""), el("td", {}, f.message || ""), el("td", {}, time(f.finished_at))));
  }
  if (!rows.length) table.append(el("tr", {}, el("td", { colspan: "7" }, "no failed jobs")));
}

// Two series on one SVG: backlog (rows, left axis) and oldest undelivered age (seconds, right axis).
function renderChart(samples) {
  const box = $("chart");
  if (samples.length < 2) {
    box.replaceChildren(el("div", { class: "empty" }, "collecting samples (the relay records one per stats interval)…"));
    return;
  }
  const W = 1000, H = 200, P = 34;
  const t0 = Date.parse(samples[0].at), t1 = Date.parse(samples[samples.length - 1].at) || t0 + 1;
  const maxB = Math.max(1, ...samples.map((s) => s.unpublished));
  const maxA = Math.max(1, ...samples.map((s) => s.oldest_age_secs));
  const x = (t) => P + ((Date.parse(t) - t0) / Math.max(1, t1 - t0)) * (W - 2 * P);
  const line = (f, max) => samples.map((s, i) => (i ? "L" : "M") + x(s.at).toFixed(1) + "," + (H - P - (f(s) / max) * (H - 2 * P)).toFixed(1)).join(" ");
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
  };
  add("line", { x1: P, y1: H - P, x2: W - P, y2: H - P, stroke: "#e5e7eb" });
  add("path", { d: line((s) => s.unpublished, maxB), fill: "none", stroke: "#2563eb", "stroke-width": 2 });
  add("path", { d: line((s) => s.oldest_age_secs, maxA), fill: "none", stroke: "#b45309", "stroke-width": 1.5, "stroke-dasharray": "5 3" });
  add("text", { x: 4, y: 14, fill: "#2563eb", "font-size": 12 }, `backlog (max ${maxB})`);
  add("text", { x: W - 4, y: 14, fill: "#b45309", "font-size": 12, "text-anchor": "end" }, `oldest age (max ${age(maxA)})`);
  add("text", { x: P, y: H - 8, fill: "#6b7280", "font-size": 11 }, time(samples[0].at));
  add("text", { x: W - P, y: H - 8, fill: "#6b7280", "font-size": 11, "text-anchor": "end" }, time(samples[samples.length - 1].at));
  box.replaceChildren(svg);
}

async function refresh() {
  try {
    const s = await api("/dashboard/api/summary");
    $("backlog").textContent = String(s.outbox.unpublished);
    $("oldest").textContent = age(s.outbox.oldest_unpublished_age_secs);
    $("oldest").classList.toggle("warn", s.outbox.oldest_unpublished_age_secs > 60);
    $("rate").textContent = String(s.outbox.published_last_minute);
    $("failing").textContent = String(s.outbox.failing);
    renderCounts(s.jobs);
    renderLag(s.consumer_lag);
    renderFailures(s.recent_failures);
    renderChart(s.backlog_history);
    $("status").textContent = "updated " + time(s.generated_at) + " UTC";
    $("status").classList.remove("error");
    document.body.setAttribute("data-generated-at", s.generated_at);
  } catch (e) {
    if (e.message !== "not authorised") {
      $("status").textContent = "refresh failed: " + e.message;
      $("status").classList.add("error");
    }
  }
}

// One row per finished attempt (the job's history): when it started and ended, how, and with which error.
function renderAttempts(history) {
  const table = $("job-attempts");
  table.replaceChildren(el("tr", {}, ...["attempt", "started", "finished", "outcome", "error"].map((h) => el("th", {}, h))));
  for (const a of history || []) {
    const error = a.error ? a.error.code + ": " + a.error.message : "";
    table.append(el("tr", { "data-attempt": String(a.attempt) }, el("td", { class: "num" }, String(a.attempt)),
      el("td", {}, time(a.started_at)), el("td", {}, time(a.finished_at)),
      el("td", { class: "mono" + (a.outcome === "succeeded" ? "" : " failed"), "data-outcome": a.outcome }, a.outcome),
      el("td", {}, error)));
  }
  if (!(history || []).length) table.append(el("tr", {}, el("td", { colspan: "5" }, "no finished attempt yet")));
}

async function lookup(id) {
  id = id.trim();
  if (!id) return;
  $("job-view").hidden = false;
  $("job-title").textContent = id;
  try {
    const j = await api("/dashboard/api/jobs/" + encodeURIComponent(id));
    renderAttempts(j.job.history);
    $("job-json").textContent = JSON.stringify(j, null, 2);
  } catch (e) {
    renderAttempts([]);
    $("job-json").textContent = e.message === "Not found" || /not found/i.test(e.message) ? "no such job" : e.message;
  }
}

// The job list (GET /v1/admin/jobs): the filter form's values, a page at a time; retry and cancel per row, and a
// retry of every failed job the filter matches (POST /v1/admin/jobs/retry, as `ackbox jobs retry` does).
const jobsPage = { cursor: null };

function filterValues() {
  const iso = (v) => (v ? new Date(v).toISOString() : "");
  return { status: $("f-status").value, kind: $("f-kind").value.trim(), queue: $("f-queue").value.trim(),
           tenant: $("f-tenant").value.trim(), since: iso($("f-since").value), until: iso($("f-until").value) };
}

async function loadJobs(cursor) {
  const f = filterValues();
  const q = new URLSearchParams({ limit: "50" });
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  if (cursor) q.set("cursor", cursor);
  try {
    const page = await api("/v1/admin/jobs?" + q);
    renderJobs(page.items);
    jobsPage.cursor = page.next_cursor;
    $("jobs-next").hidden = !page.next_cursor;
    $("jobs-first").hidden = !cursor;
    document.body.setAttribute("data-jobs-loaded", String(page.items.length));
  } catch (e) {
    if (e.message !== "not authorised") note("listing failed: " + e.message, true);
  }
}

function note(text, bad) {
  $("jobs-note").textContent = text;
  $("jobs-note").classList.toggle("error", !!bad);
}

function renderJobs(rows) {
  const table = $("jobs-list");
  table.replaceChildren(el("tr", {}, ...["job", "tenant", "kind", "queue", "status", "attempts", "created", "finished", ""].map((h) => el("th", {}, h))));
  for (const j of rows) {
    const link = el("a", { href: "#", class: "mono" }, j.id);
    link.addEventListener("click", (e) => { e.preventDefault(); lookup(j.id); });
    const actions = el("td", { class: "actions" });
    if (j.status === "failed") actions.append(action("Retry", "retry", j.id));
    if (j.status === "queued" || (j.status === "running" && !j.cancel_requested)) actions.append(action("Cancel", "cancel", j.id));
    table.append(el("tr", { "data-list-job": j.id, "data-list-status": j.status }, el("td", {}, link),
      el("td", {}, j.tenant || "–"), el("td", { class: "mono" }, j.kind), el("td", { class: "mono" }, j.queue),
      el("td", { class: "mono" + (j.status === "failed" ? " failed" : "") }, j.status + (j.cancel_requested ? " (cancel requested)" : "")),
      el("td", { class: "num" }, j.attempts + "/" + j.max_attempts), el("td", {}, time(j.created_at)),
      el("td", {}, time(j.finished_at)), actions));
  }
  if (!rows.length) table.append(el("tr", {}, el("td", { colspan: "9" }, "no job matches")));
}

function action(label, verb, id) {
  const b = el("button", { type: "button", "data-action": verb, "data-job": id }, label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      const j = await api("/v1/admin/jobs/" + encodeURIComponent(id) + "/" + verb, "POST");
      note(verb === "retry" ? `job ${id} is queued again` : `job ${id}: ${j.status}${j.cancel_requested ? " (cancel requested)" : ""}`);
    } catch (e) {
      if (e.message !== "not authorised") note(`${verb} of ${id} failed: ${e.message}`, true);
    }
    loadJobs(null);
  });
  return b;
}

async function retryMatching() {
  const f = filterValues();
  const body = {};
  for (const k of ["kind", "queue", "tenant", "since"]) if (f[k]) body[k] = f[k];
  const narrowed = Object.keys(body).length > 0;
  if (!narrowed && !confirm("Nothing narrows the filter: retry EVERY failed job?")) return;
  if (!narrowed) body.all = true;
  let total = 0;
  try {
    // Each request retries up to 10,000 in bounded transactions and says whether more match.
    for (;;) {
      const r = await api("/v1/admin/jobs/retry", "POST", body);
      total += r.retried;
      note(`${total} failed jobs queued again…`);
      if (!r.more) break;
    }
    note(`${total} failed jobs queued again`);
    document.body.setAttribute("data-retried", String(total));
  } catch (e) {
    if (e.message !== "not authorised") note(`retry failed after ${total}: ${e.message}`, true);
  }
  loadJobs(null);
}

function showLogin(message) {
  $("board").hidden = true;
  $("login").hidden = false;
  if (message) $("status").textContent = message;
}

let timer = null;
function start() {
  $("login").hidden = true;
  $("board").hidden = false;
  for (const [k, v] of Object.entries(linkedFilter)) $("f-" + k).value = decodeURIComponent(v);
  refresh();
  loadJobs(null);
  if (!timer) timer = setInterval(refresh, REFRESH_MS);
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("ackbox-key", $("login-key").value.trim());
  start();
});
$("lookup").addEventListener("submit", (e) => { e.preventDefault(); lookup($("lookup-id").value); });
$("jobs-filter").addEventListener("submit", (e) => { e.preventDefault(); loadJobs(null); });
$("jobs-next").addEventListener("click", () => loadJobs(jobsPage.cursor));
$("jobs-first").addEventListener("click", () => loadJobs(null));
$("retry-matching").addEventListener("click", retryMatching);

if (takeKey()) {
  start();
  if (linkedJob) lookup(decodeURIComponent(linkedJob));
} else showLogin("");
