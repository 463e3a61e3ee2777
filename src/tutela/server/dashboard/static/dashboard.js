// Tutela coordinator dashboard. No library, nothing from the network but this origin.
// Data is written with textContent only (never parsed as HTML).
"use strict";

const KEY = "tutela.dashboard.token";
const SVGNS = "http://www.w3.org/2000/svg";
const COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#8A6100", "#56B4E9"];
let current = "studies";
let allowed = {};
let streamAbort = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function fmt(v) {
  return typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : String(v ?? "");
}

function table(caption, head, rows) {
  const t = el("table", {}, el("caption", {}, caption));
  const tr = el("tr");
  for (const h of head) tr.append(el("th", { scope: "col" }, h));
  t.append(el("thead", {}, tr));
  const body = el("tbody");
  for (const row of rows) {
    const r = el("tr");
    row.forEach((cell, i) => r.append(i === 0 ? el("th", { scope: "row" }, cell) : el("td", {}, cell)));
    body.append(r);
  }
  t.append(body);
  return el("div", { class: "scroll", role: "region", "aria-label": caption, tabindex: "0" }, t);
}

function chart(title, series, xLabel, budget) {
  // series: [{name, points: [[x, y], ...]}]; an optional budget line
  const W = 640, H = 240, L = 56, R = 150, T = 12, B = 40;
  const pts = series.flatMap((s) => s.points);
  if (!pts.length) return el("p", { class: "note" }, "No data yet for " + title + ".");
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]).concat(budget == null ? [] : [budget]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs) === x0 ? x0 + 1 : Math.max(...xs);
  const y0 = Math.min(0, ...ys), y1 = Math.max(...ys) === y0 ? y0 + 1 : Math.max(...ys);
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => T + (H - T - B) - ((y - y0) / (y1 - y0)) * (H - T - B);
  const svg = document.createElementNS(SVGNS, "svg");
  const id = "c" + Math.random().toString(36).slice(2);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("class", "chart");
  svg.setAttribute("width", "100%");
  svg.setAttribute("style", `max-width:${W}px`);
  svg.setAttribute("aria-labelledby", id);
  const t = document.createElementNS(SVGNS, "title");
  t.setAttribute("id", id);
  t.textContent = title + ": " + series.map((s) => s.name + " " + s.points.map((p) => fmt(p[1])).join(", ")).join("; ");
  svg.append(t);
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text != null) n.textContent = text;
    svg.append(n);
    return n;
  };
  for (let i = 0; i <= 4; i++) {
    const v = y0 + ((y1 - y0) * i) / 4;
    add("line", { x1: L, x2: W - R, y1: sy(v), y2: sy(v), stroke: "#d0d0d0" });
    add("text", { x: L - 6, y: sy(v) + 4, "text-anchor": "end" }, fmt(v));
  }
  add("text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle" }, xLabel);
  series.forEach((s, i) => {
    const c = COLOURS[i % COLOURS.length];
    add("polyline", { points: s.points.map((p) => `${sx(p[0])},${sy(p[1])}`).join(" "),
      fill: "none", stroke: c, "stroke-width": 2.5, "stroke-dasharray": i % 2 ? "6 3" : "" });
    for (const p of s.points) add("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 3.5, fill: c });
    add("text", { x: W - R + 10, y: T + 12 + i * 16, fill: c }, s.name);
  });
  if (budget != null) {
    add("line", { x1: L, x2: W - R, y1: sy(budget), y2: sy(budget), stroke: "#1a1a1a", "stroke-dasharray": "4 4" });
    add("text", { x: W - R + 10, y: T + 12 + series.length * 16 }, "budget " + fmt(budget));
  }
  return svg;
}

async function api(path) {
  const token = sessionStorage.getItem(KEY);
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  return { status: r.status, body };
}

function refused(box, r) {
  box.replaceChildren(el("p", { class: "error", role: "alert" },
    r.status === 403 ? "Your role may not open this view (403)." : "Error " + r.status + ": " + fmt(r.body && r.body.detail)));
}

