# PostgreSQL 15 with pgclone built in. Build: docker build -t pgclone .
# The builder compiles with the pinned pgrx; the runtime image only gets the
# extension's files.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      postgresql-15 postgresql-server-dev-15 libclang-dev clang libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-pgrx --version 0.18.1 --locked \
 && cargo pgrx init --pg15 /usr/bin/pg_config
WORKDIR /src
COPY . .
RUN cargo pgrx package --pg-config /usr/bin/pg_config --out-dir /pkg

FROM postgres:15-bookworm
COPY --from=build /pkg/usr/share/postgresql/15/extension/ /usr/share/postgresql/15/extension/
COPY --from=build /pkg/usr/lib/postgresql/15/lib/ /usr/lib/postgresql/15/lib/
# Parallel and asynchronous clones (jobs) need the library preloaded.
CMD ["postgres", "-c", "shared_preload_libraries=pgclone"]
