//! Jobs: a clone run by background workers. The calling backend validates the
//! request, reserves a slot in shared memory and starts a coordinator; the
//! coordinator reads the catalog, creates the pre-data, writes the data stage
//! as units into `pgclone.job_units`, starts the copy workers and, when they
//! are done, runs the post-data. An asynchronous call returns the job id at
//! once; a synchronous call with `"parallel"` above 1 waits for the outcome.
//!
//! The queue of units is a table rather than shared memory: a worker claims a
//! unit with `FOR UPDATE SKIP LOCKED` and marks it done in the same
//! transaction that loaded its rows, so a resumed job knows exactly which
//! units are in, with no copy of the queue to keep in step. A claim costs a
//! few milliseconds against units that take seconds.

pub mod slots;
pub mod worker;

use crate::error::{CloneError, Result};
use crate::error_report::notice;
use crate::exec::schema::{SchemaRequest, What};
use crate::options::Options;
use crate::progress;
use pgrx::bgworkers::{BackgroundWorkerBuilder, BackgroundWorkerStatus};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;
use serde::{Deserialize, Serialize};
use slots::{ACTIVE, DONE, FREE, MAX_SLOTS, MAX_WORKERS, SLOTS, STARTING};
use std::time::{Duration, Instant};

pub static MAX_WORKERS_PER_JOB: GucSetting<i32> = GucSetting::<i32>::new(4);
pub static DEFAULT_PARALLEL: GucSetting<i32> = GucSetting::<i32>::new(1);
pub static MAX_JOBS: GucSetting<i32> = GucSetting::<i32>::new(8);
pub static SSL_DIR: GucSetting<Option<std::ffi::CString>> =
    GucSetting::<Option<std::ffi::CString>>::new(None);

/// The directory under which non-superusers may name certificate and key
/// files (`pgclone.ssl_dir`); None: nowhere.
pub fn ssl_dir() -> Option<String> {
    SSL_DIR
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .filter(|d| !d.is_empty())
}

pub fn init() {
    GucRegistry::define_int_guc(
        c"pgclone.max_workers",
        c"Most copy workers one job starts.",
        c"A job asking for more runs with this many; each also needs a free max_worker_processes slot.",
        &MAX_WORKERS_PER_JOB,
        1,
        MAX_WORKERS as i32,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pgclone.default_parallel",
        c"Workers for calls that do not set \"parallel\".",
        c"1 keeps synchronous calls serial and transactional in the calling backend.",
        &DEFAULT_PARALLEL,
        1,
        MAX_WORKERS as i32,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pgclone.max_jobs",
        c"Most jobs running at once on this server.",
        c"Each running job holds one slot of shared memory and one coordinator process.",
        &MAX_JOBS,
        1,
        MAX_SLOTS as i32,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"pgclone.ssl_dir",
        c"Directory whose files non-superusers may name in sslrootcert, sslcert and sslkey.",
        c"Empty (the default): only superusers may name files on this server.",
        &SSL_DIR,
        GucContext::Suset,
        GucFlags::default(),
    );
    // SAFETY: reads a flag the postmaster sets while loading preload libraries.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        slots::init();
    }
}

/// What a job was asked to do. Kept in the job row (as JSON) so `resume`
/// can ask again; the conninfo is never part of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRequest {
    pub op: String,
    pub schema: Option<String>,
    pub table: Option<String>,
    pub target_table: Option<String>,
    pub include_data: bool,
    pub options: String,
    pub workers: i32,
    pub resumed_from: Option<i32>,
}

impl JobRequest {
    pub fn schemas(req: &SchemaRequest, workers: i32) -> JobRequest {
        JobRequest {
            op: match req.what {
                What::Database => "database",
                What::Schema => "schema",
                What::Functions => "functions",
            }
            .into(),
            schema: req.schema.map(str::to_string),
            table: None,
            target_table: None,
            include_data: req.include_data,
            options: req.options.to_json(),
            workers,
            resumed_from: None,
        }
    }

