// colorquant page: one image or many, compressed with one set of settings; a split slider to
// compare, a queue for many, one ZIP to download them all. No framework, no network beyond
// this server. Controls and limits come from the server (GET /api/methods, /api/settings).
"use strict";

const $ = (id) => document.getElementById(id);
let methods = [];    // GET /api/methods: the registry of methods and their options
let limits = null;   // GET /api/settings: this server's limits
let single = null;   // the one image shown: {file, originalUrl, compressedUrl}
let batch = null;    // the queue: {items, cancelled}
const CONCURRENCY = 2;  // the server processes two images at a time; more would only wait

function kib(bytes) { return (bytes / 1024).toFixed(1) + " KiB"; }
// "98.2 KiB of 100.0 KiB (98%)": the output's bytes against the budget it had to fit
function budgetText(record) {
  if (record.maxBytes === null) return "none";
  return `${kib(record.bytesOut)} of ${kib(record.maxBytes)} (${(100 * record.bytesOut / record.maxBytes).toFixed(0)}%)`;
}
function mib(bytes) { return (bytes / 1048576).toFixed(1) + " MiB"; }
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function setBusy(busy) { $("busy").hidden = !busy; }

function formData(file, extra = {}) {
  const data = new FormData();
  data.append("file", file, file.name);
  const mode = document.querySelector('input[name="mode"]:checked').value;
  data.append("colors", mode === "colors" ? $("colors").value : "256");
  if (mode === "target") data.append($("target-metric").value, $("target").value);
  if (mode === "size") data.append("max_size", $("max-size").value);
  data.append("speed", $("speed").value);
  data.append("metrics", "ssim,ssimulacra2");
  // unticked: none, or the level a budget or a SSIMULACRA2 target finds best
  if ($("dither").checked) data.append("dither", "1");
  data.append("color_space", $("space").value);
  for (const [key, value] of Object.entries(extra)) data.append(key, value);
  return data;
}

function chosenMethod() {
  const name = $("method").value;
  const fields = { method: name };
  for (const select of $("method-options").querySelectorAll("select")) {
    if (select.dataset.method === name) fields[select.name] = select.value;
  }
  return fields;
}

function showMethodOptions() {
  const method = methods.find((m) => m.name === $("method").value);
  $("method-options").replaceChildren(...(method ? method.options : []).map((option) => {
    const label = document.createElement("label");
    const select = document.createElement("select");
    select.name = option.name;
    select.dataset.method = method.name;
    for (const choice of option.choices) {
      const item = document.createElement("option");
      item.value = item.textContent = choice;
      item.selected = choice === option.default;
      select.append(item);
    }
    select.addEventListener("change", settingsChanged);
    label.append(option.name.replace(/_/g, " ") + " ", select);
    return label;
  }));
}

async function loadServerLists() {
  const [methodsResponse, settingsResponse] = await Promise.all([fetch("/api/methods"), fetch("/api/settings")]);
  methods = await methodsResponse.json();
  const settings = await settingsResponse.json();
  limits = settings.limits;
  $("method").replaceChildren(...methods.map((method) => {
    const item = document.createElement("option");
    item.value = method.name;
    item.textContent = method.title;
    item.title = method.description;
    return item;
  }));
  showMethodOptions();
  const field = (name) => settings.fields.find((f) => f.name === name);
  const speed = field("speed");
  Object.assign($("speed"), { min: speed.minimum, max: speed.maximum, value: speed.default });
  $("speed-value").textContent = speed.default;
  $("speed-hint").textContent = `${speed.minimum} slowest, best; ${speed.maximum} fastest`;
  // the targets people read (PSNR, SSIMULACRA2) first; every target the server offers
  const targets = settings.fields.filter((f) => f.name.startsWith("target_"));
  const order = ["target_psnr", "target_ssimulacra2"];
  targets.sort((a, b) => (order.indexOf(a.name) + 1 || 99) - (order.indexOf(b.name) + 1 || 99));
  const starting = { target_psnr: 35, target_ssimulacra2: 70 };
  $("target-metric").replaceChildren(...targets.map((target) => {
    const item = document.createElement("option");
    item.value = target.name;
    item.textContent = target.title + (target.unit ? ` (${target.unit})` : "");
    item.dataset.min = target.minimum;
    item.dataset.max = target.maximum;
    item.dataset.value = starting[target.name] ?? target.maximum;
    return item;
  }));
  targetMetricChanged(false);
  $("limits").textContent = `Up to ${limits.batch_max_files} images and ${mib(limits.batch_max_bytes)} at once; ` +
    `each image up to ${mib(limits.max_upload_bytes)} and ${(limits.max_pixels / 1e6).toFixed(0)} megapixels.`;
}

