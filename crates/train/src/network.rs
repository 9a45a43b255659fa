//! The trainable part of the unified model: the trunk from a chosen point on (batch norm folded
//! into the convolutions, so its statistics stay frozen), the embedding head, and one proxy bank
//! per task.
//!
//! Why folded batch norm: the batches here are small mixes of very different datasets (store
//! photos, catalog images, garments), whose statistics would drag the ImageNet ones around;
//! freezing them is the usual fine-tuning choice, and folding them makes the trained layers plain
//! convolutions with a bias. On save they are written back as convolutions followed by an
//! identity batch norm, so the model file, the ONNX export and every reader stay unchanged.
//!
//! Parameters get stable ids derived from their names, so that an optimizer state saved in a
//! checkpoint finds its parameters again after a restart.

use burn::module::{Module, Param, ParamId};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::{Device, Tensor, TensorData};
use unisight_model::efficientnet::{block_strides, relu6, BN_EPSILON};
use unisight_model::head::{l2_normalize, layer_norm};
use unisight_model::{Weights, PROJECTION_KEY};

use crate::{Error, Result};

pub use unisight_task::TrainFrom;

/// A convolution with batch norm folded in (so it has a bias).
#[derive(Module, Debug)]
pub struct FoldedConv {
    /// The convolution, TF-SAME padded.
    pub conv: Conv2d,
}

/// An MBConv block with folded batch norms.
#[derive(Module, Debug)]
pub struct FoldedBlock {
    /// 1x1 expansion, when the ratio is not 1.
    pub expand: Option<FoldedConv>,
    /// Depthwise k x k.
    pub depthwise: FoldedConv,
    /// 1x1 projection.
    pub project: FoldedConv,
    /// Whether the input is added back.
    #[module(skip)]
    pub residual: bool,
}

impl FoldedBlock {
    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        if let Some(e) = &self.expand {
            x = relu6(e.conv.forward(x));
        }
        x = relu6(self.depthwise.conv.forward(x));
        x = self.project.conv.forward(x);
        if self.residual {
            x = x + input;
        }
        x
    }
}

/// Trainable trunk tail + embedding head + proxy banks.
#[derive(Module, Debug)]
pub struct Network {
    /// Stem (only in full fine-tune).
    pub stem: Option<FoldedConv>,
    /// Trainable blocks, in order (the last `len` of the trunk).
    pub blocks: Vec<FoldedBlock>,
    /// The trunk's 1x1 head conv to 1280 (absent when training from pooled features).
    pub head_conv: Option<FoldedConv>,
    /// `[trunk_dim, D]` projection without bias.
    pub projection: Param<Tensor<2>>,
    /// Dense `[classes, D]` proxy banks (rows are normalised in the loss), of the tasks in
    /// `proxy_tasks`; banks updated sparsely live outside the module.
    pub proxies: Vec<Param<Tensor<2>>>,
    /// Task index of each bank in `proxies`.
    #[module(skip)]
    pub proxy_tasks: Vec<usize>,
    /// Index of the first trainable block in the trunk.
    #[module(skip)]
    pub first_block: usize,
}

/// Outputs of [`Network::forward`].
#[derive(Debug)]
pub struct NetworkOutput {
    /// Layer-normed projection `[B, D]` (signs = code).
    pub projected: Tensor<2>,
    /// L2-normalised embedding `[B, D]`.
    pub normalized: Tensor<2>,
}

fn stable_id(name: &str) -> ParamId {
    ParamId::from(u64::from(crc32c::crc32c(name.as_bytes())) | (1 << 40))
}

fn param<const D: usize>(
    name: &str,
    values: Vec<f32>,
    shape: [usize; D],
    device: &Device,
) -> Param<Tensor<D>> {
    Param::initialized(
        stable_id(name),
        Tensor::from_data(TensorData::new(values, shape), device),
    )
    .set_require_grad(true)
}

