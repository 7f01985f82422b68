/// The web page served at `GET /`: one self-contained HTML document (inline CSS and JavaScript, no external
/// resources, no build step) that drives the API of Docs/http-api.md. Docs/web-page.md describes what it does.
public enum WebPage {
    /// The page, UTF-8 HTML.
    public static let html: String = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<link rel="icon" href="data:,">
<title>umsd – virtual drives</title>
<style>
:root {
  --bg: #f4f5f7; --card: #fff; --text: #1d2129; --muted: #5f6673; --line: #dfe2e7;
  --accent: #2563eb; --accent-text: #fff; --ok: #15803d; --warn: #b45309; --bad: #b91c1c;
  --chip: #eef0f3; --bar: #e3e6eb; --focus: #2563eb;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #14161a; --card: #1d2026; --text: #e6e8ec; --muted: #9aa1ad; --line: #30343c;
    --accent: #4f8cff; --accent-text: #fff; --ok: #4ade80; --warn: #fbbf24; --bad: #f87171;
    --chip: #2a2e36; --bar: #2d323a; --focus: #7aa7ff;
  }
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; background: var(--bg); color: var(--text); }
header {
  display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1rem;
  padding: .75rem 1rem; background: var(--card); border-bottom: 1px solid var(--line);
  position: sticky; top: 0; z-index: 2;
}
header h1 { font-size: 1.15rem; margin: 0; margin-right: auto; }
header h1 small { color: var(--muted); font-weight: normal; font-size: .85rem; }
main { max-width: 68rem; margin: 0 auto; padding: 1rem; display: grid; gap: 1rem; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 1rem; min-width: 0; }
h2 { font-size: 1rem; margin: 0 0 .75rem; }
h3 { font-size: .95rem; margin: 0; }
button, .button {
  font: inherit; font-size: .9rem; padding: .4rem .8rem; border-radius: 6px; cursor: pointer;
  border: 1px solid var(--line); background: var(--card); color: var(--text); text-decoration: none;
  display: inline-flex; align-items: center; gap: .3rem; min-height: 2.25rem; white-space: nowrap;
}
button:hover:not(:disabled), .button:hover { border-color: var(--muted); }
button.primary { background: var(--accent); border-color: var(--accent); color: var(--accent-text); }
button.danger { color: var(--bad); }
button.danger.solid { background: var(--bad); border-color: var(--bad); color: #fff; }
button:disabled { opacity: .5; cursor: default; }
:focus-visible { outline: 2px solid var(--focus); outline-offset: 2px; }
input, select {
  font: inherit; font-size: .9rem; padding: .35rem .5rem; border-radius: 6px; min-height: 2.25rem;
  border: 1px solid var(--line); background: var(--bg); color: var(--text); min-width: 0;
}
label { font-size: .85rem; color: var(--muted); display: grid; gap: .2rem; }
.row { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; }
.grow { flex: 1 1 12rem; }
.muted { color: var(--muted); }
.small { font-size: .85rem; }
.chip {
  display: inline-block; font-size: .78rem; padding: .1rem .5rem; border-radius: 999px;
  background: var(--chip); color: var(--muted); white-space: nowrap;
}
.chip.ok { color: var(--ok); } .chip.warn { color: var(--warn); } .chip.bad { color: var(--bad); }
.chips { display: flex; flex-wrap: wrap; gap: .3rem; margin: .4rem 0 .6rem; }
.pill { display: inline-flex; align-items: center; gap: .4rem; font-size: .85rem; color: var(--muted); }
.dot { width: .6rem; height: .6rem; border-radius: 50%; background: var(--muted); flex: none; }
.dot.ok { background: var(--ok); } .dot.warn { background: var(--warn); } .dot.bad { background: var(--bad); }
.drives { display: grid; gap: .75rem; grid-template-columns: repeat(auto-fit, minmax(19rem, 1fr)); }
.drive { border: 1px solid var(--line); border-radius: 8px; padding: .75rem; min-width: 0; }
.drive .title { display: flex; justify-content: space-between; align-items: baseline; gap: .5rem; }
.drive .image { font-weight: 600; overflow-wrap: anywhere; margin-top: .25rem; }
.drive .image.none { font-weight: normal; color: var(--muted); }
.drive .actions { display: flex; flex-wrap: wrap; gap: .4rem; margin-top: .5rem; }
.drive select { flex: 1 1 9rem; }
.banner {
  display: flex; gap: .75rem; align-items: start; justify-content: space-between;
  border-radius: 8px; padding: .6rem .8rem; border: 1px solid var(--bad); color: var(--bad); background: var(--card);
}
.banner.info { border-color: var(--accent); color: var(--text); }
.banner button { min-height: 1.8rem; padding: .1rem .5rem; }
.drop {
  display: grid; place-items: center; text-align: center; gap: .3rem; padding: 1.25rem 1rem;
  border: 2px dashed var(--line); border-radius: 10px; cursor: pointer; color: var(--muted);
}
.drop.over { border-color: var(--accent); background: var(--chip); }
.drop strong { color: var(--accent); }
.drop:focus-within { outline: 2px solid var(--focus); outline-offset: 2px; }
.visually-hidden {
  position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap;
}
progress { width: 100%; height: .55rem; appearance: none; border: 0; border-radius: 99px; background: var(--bar); overflow: hidden; }
progress::-webkit-progress-bar { background: var(--bar); }
progress::-webkit-progress-value { background: var(--accent); border-radius: 99px; }
progress::-moz-progress-bar { background: var(--accent); }
.list { list-style: none; margin: 0; padding: 0; }
.list > li { display: flex; flex-wrap: wrap; align-items: center; gap: .4rem .75rem; padding: .6rem 0; border-top: 1px solid var(--line); }
.list > li:first-child { border-top: 0; }
.list .name { flex: 1 1 14rem; min-width: 0; overflow-wrap: anywhere; font-weight: 600; }
.list .meta { color: var(--muted); font-size: .85rem; display: flex; flex-wrap: wrap; gap: .2rem .75rem; }
.list .buttons { display: flex; gap: .4rem; margin-left: auto; }
.list .progress { flex: 1 1 100%; display: grid; gap: .2rem; }
.bar { height: .55rem; border-radius: 99px; background: var(--bar); overflow: hidden; }
.bar > span { display: block; height: 100%; background: var(--accent); }
.bar.full > span { background: var(--warn); }
.parts { display: grid; gap: .6rem; margin-bottom: 1rem; }
.part .label { display: flex; justify-content: space-between; gap: .5rem; font-size: .85rem; flex-wrap: wrap; }
.empty { color: var(--muted); font-size: .9rem; padding: .5rem 0; }
dialog { border: 1px solid var(--line); border-radius: 10px; background: var(--card); color: var(--text); max-width: min(28rem, 92vw); }
dialog::backdrop { background: rgba(0, 0, 0, .45); }
dialog form { display: grid; gap: .75rem; }
dialog .row { justify-content: end; }
@media (max-width: 480px) {
  main { padding: .5rem; gap: .5rem; }
  section { padding: .75rem; border-radius: 8px; }
  .drives { grid-template-columns: 1fr; }
  .list .buttons { margin-left: 0; }
}
</style>
</head>
<body>
<header>
  <h1>umsd <small>virtual drives</small></h1>
  <span class="pill" id="live" role="status"><span class="dot warn"></span><span>Connecting…</span></span>
  <span class="pill" id="usb"><span class="dot"></span><span id="usb-text">Host: unknown</span></span>
  <button type="button" id="connect" disabled>Connect</button>
</header>
<main>
  <div class="banner" id="error" role="alert" hidden>
    <span id="error-text"></span>
    <button type="button" id="error-close" aria-label="Dismiss the message">✕</button>
  </div>
  <div class="banner info" id="notice" role="status" hidden>
    <span id="notice-text"></span>
    <button type="button" id="notice-close" aria-label="Dismiss the message">✕</button>
  </div>

  <section aria-labelledby="drives-title">
    <h2 id="drives-title">Drives</h2>
    <div class="drives" id="drives"><p class="empty">Loading…</p></div>
  </section>

  <section aria-labelledby="upload-title">
    <h2 id="upload-title">Upload an image</h2>
    <label class="drop" id="drop" for="file">
      <span><strong>Choose files</strong> or drop them here</span>
      <span class="small">ISO images for the CD/DVD drive, disk images for flash drives</span>
      <input type="file" id="file" class="visually-hidden" multiple>
    </label>
    <div class="row" id="folder-row" hidden style="margin-top:.5rem">
      <label>Save to<select id="folder"></select></label>
    </div>
    <ul class="list" id="uploads" aria-label="Uploads in progress" style="margin-top:.5rem"></ul>
  </section>

  <section aria-labelledby="images-title">
    <div class="row" style="justify-content:space-between;align-items:center;margin-bottom:.75rem">
      <h2 id="images-title" style="margin:0">Images</h2>
      <button type="button" id="rescan">Rescan folder</button>
    </div>
    <div class="parts" id="parts"></div>
    <ul class="list" id="images" aria-label="Images"></ul>
  </section>

  <section aria-labelledby="create-title">
    <h2 id="create-title">Create a flash image</h2>
    <form id="create" class="row">
      <label class="grow">Name<input id="create-name" name="name" required placeholder="flash.img" autocomplete="off"></label>
      <label>Size<input id="create-size" name="size" required placeholder="1G" size="7" pattern="\s*[0-9]+(\.[0-9]+)?\s*[KMGTkmgt]?[iI]?[bB]?\s*"></label>
      <label>File system
        <select id="create-fs" name="filesystem">
          <option value="vfat">FAT (vfat)</option>
          <option value="exfat">exFAT</option>
          <option value="none">None (blank)</option>
        </select>
      </label>
      <label style="display:flex;align-items:center;gap:.35rem;min-height:2.25rem">
        <input type="checkbox" id="create-part" checked style="min-height:0"> Partition table
      </label>
      <button type="submit" class="primary" id="create-button">Create</button>
    </form>
  </section>
</main>

<dialog id="auth-dialog" aria-labelledby="auth-title">
  <form method="dialog" id="auth-form">
    <h2 id="auth-title">Access token</h2>
    <p class="small muted" style="margin:0">This appliance needs a token. It is in the file set by
      <code>http.token_file</code> (by default <code>/var/lib/umsd/http-token</code>). It is kept in this browser.</p>
    <p class="small" id="auth-wrong" style="margin:0;color:var(--bad)" hidden>That token was not accepted.</p>
    <label>Token<input type="password" id="auth-token" autocomplete="current-password" required></label>
    <div class="row"><button type="submit" class="primary" id="auth-submit">Sign in</button></div>
  </form>
</dialog>

<dialog id="confirm-dialog" aria-labelledby="confirm-text">
  <form method="dialog">
    <p id="confirm-text" style="margin:0"></p>
    <div class="row">
      <button type="submit" value="cancel" id="confirm-cancel">Cancel</button>
      <button type="submit" value="ok" class="danger solid" id="confirm-ok">Delete</button>
    </div>
  </form>
</dialog>

<script>
"use strict";
const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "umsd.token";
let token = localStorage.getItem(TOKEN_KEY) || "";
let state = null;                 // the last GET /api/state or `state` event
const transfers = new Map();      // id -> Transfer, from the state and `transfer` events
const uploads = new Map();        // local XHR uploads: key -> {name, file, xhr, loaded, total, samples, el}
let uploadSeq = 0;
const rendered = {};              // what each part of the page last showed, to skip needless redraws

/* ---------- formatting ---------- */

function size(bytes) {
  if (bytes == null) return "?";
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${v} bytes` : `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ${units[u]}`;
}
function date(iso) {
  const d = new Date(iso);
  return isNaN(d) ? "" : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}
function percent(a, b) { return b ? Math.min(100, Math.floor(a * 100 / b)) : 0; }
// Absolute, from the origin: a page opened as http://user:password@host/ would otherwise resolve relative URLs with
// the credentials in them, which fetch() refuses.
function url(path) { return location.origin + path; }
function imagePath(name) { return "/api/images/" + name.split("/").map(encodeURIComponent).join("/"); }

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c != null && c !== false) el.append(c);
  return el;
}

/* ---------- messages ---------- */

function showError(message) {
  $("error-text").textContent = message;
  $("error").hidden = false;
}
function showNotice(message) {
  $("notice-text").textContent = message;
  $("notice").hidden = false;
}
$("error-close").onclick = () => { $("error").hidden = true; };
$("notice-close").onclick = () => { $("notice").hidden = true; };

/* ---------- the API ---------- */

class APIError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

function authHeaders(extra) {
  const headers = Object.assign({}, extra);
  if (token) headers.Authorization = "Bearer " + token;
  return headers;
}

// The server's own sentence when there is one.
async function errorOf(res) {
  try {
    const body = await res.json();
    if (body && body.error && body.error.message) return new APIError(res.status, body.error.code, body.error.message);
  } catch (e) { /* not JSON */ }
  return new APIError(res.status, "http", `The server answered ${res.status} ${res.statusText}.`);
}

let authWaiters = null;
// Asks for a token (once, however many requests are waiting for it) and resolves when one was entered.
function askToken(wrong) {
  if (!authWaiters) {
    authWaiters = [];
    $("auth-wrong").hidden = !wrong;
    $("auth-token").value = "";
    $("auth-dialog").showModal();
  }
  return new Promise((resolve) => authWaiters.push(resolve));
}
$("auth-form").addEventListener("submit", () => {
  token = $("auth-token").value.trim();
  localStorage.setItem(TOKEN_KEY, token);
  const waiters = authWaiters || [];
  authWaiters = null;
  waiters.forEach((resolve) => resolve());
});
$("auth-dialog").addEventListener("cancel", (e) => e.preventDefault());

function bearerChallenge(res) {
  return res.status === 401 && /^\s*bearer/i.test(res.headers.get("WWW-Authenticate") || "");
}

async function api(method, path, body) {
  for (;;) {
    let res;
    try {
      res = await fetch(url(path), {
        method,
        headers: authHeaders(body === undefined ? {} : { "Content-Type": "application/json" }),
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (e) {
      throw new APIError(0, "network", "The appliance cannot be reached. Check the network and try again.");
    }
    if (bearerChallenge(res)) { await askToken(!!token); continue; }
    if (!res.ok) throw await errorOf(res);
    return res.status === 204 ? null : res.json();
  }
}

// Runs an action for a button: disables it meanwhile, shows the server's sentence on failure.
async function act(button, work) {
  if (button) button.disabled = true;
  try {
    $("error").hidden = true;
    return await work();
  } catch (e) {
    showError(e.message);
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}

/* ---------- state ---------- */

function applyState(s) {
  state = s;
  transfers.clear();
  for (const t of s.transfers || []) transfers.set(t.id, t);
  render();
}

function applyDrives(answer) {
  if (!state) return;
  state.connected = answer.connected;
  state.drives = answer.drives;
  render();
}

function render() {
  if (!state) return;
  renderHeader();
  renderDrives();
  renderParts();
  renderImages();
  renderUploads();
}

function renderHeader() {
  const c = !!state.connected;
  $("usb").querySelector(".dot").className = "dot " + (c ? "ok" : "");
  $("usb-text").textContent = c ? "Host: connected" : "Host: disconnected";
  const b = $("connect");
  b.disabled = false;
  b.textContent = c ? "Disconnect" : "Connect";
  b.setAttribute("aria-label", c ? "Disconnect the drives from the host" : "Connect the drives to the host");
  b.className = c ? "" : "primary";
}
$("connect").onclick = (e) => act(e.currentTarget, async () => {
  const answer = await api("POST", state && state.connected ? "/api/disconnect" : "/api/connect");
  applyDrives(answer);
});

// Keeps keyboard focus on the "same" control when a list is redrawn.
function redraw(container, build) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.dataset.key : null;
  container.replaceChildren(...build());
  if (key) {
    const again = container.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

function driveResult(lun, answer) {
  applyDrives(answer);
  if (answer.result === "eject-requested") {
    showNotice(`The host holds drive ${lun} locked. It was asked to eject the medium; the change happens when it does. ` +
      "Use Force eject to take the medium away now.");
  }
}

function renderDrives() {
  const images = (state.images || []).filter((i) => i.complete);
  const sig = JSON.stringify([state.drives, images.map((i) => [i.name, i.writable])]);
  if (rendered.drives === sig) return;
  rendered.drives = sig;
  // A choice made in a drive's list but not loaded yet survives the redraw.
  const chosen = {};
  for (const s of $("drives").querySelectorAll("select[data-touched]")) chosen[s.id] = s.value;
  redraw($("drives"), () => {
    if (!state.drives || !state.drives.length) return [h("p", { class: "empty" }, "No drives are configured.")];
    return state.drives.map((d) => driveCard(d, images));
  });
  for (const [id, value] of Object.entries(chosen)) {
    const s = $(id);
    if (s && [...s.options].some((o) => o.value === value)) { s.value = value; s.dataset.touched = ""; }
  }
}

function driveCard(d, images) {
  const lun = d.lun;
  const post = (button, body) => act(button, async () => driveResult(lun, await api("POST", `/api/drives/${lun}`, body)));
  const chips = [
    h("span", { class: "chip" }, d.writable ? "Writable" : "Read-only"),
    d.image == null ? null :
      d.present ? h("span", { class: "chip ok" }, "Medium present") : h("span", { class: "chip warn" }, "No medium"),
    d.locked ? h("span", { class: "chip warn", title: "The host prevents medium removal" }, "Locked by host") : null,
    d.trayOpen ? h("span", { class: "chip" }, "Tray open") : null,
    d.queuedImage ? h("span", { class: "chip warn" }, `Next: ${d.queuedImage}`) : null,
    d.problem ? h("span", { class: "chip warn", title: d.problem }, d.problem) : null,
  ];
  const selectId = `drive-${lun}-image`;
  const select = h("select", {
    id: selectId, dataset: { key: `select-${lun}` }, onchange: (e) => { e.currentTarget.dataset.touched = ""; },
  },
    h("option", { value: "" }, "— No image —"),
    images.map((i) => h("option", { value: i.name, selected: i.name === d.image }, i.name)));
  if (d.image && !images.some((i) => i.name === d.image)) {
    select.append(h("option", { value: d.image, selected: true }, d.image));
  }
  return h("article", { class: "drive", dataset: { lun: String(lun) }, "aria-labelledby": `drive-${lun}-title` },
    h("div", { class: "title" },
      h("h3", { id: `drive-${lun}-title` }, `Drive ${lun}`),
      h("span", { class: "chip", dataset: { role: "kind" } }, d.cdrom ? "CD/DVD" : "Flash")),
    h("div", { class: "image" + (d.image ? "" : " none"), dataset: { role: "image" } }, d.image || "No image"),
    h("div", { class: "chips" }, chips),
    h("div", { class: "actions" },
      h("label", { class: "visually-hidden", for: selectId }, `Image for drive ${lun}`),
      select,
      h("button", {
        type: "button", class: "primary", dataset: { key: `load-${lun}`, action: "load" },
        "aria-label": `Load the chosen image into drive ${lun}`,
        onclick: (e) => post(e.currentTarget, { image: select.value || null }),
      }, "Load")),
    h("div", { class: "actions" },
      h("button", {
        type: "button", dataset: { key: `kind-${lun}`, action: "kind" },
        "aria-label": d.cdrom ? `Make drive ${lun} a flash drive` : `Make drive ${lun} a CD/DVD drive`,
        onclick: (e) => post(e.currentTarget, d.cdrom ? { cdrom: false } : { cdrom: true, writable: false }),
      }, d.cdrom ? "Switch to flash" : "Switch to CD/DVD"),
      h("button", {
        type: "button", disabled: d.cdrom, dataset: { key: `rw-${lun}`, action: "writable" },
        title: d.cdrom ? "A CD/DVD drive is always read-only" : null,
        "aria-label": d.writable ? `Make drive ${lun} read-only` : `Make drive ${lun} writable`,
        onclick: (e) => post(e.currentTarget, { writable: !d.writable }),
      }, d.writable ? "Make read-only" : "Make writable"),
      h("button", {
        type: "button", disabled: d.image == null, dataset: { key: `eject-${lun}`, action: "eject" },
        "aria-label": `Eject drive ${lun}`,
        onclick: (e) => act(e.currentTarget, async () => driveResult(lun, await api("POST", `/api/drives/${lun}/eject`, { force: false }))),
      }, "Eject"),
      h("button", {
        type: "button", class: "danger", disabled: d.image == null && !d.queuedImage,
        dataset: { key: `force-${lun}`, action: "force-eject" },
        "aria-label": `Force eject drive ${lun}, even if the host locked it`,
        onclick: (e) => act(e.currentTarget, async () => driveResult(lun, await api("POST", `/api/drives/${lun}/eject`, { force: true }))),
      }, "Force eject")));
}

function renderParts() {
  const parts = state.parts || [];
  const sig = JSON.stringify(parts);
  if (rendered.parts === sig) return;
  rendered.parts = sig;
  $("parts").replaceChildren(...parts.map((p) => {
    const used = Math.max(0, p.size - p.free);
    const pc = percent(used, p.size);
    const title = p.name === "" ? "Images folder" : p.name;
    return h("div", { class: "part" },
      h("div", { class: "label" },
        h("span", null, h("strong", null, title), p.writable ? null : [" ", h("span", { class: "chip" }, "read-only")]),
        h("span", { class: "muted" }, `${size(p.free)} free of ${size(p.size)}`)),
      h("div", {
        class: "bar" + (pc >= 90 ? " full" : ""), role: "meter", "aria-valuemin": "0", "aria-valuemax": "100",
        "aria-valuenow": String(pc), "aria-label": `${title}: ${pc}% used`,
      }, h("span", { style: `width:${pc}%` })));
  }));
  const writable = parts.filter((p) => p.writable);
  const folder = $("folder");
  const chosen = folder.value;
  folder.replaceChildren(...writable.map((p) => h("option", { value: p.path, selected: p.path === chosen },
    p.name === "" ? "Images folder" : p.name)));
  $("folder-row").hidden = writable.length < 2;
}

// The upload or create transfer that is filling an incomplete image.
function transferFor(name) {
  for (const t of transfers.values()) if (t.name === name && t.kind !== "download") return t;
  return null;
}

function renderImages() {
  const list = (state.images || []).slice().sort((a, b) => a.name.localeCompare(b.name));
  const sig = JSON.stringify([list, [...transfers.values()].filter((t) => t.kind !== "download"),
    [...uploads.values()].map((u) => u.name)]);
  if (rendered.images === sig) return;
  rendered.images = sig;
  redraw($("images"), () => {
    if (!list.length) return [h("li", { class: "empty" }, "No images yet. Upload one or create a flash image.")];
    return list.map(imageRow);
  });
}

function imageRow(i) {
  const inUse = (i.inUse || []).map((lun) => `drive ${lun}`).join(", ");
  // This browser's own upload has its bar (and Abort) under "Upload an image" already.
  const mine = [...uploads.values()].some((u) => u.name === i.name);
  const t = i.complete || mine ? null : transferFor(i.name);
  const doing = t && t.kind === "create" ? "Creating" : "Uploading";
  return h("li", { dataset: { image: i.name, complete: String(i.complete) } },
    h("span", { class: "name" }, i.name),
    h("span", { class: "meta" },
      h("span", null, size(i.size)),
      h("span", null, date(i.mtime)),
      i.part ? h("span", { class: "chip" }, i.part) : null,
      inUse ? h("span", { class: "chip ok" }, `in ${inUse}`) : null,
      i.complete ? null : h("span", { class: "chip warn" }, "incomplete")),
    h("span", { class: "buttons" },
      i.complete ? h("a", {
        class: "button", href: url(imagePath(i.name)), download: i.name.split("/").pop(), dataset: { key: `dl-${i.name}` },
        "aria-label": `Download ${i.name}`, onclick: (e) => { if (token) { e.preventDefault(); download(i.name); } },
      }, "Download") : null,
      i.complete ? h("button", {
        type: "button", class: "danger", dataset: { key: `rm-${i.name}`, action: "delete" },
        "aria-label": `Delete ${i.name}`, onclick: (e) => removeImage(e.currentTarget, i),
      }, "Delete") : null,
      t && t.kind === "upload" ? h("button", {
        type: "button", class: "danger", dataset: { key: `abort-${t.id}`, action: "abort" },
        "aria-label": `Abort the upload of ${i.name}`,
        onclick: (e) => act(e.currentTarget, () => api("DELETE", `/api/transfers/${encodeURIComponent(t.id)}`)),
      }, "Abort") : null),
    t ? h("span", { class: "progress" },
      h("progress", { max: t.total || 1, value: t.bytes, "aria-label": `${i.name}: ${doing.toLowerCase()}` }),
      h("span", { class: "small muted" }, t.total
        ? `${doing}: ${size(t.bytes)} of ${size(t.total)} (${percent(t.bytes, t.total)}%)`
        : `${doing}: ${size(t.bytes)}`)) : null);
}

function confirmDialog(text, ok) {
  const dialog = $("confirm-dialog");
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = ok;
  dialog.returnValue = "";
  dialog.showModal();
  $("confirm-cancel").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

async function removeImage(button, i) {
  if (!(await confirmDialog(`Delete ${i.name} (${size(i.size)})? This cannot be undone.`, "Delete"))) return;
  await act(button, async () => {
    await api("DELETE", imagePath(i.name));
    showNotice(`${i.name} was deleted.`);
  });
}

// With a token a plain link cannot send it: fetch the image and save it from memory (fine for flash images,
// heavy for big ISOs; basic auth and loopback use the link itself).
async function download(name) {
  await act(null, async () => {
    for (;;) {
      const res = await fetch(url(imagePath(name)), { headers: authHeaders() });
      if (bearerChallenge(res)) { await askToken(true); continue; }
      if (!res.ok) throw await errorOf(res);
      const url = URL.createObjectURL(await res.blob());
      const a = h("a", { href: url, download: name.split("/").pop() });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      return;
    }
  });
}

$("rescan").onclick = (e) => act(e.currentTarget, async () => {
  const answer = await api("POST", "/api/images/rescan");
  if (state) { state.images = answer.images; state.parts = answer.parts; render(); }
});

/* ---------- uploads ---------- */

function upload(file, replace) {
  const key = "up" + (++uploadSeq);
  const folder = $("folder-row").hidden ? "" : $("folder").value;
  const name = folder ? `${folder}/${file.name}` : file.name;
  const u = { key, name, file, loaded: 0, total: file.size, samples: [[performance.now(), 0]], speed: 0 };
  const form = new FormData();
  form.append("name", name);
  if (replace) form.append("replace", "1");
  form.append("file", file, file.name);
  const xhr = new XMLHttpRequest();
  u.xhr = xhr;
  xhr.open("POST", url("/api/images"));
  if (token) xhr.setRequestHeader("Authorization", "Bearer " + token);
  xhr.upload.onprogress = (e) => {
    const now = performance.now();
    u.loaded = e.loaded;
    if (e.lengthComputable) u.total = e.total;
    u.samples.push([now, e.loaded]);
    while (u.samples.length > 2 && now - u.samples[0][0] > 3000) u.samples.shift();
    const [t0, b0] = u.samples[0];
    if (now - t0 > 200) u.speed = (e.loaded - b0) * 1000 / (now - t0);
    renderUpload(u);
  };
  xhr.onload = async () => {
    uploads.delete(key);
    renderUploads();
    if (xhr.status === 201 || xhr.status === 200) {
      showNotice(`${name} was uploaded.`);
      return;
    }
    let code = "", message = `The upload of ${name} failed: the server answered ${xhr.status}.`;
    try {
      const body = JSON.parse(xhr.responseText);
      if (body.error) { code = body.error.code; message = body.error.message; }
    } catch (e) { /* not JSON */ }
    if (xhr.status === 401 && /^\s*bearer/i.test(xhr.getResponseHeader("WWW-Authenticate") || "")) {
      await askToken(!!token);
      upload(file, replace);
    } else if (code === "exists" && !replace) {
      if (await confirmDialog(`${name} exists already. Replace it with the file you chose?`, "Replace")) upload(file, true);
    } else {
      showError(message);
    }
  };
  xhr.onerror = () => {
    uploads.delete(key);
    renderUploads();
    showError(`The upload of ${name} was cut off: the appliance cannot be reached.`);
  };
  xhr.onabort = () => {
    uploads.delete(key);
    renderUploads();
    showNotice(`The upload of ${name} was aborted.`);
  };
  uploads.set(key, u);
  renderUploads();
  xhr.send(form);
}

function uploadRow(u) {
  const bar = h("progress", { max: u.total || 1, value: u.loaded, "aria-label": `Upload of ${u.name}` });
  const text = h("span", { class: "small muted", dataset: { role: "progress-text" } });
  const li = h("li", { dataset: { upload: u.name } },
    h("span", { class: "name" }, u.name),
    h("span", { class: "buttons" },
      h("button", {
        type: "button", class: "danger", dataset: { key: `abort-${u.key}`, action: "abort" },
        "aria-label": `Abort the upload of ${u.name}`, onclick: () => u.xhr.abort(),
      }, "Abort")),
    h("span", { class: "progress" }, bar, text));
  u.el = { li, bar, text };
  return li;
}

function renderUpload(u) {
  if (!u.el) return;
  u.el.bar.max = u.total || 1;
  u.el.bar.value = u.loaded;
  const speed = u.speed ? ` · ${size(u.speed)}/s` : "";
  u.el.text.textContent = `${size(u.loaded)} of ${size(u.total)} · ${percent(u.loaded, u.total)}%${speed}`;
}

// Local uploads (with Abort), then other clients' uploads of images not listed yet.
function renderUploads() {
  if (state) renderImages();
  const ul = $("uploads");
  const rows = [];
  for (const u of uploads.values()) {
    rows.push(u.el ? u.el.li : uploadRow(u));
    renderUpload(u);
  }
  const local = new Set([...uploads.values()].map((u) => u.name));
  const listed = new Set(((state && state.images) || []).filter((i) => !i.complete).map((i) => i.name));
  for (const t of transfers.values()) {
    if (t.kind !== "upload" || local.has(t.name) || listed.has(t.name)) continue;
    rows.push(h("li", { dataset: { transfer: t.id } },
      h("span", { class: "name" }, t.name),
      h("span", { class: "buttons" },
        h("button", {
          type: "button", class: "danger", dataset: { key: `abort-${t.id}` }, "aria-label": `Abort the upload of ${t.name}`,
          onclick: (e) => act(e.currentTarget, () => api("DELETE", `/api/transfers/${encodeURIComponent(t.id)}`)),
        }, "Abort")),
      h("span", { class: "progress" },
        h("progress", { max: t.total || 1, value: t.bytes, "aria-label": `Upload of ${t.name}` }),
        h("span", { class: "small muted" },
          `${size(t.bytes)}${t.total ? ` of ${size(t.total)} · ${percent(t.bytes, t.total)}%` : ""} · from another client`))));
  }
  redraw(ul, () => rows);
}

$("file").addEventListener("change", (e) => {
  for (const f of e.target.files) upload(f, false);
  e.target.value = "";
});
const drop = $("drop");
["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
  e.preventDefault();
  drop.classList.add("over");
}));
["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  for (const f of e.dataTransfer.files) upload(f, false);
});
// A file dropped next to the zone would otherwise make the browser leave the page.
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());
window.addEventListener("beforeunload", (e) => { if (uploads.size) { e.preventDefault(); e.returnValue = ""; } });

/* ---------- creating flash images ---------- */

$("create").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("create-name").value.trim();
  const sizeText = $("create-size").value.trim().replace(/\s+/g, "");
  const body = {
    name, size: /^[0-9]+$/.test(sizeText) ? Number(sizeText) : sizeText,
    filesystem: $("create-fs").value, partitioned: $("create-part").checked,
  };
  act($("create-button"), async () => {
    await api("POST", "/api/images/create", body);
    showNotice(`${name} was created.`);
    $("create-name").value = "";
  });
});

/* ---------- live updates ---------- */

function setLive(kind, text) {
  $("live").querySelector(".dot").className = "dot " + kind;
  $("live").lastElementChild.textContent = text;
}

function onEvent(type, data) {
  let value;
  try { value = JSON.parse(data); } catch (e) { return; }
  if (type === "state") {
    applyState(value);
  } else if (type === "transfer") {
    transfers.set(value.id, value);
    renderImages();
    renderUploads();
  } else if (type === "transfer-end") {
    transfers.delete(value.id);
    renderImages();
    renderUploads();
    if (value.result === "failed" && value.error && value.error.message) showError(value.error.message);
  }
}

let stream = null;        // the running event stream: anything with close()
let retryDelay = 1000;

function reconnect() {
  if (stream) { stream.close(); stream = null; }
  setLive("warn", "Reconnecting…");
  setTimeout(startEvents, retryDelay);
  retryDelay = Math.min(retryDelay * 2, 15000);
}

function live() {
  retryDelay = 1000;
  setLive("ok", "Live");
}

// EventSource cannot send a token: then the stream is read with fetch(). Either way a lost stream is retried.
function startEvents() {
  if (stream) stream.close();
  if (!token && window.EventSource) {
    const es = new EventSource(url("/api/events"));
    stream = es;
    es.onopen = live;
    for (const t of ["state", "transfer", "transfer-end"]) es.addEventListener(t, (e) => onEvent(t, e.data));
    es.onerror = () => {
      if (stream !== es) return;
      if (es.readyState === EventSource.CLOSED) {
        // An error answer (such as 401) closes it for good: find out why through a plain request.
        api("GET", "/api/state").then(applyState, (e) => showError(e.message)).finally(reconnect);
      } else {
        setLive("warn", "Reconnecting…");
      }
    };
    return;
  }
  const controller = new AbortController();
  const s = { close: () => controller.abort() };
  stream = s;
  readEvents(controller).catch(async (e) => {
    if (stream !== s) return;
    if (e && e.auth) await askToken(!!token);
    reconnect();
  });
}

async function readEvents(controller) {
  let watchdog;
  // The server pings every 15 s: a stream silent for longer than that is dead even if TCP has not noticed.
  const arm = () => { clearTimeout(watchdog); watchdog = setTimeout(() => controller.abort(), 45000); };
  arm();
  try {
    const res = await fetch(url("/api/events"), {
      headers: authHeaders({ Accept: "text/event-stream" }), signal: controller.signal, cache: "no-store",
    });
    if (bearerChallenge(res)) throw { auth: true };
    if (!res.ok) { showError((await errorOf(res)).message); throw new Error("events"); }
    live();
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "", type = "message", data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the event stream ended");
      arm();
      buffer += decoder.decode(value, { stream: true });
      let n;
      while ((n = buffer.indexOf("\n")) >= 0) {
        let line = buffer.slice(0, n);
        buffer = buffer.slice(n + 1);
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line === "") {
          if (data.length) onEvent(type, data.join("\n"));
          type = "message";
          data = [];
        } else if (!line.startsWith(":")) {
          const c = line.indexOf(":");
          const field = c < 0 ? line : line.slice(0, c);
          let v = c < 0 ? "" : line.slice(c + 1);
          if (v.startsWith(" ")) v = v.slice(1);
          if (field === "event") type = v;
          else if (field === "data") data.push(v);
        }
      }
    }
  } finally {
    clearTimeout(watchdog);
  }
}

/* ---------- start ---------- */

(function start() {
  // A token handed over in the address (#token=...) is kept and taken out of the address bar.
  const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (m) {
    token = decodeURIComponent(m[1]);
    localStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, "", location.pathname + location.search);
  }
  api("GET", "/api/state").then(applyState, (e) => showError(e.message)).finally(startEvents);
})();
</script>
</body>
</html>
"""#
}
