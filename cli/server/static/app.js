"use strict";
// retr web UI: plain JS, no build step, nothing fetched from outside this server.

const $ = (id) => document.getElementById(id);
const state = { file: null, id: null, box: null, info: null };

// ---- API ---------------------------------------------------------------------------------------------

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error("cannot reach the retr server (is `retr serve` still running?)");
  }
  if (response.status === 401) {
    await askKey();
    return api(path, options);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

let keyPrompt = null; // one prompt however many requests were refused at once
let keyGiven = false;

function askKey() {
  if (keyPrompt) return keyPrompt;
  keyPrompt = new Promise((resolve) => {
    const dialog = $("keyform");
    $("key-note").textContent = keyGiven
      ? "That key was not accepted. Enter this server's API key (--api-key or RETR_API_KEY)."
      : "This server needs an API key.";
    $("key").value = "";
    dialog.onclose = () => {
      document.cookie = `retr_key=${encodeURIComponent($("key").value)}; path=/; SameSite=Strict`;
      keyGiven = true;
      keyPrompt = null;
      // images refused before the key was given (the query image, thumbnails): ask for them again
      for (const img of document.querySelectorAll("img[src^='/api/']")) {
        if (img.complete && img.naturalWidth === 0) img.src = img.getAttribute("src");
      }
      resolve();
    };
    dialog.showModal();
  });
  return keyPrompt;
}

function confirmBox(text, okLabel) {
  return new Promise((resolve) => {
    const dialog = $("confirm");
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = okLabel;
    dialog.onclose = () => resolve(dialog.returnValue === "ok");
    dialog.returnValue = "";
    dialog.showModal();
  });
}

const thumbUrl = (id, size = 256) => `/api/images/${id}/thumbnail?size=${size}`;
const baseName = (p) => p.split("/").pop();
const folderOf = (p) => p.split("/").slice(0, -1).join("/") || "/";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "style") node.style.cssText = v; // CSSOM, which the page's CSP allows (a style attribute it refuses)
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

// a permalink's k may be one the list does not offer: add it (a select set to a missing value reads "")
function setK(k) {
  const select = $("k");
  if (!/^[0-9]{1,4}$/.test(k)) return;
  if (![...select.options].some((o) => o.value === k)) select.append(new Option(k, k));
  select.value = k;
}

function setStatus(id, text, loading = false) {
  const node = $(id);
  node.textContent = text;
  node.classList.toggle("loading", loading);
}

function showBanner(text, ok = false) {
  const node = $("banner");
  node.textContent = text;
  node.classList.toggle("ok", ok);
  node.hidden = !text;
}

// ---- pages -------------------------------------------------------------------------------------------

function route() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query || "");
  const page = path === "/duplicates" ? "duplicates" : path === "/clusters" ? "clusters" : "search";
  for (const p of ["search", "duplicates", "clusters"]) $(`page-${p}`).hidden = p !== page;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page);
  showBanner("");
  if (page === "duplicates") return loadDuplicates();
  if (page === "clusters") return loadClusters();
  if (params.has("id")) {
    state.file = null;
    state.id = Number(params.get("id"));
    if (params.has("k")) setK(params.get("k"));
    state.box = params.has("box") ? params.get("box").split(",").map(Number) : null;
    $("regions").checked = params.get("regions") === "1";
    showQuery(`/api/images/${state.id}`, `catalog image ${state.id}`);
    return search();
  }
}

async function loadInfo() {
  try {
    state.info = await api("/api/info");
    $("info").textContent = `${state.info.images.toLocaleString()} images · ${state.info.model}`;
    $("regions-label").hidden = !state.info.regions;
  } catch (err) {
    $("info").textContent = "";
    showBanner(err.message);
  }
}

// ---- search ------------------------------------------------------------------------------------------

function showQuery(src, name) {
  $("query").hidden = false;
  $("query-img").src = src;
  $("query-name").textContent = name;
  drawBox();
}

