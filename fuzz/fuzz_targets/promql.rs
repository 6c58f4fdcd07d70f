//! PromQL through our evaluator: the pre-parse check, the parser, lowering,
//! and evaluation on a small store with stale markers, NaN and counter
//! resets, at a few times, within the API's default limits.
#![no_main]
use homeostat::model::Labels;
use homeostat::query::{compile, EvalLimits};
use homeostat::store::{stale_nan, Store};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut s = Store::new();
        for (job, inst) in [("a", "1"), ("a", "2"), ("b", "1")] {
            let up = Labels::new([("__name__", "up"), ("job", job), ("instance", inst)]);
            let req = Labels::new([("__name__", "http_requests_total"), ("job", job), ("instance", inst), ("code", "200")]);
            let bucket = |le: &str| Labels::new([("__name__", "lat_bucket"), ("job", job), ("le", le)]);
            for i in 0..60i64 {
                let t = i * 15_000;
                s.append(&up, t, if i % 7 == 0 { 0.0 } else { 1.0 });
                // A counter reset at i = 30.
                s.append(&req, t, ((i % 30) * 10) as f64);
                for (k, le) in ["0.1", "1", "+Inf"].iter().enumerate() {
                    s.append(&bucket(le), t, (i * (k as i64 + 1)) as f64);
                }
            }
            s.append(&up, 60 * 15_000, stale_nan());
        }
        let nan = Labels::new([("__name__", "weird"), ("v", "nan")]);
        s.append(&nan, 0, f64::NAN);
        s.append(&nan, 15_000, f64::INFINITY);
        s.append(&nan, 30_000, -0.0);
        s
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(q) = compile(text) else {
        return;
    };
    // A modest sample limit and a deadline keep each run short, as
    // query.max_samples and query.timeout keep the agent's.
    let timeout = std::time::Duration::from_millis(500);
    let limits = EvalLimits {
        max_samples: 200_000,
        deadline: Some((homeostat::clock::Deadline::after(timeout), timeout)),
        cancel: None,
    };
    for at in [0, 450_000, 900_000, 2_000_000] {
        if let Ok(v) = q.eval_with(store(), at, &limits) {
            let _ = homeostat::query::api_json(&v, at);
        }
    }
    let _ = q.outcome(store(), 450_000);
});
