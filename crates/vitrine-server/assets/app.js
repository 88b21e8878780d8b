// vitrine's page: search, sweep, watchlists and partitions over the JSON API.
// Every value that comes from data is put in the page with textContent or setAttribute, never
// parsed as markup. Every search is a link: its parameters live in the URL.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, text) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
};

const state = { collection: "", watch: "", info: null, image: null, sweepHits: [], sweepReceipt: null, sweepPrompts: [], retain: null };

// ---- the API -----------------------------------------------------------------------------

async function api(path, options = {}) {
  const resp = await fetch(path, { credentials: "same-origin", ...options });
  if (resp.status === 401) {
    await login();
    return api(path, options);
  }
  return resp;
}

async function json(path, body) {
  const resp = await api(path, body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const e = data.error || {};
    throw new Error((e.field ? e.field + ": " : "") + (e.message || resp.statusText));
  }
  return data;
}

function login() {
  return new Promise((resolve) => {
    const dialog = $("login");
    $("login-error").textContent = "";
    $("login-form").onsubmit = async (ev) => {
      ev.preventDefault();
      const resp = await fetch("/api/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: $("token").value }),
      });
      if (resp.ok) {
        $("token").value = "";
        dialog.close();
        resolve();
      } else {
        $("login-error").textContent = "That is not the token.";
      }
    };
    if (!dialog.open) dialog.showModal();
  });
}

// ---- collections and sources ------------------------------------------------------------

async function loadCollections(wanted) {
  const list = await json("/api/collections");
  const select = $("collection");
  select.replaceChildren(...list.map((c) => el("option", { value: c.name }, `${c.name} (${c.rows.toLocaleString()} rows)`)));
  const names = list.map((c) => c.name);
  state.collection = names.includes(wanted) ? wanted : names.includes("demo") ? "demo" : names[0] || "";
  select.value = state.collection;
  await loadInfo();
}

async function loadInfo() {
  if (!state.collection) return;
  state.info = await json(`/api/collections/${encodeURIComponent(state.collection)}`);
  for (const [box, name] of [["sources", "source"], ["sweep-sources", "sweep-source"]]) {
    const fs = $(box);
    fs.replaceChildren(el("legend", {}, "Sources"));
    for (const s of state.info.sources) {
      const id = `${name}-${s}`;
      const input = el("input", { type: "checkbox", name, value: s, id });
      const label = el("label", { for: id, class: "check" });
      label.append(input, document.createTextNode(" " + s));
      fs.append(label);
    }
  }
  const rs = $("retain-source");
  rs.replaceChildren(el("option", { value: "" }, "all"), ...state.info.sources.map((s) => el("option", { value: s }, s)));
}

const checked = (name) => [...document.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);
const setChecked = (name, values) => {
  for (const i of document.querySelectorAll(`input[name="${name}"]`)) i.checked = values.includes(i.value);
};

// ---- views ------------------------------------------------------------------------------

function show(view) {
  for (const t of document.querySelectorAll(".tab")) t.setAttribute("aria-pressed", String(t.dataset.view === view));
  for (const v of ["search", "sweep", "watchlists", "partitions"]) $(`view-${v}`).hidden = v !== view;
  if (view === "partitions") loadPartitions().catch((e) => ($("retain-preview").textContent = e.message));
  if (view === "watchlists") loadWatchlists().catch(fail("watch-status"));
}

// ---- search -----------------------------------------------------------------------------

function fileName(uri) {
  const parts = String(uri).split("/");
  return parts[parts.length - 1] || uri;
}

function card(hit, collection, onLike) {
  const fig = el("figure", { class: "hit", "data-id": hit.id, tabindex: "0" });
  const img = el("img", { src: hit.thumbnail, alt: fileName(hit.uri), loading: "lazy" });
  fig.append(img);
  const cap = el("figcaption");
  cap.append(el("b", {}, `#${hit.rank} · ${Number(hit.score).toFixed(4)}`));
  cap.append(el("span", { class: "meta" }, `${hit.source} · ${hit.day}`));
  cap.append(el("span", { class: "name", title: hit.uri }, fileName(hit.uri)));
  if (hit.prompt !== undefined) cap.append(el("span", { class: "meta" }, hit.prompt));
  const like = el("button", { type: "button", class: "like" }, "More like this");
  like.addEventListener("click", (ev) => {
    ev.stopPropagation();
    onLike(hit.id);
  });
  cap.append(like);
  fig.append(cap);
  const open = () => openDetail(collection, hit.id);
  fig.addEventListener("click", open);
  fig.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      open();
    }
  });
  return fig;
}

