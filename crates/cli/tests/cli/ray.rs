//! Sharded embedding on a real two-node Ray cluster (`pip install 'ray[data]==2.60.0'`) with
//! `scripts/ray_embed.py`: the 5,502 Grocery Store photos embedded as shards by Ray tasks, one
//! task's worker killed mid-shard (its shard retried and resumed), and the index built from the
//! shards holding every photo exactly once, code for code what one `unisight embed` gives.
//!
//! `scripts/test.sh` runs this module inside a loopback-only network namespace
//! (`scripts/netns.sh`): Ray uses the host's own address for some traffic whatever it is told.
//! Elsewhere it says "skipped: why", or fails with `UNISIGHT_REQUIRE_RAY=1`.

use std::collections::HashSet;

use super::*;

/// A two-node Ray cluster on this machine (head + one worker node, one CPU each), with token
/// authentication; stopped on drop.
pub(super) struct RayCluster {
    /// The environment of every Ray process and client of this cluster (its token).
    pub(super) env: Vec<(String, String)>,
    /// `127.0.0.1:PORT` of the head.
    pub(super) address: String,
}

impl RayCluster {
    /// Starts the head on `port` and a second node, with the tasks' temporary folders in
    /// `scratch`; `Err` says why it cannot run here.
    pub(super) fn start(scratch: &Path, port: u16) -> Result<Self, String> {
        unisight_milvus::local_server::loopback_only().map_err(|others| {
            format!(
                "not a loopback-only network namespace (also {others}); run in scripts/netns.sh"
            )
        })?;
        let token = format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        );
        let cluster = RayCluster {
            env: vec![
                ("RAY_AUTH_MODE".into(), "token".into()),
                ("RAY_AUTH_TOKEN".into(), token),
                ("RAY_USAGE_STATS_ENABLED".into(), "0".into()),
                // the tasks' scratch folders (tempfile.gettempdir() in the workers)
                ("TMPDIR".into(), scratch.display().to_string()),
            ],
            address: format!("127.0.0.1:{port}"),
        };
        let temp = scratch.join("ray");
        let head = format!("--port={port}");
        let address = format!("--address=127.0.0.1:{port}");
        let temp_dir = format!("--temp-dir={}", temp.display());
        for args in [
            vec!["start", "--head", &head, "--include-dashboard=false"],
            vec!["start", &address],
        ] {
            let out = cluster
                .ray()
                .args(&args)
                .args(["--num-cpus=1", "--node-ip-address=127.0.0.1", &temp_dir])
                .output()
                .map_err(|e| format!("ray: {e} (pip install 'ray[data]==2.60.0')"))?;
            if !out.status.success() {
                return Err(format!(
                    "ray {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        Ok(cluster)
    }

    fn ray(&self) -> Command {
        let mut command = Command::new("ray");
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }
}

impl Drop for RayCluster {
    fn drop(&mut self) {
        let _ = self.ray().args(["stop", "--force"]).output();
    }
}

/// A cluster ([`RayCluster::start`]), or `None` with the reason printed where none can run and
/// none is required (`UNISIGHT_REQUIRE_RAY=1`).
pub(super) fn ray_cluster(scratch: &Path, port: u16) -> Option<RayCluster> {
    match RayCluster::start(scratch, port) {
        Ok(c) => Some(c),
        Err(why) => {
            if std::env::var("UNISIGHT_REQUIRE_RAY").is_ok_and(|v| v == "1") {
                panic!("a Ray cluster is needed here: {why}");
            }
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// Pids of running `unisight embed --shard` processes and their parents (the Ray workers).
fn shard_processes() -> Vec<(u32, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let is_shard = args.iter().any(|a| *a == b"embed") && args.iter().any(|a| *a == b"--shard");
        if !is_shard || !args[0].ends_with(b"unisight") {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid ...: the comm may hold spaces, so read after its ')'
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok());
        if let Some(parent) = parent {
            found.push((pid, parent));
        }
    }
    found
}

#[test]
fn ray_embeds_every_photo_once_through_a_killed_worker() {
    let Some(grocery) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let scratch = t.join("s");
    std::fs::create_dir(&scratch).unwrap();
    let Some(cluster) = ray_cluster(&scratch, 6391) else {
        return;
    };
    // every photo of the data set: train, val, test and the catalog's iconic images
    let photos = grocery;
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
        .arg(&photos)
        .arg("--out")
        .arg(t.join("single"))
        .output()
        .unwrap());

    let driver = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ray_embed.py");
    let mut run = Command::new("python3");
    run.arg(&driver)
        .args(["--address", &cluster.address])
        .arg("--unisight")
        .arg(env!("CARGO_BIN_EXE_unisight"))
        .arg("--model")
        .arg(&model)
        .arg("--input")
        .arg(&photos)
        .args(["--shards", "4", "--work"])
        .arg(t.join("work"))
        .arg("--index")
        .arg(t.join("idx"))
        .envs(cluster.env.iter().map(|(k, v)| (k, v)));
    // to a file, not a pipe: nobody reads a pipe while the test waits, and a full one would
    // stall the driver
    let log_path = t.join("driver.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    run.stdout(log_file.try_clone().unwrap()).stderr(log_file);
    let mut child = run.spawn().unwrap();
    // kill the Ray worker running the first shard seen working, once it has chunks done (its
    // unisight child dies with it)
    let started = Instant::now();
    let driver_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let killed = loop {
        let partial_done = std::fs::read_dir(scratch.join("unisight-ray"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|job| {
                std::fs::read_dir(job.path())
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .any(|shard| {
                std::fs::read_dir(shard.path().join("out/.partial"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|f| {
                        f.file_name().to_string_lossy().ends_with(".json")
                            && f.file_name() != "plan.json"
                    })
            });
        if partial_done {
            if let Some(&(_, worker)) = shard_processes().first() {
                let status = Command::new("kill")
                    .args(["-KILL", &worker.to_string()])
                    .status()
                    .unwrap();
                assert!(status.success());
                break worker;
            }
        }
        if child.try_wait().unwrap().is_some() {
            panic!(
                "the driver ended before a worker could be killed:\n{}",
                driver_log()
            );
        }
        // bounded: a loaded 2-core machine starts the cluster's workers slowly
        if started.elapsed() > Duration::from_secs(600) {
            let _ = child.kill();
            panic!(
                "no shard finished a chunk in 600 s; the driver said:\n{}",
                driver_log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let status = child.wait().unwrap();
    let log = driver_log();
    assert!(
        status.success(),
        "driver failed (killed worker {killed}):\n{log}"
    );
    assert!(log.contains("attempts: 2"), "no shard was retried:\n{log}");
    assert!(log.contains("4/4 shards done"), "{log}");

    // every photo once, with the single run's code
    let single = unisight_core::artifacts::EmbeddingSet::load(&t.join("single")).unwrap();
    let index = unisight_index::Index::open(&t.join("idx")).unwrap();
    assert_eq!(index.len(), single.len());
    let mut seen = HashSet::new();
    for (i, item) in single.items.iter().enumerate() {
        let id = index
            .id_of_key(&item.id)
            .unwrap()
            .unwrap_or_else(|| panic!("{} is missing", item.id));
        assert!(seen.insert(id), "{} twice", item.id);
        assert_eq!(index.code(id).unwrap(), single.code(i), "{}", item.id);
    }
}
