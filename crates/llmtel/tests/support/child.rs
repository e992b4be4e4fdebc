//! Runs one `#[ignore]`d child test of the current test binary in its own process, for
//! cases that need process-wide environment variables (the workspace forbids `unsafe`, so
//! no `set_var`). Each caller checks the output itself.

use std::ffi::OsStr;
use std::process::{Command, Output};

/// Runs test `child` of this binary alone (`--exact … --ignored --nocapture
/// --test-threads 1`), with every variable of `remove` removed, then `marker=1` and each
/// pair of `set` set; returns its output.
pub fn run<K, V>(child: &str, marker: &str, remove: &[&str], set: &[(K, V)]) -> Output
where
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        child,
        "--ignored",
        "--nocapture",
        "--test-threads",
        "1",
    ]);
    for k in remove {
        c.env_remove(k);
    }
    c.env(marker, "1");
    for (k, v) in set {
        c.env(k, v);
    }
    c.output().unwrap()
}
