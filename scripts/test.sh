#!/usr/bin/env bash
# test.sh -- every test of pgclone, from a fresh Debian 12 machine:
#   1. setup (scripts/setup.sh)
#   2. cargo fmt --check and cargo clippy -D warnings, whole workspace
#   3. the pure crate's unit tests (cargo test -p pgclone-core), then the
#      extension's unit and in-server tests (cargo pgrx test pg15)
#   4. build and install the extension, start source, target and TLS-only
#      clusters (scripts/clusters.sh), run the integration tests against them
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

./scripts/setup.sh

echo "== format and lint"
cargo fmt --all --check
cargo clippy --workspace --all-targets --features integration -- -D warnings

# An integration test without required-features = ["integration"] would also
# run inside `cargo pgrx test`, where no clusters exist, and fail there.
for t in tests/*.rs; do
    name=$(basename "$t" .rs)
    if ! grep -A2 -x "name = \"$name\"" Cargo.toml | grep -q 'required-features = \["integration"\]'; then
        echo "tests/$name.rs has no [[test]] entry with required-features = [\"integration\"] in Cargo.toml" >&2
        exit 1
    fi
done

# What a user runs must work from a plain clone, without the shared
# material that sits beside this repository only on the build machine.
if grep -n '\.\./shared' README.md scripts/*.sh; then
    echo "README.md or scripts/ refer to the shared material, which a user's clone lacks" >&2
    exit 1
fi

echo "== unit tests of the pure crate (no server)"
cargo test -p pgclone-core

echo "== in-server tests"
PGRX_DATA=${PGRX_TEST_PGDATA:-/tmp/pgclone-pgrx-test}
mkdir -p "$PGRX_DATA"
chown postgres: "$PGRX_DATA"
cargo pgrx test pg15 --runas postgres --pgdata "$PGRX_DATA/pg15"

echo "== integration tests"
./scripts/install-ext.sh
export PGCLONE_IT_DIR=${PGCLONE_IT_DIR:-/tmp/pgclone-it-$$}
trap './scripts/clusters.sh stop >/dev/null 2>&1 || true; rm -rf "$PGCLONE_IT_DIR"' EXIT
./scripts/clusters.sh reset
set -a
eval "$(./scripts/clusters.sh env)"
set +a
# Every file of tests/ (each has its [[test]] entry, checked above): a new
# suite runs without being listed here.
suites=()
for t in tests/*.rs; do
    suites+=(--test "$(basename "$t" .rs)")
done
cargo test --features integration "${suites[@]}"
