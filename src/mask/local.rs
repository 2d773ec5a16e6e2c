//! Masking local tables: in place, behind a masked view, and the report of
//! what is masked where. Catalog reads use the same queries as a clone's,
//! run on this server.

use super::key;
use crate::catalog::{Column, Constraint, TableDef};
use crate::error::{CloneError, Result};
use crate::options::MaskSpec;
use crate::target;
use pgclone_core::catalog::table as q;
use pgclone_core::ddl::table::{compression_word, storage_word};
use pgclone_core::mask::{self, masked_value, MaskedColumn, Strategy};
use pgclone_core::sensitive;
use pgclone_core::sqltext::{qualified, quote_ident};
use pgrx::prelude::*;
use std::collections::{BTreeMap, HashMap};

fn spi(e: pgrx::spi::SpiError) -> CloneError {
    CloneError::Internal(format!("catalog: {e}"))
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| CloneError::Internal(format!("catalog: {e}")))
}

/// The first column of the first row, if there is a row.
fn first<T: pgrx::datum::FromDatum + pgrx::datum::IntoDatum>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Result<Option<T>> {
    Spi::connect(|c| {
        let mut rows = c.select(sql, Some(1), args)?;
        match rows.next() {
            Some(r) => r.get::<T>(1),
            None => Ok(None),
        }
    })
    .map_err(spi)
}