async function showStudies() {
  const box = document.getElementById("studies-body");
  const r = await api("/v1/dashboard/studies");
  if (r.status !== 200) return refused(box, r);
  const out = [];
  if (!r.body.length) out.push(el("p", { class: "note" }, "No study yet."));
  for (const s of r.body) {
    out.push(el("h3", {}, s.name + " (" + s.id + ")"));
    out.push(el("p", {}, "State: ", el("strong", { id: "state-" + s.id }, s.status), " · rounds closed: ",
      el("strong", { id: "round-" + s.id, class: "round-counter" }, String(s.completed_rounds)), " of " + s.total_rounds,
      s.error ? " · error: " + s.error : ""));
    out.push(table("Participation in " + s.name, ["site", "answer", "reason", "examples"],
      Object.entries(s.participation).map(([site, p]) => [site, p.status, p.reason || "", fmt(p.num_examples)])));
    const keys = [...new Set(s.rounds.flatMap((x) => Object.keys(x.metrics)))].filter((k) => /loss|auc|accuracy/.test(k));
    if (keys.length) out.push(chart("Metrics per round of " + s.name,
      keys.map((k) => ({ name: k, points: s.rounds.filter((x) => k in x.metrics).map((x) => [x.round, x.metrics[k]]) })), "round"));
    out.push(table("Rounds of " + s.name, ["round", "status", "stage", "participants", "dropped per stage", "metrics"],
      s.rounds.map((x) => [x.round, x.status, x.stage, x.participants, JSON.stringify(x.dropped),
        Object.entries(x.metrics).map(([k, v]) => k + " " + fmt(v)).join(", ")])));
  }
  box.replaceChildren(...out);
}

async function showSites() {
  const box = document.getElementById("sites-body");
  const r = await api("/v1/dashboard/sites");
  if (r.status !== 200) return refused(box, r);
  box.replaceChildren(table("Sites", ["site", "status", "enrolled at", "studies (answer, reason)"],
    r.body.map((s) => [s.name, s.status, fmt(s.enrolled_at),
      s.studies.map((a) => a.study + ": " + a.status + (a.reason ? " (" + a.reason + ")" : "")).join("; ")])));
}

async function showPrivacy() {
  const box = document.getElementById("privacy-body");
  const list = await api("/v1/dashboard/studies");
  if (list.status !== 200) return refused(box, list);
  const out = [];
  for (const s of list.body) {
    const r = await api("/v1/dashboard/studies/" + encodeURIComponent(s.id) + "/privacy");
    if (r.status !== 200) { refused(box, r); return; }
    out.push(el("h3", {}, s.name));
    out.push(el("p", {}, "Differential privacy: " + JSON.stringify(r.body.privacy) + " · secure aggregation: " + JSON.stringify(r.body.secure_aggregation)));
    const budget = r.body.sites.map((x) => x.budget).find((b) => b != null);
    out.push(chart("Epsilon spent per site of " + s.name,
      r.body.sites.map((x) => ({ name: x.site, points: x.spends.map((p, i) => [i + 1, p.epsilon]) })), "charge", budget));
    out.push(table("Site ledgers of " + s.name, ["site", "epsilon spent", "budget", "signed report"],
      r.body.sites.map((x) => [x.site, fmt(x.spends.length ? x.spends[x.spends.length - 1].epsilon : 0), fmt(x.budget),
        x.verified ? "verified" : "NOT verified: " + x.problem])));
  }
  box.replaceChildren(...out);
}

async function showAudit() {
  const box = document.getElementById("audit-body");
  const q = document.getElementById("audit-q").value;
  const r = await api("/v1/dashboard/audit?q=" + encodeURIComponent(q));
  if (r.status !== 200) return refused(box, r);
  const cp = r.body.checkpoint;
  box.replaceChildren(
    el("p", {}, cp ? "Latest witnessed checkpoint: " + cp.size + " records, root " + cp.root + ", cosigned by " + (cp.cosigned_by.join(", ") || "nobody")
      : "No witnessed checkpoint yet.", " · cosigned checkpoints: " + r.body.cosigned_checkpoints),
    el("p", { id: "audit-count", "aria-live": "polite" }, r.body.matches + " matching records"),
    table("Audit records", ["id", "time", "actor", "action", "resource", "outcome", "detail"],
      r.body.events.map((e) => [e.id, fmt(e.ts ?? e.timestamp), e.actor, e.action, e.resource, e.outcome, JSON.stringify(e.detail ?? e.details ?? {})])),
    await proofsTable());
}

