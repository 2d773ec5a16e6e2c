//! Masking on this side: the key of the "hash" mask, and the checks a
//! clone's masks need from the source before any data moves.

use crate::conn::SourceConn;
use crate::error::{CloneError, Result};
use pgclone_core::mask::{constant_probe, MaskKey, Masks};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;
use std::ffi::CString;

pub mod local;

/// `pgclone.mask_key`: set by a superuser (postgresql.conf, ALTER SYSTEM,
/// ALTER DATABASE or ROLE ... SET); shown to superusers only. A session's
/// own SET is not used (see `key`).
static MASK_KEY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub fn init() {
    GucRegistry::define_string_guc(
        c"pgclone.mask_key",
        c"Key of the \"hash\" mask (HMAC-SHA256).",
        c"Empty: the random key made with the extension (pgclone.mask_secret). Same key, same hashes: joins between clones survive.",
        &MASK_KEY,
        GucContext::Suset,
        GucFlags::SUPERUSER_ONLY | GucFlags::NO_SHOW_ALL,
    );
}

/// The key of the hash mask: a SHA-256 digest of `pgclone.mask_key` when
/// it is set, else of the random key kept in `pgclone.mask_secret` (which
/// only superusers may read: pgclone reads it itself, as `privileged` does
/// for job state, with one fixed statement).
pub fn key() -> Result<MaskKey> {
    // The value without this session's SET: what the job's workers see too
    // (postgresql.conf, ALTER SYSTEM, ALTER DATABASE or ROLE ... SET), so
    // every unit of a clone hashes with one key.
    let _ = MASK_KEY.get();
    // Reading a superuser-only setting takes a superuser's privileges.
    // SAFETY: the GUC is defined (init) and the string is copied at once.
    let configured: Option<Vec<u8>> = crate::jobs::state::privileged(|| unsafe {
        let p = pg_sys::GetConfigOptionResetString(c"pgclone.mask_key".as_ptr());
        (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_bytes().to_vec())
    })
    .filter(|k| !k.is_empty());
    let secret = match configured {
        Some(k) => k,
        None => crate::jobs::state::privileged(|| {
            Spi::get_one::<Vec<u8>>("SELECT key FROM pgclone.mask_secret LIMIT 1")
        })
        .map_err(|e| CloneError::Internal(format!("mask key: {e}")))?
        .ok_or_else(|| {
            CloneError::Internal(
                "mask key: pgclone.mask_secret is empty; set pgclone.mask_key".into(),
            )
        })?,
    };
    let digest =
        Spi::get_one_with_args::<Vec<u8>>("SELECT pg_catalog.sha256($1)", &[secret.into()])
            .map_err(|e| CloneError::Internal(format!("mask key: {e}")))?
            .unwrap_or_default();
    Ok(MaskKey::new(&digest))
}

/// What only the source can tell, asked before any data moves: that each
/// constant (and random_int bound) casts to its column's type, domain
/// checks included, and that every masked select list is valid SQL there.
pub fn check_on_source(src: &SourceConn, masks: &Masks, key: &MaskKey) -> Result<()> {
    for ((schema, table), cols) in masks {
        for m in cols {
            if let Some(sql) = constant_probe(m) {
                src.query(&sql, &[]).map_err(|e| {
                    CloneError::InvalidOptions(format!(
                        "mask \"{}\" on column {schema}.{table}.{}: the source refuses its value for type {}: {}",
                        m.strategy.name(),
                        m.column,
                        m.type_sql,
                        e
                    ))
                })?;
            }
        }
        let items: Vec<String> = cols
            .iter()
            .map(|m| pgclone_core::mask::select_item(m, key))
            .collect();
        let probe = format!(
            "SELECT {} FROM ONLY {}",
            items.join(", "),
            pgclone_core::sqltext::qualified(schema, table)
        );
        src.prepare_only(&probe).map_err(|e| {
            CloneError::InvalidOptions(format!(
                "masks of {schema}.{table}: the source cannot evaluate them: {}",
                e
            ))
        })?;
    }
    Ok(())
}

/// Rules for the sensitive columns of a source schema, as JSON to paste
/// into the `mask` option of a schema clone: `{"table": {"col": ...}}`.
/// Read-only on the source.
/// With `sample_rows`, the first rows of each table confirm or correct
/// what the names say (only counts come back from the source).
pub fn discover(conninfo: &str, schema: &str, sample_rows: Option<i64>) -> Result<String> {
    use crate::catalog::{inventory, Scope};
    let src = crate::exec::open_source(conninfo)?;
    crate::catalog::require_schema(&src, schema)?;
    let names = [schema.to_string()];
    let inv = inventory(
        &src,
        Scope::Schemas(&names),
        pgclone_core::plan::assemble::What::Schema,
        &pgclone_core::options::Options::default(),
    )?;
    let mut sampled = std::collections::HashMap::new();
    if let Some(rows) = sample_rows.filter(|n| *n > 0) {
        for t in &inv.tables {
            let Some((sql, cells)) = pgclone_core::sensitive::sample_sql(t, rows) else {
                continue;
            };
            let row = src.query_one(&sql, &[])?;
            let counts: Vec<i64> = (0..cells.len()).map(|i| row.get(i)).collect();
            for (col, verdict) in pgclone_core::sensitive::verdicts(t, &cells, &counts) {
                sampled.insert((t.name.clone(), col), verdict);
            }
        }
    }
    src.batch("COMMIT")?;
    Ok(local::discover(&inv.tables, &sampled).to_string())
}
