// Hygie Avatar control panel. Every request carries the token; state changes are POSTs.
"use strict";
const TOKEN = document.body.dataset.token;
const $ = (id) => document.getElementById(id);
const q = (path) => path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN);

async function post(path, data) {
  const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json", "X-Hygie-Token": TOKEN },
    body: JSON.stringify(data || {}) });
  const j = await r.json().catch(() => ({}));
  showError(r.ok ? "" : (j.error || r.statusText));
  return j;
}
function showError(msg) { const e = $("error"); e.textContent = msg; e.hidden = !msg; }

let last = null;
function fmt(v, unit, digits) { return v === null || v === undefined ? "—" : v.toFixed(digits) + unit; }

function spark(canvas, values, lo, hi, color) {
  const w = canvas.width = canvas.clientWidth * devicePixelRatio, h = canvas.height = canvas.clientHeight * devicePixelRatio;
  const g = canvas.getContext("2d"); g.clearRect(0, 0, w, h);
  const pts = values.map((v, i) => [i, v]).filter((p) => p[1] !== null && p[1] !== undefined);
  if (pts.length < 2) return;
  const n = Math.max(values.length - 1, 1);
  let a = lo, b = hi; for (const [, v] of pts) { a = Math.min(a, v); b = Math.max(b, v); }
  const y = (v) => h - 2 - (v - a) / Math.max(b - a, 1e-9) * (h - 4);
  if (a < 0 && b > 0) { g.strokeStyle = "#555"; g.beginPath(); g.moveTo(0, y(0)); g.lineTo(w, y(0)); g.stroke(); }
  g.strokeStyle = color; g.lineWidth = 1.5 * devicePixelRatio; g.beginPath();
  pts.forEach(([i, v], k) => { const x = i / n * w; k ? g.lineTo(x, y(v)) : g.moveTo(x, y(v)); });
  g.stroke();
}

function render(s) {
  last = s;
  const ph = $("phase"); ph.textContent = s.phase; ph.className = "pill " + s.phase;
  const running = s.phase === "running" || s.phase === "starting";
  const b = $("startstop"); b.textContent = running ? "Stop" : "Start"; b.disabled = s.phase === "stopping";
  const on = s.state.on; const t = $("avatar");
  t.textContent = on ? "Avatar ON" : "Avatar OFF"; t.className = "toggle " + (on ? "on" : "off"); t.setAttribute("aria-pressed", on);
  if (s.error) showError(s.error);
  const m = s.meters || {};
  $("m-fps").textContent = fmt(m.fps, "", 1);
  $("m-lat").textContent = fmt(m.latency_p50_ms, " ms", 0);
  const off = $("m-off"); off.textContent = m.av_offset_ms === null || m.av_offset_ms === undefined ? "—" :
    (m.av_offset_ms > 0 ? "+" : "") + m.av_offset_ms.toFixed(0) + " ms";
  off.className = "value " + (m.av_offset_ms === null || m.av_offset_ms === undefined ? "" :
    Math.abs(m.av_offset_ms) <= 30 ? "good" : Math.abs(m.av_offset_ms) <= 45 ? "warn" : "bad");
  $("offset-hint").textContent = !s.meters ? "" : m.voice_delayed ?
    "Voice delayed into “Hygie Avatar Mic”: pick it as the microphone in the call." :
    "Voice not delayed: the call hears you before your face moves.";
  const h = s.history || [];
  const cpu = h.length ? h[h.length - 1].cpu : null;
  $("m-cpu").textContent = fmt(cpu, " %", 0);
  spark($("h-fps"), h.map((x) => x.fps), 25, 31, "#3b82f6");
  spark($("h-lat"), h.map((x) => x.latency_ms), 0, 120, "#a78bfa");
  spark($("h-off"), h.map((x) => x.offset_ms), -50, 50, "#22c55e");
  spark($("h-cpu"), h.map((x) => x.cpu), 0, 100, "#f59e0b");
  const jobs = s.jobs || []; if (jobs.length) showJob(jobs[jobs.length - 1]);
}

