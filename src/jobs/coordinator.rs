//! A job's coordinator: records the job, reads the catalog and stores the
//! plan (or takes over the plan of the job it resumes), then schedules: the
//! dependency graph lives here, in memory; ready units go to the workers
//! through the queue in shared memory, largest first, and their completions
//! come back the same way. Every step of the scheduler costs the same
//! however many units the plan has.

use super::slots::{self, ACTIVE, DONE, SLOTS};
use super::state;
use super::worker::{
    connect, my_pid, password_of, session_settings, setup_signals, slot_args, stopped, truncate,
    txn,
};
use super::{stop_slot, wake};
use crate::error::{CloneError, Result};
use crate::exec;
use pgclone_core::conninfo::ConnInfo;
use pgclone_core::request::Spec;
use pgrx::bgworkers::{BackgroundWorkerBuilder, DynamicBackgroundWorker};
use pgrx::prelude::*;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

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
        } else {
            wake(s.waiter_pid);
        }
    }
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pgclone_coordinator_main(arg: pg_sys::Datum) {
    let idx = arg.value();
    // SAFETY: first thing in the process, before anything can be signalled.
    unsafe { setup_signals() };
    let a = slot_args(idx);
    connect(a.database, a.role);
    SLOTS.exclusive().s[idx].coordinator_pid = my_pid();
    // SAFETY: registers a callback with a plain integer argument.
    unsafe { pg_sys::before_shmem_exit(Some(on_coordinator_exit), pg_sys::Datum::from(idx)) };
    let secret = password_of(&a.conninfo);
    let outcome = match serde_json::from_str::<Spec>(&a.request) {
        Ok(spec) => coordinate(idx, a.job_id, a.role, &spec, &a.conninfo),
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
    } else {
        wake(s.waiter_pid);
    }
}

fn round(s: f64) -> serde_json::Value {
    serde_json::json!((s * 100.0).round() / 100.0)
}

/// Run the job and record its outcome in the job row.
fn coordinate(idx: usize, job_id: i32, role: u32, spec: &Spec, conninfo: &str) -> Result<String> {
    let source = ConnInfo::parse(conninfo)
        .map(|c| c.redacted())
        .unwrap_or_default();
    txn(|| {
        session_settings()?;
        state::insert_job(&state::NewJob {
            job_id,
            spec,
            source: source.clone(),
            owner: role,
            status: "running",
        })?;
        state::insert_secret(job_id, role, conninfo)
    })?;
    SLOTS.exclusive().s[idx].state = ACTIVE;
    let mut phases = serde_json::Map::new();
    let result = run(idx, job_id, role, spec, conninfo, &mut phases);
    let (cancel, stop, stop_message, stop_state) = {
        let g = SLOTS.share();
        let s = &g.s[idx];
        (
            s.cancel,
            s.stop,
            slots::get(&s.message),
            slots::get(&s.sqlstate),
        )
    };
    // A worker's own error explains a stop better than the echo of it here
    // (the interrupt it sent, or "stopped").
    let result = match result {
        Err(_) if cancel => Err(CloneError::Cancelled),
        Err(_) if stop && !stop_message.is_empty() => Err(CloneError::Job {
            sqlstate: if stop_state.len() == 5 {
                stop_state
            } else {
                "XX000".into()
            },
            message: stop_message,
        }),
        other => other,
    };
    let secret = password_of(conninfo);
    let (status, summary, error) = match &result {
        Ok(s) => ("completed", Some(s.clone()), None),
        Err(CloneError::Cancelled) => ("cancelled", None, Some(CloneError::Cancelled)),
        Err(e) => ("failed", None, Some(e.clone().scrub(secret.as_deref()))),
    };
    let phases = serde_json::Value::Object(phases).to_string();
    // A cancel request may still be pending here (it stopped the job, which
    // we know): it must not also stop the recording of the outcome.
    // SAFETY: a flag of this process, cleared as ProcessInterrupts would.
    unsafe { pg_sys::QueryCancelPending = 0 };
    txn(|| {
        publish(idx, job_id)?;
        state::finish(
            job_id,
            &state::Outcome {
                status,
                summary: summary.clone(),
                error: error.as_ref(),
                phases: phases.clone(),
            },
        )
    })?;
    result
}

