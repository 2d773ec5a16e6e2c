//! The live half of job state, in shared memory: which clones run, their
//! processes, the queue of ready units and the completions coming back, the
//! cancel flag, live progress, and the conninfo the job's processes connect
//! with (it never touches a table visible to operators, a log line or
//! pg_stat_activity). The durable half is in the tables of sql/jobs.sql.
//!
//! A serial clone takes a slot too (kind SERIAL, no workers), so every
//! clone shows in jobs_view while it runs.

use pgrx::lwlock::PgLwLock;
use pgrx::prelude::*;
use pgrx::shmem::PGRXSharedMemory;
use std::sync::atomic::{AtomicBool, Ordering};

pub const MAX_SLOTS: usize = 16;
pub const MAX_WORKERS: usize = 16;
/// Ready units handed out at a time: a few per worker, so that a unit that
/// becomes ready later with more work (a large table's index builds) is not
/// queued behind a long line.
pub const QUEUE: usize = 64;

pub const FREE: u8 = 0;
/// Reserved by the caller; the coordinator has not committed the job row yet.
pub const STARTING: u8 = 1;
pub const ACTIVE: u8 = 2;
/// The coordinator is done; `ok`/`message` tell the outcome; a synchronous
/// caller collects it.
pub const DONE: u8 = 3;

pub const KIND_JOB: u8 = 0;
pub const KIND_SERIAL: u8 = 1;

#[derive(Clone, Copy)]
pub struct WorkerState {
    pub pid: i32,
    /// Bytes read by the unit in flight (not yet committed).
    pub bytes: i64,
    /// The unit it runs, 0 when none, and what that unit works on.
    pub unit: u32,
    pub label: [u8; 208],
}

impl Default for WorkerState {
    fn default() -> Self {
        WorkerState {
            pid: 0,
            bytes: 0,
            unit: 0,
            label: [0; 208],
        }
    }
}

/// A ring of unit ids (ready ones going out, finished ones coming back).
#[derive(Clone, Copy)]
pub struct Ring {
    pub ids: [u32; QUEUE],
    pub head: u32,
    pub len: u32,
}

impl Default for Ring {
    fn default() -> Self {
        Ring {
            ids: [0; QUEUE],
            head: 0,
            len: 0,
        }
    }
}

impl Ring {
    pub fn push(&mut self, id: u32) -> bool {
        if self.len as usize == QUEUE {
            return false;
        }
        let at = (self.head as usize + self.len as usize) % QUEUE;
        self.ids[at] = id;
        self.len += 1;
        true
    }

    pub fn pop(&mut self) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let id = self.ids[self.head as usize];
        self.head = (self.head + 1) % QUEUE as u32;
        self.len -= 1;
        Some(id)
    }

    pub fn room(&self) -> usize {
        QUEUE - self.len as usize
    }
}

#[derive(Clone, Copy)]
pub struct Slot {
    pub state: u8,
    pub kind: u8,
    pub job_id: i32,
    pub database: u32,
    pub role: u32,
    pub coordinator_pid: i32,
    /// A synchronous caller waiting for the outcome; 0 for async jobs.
    pub waiter_pid: i32,
    /// The caller asked to cancel (status "cancelled", not "failed").
    pub cancel: bool,
    /// Every process of the job stops: cancelled, or one of them failed.
    pub stop: bool,
    pub ok: bool,
    /// No unit will be queued any more: idle workers may exit.
    pub finished: bool,
    pub workers: [WorkerState; MAX_WORKERS],
    pub ready: Ring,
    pub done: Ring,
    /// Live progress (committed work).
    pub phase: u8,
    pub tables_total: i64,
    pub tables_done: i64,
    pub rows_done: i64,
    pub bytes_done: i64,
    pub bytes_total: i64,
    pub units_total: u32,
    pub units_done: u32,
    /// Milliseconds since the epoch when it started.
    pub started_ms: i64,
    pub snapshot: [u8; 64],
    pub conninfo: [u8; 2048],
    pub request: [u8; 4096],
    /// What the job works on now (a serial clone's table).
    pub current: [u8; 256],
    pub sqlstate: [u8; 8],
    pub message: [u8; 2048],
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            state: FREE,
            kind: KIND_JOB,
            job_id: 0,
            database: 0,
            role: 0,
            coordinator_pid: 0,
            waiter_pid: 0,
            cancel: false,
            stop: false,
            ok: false,
            finished: false,
            workers: [WorkerState::default(); MAX_WORKERS],
            ready: Ring::default(),
            done: Ring::default(),
            phase: 0,
            tables_total: 0,
            tables_done: 0,
            rows_done: 0,
            bytes_done: 0,
            bytes_total: 0,
            units_total: 0,
            units_done: 0,
            started_ms: 0,
            snapshot: [0; 64],
            conninfo: [0; 2048],
            request: [0; 4096],
            current: [0; 256],
            sqlstate: [0; 8],
            message: [0; 2048],
        }
    }
}