function pick(file) {
  if (!file) return;
  if (!file.type.startsWith("image/") && file.type !== "") {
    showBanner(`${file.name} is not an image (${file.type})`);
    return;
  }
  state.file = file;
  state.id = null;
  state.box = null;
  $("permalink").hidden = true;
  if (location.hash.startsWith("#/search")) history.replaceState(null, "", "#/");
  showQuery(URL.createObjectURL(file), file.name);
  search();
}

async function search() {
  const k = $("k").value;
  const params = new URLSearchParams({ k });
  if (state.box) params.set("box", state.box.map((v) => Math.round(v)).join(","));
  if ($("regions").checked) params.set("regions", "true");
  $("results").replaceChildren();
  showBanner("");
  setStatus("status", "Searching…", true);
  const started = performance.now();
  try {
    let body;
    if (state.id !== null) {
      params.set("id", state.id);
      body = await api(`/api/search?${params}`);
      const link = new URLSearchParams({ id: state.id, k });
      if (state.box) link.set("box", params.get("box"));
      if ($("regions").checked) link.set("regions", "1");
      $("permalink").href = `#/search?${link}`;
      $("permalink").hidden = false;
    } else {
      const form = new FormData();
      form.append("image", state.file, state.file.name);
      body = await api(`/api/search?${params}`, { method: "POST", body: form });
      $("permalink").hidden = true;
    }
    const ms = Math.round(performance.now() - started);
    setStatus("status", `${body.results.length} results in ${ms} ms`);
    renderResults(body.results);
    const self = body.results.find((hit) => hit.id === state.id);
    if (self) $("query-name").textContent = `${baseName(self.path)} · catalog image ${state.id}`;
  } catch (err) {
    setStatus("status", "");
    showBanner(`Search failed: ${err.message}`);
  }
}

function renderResults(results) {
  const cards = results.map((hit) => {
    const img = el("img", { src: thumbUrl(hit.id), alt: baseName(hit.path), loading: "lazy" });
    const frame = el("div", { class: "overlay" }, img);
    if (hit.region) addRegionBox(frame, img, hit.id, hit.region.box);
    return el("button", {
      class: "card", title: `${hit.path}\nclick: more like this`, "data-id": hit.id,
      "aria-label": `result ${hit.rank}: ${baseName(hit.path)}`,
      onclick: () => { location.hash = `#/search?id=${hit.id}&k=${$("k").value}`; },
    },
    el("div", { class: "thumb" }, frame),
    el("div", { class: "meta" },
      el("div", { class: "row" }, el("span", { class: "rank" }, `#${hit.rank}`),
        el("span", { class: "score" }, hit.score.toFixed(3))),
      el("div", { class: "name" }, baseName(hit.path)),
      el("div", { class: "folder" }, folderOf(hit.path))));
  });
  $("results").replaceChildren(...cards);
  if (!results.length) $("results").append(el("div", { class: "empty" }, "No results."));
}

function addRegionBox(frame, img, id, box) {
  // the box is in the original image's pixels: scale it by the original's size
  const full = new Image();
  full.onload = () => {
    const sx = 100 / full.naturalWidth, sy = 100 / full.naturalHeight;
    frame.append(el("div", { class: "box", style:
      `left:${box[0] * sx}%;top:${box[1] * sy}%;width:${(box[2] - box[0]) * sx}%;height:${(box[3] - box[1]) * sy}%` }));
  };
  full.src = `/api/images/${id}`;
}

// box drawing on the query image, in the original image's pixels
function drawBox() {
  const layer = $("draw");
  layer.replaceChildren();
  $("box-actions").hidden = !state.box;
  const img = $("query-img");
  if (!state.box || !img.naturalWidth) return;
  const sx = img.clientWidth / img.naturalWidth, sy = img.clientHeight / img.naturalHeight;
  const [x0, y0, x1, y1] = state.box;
  layer.append(el("div", { class: "box", style:
    `left:${x0 * sx}px;top:${y0 * sy}px;width:${(x1 - x0) * sx}px;height:${(y1 - y0) * sy}px` }));
}