/// The rows of a (relid, JSON array) query for one relation.
fn for_relation<T: serde::de::DeserializeOwned>(sql: &str, oid: pg_sys::Oid) -> Result<Vec<T>> {
    let oids = vec![oid];
    let json: Option<String> = Spi::connect(|c| {
        let rows = c.select(sql, None, &[oids.clone().into(), oids.into()])?;
        let mut out = None;
        for r in rows {
            out = r.get::<String>(2)?;
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .map_err(spi)?;
    json.map(|j| parse(&j)).unwrap_or(Ok(Vec::new()))
}

/// A local table with its columns and keys, read as a clone reads its
/// source.
pub fn table(schema: &str, name: &str) -> Result<(pg_sys::Oid, TableDef)> {
    let json: Option<String> = first(&q::tables_sql(true), &[schema.into(), name.into()])?;
    let Some(json) = json else {
        return Err(CloneError::Internal(format!(
            "table {} does not exist here",
            qualified(schema, name)
        )));
    };
    let mut def: TableDef = parse(&json)?;
    if def.relkind != "r" {
        return Err(CloneError::NotSupported(format!(
            "{} is not a plain table",
            qualified(schema, name)
        )));
    }
    let oid = pg_sys::Oid::from(def.oid);
    let version = pg_sys::PG_VERSION_NUM as i32;
    def.columns = for_relation::<Column>(&q::columns_sql(version), oid)?;
    def.constraints = for_relation::<Constraint>(&q::constraints_sql(), oid)?;
    Ok((oid, def))
}

/// The rules of `mask_json` for one local table, checked against its
/// columns; `keys`: refuse what would break its keys or the foreign keys
/// that point at it (for masking in place; a view breaks no key).
fn rules(
    def: &TableDef,
    oid: pg_sys::Oid,
    mask_json: &str,
    keys: bool,
) -> Result<Vec<MaskedColumn>> {
    let mask: BTreeMap<String, MaskSpec> = serde_json::from_str(mask_json)
        .map_err(|e| CloneError::InvalidOptions(format!("mask: {e}")))?;
    if mask.is_empty() {
        return Err(CloneError::InvalidOptions("mask: no column to mask".into()));
    }
    let mut by_table =
        mask::rules_by_table(&mask, &[def], true).map_err(CloneError::InvalidOptions)?;
    if keys {
        let tables = HashMap::from([((def.schema.clone(), def.name.clone()), def)]);
        mask::follow_keys(&mut by_table, &tables).map_err(CloneError::InvalidOptions)?;
        // Foreign keys of other tables that point at a masked column.
        for (col, _) in by_table.values().flatten() {
            let attnum = def
                .columns
                .iter()
                .find(|c| &c.name == col)
                .map(|c| c.attnum);
            let referencing: Option<String> = Spi::get_one_with_args(
                "SELECT string_agg(conname || ' of ' || conrelid::regclass::text, ', ') \
                 FROM pg_catalog.pg_constraint WHERE contype = 'f' AND confrelid = $1 \
                   AND $2 = ANY (confkey)",
                &[oid.into(), attnum.unwrap_or(0).into()],
            )
            .map_err(spi)?;
            if let Some(r) = referencing {
                return Err(CloneError::InvalidOptions(format!(
                    "column {col} is referenced by foreign key {r}: masking it in place would break the key"
                )));
            }
        }
    }
    let mut out = Vec::new();
    for (col, strategy) in by_table.into_values().flatten() {
        let c = def
            .columns
            .iter()
            .find(|c| c.name == col)
            .ok_or_else(|| CloneError::UndefinedColumn(col.clone()))?;
        let label = format!("{}.{}.{col}", def.schema, def.name);
        out.push(mask::check(&label, c, &strategy).map_err(CloneError::InvalidOptions)?);
    }
    // Constants cast here as they would on a source.
    for m in &out {
        if let Some(probe) = mask::constant_probe(m) {
            Spi::run(&probe).map_err(|e| {
                CloneError::InvalidOptions(format!(
                    "mask \"{}\" on column {}: the value does not cast to {}: {e}",
                    m.strategy.name(),
                    m.column,
                    m.type_sql
                ))
            })?;
        }
    }
    Ok(out)
}

/// Mask a local table in one statement, run as the table's owner (its
/// checks and index expressions run with the owner's rights, never the
/// caller's), which the caller must be able to act as.
///
/// The table is rewritten (`ALTER TABLE ... ALTER COLUMN ... TYPE ...
/// USING`): new files with the masked rows and no dead row versions, its
/// indexes rebuilt, no trigger fired (an audit trigger would copy the raw
/// values elsewhere). A table that views, rules or policies read the masked
/// columns of, or that has inheritance parents or children, cannot be
/// rewritten so: it gets one UPDATE, whose old row versions stay until
/// VACUUM.
pub fn in_place(schema: &str, name: &str, mask_json: &str) -> Result<String> {
    let (oid, def) = table(schema, name)?;
    let masks = rules(&def, oid, mask_json, true)?;
    let k = key()?;
    let tq = qualified(schema, name);
    let attnums: Vec<i16> = masks
        .iter()
        .filter_map(|m| def.columns.iter().find(|c| c.name == m.column))
        .map(|c| c.attnum)
        .collect();
    let pinned: bool = first(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
           AND d.refobjid = $1 AND d.refobjsubid = ANY ($2) \
           AND d.classid IN ('pg_catalog.pg_rewrite'::pg_catalog.regclass, 'pg_catalog.pg_policy'::pg_catalog.regclass)) \
         OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits WHERE inhrelid = $1 OR inhparent = $1)",
        &[oid.into(), attnums.into()],
    )?
    .unwrap_or(true);
    let statements: Vec<String> = if pinned {
        let sets: Vec<String> = masks
            .iter()
            .map(|m| format!("{} = {}", quote_ident(&m.column), masked_value(m, &k)))
            .collect();
        vec![format!("UPDATE ONLY {tq} SET {}", sets.join(", "))]
    } else {
        rewrite(&tq, &def, &masks, &k)
    };
    let rows: i64 = target::as_role(Some(&def.owner), || -> Result<i64> {
        for sql in &statements {
            Spi::run(sql).map_err(spi)?;
        }
        Ok(first::<i64>(&format!("SELECT count(*) FROM ONLY {tq}"), &[])?.unwrap_or(0))
    })??;
    let cols: Vec<&str> = masks.iter().map(|m| m.column.as_str()).collect();
    Ok(format!(
        "table {tq} masked in place ({}): {rows} rows, columns {}",
        if pinned { "updated" } else { "rewritten" },
        cols.join(", ")
    ))
}

/// One ALTER TABLE that rewrites the masked columns, then what changing a
/// column's type resets put back (collation, storage, compression,
/// statistics target), so the table's definition is as it was.
fn rewrite(
    tq: &str,
    def: &TableDef,
    masks: &[MaskedColumn],
    k: &pgclone_core::mask::MaskKey,
) -> Vec<String> {
    let mut alter = Vec::new();
    let mut after = Vec::new();
    for m in masks {
        let Some(c) = def.columns.iter().find(|c| c.name == m.column) else {
            continue;
        };
        let col = quote_ident(&c.name);
        let collate = c
            .collation
            .as_ref()
            .map(|co| format!(" COLLATE {co}"))
            .unwrap_or_default();
        alter.push(format!(
            "ALTER COLUMN {col} TYPE {}{collate} USING {}",
            c.type_sql,
            masked_value(m, k)
        ));
        let storage = storage_word(&c.attstorage).unwrap_or("EXTENDED");
        after.push(format!("ALTER COLUMN {col} SET STORAGE {storage}"));
        if let Some(w) = c.compression.as_deref().and_then(compression_word) {
            after.push(format!("ALTER COLUMN {col} SET COMPRESSION {w}"));
        }
        after.push(format!(
            "ALTER COLUMN {col} SET STATISTICS {}",
            c.stattarget.unwrap_or(-1)
        ));
    }
    vec![
        format!("ALTER TABLE {tq} {}", alter.join(", ")),
        format!("ALTER TABLE {tq} {}", after.join(", ")),
    ]
}

/// The view of a masking policy.
fn view_name(table: &str) -> String {
    pgclone_core::ddl::truncate_name(&format!("{table}_masked"))
}

/// `<table>_masked`, a security_barrier view of the table with its masked
/// columns, for everyone who could read the table; the table itself only
/// for `privileged`. Its grants as they were are kept, to be put back by
/// `drop_policy`.
pub fn create_policy(
    schema: &str,
    name: &str,
    mask_json: &str,
    privileged: &str,
) -> Result<String> {
    let (oid, def) = table(schema, name)?;
    must_own(&def)?;
    let masks = rules(&def, oid, mask_json, false)?;
    if let Some(m) = masks.iter().find(|m| m.strategy == Strategy::Hash) {
        return Err(CloneError::InvalidOptions(format!(
            "mask \"hash\" on column {}: a view's definition is readable by every role, so a keyed hash \
             cannot keep its key there; use \"partial\", \"name\" or \"null\" in a policy, or mask_in_place()",
            m.column
        )));
    }
    if !role_exists(privileged) {
        return Err(CloneError::InvalidOptions(format!(
            "role {} does not exist",
            quote_ident(privileged)
        )));
    }
    let k = key()?;
    let items: Vec<String> = def
        .columns
        .iter()
        .map(|c| match masks.iter().find(|m| m.column == c.name) {
            Some(m) => format!("{} AS {}", masked_value(m, &k), quote_ident(&c.name)),
            None => quote_ident(&c.name),
        })
        .collect();
    let tq = qualified(schema, name);
    let view = qualified(schema, &view_name(name));
    // Who reads the table now: they read the view from now on.
    let readers: Vec<String> = Spi::connect(|c| {
        c.select(
            "SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END \
             FROM pg_catalog.pg_class r, pg_catalog.aclexplode(r.relacl) a \
             WHERE r.oid = $1 AND a.privilege_type = 'SELECT' AND a.grantee <> r.relowner",
            None,
            &[oid.into()],
        )?
        .map(|r| r.get::<String>(1).map(|v| v.unwrap_or_default()))
        .collect::<std::result::Result<Vec<_>, _>>()
    })
    .map_err(spi)?;
    let mut sql = vec![
        format!(
            "INSERT INTO pgclone.masking_policies (schema_name, table_name, view_name, relacl, column_acls, mask) \
             SELECT $1, $2, $3, r.relacl, (SELECT pg_catalog.jsonb_object_agg(a.attname, a.attacl::text) \
               FROM pg_catalog.pg_attribute a WHERE a.attrelid = r.oid AND a.attacl IS NOT NULL), $4::jsonb \
             FROM pg_catalog.pg_class r WHERE r.oid = {}",
            u32::from(oid)
        ),
        format!(
            "CREATE VIEW {view} WITH (security_barrier) AS SELECT {} FROM ONLY {tq}",
            items.join(", ")
        ),
        format!("ALTER VIEW {view} OWNER TO {}", quote_ident(&def.owner)),
        format!("REVOKE ALL ON {tq} FROM PUBLIC"),
    ];
    for g in grantees(oid)? {
        sql.push(format!("REVOKE ALL ON {tq} FROM {g}"));
    }
    let who = |g: &Option<String>| {
        g.as_deref()
            .map(quote_ident)
            .unwrap_or_else(|| "PUBLIC".into())
    };
    for c in &def.columns {
        for a in &c.acl {
            let col = quote_ident(&c.name);
            sql.push(format!(
                "REVOKE ALL ({col}) ON {tq} FROM {}",
                who(&a.grantee)
            ));
            // A reader of some columns reads the same columns of the view.
            if a.privilege == "SELECT" {
                sql.push(format!(
                    "GRANT SELECT ({col}) ON {view} TO {}",
                    who(&a.grantee)
                ));
            }
        }
    }
    sql.push(format!(
        "GRANT SELECT ON {tq} TO {}",
        quote_ident(privileged)
    ));
    for r in &readers {
        sql.push(format!("GRANT SELECT ON {view} TO {r}"));
    }
    let args = [
        schema.into(),
        name.into(),
        view_name(name).into(),
        mask_json.into(),
    ];
    // pgclone's own record, written as job state is (see jobs::state).
    let exists: bool = crate::jobs::state::privileged(|| {
        Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pgclone.masking_policies WHERE schema_name = $1 AND table_name = $2)",
            &[schema.into(), name.into()],
        )
    })
    .map_err(spi)?
    .unwrap_or(false);
    if exists {
        return Err(CloneError::AlreadyExists(format!(
            "a masking policy on {tq}"
        )));
    }
    crate::jobs::state::privileged(|| Spi::run_with_args(&sql[0], &args)).map_err(spi)?;
    for s in &sql[1..] {
        target::run(s);
    }
    Ok(format!(
        "masking policy on {tq}: view {view} for {} reader(s), the table for {}",
        readers.len(),
        quote_ident(privileged)
    ))
}

