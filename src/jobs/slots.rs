//! The live half of job state, in shared memory: which jobs run, their
//! processes, the cancel flag, bytes in flight, and the conninfo the job's
//! processes connect with (it never touches a table's row visible to
//! operators, a log line or pg_stat_activity). The durable half is in the
//! tables of sql/jobs.sql.

use pgrx::lwlock::PgLwLock;
use pgrx::prelude::*;
use pgrx::shmem::PGRXSharedMemory;
use std::sync::atomic::{AtomicBool, Ordering};

pub const MAX_SLOTS: usize = 16;
pub const MAX_WORKERS: usize = 16;

pub const FREE: u8 = 0;
/// Reserved by the caller; the coordinator has not committed the job row yet.
pub const STARTING: u8 = 1;
pub const ACTIVE: u8 = 2;
/// The coordinator is done; `outcome` is set; a synchronous caller collects it.
pub const DONE: u8 = 3;

#[derive(Clone, Copy, Default)]
pub struct WorkerState {
    pub pid: i32,
    /// Bytes read by the unit in flight (not yet committed).
    pub bytes: i64,
}

#[derive(Clone, Copy)]
pub struct Slot {
    pub state: u8,
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
    pub workers: [WorkerState; MAX_WORKERS],
    pub snapshot: [u8; 64],
    pub conninfo: [u8; 2048],
    pub request: [u8; 8192],
    pub sqlstate: [u8; 8],
    pub message: [u8; 2048],
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            state: FREE,
            job_id: 0,
            database: 0,
            role: 0,
            coordinator_pid: 0,
            waiter_pid: 0,
            cancel: false,
            stop: false,
            ok: false,
            workers: [WorkerState::default(); MAX_WORKERS],
            snapshot: [0; 64],
            conninfo: [0; 2048],
            request: [0; 8192],
            sqlstate: [0; 8],
            message: [0; 2048],
        }
    }
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
        assert!(put(&mut buf, ""));
        assert_eq!(get(&buf), "");
    }
}
