use serde::{Deserialize, Serialize};

/// Where the trainable part of the trunk begins; everything before it is frozen (and, in the
/// cached-trunk mode, computed once by ONNX Runtime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TrainFrom {
    /// The whole trunk, from the pixels (full fine-tune).
    Stem,
    /// From MBConv block `k` (0-based) on.
    Block(usize),
    /// Only the 1x1 head convolution of the trunk (and the embedding head).
    HeadConv,
    /// Only the embedding head (projection) on pooled trunk features.
    Pooled,
}

impl TryFrom<String> for TrainFrom {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match s.as_str() {
            "stem" => Ok(TrainFrom::Stem),
            "head" => Ok(TrainFrom::HeadConv),
            "pooled" => Ok(TrainFrom::Pooled),
            other => other
                .strip_prefix("block")
                .and_then(|k| k.parse().ok())
                .map(TrainFrom::Block)
                .ok_or_else(|| {
                    format!("`{s}`: expected \"stem\", \"blockN\" (N = first trainable block), \"head\" or \"pooled\"")
                }),
        }
    }
}

impl From<TrainFrom> for String {
    fn from(t: TrainFrom) -> String {
        match t {
            TrainFrom::Stem => "stem".into(),
            TrainFrom::Block(k) => format!("block{k}"),
            TrainFrom::HeadConv => "head".into(),
            TrainFrom::Pooled => "pooled".into(),
        }
    }
}

impl TrainFrom {
    /// Index of the first trainable block, given the number of blocks (`num_blocks` when only the
    /// head conv or less trains).
    pub fn first_block(self, num_blocks: usize) -> usize {
        match self {
            TrainFrom::Stem => 0,
            TrainFrom::Block(k) => k.min(num_blocks),
            TrainFrom::HeadConv | TrainFrom::Pooled => num_blocks,
        }
    }
}
