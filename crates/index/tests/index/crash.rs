//! A writer killed at random (SIGKILL) loses nothing it committed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::*;
use unisight_index::Error;

/// The writer half of the crash test: adds and removes items forever, printing each committed
/// batch. Run only as a child of `killed_writer_loses_nothing_committed`.
#[test]
#[ignore = "child process of the crash test"]
fn crash_writer_child() {
    let Ok(dir) = std::env::var("UNISIGHT_CRASH_DIR") else {
        return;
    };
    let dir = Path::new(&dir);
    let mut index = match Index::open_writable(dir) {
        Ok(i) => i,
        Err(Error::NotAnIndex { .. }) => Index::create(
            dir,
            IndexConfig {
                bits: 256,
                floats: Some((8, FloatKind::F32)),
                keys: true,
            },
        )
        .unwrap(),
        Err(e) => panic!("{e}"),
    };
    // key numbers continue after the largest live one (removed keys may be reused: keys only
    // need to be unique among live items)
    let mut next = index
        .items()
        .map(|i| {
            i.unwrap()
                .key
                .trim_start_matches("item-")
                .parse::<u64>()
                .unwrap()
                + 1
        })
        .max()
        .unwrap_or(0);
    loop {
        let n = 1 + next % 7;
        let ids = add_range(&mut index, next..next + n);
        println!("added {} {}", ids[0], n);
        next += n;
        if next % 5 == 0 {
            println!("removing {}", ids[0]);
            index.remove(&[ids[0]]).unwrap();
            println!("removed {}", ids[0]);
        }
        if next % 23 == 0 {
            index.compact().unwrap();
            println!("compacted");
        }
    }
}

#[test]
fn killed_writer_loses_nothing_committed() {
    let runs: usize = std::env::var("UNISIGHT_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let mut live = std::collections::BTreeSet::new();
    let mut committed_total = 0;
    for run in 0..runs {
        let mut child = Command::new(&exe)
            .args([
                "crash::crash_writer_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("UNISIGHT_CRASH_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(10..150)));
        child.kill().unwrap();
        child.wait().unwrap();
        let mut maybe_removed = None;
        for line in reader.join().unwrap() {
            // libtest may print its "test ... " prefix on the first line
            let parts: Vec<&str> = line.split_whitespace().collect();
            let start = parts
                .iter()
                .position(|p| ["added", "removing", "removed"].contains(p));
            let parts = &parts[start.unwrap_or(parts.len())..];
            match parts {
                ["added", first, n] => {
                    let (first, n): (u64, u64) = (first.parse().unwrap(), n.parse().unwrap());
                    live.extend(first..first + n);
                }
                ["removing", id] => maybe_removed = Some(id.parse::<u64>().unwrap()),
                ["removed", id] => {
                    live.remove(&id.parse::<u64>().unwrap());
                    maybe_removed = None;
                }
                _ => {}
            }
        }
        // every acknowledged item is there with its code intact; nothing else is live except
        // possibly the one batch committed but not yet acknowledged when the kill came
        let index = match Index::open(dir.path()) {
            Ok(index) => index,
            // killed before it had made the index (a slow start on a loaded machine, seen in
            // CI): nothing was acknowledged, so nothing can be lost
            Err(Error::NotAnIndex { .. }) if live.is_empty() => continue,
            Err(e) => panic!("run {run}: {e}"),
        };
        for &id in live.iter().filter(|&&id| Some(id) != maybe_removed) {
            let code = index
                .code(id)
                .unwrap_or_else(|e| panic!("run {run}: id {id}: {e}"));
            let key = index.item(id).unwrap().key;
            let i: u64 = key.trim_start_matches("item-").parse().unwrap();
            assert_eq!(code, &code_for(i), "run {run}: id {id}");
        }
        let extra = index.len() as i64 - live.len() as i64;
        assert!(
            (-1..=7).contains(&extra),
            "run {run}: {extra} unacknowledged items"
        );
        // resync with what was committed but unacknowledged, so the next run's bookkeeping holds
        live = index.items().map(|i| i.unwrap().id).collect();
        committed_total = committed_total.max(index.stats().generation);
    }
    assert!(
        committed_total > runs as u64,
        "the writer committed only {committed_total} times"
    );
}