async function openDetail(collection, id) {
  const row = await json(`/api/collections/${encodeURIComponent(collection)}/rows/${encodeURIComponent(id)}`);
  const img = $("detail-img");
  img.src = row.image || row.thumbnail;
  img.alt = fileName(row.uri);
  img.onerror = () => {
    if (img.src !== new URL(row.thumbnail, location.href).href) img.src = row.thumbnail;
  };
  const table = $("detail-fields");
  const rows = [["id", row.id], ["source", row.source], ["day", row.day], ["uri", row.uri], ["timestamp", String(row.timestamp)]];
  for (const [k, v] of Object.entries(row.fields)) rows.push([k, v === null ? "" : String(v)]);
  table.replaceChildren(...rows.map(([k, v]) => {
    const tr = el("tr");
    tr.append(el("th", {}, k), el("td", {}, v));
    return tr;
  }));
  $("detail-like").onclick = () => {
    $("detail").close();
    likeSearch(id);
  };
  $("detail").showModal();
}

function searchParams() {
  const p = new URLSearchParams();
  p.set("collection", state.collection);
  const q = $("q").value.trim();
  if (q) p.set("q", q);
  for (const s of checked("source")) p.append("source", s);
  if ($("from").value) p.set("from", $("from").value);
  if ($("to").value) p.set("to", $("to").value);
  if ($("filter").value.trim()) p.set("filter", $("filter").value.trim());
  if ($("k").value && $("k").value !== "20") p.set("k", $("k").value);
  return p;
}

function likeSearch(id) {
  const p = searchParams();
  p.delete("q");
  p.set("like", id);
  history.pushState(null, "", "/?" + p.toString());
  $("q").value = "";
  runSearch(p).catch(fail("status"));
}

function fail(statusId) {
  return (e) => {
    $(statusId).textContent = e.message;
    $(statusId).classList.add("error");
  };
}

async function runSearch(p, image) {
  const body = { collection: state.collection, k: Number(p.get("k") || 20) };
  const sources = p.getAll("source");
  if (sources.length) body.sources = sources;
  for (const key of ["from", "to", "filter"]) if (p.get(key)) body[key] = p.get(key);
  let label;
  if (image) {
    body.image = image;
    label = "the picture";
  } else if (p.get("like")) {
    body.like = p.get("like");
    label = `pictures like ${p.get("like")}`;
  } else if (p.get("q")) {
    body.text = p.get("q");
    label = `“${p.get("q")}”`;
  } else {
    return;
  }
  const status = $("status");
  status.classList.remove("error");
  status.textContent = "Searching…";
  const t0 = performance.now();
  const r = await json("/api/search", body);
  const ms = Math.round(performance.now() - t0);
  const rc = r.receipt;
  status.textContent = `${r.hits.length} hits for ${label} · ${rc.rows_scanned.toLocaleString()} rows scanned in ${rc.partitions_scanned} of ${rc.partitions_total} partitions · ${ms} ms`;
  $("warnings").replaceChildren(...r.warnings.map((w) => el("li", {}, w)));
  $("grid").replaceChildren(...r.hits.map((h) => card(h, state.collection, likeSearch)));
  showReceipt("receipt", rc);
}

function showReceipt(id, rc) {
  const d = $(id);
  d.hidden = false;
  const lines = [
    `coverage: ${rc.coverage}`,
    `partitions scanned: ${rc.partitions_scanned} of ${rc.partitions_total} (${rc.segments_scanned} segments)`,
    `rows scanned: ${rc.rows_scanned}; excluded: ${rc.rows_deleted} deleted, ${rc.rows_filtered} by the filter`,
    `inputs that failed to index in this selection: ${rc.inputs_failed}; still pending: ${rc.inputs_pending}`,
  ];
  for (const f of rc.failed || []) lines.push(`  failed: ${f.uri} (${f.source || "?"} ${f.day || "?"}): ${f.reason || ""}`);
  for (const f of rc.pending || []) lines.push(`  pending: ${f.uri}`);
  if (rc.note) lines.push(`note: ${rc.note}`);
  d.querySelector("pre").textContent = lines.join("\n");
}

function readImage(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).split(",")[1]);
    r.onerror = () => reject(new Error("could not read the picture"));
    r.readAsDataURL(file);
  });
}

