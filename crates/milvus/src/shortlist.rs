//! A query's Hamming shortlist as the server answers it, and its re-scoring here with the
//! embedded index's own scoring (float cosine on the returned floats, or the asymmetric inner
//! product on the returned codes), best first.

use milvus::v2::prelude::*;
use unisight_backend::{Error, Hit, Query, Rerank, Result};
use unisight_index::rerank::{AsymmetricQuery, FloatRows};

use crate::backend::malformed;
use crate::collection::{CODE, FLOATS, PATH};

fn single_column<'a>(result: &'a SingleResult, name: &str) -> Result<&'a FieldData> {
    result
        .get_output_field(name)
        .ok_or_else(|| Error::Server(format!("the server's answer has no `{name}` column")))
}

/// One query's Hamming shortlist as the server answered it, with the stored floats or codes
/// that its re-ranking needs.
pub(crate) struct Candidate {
    hit: Hit,
    floats: Option<Vec<f32>>,
    code: Option<Vec<u8>>,
}

pub(crate) fn hits_of(result: &SingleResult, q: &Query<'_>) -> Result<Vec<Candidate>> {
    let Ids::VarChar(keys) = result.get_ids() else {
        return Err(malformed("ids"));
    };
    let scores = result.get_scores();
    let paths = single_column(result, PATH)?
        .as_varchar()
        .ok_or_else(|| malformed("paths"))?;
    let floats = match q.mode {
        Rerank::Float => Some(
            single_column(result, FLOATS)?
                .as_array_float()
                .ok_or_else(|| malformed("floats"))?,
        ),
        _ => None,
    };
    let codes = match q.mode {
        Rerank::Asymmetric => Some(
            single_column(result, CODE)?
                .as_binary_vectors()
                .ok_or_else(|| malformed("codes"))?,
        ),
        _ => None,
    };
    if scores.len() != keys.len() || paths.len() != keys.len() {
        return Err(malformed("columns"));
    }
    Ok((0..keys.len())
        .map(|i| Candidate {
            hit: Hit {
                key: keys[i].clone(),
                path: paths[i].clone(),
                // HAMMING distances come back as whole floats
                distance: scores[i].round().max(0.0) as u32,
                score: None,
            },
            floats: floats.and_then(|f| f.get(i).cloned()),
            code: codes.and_then(|c| c.get(i).cloned()),
        })
        .collect())
}

/// Re-scores a shortlist as the embedded index does: best score first, ties by Hamming order.
pub(crate) fn rescore(q: &Query<'_>, candidates: Vec<Candidate>) -> Vec<Hit> {
    let mut hits: Vec<Hit> = match (q.mode, q.float) {
        (Rerank::Float, Some(v)) => candidates
            .into_iter()
            .map(|c| {
                let score = c
                    .floats
                    .as_deref()
                    .map_or(f32::NEG_INFINITY, |f| FloatRows::F32(f).cosine(v, 0));
                Hit {
                    score: Some(score),
                    ..c.hit
                }
            })
            .collect(),
        (Rerank::Asymmetric, Some(v)) => {
            let query = AsymmetricQuery::new(v);
            candidates
                .into_iter()
                .map(|c| Hit {
                    score: Some(
                        c.code
                            .as_deref()
                            .map_or(f32::NEG_INFINITY, |b| query.score(b)),
                    ),
                    ..c.hit
                })
                .collect()
        }
        _ => return candidates.into_iter().map(|c| c.hit).take(q.k).collect(),
    };
    hits.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.distance.cmp(&b.distance))
    });
    hits.truncate(q.k);
    hits
}
