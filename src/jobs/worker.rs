//! A job's copy workers: take a ready unit from the queue in shared memory,
//! run it and mark it done in one transaction, report the completion, until
//! the coordinator says there is no more. And what the job's processes
//! share: signals, transactions, session settings.

use super::slots::{self, SLOTS};
use super::{state, stop_slot, wake};
use crate::conn::SourceConn;
use crate::error::{sqlstate_from_int, CloneError, Result};
use crate::exec;
use crate::target;
use pgclone_core::conninfo::ConnInfo;
use pgclone_core::plan::units::{Stage, Step, Unit, UnitKind};
use pgclone_core::sqltext::quote_literal;
use pgrx::bgworkers::BackgroundWorker;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::pg_sys::PgTryBuilder;
use pgrx::prelude::*;
use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

thread_local! {
    /// (slot, worker) this process reports its bytes in flight to.
    static ME: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

/// Called by the COPY data callback after each read: publish the bytes read
/// so far, and stop at once if the job is stopping.
fn on_read(bytes: u64) -> Result<()> {
    let Some((i, w)) = ME.with(|m| m.get()) else {
        return Ok(());
    };
    let mut g = SLOTS.exclusive();
    let s = &mut g.s[i];
    s.workers[w].bytes = bytes as i64;
    if s.stop {
        return Err(stopped(s.cancel));
    }
    Ok(())
}

pub(super) fn stopped(cancel: bool) -> CloneError {
    if cancel {
        CloneError::Cancelled
    } else {
        CloneError::Internal("stopped: another process of the job failed".into())
    }
}

unsafe extern "C-unwind" {
    /// The server's SIGTERM handler for backends (tcop/postgres.c).
    #[link_name = "die"]
    fn server_die(signal: std::ffi::c_int);
}

/// SIGTERM (pg_terminate_backend, shutdown) ends the process at the next
/// interrupt check, as in a backend; SIGINT (cancel) raises an ERROR there.
pub(super) unsafe fn setup_signals() {
    // SAFETY: installing the server's own handlers before unblocking signals.
    unsafe {
        #[cfg(not(feature = "pg18"))]
        pg_sys::pqsignal(libc::SIGTERM, Some(server_die));
        #[cfg(feature = "pg18")]
        pg_sys::pqsignal_be(libc::SIGTERM, Some(server_die));
        pg_sys::BackgroundWorkerUnblockSignals();
    }
}

fn caught(e: CaughtError) -> CloneError {
    let r = match &e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
        CaughtError::RustPanic { ereport, .. } => ereport,
    };
    CloneError::Job {
        sqlstate: sqlstate_from_int(r.sql_error_code() as i32),
        message: r.message().to_string(),
    }
}

/// Run `f` in a transaction of its own: committed when it returns Ok, rolled
/// back on Err or on an ERROR raised inside.
pub(super) fn txn<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    // SAFETY: a worker outside any transaction starts one, as
    // BackgroundWorker::transaction does.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let f = AssertUnwindSafe(f);
    let out = PgTryBuilder::new(move || {
        let f = f;
        (f.0)()
    })
    .catch_others(|e| Err(caught(e)))
    .execute();
    // SAFETY: ends the transaction started above.
    unsafe {
        match out {
            Ok(_) => {
                pg_sys::PopActiveSnapshot();
                pg_sys::CommitTransactionCommand();
            }
            Err(_) => pg_sys::AbortCurrentTransaction(),
        }
    }
    out
}