impl Network {
    /// Builds the trainable part from PyTorch-named weights (those of a model file), folding
    /// each batch norm into its convolution. `proxies` gives the dense banks: task index, class
    /// count and `[classes, D]` values.
    ///
    /// # Errors
    /// [`Error::Model`] when a weight is missing or misshapen.
    pub fn from_weights(
        weights: &Weights,
        architecture: unisight_core::Architecture,
        train_from: TrainFrom,
        dim: usize,
        proxies: Vec<(usize, usize, Vec<f32>)>,
        device: &Device,
    ) -> Result<Network> {
        let strides = block_strides(architecture);
        let first_block = train_from.first_block(strides.len());
        let stem = match train_from {
            TrainFrom::Stem => Some(folded(weights, "_conv_stem", "_bn0", 2, false, device)?),
            _ => None,
        };
        let mut blocks = Vec::new();
        if train_from != TrainFrom::Pooled {
            for (i, &stride) in strides.iter().enumerate().skip(first_block) {
                let p = format!("_blocks.{i}");
                let expand = if weights.contains(&format!("{p}._expand_conv.weight")) {
                    Some(folded(
                        weights,
                        &format!("{p}._expand_conv"),
                        &format!("{p}._bn0"),
                        1,
                        false,
                        device,
                    )?)
                } else {
                    None
                };
                let depthwise = folded(
                    weights,
                    &format!("{p}._depthwise_conv"),
                    &format!("{p}._bn1"),
                    stride,
                    true,
                    device,
                )?;
                let project = folded(
                    weights,
                    &format!("{p}._project_conv"),
                    &format!("{p}._bn2"),
                    1,
                    false,
                    device,
                )?;
                let [out_ch, ..] = project.conv.weight.dims();
                let in_ch = match &expand {
                    Some(e) => e.conv.weight.dims()[1],
                    None => depthwise.conv.weight.dims()[0],
                };
                blocks.push(FoldedBlock {
                    expand,
                    depthwise,
                    project,
                    residual: stride == 1 && in_ch == out_ch,
                });
            }
        }
        let head_conv = match train_from {
            TrainFrom::Pooled => None,
            _ => Some(folded(weights, "_conv_head", "_bn1", 1, false, device)?),
        };
        let trunk_dim = unisight_model::efficientnet::FEATURE_DIM;
        let projection = weights
            .get(PROJECTION_KEY, &[Some(trunk_dim), Some(dim)])
            .map_err(Error::Model)?;
        let projection = param(
            PROJECTION_KEY,
            projection.values.clone(),
            [trunk_dim, dim],
            device,
        );
        let proxy_tasks = proxies.iter().map(|p| p.0).collect();
        let proxies = proxies
            .into_iter()
            .map(|(t, classes, values)| {
                param(&format!("proxies.{t}"), values, [classes, dim], device)
            })
            .collect();
        Ok(Network {
            stem,
            blocks,
            head_conv,
            projection,
            proxies,
            proxy_tasks,
            first_block,
        })
    }

    /// Runs the trainable part on its input: pixels (full fine-tune), the output of block
    /// `first_block - 1`, or pooled features.
    pub fn forward(&self, input: NetworkInput) -> NetworkOutput {
        let features = match input {
            NetworkInput::Pooled(f) => f,
            NetworkInput::Map(mut x) => {
                if let Some(stem) = &self.stem {
                    x = relu6(stem.conv.forward(x));
                }
                for block in &self.blocks {
                    x = block.forward(x);
                }
                if let Some(h) = &self.head_conv {
                    x = relu6(h.conv.forward(x));
                }
                let [b, c, _, _] = x.dims();
                x.flatten::<3>(2, 3).mean_dim(2).reshape([b, c])
            }
        };
        let projected = layer_norm(features).matmul(self.projection.val());
        let normalized = l2_normalize(projected.clone());
        NetworkOutput {
            projected,
            normalized,
        }
    }

    /// Writes the trained tensors back into `weights` (PyTorch names): each folded conv as a
    /// conv followed by an identity batch norm carrying the bias; and the projection.
    pub fn write_weights(&self, weights: &mut Weights) {
        if let Some(stem) = &self.stem {
            unfold(weights, stem, "_conv_stem", "_bn0");
        }
        for (j, block) in self.blocks.iter().enumerate() {
            let p = format!("_blocks.{}", self.first_block + j);
            if let Some(e) = &block.expand {
                unfold(
                    weights,
                    e,
                    &format!("{p}._expand_conv"),
                    &format!("{p}._bn0"),
                );
            }
            unfold(
                weights,
                &block.depthwise,
                &format!("{p}._depthwise_conv"),
                &format!("{p}._bn1"),
            );
            unfold(
                weights,
                &block.project,
                &format!("{p}._project_conv"),
                &format!("{p}._bn2"),
            );
        }
        if let Some(h) = &self.head_conv {
            unfold(weights, h, "_conv_head", "_bn1");
        }
        let (shape, values) = unisight_model::efficientnet::values_of(self.projection.val());
        weights.insert(PROJECTION_KEY, shape, values);
    }

    /// Writes the trainable tensors as they are (folded convolutions as `{conv}.weight` and
    /// `{conv}.bias`, the projection), for checkpoints: [`Network::from_weights`] reads them
    /// back bit for bit.
    pub fn write_folded(&self, weights: &mut Weights) {
        let mut put = |unit: &FoldedConv, conv: &str| {
            let (shape, values) = unisight_model::efficientnet::values_of(unit.conv.weight.val());
            weights.insert(format!("{conv}.weight"), shape, values);
            if let Some(b) = &unit.conv.bias {
                let (shape, values) = unisight_model::efficientnet::values_of(b.val());
                weights.insert(format!("{conv}.bias"), shape, values);
            }
        };
        if let Some(stem) = &self.stem {
            put(stem, "_conv_stem");
        }
        for (j, block) in self.blocks.iter().enumerate() {
            let p = format!("_blocks.{}", self.first_block + j);
            if let Some(e) = &block.expand {
                put(e, &format!("{p}._expand_conv"));
            }
            put(&block.depthwise, &format!("{p}._depthwise_conv"));
            put(&block.project, &format!("{p}._project_conv"));
        }
        if let Some(h) = &self.head_conv {
            put(h, "_conv_head");
        }
        let (shape, values) = unisight_model::efficientnet::values_of(self.projection.val());
        weights.insert(PROJECTION_KEY, shape, values);
    }

