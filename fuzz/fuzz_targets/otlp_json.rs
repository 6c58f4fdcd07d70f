//! `POST /v1/traces` with a JSON body, all the way into the store.
#![no_main]
use homeostat::clock::Clock;
use homeostat::sources::otlp::{OtlpConfig, OtlpReceiver};
use homeostat::store::Store;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = OtlpConfig {
        enabled: true,
        ..OtlpConfig::default()
    };
    let rx = OtlpReceiver::new(cfg, Store::shared(), Clock::starting_at(1_700_000_000_000));
    let _ = rx.handle(Some("application/json"), None, data, 1_700_000_000_000);
});
