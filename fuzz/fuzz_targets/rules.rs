//! A rule file through the rule loader, as `homeostat check` and reload read
//! it: YAML, every field's validation, PromQL and `when:` compilation.
#![no_main]
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use homeostat::model::ActionKind;
use homeostat::rules::{load_str, Catalog, LoadContext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let catalog: Catalog = BTreeMap::from([
        ("app".to_string(), &ActionKind::ALL as &'static [ActionKind]),
        ("web".to_string(), &ActionKind::ALL as &'static [ActionKind]),
    ]);
    let ctx = LoadContext {
        catalog: &catalog,
        sources: BTreeSet::from(["prom".to_string()]),
        default_interval: Duration::from_secs(10),
    };
    if let Err(diags) = load_str(Path::new("rules/fuzz.yaml"), text, &ctx) {
        for d in diags {
            let _ = d.to_string();
        }
    }
});