/// Settings for the whole session of a job process: bulk load, and none of
/// the target's timeouts (statement, lock, idle in transaction), which a
/// long unit would trip over.
pub(super) fn session_settings() -> Result<()> {
    for sql in [
        "SET search_path = ''",
        "SET check_function_bodies = off",
        "SET synchronous_commit = off",
        "SET statement_timeout = 0",
        "SET lock_timeout = 0",
        "SET idle_in_transaction_session_timeout = 0",
        "SET client_min_messages = warning",
    ] {
        target::run(sql);
    }
    // Index builds sort in memory when they can; never lower than the server's.
    let mwm = Spi::get_one::<i64>(
        "SELECT setting::bigint FROM pg_catalog.pg_settings WHERE name = 'maintenance_work_mem'",
    )
    .map_err(|e| CloneError::Internal(format!("settings: {e}")))?
    .unwrap_or(0);
    if mwm < 512 * 1024 {
        target::run("SET maintenance_work_mem = '512MB'");
    }
    Ok(())
}

pub(super) fn password_of(conninfo: &str) -> Option<String> {
    ConnInfo::parse(conninfo)
        .ok()
        .and_then(|c| c.password().map(str::to_string))
}

pub(super) struct SlotArgs {
    pub database: u32,
    pub role: u32,
    pub job_id: i32,
    pub conninfo: String,
    pub request: String,
    pub snapshot: String,
}

pub(super) fn slot_args(idx: usize) -> SlotArgs {
    let g = SLOTS.share();
    let s = &g.s[idx];
    SlotArgs {
        database: s.database,
        role: s.role,
        job_id: s.job_id,
        conninfo: slots::get(&s.conninfo),
        request: slots::get(&s.request),
        snapshot: slots::get(&s.snapshot),
    }
}

pub(super) fn connect(db: u32, role: u32) {
    BackgroundWorker::connect_worker_to_spi_by_oid(
        Some(pg_sys::Oid::from(db)),
        Some(pg_sys::Oid::from(role)),
    );
}

pub(super) fn my_pid() -> i32 {
    // SAFETY: set at process start.
    unsafe { pg_sys::MyProcPid }
}

pub(super) fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Open a source session on the job's snapshot.
fn source_on(conninfo: &str, snapshot: &str) -> Result<SourceConn> {
    let src = txn(|| exec::open_source(conninfo))?;
    import_snapshot(&src, snapshot)?;
    Ok(src)
}

fn import_snapshot(src: &SourceConn, snapshot: &str) -> Result<()> {
    if !snapshot.is_empty() {
        src.batch(&format!(
            "SET TRANSACTION SNAPSHOT {}",
            quote_literal(snapshot)
        ))?;
    }
    Ok(())
}

