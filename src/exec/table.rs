//! `pgclone.table()`: one table, in the caller's transaction.

use super::{copy_table, human_bytes};
use crate::catalog;
use crate::conn::session_setup_sql;
use crate::copy::CopySource;
use crate::ddl::renamed;
use crate::ddl::table::{render, RenderCtx};
use crate::error::{CloneError, Result};
use crate::error_report::notice;
use crate::options::{Conflict, Options, Scope};
use crate::sqltext::{check_filter, qualified, quote_ident};
use crate::target;
use std::time::Instant;

pub struct TableRequest<'a> {
    pub conninfo: &'a str,
    pub schema: &'a str,
    pub table: &'a str,
    pub include_data: bool,
    pub target_table: Option<&'a str>,
    pub options: Options,
}

/// Source sessions give up waiting for a lock after this long rather than
/// hanging behind a DDL on a busy production server.
const SOURCE_LOCK_TIMEOUT: &str = "1min";

pub fn clone_table(req: &TableRequest) -> Result<String> {
    clone_table_counted(req).map(|(summary, _, _)| summary)
}

/// `clone_table`, also returning the rows and bytes copied (for job progress).
pub fn clone_table_counted(req: &TableRequest) -> Result<(String, u64, u64)> {
    let started = Instant::now();
    let opts = &req.options;
    opts.check_scope(Scope::Table)?;
    if req.schema.is_empty() || req.table.is_empty() {
        return Err(CloneError::InvalidOptions(
            "schema and table names must not be empty".into(),
        ));
    }
    let target_name = req.target_table.unwrap_or(req.table);
    if target_name.is_empty() {
        return Err(CloneError::InvalidOptions(
            "the target table name must not be empty".into(),
        ));
    }
    if let Some(f) = &opts.where_ {
        check_filter(f).map_err(CloneError::InvalidFilter)?;
    }

    // The driver reads the catalog as UTF-8; each COPY switches the source to
    // the database encoding, which copy_into makes this session speak too.
    let encoding = target::database_encoding();
    let src = target::connect_source(
        req.conninfo,
        &session_setup_sql("UTF8", SOURCE_LOCK_TIMEOUT),
    )?;
    // One snapshot for the catalog and the data: the definition and the rows
    // belong to the same instant.
    src.batch("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
    let mut def = catalog::load(&src, req.schema, req.table)?;
    let mut notices: Vec<String> = Vec::new();
    if let Some(cols) = &opts.columns {
        let dropped = def
            .restrict_columns(cols)
            .map_err(CloneError::UndefinedColumn)?;
        if !dropped.is_empty() {
            notices.push(format!(
                "left out because they read columns that are not cloned: {}",
                dropped.join(", ")
            ));
        }
    }
    if def.is_partition || def.inherits {
        notices.push(format!(
            "{} is a child of another table on the source; it is cloned as a stand-alone table",
            qualified(&def.schema, &def.name)
        ));
    }

    let same_major = super::same_major(&src);
    let copy_src = CopySource {
        schema: def.schema.clone(),
        table: def.name.clone(),
        columns: def
            .columns
            .iter()
            .filter(|c| c.generated.is_none())
            .map(|c| c.name.clone())
            .collect(),
        filter: opts.where_.clone(),
        binary: same_major && def.binary_copy_ok(),
        pages: None,
    };
    if let Some(probe) = copy_src.filter_probe_sql() {
        src.prepare_only(&probe)
            .map_err(|e| crate::conn::filter_fault(e, true))?;
    }

    // ---- target ----
    let _guc = target::GucScope::enter(&[("search_path", ""), ("check_function_bodies", "off")]);
    let tq = qualified(req.schema, target_name);
    target::lock_schema_name(req.schema);
    if !target::schema_exists(req.schema) {
        target::run(&format!("CREATE SCHEMA {}", quote_ident(req.schema)));
        notices.push(format!(
            "schema {} created on the target",
            quote_ident(req.schema)
        ));
    }
    let existing = target::relation(req.schema, target_name);
    if !(existing.is_some() && opts.conflict == Conflict::Skip) {
        target::guard_write(req.schema)?;
    }
    if let Some((oid, kind)) = existing {
        if matches!(opts.conflict, Conflict::Replace | Conflict::Rename) {
            if let Some(ext) = target::relation_extension(oid) {
                return Err(CloneError::Permission(format!(
                    "{tq} belongs to extension {} on the target: pgclone does not drop or rename it",
                    quote_ident(&ext)
                )));
            }
        }
        match opts.conflict {
            Conflict::Error => {
                return Err(CloneError::AlreadyExists(format!(
                "relation {tq} (use the option \"conflict\": \"skip\", \"replace\" or \"rename\")"
            )))
            }
            Conflict::Skip => {
                return Ok((
                    format!("table {tq} already exists on the target: skipped"),
                    0,
                    0,
                ));
            }
            Conflict::Replace => {
                if kind != "r" && kind != "p" {
                    return Err(CloneError::AlreadyExists(format!(
                        "relation {tq}, which is not a table, so it is not replaced"
                    )));
                }
                // No CASCADE: replacing a table must never drop a user's views
                // or foreign keys behind their back; the server names them.
                target::run(&format!("DROP TABLE {tq}"));
                notices.push(format!("existing table {tq} dropped and replaced"));
            }
            Conflict::Rename => {
                let aside = move_aside(req.schema, target_name, oid);
                notices.push(format!("existing {tq} renamed to {}", quote_ident(&aside)));
            }
        }
    }

    let roles = target::existing_roles(&def.roles());
    let taken = target::relation_names(req.schema);
    let role_exists = |r: &str| roles.contains(r);
    let relation_taken = |n: &str| taken.contains(n);
    let table_exists =
        |s: &str, t: &str| target::relation(s, t).is_some_and(|(_, k)| k == "r" || k == "p");
    let ctx = RenderCtx {
        target_schema: req.schema,
        target_name,
        indexes: opts.indexes,
        constraints: opts.constraints,
        triggers: opts.triggers,
        role_exists: &role_exists,
        can_own: &target::can_own,
        relation_taken: &relation_taken,
        table_exists: &table_exists,
        standalone: true,
    };
    let script = render(&def, &ctx);
    // Privileges before the data, so the owner the COPY runs as has what it
    // has on the source.
    for sql in script.pre_data.iter().chain(&script.grants) {
        target::run(sql);
    }
    let (mut rows, mut bytes) = (0u64, 0u64);
    if req.include_data {
        (rows, bytes) = copy_table(
            &src,
            &copy_src,
            req.schema,
            target_name,
            &encoding,
            copy_src.filter.is_some(),
            script.owner.as_deref(),
        )?;
    }
    for sql in &script.post_data() {
        target::run(sql);
    }
    src.batch("COMMIT")?;

    notices.extend(script.notices.iter().cloned());
    if !script.missing_roles.is_empty() {
        notices.push(format!(
            "roles missing on the target (their ownership and grants were not carried over): {}",
            script.missing_roles.join(", ")
        ));
    }
    for n in &notices {
        notice(n);
    }
    let c = &script.counts;
    let summary = format!(
        "table {} cloned to {tq}: {rows} rows, {} {}; {} indexes, {} constraints, {} triggers, {} policies, {} sequences; {:.2} s",
        qualified(&def.schema, &def.name),
        human_bytes(bytes),
        if copy_src.binary { "binary" } else { "text" },
        c.indexes,
        c.constraints,
        c.triggers,
        c.policies,
        c.sequences,
        started.elapsed().as_secs_f64()
    );
    Ok((summary, rows, bytes))
}

/// Rename an existing table out of the way, with its indexes and owned
/// sequences, so the clone can take every one of its names.
fn move_aside(schema: &str, name: &str, oid: pgrx::pg_sys::Oid) -> String {
    let tag = target::timestamp_tag();
    let taken = target::relation_names(schema);
    let aside = renamed(&format!("_old_{tag}"), "", name, &|n| taken.contains(n));
    let mut chosen = taken.clone();
    for (dep, kind) in target::dependent_relation_names(oid) {
        let new = renamed(&dep, name, &aside, &|n| chosen.contains(n));
        chosen.insert(new.clone());
        target::run(&format!(
            "ALTER {kind} {} RENAME TO {}",
            qualified(schema, &dep),
            quote_ident(&new)
        ));
    }
    target::run(&format!(
        "ALTER TABLE {} RENAME TO {}",
        qualified(schema, name),
        quote_ident(&aside)
    ));
    aside
}
