//! [`Milvus`]: a collection on a Milvus server as a [`Backend`]. Searches go to the server as
//! one request per batch (HAMMING distance over the codes); float and asymmetric re-ranking of
//! the shortlist run here, with the embedded index's own scoring, on the floats or codes the
//! server returns with it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use milvus::v2::prelude::*;
use milvus::v2::ConsistencyLevel;
use unisight_backend::{
    Backend, Description, Error, Hit, NewItem, Query, Rerank, Result, SearchKind, Shape, StoredItem,
};

use crate::bridge::Bridge;
use crate::collection::{self, ServerIndex, CODE, FLOATS, KEY, PATH};
use crate::shortlist::{hits_of, rescore};
use crate::url::MilvusUrl;

mod reads;
mod writes;

/// Most results Milvus returns for one query (its `topk` limit).
const MAX_TOPK: usize = 16_384;
/// Loading a collection into memory may take longer than one request.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// A Milvus collection of unisight codes.
pub struct Milvus {
    bridge: Bridge,
    client: Arc<ClientV2>,
    url: MilvusUrl,
    shape: Shape,
    index: ServerIndex,
    writable: bool,
    /// Adds and removes of this process, one at a time: the existence check before an insert
    /// and the insert itself must not interleave with another's (Milvus does not refuse a
    /// second row with the same primary key).
    writer: Mutex<()>,
    /// When this process last added or removed: reads within [`reads::READ_YOUR_WRITES`] of
    /// it are strong, so an acknowledged change is seen at once (session reads did not see a
    /// delete of this same client on the 2.3.5 server, tested); later reads are session reads,
    /// which skip the strong read's wait for the server's time tick (about 200 ms a lookup).
    last_write: Mutex<Option<Instant>>,
}

/// Server versions this backend was tested against: 2.3.x (`milvus==2.3.5`) and later 2.x.
fn version_supported(version: &str) -> bool {
    let v = version.trim_start_matches('v');
    let mut parts = v.split(['.', '-']);
    let major: Option<u32> = parts.next().and_then(|p| p.parse().ok());
    let minor: Option<u32> = parts.next().and_then(|p| p.parse().ok());
    matches!((major, minor), (Some(2), Some(m)) if m >= 3)
}

impl Milvus {
    /// Connects to the server of `url` and opens its collection (or alias), checking that it is
    /// a unisight collection of HAMMING-indexed codes and loading it for search.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the server cannot be reached within the URL's timeout,
    /// [`Error::Incompatible`] for a server older than 2.3, a missing collection, or one of
    /// another layout or metric.
    pub fn open(url: &MilvusUrl, writable: bool) -> Result<Self> {
        let (bridge, client) = connect(url)?;
        let name = url.collection.clone();
        let exists = has_collection(&bridge, &client, &name)?;
        if !exists {
            return Err(Error::Incompatible(format!(
                "{url}: no such collection on the server (make one with `unisight index build \
                 --out {url}`)"
            )));
        }
        let desc = {
            let (client, name) = (client.clone(), name.clone());
            bridge.call("describe collection", async move {
                client
                    .describe_collection(
                        DescribeCollectionRequest::builder()
                            .collection_name(name)
                            .build()?,
                    )
                    .await
            })?
        };
        let shape = collection::check(&name, desc.description())?;
        let indexes = {
            let (client, name) = (client.clone(), name.clone());
            bridge.call("describe index", async move {
                client
                    .describe_index(
                        DescribeIndexRequest::builder()
                            .collection_name(name)
                            .field_name(CODE)
                            .build()?,
                    )
                    .await
            })?
        };
        let index = collection::check_index(&name, indexes.indexes())?;
        load(&bridge, &client, &name)?;
        Ok(Milvus {
            bridge,
            client,
            url: url.clone(),
            shape,
            index,
            writable,
            writer: Mutex::new(()),
            last_write: Mutex::new(None),
        })
    }

