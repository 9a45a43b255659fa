//! EfficientNet-Lite0/1/2 exactly as the TF-Lite checkpoints were trained: TF "SAME" padding
//! (asymmetric at stride 2, from the real input size), batch norm eps 1e-3, ReLU6, no
//! squeeze-excite, fixed 32-channel stem and 1280-channel head.
//!
//! Channel widths and kernel sizes are read from the weights; the stage layout (repeats and
//! strides) comes from the architecture.

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};
use unisight_core::Architecture;

use crate::weights::{NamedTensor, Weights};
use crate::Result;

/// Batch-norm epsilon of the TF checkpoints.
pub const BN_EPSILON: f64 = 1e-3;
pub use unisight_core::FEATURE_DIM;

/// (repeats, stride of the first block) per stage.
pub fn stages(arch: Architecture) -> [(usize, usize); 7] {
    let repeats = match arch {
        Architecture::EfficientnetLite0 => [1, 2, 2, 3, 3, 4, 1],
        Architecture::EfficientnetLite1 | Architecture::EfficientnetLite2 => [1, 3, 3, 4, 4, 5, 1],
    };
    let strides = [1, 2, 2, 2, 1, 2, 1];
    std::array::from_fn(|i| (repeats[i], strides[i]))
}

/// Stride of every block, in order.
pub fn block_strides(arch: Architecture) -> Vec<usize> {
    stages(arch)
        .iter()
        .flat_map(|&(repeats, stride)| (0..repeats).map(move |r| if r == 0 { stride } else { 1 }))
        .collect()
}

/// Conv + batch norm, the unit everything is built of.
#[derive(Module, Debug)]
pub struct ConvBn {
    /// Convolution without bias.
    pub conv: Conv2d,
    /// Batch norm after it.
    pub bn: BatchNorm,
}

impl ConvBn {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.bn.forward(self.conv.forward(x))
    }
}

/// Inverted residual block (MBConv) without squeeze-excite.
#[derive(Module, Debug)]
pub struct MbConv {
    /// 1x1 expansion (absent when the expansion ratio is 1).
    pub expand: Option<ConvBn>,
    /// Depthwise k x k.
    pub depthwise: ConvBn,
    /// 1x1 projection (no activation after it).
    pub project: ConvBn,
    /// Whether the input is added back (stride 1 and equal widths).
    #[module(skip)]
    pub residual: bool,
}

impl MbConv {
    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        if let Some(expand) = &self.expand {
            x = relu6(expand.forward(x));
        }
        x = relu6(self.depthwise.forward(x));
        x = self.project.forward(x);
        if self.residual {
            x = x + input;
        }
        x
    }
}

/// ReLU6 = clamp(x, 0, 6).
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clamp(0.0, 6.0)
}

/// The trunk: stem, MBConv blocks, head conv; plus the ImageNet classifier when loaded.
#[derive(Module, Debug)]
pub struct EfficientNetLite {
    /// 3x3 stride-2 stem.
    pub stem: ConvBn,
    /// MBConv blocks.
    pub blocks: Vec<MbConv>,
    /// 1x1 conv to 1280 channels.
    pub head: ConvBn,
    /// ImageNet classifier (1280 -> 1000); kept for tests and zero-shot labels.
    pub classifier: Option<Linear>,
}

impl EfficientNetLite {
    /// Builds the trunk from PyTorch-named weights.
    ///
    /// # Errors
    /// [`crate::Error::BadWeights`] naming the first missing or misshapen tensor.
    pub fn from_weights(arch: Architecture, w: &Weights, device: &Device) -> Result<Self> {
        let stem = conv_bn(w, "_conv_stem", "_bn0", 2, 1, device)?;
        let strides = block_strides(arch);
        let mut blocks = Vec::with_capacity(strides.len());
        for (i, &stride) in strides.iter().enumerate() {
            let p = format!("_blocks.{i}");
            let expand = if w.contains(&format!("{p}._expand_conv.weight")) {
                Some(conv_bn(
                    w,
                    &format!("{p}._expand_conv"),
                    &format!("{p}._bn0"),
                    1,
                    1,
                    device,
                )?)
            } else {
                None
            };
            let dw_weight = w.get(
                &format!("{p}._depthwise_conv.weight"),
                &[None, Some(1), None, None],
            )?;
            let groups = dw_weight.shape[0];
            let depthwise = conv_bn(
                w,
                &format!("{p}._depthwise_conv"),
                &format!("{p}._bn1"),
                stride,
                groups,
                device,
            )?;
            let project = conv_bn(
                w,
                &format!("{p}._project_conv"),
                &format!("{p}._bn2"),
                1,
                1,
                device,
            )?;
            let in_ch = match &expand {
                Some(e) => e.conv.weight.dims()[1],
                None => groups,
            };
            let out_ch = project.conv.weight.dims()[0];
            blocks.push(MbConv {
                expand,
                depthwise,
                project,
                residual: stride == 1 && in_ch == out_ch,
            });
        }
        let head = conv_bn(w, "_conv_head", "_bn1", 1, 1, device)?;
        let classifier = if w.contains("_fc.weight") {
            let fc = w.get("_fc.weight", &[None, Some(FEATURE_DIM)])?;
            let bias = w.get("_fc.bias", &[Some(fc.shape[0])])?;
            let mut linear = LinearConfig::new(FEATURE_DIM, fc.shape[0]).init(device);
            // burn's Linear is [in, out]; PyTorch's is [out, in]
            linear.weight = Param::from_tensor(tensor::<2>(fc, device).transpose());
            linear.bias = Some(Param::from_tensor(tensor::<1>(bias, device)));
            Some(linear)
        } else {
            None
        };
        Ok(EfficientNetLite {
            stem,
            blocks,
            head,
            classifier,
        })
    }

