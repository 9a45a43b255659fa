//! The web pages. `/`: pick or drop a photo (or click a result) and see the top results as a
//! grid of thumbnails with their scores; k and float re-ranking are chosen on the page; clicks,
//! saves and dwell times go to `POST /v1/events` (logged when the service keeps a log) under a
//! random id the page keeps in the browser. `/study`: the rater page of a relevance study. Each
//! page is one self-contained HTML document calling the JSON API.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{Html, IntoResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// `GET /`.
pub async fn index_page() -> impl IntoResponse {
    page(PAGE, INDEX_CSP.as_str())
}

/// `GET /study`.
pub async fn study_page() -> impl IntoResponse {
    page(STUDY_PAGE, STUDY_CSP.as_str())
}

/// A page with its Content-Security-Policy: only its own inline script and style (by hash) run,
/// it talks only to this origin, and no other site may frame it.
fn page(html: &'static str, csp: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(html),
    )
}

static INDEX_CSP: LazyLock<String> = LazyLock::new(|| csp_for(PAGE));
static STUDY_CSP: LazyLock<String> = LazyLock::new(|| csp_for(STUDY_PAGE));

/// The policy allowing exactly the page's `<script>` and `<style>` blocks.
fn csp_for(html: &str) -> String {
    let hashes = |open: &str, close: &str| -> String {
        html.split(open)
            .skip(1)
            .filter_map(|rest| rest.split_once(close).map(|(body, _)| body))
            .map(|body| {
                format!(
                    " 'sha256-{}'",
                    STANDARD.encode(Sha256::digest(body.as_bytes()))
                )
            })
            .collect()
    };
    format!(
        "default-src 'none'; script-src{}; style-src{}; img-src 'self' blob: data:; \
         connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
        hashes("<script>", "</script>"),
        hashes("<style>", "</style>")
    )
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
.save{font-size:11px;margin-top:2px}
#status{color:#555;margin:.5em 0}
.error{color:#b00}
#k { width: 4em; }
</style></head><body>
<h1>unisight visual search</h1>
<div id="drop">Drop a photo here, or <label><u>pick one</u><input id="file" type="file" accept="image/*" hidden></label></div>
<p><label>k <input id="k" type="number" min="1" max="100" value="12"></label>
<label><input id="rerank" type="checkbox" checked> float re-ranking</label></p>
<div id="status"></div><div id="query"></div><div id="results"></div>
<script>
const $ = (id) => document.getElementById(id);
// an opaque random id kept in this browser: it keeps the user in one experiment arm
let user = localStorage.getItem("unisight-user");
if (!user) { user = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join(""); localStorage.setItem("unisight-user", user); }
const headers = (extra) => Object.assign({"X-Unisight-User": user}, extra || {});
function params() { return `k=${encodeURIComponent($("k").value)}&rerank=${$("rerank").checked}`; }
let opened = null; // the clicked result whose dwell time is running
function event(request, key, action, extra) {
  return fetch("/v1/events", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify(Object.assign({request, key, action, client_time_ms: Date.now()}, extra || {})), keepalive: true}).catch(() => {});
}
function endDwell() {
  if (opened) { event(opened.request, opened.key, "dwell", {dwell_ms: Date.now() - opened.at}); opened = null; }
}
document.addEventListener("visibilitychange", () => { if (document.hidden) endDwell(); });
function show(data, label) {
  $("status").className = "";
  const t = data.embed_ms != null ? `embed ${data.embed_ms.toFixed(1)} ms, ` : "";
  $("status").textContent = `${label}: ${data.results.length} results (${t}search ${data.search_ms.toFixed(2)} ms, arm ${data.arm})`;
  const grid = $("results"); grid.innerHTML = "";
  for (const hit of data.results) {
    const div = document.createElement("div"); div.className = "hit"; div.title = "more like this";
    const img = document.createElement("img"); img.alt = hit.key; img.loading = "lazy";
    img.src = `/v1/items/${encodeURIComponent(hit.key)}/image`;
    const cap = document.createElement("div");
    cap.textContent = `${hit.key} · d=${hit.distance}` + (hit.score != null ? ` · cos ${hit.score.toFixed(3)}` : "");
    const save = document.createElement("button"); save.className = "save"; save.textContent = "save";
    save.onclick = (e) => { e.stopPropagation(); event(data.request, hit.key, "save"); save.textContent = "saved"; save.disabled = true; };
    div.append(img, cap, save);
    div.onclick = () => { endDwell(); event(data.request, hit.key, "click"); opened = {request: data.request, key: hit.key, at: Date.now()}; byItem(hit.key, true); };
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
  endDwell();
  $("query").innerHTML = ""; const img = document.createElement("img");
  img.src = URL.createObjectURL(file); $("query").append(img);
  $("status").textContent = "searching…";
  const res = await fetch(`/v1/search?${params()}`, {method: "POST", body: file,
    headers: headers({"Content-Type": file.type || "application/octet-stream"})});
  await answer(res, `photo ${file.name}`);
}
async function byItem(key, fromClick) {
  if (!fromClick) endDwell();
  $("query").innerHTML = ""; const img = document.createElement("img");
  img.src = `/v1/items/${encodeURIComponent(key)}/image`; $("query").append(img);
  const res = await fetch(`/v1/items/${encodeURIComponent(key)}/similar?${params()}`, {headers: headers()});
  await answer(res, `more like ${key}`);
}
$("file").onchange = (e) => e.target.files[0] && byImage(e.target.files[0]);
const drop = $("drop");
drop.ondragover = (e) => { e.preventDefault(); drop.classList.add("over"); };
drop.ondragleave = () => drop.classList.remove("over");
drop.ondrop = (e) => { e.preventDefault(); drop.classList.remove("over"); const f = e.dataTransfer.files[0]; if (f) byImage(f); };
</script></body></html>
"#;

const STUDY_PAGE: &str = r##"<!doctype html>
<html><head><meta charset="utf-8"><title>unisight relevance study</title>
<style>
body{font-family:sans-serif;margin:1.5em;color:#222}
#query img{max-width:220px;max-height:220px}
#sides{display:grid;grid-template-columns:1fr 1fr;gap:2em;margin-top:1em}
.list{display:grid;grid-template-columns:repeat(auto-fill,minmax(110px,1fr));gap:6px}
.hit{border:1px solid #ccc;border-radius:6px;padding:3px;text-align:center;font-size:11px}
.hit img{width:100px;height:100px;object-fit:contain;background:#f4f4f4}
#choices button{font-size:1.1em;margin:.6em .4em 0 0}
.error{color:#b00}
.hint { font-size: 12px; color: #555; }
</style></head><body>
<h1>Which results fit the photo better?</h1>
<p><label>Your rater id <input id="rater" size="16"></label>
<label>or your rater token <input id="token" type="password" size="34" autocomplete="off"></label> <button id="start">start</button>
<span id="status"></span></p>
<div id="trial" hidden>
<div id="query"></div><p id="task"></p>
<div id="sides"><div><h3>Left</h3><div class="list" id="left"></div></div><div><h3>Right</h3><div class="list" id="right"></div></div></div>
<div id="choices"><button data-choice="left">Left is better</button><button data-choice="tie">About the same</button><button data-choice="right">Right is better</button></div>
<p class="hint">Optionally tick the results that fit the photo before choosing.</p>
</div>
<script>
const $ = (id) => document.getElementById(id);
let current = null;
$("rater").value = localStorage.getItem("unisight-rater") || "";
$("token").value = sessionStorage.getItem("unisight-rater-token") || "";
// a study with rater tokens takes the rater from the token; the id is then optional
function auth() { const t = $("token").value.trim(); return t ? {"Authorization": `Bearer ${t}`} : {}; }
function raterParam() { const r = $("rater").value.trim(); return r ? `?rater=${encodeURIComponent(r)}` : ""; }
function fill(list, hits) {
  list.innerHTML = "";
  for (const hit of hits) {
    const div = document.createElement("div"); div.className = "hit";
    const img = document.createElement("img"); img.src = hit.image; img.alt = "result";
    const label = document.createElement("label"); const box = document.createElement("input");
    box.type = "checkbox"; label.append(box, " fits"); div.append(img, document.createElement("br"), label);
    list.append(div);
  }
}
function marks(list) { return Array.from(list.querySelectorAll("input"), (b) => b.checked); }
async function next() {
  const rater = $("rater").value.trim(), token = $("token").value.trim();
  if (!rater && !token) { $("status").textContent = "enter a rater id or token"; return; }
  localStorage.setItem("unisight-rater", rater);
  sessionStorage.setItem("unisight-rater-token", token);
  $("status").className = ""; $("status").textContent = "loading…";
  const res = await fetch(`/v1/study/next${raterParam()}`, {headers: auth()});
  const data = await res.json().catch(() => ({reason: res.statusText}));
  if (!res.ok) { $("status").className = "error"; $("status").textContent = `${res.status}: ${data.reason}`; return; }
  if (data.done) { $("trial").hidden = true; $("status").textContent = `done: all ${data.queries} queries rated, thank you`; return; }
  current = data;
  $("query").innerHTML = ""; const q = document.createElement("img"); q.src = data.query_image; q.alt = "query"; $("query").append(q);
  $("task").textContent = `task: ${data.task}`;
  fill($("left"), data.left); fill($("right"), data.right);
  $("trial").hidden = false; $("status").textContent = `${data.remaining} left to rate`;
}
async function rate(choice) {
  const body = {trial: current.trial, choice, relevant_left: marks($("left")), relevant_right: marks($("right"))};
  if ($("rater").value.trim()) body.rater = $("rater").value.trim();
  const res = await fetch("/v1/study/ratings", {method: "POST", headers: {"Content-Type": "application/json", ...auth()}, body: JSON.stringify(body)});
  if (!res.ok && res.status !== 409) { const d = await res.json().catch(() => ({})); $("status").className = "error"; $("status").textContent = `${res.status}: ${d.reason}`; return; }
  next();
}
$("start").onclick = next;
for (const b of document.querySelectorAll("#choices button")) b.onclick = () => rate(b.dataset.choice);
</script></body></html>
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_page_allows_exactly_its_own_script_and_style() {
        for (html, csp) in [(PAGE, &*INDEX_CSP), (STUDY_PAGE, &*STUDY_CSP)] {
            assert_eq!(csp.matches("'sha256-").count(), 2, "{csp}");
            assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
            // inline attributes would be blocked by the policy
            assert!(!html.contains(" style=\"") && !html.contains(" onclick=\""));
        }
    }
}