    pub fn table(
        schema: &str,
        table: &str,
        target_table: Option<&str>,
        include_data: bool,
        options: &Options,
    ) -> JobRequest {
        JobRequest {
            op: "table".into(),
            schema: Some(schema.into()),
            table: Some(table.into()),
            target_table: target_table.map(str::to_string),
            include_data,
            options: options.to_json(),
            workers: 1,
            resumed_from: None,
        }
    }
}

/// Workers for a synchronous schema or database call: None = serial in the
/// calling backend (parallel 1, or no preloaded library to run workers).
pub fn pool_size(opts: &Options) -> Result<Option<i32>> {
    let n = asked(opts);
    if n <= 1 {
        return Ok(None);
    }
    if !slots::available() {
        notice(&format!(
            "parallel {n} needs shared_preload_libraries = 'pgclone'; cloning serially in this session"
        ));
        return Ok(None);
    }
    Ok(Some(workers_for(opts)))
}

/// Workers the options ask for: `"parallel"`, else pgclone.default_parallel.
fn asked(opts: &Options) -> i32 {
    opts.parallel
        .map(|p| p.min(MAX_WORKERS as u32) as i32)
        .unwrap_or_else(|| DEFAULT_PARALLEL.get())
}

/// The worker count a job gets: what it asks, within pgclone.max_workers.
pub fn workers_for(opts: &Options) -> i32 {
    asked(opts).clamp(1, MAX_WORKERS_PER_JOB.get())
}

fn spi_err(e: pgrx::spi::SpiError) -> CloneError {
    CloneError::Internal(format!("job state: {e}"))
}

fn my_database() -> u32 {
    // SAFETY: set once at backend start.
    unsafe { pg_sys::MyDatabaseId.to_u32() }
}

/// The role acting now (current_user).
fn me() -> u32 {
    // SAFETY: reads the current user id.
    unsafe { pg_sys::GetUserId().to_u32() }
}

/// A job belongs to the role that started it: that role and superusers may
/// see and act on it, nobody else.
fn mine(role: u32) -> bool {
    // SAFETY: reads the current user's superuser flag.
    role == me() || unsafe { pg_sys::superuser() }
}

/// Jobs the table says are running but that no process runs any more (the
/// server restarted, or the coordinator was killed) are failed.
fn reap() -> Result<()> {
    // Every live job, whoever runs it; the update touches the caller's own
    // rows only (row-level security).
    let live = live_ids();
    {
        Spi::run_with_args(
            "UPDATE pgclone.jobs SET status = 'failed', end_time = coalesce(end_time, clock_timestamp()), \
               error_message = coalesce(error_message, 'interrupted: the job''s processes ended (server restart or terminated); pgclone.resume(' || job_id || ') continues it') \
             WHERE status IN ('pending', 'running') AND job_id <> ALL($1)",
            &[live.into()],
        )
    }
    .map_err(spi_err)
}

