//! Searching: the exact Hamming scan over every live segment, or the inverted file when one is
//! built, and the re-scoring of the Hamming shortlist by floats or asymmetrically. The policy of
//! which re-ranking a query gets lives here too ([`RerankRequest::resolve`]), for every caller.

use serde::Serialize;

use super::Index;
use crate::ivf::BinaryIvf;
use crate::kernels::Kernel;
use crate::rerank::AsymmetricQuery;
use crate::scan::{self, CodeBlock, ScanOptions};
use crate::topk::Hit;
use crate::{Error, Result};

/// How to re-score Hamming candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rerank {
    /// Return the Hamming order.
    None,
    /// Cosine of the float query with stored floats (needs an index with floats).
    Float,
    /// Inner product of the float query with the stored sign bits (no floats needed).
    Asymmetric,
}

/// The re-ranking a caller asks for; [`Index::rerank_for`] turns it into the [`Rerank`] a
/// query gets on this index, the same way for the service, the CLI and evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RerankRequest {
    /// The Hamming order.
    Off,
    /// Float re-ranking when the index keeps floats and the query has its float embedding,
    /// else the Hamming order.
    Auto,
    /// Float re-ranking; an error on an index without floats.
    Float,
    /// Asymmetric re-ranking (works on every index).
    Asymmetric,
}

impl RerankRequest {
    /// The re-ranking a query with (`has_float`) or without its float embedding gets from a
    /// store that keeps floats (`stores_floats`) or not: the one policy of the service, the CLI,
    /// evaluation and every backend.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for float re-ranking on a store without floats, or re-ranking
    /// without the query's float embedding.
    pub fn resolve(self, stores_floats: bool, has_float: bool) -> Result<Rerank> {
        let mode = match self {
            RerankRequest::Off => Rerank::None,
            RerankRequest::Auto if stores_floats && has_float => Rerank::Float,
            RerankRequest::Auto => Rerank::None,
            RerankRequest::Float if !stores_floats => {
                return Err(Error::InvalidInput(
                    "this index keeps no float vectors to re-rank with (asymmetric re-ranking \
                     needs none)"
                        .into(),
                ))
            }
            RerankRequest::Float => Rerank::Float,
            RerankRequest::Asymmetric => Rerank::Asymmetric,
        };
        if mode != Rerank::None && !has_float {
            return Err(Error::InvalidInput(
                "re-ranking needs the query's float embedding".into(),
            ));
        }
        Ok(mode)
    }
}

/// One result of a search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scored {
    /// Internal id.
    pub id: u64,
    /// Hamming distance to the query code.
    pub distance: u32,
    /// Re-ranking score (higher is better), when re-ranked.
    pub score: Option<f32>,
}

/// One query of a batched search ([`Index::search_reranked_batch`]).
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// Packed query code, the index's code width.
    pub code: &'a [u8],
    /// The query's float embedding (re-ranking needs it).
    pub float: Option<&'a [f32]>,
    /// Results wanted.
    pub k: usize,
    /// How the Hamming shortlist is re-scored.
    pub mode: Rerank,
}

/// How an index with an inverted file searches ([`Index::build_ivf`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IvfSettings {
    /// Lists (centroids).
    pub lists: usize,
    /// Lists scanned per query.
    pub probes: usize,
}

pub(super) struct AttachedIvf {
    pub(super) ivf: BinaryIvf,
    pub(super) probes: usize,
    pub(super) kernel: Kernel,
}

impl Index {
    /// Builds an inverted file over the live codes ([`BinaryIvf`], k-majority centroids learned
    /// from a sample, `seed` for the sample): from then on a search scans only the `probes` lists
    /// nearest to each query instead of every code, which makes it approximate (recall is traded
    /// for speed through `probes`) and its cost nearly independent of the index's size. Adds and
    /// removals keep the lists current (new codes go to their nearest list; the centroids stay as
    /// learned). The inverted file lives in memory (a copy of the codes and ids) and is rebuilt
    /// when the index is opened again.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for zero lists or probes, or an empty index (nothing to learn
    /// the lists from).
    pub fn build_ivf(&mut self, lists: usize, probes: usize, seed: u64) -> Result<IvfSettings> {
        if lists == 0 || probes == 0 {
            return Err(Error::InvalidInput(format!(
                "an inverted file needs at least one list and one probe (got {lists} lists, \
                 {probes} probes)"
            )));
        }
        if self.is_empty() {
            return Err(Error::InvalidInput(
                "an inverted file learns its lists from the index's codes: the index is empty"
                    .into(),
            ));
        }
        let words = self.layout().code_words();
        let mut codes = Vec::with_capacity(self.len() * words);
        let mut ids = Vec::with_capacity(self.len());
        for live in &self.segments {
            let seg_codes = live.segment.codes();
            for (row, &id) in live.segment.ids().iter().enumerate() {
                if !live.is_deleted(row) {
                    codes.extend_from_slice(&seg_codes[row * words..(row + 1) * words]);
                    ids.push(id);
                }
            }
        }
        const ITERATIONS: usize = 10;
        let ivf = BinaryIvf::build(&codes, &ids, words, lists, ITERATIONS, seed);
        let settings = IvfSettings {
            lists: ivf.nlist(),
            probes: probes.min(ivf.nlist()),
        };
        self.ivf = Some(AttachedIvf {
            ivf,
            probes: settings.probes,
            kernel: Kernel::detect(),
        });
        Ok(settings)
    }

