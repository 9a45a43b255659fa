//! The collection a Milvus backend keeps: its schema, made by [`crate::Milvus::create`] and
//! checked before a backend serves it, so a collection of another width, metric or layout is
//! refused with what is wrong instead of answering searches with nonsense.
//!
//! One collection per catalog and model:
//! - `key`: VarChar primary key (the item's external key, up to [`MAX_KEY`] bytes);
//! - `path`: VarChar, the image path shown in results (up to [`MAX_PATH`] bytes);
//! - `code`: BinaryVector of the code width, `numpy.packbits` bytes exactly as `codes.npy`,
//!   indexed for the HAMMING metric (BIN_FLAT, or BIN_IVF_FLAT with `nlist` lists);
//! - `floats` (when the catalog keeps floats): Array of Float, the float embedding that float
//!   re-ranking scores. Milvus 2.3 allows one vector field per collection, so the floats ride in
//!   a scalar array of the same row: fetched for the Hamming shortlist only, re-scored in
//!   unisight by the same cosine as the embedded index, one request and no second collection
//!   to keep in step.

use std::collections::HashMap;

use milvus::v2::prelude::*;
use unisight_backend::{Error, Result, Shape};

/// Field names.
pub(crate) const KEY: &str = "key";
pub(crate) const PATH: &str = "path";
pub(crate) const CODE: &str = "code";
pub(crate) const FLOATS: &str = "floats";

/// Longest key, in bytes (the service's own limit).
pub const MAX_KEY: usize = 1024;
/// Longest path, in bytes.
pub const MAX_PATH: usize = 4096;
/// Most float values a Milvus 2.3 array holds.
pub const MAX_FLOAT_DIM: usize = 4096;
/// Written in the collection's description, so a collection made by something else is known.
const MARK: &str = "unisight binary codes v1";

/// How the server indexes the codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerIndex {
    /// BIN_FLAT: every code compared, the exact answer.
    Flat,
    /// BIN_IVF_FLAT with this many lists; a search probes the URL's `nprobe` of them (all by
    /// default, the exact answer).
    Ivf {
        /// Lists.
        nlist: usize,
    },
}

/// The schema of a new collection for codes of `shape`.
pub(crate) fn schema(shape: Shape) -> Result<CollectionSchema> {
    if shape.bits == 0 || !shape.bits.is_multiple_of(8) {
        return Err(Error::InvalidInput(format!(
            "a code width is a whole number of bytes, not {} bits",
            shape.bits
        )));
    }
    let mut schema = CollectionSchema::new()
        .description(format!("{MARK}; bits={}", shape.bits))
        .add_field(
            FieldSchema::new()
                .name(KEY)
                .data_type(DataType::VarChar)
                .max_length(MAX_KEY as u32)
                .primary_key(true),
        )
        .add_field(
            FieldSchema::new()
                .name(PATH)
                .data_type(DataType::VarChar)
                .max_length(MAX_PATH as u32),
        )
        .add_field(
            FieldSchema::new()
                .name(CODE)
                .data_type(DataType::BinaryVector)
                .dimension(shape.bits as u32),
        );
    if let Some(dim) = shape.float_dim {
        if dim == 0 || dim > MAX_FLOAT_DIM {
            return Err(Error::InvalidInput(format!(
                "Milvus keeps float vectors of 1 to {MAX_FLOAT_DIM} values, not {dim}"
            )));
        }
        schema = schema.add_field(
            FieldSchema::new()
                .name(FLOATS)
                .data_type(DataType::Array)
                .element_type(DataType::Float)
                .max_capacity(dim as u32),
        );
    }
    Ok(schema)
}

/// The index parameters of the codes.
pub(crate) fn index_param(index: ServerIndex) -> IndexParam {
    let (kind, params) = match index {
        ServerIndex::Flat => (IndexType::BinFlat, HashMap::new()),
        ServerIndex::Ivf { nlist } => (
            IndexType::BinIvfFlat,
            HashMap::from([("nlist".to_string(), nlist.to_string())]),
        ),
    };
    IndexParam::new()
        .field_name(CODE)
        .index_type(kind)
        .metric_type(MetricType::Hamming)
        .extra_params(params)
}

/// The shape of a described collection, or what makes it unfit to serve.
pub(crate) fn check(name: &str, desc: &CollectionDesc) -> Result<Shape> {
    let unfit = |why: String| Error::Incompatible(format!("collection `{name}`: {why}"));
    let fields = desc.get_schema().get_fields();
    let field = |n: &str| fields.iter().find(|f| f.get_name() == n);
    let key = field(KEY).ok_or_else(|| unfit(format!("no `{KEY}` field: not made by unisight")))?;
    if key.get_data_type() != DataType::VarChar || desc.get_primary_field_name() != KEY {
        return Err(unfit(format!("`{KEY}` is not a VarChar primary key")));
    }
    if field(PATH).is_none_or(|f| f.get_data_type() != DataType::VarChar) {
        return Err(unfit(format!("no VarChar `{PATH}` field")));
    }
    let code = field(CODE).ok_or_else(|| unfit(format!("no `{CODE}` field")))?;
    if code.get_data_type() != DataType::BinaryVector {
        return Err(unfit(format!(
            "`{CODE}` is a {:?} field, not a binary vector",
            code.get_data_type()
        )));
    }
    let float_dim = match field(FLOATS) {
        None => None,
        Some(f)
            if f.get_data_type() == DataType::Array
                && f.get_element_type() == Some(DataType::Float) =>
        {
            Some(f.get_max_capacity() as usize)
        }
        Some(_) => return Err(unfit(format!("`{FLOATS}` is not an array of floats"))),
    };
    Ok(Shape {
        bits: code.get_dimension() as usize,
        float_dim,
    })
}

/// The server index of the codes, from their index description; anything but HAMMING is
/// refused (the distances would mean something else).
pub(crate) fn check_index(name: &str, indexes: &[IndexDesc]) -> Result<ServerIndex> {
    let unfit = |why: String| Error::Incompatible(format!("collection `{name}`: {why}"));
    let index = indexes
        .iter()
        .find(|i| i.get_field_name() == CODE)
        .ok_or_else(|| unfit(format!("`{CODE}` has no index")))?;
    if index.get_metric_type() != MetricType::Hamming {
        return Err(unfit(format!(
            "`{CODE}` is indexed for {:?}, not HAMMING",
            index.get_metric_type()
        )));
    }
    match index.get_index_type() {
        IndexType::BinFlat => Ok(ServerIndex::Flat),
        IndexType::BinIvfFlat => {
            let nlist = index
                .get_extra_params()
                .get("nlist")
                .and_then(|n| n.parse().ok())
                .or_else(|| params_nlist(index.get_extra_params()))
                .ok_or_else(|| unfit("BIN_IVF_FLAT without nlist".into()))?;
            Ok(ServerIndex::Ivf { nlist })
        }
        other => Err(unfit(format!(
            "`{CODE}` has a {other:?} index; unisight serves BIN_FLAT or BIN_IVF_FLAT"
        ))),
    }
}

/// `nlist` inside a JSON `params` entry (how some servers report index parameters).
fn params_nlist(extra: &HashMap<String, String>) -> Option<usize> {
    let params = extra.get("params")?;
    let start = params.find("\"nlist\"")? + "\"nlist\"".len();
    let digits: String = params[start..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}
