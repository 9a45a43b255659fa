//! What each command does, one module per command (or family of subcommands); each `run` takes
//! its parsed arguments from [`crate::args`] and calls the libraries.

pub mod embed;
pub mod engagement;
pub mod eval;
pub mod experiment;
pub mod fashion_mnist;
pub mod index;
pub mod load_test;
pub mod model;
pub mod scatter;
pub mod search;
pub mod serve;
pub mod simulate_users;
pub mod train;
