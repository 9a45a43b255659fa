//! Checkpoints and the model file: a checkpoint (`WORK/checkpoints/step-N/`: trainable
//! tensors, optimizer state, run state) is written into a temporary folder renamed into place,
//! then `LATEST` is swapped atomically, so a kill at any moment leaves the previous one intact.

use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};
use unisight_core::{ModelSpec, Projection};
use unisight_model::{UnifiedModel, Weights, PROJECTION_KEY};

use super::record::{write_json, RunState};
use super::setup::{bank_weights, Bank};
use crate::config::TrainConfig;
use crate::network::Network;
use crate::plan::TrainingSet;
use crate::{Error, Result};

fn checkpoint_weights(net: &Network, banks: &[Bank]) -> Weights {
    let mut w = Weights::default();
    net.write_folded(&mut w);
    bank_weights(net, banks, true, &mut w);
    w
}

pub(super) fn save_checkpoint(
    dir: &Path,
    net: &Network,
    banks: &[Bank],
    optim: &ModuleOptimizer,
    state: &RunState,
    config: &TrainConfig,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = format!("step-{:07}", state.step);
    let tmp = dir.join(format!("{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    unisight_model::model_file::write(
        &tmp.join("network.safetensors"),
        &checkpoint_spec(config),
        &checkpoint_weights(net, banks),
    )?;
    let bytes = optim.into_bytes().map_err(|e| Error::Resume {
        path: tmp.join("optimizer.bpk"),
        what: e.to_string(),
    })?;
    unisight_core::atomic::atomic_write_bytes(&tmp.join("optimizer.bpk"), &bytes)?;
    write_json(&tmp.join("state.json"), state)?;
    let done = dir.join(&name);
    if done.exists() {
        std::fs::remove_dir_all(&done).map_err(|e| Error::io(&done, e))?;
    }
    std::fs::rename(&tmp, &done).map_err(|e| Error::io(&done, e))?;
    unisight_core::atomic::sync_dir(dir).map_err(|e| Error::io(dir, e))?;
    unisight_core::atomic::atomic_write_bytes(&dir.join("LATEST"), name.as_bytes())?;
    // older checkpoints are no longer needed once LATEST names the new one
    if let Ok(list) = std::fs::read_dir(dir) {
        for e in list.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if n.starts_with("step-") && n != name {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}

/// The network file of `WORK/best/`.
pub(super) const BEST_NETWORK: &str = "network.safetensors";

/// Keeps the network of the best validation so far in `dir` (`WORK/best/`), replacing the
/// previous best atomically.
pub(super) fn save_best(
    dir: &Path,
    net: &Network,
    banks: &[Bank],
    config: &TrainConfig,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    unisight_model::model_file::write(
        &dir.join(BEST_NETWORK),
        &checkpoint_spec(config),
        &checkpoint_weights(net, banks),
    )?;
    Ok(())
}

/// The spec stored with a checkpoint's trainable tensors.
fn checkpoint_spec(config: &TrainConfig) -> ModelSpec {
    ModelSpec {
        architecture: config.model.architecture,
        input_size: config.model.architecture.input_size(),
        preprocess: unisight_core::Preprocess::Tf127,
        trunk_dim: unisight_model::efficientnet::FEATURE_DIM,
        dim: config.model.dim,
        projection: Projection::Trained,
    }
}

pub(super) fn latest_checkpoint(dir: &Path) -> Result<Option<PathBuf>> {
    let latest = dir.join("LATEST");
    match std::fs::read_to_string(&latest) {
        Ok(name) => {
            let d = dir.join(name.trim());
            if !d.join("state.json").exists() {
                return Err(Error::Resume {
                    path: latest,
                    what: format!("names {}, which is incomplete", d.display()),
                });
            }
            Ok(Some(d))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(latest, e)),
    }
}

/// The task heads' description stored in the model file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskHead {
    /// Task name.
    pub name: String,
    /// Label field.
    pub label: String,
    /// Class names; row `i` of tensor `proxies.{index}` is class `i`.
    pub classes: Vec<String>,
}

pub(super) fn save_model(
    base: &UnifiedModel,
    net: &Network,
    banks: &[Bank],
    set: &TrainingSet,
    out: &Path,
) -> Result<()> {
    let mut weights = base.to_weights();
    net.write_weights(&mut weights);
    bank_weights(net, banks, false, &mut weights);
    debug_assert!(weights.contains(PROJECTION_KEY));
    let spec = ModelSpec {
        projection: Projection::Trained,
        ..base.spec.clone()
    };
    let heads: Vec<TaskHead> = set
        .tasks
        .iter()
        .map(|t| TaskHead {
            name: t.name.clone(),
            label: t.label.clone(),
            classes: t.classes.clone(),
        })
        .collect();
    let tasks = serde_json::to_string(&heads).expect("serialises");
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    unisight_model::model_file::write_with_tasks(out, &spec, &weights, Some(&tasks))?;
    Ok(())
}
