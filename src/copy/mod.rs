//! Data copy: the source's `COPY ... TO STDOUT` is fed straight into the
//! server's own COPY FROM machinery inside the calling backend, through a data
//! source callback. No loopback connection, no intermediate file: the rows go
//! from the source socket into the target table's heap in one process, inside
//! the caller's transaction (so a failure leaves nothing behind).

use crate::conn::CopyReader;
pub use pgclone_core::copy::CopySource;
use pgclone_core::error::{CloneError, Result};
use pgrx::pg_sys;
use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void, CString};

thread_local! {
    // The reader the COPY callback pulls from. The callback has no argument of
    // our own, so the reader is parked here for the duration of one CopyFrom.
    static READER: Cell<*mut c_void> = const { Cell::new(std::ptr::null_mut()) };
    static READ_ERROR: RefCell<Option<CloneError>> = const { RefCell::new(None) };
    // Told the bytes read so far after each read; an Err stops the COPY
    // (a job being cancelled). Unset in a plain session.
    static PROGRESS: Cell<Option<ProgressHook>> = const { Cell::new(None) };
}

/// Told the bytes read so far; an Err stops the COPY.
pub type ProgressHook = fn(u64) -> Result<()>;

pub fn set_progress_hook(hook: Option<ProgressHook>) {
    PROGRESS.with(|p| p.set(hook));
}

struct ReaderGuard;

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        READER.with(|r| r.set(std::ptr::null_mut()));
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn read_source(
    outbuf: *mut c_void,
    minread: c_int,
    maxread: c_int,
) -> c_int {
    let ptr = READER.with(|r| r.get());
    if ptr.is_null() || maxread <= 0 {
        return 0;
    }
    // SAFETY: `ptr` was set by `copy_into` from a live `&mut CopyReader` that
    // outlives the CopyFrom call, and is cleared (ReaderGuard) before it ends.
    let reader = unsafe { &mut *(ptr as *mut CopyReader<'static>) };
    // SAFETY: CopyFrom hands us a buffer of at least `maxread` bytes.
    let buf = unsafe { std::slice::from_raw_parts_mut(outbuf as *mut u8, maxread as usize) };
    let hook = PROGRESS.with(|p| p.get());
    let read = reader.read(buf, minread.max(0) as usize).and_then(|n| {
        if let Some(report) = hook {
            report(reader.bytes)?;
        }
        Ok(n)
    });
    match read {
        Ok(n) => n as c_int,
        Err(e) => {
            READ_ERROR.with(|slot| *slot.borrow_mut() = Some(e.clone()));
            crate::error_report::raise(e)
        }
    }
}

fn cstr(s: &str) -> *mut std::ffi::c_char {
    let c = CString::new(s).unwrap_or_default();
    // SAFETY: pstrdup copies into the current memory context.
    unsafe { pg_sys::pstrdup(c.as_ptr()) }
}

/// Load everything `reader` yields into the table `relid`, in the given
/// columns, with the server's own COPY FROM. Returns the rows loaded.
pub fn copy_into(
    relid: pg_sys::Oid,
    columns: &[String],
    binary: bool,
    freeze: bool,
    encoding: &str,
    reader: &mut CopyReader,
) -> Result<u64> {
    READ_ERROR.with(|slot| *slot.borrow_mut() = None);
    // Binary receive functions convert text from this session's
    // client_encoding: for the copy it is the encoding the source sends in
    // (the database's), whatever the caller's client speaks.
    let _encoding = crate::target::GucScope::enter(&[("client_encoding", encoding)]);
    // SAFETY: all calls below are plain backend calls made on the backend's
    // own thread inside a transaction; pgrx turns any ERROR into a panic that
    // unwinds through ReaderGuard.
    unsafe {
        let lock = pg_sys::RowExclusiveLock as pg_sys::LOCKMODE;
        let rel = pg_sys::table_open(relid, lock);
        let pstate = pg_sys::make_parsestate(std::ptr::null_mut());
        // CopyFrom builds its executor state from the parse state's range table.
        pg_sys::addRangeTableEntryForRelation(
            pstate,
            rel,
            lock,
            std::ptr::null_mut(),
            false,
            false,
        );
        let mut attlist: *mut pg_sys::List = std::ptr::null_mut();
        for c in columns {
            attlist = pg_sys::lappend(attlist, pg_sys::makeString(cstr(c)) as *mut c_void);
        }
        let mut opts: *mut pg_sys::List = std::ptr::null_mut();
        let format = if binary { "binary" } else { "text" };
        let defel = |k: &str, v: &str| {
            pg_sys::makeDefElem(
                cstr(k),
                pg_sys::makeString(cstr(v)) as *mut pg_sys::Node,
                -1,
            )
        };
        opts = pg_sys::lappend(opts, defel("format", format) as *mut c_void);
        if freeze {
            // Rows land frozen and all-visible: no hint-bit writes or
            // anti-wraparound vacuum of the clone later.
            opts = pg_sys::lappend(opts, defel("freeze", "true") as *mut c_void);
        }
        if !binary {
            // The source was told to send in this encoding.
            opts = pg_sys::lappend(opts, defel("encoding", encoding) as *mut c_void);
        }
        READER.with(|r| r.set(reader as *mut CopyReader as *mut c_void));
        let _guard = ReaderGuard;
        let rows = begin_and_copy(pstate, rel, attlist, opts);
        pg_sys::free_parsestate(pstate);
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        Ok(rows)
    }
}

#[cfg(not(feature = "pg13"))]
unsafe fn begin_and_copy(
    pstate: *mut pg_sys::ParseState,
    rel: pg_sys::Relation,
    attlist: *mut pg_sys::List,
    opts: *mut pg_sys::List,
) -> u64 {
    // SAFETY: arguments come straight from copy_into.
    unsafe {
        let cstate = pg_sys::BeginCopyFrom(
            pstate,
            rel,
            std::ptr::null_mut(),
            std::ptr::null(),
            false,
            Some(read_source),
            attlist,
            opts,
        );
        let rows = pg_sys::CopyFrom(cstate);
        pg_sys::EndCopyFrom(cstate);
        rows
    }
}

#[cfg(feature = "pg13")]
unsafe fn begin_and_copy(
    _: *mut pg_sys::ParseState,
    _: pg_sys::Relation,
    _: *mut pg_sys::List,
    _: *mut pg_sys::List,
) -> u64 {
    // PostgreSQL 13 keeps CopyFrom private to copy.c.
    crate::error_report::raise(CloneError::NotSupported(
        "copying data needs PostgreSQL 14 or later on the target".into(),
    ))
}
