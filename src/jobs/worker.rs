//! The processes of a job: the coordinator (catalog, pre-data, post-data,
//! outcome) and the copy workers (claim a unit, run it, mark it done, in one
//! transaction each).

use super::slots::{self, ACTIVE, DONE, SLOTS};
use super::{stop_slot, JobRequest};
use crate::conn::conninfo::ConnInfo;
use crate::error::{sqlstate_from_int, CloneError, Result};
use crate::exec::run_unit;
use crate::exec::schema::{open_source, prepare, Prepared, SchemaRequest, What};
use crate::exec::table::{clone_table_counted, TableRequest};
use crate::options::Options;
use crate::plan::units::{refresh_units, units, Unit, UnitKind, DEFAULT_SPLIT_BYTES};
use crate::sqltext::{qualified, quote_literal};
use crate::target;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, DynamicBackgroundWorker};
use pgrx::pg_sys::panic::CaughtError;
use pgrx::pg_sys::PgTryBuilder;
use pgrx::prelude::*;
use serde::Deserialize;
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

fn stopped(cancel: bool) -> CloneError {
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
unsafe fn setup_signals() {
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
fn txn<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
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

fn spi<T>(r: std::result::Result<T, pgrx::spi::SpiError>) -> Result<T> {
    r.map_err(|e| CloneError::Internal(format!("job state: {e}")))
}

/// Settings for the whole session of a job process: bulk load, no timeouts
/// that a long COPY or index build would trip over.
fn session_settings() -> Result<()> {
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
    let mwm = spi(Spi::get_one::<i64>(
        "SELECT setting::bigint FROM pg_catalog.pg_settings WHERE name = 'maintenance_work_mem'",
    ))?
    .unwrap_or(0);
    if mwm < 512 * 1024 {
        target::run("SET maintenance_work_mem = '512MB'");
    }
    Ok(())
}

fn password_of(conninfo: &str) -> Option<String> {
    ConnInfo::parse(conninfo)
        .ok()
        .and_then(|c| c.password().map(str::to_string))
}

fn slot_args(idx: usize) -> (u32, u32, i32, String, String, String) {
    let g = SLOTS.share();
    let s = &g.s[idx];
    (
        s.database,
        s.role,
        s.job_id,
        slots::get(&s.conninfo),
        slots::get(&s.request),
        slots::get(&s.snapshot),
    )
}

fn connect(db: u32, role: u32) {
    BackgroundWorker::connect_worker_to_spi_by_oid(
        Some(pg_sys::Oid::from(db)),
        Some(pg_sys::Oid::from(role)),
    );
}

fn my_pid() -> i32 {
    // SAFETY: set at process start.
    unsafe { pg_sys::MyProcPid }
}

/// Wait on the latch; only a termination request is acted on here (the
/// coordinator watches the slot's flags instead of taking a cancel ERROR
/// outside a transaction).
fn nap(ms: u64) {
    super::wait_latch(Duration::from_millis(ms));
    // SAFETY: reads a flag the signal handler sets.
    if unsafe { pg_sys::ProcDiePending } != 0 {
        pgrx::check_for_interrupts!();
    }
}

// ---------------------------------------------------------------- coordinator

#[pg_guard]
unsafe extern "C-unwind" fn on_coordinator_exit(_code: std::ffi::c_int, arg: pg_sys::Datum) {
    // A coordinator that ends without recording an outcome (terminated,
    // crashed) still stops its workers and wakes a waiting caller.
    let idx = arg.value();
    if idx >= slots::MAX_SLOTS {
        return;
    }
    let mut g = SLOTS.exclusive();
    let s = &mut g.s[idx];
    if s.coordinator_pid == my_pid() && s.state != DONE {
        stop_slot(s, false);
        s.ok = false;
        slots::put(&mut s.sqlstate, "57P01");
        slots::put(
            &mut s.message,
            "the job's coordinator was terminated; pgclone.resume() continues the job",
        );
        s.state = DONE;
        s.coordinator_pid = 0;
        if s.waiter_pid == 0 {
            slots::clear(s);
        }
    }
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pgclone_coordinator_main(arg: pg_sys::Datum) {
    let idx = arg.value();
    // SAFETY: first thing in the process, before anything can be signalled.
    unsafe { setup_signals() };
    let (db, role, job_id, conninfo, request, _) = slot_args(idx);
    connect(db, role);
    SLOTS.exclusive().s[idx].coordinator_pid = my_pid();
    // SAFETY: registers a callback with a plain integer argument.
    unsafe { pg_sys::before_shmem_exit(Some(on_coordinator_exit), pg_sys::Datum::from(idx)) };
    let secret = password_of(&conninfo);
    let outcome = match serde_json::from_str::<JobRequest>(&request) {
        Ok(req) => coordinate(idx, job_id, &req, &conninfo),
        Err(e) => Err(CloneError::Internal(format!("job request: {e}"))),
    }
    .map_err(|e| e.scrub(secret.as_deref()));
    let mut g = SLOTS.exclusive();
    let s = &mut g.s[idx];
    s.ok = outcome.is_ok();
    match &outcome {
        Ok(summary) => {
            slots::put(&mut s.message, &truncate(summary, 2000));
        }
        Err(e) => {
            slots::put(&mut s.sqlstate, e.sqlstate());
            slots::put(&mut s.message, &truncate(&e.to_string(), 2000));
        }
    }
    s.state = DONE;
    s.coordinator_pid = 0;
    s.conninfo.fill(0);
    if s.waiter_pid == 0 {
        slots::clear(s);
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Run the job and record its outcome in the job row.
fn coordinate(idx: usize, job_id: i32, req: &JobRequest, conninfo: &str) -> Result<String> {
    txn(|| {
        session_settings()?;
        insert_job(job_id, req, conninfo)
    })?;
    SLOTS.exclusive().s[idx].state = ACTIVE;
    let mut phases = serde_json::Map::new();
    let result = if req.op == "table" {
        run_table(idx, job_id, req, conninfo)
    } else {
        run_schemas(idx, job_id, req, conninfo, &mut phases)
    };
    let (cancel, stop, stop_message) = {
        let g = SLOTS.share();
        (
            g.s[idx].cancel,
            g.s[idx].stop,
            slots::get(&g.s[idx].message),
        )
    };
    // A worker's own error explains a stop better than the echo of it here
    // (the interrupt it sent, or "stopped").
    let result = match result {
        Err(_) if cancel => Err(CloneError::Cancelled),
        Err(_) if stop && !stop_message.is_empty() => {
            let sqlstate = slots::get(&SLOTS.share().s[idx].sqlstate);
            Err(CloneError::Job {
                sqlstate: if sqlstate.len() == 5 {
                    sqlstate
                } else {
                    "XX000".into()
                },
                message: stop_message,
            })
        }
        other => other,
    };
    let secret = password_of(conninfo);
    let (status, summary, error) = match &result {
        Ok(s) => ("completed", Some(s.clone()), None),
        Err(CloneError::Cancelled) => ("cancelled", None, Some(CloneError::Cancelled)),
        Err(e) => ("failed", None, Some(e.clone().scrub(secret.as_deref()))),
    };
    let phases = serde_json::Value::Object(phases).to_string();
    txn(|| {
        spi((|| {
            Spi::run_with_args(
                "UPDATE pgclone.jobs SET status = $2, end_time = clock_timestamp(), summary = $3, \
                   error_message = $4, error_sqlstate = $5, phases = $6::jsonb, \
                   current_phase = CASE WHEN $2 = 'completed' THEN 'done' ELSE current_phase END \
                 WHERE job_id = $1",
                &[
                    job_id.into(),
                    status.into(),
                    summary.clone().into(),
                    error.as_ref().map(|e| e.to_string()).into(),
                    error.as_ref().map(|e| e.sqlstate().to_string()).into(),
                    phases.clone().into(),
                ],
            )?;
            // Units a stopped worker held go back to the queue for resume.
            Spi::run_with_args(
                "UPDATE pgclone.job_units SET status = 'pending', worker_pid = NULL \
                 WHERE job_id = $1 AND status = 'running'",
                &[job_id.into()],
            )?;
            if status == "completed" {
                Spi::run_with_args(
                    "DELETE FROM pgclone.job_secrets WHERE job_id = $1",
                    &[job_id.into()],
                )?;
            }
            Ok(())
        })())
    })?;
    result
}

fn insert_job(job_id: i32, req: &JobRequest, conninfo: &str) -> Result<()> {
    // SAFETY: the name of the role the job runs as.
    let owner = unsafe {
        std::ffi::CStr::from_ptr(pg_sys::GetUserNameFromId(pg_sys::GetUserId(), false))
            .to_string_lossy()
            .into_owned()
    };
    let source = ConnInfo::parse(conninfo)
        .map(|c| c.redacted())
        .unwrap_or_default();
    let request = serde_json::to_string(req).map_err(|e| CloneError::Internal(e.to_string()))?;
    let table = req.target_table.clone().or(req.table.clone());
    spi((|| {
        Spi::run_with_args(
            "INSERT INTO pgclone.jobs (job_id, status, op_type, schema_name, table_name, request, source, \
                                       owner_name, workers, resumed_from, current_phase) \
             VALUES ($1, 'running', $2, $3, $4, $5::jsonb, $6, $7, $8, $9, 'catalog')",
            &[
                job_id.into(),
                req.op.clone().into(),
                req.schema.clone().into(),
                table.into(),
                request.into(),
                source.into(),
                owner.into(),
                req.workers.into(),
                req.resumed_from.into(),
            ],
        )?;
        Spi::run_with_args(
            "INSERT INTO pgclone.job_secrets (job_id, conninfo) VALUES ($1, $2)",
            &[job_id.into(), conninfo.into()],
        )?;
        if let Some(old) = req.resumed_from {
            // The new job carries the secret on; the old one needs it no more.
            Spi::run_with_args(
                "DELETE FROM pgclone.job_secrets WHERE job_id = $1",
                &[old.into()],
            )?;
        }
        Ok(())
    })())
}

fn set_phase(job_id: i32, phase: &str) -> Result<()> {
    txn(|| {
        spi({
            Spi::run_with_args(
                "UPDATE pgclone.jobs SET current_phase = $2 WHERE job_id = $1",
                &[job_id.into(), phase.into()],
            )
        })
    })
}

/// A table job: the serial table clone, in one transaction of its own (so a
/// failure leaves nothing and resume starts it again).
fn run_table(idx: usize, job_id: i32, req: &JobRequest, conninfo: &str) -> Result<String> {
    let options = Options::parse(Some(&req.options))?;
    let schema = req.schema.clone().unwrap_or_default();
    let table = req.table.clone().unwrap_or_default();
    txn(|| {
        spi({
            Spi::run_with_args(
                "INSERT INTO pgclone.job_units (job_id, unit_id, kind, schema_name, table_name, status, worker_pid, started) \
                 VALUES ($1, 1, 'copy', $2, $3, 'running', $4, clock_timestamp()); \
                 UPDATE pgclone.jobs SET tables_total = 1, current_phase = 'copy', pre_data_done = true WHERE job_id = $1",
                &[
                    job_id.into(),
                    schema.clone().into(),
                    table.clone().into(),
                    my_pid().into(),
                ],
            )
        })
    })?;
    ME.with(|m| m.set(Some((idx, 0))));
    let started = Instant::now();
    let out = txn(|| {
        let (summary, rows, bytes) = clone_table_counted(&TableRequest {
            conninfo,
            schema: &schema,
            table: &table,
            include_data: req.include_data,
            target_table: req.target_table.as_deref(),
            options: options.clone(),
        })?;
        mark_done(job_id, 1, rows, bytes, started.elapsed())?;
        Ok(summary)
    });
    ME.with(|m| m.set(None));
    out
}

fn schema_request<'a>(req: &'a JobRequest, conninfo: &'a str) -> Result<SchemaRequest<'a>> {
    Ok(SchemaRequest {
        conninfo,
        schema: req.schema.as_deref(),
        what: match req.op.as_str() {
            "database" => What::Database,
            "functions" => What::Functions,
            _ => What::Schema,
        },
        include_data: req.include_data,
        options: Options::parse(Some(&req.options))?,
    })
}

fn run_schemas(
    idx: usize,
    job_id: i32,
    req: &JobRequest,
    conninfo: &str,
    phases: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<String> {
    let sreq = schema_request(req, conninfo)?;
    let src = txn(|| open_source(conninfo))?;
    // Every worker reads the same instant as the coordinator.
    let snapshot: String = src.query_one("SELECT pg_export_snapshot()", &[])?.get(0);
    slots::put(&mut SLOTS.exclusive().s[idx].snapshot, &snapshot);
    let pre_done = match req.resumed_from {
        Some(old) => txn(|| {
            spi({
                Spi::get_one_with_args::<bool>(
                    "SELECT pre_data_done FROM pgclone.jobs WHERE job_id = $1",
                    &[old.into()],
                )
            })
        })?
        .unwrap_or(false),
        None => false,
    };
    let wall = Instant::now();
    let mut p: Prepared = txn(|| {
        let mut p = prepare(&src, &sreq, !pre_done, true)?;
        p.refresh_in_units = true;
        p.phases.mark("schema");
        // Every table counts, those with nothing to copy or index too.
        let tables = p.table_work(&sreq).len() as i64;
        match req.resumed_from {
            Some(old) if pre_done => copy_units(job_id, old)?,
            _ => {
                record_undo(job_id, &p.undo, &p.on_success)?;
                let split = sreq
                    .options
                    .split_tables_larger_than
                    .map(|b| b.0 as i64)
                    .unwrap_or(DEFAULT_SPLIT_BYTES);
                let mut work = p.table_work(&sreq);
                for w in work.iter_mut().filter(|w| w.copy.is_some()) {
                    // Fresh statistics for the clone, as pg_restore users run by hand.
                    w.keys_after
                        .push(format!("ANALYZE {}", qualified(&w.schema, &w.name)));
                }
                let mut list = units(&work, split, req.workers);
                refresh_units(&mut list, &p.refresh_sql(&sreq));
                insert_units(job_id, &list)?;
            }
        }
        spi({
            Spi::run_with_args(
                "UPDATE pgclone.jobs SET pre_data_done = true, current_phase = 'copy', tables_total = $2, \
                   bytes_total = (SELECT sum(est_bytes) FROM pgclone.job_units WHERE job_id = $1 AND kind = 'copy') \
                 WHERE job_id = $1",
                &[job_id.into(), tables.into()],
            )
        })?;
        Ok(p)
    })?;
    for (name, secs) in &p.phases.spent {
        phases.insert(format!("{name}_s"), round(*secs));
    }

    // ---- data: copies and index builds, in the workers ----
    let data_started = Instant::now();
    let note = run_workers(idx, job_id, req.workers, &src, &p.encoding)?;
    phases.insert("data_s".into(), round(data_started.elapsed().as_secs_f64()));
    let (rows, bytes, copy_ms, index_ms) = txn(|| {
        spi({
            Spi::connect(|c| {
                let t = c.select(
                    "SELECT coalesce(sum(rows), 0)::bigint, coalesce(sum(bytes), 0)::bigint, \
                            coalesce(sum(ms) FILTER (WHERE kind = 'copy'), 0)::bigint, \
                            coalesce(sum(ms) FILTER (WHERE kind <> 'copy'), 0)::bigint \
                     FROM pgclone.job_units WHERE job_id = $1",
                    None,
                    &[job_id.into()],
                )?;
                let r = t.first();
                Ok::<_, pgrx::spi::SpiError>((
                    r.get::<i64>(1)?.unwrap_or(0),
                    r.get::<i64>(2)?.unwrap_or(0),
                    r.get::<i64>(3)?.unwrap_or(0),
                    r.get::<i64>(4)?.unwrap_or(0),
                ))
            })
        })
    })?;
    phases.insert("copy_cumulative_s".into(), round(copy_ms as f64 / 1000.0));
    phases.insert(
        "indexes_cumulative_s".into(),
        round(index_ms as f64 / 1000.0),
    );

    // ---- post-data, in one transaction ----
    set_phase(job_id, "post-data")?;
    let post_started = Instant::now();
    // In a job the data stage overlaps copies, index builds and refreshes.
    p.phases.mark("data");
    let (xr, xb) = txn(|| {
        let extra = p.copy_extras(&src, sreq.include_data)?;
        p.finish(&src, &sreq)?;
        for sql in on_success(job_id)? {
            target::run(&sql);
        }
        Ok(extra)
    })?;
    src.batch("COMMIT")?;
    p.phases.mark("post-data");
    phases.insert(
        "post_data_s".into(),
        round(post_started.elapsed().as_secs_f64()),
    );
    phases.insert("total_s".into(), round(wall.elapsed().as_secs_f64()));
    let mut summary = p.summary(&sreq, rows as u64 + xr, bytes as u64 + xb);
    summary.push_str(&format!(
        "; job {job_id}: {note}, copy {:.1} s and indexes and refreshes {:.1} s summed over workers",
        copy_ms as f64 / 1000.0,
        index_ms as f64 / 1000.0
    ));
    Ok(summary)
}

/// The statements a job runs when it completes (recorded with its pre-data).
fn on_success(job_id: i32) -> Result<Vec<String>> {
    spi(Spi::connect(|c| {
        let rows = c.select(
            "SELECT sql FROM pgclone.job_undo WHERE job_id = $1 AND on_success ORDER BY seq",
            None,
            &[job_id.into()],
        )?;
        let mut out = Vec::new();
        for r in rows {
            out.extend(r.get::<String>(1)?);
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    }))
}

fn round(s: f64) -> serde_json::Value {
    serde_json::json!((s * 100.0).round() / 100.0)
}

fn insert_units(job_id: i32, list: &[Unit]) -> Result<()> {
    let rows: Vec<serde_json::Value> = list
        .iter()
        .map(|u| {
            serde_json::json!({
                "job_id": job_id,
                "unit_id": u.id,
                "kind": u.kind.as_str(),
                "schema_name": u.schema,
                "table_name": u.table,
                "chunk": u.chunk,
                "chunks": u.chunks,
                "copy_sql": u.copy_sql,
                "columns": u.columns,
                "binary": u.binary,
                "freeze": u.freeze,
                "sqls": u.sqls,
                "est_bytes": u.est_bytes,
                "run_as": u.run_as,
                "status": "pending",
            })
        })
        .collect();
    let json = serde_json::Value::Array(rows).to_string();
    spi({
        Spi::run_with_args(
            "INSERT INTO pgclone.job_units (job_id, unit_id, kind, schema_name, table_name, chunk, chunks, copy_sql, \
                                            columns, \"binary\", \"freeze\", sqls, est_bytes, run_as, status) \
             SELECT job_id, unit_id, kind, schema_name, table_name, chunk, chunks, copy_sql, \
                    columns, \"binary\", \"freeze\", sqls, est_bytes, run_as, status \
             FROM pg_catalog.json_populate_recordset(NULL::pgclone.job_units, $1::pg_catalog.json)",
            &[json.into()],
        )
    })
}

/// What discard() needs to take the pre-data back, and what completion runs,
/// in the transaction that makes the pre-data.
fn record_undo(job_id: i32, undo: &[String], on_success: &[String]) -> Result<()> {
    let rows: Vec<serde_json::Value> = undo
        .iter()
        .map(|q| (q, false))
        .chain(on_success.iter().map(|q| (q, true)))
        .enumerate()
        .map(|(i, (q, ok))| serde_json::json!({"job_id": job_id, "seq": i + 1, "sql": q, "on_success": ok}))
        .collect();
    spi(Spi::run_with_args(
        "INSERT INTO pgclone.job_undo (job_id, seq, sql, on_success) \
         SELECT job_id, seq, sql, on_success \
         FROM pg_catalog.json_populate_recordset(NULL::pgclone.job_undo, $1::pg_catalog.json)",
        &[serde_json::Value::Array(rows).to_string().into()],
    ))
}

/// A resumed job takes over the units of the job it continues: done ones
/// stay done (their rows are in), the rest run again; and its undo record.
fn copy_units(job_id: i32, old: i32) -> Result<()> {
    spi(Spi::run_with_args(
        "INSERT INTO pgclone.job_undo (job_id, seq, sql, on_success) \
         SELECT $1, seq, sql, on_success FROM pgclone.job_undo WHERE job_id = $2",
        &[job_id.into(), old.into()],
    ))?;
    spi({
        Spi::run_with_args(
            "INSERT INTO pgclone.job_units (job_id, unit_id, kind, schema_name, table_name, chunk, chunks, copy_sql, \
                                            columns, \"binary\", \"freeze\", sqls, est_bytes, run_as, status, rows, bytes, ms) \
             SELECT $1, unit_id, kind, schema_name, table_name, chunk, chunks, copy_sql, columns, \"binary\", \"freeze\", \
                    sqls, est_bytes, run_as, CASE WHEN status = 'done' THEN 'done' ELSE 'pending' END, \
                    CASE WHEN status = 'done' THEN rows END, CASE WHEN status = 'done' THEN bytes END, \
                    CASE WHEN status = 'done' THEN ms END \
             FROM pgclone.job_units WHERE job_id = $2",
            &[job_id.into(), old.into()],
        )
    })
}

/// Start the copy workers and wait for them. Returns a note on how many ran.
fn run_workers(
    idx: usize,
    job_id: i32,
    asked: i32,
    src: &crate::conn::SourceConn,
    encoding: &str,
) -> Result<String> {
    let mut handles: Vec<(DynamicBackgroundWorker, i32, bool)> = Vec::new();
    for w in 0..asked.max(1) as usize {
        let h = BackgroundWorkerBuilder::new(&format!("pgclone job {job_id} worker {}", w + 1))
            .set_type("pgclone worker")
            .set_library("pgclone")
            .set_function("pgclone_worker_main")
            .set_argument(Some(pg_sys::Datum::from(idx * 256 + w)))
            .enable_spi_access()
            .set_notify_pid(my_pid())
            .load_dynamic();
        let Ok(h) = h else { break };
        match h.wait_for_startup() {
            Ok(pid) => handles.push((h, pid, false)),
            Err(_) => break,
        }
    }
    let started = handles.len();
    if started == 0 {
        // No worker slot free: this process does the units itself.
        work_loop(idx, 0, job_id, src, encoding)?;
        return Ok(format!(
            "no copy worker could start (max_worker_processes), ran serially; asked for {asked}"
        ));
    }
    loop {
        nap(100);
        let mut running = 0;
        for (h, pid, gone) in handles.iter_mut() {
            if *gone {
                continue;
            }
            if h.pid().is_ok() {
                running += 1;
                continue;
            }
            *gone = true;
            // A worker that ended while holding a unit did not finish it: the
            // job cannot complete, so stop the others now.
            let held = txn(|| {
                spi({
                    Spi::get_one_with_args::<String>(
                        "SELECT string_agg(kind || ' ' || format('%I.%I', schema_name, table_name), ', ') \
                         FROM pgclone.job_units WHERE job_id = $1 AND status = 'running' AND worker_pid = $2",
                        &[job_id.into(), (*pid).into()],
                    )
                })
            })?;
            if let Some(held) = held {
                let mut g = SLOTS.exclusive();
                let s = &mut g.s[idx];
                if slots::get(&s.message).is_empty() {
                    slots::put(&mut s.sqlstate, "57P01");
                    slots::put(
                        &mut s.message,
                        &truncate(
                            &format!("worker (pid {pid}) ended while running: {held}"),
                            1900,
                        ),
                    );
                }
                stop_slot(s, false);
            }
        }
        if running == 0 {
            break;
        }
    }
    let (stop, cancel) = {
        let g = SLOTS.share();
        (g.s[idx].stop, g.s[idx].cancel)
    };
    if stop {
        return Err(stopped(cancel));
    }
    let left = txn(|| {
        spi({
            Spi::get_one_with_args::<i64>(
                "SELECT count(*) FROM pgclone.job_units WHERE job_id = $1 AND status <> 'done'",
                &[job_id.into()],
            )
        })
    })?
    .unwrap_or(0);
    if left > 0 {
        return Err(CloneError::Internal(format!(
            "the workers stopped with {left} units not done"
        )));
    }
    Ok(if started < asked as usize {
        format!("{started} of {asked} workers (no more background worker slots)")
    } else {
        format!("{started} workers")
    })
}

// ---------------------------------------------------------------- workers

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pgclone_worker_main(arg: pg_sys::Datum) {
    let v = arg.value();
    let (idx, w) = (v / 256, v % 256);
    // SAFETY: first thing in the process.
    unsafe { setup_signals() };
    let (db, role, job_id, conninfo, _, snapshot) = slot_args(idx);
    connect(db, role);
    SLOTS.exclusive().s[idx].workers[w].pid = my_pid();
    let secret = password_of(&conninfo);
    let r = (|| -> Result<()> {
        txn(session_settings)?;
        let src = txn(|| open_source(&conninfo))?;
        if !snapshot.is_empty() {
            src.batch(&format!(
                "SET TRANSACTION SNAPSHOT {}",
                quote_literal(&snapshot)
            ))?;
        }
        let encoding = txn(|| Ok(target::database_encoding()))?;
        work_loop(idx, w, job_id, &src, &encoding)
    })();
    let mut g = SLOTS.exclusive();
    let s = &mut g.s[idx];
    if let Err(e) = r {
        // The first failure explains the job; the others just stop.
        let e = e.scrub(secret.as_deref());
        pgrx::log!("pgclone job {job_id} worker {}: {e}", w + 1);
        if !s.stop {
            slots::put(&mut s.sqlstate, e.sqlstate());
            slots::put(&mut s.message, &truncate(&e.to_string(), 1900));
            s.workers[w].pid = 0;
            stop_slot(s, false);
        }
    }
    s.workers[w] = slots::WorkerState::default();
}

enum Claim {
    Unit(Box<Unit>),
    Wait,
    Done,
}

#[derive(Deserialize)]
struct UnitRow {
    unit_id: i32,
    kind: String,
    schema_name: String,
    table_name: String,
    chunk: i32,
    chunks: i32,
    copy_sql: String,
    columns: Vec<String>,
    binary: bool,
    freeze: bool,
    sqls: Vec<String>,
    est_bytes: i64,
    run_as: Option<String>,
}

/// Take the first ready unit: one whose table has no unfinished unit of an
/// earlier stage (copies, then index builds, then keys). Materialized views
/// are refreshed once every copy is done (they may read any table), one
/// after the other in dependency order, before other ready work: a refresh
/// is usually long.
fn claim(job_id: i32) -> Result<Claim> {
    let row = spi({
        Spi::get_one_with_args::<String>(
            "WITH claimed AS (UPDATE pgclone.job_units u SET status = 'running', worker_pid = $2, started = clock_timestamp() \
             WHERE (u.job_id, u.unit_id) = ( \
               SELECT c.job_id, c.unit_id FROM pgclone.job_units c \
               WHERE c.job_id = $1 AND c.status = 'pending' \
                 AND NOT EXISTS ( \
                   SELECT 1 FROM pgclone.job_units d WHERE d.job_id = c.job_id AND d.status <> 'done' \
                     AND d.schema_name = c.schema_name AND d.table_name = c.table_name \
                     AND array_position(ARRAY['copy', 'index', 'keys'], d.kind) \
                       < array_position(ARRAY['copy', 'index', 'keys'], c.kind)) \
                 AND (c.kind <> 'refresh' OR NOT EXISTS ( \
                   SELECT 1 FROM pgclone.job_units d WHERE d.job_id = c.job_id AND d.status <> 'done' \
                     AND (d.kind = 'copy' OR (d.kind = 'refresh' AND d.unit_id < c.unit_id)))) \
               ORDER BY c.kind = 'refresh' DESC, c.unit_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING row_to_json(u)::text AS j) \
             SELECT (SELECT j FROM claimed)",
            &[job_id.into(), my_pid().into()],
        )
    })?;
    if let Some(text) = row {
        let r: UnitRow =
            serde_json::from_str(&text).map_err(|e| CloneError::Internal(e.to_string()))?;
        return Ok(Claim::Unit(Box::new(Unit {
            id: r.unit_id,
            kind: UnitKind::parse(&r.kind).unwrap_or(UnitKind::Index),
            schema: r.schema_name,
            table: r.table_name,
            chunk: r.chunk,
            chunks: r.chunks,
            copy_sql: r.copy_sql,
            columns: r.columns,
            binary: r.binary,
            freeze: r.freeze,
            sqls: r.sqls,
            est_bytes: r.est_bytes,
            run_as: r.run_as,
        })));
    }
    let pending = spi({
        Spi::get_one_with_args::<i64>(
            "SELECT count(*) FROM pgclone.job_units WHERE job_id = $1 AND status = 'pending'",
            &[job_id.into()],
        )
    })?
    .unwrap_or(0);
    Ok(if pending > 0 {
        Claim::Wait
    } else {
        Claim::Done
    })
}

fn mark_done(job_id: i32, unit: i32, rows: u64, bytes: u64, took: Duration) -> Result<()> {
    spi({
        Spi::run_with_args(
            "UPDATE pgclone.job_units SET status = 'done', rows = $3, bytes = $4, ms = $5 \
             WHERE job_id = $1 AND unit_id = $2",
            &[
                job_id.into(),
                unit.into(),
                (rows as i64).into(),
                (bytes as i64).into(),
                (took.as_millis() as i64).into(),
            ],
        )
    })
}

/// Claim and run units until none is left. Each unit's work and its "done"
/// mark commit together, so a unit is either wholly in or to be run again.
fn work_loop(
    idx: usize,
    w: usize,
    job_id: i32,
    src: &crate::conn::SourceConn,
    encoding: &str,
) -> Result<()> {
    ME.with(|m| m.set(Some((idx, w))));
    crate::copy::set_progress_hook(Some(on_read));
    loop {
        let (stop, cancel) = {
            let g = SLOTS.share();
            (g.s[idx].stop, g.s[idx].cancel)
        };
        if stop {
            return Err(stopped(cancel));
        }
        match txn(|| claim(job_id))? {
            Claim::Done => return Ok(()),
            Claim::Wait => nap(100),
            Claim::Unit(u) => {
                let started = Instant::now();
                let r = txn(|| {
                    let (rows, bytes) = run_unit(src, &u, encoding, true)?;
                    mark_done(job_id, u.id, rows, bytes, started.elapsed())
                });
                SLOTS.exclusive().s[idx].workers[w].bytes = 0;
                r?;
            }
        }
    }
}
