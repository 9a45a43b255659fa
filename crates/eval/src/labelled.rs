//! A labelled set as evaluation reads it: one row per item with its label, embedding, code and
//! group, built from a dataset's images the same way for `unisight eval` and for training's
//! validation.

use serde::{Deserialize, Serialize};
use unisight_data::datasets::LabeledImage;

/// An item as shown in reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemView {
    /// Item id.
    pub id: String,
    /// Image file (for thumbnails).
    pub path: String,
    /// Its label for the task.
    pub label: String,
}

/// Items of one set that could not take part, and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOut {
    /// Listed but without the task's label.
    pub unlabelled: usize,
    /// Listed but not embedded (unreadable image).
    pub unreadable: usize,
}

/// A set of labelled items with their embeddings, as evaluation reads it.
#[derive(Debug, Clone)]
pub struct LabelledSet {
    /// Name shown in reports, e.g. `grocery:test`.
    pub name: String,
    /// One per row.
    pub items: Vec<ItemView>,
    /// `[n, dim]` floats.
    pub embeddings: Vec<f32>,
    /// `[n, code_bytes]` codes.
    pub codes: Vec<u8>,
    /// Group of each row, when near-duplicates are to be excluded by group.
    pub groups: Option<Vec<String>>,
    /// Items left out before evaluation.
    pub left_out: LeftOut,
}

impl LabelledSet {
    /// The images of a dataset that carry `label`, in their order, with the embedding and code
    /// `embedded(i)` gives for image `i` (`None`: the image was unreadable, counted as left
    /// out). `group` names the field whose equal values mark near-duplicates (`domain` or a
    /// label field); an image without one is a group of its own.
    pub fn from_images<'a>(
        name: &str,
        images: &[LabeledImage],
        label: &str,
        group: Option<&str>,
        embedded: impl Fn(usize) -> Option<(&'a [f32], &'a [u8])>,
    ) -> LabelledSet {
        let mut set = LabelledSet {
            name: name.to_string(),
            items: Vec::new(),
            embeddings: Vec::new(),
            codes: Vec::new(),
            groups: group.map(|_| Vec::new()),
            left_out: LeftOut::default(),
        };
        for (i, image) in images.iter().enumerate() {
            let Some((embedding, code)) = embedded(i) else {
                set.left_out.unreadable += 1;
                continue;
            };
            let Some(value) = image.labels.get(label) else {
                set.left_out.unlabelled += 1;
                continue;
            };
            set.items.push(ItemView {
                id: image.id.clone(),
                path: image.file.display().to_string(),
                label: value.clone(),
            });
            set.embeddings.extend_from_slice(embedding);
            set.codes.extend_from_slice(code);
            if let (Some(groups), Some(field)) = (&mut set.groups, group) {
                let g = if field == "domain" {
                    image.domain.clone()
                } else {
                    image.labels.get(field).cloned()
                };
                groups.push(g.unwrap_or_else(|| format!("\u{0}{}", image.id)));
            }
        }
        set
    }
}