    /// Runs the trunk up to (excluding) the global pool.
    ///
    /// # Shapes
    /// `[B, 3, S, S]` -> `[B, 1280, S/32, S/32]`
    pub fn forward_map(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = relu6(self.stem.forward(x));
        for block in &self.blocks {
            x = block.forward(x);
        }
        relu6(self.head.forward(x))
    }

    /// Globally average-pooled features.
    ///
    /// # Shapes
    /// `[B, 3, S, S]` -> `[B, 1280]`
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<2> {
        let map = self.forward_map(x); // [B, C, h, w]
        let [b, c, _, _] = map.dims();
        map.flatten::<3>(2, 3).mean_dim(2).reshape([b, c])
    }

    /// ImageNet logits, when the classifier was loaded.
    ///
    /// # Shapes
    /// `[B, 1280]` -> `[B, 1000]`
    pub fn classify(&self, features: Tensor<2>) -> Option<Tensor<2>> {
        self.classifier.as_ref().map(|fc| fc.forward(features))
    }

    /// The weights back in PyTorch names and layout (for the model file and ONNX export).
    pub fn to_weights(&self, out: &mut Weights) {
        put_conv_bn(out, &self.stem, "_conv_stem", "_bn0");
        for (i, block) in self.blocks.iter().enumerate() {
            let p = format!("_blocks.{i}");
            if let Some(e) = &block.expand {
                put_conv_bn(out, e, &format!("{p}._expand_conv"), &format!("{p}._bn0"));
            }
            put_conv_bn(
                out,
                &block.depthwise,
                &format!("{p}._depthwise_conv"),
                &format!("{p}._bn1"),
            );
            put_conv_bn(
                out,
                &block.project,
                &format!("{p}._project_conv"),
                &format!("{p}._bn2"),
            );
        }
        put_conv_bn(out, &self.head, "_conv_head", "_bn1");
        if let Some(fc) = &self.classifier {
            let (shape, values) = values_of(fc.weight.val().transpose());
            out.insert("_fc.weight", shape, values);
            if let Some(b) = &fc.bias {
                let (shape, values) = values_of(b.val());
                out.insert("_fc.bias", shape, values);
            }
        }
    }
}

/// A burn tensor from a named tensor.
pub fn tensor<const D: usize>(t: &NamedTensor, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(t.values.clone(), t.shape.clone()), device)
}

/// Shape and values of a burn tensor.
pub fn values_of<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    let shape = t.dims().to_vec();
    let values = t
        .into_data()
        .try_to_vec::<f32>()
        .expect("model tensors are float32");
    (shape, values)
}

fn conv_bn(
    w: &Weights,
    conv: &str,
    bn: &str,
    stride: usize,
    groups: usize,
    device: &Device,
) -> Result<ConvBn> {
    let weight = w.get(&format!("{conv}.weight"), &[None, None, None, None])?;
    let [out_ch, in_per_group, kh, kw] = [
        weight.shape[0],
        weight.shape[1],
        weight.shape[2],
        weight.shape[3],
    ];
    let mut layer = Conv2dConfig::new([in_per_group * groups, out_ch], [kh, kw])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Same)
        .with_bias(false)
        .init(device);
    layer.weight = Param::from_tensor(tensor::<4>(weight, device));
    let c = Some(out_ch);
    let mut norm = BatchNormConfig::new(out_ch)
        .with_epsilon(BN_EPSILON)
        .init(device);
    norm.gamma = Param::from_tensor(tensor::<1>(w.get(&format!("{bn}.weight"), &[c])?, device));
    norm.beta = Param::from_tensor(tensor::<1>(w.get(&format!("{bn}.bias"), &[c])?, device));
    norm.running_mean = RunningState::new(tensor::<1>(
        w.get(&format!("{bn}.running_mean"), &[c])?,
        device,
    ));
    norm.running_var = RunningState::new(tensor::<1>(
        w.get(&format!("{bn}.running_var"), &[c])?,
        device,
    ));
    Ok(ConvBn {
        conv: layer,
        bn: norm,
    })
}

fn put_conv_bn(out: &mut Weights, unit: &ConvBn, conv: &str, bn: &str) {
    let (shape, values) = values_of(unit.conv.weight.val());
    out.insert(format!("{conv}.weight"), shape, values);
    for (suffix, t) in [
        ("weight", unit.bn.gamma.val()),
        ("bias", unit.bn.beta.val()),
        ("running_mean", unit.bn.running_mean.value()),
        ("running_var", unit.bn.running_var.value()),
    ] {
        let (shape, values) = values_of(t);
        out.insert(format!("{bn}.{suffix}"), shape, values);
    }
}
