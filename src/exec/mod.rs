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

/// Stream the rows `from` describes into the local table `schema.name` (made
/// already) and return (rows, bytes). With `user_filter`, an error the source
/// raises is blamed on the caller's `where` filter.
pub fn copy_table(
    src: &SourceConn,
    from: &CopySource,
    schema: &str,
    name: &str,
    encoding: &str,
    user_filter: bool,
) -> Result<(u64, u64)> {
    let (relid, _) = target::relation(schema, name).ok_or_else(|| {
        CloneError::Internal(format!(
            "{} vanished after it was created",
            qualified(schema, name)
        ))
    })?;
    let mut reader = src.copy_out(&from.sql(), user_filter, encoding)?;
    let rows = copy_into(
        relid,
        &from.columns,
        from.binary,
        false,
        encoding,
        &mut reader,
    )?;
    Ok((rows, reader.bytes))
}

/// Carry out one unit of the data stage in this backend, in the current
/// transaction. With `freeze` (a transaction of the unit's own, in a worker),
/// a whole-table copy is TRUNCATE + COPY FREEZE: a resumed copy starts clean
/// and the rows need no later freezing. Returns (rows, bytes).
pub fn run_unit(src: &SourceConn, unit: &Unit, encoding: &str, freeze: bool) -> Result<(u64, u64)> {
    match unit.kind {
        UnitKind::Index | UnitKind::Keys | UnitKind::Refresh => {
            for sql in &unit.sqls {
                target::run(sql);
            }
            Ok((0, 0))
        }
        UnitKind::Copy => {
            let (relid, _) = target::relation(&unit.schema, &unit.table).ok_or_else(|| {
                CloneError::Internal(format!(
                    "{} vanished after it was created",
                    qualified(&unit.schema, &unit.table)
                ))
            })?;
            let freeze = freeze && unit.freeze;
            if freeze {
                target::run(&format!(
                    "TRUNCATE ONLY {}",
                    qualified(&unit.schema, &unit.table)
                ));
            }
            let mut reader = src.copy_out(&unit.copy_sql, false, encoding)?;
            let rows = copy_into(
                relid,
                &unit.columns,
                unit.binary,
                freeze,
                encoding,
                &mut reader,
            )?;
            Ok((rows, reader.bytes))
        }
    }
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
