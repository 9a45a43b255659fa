//! `[augment]`: how the cached training views are made.

use serde::{Deserialize, Serialize};

/// Augmentation of training images.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Random resized crop: area fraction range.
    pub crop_scale: [f32; 2],
    /// Random resized crop: aspect ratio range.
    pub crop_ratio: [f32; 2],
    /// Horizontal flip with probability 1/2.
    pub flip: bool,
    /// Colour jitter strength (brightness, contrast, saturation, each in 1 +- this).
    pub jitter: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            crop_scale: [0.25, 1.0],
            crop_ratio: [0.75, 4.0 / 3.0],
            flip: true,
            jitter: 0.3,
        }
    }
}