fn signal(pid: i32, sig: i32) {
    if pid > 0 {
        // SAFETY: kill(2) on a server process of ours; errors (gone) are fine.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Stop every process of the slot: set the flag they poll and interrupt
/// whatever statement they are in.
pub fn stop_slot(slot: &mut slots::Slot, user_cancel: bool) {
    if user_cancel {
        slot.cancel = true;
    }
    slot.stop = true;
    signal(slot.coordinator_pid, libc::SIGINT);
    for w in &slot.workers {
        signal(w.pid, libc::SIGINT);
    }
}

/// Reserve a slot and start the coordinator of a new job; returns (job id,
/// slot) once the coordinator has recorded the job.
/// `run_as` is the role the job runs as (resume keeps the original job's
/// role); None: the caller.
pub fn start(
    req: &JobRequest,
    conninfo: &str,
    waiter: bool,
    run_as: Option<u32>,
) -> Result<(i32, usize)> {
    if !slots::available() {
        return Err(CloneError::NotSupported(
            "pgclone jobs need shared_preload_libraries = 'pgclone' (then restart the server)"
                .into(),
        ));
    }
    // Refuse a bad conninfo (and a non-superuser without password) here, in
    // the caller's session, rather than in a job that fails later.
    crate::target::resolve_conninfo(conninfo)?;
    reap()?;
    let job_id = Spi::get_one::<i64>("SELECT nextval('pgclone.jobs_job_id_seq')")
        .map_err(spi_err)?
        .unwrap_or(0) as i32;
    let request = serde_json::to_string(req).map_err(|e| CloneError::Internal(e.to_string()))?;
    let idx = {
        let mut g = SLOTS.exclusive();
        let busy = g.s.iter().filter(|s| s.state != FREE).count();
        if busy >= MAX_JOBS.get() as usize {
            return Err(CloneError::NotSupported(format!(
                "{busy} pgclone jobs are running, the most pgclone.max_jobs allows"
            )));
        }
        let Some(idx) = g.s.iter().position(|s| s.state == FREE) else {
            return Err(CloneError::NotSupported(
                "every pgclone job slot is in use".into(),
            ));
        };
        let s = &mut g.s[idx];
        slots::clear(s);
        if !slots::put(&mut s.conninfo, conninfo) {
            return Err(CloneError::InvalidConninfo(
                "longer than the 2047 bytes a job can carry".into(),
            ));
        }
        if !slots::put(&mut s.request, &request) {
            slots::clear(s);
            return Err(CloneError::InvalidOptions(
                "too long for a job (8 kB in all)".into(),
            ));
        }
        s.state = STARTING;
        s.job_id = job_id;
        s.database = my_database();
        s.role = run_as.unwrap_or_else(me);
        // SAFETY: our pid.
        s.waiter_pid = if waiter {
            unsafe { pg_sys::MyProcPid }
        } else {
            0
        };
        idx
    };
    let free_slot = || slots::clear(&mut SLOTS.exclusive().s[idx]);
    let handle = BackgroundWorkerBuilder::new(&format!("pgclone job {job_id} coordinator"))
        .set_type("pgclone coordinator")
        .set_library("pgclone")
        .set_function("pgclone_coordinator_main")
        .set_argument(Some(pg_sys::Datum::from(idx)))
        .enable_spi_access()
        // SAFETY: our own pid, for startup notification.
        .set_notify_pid(unsafe { pg_sys::MyProcPid })
        .load_dynamic();
    let handle = match handle {
        Ok(h) => h,
        Err(_) => {
            free_slot();
            return Err(CloneError::NotSupported(
                "no background worker could be started for the job: raise max_worker_processes"
                    .into(),
            ));
        }
    };
    // The job is real once its coordinator has committed the job row.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = SLOTS.share().s[idx].state;
        if state != STARTING {
            break;
        }
        if matches!(
            handle.pid(),
            Err(BackgroundWorkerStatus::Stopped | BackgroundWorkerStatus::PostmasterDied)
        ) || Instant::now() > deadline
        {
            free_slot();
            return Err(CloneError::Internal(format!(
                "the coordinator of job {job_id} did not start"
            )));
        }
        sleep_interruptibly(Duration::from_millis(5));
    }
    Ok((job_id, idx))
}

/// Sleep on the latch, waking for interrupts (which are then handled).
pub fn sleep_interruptibly(d: Duration) {
    wait_latch(d);
    crate::interrupts::check();
}

/// Wait on this process's latch for at most `d` (a signal sets it).
pub fn wait_latch(d: Duration) {
    // SAFETY: WaitLatch on our own latch, as any backend waits.
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            d.as_millis() as std::ffi::c_long,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
    }
}

/// Start a job and return its id (the `*_async` functions).
pub fn start_async(req: &JobRequest, conninfo: &str) -> Result<i32> {
    start(req, conninfo, false, None).map(|(id, _)| id)
}