let jobShown = null;
function showJob(j) {
  $("job").hidden = false;
  $("job-bar").style.width = Math.round(100 * j.progress) + "%";
  $("job-text").textContent = `${j.kind} “${j.avatar}”: ${j.status}` + (j.stage ? ` — ${j.stage}` : "") +
    (j.status === "failed" && j.log.length ? ` — ${j.log[j.log.length - 1]}` : "");
  const done = j.status === "done";
  const rep = $("job-report"); rep.hidden = !done; rep.href = q(`/api/avatars/${encodeURIComponent(j.avatar)}/report`);
  $("job-train").hidden = !(done && j.kind === "enroll" && !j.trained);
  $("job-use").hidden = !done;
  if (done && jobShown !== j.id) { jobShown = j.id; loadOptions(); }
}

async function loadOptions() {
  const r = await fetch(q("/api/options")); if (!r.ok) return;
  const o = await r.json();
  const fill = (id, items, value, empty) => {
    const s = $(id); s.innerHTML = "";
    if (empty) { const e = document.createElement("option"); e.value = ""; e.textContent = empty; s.appendChild(e); }
    for (const it of items) { const e = document.createElement("option"); e.value = it; e.textContent = it; s.appendChild(e); }
    s.value = value;
  };
  fill("s-avatar", o.avatars, o.settings.avatar);
  fill("s-input", o.inputs, o.settings.input, "system default");
  fill("s-camera", o.cameras, o.settings.camera, "“Hygie Avatar”");
  fill("s-size", o.sizes, o.settings.size);
  $("s-vmic").checked = !!o.settings.virtual_mic;
}
function settings() {
  return { avatar: $("s-avatar").value, input: $("s-input").value, camera: $("s-camera").value,
           size: $("s-size").value, virtual_mic: $("s-vmic").checked };
}
for (const id of ["s-avatar", "s-input", "s-camera", "s-size", "s-vmic"]) $(id).addEventListener("change", () => post("/api/settings", settings()));

$("startstop").addEventListener("click", async () => {
  const running = last && (last.phase === "running" || last.phase === "starting");
  await post(running ? "/api/stop" : "/api/start", running ? {} : settings());
});
$("avatar").addEventListener("click", () => post("/api/avatar", { toggle: true }).then((j) => j.state && render({ ...last, state: j.state })));

$("e-go").addEventListener("click", async () => {
  const f = $("e-file").files[0], name = $("e-name").value.trim();
  if (!f || !name) { showError("choose a video file and a name"); return; }
  const fd = new FormData(); fd.append("video", f); fd.append("name", name); fd.append("train", "true");
  $("e-go").disabled = true;
  const r = await fetch("/api/enroll", { method: "POST", headers: { "X-Hygie-Token": TOKEN }, body: fd });
  const j = await r.json().catch(() => ({})); $("e-go").disabled = false;
  if (!r.ok) { showError(j.error || r.statusText); return; }
  showError(""); showJob(j.job);
});
$("job-train").addEventListener("click", () => last && last.jobs.length && post("/api/train", { avatar: last.jobs[last.jobs.length - 1].avatar }));
$("job-use").addEventListener("click", async () => {
  const j = last.jobs[last.jobs.length - 1]; await loadOptions(); $("s-avatar").value = j.avatar;
  await post("/api/settings", settings());
  if (last.phase === "running") { await post("/api/stop"); await post("/api/start", settings()); }
});

// preview: a new JPEG when the agent has a newer frame (about 5 per second), swapped in once loaded
let previewT = -1, loading = false;
function refreshPreview() {
  if (!last || loading || last.frame_t === previewT || !last.meters) {
    $("nopreview").hidden = !!(last && last.meters); return;
  }
  loading = true; const img = new Image(); const t = last.frame_t;
  img.onload = () => { $("preview").src = img.src; previewT = t; loading = false; $("nopreview").hidden = true; };
  img.onerror = () => { loading = false; };
  img.src = q("/api/preview.jpg?t=" + t);
}
setInterval(async () => {
  const r = await fetch(q("/api/status")).catch(() => null);
  if (r && r.ok) render(await r.json());
  refreshPreview();
}, 250);

// meters history arrives once a second on the event stream (status is polled above for the preview)
const es = new EventSource(q("/api/events"));
es.onmessage = (ev) => render(JSON.parse(ev.data));
loadOptions();
