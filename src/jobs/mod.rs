//! Jobs: a clone whose plan is run by background workers. The calling
//! backend validates the request and reserves a slot in shared memory; a
//! coordinator reads the catalog, settles conflicts and stores the plan
//! (units and their dependencies) in one transaction, then hands ready units
//! to its workers through a queue in shared memory and collects their
//! completions, so a claim costs the same whatever the size of the plan.
//! Each unit runs in a transaction of its own that also marks it done, so a
//! resumed job knows exactly which units are in.
//!
//! An asynchronous call returns the job id at once; a synchronous call with
//! `"parallel"` above 1 waits for the outcome. A serial clone takes a slot
//! too, so it shows in jobs_view while it runs.

pub mod coordinator;
pub mod slots;
pub mod state;
pub mod worker;

use crate::error::{CloneError, Result};
use crate::error_report::notice;
use crate::progress;
use pgclone_core::options::Options;
use pgclone_core::plan::units::{Plan, Stage};
use pgclone_core::request::Spec;
use pgrx::bgworkers::{BackgroundWorkerBuilder, BackgroundWorkerStatus};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;
use serde::{Deserialize, Serialize};
use slots::{ACTIVE, DONE, FREE, KIND_SERIAL, MAX_SLOTS, MAX_WORKERS, SLOTS, STARTING};
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

/// Jobs need the library preloaded (shared memory, background workers).
pub fn available() -> bool {
    slots::available()
}

/// Job slots free now (None: jobs are not available in this server).
pub fn free_job_slots() -> Option<usize> {
    if !available() {
        return None;
    }
    let g = SLOTS.share();
    let busy = g.s.iter().filter(|s| s.state != FREE).count();
    Some((MAX_JOBS.get() as usize).saturating_sub(busy))
}

/// Workers the options ask for: `"parallel"`, else pgclone.default_parallel.
pub fn asked(opts: &Options) -> i32 {
    opts.parallel
        .map(|p| p.min(MAX_WORKERS as u32) as i32)
        .unwrap_or_else(|| DEFAULT_PARALLEL.get())
}