    /// Makes the collection of `url` for codes of `shape`, indexed as `index`, and opens it for
    /// writing.
    ///
    /// # Errors
    /// [`Error::Incompatible`] when the collection exists already, or the server is older than
    /// 2.3; [`Error::Unavailable`] as [`Milvus::open`].
    pub fn create(url: &MilvusUrl, shape: Shape, index: ServerIndex) -> Result<Self> {
        let schema = collection::schema(shape)?;
        let (bridge, client) = connect(url)?;
        let name = url.collection.clone();
        let exists = has_collection(&bridge, &client, &name)?;
        if exists {
            return Err(Error::Incompatible(format!(
                "{url}: the collection exists already (drop it first, or build into a new one)"
            )));
        }
        {
            let (client, name) = (client.clone(), name.clone());
            bridge.call("create collection", async move {
                client
                    .create_collection(
                        CreateCollectionRequest::builder()
                            .collection_name(name)
                            .schema(schema)
                            .consistency_level(ConsistencyLevel::Session)
                            .build()?,
                    )
                    .await
            })?;
        }
        {
            let (client, name) = (client.clone(), name.clone());
            bridge.call("create index", async move {
                client
                    .create_index(
                        CreateIndexRequest::builder()
                            .collection_name(name)
                            .index_param(collection::index_param(index))
                            .build()?,
                    )
                    .await
            })?;
        }
        drop((bridge, client));
        Self::open(url, true)
    }

    /// Drops the collection of `url` if it exists; returns whether it did.
    ///
    /// # Errors
    /// [`Error::Unavailable`] as [`Milvus::open`].
    pub fn drop_collection(url: &MilvusUrl) -> Result<bool> {
        let (bridge, client) = connect(url)?;
        let name = url.collection.clone();
        bridge.call("drop collection", async move {
            let exists = client
                .has_collection(
                    HasCollectionRequest::builder()
                        .collection_name(name.clone())
                        .build()?,
                )
                .await?
                .exists();
            if exists {
                client
                    .drop_collection(
                        DropCollectionRequest::builder()
                            .collection_name(name)
                            .build()?,
                    )
                    .await?;
            }
            Ok(exists)
        })
    }

    /// Points `alias` at `collection` on the server of `url` (creating the alias, or moving it
    /// in one step: a search through the alias sees the old collection or the new, never
    /// neither).
    ///
    /// # Errors
    /// [`Error::Unavailable`] as [`Milvus::open`]; [`Error::Server`] when the server refuses.
    pub fn point_alias(url: &MilvusUrl, alias: &str, collection: &str) -> Result<()> {
        if !crate::url::valid_collection_name(alias) {
            return Err(Error::InvalidInput(format!(
                "{alias:?} is not a valid alias name"
            )));
        }
        let (bridge, client) = connect(url)?;
        let (alias, collection) = (alias.to_string(), collection.to_string());
        bridge.call("point alias", async move {
            let current = client
                .describe_alias(
                    DescribeAliasRequest::builder()
                        .alias(alias.clone())
                        .build()?,
                )
                .await;
            if current.is_ok() {
                client
                    .alter_alias(
                        AlterAliasRequest::builder()
                            .alias(alias)
                            .collection_name(collection)
                            .build()?,
                    )
                    .await
            } else {
                client
                    .create_alias(
                        CreateAliasRequest::builder()
                            .alias(alias)
                            .collection_name(collection)
                            .build()?,
                    )
                    .await
            }
        })
    }

    /// Seals what was added into segments the server indexes and keeps, waiting until it has:
    /// after a bulk load, searches then run on the server's index instead of on growing
    /// segments, and a restart replays nothing.
    ///
    /// # Errors
    /// [`Error::Unavailable`] as [`Milvus::open`], also when sealing takes longer than
    /// [`LOAD_TIMEOUT`].
    pub fn flush(&self) -> Result<()> {
        let (client, name) = (self.client.clone(), self.url.collection.clone());
        self.bridge.call_within("flush", LOAD_TIMEOUT, async move {
            client
                .flush(
                    FlushRequest::builder()
                        .collection_names([name])
                        .wait_flushed_ms(LOAD_TIMEOUT.as_millis() as i64)
                        .build()?,
                )
                .await
        })?;
        Ok(())
    }

    /// The collection (or alias) this backend serves.
    pub fn url(&self) -> &MilvusUrl {
        &self.url
    }

    /// How the server indexes the codes.
    pub fn server_index(&self) -> ServerIndex {
        self.index
    }

    fn check_code(&self, code: &[u8]) -> Result<()> {
        if code.len() * 8 != self.shape.bits {
            return Err(Error::InvalidInput(format!(
                "a code has {} bytes, the collection's codes {}",
                code.len(),
                self.shape.bits / 8
            )));
        }
        Ok(())
    }