/// End the source transaction (and the locks its COPYs took) and start the
/// next on the same snapshot, in the same session: a new session would cost
/// a connection and an authentication each time, tens of ms.
fn renew_source(src: &SourceConn, snapshot: &str) -> Result<()> {
    src.batch("COMMIT; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
    import_snapshot(src, snapshot)
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pgclone_worker_main(arg: pg_sys::Datum) {
    let v = arg.value();
    let (idx, w) = (v / 256, v % 256);
    // SAFETY: first thing in the process.
    unsafe { setup_signals() };
    let a = slot_args(idx);
    connect(a.database, a.role);
    SLOTS.exclusive().s[idx].workers[w].pid = my_pid();
    let secret = password_of(&a.conninfo);
    let r = (|| -> Result<()> {
        txn(session_settings)?;
        let encoding = txn(|| Ok(target::database_encoding()))?;
        work_loop(
            idx,
            w,
            a.job_id,
            a.role,
            &a.conninfo,
            &a.snapshot,
            &encoding,
        )
    })();
    let coordinator = {
        let mut g = SLOTS.exclusive();
        let s = &mut g.s[idx];
        if let Err(e) = r {
            // The first failure explains the job; the others just stop.
            let e = e.scrub(secret.as_deref());
            pgrx::log!("pgclone job {} worker {}: {e}", a.job_id, w + 1);
            if !s.stop {
                slots::put(&mut s.sqlstate, e.sqlstate());
                slots::put(&mut s.message, &truncate(&e.to_string(), 1900));
                s.workers[w].pid = 0;
                stop_slot(s, false);
            }
        }
        s.workers[w] = slots::WorkerState::default();
        s.coordinator_pid
    };
    wake(coordinator);
}

/// A source session's locks pile up with its COPYs until its transaction
/// ends: start a new one on the same snapshot every so many tables.
const COPIES_PER_SOURCE_TRANSACTION: usize = 200;

/// Take and run units until the coordinator says there are no more. Each
/// unit's work and its "done" mark commit together, so a unit is either
/// wholly in or to be run again.
fn work_loop(
    idx: usize,
    w: usize,
    job_id: i32,
    role: u32,
    conninfo: &str,
    snapshot: &str,
    encoding: &str,
) -> Result<()> {
    ME.with(|m| m.set(Some((idx, w))));
    crate::copy::set_progress_hook(Some(on_read));
    let mut src: Option<SourceConn> = None;
    let mut copies = 0usize;
    loop {
        let next = {
            let mut g = SLOTS.exclusive();
            let s = &mut g.s[idx];
            if s.stop {
                return Err(stopped(s.cancel));
            }
            match s.ready.pop() {
                Some(id) => {
                    s.workers[w].unit = id;
                    Some(id)
                }
                None if s.finished => return Ok(()),
                None => None,
            }
        };
        let Some(id) = next else {
            super::wait_latch(Duration::from_millis(200));
            check_die();
            continue;
        };
        if copies >= COPIES_PER_SOURCE_TRANSACTION {
            if let Some(s) = &src {
                renew_source(s, snapshot)?;
            }
            copies = 0;
        }
        if src.is_none() {
            src = Some(source_on(conninfo, snapshot)?);
        }
        let conn = src.as_ref().unwrap_or_else(|| unreachable!());
        let started = Instant::now();
        let mut counted = (0i64, 0i64);
        let done = txn(|| {
            let (label, steps) = state::unit_steps(job_id, id, role)?;
            slots::put_cut(&mut SLOTS.exclusive().s[idx].workers[w].label, &label);
            report_activity(&format!("pgclone job {job_id}: {label}"));
            let u = Unit {
                id,
                stage: Stage::Data,
                kind: UnitKind::Ddl,
                label,
                steps,
                deps: Vec::new(),
                est_bytes: 0,
                tables_done: 0,
            };
            let m = exec::run::unit(conn, &u, encoding, &mut |_, m| {
                counted.0 += m.rows as i64;
                counted.1 += m.bytes as i64;
            })?;
            copies += u
                .steps
                .iter()
                .filter(|s| matches!(s, Step::Copy(_)))
                .count();
            state::mark_done(
                job_id,
                id,
                m.rows,
                m.bytes,
                started.elapsed().as_millis() as i64,
            )?;
            Ok(())
        });
        let coordinator = {
            let mut g = SLOTS.exclusive();
            let s = &mut g.s[idx];
            s.workers[w].bytes = 0;
            s.workers[w].unit = 0;
            s.workers[w].label = [0; 208];
            if done.is_ok() {
                s.rows_done += counted.0;
                s.bytes_done += counted.1;
                // The done ring is drained by the coordinator; it always has
                // room for one per worker's unit in flight.
                if !s.done.push(id) {
                    slots::put(&mut s.message, "the completion queue overflowed");
                    stop_slot(s, false);
                }
            }
            s.coordinator_pid
        };
        wake(coordinator);
        done?;
    }
}

/// What pg_stat_activity shows for this process.
pub(super) fn report_activity(text: &str) {
    let c = std::ffi::CString::new(text.replace('\0', " ")).unwrap_or_default();
    // SAFETY: the server copies the text into its own status entry.
    unsafe { pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_RUNNING, c.as_ptr()) };
}

/// Only a termination request is acted on while idle; a cancel arrives as
/// the slot's stop flag.
fn check_die() {
    // SAFETY: reads a flag the signal handler sets.
    if unsafe { pg_sys::ProcDiePending } != 0 {
        pgrx::check_for_interrupts!();
    }
}