async function imageSearch(file) {
  if (!file || !file.type.startsWith("image/")) return;
  const preview = $("preview");
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  const b64 = await readImage(file);
  $("q").value = "";
  await runSearch(searchParams(), b64);
}

// ---- sweep ------------------------------------------------------------------------------

function sweepVisible() {
  const t = Number($("threshold").value);
  $("threshold-value").textContent = t.toFixed(3);
  const hits = state.sweepHits.filter((h) => h.score >= t);
  $("sweep-count").textContent = state.sweepPrompts.length ? `${hits.length.toLocaleString()} rows at or above ${t.toFixed(3)}` : "";
  $("export").disabled = hits.length === 0;
  const shown = hits.slice(0, 300);
  $("sweep-grid").replaceChildren(...shown.map((h, i) => card({ ...h, rank: i + 1 }, state.collection, (id) => {
    show("search");
    likeSearch(id);
  })));
  return hits;
}

// The sweep runs once at the slider's lowest value; moving the slider filters what came back,
// so the count updates as it moves. Hits stream in as JSON Lines.
const SWEEP_FLOOR = 0.15;
const SWEEP_CAP = 50000;

async function runSweep() {
  const prompts = $("prompts").value.split("\n").map((s) => s.trim()).filter(Boolean);
  if (!prompts.length) return;
  const body = { collection: state.collection, prompts, threshold: Math.min(SWEEP_FLOOR, Number($("threshold").value)) };
  const sources = checked("sweep-source");
  if (sources.length) body.sources = sources;
  if ($("sweep-from").value) body.from = $("sweep-from").value;
  if ($("sweep-to").value) body.to = $("sweep-to").value;
  $("threshold").min = String(body.threshold);
  const status = $("sweep-status");
  status.classList.remove("error");
  status.textContent = "Sweeping…";
  state.sweepHits = [];
  state.sweepPrompts = prompts;
  const resp = await api("/api/sweep", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (!resp.ok) {
    const data = await resp.json().catch(() => ({}));
    throw new Error((data.error && data.error.message) || resp.statusText);
  }
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let capped = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (!line) continue;
      const rec = JSON.parse(line);
      if (rec.receipt) {
        state.sweepReceipt = rec.receipt;
        showReceipt("sweep-receipt", rec.receipt);
      } else if (rec.error) {
        throw new Error(rec.error.message);
      } else if (state.sweepHits.length < SWEEP_CAP) {
        state.sweepHits.push(rec);
      } else {
        capped = true;
      }
    }
    status.textContent = `${state.sweepHits.length.toLocaleString()} rows so far…`;
  }
  state.sweepHits.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1));
  status.textContent = capped
    ? `Showing the first ${SWEEP_CAP.toLocaleString()} rows scoring ${body.threshold} or more; export from the command line (vitrine sweep) for all of them.`
    : `${state.sweepHits.length.toLocaleString()} rows score ${body.threshold} or more for ${prompts.length} prompt(s).`;
  sweepVisible();
}

function csvCell(v) {
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function exportCsv() {
  const hits = sweepVisible();
  const lines = [["prompt", "id", "score", "source", "day", "uri"].join(",")];
  for (const h of hits) lines.push([h.prompt, h.id, h.score, h.source, h.day, h.uri].map(csvCell).join(","));
  const blob = new Blob([lines.join("\n") + "\n"], { type: "text/csv" });
  const a = el("a", { href: URL.createObjectURL(blob), download: `sweep-${state.collection}.csv` });
  document.body.append(a);
  a.click();
  a.remove();
}

// ---- partitions -------------------------------------------------------------------------

const COLOURS = ["#3b6fb6", "#d9822b", "#3a9a5b", "#b23b6e", "#7a5cb8", "#8a8a2b"];

async function loadPartitions() {
  const parts = await json(`/api/collections/${encodeURIComponent(state.collection)}/partitions`);
  const days = [...new Set(parts.map((p) => p.day))].sort();
  const sources = [...new Set(parts.map((p) => p.source))].sort();
  const rows = new Map(parts.map((p) => [`${p.source}|${p.day}`, p.rows]));
  const totals = days.map((d) => sources.reduce((n, s) => n + (rows.get(`${s}|${d}`) || 0), 0));
  const max = Math.max(1, ...totals);
  const ns = "http://www.w3.org/2000/svg";
  const W = Math.max(320, days.length * 14), H = 180;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H + 20}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `rows per day for ${days.length} days and ${sources.length} sources`);
  const bw = W / Math.max(1, days.length);
  days.forEach((d, i) => {
    let y = H;
    sources.forEach((s, j) => {
      const n = rows.get(`${s}|${d}`) || 0;
      if (!n) return;
      const h = (n / max) * H;
      y -= h;
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", String(i * bw + 1));
      r.setAttribute("y", String(y));
      r.setAttribute("width", String(Math.max(1, bw - 2)));
      r.setAttribute("height", String(h));
      r.setAttribute("fill", COLOURS[j % COLOURS.length]);
      const title = document.createElementNS(ns, "title");
      title.textContent = `${d} ${s}: ${n} rows`;
      r.append(title);
      svg.append(r);
    });
    if (i === 0 || i === days.length - 1 || i % Math.ceil(days.length / 8) === 0) {
      const t = document.createElementNS(ns, "text");
      t.setAttribute("x", String(i * bw));
      t.setAttribute("y", String(H + 14));
      t.setAttribute("font-size", "10");
      t.textContent = d;
      svg.append(t);
    }
  });
  $("chart").replaceChildren(svg);
  $("legend").replaceChildren(...sources.map((s, j) => {
    const span = el("span", { class: "key" }, s);
    span.style.setProperty("--c", COLOURS[j % COLOURS.length]);
    return span;
  }), el("span", {}, `${parts.reduce((n, p) => n + p.rows, 0).toLocaleString()} rows in ${parts.length} partitions`));
}

