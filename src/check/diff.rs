//! `diff`: a schema's definitions here against the source's.

use crate::error::{CloneError, Result};
use pgclone_core::check::diff::{objects_sql, report, Obj};
use pgrx::prelude::*;

/// The report of `diff(conninfo, schema)`, as JSON text.
pub fn diff(conninfo: &str, schema: &str) -> Result<String> {
    let src = crate::exec::open_source(conninfo)?;
    crate::catalog::require_schema(&src, schema)?;
    let theirs: Vec<Obj> = src
        .query(objects_sql(), &[&schema])?
        .iter()
        .map(|r| Obj {
            kind: r.get(0),
            table: r.get(1),
            name: r.get(2),
            def: r.get::<_, Option<String>>(3).unwrap_or_default(),
        })
        .collect();
    src.batch("COMMIT")?;
    // Definitions print names qualified only under an empty search_path,
    // as the source's session prints them.
    let _guc = crate::target::GucScope::enter(&[("search_path", "")]);
    let ours = Spi::connect(|c| {
        let mut out = Vec::new();
        let rows = c
            .select(objects_sql(), None, &[schema.into()])
            .map_err(|e| CloneError::Internal(format!("local catalog: {e}")))?;
        for r in rows {
            let get = |i: usize| -> Result<Option<String>> {
                r.get::<String>(i)
                    .map_err(|e| CloneError::Internal(format!("local catalog: {e}")))
            };
            out.push(Obj {
                kind: get(1)?.unwrap_or_default(),
                table: get(2)?,
                name: get(3)?.unwrap_or_default(),
                def: get(4)?.unwrap_or_default(),
            });
        }
        Ok::<_, CloneError>(out)
    })?;
    Ok(report(schema, &theirs, &ours).to_string())
}
