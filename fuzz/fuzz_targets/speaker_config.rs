//! The speaker's static configuration file (speaker/src/config.rs).
#![no_main]

use std::net::IpAddr;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use swimlb_speaker::config::{Config, ConfigError};

fuzz_target!(|data: &[u8]| {
    let Some(text) = swimlb_fuzz::text(data) else {
        return;
    };
    let path = Path::new("speaker.yaml");
    match Config::parse(text, path) {
        Ok(config) => {
            assert!(!config.node_name.is_empty());
            assert!(config.restart_only_changes(&config).is_empty());
            let offsets = &config.schedule.offsets;
            assert!(!offsets.is_empty());
            assert!(
                offsets.windows(2).all(|w| w[0] < w[1]),
                "offsets sorted: {offsets:?}"
            );
            for (vip, nodes) in &config.vips {
                assert!(!vip.is_unspecified() && !vip.is_multicast() && !vip.is_loopback());
                if let IpAddr::V4(v4) = vip {
                    assert!(!v4.is_broadcast());
                }
                if let Some(nodes) = nodes {
                    assert!(!nodes.is_empty() && !nodes.contains(""));
                }
            }
        }
        Err(error) => {
            let message = error.to_string();
            assert!(message.starts_with("speaker.yaml"), "{message}");
            if let ConfigError::Read { .. } = error {
                panic!("parsing text read a file");
            }
        }
    }
});
