//! `unisight embed`, `index` and `search` on real photos, bad images among them, and a killed embed that resumes.

use super::*;

#[test]
fn embed_index_search_with_bad_images() {
    let Some(grocery) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    let names = copy_photos(&grocery, &photos, 12);
    std::fs::write(
        photos.join("corrupt.jpg"),
        b"\xff\xd8\xff\xe0 not really a jpeg",
    )
    .unwrap();
    std::fs::write(photos.join("empty.png"), b"").unwrap();
    let good = std::fs::read(photos.join(&names[0])).unwrap();
    std::fs::write(photos.join("truncated.jpg"), &good[..good.len() / 3]).unwrap();
    std::fs::write(photos.join("notes.txt"), b"ignored").unwrap();
    let out = tmp.path().join("emb");
    let log = ok(unisight()
        .args(["embed", "--input"])
        .arg(&photos)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["embedded"], 12, "{log}");
    assert_eq!(meta["failed"], 3, "{log}");
    assert!(
        log.contains("skipped corrupt.jpg") && log.contains("skipped empty.png: empty file"),
        "{log}"
    );
    assert!(!out.join(".partial").exists());

    let index = tmp.path().join("idx");
    ok(unisight()
        .args(["index", "build", "--from"])
        .arg(&out)
        .arg("--out")
        .arg(&index)
        .output()
        .unwrap());
    // exact search equals brute force on these real codes, for every query, k and thread count
    let set = unisight_core::artifacts::EmbeddingSet::load(&out).unwrap();
    let opened = unisight_index::Index::open(&index).unwrap();
    let words: Vec<Vec<u64>> = (0..set.len())
        .map(|i| {
            set.code(i)
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                .collect()
        })
        .collect();
    let all_codes: Vec<u8> = (0..set.len()).flat_map(|i| set.code(i).to_vec()).collect();
    for threads in [1, 2] {
        let options = unisight_index::ScanOptions {
            threads,
            ..Default::default()
        };
        for k in [1, 4, 12] {
            let found = opened.search(&all_codes, k, &options).unwrap();
            for (q, hits) in found.iter().enumerate() {
                let mut brute: Vec<(u32, u64)> = (0..set.len())
                    .map(|i| {
                        (
                            unisight_index::kernels::hamming(&words[q], &words[i]),
                            i as u64,
                        )
                    })
                    .collect();
                brute.sort();
                brute.truncate(k);
                let got: Vec<(u32, u64)> = hits.iter().map(|h| (h.distance, h.id)).collect();
                assert_eq!(got, brute, "query {q}, k {k}, {threads} threads");
            }
        }
    }
    let key = &names[3];
    let json = stdout_of(
        &unisight()
            .args(["search", "--index"])
            .arg(&index)
            .args(["--id", key, "-k", "3", "--json"])
            .output()
            .unwrap(),
    );
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[0]["key"], key.as_str());
    assert_eq!(rows[0]["distance"], 0);
    // re-ranked search by image finds the same photo first
    let text = stdout_of(
        &unisight()
            .args(["search", "--index"])
            .arg(&index)
            .arg("--image")
            .arg(photos.join(key))
            .args(["-k", "2", "--rerank", "4"])
            .output()
            .unwrap(),
    );
    assert!(
        text.lines().next().unwrap().contains(key.as_str()),
        "{text}"
    );

    ok(unisight()
        .args(["index", "remove", "--index"])
        .arg(&index)
        .arg(key)
        .output()
        .unwrap());
    let out = unisight()
        .args(["search", "--index"])
        .arg(&index)
        .args(["--id", key])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no item with key"));
    let stats = ok(unisight()
        .args(["index", "stats", "--index"])
        .arg(&index)
        .output()
        .unwrap());
    assert!(stats.contains("\"items\": 11"), "{stats}");

    // without keys an item's key is its row in the embedding folder
    let bare = tmp.path().join("bare");
    ok(unisight()
        .args(["index", "build", "--no-keys", "--floats", "none", "--from"])
        .arg(tmp.path().join("emb"))
        .arg("--out")
        .arg(&bare)
        .output()
        .unwrap());
    let json = stdout_of(
        &unisight()
            .args(["search", "--index"])
            .arg(&bare)
            .args(["--id", "3", "-k", "1", "--json"])
            .output()
            .unwrap(),
    );
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[0]["key"], "3", "{json}");
    assert_eq!(rows[0]["distance"], 0);
    let stats = ok(unisight()
        .args(["index", "stats", "--index"])
        .arg(&bare)
        .output()
        .unwrap());
    // 12 items: header 64 + 12 x (code + 8-byte id) + footer 24, in one segment
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let code_bytes = stats["bits"].as_u64().unwrap() / 8;
    assert_eq!(
        stats["file_bytes"],
        64 + 12 * (code_bytes + 8) + 24,
        "{stats}"
    );
}

