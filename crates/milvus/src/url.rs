//! Where a Milvus backend lives: `milvus://HOST:PORT/COLLECTION`, with optional query settings
//! `nprobe=N` (lists searched per query when the collection has an inverted file) and
//! `timeout_s=S` (the deadline of every request, 5 s by default).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Default deadline of one request to the server.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed `milvus://` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MilvusUrl {
    /// Host name or address of the server's proxy.
    pub host: String,
    /// gRPC port (19530 by default).
    pub port: u16,
    /// Collection, or alias of one.
    pub collection: String,
    /// Lists searched per query on an inverted file (`None`: all of them, the exact answer).
    pub nprobe: Option<usize>,
    /// Deadline of each request.
    pub timeout: Duration,
}

/// Why a `milvus://` address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url:?} is not a Milvus address ({why}); expected milvus://HOST:PORT/COLLECTION[?nprobe=N&timeout_s=S]")]
pub struct BadUrl {
    url: String,
    why: String,
}

impl MilvusUrl {
    /// Whether `text` names a Milvus backend at all (rather than an index folder).
    pub fn is_milvus(text: &str) -> bool {
        text.starts_with("milvus://")
    }

    /// The `http://` endpoint the gRPC client connects to.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// The same server, another collection.
    #[must_use]
    pub fn with_collection(&self, collection: &str) -> Self {
        MilvusUrl {
            collection: collection.to_string(),
            ..self.clone()
        }
    }
}

impl FromStr for MilvusUrl {
    type Err = BadUrl;

    fn from_str(text: &str) -> Result<Self, BadUrl> {
        let bad = |why: &str| BadUrl {
            url: text.to_string(),
            why: why.to_string(),
        };
        let rest = text
            .strip_prefix("milvus://")
            .ok_or_else(|| bad("it does not start with milvus://"))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, collection) = rest
            .split_once('/')
            .ok_or_else(|| bad("no /COLLECTION after the host"))?;
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| bad("the port is not a number from 1 to 65535"))?,
            ),
            None => (authority, 19530),
        };
        if host.is_empty() || port == 0 {
            return Err(bad("no host or port"));
        }
        if !valid_collection_name(collection) {
            return Err(bad(
                "a collection name is 1 to 255 letters, digits and underscores, starting with a \
                 letter or underscore",
            ));
        }
        let mut url = MilvusUrl {
            host: host.to_string(),
            port,
            collection: collection.to_string(),
            nprobe: None,
            timeout: DEFAULT_TIMEOUT,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "nprobe" => {
                    url.nprobe = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|&n: &usize| n > 0)
                            .ok_or_else(|| bad("nprobe must be a whole number above 0"))?,
                    );
                }
                "timeout_s" => {
                    let seconds: f64 = value
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                        .ok_or_else(|| bad("timeout_s must be seconds between 0 and 3600"))?;
                    url.timeout = Duration::from_secs_f64(seconds);
                }
                other => return Err(bad(&format!("unknown setting `{other}`"))),
            }
        }
        Ok(url)
    }
}

impl fmt::Display for MilvusUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "milvus://{}:{}/{}",
            self.host, self.port, self.collection
        )
    }
}

/// Milvus's rule for collection and alias names.
pub fn valid_collection_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 255
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_collection_and_settings() {
        let url: MilvusUrl = "milvus://127.0.0.1:19531/shoes?nprobe=8&timeout_s=2.5"
            .parse()
            .unwrap();
        assert_eq!(url.host, "127.0.0.1");
        assert_eq!(url.port, 19531);
        assert_eq!(url.collection, "shoes");
        assert_eq!(url.nprobe, Some(8));
        assert_eq!(url.timeout, Duration::from_millis(2500));
        assert_eq!(url.endpoint(), "http://127.0.0.1:19531");
        let default_port: MilvusUrl = "milvus://localhost/c".parse().unwrap();
        assert_eq!(default_port.port, 19530);
        assert_eq!(default_port.to_string(), "milvus://localhost:19530/c");
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for bad in [
            "http://127.0.0.1:19530/c",
            "milvus://127.0.0.1:19530",
            "milvus://127.0.0.1:99999/c",
            "milvus://127.0.0.1:19530/9lives",
            "milvus://127.0.0.1:19530/a-b",
            "milvus://127.0.0.1:19530/c?nprobe=0",
            "milvus://127.0.0.1:19530/c?colour=red",
            "milvus://:19530/c",
        ] {
            let e = bad.parse::<MilvusUrl>().unwrap_err();
            assert!(e.to_string().contains("expected milvus://"), "{bad}: {e}");
        }
    }
}
