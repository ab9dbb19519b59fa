//! The legacy ConfigMap's `config` document (`parse_configmap`), merged into the pool view.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use swimlb_controller::config::{CONFIGMAP_KEY, parse_configmap};

fuzz_target!(|data: &[u8]| {
    let Some(text) = swimlb_fuzz::text(data) else {
        return;
    };
    let data = BTreeMap::from([(CONFIGMAP_KEY.to_owned(), text.to_owned())]);
    match parse_configmap("swimlb-system", "config", 0, &data) {
        Ok(declarations) => swimlb_fuzz::pools::check_pool_set(declarations),
        Err(error) => assert!(!error.to_string().is_empty()),
    }
});