/// Hand a clone to the pool and wait for it, with progress as NOTICE lines;
/// if this session is cancelled or times out, the job is cancelled too.
pub fn run_sync(req: &JobRequest, conninfo: &str) -> Result<String> {
    let (job_id, idx) = start(req, conninfo, true, None)?;
    struct Abandon(usize, i32, bool);
    impl Drop for Abandon {
        fn drop(&mut self) {
            if self.2 {
                return;
            }
            // Cancelled while waiting: stop the job, and let its coordinator
            // free the slot since nobody will collect the outcome.
            let mut g = SLOTS.exclusive();
            let s = &mut g.s[self.0];
            if s.job_id == self.1 {
                s.waiter_pid = 0;
                if s.state == DONE {
                    slots::clear(s);
                } else {
                    stop_slot(s, true);
                }
            }
        }
    }
    let mut guard = Abandon(idx, job_id, false);
    notice(&format!(
        "pgclone job {job_id}: {} workers; SELECT * FROM pgclone.jobs_view shows its progress",
        req.workers
    ));
    let mut last_note = Instant::now();
    let mut last_phase = String::new();
    loop {
        sleep_interruptibly(Duration::from_millis(100));
        let done = {
            let mut g = SLOTS.exclusive();
            let s = &mut g.s[idx];
            if s.state == DONE {
                let out = (s.ok, slots::get(&s.sqlstate), slots::get(&s.message));
                slots::clear(s);
                Some(out)
            } else {
                None
            }
        };
        if let Some((ok, sqlstate, message)) = done {
            guard.2 = true;
            return if ok {
                Ok(message)
            } else {
                Err(CloneError::Job {
                    sqlstate: if sqlstate.len() == 5 {
                        sqlstate
                    } else {
                        "XX000".into()
                    },
                    message,
                })
            };
        }
        if let Some(row) = job_rows(Some(job_id))?.into_iter().next() {
            let phase = row.current_phase.clone().unwrap_or_default();
            if phase != last_phase || last_note.elapsed() > Duration::from_secs(10) {
                notice(&format!(
                    "pgclone job {job_id}: {phase}, {} of {} tables, {}",
                    row.tables_completed, row.tables_total, row.progress_bar
                ));
                last_phase = phase;
                last_note = Instant::now();
            }
        }
    }
}

/// `cancel(job_id)`: true when the job was running and has been told to stop.
/// Another role's job is not there for the caller: false, and it runs on.
pub fn cancel(job_id: i32) -> Result<bool> {
    if !slots::available() {
        return Ok(false);
    }
    let db = my_database();
    let mut g = SLOTS.exclusive();
    for s in g.s.iter_mut() {
        if s.job_id == job_id
            && s.database == db
            && (s.state == STARTING || s.state == ACTIVE)
            && mine(s.role)
        {
            stop_slot(s, true);
            return Ok(true);
        }
    }
    Ok(false)
}

