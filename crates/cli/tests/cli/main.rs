//! End-to-end tests of the `unisight` binary on real photos from ../shared/data.
//!
//! One test binary; the tests live by concern: [`embed`] (embed, index, search, resume),
//! [`train`], [`eval`], [`serve`] (HTTP and the load test), [`experiment`] (arms, engagement
//! log, simulated users), [`browser`] (the web pages in headless Chromium), [`milvus`] (the
//! service, search and index commands on a real Milvus server), [`ray`] (sharded embedding on a
//! real Ray cluster), [`backfill`] (a new model and collection switched in under load) and
//! [`scatter`] (the capacity plan's scatter-gather simulation, on Milvus too);
//! `scripts/test.sh` runs the last three inside a loopback-only network namespace.

mod backfill;
mod browser;
mod embed;
mod eval;
mod experiment;
mod milvus;
mod ray;
mod scatter;
mod serve;
mod train;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn unisight() -> Command {
    Command::new(env!("CARGO_BIN_EXE_unisight"))
}

fn grocery() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/grocery-store/dataset");
    dir.is_dir().then_some(dir)
}

/// Asserts success and returns stdout followed by stderr.
fn ok(out: Output) -> String {
    stdout_of(&out) + &String::from_utf8_lossy(&out.stderr)
}

fn stdout_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copies the first `n` test photos listed in test.txt into `dir` (created if missing),
/// returning their names.
fn copy_photos(grocery: &Path, dir: &Path, n: usize) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let list = std::fs::read_to_string(grocery.join("test.txt")).unwrap();
    let mut names = Vec::new();
    for line in list.lines().step_by(7).take(n) {
        let rel = line.split(',').next().unwrap().trim();
        let name = rel.replace('/', "_");
        std::fs::copy(grocery.join(rel), dir.join(&name)).unwrap();
        names.push(name);
    }
    names
}

/// A running `unisight serve`, killed on drop.
struct Server {
    child: std::process::Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(args: &[&std::ffi::OsStr], token: Option<&str>) -> Server {
    use std::io::BufRead;
    let mut cmd = unisight();
    cmd.arg("serve").args(args).args(["--addr", "127.0.0.1:0"]);
    match token {
        Some(t) => cmd.env("UNISIGHT_TOKEN", t),
        None => cmd.env_remove("UNISIGHT_TOKEN"),
    };
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Some(url) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        panic!("unexpected first line {line:?}");
    };
    let url = url.trim_end_matches('/').to_string();
    Server { child, url }
}

/// Status and JSON body of a request (ureq reports 4xx/5xx as errors; both are answers here).
fn call(request: ureq::Request, body: Option<(&str, &[u8])>) -> (u16, serde_json::Value) {
    let result = match body {
        Some((kind, bytes)) => request.set("Content-Type", kind).send_bytes(bytes),
        None => request.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// A zero-shot D = 256 model, the `catalog` folder embedded and indexed into `t/idx`, and a
/// server on it (photos served from `image_root`, mutations with `token`, `extra` arguments).
fn serve_catalog(
    t: &Path,
    catalog: &Path,
    image_root: &Path,
    token: Option<&str>,
    extra: &[&str],
) -> Server {
    let model = embed_catalog(t, catalog);
    let idx = t.join("idx");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "--model".as_ref(),
        model.as_os_str(),
        "--index".as_ref(),
        idx.as_os_str(),
        "--image-root".as_ref(),
        image_root.as_os_str(),
        "--max-body-mib".as_ref(),
        "1".as_ref(),
    ];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    start_server(&args, token)
}

/// A zero-shot D = 256 model `t/m.safetensors` (returned), the `catalog` folder embedded by it
/// into `t/emb` and indexed into `t/idx`.
fn embed_catalog(t: &Path, catalog: &Path) -> PathBuf {
    let model = t.join("m.safetensors");
    ok(unisight()
        .args(["init-model", "--dim", "256", "--out"])
        .arg(&model)
        .output()
        .unwrap());
    ok(unisight()
        .args(["embed", "--model"])
        .arg(&model)
        .arg("--input")
        .arg(catalog)
        .arg("--out")
        .arg(t.join("emb"))
        .output()
        .unwrap());
    ok(unisight()
        .args(["index", "build", "--from"])
        .arg(t.join("emb"))
        .arg("--out")
        .arg(t.join("idx"))
        .output()
        .unwrap());
    model
}

/// Two zero-shot models (different projections) each with its own index of `photos`, and an
/// experiment file serving them as arms `a` and `b` with an engagement log and a study of the
/// first three photos.
fn experiment_setup(t: &Path, photos: &Path, names: &[String]) -> PathBuf {
    for (arm, seed) in [("a", "1"), ("b", "2")] {
        let model = t.join(format!("{arm}.safetensors"));
        ok(unisight()
            .args(["init-model", "--dim", "256", "--seed", seed, "--out"])
            .arg(&model)
            .output()
            .unwrap());
        ok(unisight()
            .args(["embed", "--model"])
            .arg(&model)
            .arg("--input")
            .arg(photos)
            .arg("--out")
            .arg(t.join(format!("emb-{arm}")))
            .output()
            .unwrap());
        ok(unisight()
            .args(["index", "build", "--from"])
            .arg(t.join(format!("emb-{arm}")))
            .arg("--out")
            .arg(t.join(format!("idx-{arm}")))
            .output()
            .unwrap());
    }
    let queries = format!(
        "path,task\n{},fine\n{},fine\n{},coarse\n",
        names[0], names[1], names[2]
    );
    std::fs::write(photos.join("study.csv"), queries).unwrap();
    let file = t.join("experiment.toml");
    std::fs::write(
        &file,
        format!(
            r#"name = "test"
[[arms]]
name = "a"
model = "a.safetensors"
index = "idx-a"
[[arms]]
name = "b"
model = "b.safetensors"
index = "idx-b"
[log]
dir = "logs"
rotate_mib = 1
[study]
arms = ["a", "b"]
queries = "{}"
ratings = "ratings.jsonl"
k = 4
"#,
            photos.join("study.csv").display()
        ),
    )
    .unwrap();
    file
}
