//! The model crate's integration tests, one binary: ImageNet top-1 of the catalog images, the
//! model file's round trip and refusals, and burn against the reference outputs.

mod imagenet_top1;
mod model_file;
mod reference;
