//! An infinity was put in the top bucket index: alone it made `quantile` panic (a clamp with
//! min = inf, max = -inf), and with other values every quantile read it. NaN was counted as a
//! zero. Values that are not finite are now counted apart and not added.

use llmtel_score::DdSketch;

#[test]
fn an_infinity_alone_does_not_panic() {
    let mut s = DdSketch::default_latency();
    s.add(f64::INFINITY);
    assert_eq!(s.count(), 0);
    assert_eq!(s.non_finite(), 1);
    assert_eq!(s.quantile(0.5), None);
    assert_eq!(s.quantiles(), None);
    assert_eq!(s.buckets(), 0);
}

#[test]
fn non_finite_values_leave_the_quantiles_of_the_others_alone() {
    let mut s = DdSketch::default_latency();
    for x in [1.0, 2.0, f64::INFINITY, f64::NAN, f64::NEG_INFINITY] {
        s.add(x);
    }
    assert_eq!(s.count(), 2);
    assert_eq!(s.non_finite(), 3);
    assert_eq!(s.mean(), Some(1.5));
    let p0 = s.quantile(0.0).unwrap();
    let p100 = s.quantile(1.0).unwrap();
    assert!((p0 - 1.0).abs() <= 0.01, "p0 {p0}");
    assert!((p100 - 2.0).abs() <= 0.02, "p100 {p100}");
    // 1 and 2 span 36 buckets; an infinity stretched them to the maximum (512).
    assert!(s.buckets() <= 40, "{}", s.buckets());
}

#[test]
fn merging_carries_the_non_finite_count() {
    let mut a = DdSketch::default_latency();
    let mut b = DdSketch::default_latency();
    a.add(3.0);
    b.add(f64::INFINITY);
    a.merge(&b);
    assert_eq!((a.count(), a.non_finite()), (1, 1));
    assert!((a.quantile(1.0).unwrap() - 3.0).abs() <= 0.03);
    // A sketch holding only an infinity merged into an empty one: still no panic.
    let mut empty = DdSketch::default_latency();
    empty.merge(&b);
    assert_eq!(empty.quantile(0.99), None);
}