/// The worker count a job gets: what it asks, within pgclone.max_workers.
pub fn workers_for(opts: &Options) -> i32 {
    asked(opts).clamp(1, MAX_WORKERS_PER_JOB.get())
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

fn is_superuser() -> bool {
    // SAFETY: reads the current user's superuser flag.
    unsafe { pg_sys::superuser() }
}

/// A job belongs to the role that started it: that role and superusers may
/// see and act on it, nobody else.
fn mine(role: u32) -> bool {
    role == me() || is_superuser()
}

/// The owner filter of the caller's job-state writes: None for a superuser.
fn scope() -> Option<u32> {
    (!is_superuser()).then(me)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn signal(pid: i32, sig: i32) {
    if pid > 0 {
        // SAFETY: kill(2) on a server process of ours; errors (gone) are fine.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Wake a process of ours waiting on its latch.
pub fn wake(pid: i32) {
    if pid <= 0 {
        return;
    }
    // SAFETY: looks up a live backend's PGPROC and sets its latch, as
    // SetLatch on another process is meant to be used.
    unsafe {
        let proc_ = pg_sys::BackendPidGetProc(pid);
        if !proc_.is_null() {
            pg_sys::SetLatch(&mut (*proc_).procLatch);
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

/// Every live job of this database, whoever runs it.
fn live_ids() -> Vec<i32> {
    if !available() {
        return Vec::new();
    }
    let db = my_database();
    let g = SLOTS.share();
    g.s.iter()
        .filter(|s| (s.state == STARTING || s.state == ACTIVE) && s.database == db)
        .map(|s| s.job_id)
        .collect()
}

fn reap() -> Result<()> {
    state::reap(&live_ids(), scope())
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

/// Reserve a slot and start the coordinator of a new job; returns (job id,
/// slot) once the coordinator has recorded the job. `run_as`: the role the
/// job runs as (a resumed job keeps its first role); None: the caller.
pub fn start(
    spec: &Spec,
    conninfo: &str,
    waiter: bool,
    run_as: Option<u32>,
) -> Result<(i32, usize)> {
    if !available() {
        return Err(CloneError::NotSupported(
            "pgclone jobs need shared_preload_libraries = 'pgclone' (then restart the server)"
                .into(),
        ));
    }
    // Refuse a bad conninfo (and a non-superuser without password) here, in
    // the caller's session, rather than in a job that fails later.
    crate::target::resolve_conninfo(conninfo)?;
    reap()?;
    let job_id = state::next_id()?;
    let request = serde_json::to_string(spec).map_err(|e| CloneError::Internal(e.to_string()))?;
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
                "too long for a job (4 kB in all)".into(),
            ));
        }
        s.state = STARTING;
        s.job_id = job_id;
        s.database = my_database();
        s.role = run_as.unwrap_or_else(me);
        s.started_ms = now_ms();
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

/// Start a job and return its id (the `*_async` functions).
pub fn start_async(spec: &Spec, conninfo: &str) -> Result<i32> {
    start(spec, conninfo, false, None).map(|(id, _)| id)
}

/// One progress line of a job, for the NOTICEs of a waiting caller.
fn progress_line(job_id: i32) -> Option<String> {
    let row = job_rows(Some(job_id)).ok()?.into_iter().next()?;
    Some(format!(
        "pgclone job {job_id}: {}, {} of {} tables, {}",
        row.current_phase.unwrap_or_default(),
        row.tables_completed,
        row.tables_total,
        row.progress_bar
    ))
}

/// Hand a clone to the pool and wait for it, with progress as NOTICE lines
/// about every 10 s; if this session is cancelled or times out, the job is
/// cancelled too.
pub fn run_sync(spec: &Spec, conninfo: &str) -> Result<String> {
    let (job_id, idx) = start(spec, conninfo, true, None)?;
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
        spec.workers
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
        let phase = slots::phase_name(SLOTS.share().s[idx].phase).to_string();
        if phase != last_phase || last_note.elapsed() > Duration::from_secs(10) {
            if let Some(line) = progress_line(job_id) {
                notice(&line);
            }
            last_phase = phase;
            last_note = Instant::now();
        }
    }
}

/// `cancel(job_id)`: true when the job was running and has been told to stop.
/// Another role's job is not there for the caller: false, and it runs on.
pub fn cancel(job_id: i32) -> Result<bool> {
    if !available() {
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
    let Some(j) = state::seen(job_id)? else {
        return Err(CloneError::NoJob(job_id));
    };
    if let Some(next) = j.resumed_by {
        return Err(CloneError::JobState(format!(
            "job {job_id} was resumed already, as job {next}"
        )));
    }
    if j.status != "failed" && j.status != "cancelled" {
        return Err(CloneError::JobState(format!(
            "job {job_id} is {}; only failed or cancelled jobs can be resumed",
            j.status
        )));
    }
    let Some(conninfo) = j.conninfo else {
        return Err(CloneError::JobState(format!(
            "job {job_id} no longer has its connection string; start a new clone"
        )));
    };
    let mut spec = j.spec;
    spec.resumed_from = Some(job_id);
    start(&spec, &conninfo, false, Some(j.owner)).map(|(id, _)| id)
}

/// `discard(job_id)`: take back what a failed or cancelled job made on this
/// server and forget the job (with the jobs it resumed). The undo
/// statements run newest first, as the job's own role (a superuser
/// discarding an operator's job does not run the operator's records with
/// superuser rights), in the caller's transaction: all of it, or nothing.
pub fn discard(job_id: i32) -> Result<String> {
    reap()?;
    let Some(j) = state::seen(job_id)? else {
        return Err(CloneError::NoJob(job_id));
    };
    if live_ids().contains(&job_id) || j.status == "running" || j.status == "pending" {
        return Err(CloneError::JobState(format!(
            "job {job_id} is running; pgclone.cancel({job_id}) first"
        )));
    }
    if let Some(next) = j.resumed_by {
        return Err(CloneError::JobState(format!(
            "job {job_id} was resumed as job {next}; discard job {next}"
        )));
    }
    if j.status == "completed" {
        return Err(CloneError::JobState(format!(
            "job {job_id} completed; discard() takes back failed or cancelled jobs only"
        )));
    }
    let undo = state::undo_of(job_id, j.owner)?;
    let owner = role_name(j.owner).ok_or_else(|| {
        CloneError::JobState(format!(
            "the role that started job {job_id} no longer exists"
        ))
    })?;
    crate::target::as_role(Some(&owner), || {
        let _guc = crate::target::GucScope::enter(&[("search_path", "")]);
        for sql in &undo {
            crate::exec::run::statements(
                &format!("discarding job {job_id}"),
                std::slice::from_ref(sql),
            );
        }
    })?;
    let forgotten = state::forget_chain(job_id, j.owner)?;
    Ok(format!(
        "job {job_id} discarded: {} statement(s) took back what it made; {forgotten} job record(s) forgotten",
        undo.len()
    ))
}

fn role_name(oid: u32) -> Option<String> {
    Spi::get_one_with_args::<String>(
        "SELECT rolname::text FROM pg_catalog.pg_roles WHERE oid = $1",
        &[pg_sys::Oid::from(oid).into()],
    )
    .ok()
    .flatten()
}

/// `clear_jobs()`: forget finished jobs (completed, failed, cancelled).
pub fn clear_jobs() -> Result<i64> {
    reap()?;
    state::clear(scope())
}

/// Live progress of a serial clone, in a slot of its own (when the library
/// is preloaded and a slot is free), so jobs_view shows it while it runs;
/// freed when the clone ends, however it ends.
pub struct Live {
    idx: Option<usize>,
    job_id: i32,
    spec: Spec,
    source: String,
    owner: u32,
    started_ms: i64,
}

impl Live {
    pub fn serial(spec: &Spec, conninfo: &str) -> Live {
        let source = pgclone_core::conninfo::ConnInfo::parse(conninfo)
            .map(|c| c.redacted())
            .unwrap_or_default();
        let mut live = Live {
            idx: None,
            job_id: 0,
            spec: spec.clone(),
            source,
            owner: me(),
            started_ms: now_ms(),
        };
        if !available() {
            return live;
        }
        let Ok(job_id) = state::next_id() else {
            return live;
        };
        let request = serde_json::to_string(spec).unwrap_or_default();
        let mut g = SLOTS.exclusive();
        let Some(idx) = g.s.iter().position(|s| s.state == FREE) else {
            return live;
        };
        let s = &mut g.s[idx];
        slots::clear(s);
        s.state = ACTIVE;
        s.kind = KIND_SERIAL;
        s.job_id = job_id;
        s.database = my_database();
        s.role = live.owner;
        s.started_ms = live.started_ms;
        // SAFETY: our pid: cancel() interrupts this backend.
        s.coordinator_pid = unsafe { pg_sys::MyProcPid };
        slots::put(&mut s.request, &request);
        live.idx = Some(idx);
        live.job_id = job_id;
        live
    }

    fn with(&self, f: impl FnOnce(&mut slots::Slot)) {
        if let Some(i) = self.idx {
            let mut g = SLOTS.exclusive();
            if g.s[i].job_id == self.job_id {
                f(&mut g.s[i]);
            }
        }
    }

    pub fn totals(&self, plan: &Plan) {
        self.with(|s| {
            s.tables_total = plan.tables_total;
            s.bytes_total = plan.bytes_total;
            s.units_total = plan.units.len() as u32;
        });
    }

    pub fn working(&self, stage: Stage, label: &str) {
        self.with(|s| {
            s.phase = slots::phase_code(stage.phase());
            slots::put_cut(&mut s.current, label);
        });
    }

    pub fn copied(&self, rows: u64, bytes: u64) {
        self.with(|s| {
            s.rows_done += rows as i64;
            s.bytes_done += bytes as i64;
            s.workers[0].bytes = 0;
        });
    }

    pub fn unit_done(&self, tables: u32) {
        self.with(|s| {
            s.tables_done += tables as i64;
            s.units_done += 1;
        });
    }

    /// "copy, 12 of 2000 tables, [bar]".
    pub fn line(&self) -> String {
        match progress_line(self.job_id) {
            Some(l) if self.idx.is_some() => l,
            _ => "pgclone: working".into(),
        }
    }

    /// The finished clone, for the record (in the caller's transaction: a
    /// ROLLBACK forgets it with the rest).
    pub fn record(&self, summary: &str) {
        let Some(i) = self.idx else { return };
        let p = {
            let g = SLOTS.share();
            let s = &g.s[i];
            state::Progress {
                phase: "done".into(),
                tables_total: s.tables_total,
                tables_done: s.tables_done,
                rows: s.rows_done,
                bytes: s.bytes_done,
                bytes_total: s.bytes_total,
                units_total: s.units_total as i32,
            }
        };
        let _ = state::record_serial(
            self.job_id,
            &self.spec,
            self.owner,
            &self.source,
            summary,
            &p,
            self.started_ms,
        );
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(i) = self.idx {
            let mut g = SLOTS.exclusive();
            if g.s[i].job_id == self.job_id {
                slots::clear(&mut g.s[i]);
            }
        }
    }
}

/// In-flight bytes of a serial clone's COPY (the COPY read hook).
pub fn serial_reading(bytes: u64) {
    if !available() {
        return;
    }
    // SAFETY: our pid.
    let pid = unsafe { pg_sys::MyProcPid };
    let mut g = SLOTS.exclusive();
    if let Some(s) =
        g.s.iter_mut()
            .find(|s| s.kind == KIND_SERIAL && s.state == ACTIVE && s.coordinator_pid == pid)
    {
        s.workers[0].bytes = bytes as i64;
    }
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

/// Job rows as the caller may see them (row-level security), with the
/// per-unit figures for `progress()`. The totals live in the job row; the
/// units are read for one job only.
const JOBS_SQL: &str = "\
SELECT coalesce(pg_catalog.json_agg(r ORDER BY r.job_id), '[]')::text FROM (\
  SELECT j.job_id, j.status, j.op_type, j.schema_name, j.table_name, j.current_phase, \
    j.tables_total, j.tables_completed, j.rows_copied, j.bytes_copied, j.bytes_total, \
    (extract(epoch FROM coalesce(j.end_time, pg_catalog.clock_timestamp()) - j.start_time) * 1000)::int8 AS elapsed_ms, \
    j.start_time::text, j.end_time::text, j.error_message, j.source, j.workers, j.resumed_from, j.summary, j.phases, \
    CASE WHEN $2 THEN (SELECT pg_catalog.json_agg(u ORDER BY u.unit_id) FROM ( \
       SELECT u.unit_id, u.kind, u.label, u.status, u.rows, u.bytes, u.ms \
       FROM pgclone.job_units u WHERE u.job_id = j.job_id AND u.owner_oid = j.owner_oid) u) END AS tables \
  FROM pgclone.jobs j WHERE $1 IS NULL OR j.job_id = $1) r";

fn fetch_rows(job_id: Option<i32>, with_units: bool) -> Result<Vec<RawRow>> {
    let text = Spi::get_one_with_args::<String>(JOBS_SQL, &[job_id.into(), with_units.into()])
        .map_err(|e| CloneError::Internal(format!("job state: {e}")))?
        .unwrap_or_else(|| "[]".into());
    serde_json::from_str(&text).map_err(|e| CloneError::Internal(format!("job state: {e}")))
}

/// What shared memory says of a live job or serial clone the caller may see.
#[derive(Clone)]
struct LiveView {
    job_id: i32,
    serial: bool,
    phase: String,
    current: Option<String>,
    tables_total: i64,
    tables_done: i64,
    rows: i64,
    bytes: i64,
    bytes_total: i64,
    started_ms: i64,
    request: String,
}

fn live_view() -> Vec<LiveView> {
    if !available() {
        return Vec::new();
    }
    let db = my_database();
    let g = SLOTS.share();
    g.s.iter()
        .filter(|s| (s.state == STARTING || s.state == ACTIVE) && s.database == db && mine(s.role))
        .map(|s| {
            let mut running: Vec<String> = s
                .workers
                .iter()
                .filter(|w| w.pid != 0 && w.unit != 0)
                .map(|w| slots::get(&w.label))
                .filter(|l| !l.is_empty())
                .collect();
            running.sort();
            running.dedup();
            let current = slots::get(&s.current);
            LiveView {
                job_id: s.job_id,
                serial: s.kind == KIND_SERIAL,
                phase: slots::phase_name(s.phase).to_string(),
                current: if !current.is_empty() {
                    Some(current)
                } else if running.is_empty() {
                    None
                } else {
                    Some(running.join(", "))
                },
                tables_total: s.tables_total,
                tables_done: s.tables_done,
                rows: s.rows_done,
                bytes: s.bytes_done + s.workers.iter().map(|w| w.bytes).sum::<i64>(),
                bytes_total: s.bytes_total,
                started_ms: s.started_ms,
                request: slots::get(&s.request),
            }
        })
        .collect()
}

fn finish_row(r: RawRow, live: Option<&LiveView>) -> JobRow {
    let mut status = r.status;
    let mut error_message = r.error_message;
    let mut row = (
        r.current_phase,
        r.tables_total,
        r.tables_completed,
        r.rows_copied,
        r.bytes_copied,
        r.bytes_total,
    );
    let running = status == "running" || status == "pending";
    match live {
        Some(l) if running => {
            row = (
                Some(l.phase.clone()),
                l.tables_total,
                l.tables_done,
                l.rows,
                l.bytes,
                Some(l.bytes_total),
            );
        }
        None if running => {
            // The table was not told yet (reap runs on the next write).
            status = "failed".into();
            error_message.get_or_insert_with(|| {
                "interrupted: the job's processes ended (server restart or terminated)".into()
            });
        }
        _ => {}
    }
    let running = status == "running" || status == "pending";
    let (phase, total, done, rows, bytes, bytes_total) = row;
    let pct = progress::pct_complete(bytes, bytes_total, done, total, status == "completed");
    JobRow {
        job_id: r.job_id,
        op_type: r.op_type,
        schema_name: r.schema_name,
        table_name: r.table_name,
        current_phase: phase,
        current_table: if running {
            live.and_then(|l| l.current.clone())
        } else {
            None
        },
        tables_total: total,
        tables_completed: done,
        rows_copied: rows,
        bytes_copied: bytes,
        elapsed_ms: r.elapsed_ms,
        start_time: r.start_time,
        end_time: r.end_time,
        error_message,
        pct_complete: pct,
        progress_bar: progress::bar(pct, rows, r.elapsed_ms, running),
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

/// A serial clone has no job row until it ends: its row is what shared
/// memory says.
fn serial_row(l: &LiveView) -> JobRow {
    let spec: Option<Spec> = serde_json::from_str(&l.request).ok();
    let elapsed = (now_ms() - l.started_ms).max(0);
    let pct = progress::pct_complete(
        l.bytes,
        Some(l.bytes_total),
        l.tables_done,
        l.tables_total,
        false,
    );
    JobRow {
        job_id: l.job_id,
        status: "running".into(),
        op_type: spec
            .as_ref()
            .map(|s| s.what.as_str().to_string())
            .unwrap_or_default(),
        schema_name: spec.as_ref().and_then(|s| s.schema.clone()),
        table_name: spec.as_ref().and_then(|s| s.shown_table()),
        current_phase: Some(l.phase.clone()),
        current_table: l.current.clone(),
        tables_total: l.tables_total,
        tables_completed: l.tables_done,
        rows_copied: l.rows,
        bytes_copied: l.bytes,
        elapsed_ms: elapsed,
        start_time: None,
        end_time: None,
        error_message: None,
        pct_complete: pct,
        progress_bar: progress::bar(pct, l.rows, elapsed, true),
        elapsed_time: progress::hms(elapsed),
        source: String::new(),
        workers: 1,
        resumed_from: None,
        summary: None,
        phases: None,
        tables: None,
    }
}

/// Every job (or one), as `jobs_view` shows them.
pub fn job_rows(job_id: Option<i32>) -> Result<Vec<JobRow>> {
    let live = live_view();
    let mut out: Vec<JobRow> = fetch_rows(job_id, false)?
        .into_iter()
        .map(|r| {
            let l = live.iter().find(|l| l.job_id == r.job_id);
            finish_row(r, l)
        })
        .collect();
    for l in live.iter().filter(|l| l.serial) {
        if job_id.is_none_or(|j| j == l.job_id) && !out.iter().any(|r| r.job_id == l.job_id) {
            out.push(serial_row(l));
        }
    }
    out.sort_by_key(|r| r.job_id);
    Ok(out)
}

/// `progress(job_id)`: one job as a JSON object, with its units.
pub fn progress_json(job_id: i32) -> Result<String> {
    let live = live_view();
    let row = match fetch_rows(Some(job_id), true)?.into_iter().next() {
        Some(r) => {
            let l = live.iter().find(|l| l.job_id == r.job_id);
            finish_row(r, l)
        }
        None => live
            .iter()
            .find(|l| l.serial && l.job_id == job_id)
            .map(serial_row)
            .ok_or(CloneError::NoJob(job_id))?,
    };
    serde_json::to_string(&row).map_err(|e| CloneError::Internal(e.to_string()))
}

/// `jobs()`: every job as a JSON array.
pub fn jobs_json() -> Result<String> {
    serde_json::to_string(&job_rows(None)?).map_err(|e| CloneError::Internal(e.to_string()))
}
