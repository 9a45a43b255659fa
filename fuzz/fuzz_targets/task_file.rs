//! Any bytes as a task file (`unisight train TASKS.toml`). Reading must refuse with an error or
//! give a config that the trainer can write out as the run's resolved task file and read back
//! to the same config.
#![no_main]

mod scratch;

use libfuzzer_sys::fuzz_target;
use unisight_task::TrainConfig;

fuzz_target!(|data: &[u8]| {
    let path = scratch::write("tasks.toml", data);
    if let Ok(config) = TrainConfig::load(&path) {
        let resolved = toml::to_string(&config).expect("a checked config serializes");
        let again = scratch::write("resolved.toml", resolved.as_bytes());
        let reread = TrainConfig::load(&again).expect("the resolved config reads back");
        assert_eq!(
            toml::to_string(&reread).expect("serializes"),
            resolved,
            "reading the resolved config changed it"
        );
    }
});
