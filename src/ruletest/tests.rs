//! Unit tests of the ruletest module's pure parts.
use super::notation::{duration_ms, expand};
use super::promql::{loaded_until, values_equal};

#[test]
fn steps_accumulate_like_prometheus() {
    let v: Vec<f64> = expand("0.1+0.1x3").unwrap().into_iter().flatten().collect();
    // 0.1, 0.1+0.1, (0.1+0.1)+0.1, … (not 0.1 + k·0.1)
    let mut want = vec![0.1];
    for _ in 0..3 {
        let last = *want.last().unwrap();
        want.push(last + 0.1);
    }
    assert_eq!(v, want);
    assert_eq!(
        expand("1e+3+1x1").unwrap(),
        vec![Some(1000.0), Some(1001.0)]
    );
    assert_eq!(expand("_x0 _x2").unwrap(), vec![None, None]);
}

#[test]
fn loading_stops_at_the_last_evaluation_step() {
    assert_eq!(loaded_until(90_000, 60_000), 60_000);
    assert_eq!(loaded_until(120_000, 60_000), 120_000);
    assert_eq!(loaded_until(59_999, 60_000), 0);
    assert_eq!(loaded_until(90_000, 15_000), 90_000);
}

#[test]
fn tolerance_is_relative_and_special_values_are_exact() {
    assert!(values_equal(1.0, 1.0 + 5e-7));
    assert!(!values_equal(1.0, 1.0 + 2e-6));
    assert!(values_equal(1e-12, 1e-12 * (1.0 + 5e-7)));
    assert!(!values_equal(0.0, 1e-300));
    assert!(values_equal(f64::NAN, f64::NAN));
    assert!(!values_equal(f64::NAN, 0.0));
    assert!(values_equal(f64::INFINITY, f64::INFINITY));
    assert!(!values_equal(f64::INFINITY, f64::NEG_INFINITY));
    assert!(!values_equal(f64::INFINITY, f64::MAX));
    assert_eq!(duration_ms("1m30s").unwrap(), 90_000);
    assert!(duration_ms("1x").is_err());
}
