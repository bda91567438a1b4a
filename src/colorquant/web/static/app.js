// colorquant page: upload, compress, compare with a split slider, download. No framework,
// no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
let chosenFile = null;
let originalUrl = null;
let compressedUrl = null;
let methods = [];  // from GET /api/methods: the server's registry of methods and their options

function kib(bytes) { return (bytes / 1024).toFixed(1) + " KiB"; }

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function formData(extra = {}) {
  const data = new FormData();
  data.append("file", chosenFile, chosenFile.name);
  const byTarget = document.querySelector('input[name="mode"]:checked').value === "target";
  data.append("colors", byTarget ? "256" : $("colors").value);
  if (byTarget) data.append("target_" + $("target-metric").value, $("target").value);
  data.append("metrics", "ssim,ssimulacra2");
  data.append("dither", $("dither").checked ? "1" : "0");
  data.append("color_space", $("space").value);
  for (const [key, value] of Object.entries(extra)) data.append(key, value);
  return data;
}

function methodOptions(name) {
  // The chosen method's own options (e.g. a mixture's covariance type), as form fields.
  const fields = {};
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
    select.addEventListener("change", compress);
    label.append(option.name.replace(/_/g, " ") + " ", select);
    return label;
  }));
}

async function loadMethods() {
  const response = await fetch("/api/methods");
  methods = await response.json();
  $("method").replaceChildren(...methods.map((method) => {
    const item = document.createElement("option");
    item.value = method.name;
    item.textContent = method.title;
    item.title = method.description;
    return item;
  }));
  showMethodOptions();
}

function titleOf(name) {
  const method = methods.find((m) => m.name === name);
  return method ? method.title : name;
}

async function errorText(response) {
  try { return (await response.json()).error || response.statusText; }
  catch { return response.statusText; }
}

function choose(file) {
  if (!file) return;
  chosenFile = file;
  if (originalUrl) URL.revokeObjectURL(originalUrl);
  originalUrl = URL.createObjectURL(file);
  $("original").src = originalUrl;
  $("drop-text").textContent = file.name + " (" + kib(file.size) + ")";
  $("run").disabled = false;
  $("compare").disabled = false;
  compress();
}

async function compress() {
  if (!chosenFile) return;
  setStatus("Compressing…");
  $("run").disabled = true;
  try {
    const response = await fetch("/api/compress", { method: "POST", body: formData({ method: $("method").value, ...methodOptions($("method").value) }) });
    if (!response.ok) { setStatus(await errorText(response), true); return; }
    const blob = await response.blob();
    if (compressedUrl) URL.revokeObjectURL(compressedUrl);
    compressedUrl = URL.createObjectURL(blob);
    $("compressed").src = compressedUrl;
    const header = (name) => response.headers.get("X-Colorquant-" + name);
    const bytesIn = Number(header("Bytes-In")), bytesOut = Number(header("Bytes-Out"));
    $("bytes-in").textContent = kib(bytesIn);
    $("bytes-out").textContent = kib(bytesOut);
    $("ratio").textContent = (100 * bytesOut / bytesIn).toFixed(1) + "%";
    $("colors-out").textContent = header("Colors");
    $("psnr").textContent = header("Psnr") === "inf" ? "lossless" : Number(header("Psnr")).toFixed(2) + " dB";
    $("ssim").textContent = header("Ssim") ? Number(header("Ssim")).toFixed(4) : "n/a";
    $("ssimulacra2").textContent = header("Ssimulacra2") ? Number(header("Ssimulacra2")).toFixed(1) : "n/a";
    $("seconds").textContent = Number(header("Seconds")).toFixed(2) + " s";
    const palette = $("palette");
    palette.replaceChildren(...header("Palette").split(",").map((hex) => {
      const swatch = document.createElement("span");
      swatch.style.background = hex; swatch.title = hex; return swatch;
    }));
    const disposition = response.headers.get("Content-Disposition") || "";
    const name = (disposition.match(/filename="([^"]+)"/) || [])[1] || "compressed.png";
    const link = $("download");
    link.href = compressedUrl; link.download = name; link.classList.remove("disabled");
    $("result").hidden = false;
    setStatus("Done: " + name);
  } catch (error) {
    setStatus("Request failed: " + error, true);
  } finally {
    $("run").disabled = false;
  }
}

async function compareAll() {
  setStatus("Running every method…");
  $("compare").disabled = true;
  try {
    const response = await fetch("/api/compare", { method: "POST", body: formData() });
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
    $("compare").disabled = false;
  }
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

$("file").addEventListener("change", (event) => choose(event.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault(); drop.classList.remove("over"); choose(event.dataTransfer.files[0]);
});
$("colors").addEventListener("input", () => { $("colors-value").textContent = $("colors").value; });
$("colors").addEventListener("change", compress);
for (const radio of document.querySelectorAll('input[name="mode"]')) {
  radio.addEventListener("change", () => {
    const byTarget = document.querySelector('input[name="mode"]:checked').value === "target";
    $("target").disabled = $("target-metric").disabled = !byTarget;
    compress();
  });
}
$("target-metric").addEventListener("change", () => {
  const chosen = $("target-metric").selectedOptions[0];
  Object.assign($("target"), { min: chosen.dataset.min, max: chosen.dataset.max, step: chosen.dataset.step,
                               value: chosen.dataset.value });
  compress();
});
$("method").addEventListener("change", () => { showMethodOptions(); compress(); });
for (const id of ["target", "dither", "space"]) $(id).addEventListener("change", compress);
$("run").addEventListener("click", compress);
$("compare").addEventListener("click", compareAll);
$("zoom").addEventListener("change", () => {
  const scale = Number($("zoom").value);
  const stage = $("stage");
  stage.style.width = ($("original").naturalWidth * scale) + "px";
  $("original").style.width = "100%";
});

const handle = $("handle");
handle.addEventListener("pointerdown", (event) => {
  handle.setPointerCapture(event.pointerId);
  const move = (e) => splitFromPointer(e);
  const stop = () => { handle.removeEventListener("pointermove", move); handle.removeEventListener("pointerup", stop); };
  handle.addEventListener("pointermove", move);
  handle.addEventListener("pointerup", stop);
});
$("stage").addEventListener("click", (event) => { if (event.target !== handle) splitFromPointer(event); });
handle.addEventListener("keydown", (event) => {
  const now = Number(handle.getAttribute("aria-valuenow"));
  if (event.key === "ArrowLeft") setSplit(now - 5);
  if (event.key === "ArrowRight") setSplit(now + 5);
});
setSplit(50);
loadMethods();
