//! pgclone: clone tables, schemas and databases from a running PostgreSQL
//! server into the database you are connected to, from SQL.
//!
//! The flow: SQL call (api) → options → connect to the source on one snapshot
//! (conn) → read the catalog (catalog) → render DDL (ddl) → run it and stream
//! the data (exec, copy) → summary.

use pgrx::prelude::*;

pub mod api;
pub mod catalog;
pub mod check;
pub mod conn;
pub mod copy;
pub mod error_report;
pub mod exec;
pub mod interrupts;
pub mod jobs;
pub mod mask;
pub mod target;

// The pure parts live in their own crate, tested without a server.
pub use pgclone_core::{ddl, error, options, plan, progress, sqltext};

::pgrx::pg_module_magic!();

extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
extension_sql_file!("../sql/jobs.sql", name = "jobs", requires = ["bootstrap"]);
extension_sql_file!("../sql/mask.sql", name = "mask", requires = ["bootstrap"]);
extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

/// Errors never carry Rust backtraces; then settings, then shared memory for
/// jobs (only while the server preloads the library: without it, calls run
/// serially in the session).
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // pgrx puts a captured backtrace in the DETAIL of an ERROR, and capture
    // follows RUST_BACKTRACE in the server's environment: users must see
    // their error, not our stack. RUST_LIB_BACKTRACE takes precedence over
    // RUST_BACKTRACE for captured backtraces; panics still honour the latter.
    // SAFETY: a backend is single-threaded while it loads a library.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    jobs::init();
    mask::init();
    check::init();
}

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