    /// Changes how many lists a search through the inverted file scans (capped at the lists);
    /// returns the settings now in force, or `None` when no inverted file is built.
    pub fn set_ivf_probes(&mut self, probes: usize) -> Option<IvfSettings> {
        let attached = self.ivf.as_mut()?;
        attached.probes = probes.clamp(1, attached.ivf.nlist());
        self.ivf_settings()
    }

    /// The inverted file's settings, when searches go through one.
    pub fn ivf_settings(&self) -> Option<IvfSettings> {
        self.ivf.as_ref().map(|a| IvfSettings {
            lists: a.ivf.nlist(),
            probes: a.probes,
        })
    }

    /// The re-ranking a query with (`has_float`) or without its float embedding gets on this
    /// index when `request` is asked for ([`RerankRequest::resolve`]).
    ///
    /// # Errors
    /// As [`RerankRequest::resolve`].
    pub fn rerank_for(&self, request: RerankRequest, has_float: bool) -> Result<Rerank> {
        request.resolve(self.layout().floats.is_some(), has_float)
    }

    fn blocks(&self) -> Vec<CodeBlock<'_>> {
        self.segments
            .iter()
            .map(|s| CodeBlock {
                codes: s.segment.codes(),
                ids: s.segment.ids(),
                deleted: (!s.deleted_rows.is_empty()).then_some(s.deleted.as_slice()),
            })
            .collect()
    }

    fn words_of(&self, codes: &[u8]) -> Result<Vec<u64>> {
        let cb = self.layout().code_bytes();
        if !codes.len().is_multiple_of(cb) {
            return Err(Error::InvalidInput(format!(
                "query codes have {} bytes, not a multiple of the index's {cb}-byte codes",
                codes.len()
            )));
        }
        Ok(codes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect())
    }

    /// Top-k Hamming search for a batch of packed query codes (concatenated): exact, or through
    /// the inverted file when one is built ([`Index::build_ivf`]). `k` is capped at the number
    /// of items.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the query length does not fit the code width.
    pub fn search(&self, codes: &[u8], k: usize, options: &ScanOptions) -> Result<Vec<Vec<Hit>>> {
        let words = self.words_of(codes)?;
        // no query gets more hits than there are items, whatever k asks (k sizes allocations)
        let k = k.min(self.len());
        if let Some(attached) = &self.ivf {
            return Ok(words
                .chunks_exact(self.layout().code_words())
                .map(|q| attached.ivf.search(q, k, attached.probes, attached.kernel))
                .collect());
        }
        Ok(scan::search(
            &self.blocks(),
            self.layout().code_words(),
            &words,
            k,
            options,
        ))
    }

    /// Top-k for one query: the `k * factor` nearest by Hamming, re-scored as `mode` says
    /// (`query_float` is the query's float embedding, needed unless `mode` is `None`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a missing query vector, a dimension mismatch or float
    /// re-ranking on an index without floats.
    pub fn search_reranked(
        &self,
        code: &[u8],
        query_float: Option<&[f32]>,
        k: usize,
        factor: usize,
        mode: Rerank,
        options: &ScanOptions,
    ) -> Result<Vec<Scored>> {
        let query = Query {
            code,
            float: query_float,
            k,
            mode,
        };
        Ok(self
            .search_reranked_batch(&[query], factor, options)?
            .pop()
            .unwrap_or_default())
    }

    /// [`Index::search_reranked`] for several queries in one pass over the codes: every code is
    /// loaded once for the whole batch, which is what makes concurrent searches of a service
    /// cheaper together than one by one. Each query keeps its own k and re-ranking mode.
    ///
    /// # Errors
    /// As [`Index::search_reranked`], for the first query that is invalid (nothing is searched
    /// then).
    pub fn search_reranked_batch(
        &self,
        queries: &[Query<'_>],
        factor: usize,
        options: &ScanOptions,
    ) -> Result<Vec<Vec<Scored>>> {
        let shortlist_of = |q: &Query<'_>| {
            if q.mode == Rerank::None {
                q.k
            } else {
                q.k.saturating_mul(factor.max(1))
            }
        };
        for q in queries {
            self.check_rerank(q)?;
        }
        let shortlist = queries.iter().map(shortlist_of).max().unwrap_or(0);
        let codes: Vec<u8> = queries
            .iter()
            .flat_map(|q| q.code.iter().copied())
            .collect();
        let hits = self.search(&codes, shortlist, options)?;
        Ok(queries
            .iter()
            .zip(hits)
            .map(|(q, mut hits)| {
                hits.truncate(shortlist_of(q));
                self.rescore(q, hits)
            })
            .collect())
    }

    /// Refuses a query whose re-ranking cannot run on this index.
    fn check_rerank(&self, q: &Query<'_>) -> Result<()> {
        if q.code.len() != self.layout().code_bytes() {
            return Err(Error::InvalidInput(format!(
                "a query code has {} bytes, the index's codes {}",
                q.code.len(),
                self.layout().code_bytes()
            )));
        }
        if q.mode == Rerank::None {
            return Ok(());
        }
        let v = q.float.ok_or_else(|| {
            Error::InvalidInput("re-ranking needs the query's float embedding".into())
        })?;
        match q.mode {
            Rerank::Float => {
                let (dim, _) = self.layout().floats.ok_or_else(|| {
                    Error::InvalidInput(
                        "this index keeps no floats: use asymmetric re-ranking".into(),
                    )
                })?;
                check_dim(v, dim)
            }
            Rerank::Asymmetric => check_dim(v, self.layout().bits),
            Rerank::None => Ok(()),
        }
    }

    /// Re-scores one query's Hamming shortlist (checked by [`Index::check_rerank`]).
    fn rescore(&self, q: &Query<'_>, hits: Vec<Hit>) -> Vec<Scored> {
        let (mode, Some(v)) = (q.mode, q.float) else {
            return unranked(hits);
        };
        let score: Box<dyn Fn(usize, usize) -> f32 + '_> = match mode {
            Rerank::None => return unranked(hits),
            Rerank::Float => Box::new(move |seg, row| {
                self.segments[seg]
                    .segment
                    .floats()
                    .expect("checked: layout has floats")
                    .cosine(v, row)
            }),
            Rerank::Asymmetric => {
                let aq = AsymmetricQuery::new(v);
                Box::new(move |seg, row| aq.score(self.segments[seg].segment.code_bytes_of(row)))
            }
        };
        let mut scored: Vec<Scored> = hits
            .into_iter()
            .filter_map(|h| {
                let (seg, row) = self.locate(h.id)?;
                Some(Scored {
                    id: h.id,
                    distance: h.distance,
                    score: Some(score(seg, row)),
                })
            })
            .collect();
        scored.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.id.cmp(&b.id))
        });
        scored.truncate(q.k);
        scored
    }
}