/// Phases a slot shows, in order.
pub const PHASES: [&str; 6] = ["catalog", "schema", "copy", "post-data", "done", "failed"];

pub fn phase_code(name: &str) -> u8 {
    PHASES.iter().position(|p| *p == name).unwrap_or(0) as u8
}

pub fn phase_name(code: u8) -> &'static str {
    PHASES.get(code as usize).copied().unwrap_or("catalog")
}

#[derive(Clone, Copy)]
pub struct Slots {
    pub s: [Slot; MAX_SLOTS],
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            s: [Slot::default(); MAX_SLOTS],
        }
    }
}

// SAFETY: plain old data, no pointers; every access goes through the LWLock.
unsafe impl PGRXSharedMemory for Slots {}

// SAFETY: the name is ours alone.
pub static SLOTS: PgLwLock<Slots> = unsafe { PgLwLock::new(c"pgclone_jobs") };

static READY: AtomicBool = AtomicBool::new(false);

/// Called from _PG_init while shared_preload_libraries is processed.
pub fn init() {
    pgrx::pg_shmem_init!(SLOTS);
    READY.store(true, Ordering::Relaxed);
}

/// Shared memory exists only when the library was preloaded.
pub fn available() -> bool {
    READY.load(Ordering::Relaxed)
}

/// Store `s` in `buf`, NUL-terminated. False when it does not fit.
pub fn put(buf: &mut [u8], s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() >= buf.len() || b.contains(&0) {
        return false;
    }
    buf[..b.len()].copy_from_slice(b);
    buf[b.len()..].fill(0);
    true
}

/// Store as much of `s` as fits, cut on a character boundary.
pub fn put_cut(buf: &mut [u8], s: &str) {
    let mut end = s.len().min(buf.len() - 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    put(buf, &s[..end].replace('\0', " "));
}

pub fn get(buf: &[u8]) -> String {
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Forget everything a slot held, the conninfo first.
pub fn clear(slot: &mut Slot) {
    *slot = Slot::default();
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn strings_round_trip_and_refuse_overflow() {
        let mut buf = [7u8; 8];
        assert!(put(&mut buf, "abc"));
        assert_eq!(get(&buf), "abc");
        assert!(buf[3..].iter().all(|&c| c == 0));
        assert!(!put(&mut buf, "12345678"));
        assert!(!put(&mut buf, "a\0b"));
        put_cut(&mut buf, "éééé");
        assert_eq!(get(&buf), "ééé");
    }

    #[test]
    fn rings_keep_order_and_bound() {
        let mut r = Ring::default();
        for i in 1..=QUEUE as u32 {
            assert!(r.push(i));
        }
        assert!(!r.push(999));
        assert_eq!(r.pop(), Some(1));
        assert!(r.push(100));
        let rest: Vec<u32> = std::iter::from_fn(|| r.pop()).collect();
        assert_eq!(rest.len(), QUEUE);
        assert_eq!(rest[0], 2);
        assert_eq!(*rest.last().unwrap(), 100);
        assert_eq!(r.room(), QUEUE);
    }
}
