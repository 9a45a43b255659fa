//! The read path of [`Milvus`]: lookups by key and the consistency every read runs at (strong
//! right after this process's own change, session otherwise), and the key filter of the
//! server's expression language.

use std::time::{Duration, Instant};

use milvus::v2::prelude::*;
use milvus::v2::ConsistencyLevel;
use unisight_backend::Result;

use super::Milvus;
use crate::collection::KEY;

/// How long after this process's own change its reads stay strong.
pub(super) const READ_YOUR_WRITES: Duration = Duration::from_secs(1);

impl Milvus {
    /// The consistency of a lookup or search now: strong right after this process's own
    /// change, session otherwise ([`Milvus::last_write`]).
    pub(super) fn read_consistency(&self) -> ConsistencyLevel {
        let recent = self
            .last_write
            .lock()
            .ok()
            .and_then(|w| *w)
            .is_some_and(|at| at.elapsed() < READ_YOUR_WRITES);
        if recent {
            ConsistencyLevel::Strong
        } else {
            ConsistencyLevel::Session
        }
    }

    /// Notes a change of this process, for [`Milvus::read_consistency`].
    pub(super) fn wrote(&self) {
        if let Ok(mut at) = self.last_write.lock() {
            *at = Some(Instant::now());
        }
    }

    /// The stored rows of `keys` (those that exist), read at `consistency`: strong where
    /// another writer's rows must be seen (the duplicate check of an add), else
    /// [`Milvus::read_consistency`] (a strong lookup waits for the server's time tick, about
    /// 200 ms: `scripts/bench-milvus-vs-embedded.sh` measured 200 ms against 11 ms).
    pub(super) fn fetch(
        &self,
        keys: Vec<String>,
        fields: Vec<&'static str>,
        consistency: ConsistencyLevel,
    ) -> Result<QueryResults> {
        let (client, name) = (self.client.clone(), self.url.collection.clone());
        let response = self.bridge.call("get", async move {
            client
                .query(
                    QueryRequest::builder()
                        .collection_name(name)
                        .filter(key_filter(&keys))
                        .output_fields(fields)
                        .consistency_level(consistency)
                        .build()?,
                )
                .await
        })?;
        Ok(response.results().clone())
    }
}

/// `key in ["k1", "k2"]` with every key quoted as a string literal of Milvus's expression
/// language. A Milvus 2.3 server does not take the filter templates the client sends for
/// lookups by primary key, so the keys travel inside the expression, escaped: a key is data,
/// never part of the expression.
pub(super) fn key_filter(keys: &[String]) -> String {
    let mut filter = format!("{KEY} in [");
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            filter.push(',');
        }
        filter.push('"');
        for c in key.chars() {
            match c {
                '"' => filter.push_str("\\\""),
                '\\' => filter.push_str("\\\\"),
                '\n' => filter.push_str("\\n"),
                '\r' => filter.push_str("\\r"),
                '\t' => filter.push_str("\\t"),
                c if c.is_control() => filter.push_str(&format!("\\u{:04x}", c as u32)),
                c => filter.push(c),
            }
        }
        filter.push('"');
    }
    filter.push(']');
    filter
}

#[cfg(test)]
mod tests {
    use super::key_filter;

    #[test]
    fn keys_are_quoted_as_data() {
        let keys = [
            "plain".to_string(),
            "a\"b\\c\nd".to_string(),
            "ü".to_string(),
        ];
        assert_eq!(key_filter(&keys), r#"key in ["plain","a\"b\\c\nd","ü"]"#);
    }
}
