//! `unisight eval` and `compare` on a manifest data set of real photos.

use super::*;

/// A manifest data set of real photos: `query.jsonl` and `gallery.jsonl` with the fine label,
/// the photo's burst (its product folder) as domain, plus one corrupt and one unlabelled row.
fn manifest_dataset(grocery: &Path, root: &Path) {
    let list = std::fs::read_to_string(grocery.join("test.txt")).unwrap();
    let classes = ["Banana", "Kiwi", "Oat-Milk", "Yoghurt"];
    let (mut query, mut gallery) = (String::new(), String::new());
    let mut seen = std::collections::HashMap::new();
    for line in list.lines() {
        let rel = line.split(',').next().unwrap().trim();
        let Some(class) = classes.iter().find(|c| rel.contains(&format!("/{c}/"))) else {
            continue;
        };
        let n = seen.entry(*class).or_insert(0);
        *n += 1;
        if *n > 8 {
            continue;
        }
        let name = rel.replace('/', "_");
        std::fs::copy(grocery.join(rel), root.join(&name)).unwrap();
        let row = format!(
            "{{\"path\": \"{name}\", \"label\": \"{class}\", \"domain\": \"{class}-burst\"}}\n"
        );
        if *n % 2 == 0 {
            gallery.push_str(&row);
        } else {
            query.push_str(&row);
        }
    }
    std::fs::write(root.join("corrupt.jpg"), b"\xff\xd8\xff\xe0 not a jpeg").unwrap();
    query.push_str("{\"path\": \"corrupt.jpg\", \"label\": \"Kiwi\"}\n");
    let first: serde_json::Value = serde_json::from_str(query.lines().next().unwrap()).unwrap();
    query.push_str(&format!(
        "{{\"path\": {}, \"id\": \"nolabel\"}}\n",
        first["path"]
    ));
    std::fs::write(root.join("query.jsonl"), query).unwrap();
    std::fs::write(root.join("gallery.jsonl"), gallery).unwrap();
}