function titleOf(name) {
  const method = methods.find((m) => m.name === name);
  return method ? method.title : name;
}

async function errorText(response) {
  try { return (await response.json()).error || response.statusText; }
  catch { return response.statusText; }
}

// One request to compress; waits and tries again while the server is busy (503).
async function requestCompressed(file, signal) {
  for (;;) {
    const response = await fetch("/api/compress", { method: "POST", body: formData(file, chosenMethod()), signal });
    if (response.status !== 503) return response;
    await sleep(1000 * (Number(response.headers.get("Retry-After")) || 1));
  }
}

async function recordOf(response, file) {
  const header = (name) => response.headers.get("X-Colorquant-" + name);
  const disposition = response.headers.get("Content-Disposition") || "";
  return {
    file, blob: await response.blob(),
    name: (disposition.match(/filename="([^"]+)"/) || [])[1] || "compressed.png",
    bytesIn: Number(header("Bytes-In")), bytesOut: Number(header("Bytes-Out")), colors: header("Colors"),
    maxBytes: header("Max-Bytes") ? Number(header("Max-Bytes")) : null, dither: Number(header("Dither") || 0),
    psnr: header("Psnr"), ssim: header("Ssim"), ssimulacra2: header("Ssimulacra2"),
    seconds: Number(header("Seconds")), palette: header("Palette").split(","),
  };
}

// The slider view of one result (the one image, or an image of the queue).
function showResult(record, originalUrl) {
  if (showResult.compressedUrl) URL.revokeObjectURL(showResult.compressedUrl);
  showResult.compressedUrl = URL.createObjectURL(record.blob);
  $("original").src = originalUrl;
  $("compressed").src = showResult.compressedUrl;
  $("result-name").textContent = `${record.file.name} → ${record.name}`;
  $("bytes-in").textContent = kib(record.bytesIn);
  $("bytes-out").textContent = kib(record.bytesOut);
  $("ratio").textContent = (100 * record.bytesOut / record.bytesIn).toFixed(1) + "%";
  $("colors-out").textContent = record.colors + (record.dither ? `, dithered at ${record.dither}` : "");
  $("budget").textContent = budgetText(record);
  $("psnr").textContent = record.psnr === "inf" ? "lossless" : Number(record.psnr).toFixed(2) + " dB";
  $("ssim").textContent = record.ssim ? Number(record.ssim).toFixed(4) : "n/a";
  $("ssimulacra2").textContent = record.ssimulacra2 ? Number(record.ssimulacra2).toFixed(1) : "n/a";
  $("seconds").textContent = record.seconds.toFixed(2) + " s";
  $("palette").replaceChildren(...record.palette.map((hex) => {
    const swatch = document.createElement("span");
    swatch.style.background = hex; swatch.title = hex; return swatch;
  }));
  const link = $("download");
  link.href = showResult.compressedUrl; link.download = record.name;
  link.classList.remove("disabled"); link.removeAttribute("aria-disabled"); link.removeAttribute("tabindex");
  $("result").hidden = false;
}

// --------------------------------------------------------------------------- one image

function chooseOne(file) {
  cancelBatch();
  $("queue").hidden = true;
  if (single) URL.revokeObjectURL(single.originalUrl);
  single = { file, originalUrl: URL.createObjectURL(file) };
  $("drop-text").textContent = file.name + " (" + kib(file.size) + ")";
  $("run").disabled = $("compare").disabled = false;
  compressOne();
}

async function compressOne() {
  if (!single) return;
  setStatus("Compressing…");
  setBusy(true);
  $("run").disabled = true;
  // settings changed while a request was in flight: only the newest request's answer is shown
  const request = compressOne.latest = (compressOne.latest || 0) + 1;
  try {
    const response = await requestCompressed(single.file);
    if (request !== compressOne.latest) return;
    if (!response.ok) { setStatus(await errorText(response), true); return; }
    const record = await recordOf(response, single.file);
    if (request !== compressOne.latest) return;
    showResult(record, single.originalUrl);
    setStatus("Done: " + record.name);
  } catch (error) {
    if (request === compressOne.latest) setStatus("Request failed: " + error, true);
  } finally {
    if (request === compressOne.latest) {  // a newer request is still working otherwise
      setBusy(false);
      $("run").disabled = false;
    }
  }
}