    fn check_query(&self, q: &Query<'_>) -> Result<()> {
        self.check_code(q.code)?;
        let dim = match q.mode {
            Rerank::None => return Ok(()),
            Rerank::Float => self.shape.float_dim.ok_or_else(|| {
                Error::InvalidInput(
                    "this collection keeps no floats: use asymmetric re-ranking".into(),
                )
            })?,
            Rerank::Asymmetric => self.shape.bits,
        };
        let v = q.float.ok_or_else(|| {
            Error::InvalidInput("re-ranking needs the query's float embedding".into())
        })?;
        if v.len() != dim {
            return Err(Error::InvalidInput(format!(
                "query vector has {} values, the collection expects {dim}",
                v.len()
            )));
        }
        Ok(())
    }
}

/// A client of the server of `url`, on a runtime of its own, after checking the server's
/// version.
fn connect(url: &MilvusUrl) -> Result<(Bridge, Arc<ClientV2>)> {
    let bridge = Bridge::new(url.timeout)?;
    let config = ConnectConfig::new()
        .uri(url.endpoint())
        .connect_timeout(url.timeout)
        .rpc_timeout(url.timeout)
        .retry(
            RetryConfig::new()
                .max_attempts(3)
                .max_retry_timeout(url.timeout)
                .initial_backoff(Duration::from_millis(100))
                .max_backoff(Duration::from_millis(500)),
        );
    let connected =
        bridge.block_on(async { tokio::time::timeout(url.timeout, ClientV2::new(&config)).await });
    let client = match connected {
        Ok(Ok(client)) => Arc::new(client),
        Ok(Err(e)) => return Err(crate::bridge::classify(&format!("connect to {url}"), e)),
        Err(_) => {
            return Err(Error::Unavailable(format!(
                "connect to {url}: no answer within {:.1} s",
                url.timeout.as_secs_f64()
            )))
        }
    };
    let version = {
        let client = client.clone();
        bridge.call("server version", async move {
            client
                .server_version(GetServerVersionRequest::builder().build()?)
                .await
        })?
    };
    if !version_supported(version.version()) {
        return Err(Error::Incompatible(format!(
            "{url}: the server is Milvus {}; unisight needs 2.3 or a later 2.x",
            version.version()
        )));
    }
    Ok((bridge, client))
}

/// Whether the server has a collection (or alias) `name`.
fn has_collection(bridge: &Bridge, client: &Arc<ClientV2>, name: &str) -> Result<bool> {
    let (client, name) = (client.clone(), name.to_string());
    let answer = bridge.call("has collection", async move {
        client
            .has_collection(
                HasCollectionRequest::builder()
                    .collection_name(name)
                    .build()?,
            )
            .await
    })?;
    Ok(answer.exists())
}

/// Loads the collection for search (a no-op when it is loaded).
fn load(bridge: &Bridge, client: &Arc<ClientV2>, name: &str) -> Result<()> {
    let (client, name) = (client.clone(), name.to_string());
    bridge.call_within("load collection", LOAD_TIMEOUT, async move {
        client
            .load_collection(
                LoadCollectionRequest::builder()
                    .collection_name(name)
                    .sync(true)
                    .timeout_ms(LOAD_TIMEOUT.as_millis() as i64)
                    .build()?,
            )
            .await
    })
}

fn column<'a>(results: &'a QueryResults, name: &str) -> Result<&'a FieldData> {
    results
        .get_output_field(name)
        .ok_or_else(|| Error::Server(format!("the server's answer has no `{name}` column")))
}

pub(crate) fn malformed(what: &str) -> Error {
    Error::Server(format!(
        "the server's answer has {what} of an unexpected type"
    ))
}

impl Backend for Milvus {
    fn shape(&self) -> Shape {
        self.shape
    }

    fn describe(&self) -> Result<Description> {
        Ok(Description {
            kind: "milvus",
            location: self.url.to_string(),
            shape: self.shape,
            items: self.count()?,
            bytes: None,
            search: match self.index {
                ServerIndex::Flat => SearchKind::Exact,
                ServerIndex::Ivf { nlist } => SearchKind::Ivf {
                    lists: nlist,
                    probes: self.url.nprobe.unwrap_or(nlist).min(nlist),
                },
            },
        })
    }