async function retain(dryRun) {
  const body = { dry_run: dryRun };
  if ($("older").value.trim()) body.older_than = $("older").value.trim();
  if ($("before").value) body.before = $("before").value;
  if ($("retain-source").value) body.source = $("retain-source").value;
  const r = await json(`/api/collections/${encodeURIComponent(state.collection)}/retain`, body);
  const rows = r.dropped.reduce((n, p) => n + p.rows, 0);
  $("retain-preview").textContent = `${dryRun ? "Would drop" : "Dropped"} ${r.dropped.length} partitions before ${r.cutoff} (${rows.toLocaleString()} rows).`;
  $("retain-confirm").hidden = !dryRun || r.dropped.length === 0;
  state.retain = body;
  if (!dryRun) await loadPartitions();
}

// ---- watchlists -------------------------------------------------------------------------

const watchBase = () => `/api/collections/${encodeURIComponent(state.collection)}/watchlists`;

async function loadWatchlists(wanted) {
  const list = await json(watchBase());
  const ul = $("watchlists");
  ul.replaceChildren(...list.map(watchRow));
  if (!list.length) {
    ul.append(el("li", { class: "meta" }, "No watchlists yet: add one below, or with `vitrine watch add`."));
    $("watch-grid").replaceChildren();
    $("watch-status").textContent = "";
    return;
  }
  const names = list.map((s) => s.watchlist.name);
  const name = names.includes(wanted) ? wanted : names.includes(state.watch) ? state.watch : names[0];
  await showAlerts(list.find((s) => s.watchlist.name === name));
}

function watchRow(s) {
  const w = s.watchlist;
  const li = el("li", { class: "watch", "data-name": w.name });
  li.append(el("b", {}, w.name));
  const looks = w.queries.map((q) => (q.kind === "prompt" ? `"${q.text}"` : `${q.kind} ${q.text}`)).join(" or ");
  const not = w.not.length ? `, not ${w.not.map((q) => `"${q.text}"`).join(", ")}` : "";
  const where = w.sources.length ? ` in ${w.sources.join(", ")}` : "";
  li.append(el("span", { class: "meta" }, `${looks}${not} ≥ ${w.threshold}${where}`));
  const last = s.last_run ? `, last run ${s.last_run}` : ", never run";
  li.append(el("span", { class: "count" }, `${s.alerts.toLocaleString()} alerts · ${s.runs} run${s.runs === 1 ? "" : "s"}${last}`));
  const show = el("button", { type: "button", class: "show" }, "Alerts");
  show.addEventListener("click", () => showAlerts(s).catch(fail("watch-status")));
  const run = el("button", { type: "button", class: "primary run" }, "Run now");
  run.addEventListener("click", () => runWatchlist(w.name).catch(fail("watch-status")));
  li.append(show, run);
  return li;
}