    /// The trunk parameters' ids (everything but projection and proxies), for a separate
    /// learning rate and for the warm-up that trains only the new parameters.
    pub fn trunk_param_ids(&self) -> Vec<ParamId> {
        let mut ids = Vec::new();
        let mut push = |c: &FoldedConv| {
            ids.push(c.conv.weight.id);
            if let Some(b) = &c.conv.bias {
                ids.push(b.id);
            }
        };
        if let Some(s) = &self.stem {
            push(s);
        }
        for b in &self.blocks {
            if let Some(e) = &b.expand {
                push(e);
            }
            push(&b.depthwise);
            push(&b.project);
        }
        if let Some(h) = &self.head_conv {
            push(h);
        }
        ids
    }
}

/// Input of the trainable part.
#[derive(Debug)]
pub enum NetworkInput {
    /// `[B, C, H, W]`: pixels or a cached trunk map.
    Map(Tensor<4>),
    /// `[B, trunk_dim]` pooled features.
    Pooled(Tensor<2>),
}

fn folded(
    w: &Weights,
    conv: &str,
    bn: &str,
    stride: usize,
    depthwise: bool,
    device: &Device,
) -> Result<FoldedConv> {
    let get = |name: String, shape: &[Option<usize>]| w.get(&name, shape).map_err(Error::Model);
    let weight = get(format!("{conv}.weight"), &[None, None, None, None])?;
    let [out_ch, in_per_group, kh, kw] = [
        weight.shape[0],
        weight.shape[1],
        weight.shape[2],
        weight.shape[3],
    ];
    let groups = if depthwise { out_ch } else { 1 };
    let mut layer = Conv2dConfig::new([in_per_group * groups, out_ch], [kh, kw])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Same)
        .with_bias(true)
        .init(device);
    let c = Some(out_ch);
    // a checkpoint holds the folded convolution itself (weight and bias, no batch norm)
    if w.contains(&format!("{conv}.bias")) {
        let bias = get(format!("{conv}.bias"), &[c])?;
        layer.weight = param(
            &format!("{conv}.weight"),
            weight.values.clone(),
            [out_ch, in_per_group, kh, kw],
            device,
        );
        layer.bias = Some(param(
            &format!("{conv}.bias"),
            bias.values.clone(),
            [out_ch],
            device,
        ));
        return Ok(FoldedConv { conv: layer });
    }
    let gamma = &get(format!("{bn}.weight"), &[c])?.values;
    let beta = &get(format!("{bn}.bias"), &[c])?.values;
    let mean = &get(format!("{bn}.running_mean"), &[c])?.values;
    let var = &get(format!("{bn}.running_var"), &[c])?.values;
    let per_out = in_per_group * kh * kw;
    let mut values = weight.values.clone();
    let mut bias = vec![0f32; out_ch];
    for o in 0..out_ch {
        let scale = gamma[o] / (var[o] + BN_EPSILON as f32).sqrt();
        for v in &mut values[o * per_out..(o + 1) * per_out] {
            *v *= scale;
        }
        bias[o] = beta[o] - mean[o] * scale;
    }
    layer.weight = param(
        &format!("{conv}.weight"),
        values,
        [out_ch, in_per_group, kh, kw],
        device,
    );
    layer.bias = Some(param(&format!("{conv}.bias"), bias, [out_ch], device));
    Ok(FoldedConv { conv: layer })
}

fn unfold(w: &mut Weights, unit: &FoldedConv, conv: &str, bn: &str) {
    let (shape, values) = unisight_model::efficientnet::values_of(unit.conv.weight.val());
    let out_ch = shape[0];
    w.insert(format!("{conv}.weight"), shape, values);
    let bias = unit
        .conv
        .bias
        .as_ref()
        .map(|b| unisight_model::efficientnet::values_of(b.val()).1)
        .unwrap_or_else(|| vec![0.0; out_ch]);
    w.insert(format!("{bn}.weight"), vec![out_ch], vec![1.0; out_ch]);
    w.insert(format!("{bn}.bias"), vec![out_ch], bias);
    w.insert(
        format!("{bn}.running_mean"),
        vec![out_ch],
        vec![0.0; out_ch],
    );
    // (x - 0) / sqrt(var + eps) = x exactly when var + eps = 1
    w.insert(
        format!("{bn}.running_var"),
        vec![out_ch],
        vec![1.0 - BN_EPSILON as f32; out_ch],
    );
}