    fn count(&self) -> Result<usize> {
        let (client, name) = (self.client.clone(), self.url.collection.clone());
        let response = self.bridge.call("count", async move {
            client
                .query(
                    QueryRequest::builder()
                        .collection_name(name)
                        .filter("")
                        .output_fields(["count(*)"])
                        .consistency_level(ConsistencyLevel::Strong)
                        .build()?,
                )
                .await
        })?;
        let counts = column(response.results(), "count(*)")?
            .as_int64()
            .ok_or_else(|| malformed("a count"))?;
        Ok(counts.first().copied().unwrap_or(0).max(0) as usize)
    }

    fn search(
        &self,
        queries: &[Query<'_>],
        rerank_factor: usize,
        _threads: usize,
    ) -> Result<Vec<Vec<Hit>>> {
        for q in queries {
            self.check_query(q)?;
        }
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        let shortlist_of = |q: &Query<'_>| {
            match q.mode {
                Rerank::None => q.k,
                _ => q.k.saturating_mul(rerank_factor.max(1)),
            }
            .clamp(1, MAX_TOPK)
        };
        let limit = queries.iter().map(shortlist_of).max().unwrap_or(1);
        let mut fields = vec![PATH];
        if queries.iter().any(|q| q.mode == Rerank::Float) {
            fields.push(FLOATS);
        }
        if queries.iter().any(|q| q.mode == Rerank::Asymmetric) {
            fields.push(CODE);
        }
        let mut params = std::collections::HashMap::new();
        if let ServerIndex::Ivf { nlist } = self.index {
            let nprobe = self.url.nprobe.unwrap_or(nlist).min(nlist);
            params.insert("nprobe".to_string(), nprobe.to_string());
        }
        let vectors: Vec<Vec<u8>> = queries.iter().map(|q| q.code.to_vec()).collect();
        let consistency = self.read_consistency();
        let (client, name) = (self.client.clone(), self.url.collection.clone());
        let response = self.bridge.call("search", async move {
            client
                .search(
                    SearchRequest::builder()
                        .collection_name(name)
                        .vector_field(CODE)
                        .vectors(SearchVectors::Binary(vectors))
                        .metric_type(MetricType::Hamming)
                        .limit(limit as i64)
                        .extra_params(params)
                        .output_fields(fields)
                        .consistency_level(consistency)
                        .build()?,
                )
                .await
        })?;
        let results = response.results().get_results();
        if results.len() != queries.len() {
            return Err(Error::Server(format!(
                "asked for {} result lists, the server answered {}",
                queries.len(),
                results.len()
            )));
        }
        queries
            .iter()
            .zip(results)
            .map(|(q, result)| {
                let mut hits = hits_of(result, q)?;
                hits.truncate(shortlist_of(q));
                Ok(rescore(q, hits))
            })
            .collect()
    }

    fn get(&self, key: &str) -> Result<Option<StoredItem>> {
        let mut fields = vec![KEY, PATH, CODE];
        if self.shape.float_dim.is_some() {
            fields.push(FLOATS);
        }
        let rows = self.fetch(vec![key.to_string()], fields, self.read_consistency())?;
        let keys = column(&rows, KEY)?
            .as_varchar()
            .ok_or_else(|| malformed("keys"))?;
        let Some(row) = keys.iter().position(|k| k == key) else {
            return Ok(None);
        };
        let path = column(&rows, PATH)?
            .as_varchar()
            .ok_or_else(|| malformed("paths"))?;
        let codes = column(&rows, CODE)?
            .as_binary_vectors()
            .ok_or_else(|| malformed("codes"))?;
        let floats = match self.shape.float_dim {
            Some(_) => Some(
                column(&rows, FLOATS)?
                    .as_array_float()
                    .ok_or_else(|| malformed("floats"))?[row]
                    .clone(),
            ),
            None => None,
        };
        Ok(Some(StoredItem {
            key: key.to_string(),
            path: path[row].clone(),
            code: codes[row].clone(),
            floats,
        }))
    }

    fn add(&self, items: &[NewItem<'_>]) -> Result<()> {
        self.insert(items)
    }

    fn remove(&self, keys: &[&str]) -> Result<usize> {
        self.delete(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::version_supported;

    #[test]
    fn versions_from_2_3_on_are_served() {
        assert!(version_supported("v2.3.5-lite"));
        assert!(version_supported("2.3.0"));
        assert!(version_supported("v2.6.1"));
        assert!(!version_supported("v2.2.16"));
        assert!(!version_supported("v3.0.0"));
        assert!(!version_supported("garbage"));
    }
}
