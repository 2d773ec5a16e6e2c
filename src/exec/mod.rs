//! The one flow every clone takes: SQL call → options → connect (one
//! snapshot) → read the catalog → plan → run the units → summary.
//!
//! A serial clone runs the plan here, in the caller's transaction (all of it
//! or nothing); a parallel or asynchronous one, or one too large for one
//! transaction's locks, hands the same plan to a job's workers (`jobs`).

pub mod create_db;
pub mod prepare;
pub mod run;

use crate::conn::{session_setup_sql, SourceConn};
use crate::error::{CloneError, Result};
use crate::error_report::notice;
use crate::jobs;
use crate::target;
use pgclone_core::plan::assemble::{human_bytes, What};
use pgclone_core::plan::units::{Plan, Stage};
use pgclone_core::request::Spec;
use pgrx::prelude::*;
use std::time::{Duration, Instant};

/// Source sessions give up waiting for a lock after this long rather than
/// hanging behind a DDL on a busy production server.
pub const SOURCE_LOCK_TIMEOUT: &str = "1min";

/// Connect to the source and open the one read-only snapshot every read of
/// the clone goes through.
pub fn open_source(conninfo: &str) -> Result<SourceConn> {
    open_source_with(conninfo, "")
}

/// As `open_source`, with `extra` session settings after the clone's own
/// (the checks fix how values print while they hash them).
pub fn open_source_with(conninfo: &str, extra: &str) -> Result<SourceConn> {
    // The driver reads the catalog as UTF-8; COPY switches the source to the
    // database encoding when it differs.
    let setup = format!("{} {extra}", session_setup_sql("UTF8", SOURCE_LOCK_TIMEOUT));
    let src = target::connect_source(conninfo, &setup)?;
    src.batch("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
    Ok(src)
}

pub fn tablespace_exists(name: &str) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tablespace WHERE spcname = $1)",
        &[name.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// Where objects of the source's tablespace `name` go here: the
/// `tablespaces` option's choice, else the same name when it exists here,
/// else None (the database's default).
pub fn tablespace_here(name: &str, opts: &pgclone_core::options::Options) -> Option<String> {
    match opts.tablespaces.as_ref().and_then(|m| m.get(name)) {
        Some(to) => (to == "pg_default" || tablespace_exists(to)).then(|| to.clone()),
        None => tablespace_exists(name).then(|| name.to_string()),
    }
}

/// The settings every statement of a clone runs under on the target.
pub fn target_settings() -> target::GucScope {
    target::GucScope::enter(&[("search_path", ""), ("check_function_bodies", "off")])
}

/// One clone, whatever the call.
pub fn clone(mut spec: Spec, conninfo: &str) -> Result<String> {
    spec.check()?;
    let asked = jobs::asked(&spec.options);
    if asked > 1 {
        if jobs::available() {
            spec.workers = jobs::workers_for(&spec.options) as u32;
            return jobs::run_sync(&spec, conninfo);
        }
        notice(&format!(
            "parallel {asked} needs shared_preload_libraries = 'pgclone'; cloning serially in this session"
        ));
    }
    spec.workers = 1;
    serial(spec, conninfo)
}

/// The locks one transaction may take here before the server's lock table
/// runs out. PostgreSQL sizes the table as max_locks_per_transaction times
/// the number of backends (connections, workers, prepared transactions),
/// shared by all; a clone keeps to half of it.
fn lock_budget() -> (i64, i64) {
    let n = |name: &str| {
        pgrx::Spi::get_one_with_args::<i64>(
            "SELECT pg_catalog.current_setting($1)::pg_catalog.int8",
            &[name.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(0)
    };
    let per = n("max_locks_per_transaction");
    let backends = n("max_connections")
        + n("autovacuum_max_workers")
        + 1
        + n("max_worker_processes")
        + n("max_wal_senders")
        + n("max_prepared_transactions");
    (per * backends / 2, backends)
}

/// The relations a clone of these schemas creates, each a lock held until
/// the end of its transaction: tables (with their TOAST table and its
/// index), indexes, sequences, views.
fn locks_needed(src: &SourceConn, spec: &Spec) -> Result<i64> {
    if spec.what == What::Table || spec.what == What::Functions {
        return Ok(0);
    }
    let names = prepare::schema_names(src, spec)?;
    let row = src.query_one(
        "SELECT coalesce(sum(CASE WHEN c.relkind IN ('r', 'p', 'm') THEN 1 + 2 * (c.reltoastrelid <> 0)::int \
                                  ELSE 1 END), 0)::int8 \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p', 'm', 'v', 'S', 'i', 'I')",
        &[&names],
    )?;
    Ok(row.get(0))
}

/// The serial clone: the plan's units in order, in the caller's transaction,
/// so a failure leaves nothing behind.
fn serial(mut spec: Spec, conninfo: &str) -> Result<String> {
    let started = Instant::now();
    let src = open_source(conninfo)?;
    let needed = locks_needed(&src, &spec)?;
    let (budget, backends) = lock_budget();
    if needed > budget {
        if jobs::available() {
            notice(&format!(
                "the clone creates about {needed} relations, more than one transaction can lock here \
                 (max_locks_per_transaction × {backends} / 2 = {budget}): it runs as a job of one worker \
                 that commits as it goes (ROLLBACK does not undo it; pgclone.discard() does, if it fails)"
            ));
            drop(src);
            spec.workers = 1;
            return jobs::run_sync(&spec, conninfo);
        }
        return Err(CloneError::NotSupported(format!(
            "the clone creates about {needed} relations, more than one transaction can lock here: \
             raise max_locks_per_transaction to at least {} (restart), or preload pgclone \
             (shared_preload_libraries) so that large clones commit as they go",
            (2 * needed + backends - 1) / backends.max(1)
        )));
    }
    let live = jobs::Live::serial(&spec, conninfo);
    let _guc = target_settings();
    let p = prepare::prepare(&src, &spec, false)?;
    for n in &p.notices {
        notice(n);
    }
    if let Some(skip) = p.skipped {
        return Ok(skip);
    }
    live.totals(&p.plan);
    // The bytes of a COPY in flight show in jobs_view as they arrive.
    struct Hook;
    impl Drop for Hook {
        fn drop(&mut self) {
            crate::copy::set_progress_hook(None);
        }
    }
    crate::copy::set_progress_hook(Some(|b| {
        jobs::serial_reading(b);
        Ok(())
    }));
    let _hook = Hook;
    let encoding = target::database_encoding();
    let mut rows = 0u64;
    let mut bytes = 0u64;
    let mut last_note = Instant::now();
    let mut phases = Phases::new(started);
    phases.mark("catalog");
    let mut stage = Stage::Schema;
    for u in &p.plan.units {
        if u.stage != stage {
            phases.mark(stage.phase());
            stage = u.stage;
        }
        live.working(u.stage, &u.label);
        let m = run::unit(&src, u, &encoding, &mut |_, m| live.copied(m.rows, m.bytes))?;
        rows += m.rows;
        bytes += m.bytes;
        live.unit_done(u.tables_done);
        if last_note.elapsed() > Duration::from_secs(10) {
            notice(&live.line());
            last_note = Instant::now();
        }
    }
    phases.mark(stage.phase());
    src.batch("COMMIT")?;
    let summary = summary(&p, &p.plan, rows, bytes, started, &phases.summary());
    live.record(&summary);
    Ok(summary)
}

/// The one-line result: what was made, rows, bytes, time per phase.
pub fn summary(
    p: &prepare::Prepared,
    plan: &Plan,
    rows: u64,
    bytes: u64,
    started: Instant,
    phases: &str,
) -> String {
    let binary = plan
        .units
        .iter()
        .flat_map(|u| &u.steps)
        .any(|s| matches!(s, pgclone_core::plan::units::Step::Copy(c) if c.source.binary));
    format!(
        "{}: {}; {rows} rows, {} ({}); {:.2} s ({phases})",
        p.what,
        p.counts.list(),
        human_bytes(bytes),
        if binary { "binary COPY" } else { "text COPY" },
        started.elapsed().as_secs_f64(),
    )
}

/// Wall time per phase of a clone, for the summary.
pub struct Phases {
    last: Instant,
    pub spent: Vec<(&'static str, f64)>,
}

impl Phases {
    pub fn new(started: Instant) -> Phases {
        Phases {
            last: started,
            spent: Vec::new(),
        }
    }

    pub fn mark(&mut self, phase: &'static str) {
        let now = Instant::now();
        self.spent.push((phase, (now - self.last).as_secs_f64()));
        self.last = now;
    }

    pub fn summary(&self) -> String {
        self.spent
            .iter()
            .map(|(p, s)| format!("{p} {s:.1} s"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
