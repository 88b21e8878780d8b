// vitrine's page in a real browser (Debian's Chromium, driven by playwright-core) against a
// real `vitrine serve` on loopback over the demo store. Run by tools/test.sh:
//   VITRINE_BIN=target/release/vitrine VITRINE_DEMO_STORE=<store with the demo> node --test e2e.test.mjs
// Answers are marked right or wrong with the gallery's truth.jsonl, as `vitrine demo` does.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync, mkdirSync, mkdtempSync } from "node:fs";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";
import { chromium } from "playwright-core";

const BIN = resolve(process.env.VITRINE_BIN || "../../target/release/vitrine");
const STORE = resolve(process.env.VITRINE_DEMO_STORE || "../../vitrine-data");
const SHOTS = resolve(process.env.VITRINE_SCREENSHOTS || "../../target/screenshots");
const GALLERY = join(STORE, "demo-gallery");
const truth = new Map(
  readFileSync(join(GALLERY, "truth.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .map((t) => [resolve(GALLERY, t.uri), t]),
);
const what = (uri) => truth.get(resolve(GALLERY, uri)) || truth.get(uri);

let server, base, browser;

function vitrine(...args) {
  const r = spawnSync(BIN, ["--store", STORE, ...args], { encoding: "utf8" });
  assert.equal(r.status, 0, `vitrine ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

before(async () => {
  // A collection whose fields, ids and uris hold markup: the page must show it as text.
  const dir = mkdtempSync(join(tmpdir(), "vitrine-markup-"));
  const rows = 3;
  const header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, 4), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  const h = Buffer.from(header + " ".repeat(pad % 64) + "\n");
  const npy = Buffer.alloc(10 + h.length + rows * 16);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(npy);
  npy.writeUInt16LE(h.length, 8);
  h.copy(npy, 10);
  for (let i = 0; i < rows; i++) for (let j = 0; j < 4; j++) npy.writeFloatLE(i === j ? 1 : 0.1, 10 + h.length + (i * 4 + j) * 4);
  writeFileSync(join(dir, "v.npy"), npy);
  const meta = [0, 1, 2]
    .map((i) => JSON.stringify({ id: `m${i}`, uri: `<b>bold ${i}</b>.jpg`, source: "products", day: "2023-11-19", note: `<img src=x onerror="window.pwned=1">${i}` }))
    .join("\n");
  writeFileSync(join(dir, "m.jsonl"), meta + "\n");
  spawnSync(BIN, ["--store", STORE, "collection", "drop", "markup"], { encoding: "utf8" });
  vitrine("import", "-c", "markup", "--vectors", join(dir, "v.npy"), "--metadata", join(dir, "m.jsonl"));

  server = spawn(BIN, ["--store", STORE, "serve", "--addr", "127.0.0.1:0", "--images-root", GALLERY], { stdio: ["ignore", "pipe", "inherit"] });
  base = await new Promise((ok, fail) => {
    let out = "";
    server.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/on (http:\/\/127\.0\.0\.1:\d+)\//);
      if (m) ok(m[1]);
    });
    server.on("exit", (c) => fail(new Error(`vitrine serve exited with ${c}: ${out}`)));
  });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGINT");
});

async function page(viewport = { width: 1280, height: 900 }) {
  const ctx = await browser.newContext({ viewport });
  const p = await ctx.newPage();
  const errors = [];
  p.on("pageerror", (e) => errors.push(e.message));
  p.on("console", (m) => m.type() === "error" && !m.text().includes("404") && errors.push(m.text()));
  p.errors = errors;
  return p;
}

/** The results shown: data-id and the file each names, in order. */
async function results(p, selector = "#grid .hit") {
  await p.waitForSelector(selector);
  return p.$$eval(selector, (figs) => figs.map((f) => ({ id: f.dataset.id, uri: f.querySelector(".name").getAttribute("title") })));
}

test("an English and a Chinese query show the expected pictures first", async () => {
  const p = await page();
  for (const [q, object, colour] of [
    ["a photo of a red sneaker", "sneaker", "red"],
    ["一张黑色手枪的照片", "handgun", "black"],
  ]) {
    await p.goto(`${base}/?collection=demo&q=${encodeURIComponent(q)}&k=10`);
    await p.waitForFunction(() => document.querySelectorAll("#grid .hit").length === 10);
    const hits = await results(p);
    const right = hits.filter((h) => what(h.uri)?.object === object && what(h.uri)?.colour === colour).length;
    assert.ok(right >= 9, `${q}: ${right} of 10 right: ${JSON.stringify(hits.map((h) => what(h.uri)))}`);
    // Every thumbnail loaded: wait until each has finished (loaded or failed; thumbnails are lazy,
    // so scroll the last into view), then none may be broken.
    await p.$$eval("#grid img", (imgs) => imgs.at(-1).scrollIntoView());
    await p.waitForFunction(() => [...document.querySelectorAll("#grid img")].every((i) => i.complete));
    const broken = await p.$$eval("#grid img", (imgs) => imgs.filter((i) => i.naturalWidth === 0).map((i) => i.src));
    assert.deepEqual(broken, [], "thumbnails that failed to load");
  }
  mkdirSync(SHOTS, { recursive: true });
  await p.screenshot({ path: join(SHOTS, "screenshot.png") });
  assert.deepEqual(p.errors, []);
});

test("a date filter changes what is counted and shown", async () => {
  const p = await page();
  const counted = async (url) => {
    await p.goto(url);
    await p.waitForFunction(() => /rows scanned/.test(document.getElementById("status").textContent));
    const status = await p.textContent("#status");
    return { scanned: Number(status.match(/([\d,]+) rows scanned/)[1].replace(/,/g, "")), hits: await results(p) };
  };
  const all = await counted(`${base}/?collection=demo&q=${encodeURIComponent("a photo of a samoyed")}&k=20`);
  const week = await counted(`${base}/?collection=demo&q=${encodeURIComponent("a photo of a samoyed")}&k=20&source=products&from=2023-11-19&to=2023-11-23`);
  assert.ok(week.scanned < all.scanned / 5, `${week.scanned} vs ${all.scanned}`);
  const days = await p.$$eval("#grid .hit .meta", (m) => m.map((x) => x.textContent));
  for (const d of days) assert.match(d, /^products · 2023-11-(19|2[0-3])$/);
  // The form shows the link's parameters, so the analyst sees what was asked.
  assert.equal(await p.inputValue("#from"), "2023-11-19");
  assert.ok(await p.isChecked("#source-products"));
});

test("an uploaded picture and 'more like this' find its kind, and a shared link reproduces a search", async () => {
  const p = await page();
  await p.goto(`${base}/?collection=demo`);
  await p.waitForSelector("#source-products", { state: "attached" });
  await p.setInputFiles("#file", join(STORE, "demo-query-blue-bicycle.jpg"));
  await p.waitForFunction(() => /for the picture/.test(document.getElementById("status").textContent));
  const hits = await results(p);
  const right = hits.slice(0, 10).filter((h) => what(h.uri)?.object === "bicycle" && what(h.uri)?.colour === "blue").length;
  assert.ok(right >= 9, `${right} of 10 blue bicycles`);
  // A click opens the full picture (the original, from under --images-root) and its fields.
  await p.click(`#grid .hit[data-id="${hits[0].id}"] img`);
  await p.waitForFunction(() => { const i = document.getElementById("detail-img"); return i.complete && i.naturalWidth > 0; });
  assert.match(await p.getAttribute("#detail-img", "src"), /\/image\//);
  const uriShown = await p.$$eval("#detail-fields tr", (rows) => rows.map((r) => [r.cells[0].textContent, r.cells[1].textContent]).find((c) => c[0] === "uri")[1]);
  assert.equal(uriShown, hits[0].uri);
  await p.keyboard.press("Escape");
  // More like the third result: the URL says so, and that picture comes first.
  const third = hits[2];
  await p.click(`#grid .hit[data-id="${third.id}"] .like`);
  await p.waitForFunction((id) => new URL(location.href).searchParams.get("like") === id && document.querySelector("#grid .hit")?.dataset.id === id, third.id);
  const liked = await results(p);
  const shared = p.url();
  // A colleague opens the link.
  const q = await page();
  await q.goto(shared);
  await q.waitForFunction((id) => document.querySelector("#grid .hit")?.dataset.id === id, third.id);
  assert.deepEqual(await results(q), liked);
});

test("a row whose fields hold markup shows the markup as text", async () => {
  const p = await page();
  await p.goto(`${base}/?collection=markup&like=m1&k=3`);
  const hits = await results(p);
  assert.equal(hits.length, 3);
  assert.equal(hits[0].id, "m1");
  // The tile shows the file name (the uri's last part) and titles the whole uri, both as text.
  assert.equal(await p.getAttribute(`#grid .hit[data-id="m1"] .name`, "title"), "<b>bold 1</b>.jpg");
  assert.equal(await p.textContent(`#grid .hit[data-id="m1"] .name`), "b>.jpg");
  assert.equal(await p.$$eval("#grid b", (b) => b.filter((x) => x.textContent.startsWith("bold")).length), 0);
  // Keyboard: focus the result, Enter opens it with all its fields.
  await p.focus(`#grid .hit[data-id="m1"]`);
  await p.keyboard.press("Enter");
  await p.waitForSelector("#detail[open]");
  const note = await p.$$eval("#detail-fields tr", (rows) => rows.map((r) => [r.cells[0].textContent, r.cells[1].textContent]).find((c) => c[0] === "note")[1]);
  assert.equal(note, '<img src=x onerror="window.pwned=1">1');
  assert.equal(await p.$$eval("#detail-fields img", (i) => i.length), 0);
  assert.equal(await p.evaluate(() => window.pwned), undefined);
  await p.keyboard.press("Escape");
});

test("the sweep view counts live as the threshold moves and exports CSV; partitions chart and preview retention", async () => {
  const p = await page();
  await p.goto(`${base}/?collection=demo&view=sweep`);
  await p.fill("#prompts", "a photo of a handgun\n一把手枪的照片");
  await p.fill("#sweep-from", "2023-10-25");
  await p.fill("#sweep-to", "2023-11-23");
  await p.click("#sweep-form button[type=submit]");
  await p.waitForFunction(() => document.getElementById("sweep-receipt").hidden === false);
  const count = async () => Number((await p.textContent("#sweep-count")).match(/^([\d,]+)/)[1].replace(/,/g, ""));
  await p.$eval("#threshold", (s) => { s.value = "0.3"; s.dispatchEvent(new Event("input")); });
  const at30 = await count();
  await p.$eval("#threshold", (s) => { s.value = "0.45"; s.dispatchEvent(new Event("input")); });
  const at45 = await count();
  assert.ok(at30 > 100 && at45 < at30, `${at30} then ${at45}`);
  const [download] = await Promise.all([p.waitForEvent("download"), p.click("#export")]);
  const csv = readFileSync(await download.path(), "utf8").trim().split("\n");
  assert.equal(csv[0], "prompt,id,score,source,day,uri");
  assert.equal(csv.length - 1, at45);
  // The receipt says what was covered.
  assert.match(await p.textContent("#sweep-receipt pre"), /partitions scanned: \d+ of \d+/);
  await p.click('.tab[data-view="partitions"]');
  await p.waitForSelector("#chart svg rect");
  assert.ok((await p.$$eval("#chart rect", (r) => r.length)) >= 45);
  await p.fill("#before", "2023-10-15");
  await p.click("#retain-form button[type=submit]");
  await p.waitForFunction(() => /Would drop \d+ partitions/.test(document.getElementById("retain-preview").textContent));
  assert.ok(await p.isVisible("#retain-confirm"), "confirm offered after the preview");
});

test("the watchlists view shows the demo's alerts newest first, adds a watchlist and runs it", async () => {
  const p = await page();
  await p.goto(`${base}/?collection=demo&view=watchlists`);
  await p.waitForSelector('.watch[data-name="handguns"]');
  const alerts = await results(p, "#watch-grid .hit");
  const list = await (await fetch(`${base}/api/collections/demo/watchlists`)).json();
  const handguns = list.find((s) => s.watchlist.name === "handguns");
  assert.equal(alerts.length, handguns.alerts);
  assert.ok(alerts.length >= 5, `${alerts.length} alerts`);
  // The demo's alerts are the newest day's handguns, all from the watchlist's one run with hits.
  const right = alerts.filter((a) => what(a.uri)?.object === "handgun").length;
  assert.ok(right >= alerts.length * 0.9, `${right} of ${alerts.length} are handguns`);
  assert.equal(await p.$$eval("#watch-grid .hit.new", (f) => f.length), alerts.length);
  assert.ok(alerts.every((a) => a.uri.includes("/2023-11-23/")), "all from the newest day");
  await p.screenshot({ path: join(SHOTS, "screenshot-watchlists.png") });
  // Add one from the form, a prompt holding markup (shown as text), and run it: nothing new.
  await p.fill("#watch-name", "e2e-cats");
  await p.fill("#watch-prompts", 'a photo of a white cat\n<img src=x onerror="window.pwned=1">');
  await p.fill("#watch-threshold", "0.3");
  await p.fill("#watch-by", "e2e");
  await p.click("#watch-form button[type=submit]");
  await p.waitForSelector('.watch[data-name="e2e-cats"][aria-current="true"]');
  assert.match(await p.textContent('.watch[data-name="e2e-cats"] .meta'), /<img src=x onerror="window.pwned=1">/);
  await p.click('.watch[data-name="e2e-cats"] .run');
  await p.waitForFunction(() => /run 1 evaluated 0 new rows, 0 new alerts/.test(document.getElementById("watch-status").textContent));
  assert.equal(await p.evaluate(() => window.pwned), undefined);
  assert.deepEqual(p.errors, []);
  const del = await fetch(`${base}/api/collections/demo/watchlists/e2e-cats`, { method: "DELETE" });
  assert.equal(del.status, 200);
});

test("the page works at a phone's width", async () => {
  const p = await page({ width: 390, height: 844 });
  await p.goto(`${base}/?collection=demo&q=${encodeURIComponent("a photo of a red sneaker")}&k=4`);
  await results(p);
  const columns = await p.$eval("#grid", (g) => getComputedStyle(g).gridTemplateColumns.split(" ").length);
  assert.equal(columns, 2);
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  assert.equal(overflow, false, "no sideways scrolling");
  await p.screenshot({ path: join(SHOTS, "screenshot-phone.png") });
});

test("clip-retrieval's ClipClient queries the server unchanged", { skip: !process.env.CLIP_CLIENT && "set CLIP_CLIENT=path/to/clip_client.py" }, async () => {
  const py = process.env.PYTHON || "python3";
  const script = `
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("clip_client", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
c = m.ClipClient(url=sys.argv[2] + "/knn-service", indice_name="demo", num_images=5, deduplicate=False)
t = c.query(text="a photo of a red sneaker")
i = c.query(image=sys.argv[3])
e = c.query(embedding_input=[float(x) for x in json.loads(sys.argv[4])])
d = m.ClipClient(url=sys.argv[2] + "/knn-service", indice_name="demo", num_images=5).query(text="a photo of a red sneaker")
print(json.dumps({"text": t, "image": i, "embedding": e, "dedup": d}))
`;
  // A stored row's embedding (from the API) as the third kind of query.
  const top = await (await fetch(`${base}/api/search`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ collection: "demo", text: "a photo of a white cat", k: 1 }) })).json();
  const first = await (await fetch(`${base}/api/collections/demo/rows/${encodeURIComponent(top.hits[0].id)}?vector=true`)).json();
  const info = await (await fetch(`${base}/api/collections/demo`)).json();
  assert.equal(first.vector.length, info.dim);
  assert.ok(Math.abs(Math.hypot(...first.vector) - 1) < 1e-3, "stored vectors are unit length");
  const r = spawnSync(py, ["-c", script, process.env.CLIP_CLIENT, base, join(STORE, "demo-query-blue-bicycle.jpg"), JSON.stringify(first.vector)], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.text.length, 5);
  const right = out.text.filter((h) => what(h.url)?.object === "sneaker").length;
  assert.ok(right >= 4, JSON.stringify(out.text.map((h) => h.url)));
  assert.ok(out.image.every((h) => typeof h.similarity === "number" && h.image));
  assert.equal(out.image.filter((h) => what(h.url)?.object === "bicycle").length >= 4, true);
  assert.equal(out.embedding[0].id, first.id);
  assert.ok(Math.abs(out.embedding[0].similarity - 1) < 1e-4);
  // clip-retrieval's default deduplication keeps the best of near-identical pictures only.
  assert.ok(out.dedup.length >= 1 && out.dedup.length <= 5 && out.dedup[0].id === out.text[0].id);
});