async function compareAll() {
  if (!single) return;
  setStatus("Running every method…");
  setBusy(true);
  $("compare").disabled = true;
  try {
    const response = await fetch("/api/compare", { method: "POST", body: formData(single.file) });
    if (!response.ok) { setStatus(await errorText(response), true); return; }
    const records = await response.json();
    $("comparison-grid").replaceChildren(...records.map((record) => {
      const figure = document.createElement("figure");
      const image = document.createElement("img");
      image.src = "data:image/png;base64," + record.png_base64;
      image.alt = titleOf(record.method);
      const caption = document.createElement("figcaption");
      const psnr = record.psnr === null ? "lossless" : record.psnr.toFixed(2) + " dB";
      caption.textContent = `${titleOf(record.method)}: ${record.colors} colours, PSNR ${psnr}, ` +
        `SSIMULACRA2 ${record.ssimulacra2 === null ? "n/a" : record.ssimulacra2.toFixed(1)}, ${kib(record.bytes_out)} ` +
        `(${(100 * record.ratio).toFixed(1)}%), ${record.seconds.toFixed(2)} s`;
      const swatches = document.createElement("div");
      swatches.className = "swatches";
      swatches.replaceChildren(...record.palette.map((hex) => {
        const swatch = document.createElement("span"); swatch.style.background = hex; return swatch;
      }));
      figure.replaceChildren(image, caption, swatches);
      return figure;
    }));
    $("comparison").hidden = false;
    setStatus("Compared every method");
  } catch (error) {
    setStatus("Request failed: " + error, true);
  } finally {
    setBusy(false);
    $("compare").disabled = false;
  }
}

// --------------------------------------------------------------------------- many images

function chooseMany(files) {
  if (!limits) return;
  const total = files.reduce((sum, file) => sum + file.size, 0);
  // over a limit: say so and start nothing
  if (files.length > limits.batch_max_files) {
    setStatus(`${files.length} images chosen; this server takes at most ${limits.batch_max_files} at once. Nothing was started.`, true);
    return;
  }
  if (total > limits.batch_max_bytes) {
    setStatus(`${mib(total)} chosen; this server takes at most ${mib(limits.batch_max_bytes)} at once. Nothing was started.`, true);
    return;
  }
  cancelBatch();
  single = null;
  $("run").disabled = $("compare").disabled = true;
  $("comparison").hidden = true;
  $("drop-text").textContent = `${files.length} images (${mib(total)})`;
  batch = { cancelled: false, items: files.map((file, index) => ({
    index, file, path: file.webkitRelativePath || file.name, state: "waiting", controller: null })) };
  $("queue-list").replaceChildren(...batch.items.map(queueRow));
  $("queue").hidden = false;
  $("cancel").disabled = false;
  $("download-all").disabled = true;
  setStatus(`Compressing ${files.length} images…`);
  setBusy(true);
  updateSummary();
  for (let worker = 0; worker < CONCURRENCY; worker++) pump(batch);
}

function queueRow(item) {
  const row = document.createElement("li");
  row.id = "item-" + item.index;
  row.className = "waiting";
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = item.path;
  const state = document.createElement("span");
  state.className = "state";
  state.textContent = "waiting";
  const progress = document.createElement("progress");
  progress.hidden = true;
  progress.setAttribute("aria-label", "compressing " + item.path);
  const view = document.createElement("button");
  view.textContent = "View";
  view.hidden = true;
  view.setAttribute("aria-label", "view " + item.path);
  view.addEventListener("click", () => viewItem(item));
  row.replaceChildren(name, state, progress, view);
  return row;
}

function setItemState(item, state, text) {
  item.state = state;
  const row = $("item-" + item.index);
  row.className = state;
  row.querySelector(".state").textContent = text || state;
  row.querySelector("progress").hidden = state !== "working";
  row.querySelector("button").hidden = state !== "done";
  updateSummary();
}