#[test]
fn eval_reports_and_compares_models_on_real_photos() {
    let Some(grocery) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let root = t.join("shop");
    std::fs::create_dir(&root).unwrap();
    manifest_dataset(&grocery, &root);
    let task_file = |k: &str, group: &str| {
        format!(
            "[train]\nsteps = 0\n\n[datasets.shop]\nkind = \"manifest\"\nroot = \"shop\"\n\n[[tasks]]\nname = \"product\"\n\
             sources = [\"shop\"]\nlabel = \"label\"\n[tasks.eval]\nqueries = \"shop:query\"\n\
             gallery = \"shop:gallery\"\nk = {k}\n{group}"
        )
    };
    std::fs::write(t.join("tasks.toml"), task_file("[1, 3]", "")).unwrap();
    let model = t.join("m.safetensors");
    ok(unisight()
        .args(["init-model", "--dim", "256", "--out"])
        .arg(&model)
        .output()
        .unwrap());
    let eval = |config: &str, out: &str| {
        unisight()
            .args(["eval", "--model"])
            .arg(&model)
            .arg("--config")
            .arg(t.join(config))
            .arg("--cache-dir")
            .arg(t.join("cache"))
            .arg("--out")
            .arg(t.join(out))
            .output()
            .unwrap()
    };
    let first = ok(eval("tasks.toml", "a"));
    assert!(first.contains("embedding"), "{first}");
    assert!(
        first.contains("1 without the label") && first.contains("1 unreadable"),
        "{first}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.join("a/report.json")).unwrap()).unwrap();
    let task = &report["tasks"][0];
    assert_eq!(task["metrics"]["queries"], 16);
    assert_eq!(task["metrics"]["gallery"], 16);
    let r1 = task["metrics"]["float"]["recall"][0].as_f64().unwrap();
    let r3 = task["metrics"]["float"]["recall"][1].as_f64().unwrap();
    assert!(r1 > 0.25 && r1 <= r3 && r3 <= 1.0, "{r1} {r3}");
    for f in ["report.md", "recall-product.png", "examples.html"] {
        assert!(t.join("a").join(f).exists(), "{f}");
    }
    let html = std::fs::read_to_string(t.join("a/examples.html")).unwrap();
    let thumbs = std::fs::read_dir(t.join("a/thumbs")).unwrap().count();
    assert!(
        html.contains("class=\"ok\"") && thumbs > 10,
        "{thumbs} thumbnails"
    );

    // the second run reuses the cached embeddings; excluding each photo's burst makes it harder
    std::fs::write(
        t.join("grouped.toml"),
        task_file("[1, 3]", "group = \"domain\""),
    )
    .unwrap();
    let second = ok(eval("grouped.toml", "b"));
    assert!(!second.contains("embedding 1"), "{second}");
    let grouped: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.join("b/report.json")).unwrap()).unwrap();
    // every gallery item of a query's class is in its burst: nothing left to find
    assert_eq!(
        grouped["tasks"][0]["metrics"]["queries_without_match"]
            .as_array()
            .unwrap()
            .len(),
        16
    );

    // flip averaging: its own cache (the images are embedded again) and its own name
    let flipped = ok(unisight()
        .args(["eval", "--flip", "--model"])
        .arg(&model)
        .arg("--config")
        .arg(t.join("tasks.toml"))
        .arg("--cache-dir")
        .arg(t.join("cache"))
        .arg("--out")
        .arg(t.join("f"))
        .output()
        .unwrap());
    assert!(flipped.contains("embedding"), "{flipped}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.join("f/report.json")).unwrap()).unwrap();
    assert!(
        report["model"].as_str().unwrap().ends_with("+flip"),
        "{report}"
    );
    let flip_r1 = report["tasks"][0]["metrics"]["float"]["recall"][0]
        .as_f64()
        .unwrap();
    assert!(flip_r1 > 0.25, "{flip_r1}");

    // k beyond the gallery is a clear error
    std::fs::write(t.join("far.toml"), task_file("[100]", "")).unwrap();
    let far = eval("far.toml", "c");
    assert!(!far.status.success());
    let msg = String::from_utf8_lossy(&far.stderr);
    assert!(msg.contains("k = 100") && msg.contains("16 items"), "{msg}");

    // the same model under two names: no difference, and none reported as significant
    let cmp = ok(unisight()
        .args(["compare", "--out"])
        .arg(t.join("cmp"))
        .arg(format!("base={}", t.join("a").display()))
        .arg(format!("again={0},{0}", t.join("a").display()))
        .output()
        .unwrap());
    assert!(cmp.contains("+0.000 [+0.000, +0.000] n.s."), "{cmp}");
    assert!(t.join("cmp/compare-product.png").exists());
    let bad = unisight()
        .args(["compare", "--out"])
        .arg(t.join("cmp2"))
        .arg(t.join("tasks.toml"))
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && msg.contains("tasks.toml"), "{msg}");

    // from embedding folders: the cached query folder, leave-one-out
    let folders: Vec<PathBuf> = std::fs::read_dir(t.join("cache"))
        .unwrap()
        .flat_map(|m| std::fs::read_dir(m.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    let gallery_dir = folders
        .iter()
        .find(|p| p.ends_with("shop-gallery"))
        .unwrap();
    let out = unisight()
        .args(["eval", "--embeddings"])
        .arg(gallery_dir)
        .args(["--k", "1", "--out"])
        .arg(t.join("d"))
        .output()
        .unwrap();
    // the cache keeps no labels: nothing to evaluate, said plainly
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("empty"), "{msg}");
    // `unisight embed` of a labelled manifest, evaluated leave-one-out
    ok(unisight()
        .args(["embed", "--model"])
        .arg(&model)
        .arg("--input")
        .arg(root.join("gallery.jsonl"))
        .arg("--out")
        .arg(t.join("emb"))
        .output()
        .unwrap());
    let out = ok(unisight()
        .args(["eval", "--embeddings"])
        .arg(t.join("emb"))
        .args(["--k", "1,2", "--task", "shelf", "--image-root"])
        .arg(&root)
        .arg("--out")
        .arg(t.join("e"))
        .output()
        .unwrap());
    assert!(
        out.contains("## shelf") && out.contains("Recall@2"),
        "{out}"
    );
    assert!(std::fs::read_dir(t.join("e/thumbs")).unwrap().count() > 5);
}