fn check_dim(q: &[f32], dim: usize) -> Result<()> {
    if q.len() != dim {
        return Err(Error::InvalidInput(format!(
            "query vector has {} values, index expects {dim}",
            q.len()
        )));
    }
    Ok(())
}

/// Hamming hits as results without a re-ranking score.
fn unranked(hits: Vec<Hit>) -> Vec<Scored> {
    hits.into_iter()
        .map(|h| Scored {
            id: h.id,
            distance: h.distance,
            score: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Rerank, RerankRequest};
    use crate::{FloatKind, Index, IndexConfig};

    #[test]
    fn one_rerank_policy_for_every_caller() {
        let dir = tempfile::tempdir().unwrap();
        let bits = IndexConfig {
            bits: 64,
            floats: None,
            keys: true,
        };
        let plain = Index::create(&dir.path().join("plain"), bits).unwrap();
        let floats = Index::create(
            &dir.path().join("floats"),
            IndexConfig {
                floats: Some((64, FloatKind::F16)),
                ..bits
            },
        )
        .unwrap();
        assert_eq!(
            plain.rerank_for(RerankRequest::Auto, true).unwrap(),
            Rerank::None
        );
        assert_eq!(
            floats.rerank_for(RerankRequest::Auto, true).unwrap(),
            Rerank::Float
        );
        assert_eq!(
            floats.rerank_for(RerankRequest::Auto, false).unwrap(),
            Rerank::None
        );
        assert_eq!(
            floats.rerank_for(RerankRequest::Off, true).unwrap(),
            Rerank::None
        );
        assert!(plain.rerank_for(RerankRequest::Float, true).is_err());
        assert!(floats.rerank_for(RerankRequest::Float, false).is_err());
        assert_eq!(
            plain.rerank_for(RerankRequest::Asymmetric, true).unwrap(),
            Rerank::Asymmetric
        );
    }
}