async function pump(run) {
  for (;;) {
    if (run.cancelled) return;
    const item = run.items.find((candidate) => candidate.state === "waiting");
    if (!item) break;
    setItemState(item, "working");
    item.controller = new AbortController();
    try {
      const response = await requestCompressed(item.file, item.controller.signal);
      if (response.ok) {
        item.record = await recordOf(response, item.file);
        const saved = 100 * item.record.bytesOut / item.record.bytesIn;
        const budget = item.record.maxBytes === null ? "" : `, ${budgetText(item.record)}`;
        setItemState(item, "done", `done: ${kib(item.record.bytesIn)} → ${kib(item.record.bytesOut)} (${saved.toFixed(0)}%)${budget}`);
      } else {
        setItemState(item, "failed", "failed: " + await errorText(response));
      }
    } catch (error) {
      if (run.cancelled) return;
      setItemState(item, "failed", "failed: " + error);
    }
  }
  if (run === batch && !run.items.some((item) => item.state === "waiting" || item.state === "working")) finishBatch(run);
}

function finishBatch(run) {
  if (run.finished) return;
  run.finished = true;
  setBusy(false);
  $("cancel").disabled = true;
  const done = run.items.filter((item) => item.state === "done");
  $("download-all").disabled = done.length === 0;
  setStatus(run.cancelled ? "Cancelled" : "Finished");
  updateSummary();
}

function cancelBatch() {
  if (!batch || batch.finished) return;
  batch.cancelled = true;
  for (const item of batch.items) {
    if (item.state === "working" && item.controller) item.controller.abort();
    if (item.state === "waiting" || item.state === "working") setItemState(item, "cancelled");
  }
  finishBatch(batch);
}

function updateSummary() {
  if (!batch) return;
  const count = (state) => batch.items.filter((item) => item.state === state).length;
  const done = batch.items.filter((item) => item.state === "done");
  const before = done.reduce((sum, item) => sum + item.record.bytesIn, 0);
  const after = done.reduce((sum, item) => sum + item.record.bytesOut, 0);
  const finished = batch.items.length - count("waiting") - count("working");
  $("queue-progress").max = batch.items.length;
  $("queue-progress").value = finished;
  let text = `${done.length} done, ${count("failed")} failed`;
  if (count("cancelled")) text += `, ${count("cancelled")} cancelled`;
  if (count("waiting") + count("working")) text += `, ${count("waiting") + count("working")} to go`;
  if (done.length) text += `; ${kib(before)} → ${kib(after)} (${(100 * after / before).toFixed(1)}%)`;
  $("queue-summary").textContent = text;
}

function viewItem(item) {
  if (item.originalUrl === undefined) item.originalUrl = URL.createObjectURL(item.file);
  showResult(item.record, item.originalUrl);
  $("result").scrollIntoView({ block: "nearest" });
  $("handle").focus({ preventScroll: true });
}

function uniqueNames(items) {
  // the server's names (the command line's); a folder's images keep their folder
  const taken = new Set();
  return items.map((item) => {
    const folder = item.path.includes("/") ? item.path.slice(0, item.path.lastIndexOf("/") + 1) : "";
    let name = folder + item.record.name;
    for (let n = 2; taken.has(name); n++) name = folder + item.record.name.replace(/(\.[^.]+)$/, `-${n}$1`);
    taken.add(name);
    return { name, blob: item.record.blob };
  });
}

async function downloadAll() {
  if (!batch) return;
  $("download-all").disabled = true;
  setStatus("Packing the ZIP…");
  setBusy(true);
  try {
    const archive = await zipBlobs(uniqueNames(batch.items.filter((item) => item.state === "done")));
    const link = document.createElement("a");
    link.href = URL.createObjectURL(archive);
    link.download = "colorquant.zip";
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    setStatus("Downloaded colorquant.zip");
  } finally {
    setBusy(false);
    $("download-all").disabled = false;
  }
}

// --------------------------------------------------------------------------- input

function choose(files) {
  files = Array.from(files || []);
  if (files.length === 1) chooseOne(files[0]);
  else if (files.length > 1) chooseMany(files);
}