// Inclusion proofs (RFC 9162): each record's leaf hashes into the signed root, checked here.
const hex = (bytes) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
const unhex = (text) => new Uint8Array(text.match(/../g).map((h) => parseInt(h, 16)));

async function sha256(prefix, ...parts) {
  const chunks = [new Uint8Array([prefix]), ...parts];
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) { all.set(c, at); at += c.length; }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", all));
}

async function proofHolds(record, checkpoint) {
  // the leaf must say what the record says, then hash into the checkpoint's root
  let fields;
  try { fields = JSON.parse(record.leaf); } catch (e) { return false; }
  const [, index, ts, actor, action, resource, outcome, details] = fields;
  let shown;
  try { shown = JSON.parse(details); } catch (e) { return false; }
  if (index !== record.index || ts !== record.timestamp || actor !== record.actor || action !== record.action
    || resource !== record.resource || outcome !== record.outcome
    || JSON.stringify(shown) !== JSON.stringify(record.details)) return false;
  let r = await sha256(0, new TextEncoder().encode(record.leaf));
  let fn = record.index, sn = checkpoint.size - 1;
  if (fn > sn) return false;
  for (const step of record.proof) {
    const p = unhex(step);
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(1, p, r);
      if (fn % 2 === 0) while (fn !== 0 && fn % 2 === 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = await sha256(1, r, p);
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  return sn === 0 && hex(r) === checkpoint.root;
}

async function proofsTable() {
  const r = await api("/v1/admin/audit/proofs?limit=100");
  if (r.status !== 200) return el("p", { class: "error" }, "Inclusion proofs unavailable (" + r.status + ").");
  const cp = r.body.checkpoint;
  if (!cp) return el("p", { class: "note", id: "proof-summary" }, "No checkpoint yet: no record can be proven.");
  const counts = { verified: 0, failed: 0, pending: 0 };
  const rows = [];
  for (const rec of r.body.records) {
    let verdict;
    if (!rec.proof) { verdict = "pending"; counts.pending++; }
    else if (await proofHolds(rec, cp)) { verdict = "verified"; counts.verified++; }
    else { verdict = "FAILED"; counts.failed++; }
    const mark = el("span", { class: verdict === "FAILED" ? "bad" : verdict === "verified" ? "ok" : "note",
      "data-proof": verdict.toLowerCase(), "data-index": String(rec.index) },
      verdict === "FAILED" ? "proof FAILS: record altered" : verdict === "pending" ? "after the checkpoint" : "verified");
    rows.push([rec.index, rec.timestamp, rec.actor, rec.action, rec.resource ?? "", rec.outcome, mark]);
  }
  return el("div", {},
    el("p", { id: "proof-summary", class: counts.failed ? "bad" : "ok", role: counts.failed ? "alert" : "status" },
      "Inclusion proofs against the " + (cp.cosigned ? "cosigned" : "signed") + " checkpoint of " + cp.size + " records (root " + cp.root.slice(0, 16) + "…), checked in this page: "
      + counts.verified + " verified, " + counts.failed + " failed, " + counts.pending + " after the checkpoint."),
    table("Tamper-evident log: newest records and their inclusion proofs", ["index", "time", "actor", "action", "resource", "outcome", "proof"], rows));
}

async function showCompliance() {
  const box = document.getElementById("compliance-body");
  const list = await api("/v1/dashboard/studies");
  if (list.status !== 200) return refused(box, list);
  const out = [];
  if (!list.body.length) out.push(el("p", { class: "note" }, "No study yet."));
  for (const s of list.body) {
    out.push(el("h3", {}, s.name + " (" + s.id + ")"));
    const r = await api("/v1/dashboard/studies/" + encodeURIComponent(s.id) + "/compliance");
    if (r.status !== 200) { refused(box, r); return; }
    if (!r.body.frameworks) { out.push(el("p", { class: "note" }, r.body.note)); continue; }
    out.push(el("p", { class: "note" }, r.body.note));
    for (const [fw, result] of Object.entries(r.body.frameworks)) {
      out.push(el("p", { id: "compliance-" + s.id + "-" + fw }, fw.toUpperCase() + ": ",
        el("strong", { class: result.passed ? "ok" : "bad" }, result.passed ? "every check passed or does not apply" : "some checks failed")));
      out.push(table(fw.toUpperCase() + " checks of " + s.name, ["check", "status", "reason", "provisions"],
        result.checks.map((c) => [c.title + " (" + c.id + ")",
          el("span", { class: c.status === "fail" ? "bad" : c.status === "pass" ? "ok" : "note" }, c.status),
          c.reason, c.references.join("; ")])));
    }
  }
  box.replaceChildren(...out);
}

const SHOW = { studies: showStudies, sites: showSites, privacy: showPrivacy, audit: showAudit, compliance: showCompliance };

function select(view) {
  current = view;
  for (const b of document.querySelectorAll("nav button[data-view]")) b.setAttribute("aria-pressed", String(b.dataset.view === view));
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== "view-" + view;
  return SHOW[view]();
}

async function live() {
  if (streamAbort) streamAbort.abort();
  const ctrl = new AbortController();
  streamAbort = ctrl;
  const status = document.getElementById("live");
  try {
    const r = await fetch("/v1/dashboard/events", { headers: { Authorization: "Bearer " + sessionStorage.getItem(KEY) }, signal: ctrl.signal });
    if (r.status !== 200) { status.textContent = "not permitted (" + r.status + ")"; return; }
    status.textContent = "connected";
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "", retry = 2000;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        let kind = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) kind = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
          else if (line.startsWith("retry: ")) retry = Number(line.slice(7));
        }
        if (kind === "snapshot" && current === "studies") showStudies(); // catch up after a reconnect
        if (kind === "round" || kind === "study") {
          const ev = JSON.parse(data);
          const counter = document.getElementById((kind === "round" ? "round-" : "state-") + ev.study);
          if (counter) counter.textContent = kind === "round" ? String(ev.round) : ev.status;
          status.textContent = kind === "round" ? "round " + ev.round + " of " + ev.study + " closed" : ev.study + " " + ev.status;
          if (current === "studies") showStudies();
        }
      }
    }
    status.textContent = "waiting for a live study";
    setTimeout(() => { if (streamAbort === ctrl) live(); }, retry);
  } catch (e) {
    if (!ctrl.signal.aborted) { status.textContent = "disconnected; retrying"; setTimeout(live, 2000); }
  }
}

