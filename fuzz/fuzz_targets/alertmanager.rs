//! Alertmanager's webhook payload (`POST /api/v1/alerts`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = homeostat::sources::alertmanager::payload::parse(data);
});
