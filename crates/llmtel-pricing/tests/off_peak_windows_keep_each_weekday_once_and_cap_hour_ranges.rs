//! Off-peak windows take memory in proportion to the file, not weekdays × hour ranges: a
//! weekday listed many times is kept once (a window's days are a set), and a window may
//! list at most 48 hour ranges, an off-peak price at most 64 windows (more is an error
//! naming the field). Before, each hour range held its own copy of the weekdays list as
//! written: a ~2 MB file asked for ~25 GB.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use llmtel_pricing::{Call, Catalog, Usage};

fn toml_file(windows: &str) -> String {
    format!(
        "[[model]]\nid = \"m\"\nprovider = \"deepseek\"\n[[model.price]]\neffective = \"2025-01-01\"\ninput = 1.0\noutput = 2.0\n[model.price.off_peak]\ninput = 0.5\noutput = 1.0\nwindows = {windows}\n"
    )
}

fn json_file(windows: &str) -> String {
    format!(
        r#"{{"m": {{"litellm_provider": "deepseek", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "off_peak_pricing": {{"input_cost_per_token": 5e-07, "output_cost_per_token": 1e-06, "windows": {windows}}}}}}}"#
    )
}

/// `n` one-hour-or-less ranges, each within its own hour of the day (n <= 48: two per
/// hour, `HH:00-HH:30` and `HH:30-HH+1:00`).
fn hours(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let (h, half) = (i / 2, i % 2);
            if half == 0 {
                format!("{h:02}:00-{h:02}:30")
            } else {
                format!("{h:02}:30-{:02}:00", (h + 1) % 24)
            }
        })
        .collect()
}

fn quoted(list: &[String]) -> String {
    let items: Vec<String> = list.iter().map(|h| format!("\"{h}\"")).collect();
    format!("[{}]", items.join(", "))
}

/// Monday 20,000 times, then the other days once.
fn repeated_weekdays() -> String {
    let mut days = vec!["1"; 20_000];
    days.extend(["2", "3", "4", "5", "6", "7"]);
    format!("[{}]", days.join(", "))
}

fn windows_of(c: &Catalog) -> Vec<String> {
    c.get("m").unwrap().prices[0]
        .dims
        .off_peak
        .as_ref()
        .unwrap()
        .windows
        .iter()
        .map(|w| format!("{:?}", w.weekdays))
        .collect()
}

#[test]
fn a_weekday_listed_many_times_is_kept_once_in_each_window() {
    let h = quoted(&hours(48));
    let days = repeated_weekdays();
    let toml = Catalog::from_toml_str(
        &toml_file(&format!("[{{ weekdays = {days}, hours_utc = {h} }}]")),
        "prices.toml",
    )
    .unwrap();
    let json = Catalog::from_litellm_json(
        &json_file(&format!(r#"[{{"weekdays": {days}, "hours_utc": {h}}}]"#)),
        "prices.json",
    )
    .unwrap();
    for c in [&toml, &json] {
        let windows = windows_of(c);
        assert_eq!(windows.len(), 48, "one window per hour range");
        for w in &windows {
            assert_eq!(w, "[1, 2, 3, 4, 5, 6, 7]", "each day once");
        }
        // And the windows price calls: Tuesday 10:15 UTC is in "10:00-10:30".
        let call = Call::at("2026-03-03T10:15:00Z".parse().unwrap());
        let p = c
            .price_call("m", None, &Usage::new(1_000_000, 0), &call)
            .unwrap();
        assert!(p.off_peak);
        assert_eq!(p.breakdown.total.to_string(), "$0.500000");
    }
}

#[test]
fn a_window_with_more_than_48_hour_ranges_is_an_error_naming_it() {
    let h = quoted(&hours(49));
    let e = Catalog::from_toml_str(
        &toml_file(&format!("[{{ weekdays = [1], hours_utc = {h} }}]")),
        "prices.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`price.off_peak.windows[0].hours_utc`") && e.contains("49 ranges"),
        "{e}"
    );
    assert!(
        e.contains("48") && e.contains("merge adjacent ranges"),
        "{e}"
    );
    let e = Catalog::from_litellm_json(
        &json_file(&format!(r#"[{{"weekdays": [1], "hours_utc": {h}}}]"#)),
        "prices.json",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`off_peak_pricing.windows[0].hours_utc`") && e.contains("49 ranges"),
        "{e}"
    );
    // 48 load.
    let h = quoted(&hours(48));
    Catalog::from_toml_str(
        &toml_file(&format!("[{{ weekdays = [1], hours_utc = {h} }}]")),
        "prices.toml",
    )
    .unwrap();
}

#[test]
fn more_than_64_windows_is_an_error_naming_the_field() {
    let toml_window = "{ weekdays = [1], hours_utc = [\"00:00-01:00\"] }";
    let json_window = r#"{"weekdays": [1], "hours_utc": ["00:00-01:00"]}"#;
    let e = Catalog::from_toml_str(
        &toml_file(&format!("[{}]", vec![toml_window; 65].join(", "))),
        "prices.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`price.off_peak.windows`") && e.contains("65 windows") && e.contains("64"),
        "{e}"
    );
    let e = Catalog::from_litellm_json(
        &json_file(&format!("[{}]", vec![json_window; 65].join(", "))),
        "prices.json",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`off_peak_pricing.windows`") && e.contains("65 windows"),
        "{e}"
    );
    let c = Catalog::from_toml_str(
        &toml_file(&format!("[{}]", vec![toml_window; 64].join(", "))),
        "prices.toml",
    )
    .unwrap();
    assert_eq!(windows_of(&c).len(), 64);
}
