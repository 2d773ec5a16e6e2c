#!/usr/bin/env bash
# setup.sh -- install everything pgclone needs to build and test, on a fresh
# Debian 12 machine with a Rust toolchain. Idempotent: each step is skipped
# when its result is already there. Run as root (apt, and the postgres user).
set -euo pipefail

PGRX_VERSION=0.18.1
PG_MAJOR=15
PACKAGES=(
    "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" libclang-dev clang sudo
    libssl-dev pkg-config openssl python3 ca-certificates
)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

export PATH="$HOME/.cargo/bin:$PATH"
# test.sh runs cargo fmt --check and cargo clippy.
if command -v rustup >/dev/null && ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi
if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
    echo "setup: installing cargo-pgrx $PGRX_VERSION (a few minutes)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --quiet
fi

if ! grep -qs "^pg$PG_MAJOR = \"/usr/bin/pg_config\"" "$HOME/.pgrx/config.toml"; then
    echo "setup: cargo pgrx init --pg$PG_MAJOR /usr/bin/pg_config"
    cargo pgrx init "--pg$PG_MAJOR" /usr/bin/pg_config >/dev/null
fi
echo "setup: ready (PostgreSQL $PG_MAJOR, cargo-pgrx $PGRX_VERSION)"
