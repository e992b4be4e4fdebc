#!/usr/bin/env bash
# Ready to publish (issue #16): the checks that keep every library crate and the CLI
# publishable on crates.io.
#
# 1. MSRV: the workspace builds (all features) with the toolchain `rust-version` names. Only
#    the toolchains on the machine can be used (nothing else can be downloaded), so
#    `rust-version` claims exactly what this step checks.
# 2. Feature matrix (cargo-hack, installed from crates.io if missing), library crates and the
#    CLI only: the examples and tests/end-to-end have no features of their own and are
#    checked by clippy and the test run.
#    a. every feature alone, no default features, all features: `check` of the libraries
#       (and the bin) without dev-dependencies, so a feature that needs another crate or
#       feature must say so in Cargo.toml. Warnings fail the step: an item unused under some
#       features is gated on them.
#    b. no default features with every target: each crate's tests, benches and examples
#       build (`cargo test -p CRATE --no-default-features` builds; a test that needs a
#       feature declares it with `required-features`).
# 3. `cargo package --workspace`: every publishable crate is packed and built from its
#    tarball (verified), the workspace crates resolved against each other through cargo's
#    local overlay registry, before any of them is on crates.io; each package holds both
#    licence texts. No `--allow-dirty`: CI runs
#    on a clean clone, and a dirty tree here means something is not committed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== publish-check: %s\n' "$*"; }
elapsed() { echo "publish-check: $1: $((SECONDS - $2)) s"; }

# The members with `publish = false` (examples/*, tests/*; they have no features) are left
# out of every step below; `cargo package --workspace` would pack them too. Every crate under
# crates/ must be publishable.
members="$(cargo metadata --format-version 1 --no-deps --locked | python3 -c '
import json, os, sys
root = os.getcwd()
for p in json.load(sys.stdin)["packages"]:
    rel = os.path.relpath(os.path.dirname(p["manifest_path"]), root)
    print(rel, p["name"], p["version"], "no" if p["publish"] == [] else "yes")
')"
exclude=()
published=() # name-version of each publishable member
while read -r dir name version publishable; do
  if [[ "$publishable" == no ]]; then
    [[ "$dir" == crates/* ]] && { echo "publish-check: $dir has publish = false"; exit 1; }
    exclude+=(--exclude "$name")
  else
    published+=("$name-$version")
  fi
done <<<"$members"

# Fails when rustc warned about one of our crates (cargo-hack runs many cargo commands; the
# summary line is the one stable sign). Dependencies' warnings are capped by cargo.
no_warnings() {
  local log="$1"
  if grep -E '^warning: `[^`]+` \([^)]+\) generated [0-9]+ warnings?' "$log"; then
    echo "publish-check: warnings under a feature combination (see above in $log)"
    return 1
  fi
}
log_dir="$(mktemp -d)"
trap 'rm -rf "$log_dir"' EXIT

# --- 1. MSRV ---------------------------------------------------------------------------
t=$SECONDS
msrv="$(sed -n 's/^rust-version = "\([0-9.]*\)"$/\1/p' Cargo.toml)"
[[ -n "$msrv" ]] || { echo "publish-check: no rust-version in Cargo.toml"; exit 1; }
toolchain="$msrv"
[[ "$toolchain" =~ ^[0-9]+\.[0-9]+$ ]] && toolchain="$toolchain.0" # "1.95" means 1.95.0
step "MSRV $msrv: cargo +$toolchain check --workspace --all-features --all-targets"
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  echo "publish-check: toolchain $toolchain (rust-version in Cargo.toml) is not installed;"
  echo "  install it with: rustup toolchain install $toolchain --profile minimal"
  exit 1
fi
cargo "+$toolchain" check --workspace --all-features --all-targets --locked -j2
elapsed "MSRV" "$t"

# --- 2. Feature matrix -----------------------------------------------------------------
if ! command -v cargo-hack >/dev/null 2>&1; then
  step "installing cargo-hack"
  cargo install cargo-hack --locked -j2
fi

t=$SECONDS
step "cargo hack check --each-feature --no-dev-deps (libraries and CLI)"
# --no-dev-deps edits each Cargo.toml while it runs (and restores it), hence --no-dev-deps
# and `cargo package` never run at the same time.
cargo hack check --workspace "${exclude[@]}" --each-feature --no-dev-deps -j2 \
  2>&1 | tee "$log_dir/each-feature.log"
no_warnings "$log_dir/each-feature.log"
elapsed "each feature" "$t"

t=$SECONDS
step "cargo hack check --no-default-features --all-targets (tests, benches, examples)"
cargo hack check --workspace "${exclude[@]}" --no-default-features --all-targets --locked -j2 \
  2>&1 | tee "$log_dir/no-default.log"
no_warnings "$log_dir/no-default.log"
elapsed "no default features, all targets" "$t"

# --- 3. Package ------------------------------------------------------------------------
t=$SECONDS
step "cargo package --workspace (verified: each crate built from its tarball)"
# Verifying a crate builds the workspace crates it depends on from cargo's overlay registry
# (target/package/tmp-registry), and cargo takes a registry package as immutable for its
# version: it unpacks each .crate once into $CARGO_HOME/registry/src/ (shared by every run and
# every clone at the same path, CI's included) and keeps the builds made from it. A second
# run would verify against the sources and builds of an earlier one, all at the same version,
# and pass a crate that no longer builds against the new ones. So forget both first: the
# unpacked copies of our crates (a crates.io crate of the same name would just be unpacked
# again from the download cache) and every build made from them, found by the sources their
# .d files list (the workspace's own builds stay).
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
target_dir="${CARGO_TARGET_DIR:-target}"
alternatives=""
for nv in "${published[@]}"; do
  rm -rf "$cargo_home"/registry/src/*/"$nv"
  alternatives+="${alternatives:+|}${nv//./\\.}"
done
if [[ -d "$target_dir/debug/deps" ]]; then
  { grep -lE "/registry/src/[^/ ]+/($alternatives)/" "$target_dir"/debug/deps/*.d || true; } \
    | while read -r dep_info; do
        hash="${dep_info##*-}"
        hash="${hash%.d}"
        rm -rf "$target_dir"/debug/.fingerprint/*-"$hash" "$target_dir"/debug/deps/*-"$hash".*
      done
fi
# The packages leave tests and benches out (see `include` in each Cargo.toml); cargo says so
# once per test target, which is noise here.
cargo package --workspace "${exclude[@]}" --locked -j2 2>&1 \
  | { grep -vE '^warning: ignoring (test|benchmark) `[^`]+` as `(tests|benches)/' || true; }
elapsed "package" "$t"

# The licence is "MIT OR Apache-2.0": each package carries both texts (the MIT licence asks
# for its notice in every copy).
for nv in "${published[@]}"; do
  crate="${nv%-*}"
  listed="$(cargo package -p "$crate" --list --locked 2>/dev/null)"
  for f in LICENSE-MIT LICENSE-APACHE; do
    grep -qx "$f" <<<"$listed" || { echo "publish-check: $crate's package has no $f"; exit 1; }
  done
done

echo "publish-check: ok"
