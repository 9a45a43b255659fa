//! Measures the time of one training step of the trainable part, per starting point.
use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};
use rand::SeedableRng;
use unisight_core::Architecture;
use unisight_model::UnifiedModel;
use unisight_train::loss::{normalized_softmax, ProxySet, TaskTargets};
use unisight_train::network::{Network, NetworkInput, TrainFrom};

fn main() {
    let device = Device::flex().autodiff();
    let base =
        UnifiedModel::zero_shot(Architecture::EfficientnetLite0, 256, 1, &Device::flex()).unwrap();
    let weights = base.to_weights();
    let batch = 64;
    for (from, shape) in [
        (TrainFrom::Pooled, vec![batch, 1280]),
        (TrainFrom::HeadConv, vec![batch, 320, 7, 7]),
        (TrainFrom::Block(15), vec![batch, 192, 7, 7]),
        (TrainFrom::Block(14), vec![batch, 192, 7, 7]),
        (TrainFrom::Block(11), vec![batch, 112, 14, 14]),
    ] {
        let proxies = vec![(81, vec![0.01f32; 81 * 256])];
        let mut net = Network::from_weights(
            &weights,
            Architecture::EfficientnetLite0,
            from,
            256,
            proxies,
            &device,
        )
        .unwrap();
        let mut optim = AdamWConfig::new().init();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let targets = TaskTargets {
            rows: (0..batch).collect(),
            labels: (0..batch).map(|i| i % 81).collect(),
        };
        let mut times = vec![];
        for _ in 0..4 {
            let t = Instant::now();
            let input = if shape.len() == 2 {
                NetworkInput::Pooled(Tensor::<2>::random(
                    [shape[0], shape[1]],
                    Distribution::Uniform(0.0, 1.0),
                    &device,
                ))
            } else {
                NetworkInput::Map(Tensor::<4>::random(
                    [shape[0], shape[1], shape[2], shape[3]],
                    Distribution::Uniform(0.0, 1.0),
                    &device,
                ))
            };
            let out = net.forward(input);
            let loss = normalized_softmax(
                &out.normalized,
                net.proxies[0].val(),
                &targets,
                0.05,
                ProxySet::All,
                &mut rng,
                &device,
            );
            let grads = loss.backward();
            let grads = GradientsParams::from_grads(grads, &net);
            net = optim.step(1e-3, net, grads);
            let _ = net.projection.val().into_data();
            times.push(t.elapsed().as_secs_f64());
        }
        println!(
            "{from:?}: step ms {:?}",
            times
                .iter()
                .map(|t| (t * 1000.0) as u32)
                .collect::<Vec<_>>()
        );
    }
}