fn role_exists(role: &str) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)",
        &[role.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// Every role with a privilege on the table, but its owner.
fn grantees(oid: pg_sys::Oid) -> Result<Vec<String>> {
    Spi::connect(|c| {
        c.select(
            "SELECT DISTINCT pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) \
             FROM pg_catalog.pg_class r, pg_catalog.aclexplode(r.relacl) a \
             WHERE r.oid = $1 AND a.grantee <> 0 AND a.grantee <> r.relowner",
            None,
            &[oid.into()],
        )?
        .map(|r| r.get::<String>(1).map(|v| v.unwrap_or_default()))
        .collect::<std::result::Result<Vec<_>, _>>()
    })
    .map_err(spi)
}

/// Only the owner of a table (or a member of its owner, or a superuser)
/// changes who may read it.
fn must_own(def: &TableDef) -> Result<()> {
    if target::can_own(&def.owner) {
        Ok(())
    } else {
        Err(CloneError::Permission(format!(
            "only the owner of {} may change who reads it",
            qualified(&def.schema, &def.name)
        )))
    }
}

/// Drop the view and give the table back exactly the grants it had.
pub fn drop_policy(schema: &str, name: &str) -> Result<String> {
    let (oid, def) = table(schema, name)?;
    must_own(&def)?;
    let tq = qualified(schema, name);
    let saved: Option<(String, Option<String>, Option<pgrx::JsonB>)> =
        crate::jobs::state::privileged(|| {
            Spi::connect(|c| {
                let mut rows = c.select(
                    "SELECT view_name, relacl::text, column_acls FROM pgclone.masking_policies \
             WHERE schema_name = $1 AND table_name = $2",
                    None,
                    &[schema.into(), name.into()],
                )?;
                Ok::<_, pgrx::spi::SpiError>(match rows.next() {
                    Some(r) => Some((
                        r.get::<String>(1)?.unwrap_or_default(),
                        r.get(2)?,
                        r.get(3)?,
                    )),
                    None => None,
                })
            })
        })
        .map_err(spi)?;
    let Some((view, relacl, column_acls)) = saved else {
        return Err(CloneError::InvalidOptions(format!(
            "there is no masking policy on {tq}"
        )));
    };
    target::run(&format!("DROP VIEW IF EXISTS {}", qualified(schema, &view)));
    target::run(&format!("REVOKE ALL ON {tq} FROM PUBLIC"));
    for g in grantees(oid)? {
        target::run(&format!("REVOKE ALL ON {tq} FROM {g}"));
    }
    // The grants as they were, from the saved ACL (grant options included).
    let mut grants: Vec<String> = Vec::new();
    if let Some(acl) = relacl {
        grants.extend(acl_grants(&acl, &tq, None)?);
    }
    if let Some(pgrx::JsonB(serde_json::Value::Object(cols))) = column_acls {
        for (col, acl) in cols {
            if let Some(a) = acl.as_str() {
                grants.extend(acl_grants(a, &tq, Some(&col))?);
            }
        }
    }
    for g in &grants {
        target::run(g);
    }
    crate::jobs::state::privileged(|| {
        Spi::run_with_args(
            "DELETE FROM pgclone.masking_policies WHERE schema_name = $1 AND table_name = $2",
            &[schema.into(), name.into()],
        )
    })
    .map_err(spi)?;
    Ok(format!(
        "masking policy on {tq} dropped: view {} gone, {} grant(s) put back",
        quote_ident(&view),
        grants.len()
    ))
}

/// GRANT statements that rebuild an ACL (`aclitem[]` as text) on the table
/// or one of its columns, the owner's own entry left out.
fn acl_grants(acl: &str, tq: &str, column: Option<&str>) -> Result<Vec<String>> {
    let cols = column
        .map(|c| format!(" ({})", quote_ident(c)))
        .unwrap_or_default();
    Spi::connect(|c| {
        c.select(
            "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END, \
                    a.privilege_type, a.is_grantable \
             FROM pg_catalog.aclexplode($1::pg_catalog.aclitem[]) a, pg_catalog.pg_class r \
             WHERE r.oid = $2::pg_catalog.regclass AND a.grantee <> r.relowner",
            None,
            &[acl.into(), tq.into()],
        )?
        .map(|r| {
            let who: String = r.get(1)?.unwrap_or_default();
            let what: String = r.get(2)?.unwrap_or_default();
            let with: bool = r.get(3)?.unwrap_or(false);
            Ok(format!(
                "GRANT {what}{cols} ON {tq} TO {who}{}",
                if with { " WITH GRANT OPTION" } else { "" }
            ))
        })
        .collect::<std::result::Result<Vec<_>, pgrx::spi::SpiError>>()
    })
    .map_err(spi)
}

/// One row of masking_report.
pub struct ReportRow {
    pub schema: String,
    pub table: String,
    pub column: String,
    pub sensitivity: String,
    pub status: String,
    pub recommendation: String,
}

/// Every column of the schema's tables: what it holds, whether a masking
/// policy masks it, and what to do.
pub fn report(schema: &str) -> Result<Vec<ReportRow>> {
    let names: Vec<String> = Spi::connect(|c| {
        c.select(
            "SELECT c.relname::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY 1",
            None,
            &[schema.into()],
        )?
        .map(|r| r.get::<String>(1).map(|v| v.unwrap_or_default()))
        .collect::<std::result::Result<Vec<_>, _>>()
    })
    .map_err(spi)?;
    let mut out = Vec::new();
    for name in names {
        let (_, def) = table(schema, &name)?;
        let policy: Option<pgrx::JsonB> = crate::jobs::state::privileged(|| {
            first(
                "SELECT mask FROM pgclone.masking_policies WHERE schema_name = $1 AND table_name = $2",
                &[schema.into(), name.as_str().into()],
            )
        })?;
        let masked: Vec<String> = match &policy {
            Some(pgrx::JsonB(serde_json::Value::Object(m))) => m.keys().cloned().collect(),
            _ => Vec::new(),
        };
        for c in &def.columns {
            let found = sensitive::classify(&c.name, &c.type_facts, c.not_null);
            let in_policy = masked.contains(&c.name);
            // The words of pgclone 4.x's report, which scripts compare with.
            let (status, recommendation) = match (&found, in_policy) {
                (_, true) => (
                    format!("MASKED (view {})", view_name(&name)),
                    "none".to_string(),
                ),
                (Some(f), false) => (
                    "UNMASKED".to_string(),
                    format!("mask with {}", sensitive::to_json(&f.strategy)),
                ),
                (None, false) => ("UNMASKED".to_string(), "none".to_string()),
            };
            out.push(ReportRow {
                schema: schema.to_string(),
                table: name.clone(),
                column: c.name.clone(),
                sensitivity: found
                    .map(|f| sensitive::label(f.kind).to_string())
                    .unwrap_or_else(|| "none".into()),
                status,
                recommendation,
            });
        }
    }
    Ok(out)
}

/// Rules for the sensitive columns of the source schema's tables, as the
/// `mask` option of a schema clone takes them: `{"table": {"col": ...}}`.
/// `sampled`: what a sample of values said of a column, by (table,
/// column), over what its name says.
pub fn discover(
    tables: &[TableDef],
    sampled: &HashMap<(String, String), Option<&'static str>>,
) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for t in tables {
        let mut cols = serde_json::Map::new();
        for c in t.columns.iter().filter(|c| c.generated.is_none()) {
            let kind = match sampled.get(&(t.name.clone(), c.name.clone())) {
                Some(k) => *k,
                None => sensitive::kind_of(&c.name),
            };
            let Some(f) = kind.and_then(|k| sensitive::finding(k, &c.type_facts, c.not_null))
            else {
                continue;
            };
            let keyed = t.constraints.iter().any(|k| {
                matches!(k.kind.as_str(), "p" | "u" | "f") && k.columns.contains(&c.attnum)
            });
            // Keys keep their values apart and joins joined: only hash does.
            let mut s = if keyed { Strategy::Hash } else { f.strategy };
            let label = format!("{}.{}.{}", t.schema, t.name, c.name);
            if mask::check(&label, c, &s).is_err() {
                // A key that cannot take the hash is left to the DBA: any
                // other mask would break it.
                if keyed {
                    continue;
                }
                // Too long for the column, or not of its type: a shorter mask.
                s = if c.not_null {
                    Strategy::Name
                } else {
                    Strategy::Null
                };
                if mask::check(&label, c, &s).is_err() {
                    continue;
                }
            }
            cols.insert(c.name.clone(), sensitive::to_json(&s));
        }
        if !cols.is_empty() {
            out.insert(t.name.clone(), serde_json::Value::Object(cols));
        }
    }
    serde_json::Value::Object(out)
}