// The newest alerts first (at most 500); those of the latest run are marked new.
async function showAlerts(s) {
  const name = s.watchlist.name;
  state.watch = name;
  for (const li of document.querySelectorAll(".watch")) li.setAttribute("aria-current", String(li.dataset.name === name));
  const after = Math.max(0, s.alerts - 500);
  const r = await json(`${watchBase()}/${encodeURIComponent(name)}/alerts?after=${after}&limit=500`);
  const alerts = r.alerts.slice().reverse();
  const latest = alerts.length ? alerts[0].run : 0;
  const fresh = alerts.filter((a) => a.run === latest).length;
  $("watch-status").className = "status";
  $("watch-status").textContent = alerts.length
    ? `${name}: ${s.alerts.toLocaleString()} alerts; newest first, the ${fresh} of run ${latest} marked new`
    : `${name}: no alerts yet`;
  $("watch-grid").replaceChildren(...alerts.map((a) => alertCard(a, a.run === latest)));
}

function alertCard(a, fresh) {
  const fig = card({ ...a, rank: a.n, prompt: a.query }, state.collection, likeSearch);
  fig.classList.add("alert");
  if (fresh) fig.classList.add("new");
  const cap = fig.querySelector("figcaption");
  cap.insertBefore(el("span", { class: fresh ? "badge" : "meta" }, `${fresh ? "new · " : ""}found ${a.found}`), cap.querySelector(".like"));
  return fig;
}

async function runWatchlist(name) {
  const r = await json(`${watchBase()}/${encodeURIComponent(name)}/run`, {});
  await loadWatchlists(name);
  $("watch-status").textContent = `${name}: run ${r.run} evaluated ${r.rows_evaluated.toLocaleString()} new rows, ${r.alerts.length} new alerts. ` + $("watch-status").textContent;
}

async function addWatchlist() {
  const prompts = $("watch-prompts").value.split("\n").map((s) => s.trim()).filter(Boolean);
  const body = { name: $("watch-name").value.trim(), prompts, threshold: Number($("watch-threshold").value), by: $("watch-by").value.trim() };
  await json(watchBase(), body);
  $("watch-name").value = "";
  await loadWatchlists(body.name);
}

// ---- wiring -----------------------------------------------------------------------------

function fromUrl() {
  const p = new URLSearchParams(location.search);
  $("q").value = p.get("q") || "";
  $("k").value = p.get("k") || "20";
  $("from").value = p.get("from") || "";
  $("to").value = p.get("to") || "";
  $("filter").value = p.get("filter") || "";
  setChecked("source", p.getAll("source"));
  show(p.get("view") || "search");
  if (p.get("q") || p.get("like")) runSearch(p).catch(fail("status"));
}

async function start() {
  const p = new URLSearchParams(location.search);
  try {
    await loadCollections(p.get("collection") || "");
  } catch (e) {
    fail("status")(e);
    return;
  }
  $("collection").addEventListener("change", async () => {
    state.collection = $("collection").value;
    await loadInfo();
    $("grid").replaceChildren();
    if (!$("view-partitions").hidden) loadPartitions();
    if (!$("view-watchlists").hidden) loadWatchlists().catch(fail("watch-status"));
  });
  for (const t of document.querySelectorAll(".tab")) {
    t.addEventListener("click", () => {
      const q = new URLSearchParams(location.search);
      q.set("view", t.dataset.view);
      q.set("collection", state.collection);
      history.pushState(null, "", "/?" + q.toString());
      show(t.dataset.view);
    });
  }
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = searchParams();
    history.pushState(null, "", "/?" + q.toString());
    runSearch(q).catch(fail("status"));
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    imageSearch(ev.dataTransfer.files[0]).catch(fail("status"));
  });
  drop.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      $("file").click();
    }
  });
  $("file").addEventListener("change", () => imageSearch($("file").files[0]).catch(fail("status")));
  document.addEventListener("paste", (ev) => {
    const item = [...(ev.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
    if (item) imageSearch(item.getAsFile()).catch(fail("status"));
  });
  $("sweep-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    runSweep().catch(fail("sweep-status"));
  });
  $("threshold").addEventListener("input", sweepVisible);
  $("watch-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    addWatchlist().catch(fail("watch-status"));
  });
  $("export").addEventListener("click", exportCsv);
  $("retain-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    retain(true).catch((e) => ($("retain-preview").textContent = e.message));
  });
  $("retain-confirm").addEventListener("click", () => retain(false).catch((e) => ($("retain-preview").textContent = e.message)));
  window.addEventListener("popstate", fromUrl);
  fromUrl();
}

document.addEventListener("DOMContentLoaded", start);
