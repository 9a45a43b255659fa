//! What an inverted file costs in recall and gains in speed on a given index, so that a user can
//! choose its lists and probes from their own data rather than from ours.

use std::time::Instant;

use rand::SeedableRng;
use serde::Serialize;

use crate::{Error, Hit, Index, Result, ScanOptions};

/// The inverted file at one probe count.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeRecall {
    /// Lists scanned per query.
    pub probes: usize,
    /// Share of the exact top-k found.
    pub recall: f64,
    /// Mean microseconds per query, one query at a time on one thread.
    pub micros: f64,
}

/// [`measure_ivf_recall`]'s answer.
#[derive(Debug, Clone, Serialize)]
pub struct IvfRecall {
    /// Live items of the index.
    pub items: usize,
    /// Queries measured.
    pub queries: usize,
    /// Results compared per query.
    pub k: usize,
    /// Lists of the inverted file.
    pub lists: usize,
    /// Seconds the inverted file took to build.
    pub build_seconds: f64,
    /// Mean microseconds per query of the exact scan, one at a time on one thread.
    pub exact_micros: f64,
    /// One row per probe count asked for.
    pub probes: Vec<ProbeRecall>,
}

/// Samples `queries` stored items (seeded), finds each one's exact top-k (itself left out),
/// then builds an inverted file of `lists` lists on `index` (left attached) and measures, at
/// each probe count, the share of those top-k it finds and its time per query.
///
/// # Errors
/// [`Error::InvalidInput`] for an empty index, `k` or `queries` of zero, or zero lists or
/// probes; read errors of the index.
pub fn measure_ivf_recall(
    index: &mut Index,
    lists: usize,
    probes: &[usize],
    queries: usize,
    k: usize,
    seed: u64,
) -> Result<IvfRecall> {
    if k == 0 || queries == 0 || probes.contains(&0) {
        return Err(Error::InvalidInput(
            "k, queries and every probe count must be above zero".into(),
        ));
    }
    let mut ids = Vec::with_capacity(index.len());
    for item in index.items() {
        ids.push(item?.id);
    }
    if ids.is_empty() {
        return Err(Error::InvalidInput(
            "the index is empty: nothing to query".into(),
        ));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let query_ids: Vec<u64> = rand::seq::index::sample(&mut rng, ids.len(), queries.min(ids.len()))
        .iter()
        .map(|i| ids[i])
        .collect();
    let mut codes = Vec::new();
    for &id in &query_ids {
        codes.extend_from_slice(index.code(id)?);
    }
    let code_bytes = index.layout().code_bytes();
    let one_thread = ScanOptions::default();
    // each query's own item is left out: k + 1 asked for, the first k others kept
    let timed = |index: &Index| -> Result<(Vec<Vec<u64>>, f64)> {
        let start = Instant::now();
        let mut found = Vec::with_capacity(query_ids.len());
        for (code, &id) in codes.chunks_exact(code_bytes).zip(&query_ids) {
            let hits: Vec<Hit> = index
                .search(code, k + 1, &one_thread)?
                .pop()
                .unwrap_or_default();
            found.push(
                hits.into_iter()
                    .map(|h| h.id)
                    .filter(|&h| h != id)
                    .take(k)
                    .collect::<Vec<u64>>(),
            );
        }
        Ok((
            found,
            start.elapsed().as_secs_f64() * 1e6 / query_ids.len() as f64,
        ))
    };
    let (exact, exact_micros) = timed(index)?;
    let start = Instant::now();
    let built = index.build_ivf(lists, 1, seed)?;
    let build_seconds = start.elapsed().as_secs_f64();
    let wanted: usize = exact.iter().map(Vec::len).sum();
    let mut rows = Vec::with_capacity(probes.len());
    for &p in probes {
        let settings = index.set_ivf_probes(p).expect("built above");
        let (found, micros) = timed(index)?;
        let hit: usize = found
            .iter()
            .zip(&exact)
            .map(|(f, e)| f.iter().filter(|id| e.contains(id)).count())
            .sum();
        rows.push(ProbeRecall {
            probes: settings.probes,
            recall: hit as f64 / wanted.max(1) as f64,
            micros,
        });
    }
    Ok(IvfRecall {
        items: ids.len(),
        queries: query_ids.len(),
        k,
        lists: built.lists,
        build_seconds,
        exact_micros,
        probes: rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IndexConfig, NewItem};
    use rand::Rng;

    #[test]
    fn every_list_probed_finds_everything_and_more_probes_never_find_less() {
        let dir = tempfile::tempdir().unwrap();
        let config = IndexConfig {
            bits: 128,
            floats: None,
            keys: true,
        };
        let mut index = Index::create(dir.path(), config).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        // 30 clusters of 40 codes, each member a few bits from its centre
        let centres: Vec<[u8; 16]> = (0..30).map(|_| rng.gen()).collect();
        let codes: Vec<[u8; 16]> = (0..1200)
            .map(|i| {
                let mut c = centres[i % 30];
                for _ in 0..3 {
                    let bit = rng.gen_range(0..128);
                    c[bit / 8] ^= 1 << (bit % 8);
                }
                c
            })
            .collect();
        let keys: Vec<String> = (0..codes.len()).map(|i| format!("k{i}")).collect();
        let items: Vec<NewItem> = codes
            .iter()
            .zip(&keys)
            .map(|(code, key)| NewItem {
                key,
                path: "",
                code,
                floats: None,
            })
            .collect();
        index.add(&items).unwrap();
        let report = measure_ivf_recall(&mut index, 16, &[1, 4, 16, 99], 200, 5, 3).unwrap();
        assert_eq!(
            (report.items, report.queries, report.lists),
            (1200, 200, 16)
        );
        let recalls: Vec<f64> = report.probes.iter().map(|r| r.recall).collect();
        assert!(recalls.windows(2).all(|w| w[0] <= w[1]), "{recalls:?}");
        assert_eq!(report.probes[3].probes, 16, "probes capped at the lists");
        assert_eq!(recalls[2], 1.0);
        assert!(
            recalls[0] > 0.5,
            "one probe on clustered codes: {recalls:?}"
        );
        assert!(measure_ivf_recall(&mut index, 16, &[0], 10, 5, 3).is_err());
    }
}
