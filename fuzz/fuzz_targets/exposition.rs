//! The scrape parser on arbitrary bytes, in both formats: an error or samples,
//! never a panic; every sample's labels are valid UTF-8 by construction.
#![no_main]
use homeostat::exposition::{parse, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for format in [Format::Text004, Format::OpenMetrics] {
        let _ = parse(data, format);
    }
});
