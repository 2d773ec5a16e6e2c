//! Carrying out one unit of a plan in this backend, in the current
//! transaction: its statements, its copies, its large objects. The serial
//! path and the job workers run units through here alike.

use crate::conn::SourceConn;
use crate::copy::copy_into;
use crate::error::{CloneError, Result};
use crate::target;
use pgclone_core::plan::units::{CopyStep, Step, Unit};
use pgclone_core::sqltext::qualified;
use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::pg_sys::PgTryBuilder;
use pgrx::PgLogLevel;

/// Rows and bytes a unit moved.
#[derive(Debug, Default, Clone, Copy)]
pub struct Moved {
    pub rows: u64,
    pub bytes: u64,
}

/// Run `f`; an ERROR raised inside says what pgclone was doing ("table
/// s.t: ...") and keeps its SQLSTATE, detail and hint. (A CONTEXT line
/// would not survive the way ERRORs cross Rust code.)
pub fn about<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let f = std::panic::AssertUnwindSafe(f);
    PgTryBuilder::new(move || {
        let f = f;
        (f.0)()
    })
    .catch_others(|e| {
        let (r, level) = match e {
            CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => (r, PgLogLevel::ERROR),
            CaughtError::RustPanic { ereport, .. } => (ereport, PgLogLevel::ERROR),
        };
        let mut report = ErrorReport::new(
            r.sql_error_code(),
            format!("{what}: {}", r.message()),
            "pgclone",
        );
        if let Some(d) = r.detail() {
            report = report.set_detail(d.to_string());
        }
        if let Some(h) = r.hint() {
            report = report.set_hint(h.to_string());
        }
        report.report(level);
        unreachable!("ERROR does not return")
    })
    .execute()
}

/// Run statements one after the other, in one SPI call.
pub fn statements(what: &str, sql: &[String]) {
    if sql.is_empty() {
        return;
    }
    about(what, || target::run(&sql.join(";\n")));
}

/// Stream a source COPY into the local table named by `c`. Returns what it moved.
pub fn copy(src: &SourceConn, c: &CopyStep, encoding: &str) -> Result<Moved> {
    let Some((relid, _)) = target::relation(&c.schema, &c.table) else {
        if c.optional {
            // An extension configuration table the extension on this side lacks.
            return Ok(Moved::default());
        }
        return Err(CloneError::Internal(format!(
            "{} vanished after it was created",
            qualified(&c.schema, &c.table)
        )));
    };
    if c.truncate {
        target::run(&format!("TRUNCATE ONLY {}", qualified(&c.schema, &c.table)));
    }
    // The key of the hash mask is read when it is needed, never stored.
    let key = if c.source.masks.is_empty() {
        None
    } else {
        Some(crate::mask::key()?)
    };
    let mut reader = src.copy_out(&c.source.sql(key.as_ref()), c.user_filter, encoding)?;
    let rows = about(&format!("copying {}.{}", c.schema, c.table), || {
        target::as_role(c.run_as.as_deref(), || {
            copy_into(
                relid,
                &c.source.columns,
                c.source.binary,
                c.freeze,
                encoding,
                &mut reader,
            )
        })
    })??;
    Ok(Moved {
        rows,
        bytes: reader.bytes,
    })
}

/// One large object, in 1 MB pieces so memory stays bounded; an empty one
/// when no data is asked for.
fn large_object(src: &SourceConn, oid: u32, with_data: bool) -> Result<u64> {
    const PIECE: i32 = 1 << 20;
    target::run(&format!("SELECT pg_catalog.lo_create({oid})"));
    if !with_data {
        return Ok(0);
    }
    let mut offset: i64 = 0;
    loop {
        let row = src.query_one("SELECT lo_get($1, $2, $3)", &[&oid, &offset, &PIECE])?;
        let data: Vec<u8> = row.get(0);
        if data.is_empty() {
            break;
        }
        target::lo_put(oid, offset, &data);
        offset += data.len() as u64 as i64;
        if data.len() < PIECE as usize {
            break;
        }
    }
    Ok(offset as u64)
}

/// Carry out a unit in the current transaction. `on_copied` hears of each
/// copy as it completes (live progress).
pub fn unit(
    src: &SourceConn,
    u: &Unit,
    encoding: &str,
    on_copied: &mut dyn FnMut(&CopyStep, Moved),
) -> Result<Moved> {
    let mut moved = Moved::default();
    for step in &u.steps {
        crate::interrupts::check();
        match step {
            Step::Sql { about, sql } => statements(about, sql),
            Step::Copy(c) => {
                let m = copy(src, c, encoding)?;
                moved.rows += m.rows;
                moved.bytes += m.bytes;
                on_copied(c, m);
            }
            Step::LargeObject { oid, with_data } => {
                moved.bytes += about(&format!("large object {oid}"), || {
                    large_object(src, *oid, *with_data)
                })?;
            }
        }
    }
    Ok(moved)
}
