#!/usr/bin/env bash
# Dependency policy check with cargo-deny (config: deny.toml at the repository root):
#   licenses  every crate's licence is one deny.toml allows (our crates: MIT OR Apache-2.0)
#   bans      duplicate versions are reported (warnings); wildcard versions are errors
#   sources   crates come from crates.io only (no other registry, no git)
# Advisories (RustSec) are not checked here: their database is cloned from GitHub, which the
# machines this project's checks run on cannot reach (see the [advisories] comment in
# deny.toml). Where GitHub is reachable: `cargo deny check advisories`.
#
# Installs cargo-deny (`cargo install --locked cargo-deny`, into ~/.cargo/bin) if missing.
# Usage: scripts/deny.sh          exit 0 when every check passes
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! cargo deny --version >/dev/null 2>&1; then
    echo "deny: installing cargo-deny (cargo install --locked cargo-deny, a few minutes)"
    cargo install --locked cargo-deny
fi
echo "deny: $(cargo deny --version)"
exec cargo deny --all-features check licenses bans sources