/// `resume(job_id)`: a new job that continues a failed or cancelled one from
/// its last completed unit. It runs as the role that started the first one:
/// a superuser resuming an operator's job does not lend it superuser rights,
/// and no role ever runs with another's stored credentials.
pub fn resume(job_id: i32) -> Result<i32> {
    reap()?;
    let row = Spi::connect(|c| {
        // Row-level security shows an operator its own jobs only.
        let t = c.select(
            "SELECT j.status, j.request::text, s.conninfo, \
                    (SELECT min(n.job_id) FROM pgclone.jobs n WHERE n.resumed_from = j.job_id), \
                    (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = j.owner_name) \
             FROM pgclone.jobs j LEFT JOIN pgclone.job_secrets s USING (job_id) WHERE j.job_id = $1",
            None,
            &[job_id.into()],
        )?;
        let mut out = None;
        for r in t {
            out = Some((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
                r.get::<String>(3)?,
                r.get::<i32>(4)?,
                r.get::<pg_sys::Oid>(5)?,
            ));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .map_err(spi_err)?;
    let Some((status, request, conninfo, resumed_by, owner)) = row else {
        return Err(CloneError::NoJob(job_id));
    };
    if let Some(next) = resumed_by {
        return Err(CloneError::JobState(format!(
            "job {job_id} was resumed already, as job {next}"
        )));
    }
    if status != "failed" && status != "cancelled" {
        return Err(CloneError::JobState(format!(
            "job {job_id} is {status}; only failed or cancelled jobs can be resumed"
        )));
    }
    let Some(conninfo) = conninfo else {
        return Err(CloneError::JobState(format!(
            "job {job_id} no longer has its connection string; start a new clone"
        )));
    };
    let Some(owner) = owner.filter(|o| *o != pg_sys::InvalidOid) else {
        return Err(CloneError::JobState(format!(
            "the role that started job {job_id} no longer exists; start a new clone"
        )));
    };
    let mut req: JobRequest =
        serde_json::from_str(&request).map_err(|e| CloneError::Internal(e.to_string()))?;
    req.resumed_from = Some(job_id);
    start(&req, &conninfo, false, Some(owner.to_u32())).map(|(id, _)| id)
}

/// `discard(job_id)`: take back what a failed or cancelled job made on this
/// server and forget the job (with the jobs it resumed). The undo statements
/// run newest first, as the job's own role (a superuser discarding an
/// operator's job does not run the operator's records with superuser
/// rights), in the caller's transaction: all of it, or nothing.
pub fn discard(job_id: i32) -> Result<String> {
    reap()?;
    let row = Spi::connect(|c| {
        let t = c.select(
            "SELECT j.status, \
                    (SELECT min(n.job_id) FROM pgclone.jobs n WHERE n.resumed_from = j.job_id), \
                    j.owner_name::text \
             FROM pgclone.jobs j WHERE j.job_id = $1",
            None,
            &[job_id.into()],
        )?;
        let mut out = None;
        for r in t {
            out = Some((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<i32>(2)?,
                r.get::<String>(3)?.unwrap_or_default(),
            ));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .map_err(spi_err)?;
    let Some((status, resumed_by, owner)) = row else {
        return Err(CloneError::NoJob(job_id));
    };
    if live_ids().contains(&job_id) || status == "running" || status == "pending" {
        return Err(CloneError::JobState(format!(
            "job {job_id} is running; pgclone.cancel({job_id}) first"
        )));
    }
    if let Some(next) = resumed_by {
        return Err(CloneError::JobState(format!(
            "job {job_id} was resumed as job {next}; discard job {next}"
        )));
    }
    if status == "completed" {
        return Err(CloneError::JobState(format!(
            "job {job_id} completed; discard() takes back failed or cancelled jobs only"
        )));
    }
    let undo: Vec<String> = Spi::connect(|c| {
        let rows = c.select(
            "SELECT sql FROM pgclone.job_undo WHERE job_id = $1 AND NOT on_success ORDER BY seq DESC",
            None,
            &[job_id.into()],
        )?;
        let mut out = Vec::new();
        for r in rows {
            out.extend(r.get::<String>(1)?);
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .map_err(spi_err)?;
    crate::target::as_role(Some(&owner), || {
        let _guc = crate::target::GucScope::enter(&[("search_path", "")]);
        for sql in &undo {
            crate::target::run(sql);
        }
    })?;
    // Forget the job and the chain of jobs it resumed.
    let forgotten = Spi::get_one_with_args::<i64>(
        "WITH RECURSIVE chain AS (SELECT job_id, resumed_from FROM pgclone.jobs WHERE job_id = $1 \
           UNION ALL SELECT j.job_id, j.resumed_from FROM pgclone.jobs j JOIN chain c ON j.job_id = c.resumed_from), \
         gone AS (DELETE FROM pgclone.jobs WHERE job_id IN (SELECT job_id FROM chain) RETURNING 1) \
         SELECT count(*) FROM gone",
        &[job_id.into()],
    )
    .map_err(spi_err)?
    .unwrap_or(0);
    Ok(format!(
        "job {job_id} discarded: {} statement(s) took back what it made; {forgotten} job record(s) forgotten",
        undo.len()
    ))
}

/// The ids of this database's jobs that have live processes, whoever runs them.
fn live_ids() -> Vec<i32> {
    if !slots::available() {
        return Vec::new();
    }
    let db = my_database();
    let g = SLOTS.share();
    g.s.iter()
        .filter(|s| (s.state == STARTING || s.state == ACTIVE) && s.database == db)
        .map(|s| s.job_id)
        .collect()
}

/// `clear_jobs()`: forget finished jobs (completed, failed, cancelled).
pub fn clear_jobs() -> Result<i64> {
    reap()?;
    {
        Spi::get_one::<i64>(
            "WITH gone AS (DELETE FROM pgclone.jobs WHERE status IN ('completed', 'failed', 'cancelled') RETURNING 1) \
             SELECT count(*) FROM gone",
        )
    }
    .map(|n| n.unwrap_or(0))
    .map_err(spi_err)
}

/// One row of `jobs_view`, plus what `progress()` adds.
#[derive(Debug, Clone, Serialize)]
pub struct JobRow {
    pub job_id: i32,
    pub status: String,
    pub op_type: String,
    pub schema_name: Option<String>,
    pub table_name: Option<String>,
    pub current_phase: Option<String>,
    pub current_table: Option<String>,
    pub tables_total: i64,
    pub tables_completed: i64,
    pub rows_copied: i64,
    pub bytes_copied: i64,
    pub elapsed_ms: i64,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub error_message: Option<String>,
    pub pct_complete: f64,
    pub progress_bar: String,
    pub elapsed_time: String,
    pub source: String,
    pub workers: i32,
    pub resumed_from: Option<i32>,
    pub summary: Option<String>,
    pub phases: Option<serde_json::Value>,
    pub tables: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawRow {
    job_id: i32,
    status: String,
    op_type: String,
    schema_name: Option<String>,
    table_name: Option<String>,
    current_phase: Option<String>,
    current_table: Option<String>,
    tables_total: i64,
    tables_completed: i64,
    rows_copied: i64,
    bytes_copied: i64,
    bytes_total: Option<i64>,
    elapsed_ms: i64,
    start_time: Option<String>,
    end_time: Option<String>,
    error_message: Option<String>,
    source: String,
    workers: i32,
    resumed_from: Option<i32>,
    summary: Option<String>,
    phases: Option<serde_json::Value>,
    tables: Option<serde_json::Value>,
}

const JOBS_SQL: &str = "\
SELECT coalesce(json_agg(r ORDER BY r.job_id), '[]')::text FROM (\
  SELECT j.job_id, j.status, j.op_type, j.schema_name, j.table_name, j.current_phase, \
    (SELECT string_agg(DISTINCT format('%I.%I', u.schema_name, u.table_name), ', ') \
       FROM pgclone.job_units u WHERE u.job_id = j.job_id AND u.status = 'running') AS current_table, \
    j.tables_total, \
    greatest(j.tables_total - (SELECT count(DISTINCT (u.schema_name, u.table_name)) FROM pgclone.job_units u \
       WHERE u.job_id = j.job_id AND u.status <> 'done'), 0) AS tables_completed, \
    (SELECT coalesce(sum(u.rows), 0) FROM pgclone.job_units u WHERE u.job_id = j.job_id AND u.status = 'done')::bigint AS rows_copied, \
    (SELECT coalesce(sum(u.bytes), 0) FROM pgclone.job_units u WHERE u.job_id = j.job_id AND u.status = 'done')::bigint AS bytes_copied, \
    j.bytes_total, \
    (extract(epoch FROM coalesce(j.end_time, clock_timestamp()) - j.start_time) * 1000)::bigint AS elapsed_ms, \
    j.start_time::text, j.end_time::text, j.error_message, j.source, j.workers, j.resumed_from, j.summary, j.phases, \
    CASE WHEN $2 THEN (SELECT json_agg(t ORDER BY t.copy_ms DESC NULLS LAST) FROM ( \
       SELECT u.schema_name, u.table_name, sum(u.rows) FILTER (WHERE u.kind = 'copy') AS rows, \
              sum(u.bytes) FILTER (WHERE u.kind = 'copy') AS bytes, \
              sum(u.ms) FILTER (WHERE u.kind = 'copy') AS copy_ms, \
              sum(u.ms) FILTER (WHERE u.kind <> 'copy') AS index_ms, \
              max(u.chunks) AS chunks, bool_and(u.status = 'done') AS done \
       FROM pgclone.job_units u WHERE u.job_id = j.job_id GROUP BY 1, 2) t) END AS tables \
  FROM pgclone.jobs j WHERE $1 IS NULL OR j.job_id = $1) r";

fn fetch_rows(job_id: Option<i32>, with_tables: bool) -> Result<Vec<RawRow>> {
    let text = { Spi::get_one_with_args::<String>(JOBS_SQL, &[job_id.into(), with_tables.into()]) }
        .map_err(spi_err)?
        .unwrap_or_else(|| "[]".into());
    serde_json::from_str(&text).map_err(|e| CloneError::Internal(format!("job state: {e}")))
}

/// This database's jobs that have live processes (or are starting), with
/// the bytes their workers have read but not yet committed.
fn live_view() -> Vec<(i32, i64)> {
    if !slots::available() {
        return Vec::new();
    }
    let db = my_database();
    let g = SLOTS.share();
    g.s.iter()
        .filter(|s| (s.state == STARTING || s.state == ACTIVE) && s.database == db && mine(s.role))
        .map(|s| (s.job_id, s.workers.iter().map(|w| w.bytes).sum()))
        .collect()
}

fn finish_row(r: RawRow, live: &[(i32, i64)]) -> JobRow {
    let in_flight = live.iter().find(|(id, _)| *id == r.job_id).map(|(_, b)| *b);
    let mut status = r.status;
    let mut error_message = r.error_message;
    let running = status == "running" || status == "pending";
    if running && in_flight.is_none() {
        // The table was not told yet (reap runs on the next write).
        status = "failed".into();
        error_message.get_or_insert_with(|| {
            "interrupted: the job's processes ended (server restart or terminated)".into()
        });
    }
    let running = status == "running" || status == "pending";
    let bytes = r.bytes_copied + if running { in_flight.unwrap_or(0) } else { 0 };
    let pct = progress::pct_complete(
        bytes,
        r.bytes_total,
        r.tables_completed,
        r.tables_total,
        status == "completed",
    );
    JobRow {
        job_id: r.job_id,
        op_type: r.op_type,
        schema_name: r.schema_name,
        table_name: r.table_name,
        current_phase: r.current_phase,
        current_table: if running { r.current_table } else { None },
        tables_total: r.tables_total,
        tables_completed: r.tables_completed,
        rows_copied: r.rows_copied,
        bytes_copied: bytes,
        elapsed_ms: r.elapsed_ms,
        start_time: r.start_time,
        end_time: r.end_time,
        error_message,
        pct_complete: pct,
        progress_bar: progress::bar(pct, r.rows_copied, r.elapsed_ms, running),
        elapsed_time: progress::hms(r.elapsed_ms),
        source: r.source,
        workers: r.workers,
        resumed_from: r.resumed_from,
        summary: r.summary,
        phases: r.phases,
        tables: r.tables,
        status,
    }
}

/// Every job (or one), as `jobs_view` shows them.
pub fn job_rows(job_id: Option<i32>) -> Result<Vec<JobRow>> {
    let live = live_view();
    Ok(fetch_rows(job_id, false)?
        .into_iter()
        .map(|r| finish_row(r, &live))
        .collect())
}

/// `progress(job_id)`: one job as a JSON object, with its per-table figures.
pub fn progress_json(job_id: i32) -> Result<String> {
    let live = live_view();
    let row = fetch_rows(Some(job_id), true)?
        .into_iter()
        .next()
        .map(|r| finish_row(r, &live))
        .ok_or(CloneError::NoJob(job_id))?;
    serde_json::to_string(&row).map_err(|e| CloneError::Internal(e.to_string()))
}

/// `jobs()`: every job as a JSON array.
pub fn jobs_json() -> Result<String> {
    serde_json::to_string(&job_rows(None)?).map_err(|e| CloneError::Internal(e.to_string()))
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let r = JobRequest {
            op: "schema".into(),
            schema: Some("sales".into()),
            table: None,
            target_table: None,
            include_data: true,
            options: "{}".into(),
            workers: 2,
            resumed_from: Some(3),
        };
        let back: JobRequest = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
