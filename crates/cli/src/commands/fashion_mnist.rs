//! `unisight import-fashion-mnist`: Debian's Fashion-MNIST package into an image folder.

use anyhow::{Context, Result};

use crate::args::ImportFashionMnistArgs;

/// Runs `unisight import-fashion-mnist`.
pub fn run(args: ImportFashionMnistArgs) -> Result<()> {
    let [train, test] = unisight_data::fashion_mnist::import(
        &args.from,
        &args.out,
        [args.train_per_class, args.test_per_class],
    )
    .with_context(|| {
        format!(
            "importing Fashion-MNIST from {} (apt-get install dataset-fashion-mnist)",
            args.from.display()
        )
    })?;
    eprintln!(
        "{train} training and {test} test images in {}",
        args.out.display()
    );
    Ok(())
}
