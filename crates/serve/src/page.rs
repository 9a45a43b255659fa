//! The web page at `/`: pick or drop a photo (or click a result) and see the top results as a
//! grid of thumbnails with their scores; k and float re-ranking are chosen on the page. One
//! self-contained HTML document calling the JSON API.

use axum::response::Html;

/// `GET /`.
pub async fn index_page() -> Html<&'static str> {
    Html(PAGE)
}

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>unisight visual search</title>
<style>
body{font-family:sans-serif;margin:1.5em;color:#222}
#drop{border:2px dashed #888;padding:1.2em;text-align:center;border-radius:8px;cursor:pointer}
#drop.over{background:#eef}
#query img{max-width:200px;max-height:200px}
#results{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px;margin-top:1em}
.hit{border:1px solid #ccc;border-radius:6px;padding:4px;text-align:center;font-size:12px;cursor:pointer;word-break:break-all}
.hit img{width:140px;height:140px;object-fit:contain;background:#f4f4f4}
#status{color:#555;margin:.5em 0}
.error{color:#b00}
</style></head><body>
<h1>unisight visual search</h1>
<div id="drop">Drop a photo here, or <label><u>pick one</u><input id="file" type="file" accept="image/*" hidden></label></div>
<p><label>k <input id="k" type="number" min="1" max="100" value="12" style="width:4em"></label>
<label><input id="rerank" type="checkbox" checked> float re-ranking</label></p>
<div id="status"></div><div id="query"></div><div id="results"></div>
<script>
const $ = (id) => document.getElementById(id);
function params() { return `k=${encodeURIComponent($("k").value)}&rerank=${$("rerank").checked}`; }
function show(data, label) {
  $("status").className = "";
  const t = data.embed_ms != null ? `embed ${data.embed_ms.toFixed(1)} ms, ` : "";
  $("status").textContent = `${label}: ${data.results.length} results (${t}search ${data.search_ms.toFixed(2)} ms)`;
  const grid = $("results"); grid.innerHTML = "";
  for (const hit of data.results) {
    const div = document.createElement("div"); div.className = "hit"; div.title = "more like this";
    const img = document.createElement("img"); img.alt = hit.key; img.loading = "lazy";
    img.src = `/v1/items/${encodeURIComponent(hit.key)}/image`;
    const cap = document.createElement("div");
    cap.textContent = `${hit.key} · d=${hit.distance}` + (hit.score != null ? ` · cos ${hit.score.toFixed(3)}` : "");
    div.append(img, cap);
    div.onclick = () => byItem(hit.key);
    grid.append(div);
  }
}
function fail(text) { $("status").className = "error"; $("status").textContent = text; }
async function answer(res, label) {
  const data = await res.json().catch(() => ({reason: res.statusText}));
  if (!res.ok) return fail(`${res.status}: ${data.reason || data.error}`);
  show(data, label);
}
async function byImage(file) {
  $("query").innerHTML = ""; const img = document.createElement("img");
  img.src = URL.createObjectURL(file); $("query").append(img);
  $("status").textContent = "searching…";
  const res = await fetch(`/v1/search?${params()}`, {method: "POST", body: file,
    headers: {"Content-Type": file.type || "application/octet-stream"}});
  await answer(res, `photo ${file.name}`);
}
async function byItem(key) {
  $("query").innerHTML = ""; const img = document.createElement("img");
  img.src = `/v1/items/${encodeURIComponent(key)}/image`; $("query").append(img);
  const res = await fetch(`/v1/items/${encodeURIComponent(key)}/similar?${params()}`);
  await answer(res, `more like ${key}`);
}
$("file").onchange = (e) => e.target.files[0] && byImage(e.target.files[0]);
const drop = $("drop");
drop.ondragover = (e) => { e.preventDefault(); drop.classList.add("over"); };
drop.ondragleave = () => drop.classList.remove("over");
drop.ondrop = (e) => { e.preventDefault(); drop.classList.remove("over"); const f = e.dataTransfer.files[0]; if (f) byImage(f); };
</script></body></html>
"#;
