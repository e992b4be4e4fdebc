//! What the CLI reads is bounded: a `cost --batch` line over 1 MiB gets an error object
//! naming the limit (the next lines are still priced), and `prices check` refuses a file over
//! 64 MiB naming the limit, instead of reading either whole into memory. Runs the built binary.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn a_batch_line_over_1_mib_gets_an_error_naming_the_limit_and_the_rest_are_priced() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .args(["cost", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // A JSON object of 1 MiB + 1 byte (padded with blanks): valid, but over the limit.
        let pad =
            1024 * 1024 + 1 - r#"{"model":"gpt-4o","input_tokens":1,"output_tokens":1}"#.len();
        let line = |pad: usize| {
            format!(
                r#"{{"model":"gpt-4o","input_tokens":1,{}"output_tokens":1}}"#,
                " ".repeat(pad)
            )
        };
        let big = line(pad);
        assert_eq!(big.len(), 1024 * 1024 + 1);
        // One at the limit exactly: accepted.
        let at_limit = line(pad - 1);
        assert_eq!(at_limit.len(), 1024 * 1024);
        for line in [
            big.as_str(),
            r#"{"model":"gpt-4o","input_tokens":1000000,"output_tokens":0}"#,
            at_limit.as_str(),
        ] {
            stdin.write_all(line.as_bytes()).unwrap();
            stdin.write_all(b"\n").unwrap();
        }
        // And a last one over the limit, with no newline.
        stdin.write_all(big.as_bytes()).unwrap();
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(out.len(), 4, "{out:?}");
    for (i, n) in [(0, 1), (3, 4)] {
        assert_eq!(out[i]["line"], n, "{:?}", out[i]);
        let err = out[i]["error"].as_str().unwrap();
        assert!(
            err.contains("longer than 1048576 bytes (1 MiB)"),
            "line {n}: {err}"
        );
    }
    assert_eq!(out[1]["cost_usd_exact"], "2.500000", "{:?}", out[1]);
    assert_eq!(out[2]["model"], "gpt-4o", "{:?}", out[2]);
}

#[test]
fn a_price_file_over_64_mib_is_refused_naming_the_limit() {
    let dir = std::env::temp_dir().join(format!("llmtel-cli-caps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("huge.toml");
    // Sparse: 64 MiB + 1 byte of NULs, taking no disk.
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(64 * 1024 * 1024 + 1).unwrap();
    drop(f);
    let o = Command::new(env!("CARGO_BIN_EXE_llmtel"))
        .args(["prices", "check", path.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("larger than 67108864 bytes (64 MiB)") && err.contains("huge.toml"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