// Files of dropped folders, where the browser lists them (webkitGetAsEntry).
async function droppedFiles(transfer) {
  const entries = Array.from(transfer.items || []).map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
  if (!entries.length || entries.every((entry) => entry.isFile)) return Array.from(transfer.files);
  const files = [];
  const walk = async (entry, prefix) => {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      files.push(prefix ? new File([file], file.name, { type: file.type }) : file);
      if (prefix) Object.defineProperty(files[files.length - 1], "webkitRelativePath", { value: prefix + file.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batchOfEntries = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batchOfEntries.length) break;
        for (const child of batchOfEntries) await walk(child, prefix + entry.name + "/");
      }
    }
  };
  for (const entry of entries) await walk(entry, "");
  return files.filter((file) => !file.name.startsWith("."));
}

function settingsChanged() {
  if (single) compressOne();
}

function targetMetricChanged(recompress = true) {
  const chosen = $("target-metric").selectedOptions[0];
  if (!chosen) return;
  Object.assign($("target"), { min: chosen.dataset.min, max: chosen.dataset.max, value: chosen.dataset.value,
                               step: Number(chosen.dataset.max) > 10 ? "0.5" : "0.001" });
  if (recompress) settingsChanged();
}

function setSplit(percent) {
  percent = Math.max(0, Math.min(100, percent));
  $("clip").style.clipPath = `inset(0 0 0 ${percent}%)`;
  $("handle").style.left = percent + "%";
  $("handle").setAttribute("aria-valuenow", String(Math.round(percent)));
}

function splitFromPointer(event) {
  const box = $("stage").getBoundingClientRect();
  setSplit(100 * (event.clientX - box.left) / box.width);
}

function applyZoom() {
  const zoom = $("zoom").value;
  const stage = $("stage");
  stage.style.width = zoom === "fit" ? "100%" : ($("original").naturalWidth * Number(zoom)) + "px";
  stage.classList.toggle("fit", zoom === "fit");
}

$("file").addEventListener("change", (event) => { choose(event.target.files); event.target.value = ""; });
$("folder").addEventListener("change", (event) => { choose(event.target.files); event.target.value = ""; });
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", async (event) => {
  event.preventDefault(); drop.classList.remove("over");
  choose(await droppedFiles(event.dataTransfer));
});
$("colors").addEventListener("input", () => { $("colors-value").textContent = $("colors").value; });
$("speed").addEventListener("input", () => { $("speed-value").textContent = $("speed").value; });
for (const id of ["colors", "speed", "target", "dither", "space", "max-size"]) $(id).addEventListener("change", settingsChanged);
for (const radio of document.querySelectorAll('input[name="mode"]')) {
  radio.addEventListener("change", () => {
    const mode = document.querySelector('input[name="mode"]:checked').value;
    $("target").disabled = $("target-metric").disabled = mode !== "target";
    $("max-size").disabled = mode !== "size";
    settingsChanged();
  });
}
$("target-metric").addEventListener("change", () => targetMetricChanged());
$("method").addEventListener("change", () => { showMethodOptions(); settingsChanged(); });
$("run").addEventListener("click", compressOne);
$("compare").addEventListener("click", compareAll);
$("cancel").addEventListener("click", cancelBatch);
$("download-all").addEventListener("click", downloadAll);
$("zoom").addEventListener("change", applyZoom);
$("original").addEventListener("load", applyZoom);

const handle = $("handle");
// Pointer events cover mouse, pen and touch alike: drag anywhere on the image.
$("stage").addEventListener("pointerdown", (event) => {
  const stage = $("stage");
  stage.setPointerCapture(event.pointerId);
  splitFromPointer(event);
  const move = (e) => splitFromPointer(e);
  const stop = () => { stage.removeEventListener("pointermove", move); stage.removeEventListener("pointerup", stop); };
  stage.addEventListener("pointermove", move);
  stage.addEventListener("pointerup", stop);
});
handle.addEventListener("keydown", (event) => {
  const now = Number(handle.getAttribute("aria-valuenow"));
  const steps = { ArrowLeft: -5, ArrowDown: -5, ArrowRight: 5, ArrowUp: 5, PageDown: -25, PageUp: 25 };
  if (event.key in steps) { setSplit(now + steps[event.key]); event.preventDefault(); }
  if (event.key === "Home") { setSplit(0); event.preventDefault(); }
  if (event.key === "End") { setSplit(100); event.preventDefault(); }
});
setSplit(50);
loadServerLists().catch((error) => setStatus("Could not reach the server: " + error, true));