function setupDrawing() {
  const layer = $("draw"), img = $("query-img");
  let start = null;
  const point = (e) => {
    const r = layer.getBoundingClientRect();
    return [Math.min(Math.max(e.clientX - r.left, 0), r.width) * img.naturalWidth / r.width,
      Math.min(Math.max(e.clientY - r.top, 0), r.height) * img.naturalHeight / r.height];
  };
  layer.addEventListener("pointerdown", (e) => { start = point(e); layer.setPointerCapture(e.pointerId); });
  layer.addEventListener("pointermove", (e) => {
    if (!start) return;
    const p = point(e);
    state.box = [Math.min(start[0], p[0]), Math.min(start[1], p[1]), Math.max(start[0], p[0]), Math.max(start[1], p[1])];
    drawBox();
  });
  layer.addEventListener("pointerup", () => {
    start = null;
    if (state.box && (state.box[2] - state.box[0] < 4 || state.box[3] - state.box[1] < 4)) state.box = null;
    drawBox();
  });
  img.addEventListener("load", drawBox);
  $("box-search").addEventListener("click", search);
  $("box-clear").addEventListener("click", () => { state.box = null; drawBox(); search(); });
  $("k").addEventListener("change", () => (state.file || state.id !== null) && search());
  $("regions").addEventListener("change", () => (state.file || state.id !== null) && search());
}

function setupDrop() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => pick(e.target.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    pick(e.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (e) => {
    const item = [...e.clipboardData.items].find((i) => i.type.startsWith("image/"));
    if (item) {
      if (!location.hash.startsWith("#/search") && location.hash !== "#/" && location.hash) location.hash = "#/";
      pick(item.getAsFile());
    }
  });
}

// ---- duplicates --------------------------------------------------------------------------------------

function member(path, ids, label, extra, cls = "") {
  const id = ids[path];
  return el("div", { class: `member ${cls}`, title: path },
    el("div", { class: "thumb" }, id !== undefined ? el("img", { src: thumbUrl(id), alt: baseName(path), loading: "lazy" })
      : el("span", { class: "folder" }, "not in catalog")),
    el("div", { class: "meta" },
      el("div", { class: "row" }, el("span", { class: "badge" }, label), el("span", { class: "score" }, extra || "")),
      el("div", { class: "name" }, baseName(path)),
      el("div", { class: "folder" }, folderOf(path))));
}

// a duplicate's badge names its kind (exact, copy, similar) and, when they differ, how it was found
function kindLabel(d) {
  return d.reason && d.reason !== d.kind ? `${d.kind} · ${d.reason}` : d.kind || d.reason;
}

function dupExtra(d) {
  return `distance ${d.distance}` + (d.inliers !== null && d.inliers !== undefined ? ` · ${d.inliers} inliers` : "");
}

async function loadDuplicates() {
  setStatus("dup-status", "Finding duplicates…", true);
  $("groups").replaceChildren();
  try {
    const body = await api("/api/duplicates");
    const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
    const similar = body.similar || [];
    setStatus("dup-status", `${plural(body.groups.length, "group")}, ${plural(body.n_duplicates, "duplicate")} ` +
      `among ${plural(body.n_images, "image")}` +
      (similar.length ? `; ${plural(similar.length, "similar group")} (other shots of one scene)` : ""));
    if (!body.groups.length && !similar.length) {
      $("groups").append(el("div", { class: "empty" }, "No duplicates found."));
      return;
    }
    const copies = body.groups.map((g, i) => {
      const n = g.duplicates.length;
      const button = el("button", { class: "danger", onclick: () => quarantine(g.keep, n) },
        `Quarantine ${n} duplicate${n > 1 ? "s" : ""}`);
      return el("section", { class: "group", "aria-label": `group ${i + 1}` },
        el("div", { class: "group-head" }, el("h2", {}, `Group ${i + 1} · keep ${baseName(g.keep)}`), button),
        el("div", { class: "strip" }, member(g.keep, body.ids, "kept", "", "kept"),
          ...g.duplicates.map((d) => member(d.path, body.ids, kindLabel(d), dupExtra(d), `kind-${d.kind}`))));
    });
    // other shots of one scene (burst or video frames, another viewpoint): listed, never quarantined from here
    const shots = similar.map((g, i) => el("section", { class: "group similar", "aria-label": `similar ${i + 1}` },
      el("div", { class: "group-head" }, el("h2", {}, `Similar ${i + 1} · other shots of ${baseName(g.keep)}`),
        el("span", { class: "note" }, "Not copies: kept")),
      el("div", { class: "strip" }, member(g.keep, body.ids, "kept", "", "kept"),
        ...g.duplicates.map((d) => member(d.path, body.ids, kindLabel(d), dupExtra(d), "kind-similar")))));
    $("groups").replaceChildren(...copies,
      ...(shots.length ? [el("h2", { class: "similar-head" }, "Similar: other shots of the same scene"), ...shots] : []));
  } catch (err) {
    setStatus("dup-status", "");
    showBanner(`Could not load duplicates: ${err.message}`);
  }
}