#[test]
fn killed_embed_resumes_and_never_looks_complete() {
    let Some(grocery) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    copy_photos(&grocery, &photos, 160);
    let out = tmp.path().join("emb");
    let args = |c: &mut Command| {
        c.args(["embed", "--batch", "2", "--threads", "1", "--input"])
            .arg(&photos)
            .arg("--out")
            .arg(&out);
    };
    let mut cmd = unisight();
    args(&mut cmd);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first_chunk = out.join(".partial/chunk-000000.json");
    let start = Instant::now();
    while !first_chunk.exists() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(first_chunk.exists(), "no chunk committed before the kill");
    assert!(
        !out.join("meta.json").exists(),
        "a killed run must not look complete"
    );
    let mut cmd = unisight();
    args(&mut cmd);
    let log = ok(cmd.output().unwrap());
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["embedded"], 160, "{log}");
    assert!(meta["resumed_chunks"].as_u64().unwrap() >= 1, "{log}");
    assert!(log.contains("resuming"), "{log}");
}

#[test]
fn sharded_embeds_merge_into_the_index_one_embed_gives() {
    let Some(grocery) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let photos = t.join("photos");
    copy_photos(&grocery, &photos, 12);
    let embed = |out: &str, shard: Option<&str>| {
        let mut command = unisight();
        command
            .args(["embed", "--input"])
            .arg(&photos)
            .arg("--out")
            .arg(t.join(out));
        if let Some(shard) = shard {
            command.args(["--shard", shard]);
        }
        ok(command.output().unwrap())
    };
    embed("all", None);
    let mut sizes = Vec::new();
    for i in 0..3 {
        let log = embed(&format!("s{i}"), Some(&format!("{i}/3")));
        assert!(log.contains(&format!("shard {i}/3: ")), "{log}");
        sizes.push(
            unisight_core::artifacts::EmbeddingSet::load(&t.join(format!("s{i}")))
                .unwrap()
                .len(),
        );
    }
    assert_eq!(sizes.iter().sum::<usize>(), 12, "{sizes:?}");
    let build = |out: &str, from: &[&str]| {
        let mut command = unisight();
        command.args(["index", "build", "--out"]).arg(t.join(out));
        for f in from {
            command.arg("--from").arg(t.join(f));
        }
        command.output().unwrap()
    };
    ok(build("idx-all", &["all"]));
    ok(build("idx-merged", &["s2", "s0", "s1"]));
    let all = unisight_index::Index::open(&t.join("idx-all")).unwrap();
    let merged = unisight_index::Index::open(&t.join("idx-merged")).unwrap();
    assert_eq!(merged.len(), all.len());
    let set = unisight_core::artifacts::EmbeddingSet::load(&t.join("all")).unwrap();
    for (i, item) in set.items.iter().enumerate() {
        let id = merged
            .id_of_key(&item.id)
            .unwrap()
            .expect("every item once");
        assert_eq!(merged.code(id).unwrap(), set.code(i), "{}", item.id);
    }
    // a shard missing, or given twice, is refused and leaves no index behind
    for (out, from, says) in [
        ("idx-missing", &["s0", "s1"][..], "shard 2/3 missing"),
        (
            "idx-twice",
            &["s0", "s1", "s2", "s1"][..],
            "shard 1/3 is also",
        ),
        (
            "idx-mixed",
            &["s0", "s1", "s2", "all"][..],
            "some folders to merge are not",
        ),
    ] {
        let output = build(out, from);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(says),
            "{out}: {stderr}"
        );
        assert!(!t.join(out).exists(), "{out} left behind");
    }
}