/// Write the live totals of the slot into the job row.
fn publish(idx: usize, job_id: i32) -> Result<()> {
    let p = {
        let g = SLOTS.share();
        let s = &g.s[idx];
        state::Progress {
            phase: slots::phase_name(s.phase).to_string(),
            tables_total: s.tables_total,
            tables_done: s.tables_done,
            rows: s.rows_done,
            bytes: s.bytes_done,
            bytes_total: s.bytes_total,
            units_total: s.units_total as i32,
        }
    };
    state::set_progress(job_id, &p)
}

fn set_phase(idx: usize, phase: &str) {
    SLOTS.exclusive().s[idx].phase = slots::phase_code(phase);
}

/// Plan (or take over a plan), then run it with the workers.
fn run(
    idx: usize,
    job_id: i32,
    role: u32,
    spec: &Spec,
    conninfo: &str,
    phases: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<String> {
    let wall = Instant::now();
    let src = txn(|| exec::open_source(conninfo))?;
    // Every worker reads the same instant as the coordinator.
    let snapshot: String = src.query_one("SELECT pg_export_snapshot()", &[])?.get(0);
    slots::put(&mut SLOTS.exclusive().s[idx].snapshot, &snapshot);
    let resumed = match spec.resumed_from {
        Some(old) => txn(|| {
            state::take_over(job_id, old, role)?;
            Ok(!state::plan_of(job_id, role)?.is_empty())
        })?,
        None => false,
    };
    let mut what = format!("{} cloned", spec.what.as_str());
    let mut notices = Vec::new();
    if !resumed {
        // The session already runs with search_path '' and function bodies
        // unchecked (session_settings); a GUC level here would outlive the
        // transaction.
        let (w, n) = txn(|| {
            let mut p = exec::prepare::prepare(&src, spec, true)?;
            if let Some(skip) = &p.skipped {
                return Err(CloneError::JobState(skip.clone()));
            }
            {
                let mut g = SLOTS.exclusive();
                let s = &mut g.s[idx];
                s.tables_total = p.plan.tables_total;
                s.bytes_total = p.plan.bytes_total;
            }
            state::insert_units(job_id, role, std::mem::take(&mut p.plan.units))?;
            state::insert_undo(job_id, role, &p.undo)?;
            Ok((p.what, p.notices))
        })?;
        what = w;
        notices = n;
    }
    phases.insert("catalog_s".into(), round(wall.elapsed().as_secs_f64()));
    let plan = txn(|| state::plan_of(job_id, role))?;
    {
        let mut g = SLOTS.exclusive();
        let s = &mut g.s[idx];
        s.units_total = plan.len() as u32;
        if resumed {
            s.tables_total = plan.iter().map(|u| u.3 as i64).sum();
            s.tables_done = plan.iter().filter(|u| u.4).map(|u| u.3 as i64).sum();
        }
    }
    set_phase(idx, "schema");
    txn(|| publish(idx, job_id))?;
    let note = schedule(idx, job_id, spec.workers.max(1) as usize, &plan, phases)?;
    src.batch("COMMIT")?;
    let (copy_ms, index_ms) = txn(|| state::unit_time(job_id, role))?;
    phases.insert("copy_cumulative_s".into(), round(copy_ms as f64 / 1000.0));
    phases.insert(
        "indexes_cumulative_s".into(),
        round(index_ms as f64 / 1000.0),
    );
    phases.insert("total_s".into(), round(wall.elapsed().as_secs_f64()));
    let (rows, bytes, units) = {
        let g = SLOTS.share();
        let s = &g.s[idx];
        (s.rows_done, s.bytes_done, s.units_total)
    };
    let mut summary = format!(
        "{what}: {units} units; {rows} rows, {}; {:.2} s; job {job_id}: {note}",
        pgclone_core::plan::assemble::human_bytes(bytes as u64),
        wall.elapsed().as_secs_f64()
    );
    if !notices.is_empty() {
        summary.push_str("; ");
        summary.push_str(&notices.join("; "));
    }
    set_phase(idx, "done");
    Ok(summary)
}

/// The graph of the plan, in memory: what each unit waits for, who waits
/// for it, and the ready ones, largest first.
struct Graph {
    waiting: Vec<u32>,
    dependents: Vec<Vec<u32>>,
    est: Vec<i64>,
    tables: Vec<u32>,
    stage: Vec<usize>,
    ready: BinaryHeap<(i64, std::cmp::Reverse<u32>)>,
    left: usize,
    /// Units not done, per stage (schema, data, post).
    left_in: [usize; 3],
}

impl Graph {
    fn new(plan: &[state::UnitMeta]) -> Graph {
        let n = plan.iter().map(|u| u.0 as usize).max().unwrap_or(0) + 1;
        let mut g = Graph {
            waiting: vec![0; n],
            dependents: vec![Vec::new(); n],
            est: vec![0; n],
            tables: vec![0; n],
            stage: vec![0; n],
            ready: BinaryHeap::new(),
            left: 0,
            left_in: [0; 3],
        };
        let done: std::collections::HashSet<u32> =
            plan.iter().filter(|u| u.4).map(|u| u.0).collect();
        for (id, deps, est, tables, is_done, stage) in plan {
            let i = *id as usize;
            g.est[i] = *est;
            g.tables[i] = *tables;
            g.stage[i] = (*stage as usize).min(2);
            if *is_done {
                continue;
            }
            g.left += 1;
            g.left_in[g.stage[i]] += 1;
            for d in deps.iter().filter(|d| !done.contains(d)) {
                g.waiting[i] += 1;
                g.dependents[*d as usize].push(*id);
            }
            if g.waiting[i] == 0 {
                g.ready.push((*est, std::cmp::Reverse(*id)));
            }
        }
        g
    }

    /// A unit is done: its dependents may become ready. Returns its tables.
    fn done(&mut self, id: u32) -> u32 {
        self.left -= 1;
        self.left_in[self.stage[id as usize]] -= 1;
        let deps = std::mem::take(&mut self.dependents[id as usize]);
        for d in deps {
            let w = &mut self.waiting[d as usize];
            *w -= 1;
            if *w == 0 {
                self.ready
                    .push((self.est[d as usize], std::cmp::Reverse(d)));
            }
        }
        self.tables[id as usize]
    }

    /// The phase after `p` (every phase is passed through, empty or not).
    fn next_phase(&self, p: &str) -> &'static str {
        match p {
            "schema" => "copy",
            "copy" => "post-data",
            _ => "done",
        }
    }

    /// The phase to show: the first stage with work left.
    fn phase(&self) -> &'static str {
        match self.left_in.iter().position(|n| *n > 0) {
            Some(0) => "schema",
            Some(1) => "copy",
            Some(_) => "post-data",
            None => "done",
        }
    }
}