async function quarantine(keep, n) {
  if (!await confirmBox(`Move ${n} duplicate${n > 1 ? "s" : ""} of ${baseName(keep)} to the quarantine folder? ` +
      "You can undo this.", "Move to quarantine")) return;
  try {
    const report = await api("/api/duplicates/quarantine", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ keep }),
    });
    const bar = $("undo-bar");
    const undoButton = el("button", { onclick: () => undo(report.manifest) }, "Undo");
    bar.replaceChildren(el("span", {}, `Moved ${report.done.length} file${report.done.length === 1 ? "" : "s"} to quarantine` +
      (report.skipped.length ? ` (${report.skipped.length} left in place)` : "") + "."), undoButton);
    bar.hidden = false;
    await loadDuplicates();
  } catch (err) {
    showBanner(`Quarantine failed: ${err.message}`);
  }
}

async function undo(manifest) {
  if (!await confirmBox("Put the quarantined files back where they were?", "Undo")) return;
  try {
    const report = await api("/api/duplicates/undo", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ manifest }),
    });
    $("undo-bar").hidden = true;
    showBanner(`Restored ${report.done.length} file${report.done.length === 1 ? "" : "s"}.`, true);
    await loadDuplicates();
  } catch (err) {
    showBanner(`Undo failed: ${err.message}`);
  }
}

// ---- clusters ----------------------------------------------------------------------------------------

async function loadClusters() {
  setStatus("cl-status", "Loading clusters…", true);
  $("clusters").replaceChildren();
  try {
    const body = await api("/api/clusters");
    if (!body.run) {
      setStatus("cl-status", "");
      $("clusters").append(el("div", { class: "empty" }, "No clustering run yet. Run ",
        el("code", {}, "retr cluster --index INDEX"), " and reload this page."));
      return;
    }
    const run = body.run;
    setStatus("cl-status", `${body.clusters.length} clusters of ${run.n} images (${run.method}, k=${run.k})`);
    const shown = 23;
    $("clusters").replaceChildren(...body.clusters.map((c) => {
      const members = c.members.slice(0, shown).map((m) => el("div", {
        class: `member card ${m.medoid ? "medoid" : ""}`, title: m.path,
        onclick: () => { location.hash = `#/search?id=${m.id}`; },
      }, el("div", { class: "thumb" }, el("img", { src: thumbUrl(m.id, m.medoid ? 320 : 160), alt: baseName(m.path), loading: "lazy" })),
      el("div", { class: "meta" }, m.medoid ? el("span", { class: "badge medoid" }, "medoid") : null,
        el("div", { class: "name" }, baseName(m.path)))));
      if (c.members.length > shown) members.push(el("div", { class: "more" }, `+${c.members.length - shown} more`));
      return el("section", { class: "cluster" }, el("h2", {}, `Cluster ${c.cluster} · ${c.members.length} images`),
        el("div", { class: "strip" }, ...members));
    }));
  } catch (err) {
    setStatus("cl-status", "");
    showBanner(`Could not load clusters: ${err.message}`);
  }
}

// ---- start -------------------------------------------------------------------------------------------

setupDrop();
setupDrawing();
window.addEventListener("hashchange", route);
loadInfo();
route();