async function signIn(token) {
  sessionStorage.setItem(KEY, token);
  const r = await api("/v1/dashboard/me");
  if (r.status !== 200) {
    sessionStorage.removeItem(KEY);
    document.getElementById("signin-error").textContent = r.status === 401 ? "Unknown or expired token." : "Sign-in refused (" + r.status + ").";
    return;
  }
  allowed = r.body.views;
  document.getElementById("who").textContent = "Signed in as " + r.body.name + " (" + r.body.role + ")";
  document.getElementById("signin").hidden = true;
  document.getElementById("tabs").hidden = false;
  for (const b of document.querySelectorAll("nav button[data-view]")) {
    b.disabled = !allowed[b.dataset.view];
    b.title = b.disabled ? "Your role may not open this view" : "";
  }
  await select(Object.keys(allowed).find((v) => allowed[v]) || "studies");
  if (allowed.studies) live();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn(document.getElementById("token").value.trim());
  });
  document.getElementById("audit-form").addEventListener("submit", (e) => { e.preventDefault(); showAudit(); });
  for (const b of document.querySelectorAll("nav button[data-view]")) b.addEventListener("click", () => select(b.dataset.view));
  document.getElementById("signout").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    if (streamAbort) streamAbort.abort();
    location.reload();
  });
  const saved = sessionStorage.getItem(KEY);
  if (saved) signIn(saved);
});