/// Start the workers, feed them ready units and collect the completions
/// until every unit is done. Returns a note on how many workers ran.
fn schedule(
    idx: usize,
    job_id: i32,
    asked: usize,
    plan: &[state::UnitMeta],
    phases: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<String> {
    let mut g = Graph::new(plan);
    // Wall time of each phase: from the end of the previous one to the end
    // of its last unit (phases overlap in the workers; this is the wall).
    let mut phase = g.phase();
    let mut phase_start = Instant::now();
    if g.left == 0 {
        return Ok("nothing left to do".into());
    }
    let mut handles: Vec<(DynamicBackgroundWorker, i32, bool)> = Vec::new();
    for w in 0..asked.clamp(1, slots::MAX_WORKERS) {
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
        return Err(CloneError::NotSupported(
            "no worker of the job could start: raise max_worker_processes".into(),
        ));
    }
    // Units handed out and not yet reported back; kept below the ring's size
    // so a completion always finds room.
    let mut outstanding = 0usize;
    let mut last_publish = Instant::now();
    loop {
        let (stop, cancel, finished) = {
            let mut sh = SLOTS.exclusive();
            let s = &mut sh.s[idx];
            while let Some(id) = s.done.pop() {
                outstanding -= 1;
                s.tables_done += g.done(id) as i64;
                s.units_done += 1;
            }
            while g.phase() != phase {
                let key = match phase {
                    "schema" => "schema_s",
                    "copy" => "data_s",
                    _ => "post_data_s",
                };
                phases.insert(key.into(), round(phase_start.elapsed().as_secs_f64()));
                phase_start = Instant::now();
                phase = g.next_phase(phase);
            }
            s.phase = slots::phase_code(g.phase());
            let mut woke = false;
            while outstanding + 1 < slots::QUEUE && s.ready.room() > 0 {
                let Some((_, std::cmp::Reverse(id))) = g.ready.pop() else {
                    break;
                };
                s.ready.push(id);
                outstanding += 1;
                woke = true;
            }
            let finished = g.left == 0;
            if finished {
                s.finished = true;
            }
            if woke || finished || s.stop {
                for w in &s.workers {
                    wake(w.pid);
                }
            }
            (s.stop, s.cancel, finished)
        };
        if stop {
            wait_for(&mut handles);
            return Err(stopped(cancel));
        }
        if finished {
            wait_for(&mut handles);
            break;
        }
        if watch(idx, job_id, &mut handles)? == 0 {
            return Err(CloneError::Internal(format!(
                "the workers ended with {} units not done",
                g.left
            )));
        }
        if last_publish.elapsed() > Duration::from_secs(2) {
            txn(|| publish(idx, job_id))?;
            last_publish = Instant::now();
        }
        super::wait_latch(Duration::from_millis(100));
        // SAFETY: reads a flag the signal handler sets.
        if unsafe { pg_sys::ProcDiePending } != 0 {
            pgrx::check_for_interrupts!();
        }
    }
    Ok(if started < asked {
        format!("{started} of {asked} workers (no more background worker slots)")
    } else {
        format!("{started} workers")
    })
}

/// Look after the workers: one that ended while holding a unit did not
/// finish it, so the job cannot complete: stop the others now. Returns how
/// many still run.
fn watch(
    idx: usize,
    _job_id: i32,
    handles: &mut [(DynamicBackgroundWorker, i32, bool)],
) -> Result<usize> {
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
        let mut g = SLOTS.exclusive();
        let s = &mut g.s[idx];
        let held = s
            .workers
            .iter()
            .find(|w| w.pid == *pid && w.unit != 0)
            .map(|w| w.unit);
        if let Some(unit) = held {
            if slots::get(&s.message).is_empty() {
                slots::put(&mut s.sqlstate, "57P01");
                slots::put(
                    &mut s.message,
                    &format!("worker (pid {pid}) ended while running unit {unit}"),
                );
            }
            stop_slot(s, false);
        }
        for w in s.workers.iter_mut().filter(|w| w.pid == *pid) {
            *w = slots::WorkerState::default();
        }
    }
    Ok(running)
}

fn wait_for(handles: &mut [(DynamicBackgroundWorker, i32, bool)]) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let alive = handles.iter().filter(|(h, _, _)| h.pid().is_ok()).count();
        if alive == 0 || Instant::now() > until {
            return;
        }
        super::wait_latch(Duration::from_millis(50));
    }
}
