//! Carrying out a clone: connect, read the catalog, render, run, copy.

pub mod create_db;
pub mod schema;
pub mod table;

use crate::conn::SourceConn;
use crate::copy::{copy_into, CopySource};
use crate::error::{CloneError, Result};
use crate::plan::units::{Unit, UnitKind};
use crate::sqltext::qualified;
use crate::target;

/// Binary COPY needs both servers on one major version.
pub fn same_major(src: &SourceConn) -> bool {
    src.server_version_num / 10000 == target::server_version_num() / 10000
}

/// Stream the rows `from` describes into the local table `schema.name` (made
/// already) and return (rows, bytes). With `user_filter`, an error the source
/// raises is blamed on the caller's `where` filter.
#[allow(clippy::too_many_arguments)]
pub fn copy_table(
    src: &SourceConn,
    from: &CopySource,
    schema: &str,
    name: &str,
    encoding: &str,
    user_filter: bool,
    run_as: Option<&str>,
) -> Result<(u64, u64)> {
    let sql = from.sql();
    let to = Destination {
        schema,
        name,
        columns: &from.columns,
        binary: from.binary,
        freeze: false,
        run_as,
    };
    stream(src, &sql, user_filter, &to, encoding)
}

/// Where a source COPY lands, and how.
struct Destination<'a> {
    schema: &'a str,
    name: &'a str,
    columns: &'a [String],
    binary: bool,
    freeze: bool,
    /// The role the rows are loaded as (the table's owner): CHECK and domain
    /// constraints and generated columns, code from the source, run with its
    /// rights, not the caller's. None: the caller.
    run_as: Option<&'a str>,
}

fn stream(
    src: &SourceConn,
    sql: &str,
    user_filter: bool,
    to: &Destination,
    encoding: &str,
) -> Result<(u64, u64)> {
    let (relid, _) = target::relation(to.schema, to.name).ok_or_else(|| {
        CloneError::Internal(format!(
            "{} vanished after it was created",
            qualified(to.schema, to.name)
        ))
    })?;
    let mut reader = src.copy_out(sql, user_filter, encoding)?;
    let rows = target::as_role(to.run_as, || {
        copy_into(
            relid,
            to.columns,
            to.binary,
            to.freeze,
            encoding,
            &mut reader,
        )
    })??;
    Ok((rows, reader.bytes))
}

/// Carry out one unit of the data stage in this backend, in the current
/// transaction. With `freeze` (a transaction of the unit's own, in a worker),
/// a whole-table copy is TRUNCATE + COPY FREEZE: a resumed copy starts clean
/// and the rows need no later freezing. Returns (rows, bytes).
pub fn run_unit(src: &SourceConn, unit: &Unit, encoding: &str, freeze: bool) -> Result<(u64, u64)> {
    // Index builds run as the table's owner already (PostgreSQL switches to
    // it), as do ANALYZE and refreshes; only the COPY needs us to.
    if unit.kind != UnitKind::Copy {
        for sql in &unit.sqls {
            target::run(sql);
        }
        return Ok((0, 0));
    }
    let freeze = freeze && unit.freeze;
    if freeze {
        target::run(&format!(
            "TRUNCATE ONLY {}",
            qualified(&unit.schema, &unit.table)
        ));
    }
    let to = Destination {
        schema: &unit.schema,
        name: &unit.table,
        columns: &unit.columns,
        binary: unit.binary,
        freeze,
        run_as: unit.run_as.as_deref(),
    };
    stream(src, &unit.copy_sql, false, &to, encoding)
}

/// "1.5 MB", for summaries.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} bytes")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod unit {
    #[test]
    fn human_bytes() {
        assert_eq!(super::human_bytes(12), "12 bytes");
        assert_eq!(super::human_bytes(1536), "1.5 kB");
        assert_eq!(super::human_bytes(3 << 30), "3.0 GB");
    }
}
