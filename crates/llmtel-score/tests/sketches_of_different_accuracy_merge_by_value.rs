//! Merging a sketch of another relative accuracy added its bucket indices as they were: with
//! other bucket widths they meant other values (a p50 of 500 read as about 3).

use llmtel_score::DdSketch;

fn within(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() / want <= rel
}

#[test]
fn a_coarser_sketch_merged_keeps_its_values() {
    let mut fine = DdSketch::new(0.01, 512);
    let mut coarse = DdSketch::new(0.05, 512);
    for i in 1..=1000 {
        coarse.add(i as f64);
    }
    fine.merge(&coarse);
    assert_eq!(fine.count(), 1000);
    for (q, want) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
        let got = fine.quantile(q).unwrap();
        assert!(within(got, want, 0.061), "q{q}: {got}");
    }
}

#[test]
fn a_finer_sketch_merged_into_a_coarser_one_keeps_its_values() {
    let mut coarse = DdSketch::new(0.05, 64);
    let mut fine = DdSketch::default_latency();
    for i in 1..=100 {
        coarse.add(i as f64 * 10.0);
        fine.add(i as f64 * 10.0);
    }
    coarse.merge(&fine);
    assert_eq!(coarse.count(), 200);
    let p50 = coarse.quantile(0.5).unwrap();
    assert!(within(p50, 500.0, 0.061), "p50 {p50}");
    let mean = coarse.mean().unwrap();
    assert!(within(mean, 505.0, 1e-9), "mean {mean}");
}

#[test]
fn sketches_of_the_same_accuracy_merge_as_before() {
    let mut a = DdSketch::default_latency();
    let mut b = DdSketch::default_latency();
    let mut all = DdSketch::default_latency();
    for i in 1..=500 {
        a.add(i as f64);
        all.add(i as f64);
    }
    for i in 501..=1000 {
        b.add(i as f64);
        all.add(i as f64);
    }
    a.merge(&b);
    assert_eq!(a, all);
}
