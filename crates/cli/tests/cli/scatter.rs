//! `unisight bench-scatter`, the simulation behind the capacity plan: random codes split over
//! shard processes, queries scattered and gathered one at a time, in batches, and as an
//! open-loop load through replicas. The command itself fails when any front's answer differs
//! from one index's; this checks that every run it was asked for happened and was measured.

use super::*;

#[test]
fn the_scatter_front_answers_like_one_index_with_shards_and_replicas_under_load() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("scatter.json");
    let out = ok(unisight()
        .args([
            "bench-scatter",
            "--items",
            "20000",
            "--queries",
            "40",
            "--shards",
            "1,3",
            "--replicas",
            "1,2",
            "--rates",
            "150,300",
            "--seconds",
            "1",
            "--batch",
            "8",
        ])
        .arg("--work")
        .arg(tmp.path().join("work"))
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap());
    assert!(
        out.contains("every answer under load equalled one index's"),
        "{out}"
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let closed = report["closed_loop"].as_array().unwrap();
    assert_eq!(closed.len(), 2);
    assert_eq!(closed[1]["items_per_shard"], 6667);
    let open = report["open_loop"].as_array().unwrap();
    let runs: Vec<(u64, u64, u64)> = open
        .iter()
        .map(|r| {
            (
                r["shards"].as_u64().unwrap(),
                r["replicas"].as_u64().unwrap(),
                r["offered_per_second"].as_f64().unwrap() as u64,
            )
        })
        .collect();
    assert_eq!(
        runs,
        [
            (1, 1, 150),
            (1, 1, 300),
            (1, 2, 150),
            (1, 2, 300),
            (3, 1, 150),
            (3, 1, 300),
            (3, 2, 150),
            (3, 2, 300)
        ]
    );
    for r in open {
        let (p50, p99) = (r["p50_ms"].as_f64().unwrap(), r["p99_ms"].as_f64().unwrap());
        assert!(p50 > 0.0 && p50 <= p99, "{r}");
        assert!(r["answered_per_second"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["mean_batch"].as_f64().unwrap() >= 1.0, "{r}");
    }
    assert!(report["milvus"].is_null());
    // the shards' index folders are removed after each shard count
    assert!(!tmp.path().join("work/shards-1").exists());
}

#[test]
fn bench_scatter_refuses_impossible_settings_by_name() {
    for (flag, value) in [("--replicas", "0"), ("--rates", "-5"), ("--shards", "65")] {
        let out = unisight()
            .args([
                "bench-scatter",
                "--items",
                "100",
                &format!("{flag}={value}"),
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{flag}: {err}");
    }
}
