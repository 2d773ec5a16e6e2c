//! Reading the source catalog: the queries of `pgclone_core::catalog` run on
//! the source session, each object kind in one statement for the whole
//! clone (never one per table), their JSON rows turned into the core's
//! structs.

pub use pgclone_core::catalog::*;

use crate::conn::SourceConn;
use objects as q;
use pgclone_core::error::{CloneError, Result};
use pgclone_core::plan::assemble::{matches_any, What};
use pgclone_core::plan::units::SMALL_TABLE_BYTES;
use pgclone_core::sqltext::qualified;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

fn parse<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| CloneError::Internal(format!("unexpected catalog data: {e}")))
}

/// A query whose one row is one JSON document.
pub fn fetch<T: DeserializeOwned>(
    conn: &SourceConn,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<T> {
    let row = conn.query_one(sql, params)?;
    parse(&row.get::<_, String>(0))
}

/// The rows of a query of (relid, JSON array) rows, by relation.
fn by_relation<T: DeserializeOwned>(
    rows: Vec<tokio_postgres::Row>,
) -> Result<HashMap<i64, Vec<T>>> {
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let rel: i64 = r.get(0);
        out.insert(rel, parse::<Vec<T>>(&r.get::<_, String>(1))?);
    }
    Ok(out)
}

/// The tables of the clone with everything that hangs on them, read in one
/// query per kind.
fn complete_tables(conn: &SourceConn, tables: &mut [TableDef]) -> Result<()> {
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    if oids.is_empty() {
        return Ok(());
    }
    let v = conn.server_version_num;
    // Tables whose keys may be built apart from their rows (see the plan):
    // only theirs need the keys' index definitions.
    let large: Vec<u32> = tables
        .iter()
        .filter(|t| t.bytes > SMALL_TABLE_BYTES || t.size_unknown)
        .map(|t| t.oid)
        .collect();
    type Params<'a> = &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)];
    let oids_only: Params = &[&oids];
    let sql: [(String, Params); 7] = [
        (table::columns_sql(v), oids_only),
        (table::constraints_sql(), &[&oids, &large]),
        (table::indexes_sql(), oids_only),
        (table::triggers_sql(), oids_only),
        (table::policies_sql(), oids_only),
        (table::sequences_sql(), oids_only),
        (table::default_deps_sql(), oids_only),
    ];
    let queries: Vec<(&str, Params)> = sql.iter().map(|(q, p)| (q.as_str(), *p)).collect();
    let (mut columns, mut constraints, mut indexes) = Default::default();
    let (mut triggers, mut policies, mut sequences) = Default::default();
    let mut default_deps: HashMap<i64, Vec<String>> = HashMap::new();
    // One round trip for all of them: the source works on the next kind while
    // this one's JSON is parsed here.
    conn.query_pipelined(&queries, |i, rows| {
        match i {
            0 => columns = by_relation::<Column>(rows)?,
            1 => constraints = by_relation::<Constraint>(rows)?,
            2 => indexes = by_relation::<Index>(rows)?,
            3 => triggers = by_relation::<Trigger>(rows)?,
            4 => policies = by_relation::<Policy>(rows)?,
            5 => sequences = by_relation::<OwnedSequence>(rows)?,
            _ => {
                for r in rows {
                    let keys: Option<Vec<String>> = r.get(1);
                    default_deps.insert(r.get(0), keys.unwrap_or_default());
                }
            }
        }
        Ok(())
    })?;
    // Tables never vacuumed or analyzed say nothing of their size: measure
    // them (a lock each, so only when there are not too many of them).
    let unknown: Vec<u32> = tables
        .iter()
        .filter(|t| t.size_unknown)
        .map(|t| t.oid)
        .collect();
    let mut sizes: HashMap<i64, i64> = HashMap::new();
    if !unknown.is_empty() && unknown.len() <= 2000 {
        for r in conn.query(table::table_sizes_sql(), &[&unknown])? {
            sizes.insert(r.get(0), r.get(1));
        }
    }
    for t in tables.iter_mut() {
        let oid = t.oid as i64;
        t.columns = columns.remove(&oid).unwrap_or_default();
        t.constraints = constraints.remove(&oid).unwrap_or_default();
        t.indexes = indexes.remove(&oid).unwrap_or_default();
        t.triggers = triggers.remove(&oid).unwrap_or_default();
        t.policies = policies.remove(&oid).unwrap_or_default();
        t.sequences = sequences.remove(&oid).unwrap_or_default();
        t.default_deps = default_deps.remove(&oid).unwrap_or_default();
        if let Some(b) = sizes.get(&oid) {
            t.bytes = *b;
            // The heap's own pages stay when relpages knows them (what is
            // beyond them is TOAST, which the compression sample reads).
            if t.pages == 0 {
                t.pages = *b / 8192;
            }
        }
    }
    // How the source stored the values of large TOASTed tables (a few
    // heap pages of each): see `Column::load_external`.
    for t in tables.iter_mut() {
        if let Some((sql, cols)) = table::compression_sample_sql(t, v) {
            let row = conn.query_one(&sql, &[])?;
            let counts: Vec<i64> = (0..row.len()).map(|i| row.get(i)).collect();
            table::apply_compression_sample(t, &cols, &counts);
        }
    }
    // Where each owned sequence stands, a few hundred per statement.
    let seqs: Vec<(usize, usize)> = tables
        .iter()
        .enumerate()
        .flat_map(|(i, t)| (0..t.sequences.len()).map(move |j| (i, j)))
        .collect();
    for chunk in seqs.chunks(500) {
        let list: Vec<(i64, String)> = chunk
            .iter()
            .enumerate()
            .map(|(k, (i, j))| {
                let s = &tables[*i].sequences[*j];
                (k as i64, qualified(&s.schema, &s.name))
            })
            .collect();
        for r in conn.query(&table::sequence_positions_sql(&list), &[])? {
            let k: i64 = r.get(0);
            let (i, j) = chunk[k as usize];
            let s = &mut tables[i].sequences[j];
            (s.last_value, s.is_called) = (r.get(1), r.get(2));
        }
    }
    Ok(())
}

/// The source schema `name`, or UndefinedSchema.
pub fn require_schema(conn: &SourceConn, name: &str) -> Result<()> {
    let exists: bool = conn
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
            &[&name],
        )?
        .get(0);
    if exists {
        Ok(())
    } else {
        Err(CloneError::UndefinedSchema(name.to_string()))
    }
}

/// One table by name, for a table clone, or a clear error when the schema or
/// table is missing or the relation is not a plain table.
pub fn one_table(conn: &SourceConn, schema: &str, name: &str) -> Result<TableDef> {
    let row = conn.query_opt(&table::tables_sql(true), &[&schema, &name])?;
    let Some(row) = row else {
        let exists: bool = conn
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[&schema],
            )?
            .get(0);
        return Err(if exists {
            CloneError::UndefinedTable(qualified(schema, name))
        } else {
            CloneError::UndefinedSchema(schema.to_string())
        });
    };
    let mut def: TableDef = parse(&row.get::<_, String>(0))?;
    match def.relkind.as_str() {
        "r" => {}
        "p" => {
            return Err(CloneError::NotSupported(format!(
                "{} is a partitioned table: clone it with pgclone.schema(), which copies its partitions",
                qualified(schema, name)
            )))
        }
        other => {
            let what = match other {
                "v" => "a view",
                "m" => "a materialized view",
                "S" => "a sequence",
                "f" => "a foreign table",
                "i" | "I" => "an index",
                _ => "not a table",
            };
            return Err(CloneError::NotSupported(format!(
                "{} is {what}, not a table",
                qualified(schema, name)
            )));
        }
    }
    complete_tables(conn, std::slice::from_mut(&mut def))?;
    Ok(def)
}

/// What a clone takes: one table, or some schemas.
pub enum Scope<'a> {
    Table(Box<TableDef>),
    Schemas(&'a [String]),
}

/// Everything a schema, database or functions clone reads, one query per
/// object kind for the whole clone.
pub fn inventory(
    src: &SourceConn,
    scope: Scope,
    what: What,
    opts: &pgclone_core::options::Options,
) -> Result<Inventory> {
    let names: Vec<String> = match &scope {
        Scope::Table(t) => vec![t.schema.clone()],
        Scope::Schemas(n) => n.to_vec(),
    };
    let mut inv = Inventory::default();
    if let Scope::Table(t) = scope {
        inv.tables.push(*t);
        return Ok(inv);
    }
    let all = what == What::Database;
    inv.schemas = fetch(src, &q::schemas_sql(), &[&names])?;
    inv.procs = fetch(src, &q::procs_sql(), &[&names])?;
    if what == What::Functions {
        return Ok(inv);
    }
    let foreign: String = src
        .query_one(
            "SELECT coalesce(string_agg(quote_ident(n.nspname) || '.' || quote_ident(c.relname), ', '), '') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = ANY($1) AND c.relkind = 'f'",
            &[&names],
        )?
        .get(0);
    if !foreign.is_empty() {
        return Err(CloneError::NotSupported(format!(
            "foreign tables are not cloned yet: {foreign} (leave their schema out with exclude_schemas)"
        )));
    }
    let base: String = src
        .query_one(&q::unsupported_types_sql(), &[&names])?
        .get(0);
    if !base.is_empty() {
        return Err(CloneError::NotSupported(format!(
            "base types written in C cannot be cloned: {base} (install them through their extension)"
        )));
    }
    for r in src.query(&table::tables_sql(false), &[&names])? {
        let t: TableDef = parse(&r.get::<_, String>(0))?;
        let full = format!("{}.{}", t.schema, t.name);
        if matches_any(&opts.include_tables, &full) == Some(false)
            || matches_any(&opts.exclude_tables, &full) == Some(true)
        {
            inv.left_out
                .push((format!("rel:{}", t.oid), format!("table {full}")));
            continue;
        }
        inv.tables.push(t);
    }
    complete_tables(src, &mut inv.tables)?;
    inv.types = fetch(src, &q::types_sql(), &[&names])?;
    inv.sequences = fetch(src, &q::sequences_sql(), &[&names])?;
    let list: Vec<(i64, String)> = inv
        .sequences
        .iter()
        .enumerate()
        .map(|(i, s)| (i as i64, qualified(&s.schema, &s.name)))
        .collect();
    for chunk in list.chunks(500) {
        for r in src.query(&table::sequence_positions_sql(chunk), &[])? {
            let i: i64 = r.get(0);
            let s = &mut inv.sequences[i as usize];
            (s.last_value, s.is_called) = (r.get(1), r.get(2));
        }
    }
    inv.views = fetch(src, &q::views_sql(), &[&names])?;
    let matviews: Vec<u32> = inv
        .views
        .iter()
        .filter(|v| v.kind == "m")
        .map(|v| v.oid as u32)
        .collect();
    let views: Vec<u32> = inv.views.iter().map(|v| v.oid as u32).collect();
    if !matviews.is_empty() {
        let mut idx = by_relation::<Index>(src.query(&table::indexes_sql(), &[&matviews])?)?;
        inv.matview_indexes = matviews
            .iter()
            .map(|o| (*o as i64, idx.remove(&(*o as i64)).unwrap_or_default()))
            .collect();
    }
    if !views.is_empty() {
        let mut trg = by_relation::<Trigger>(src.query(&table::triggers_sql(), &[&views])?)?;
        inv.view_triggers = views
            .iter()
            .filter_map(|o| trg.remove(&(*o as i64)).map(|t| (*o as i64, t)))
            .collect();
    }
    inv.rules = fetch(src, &q::rules_sql(), &[&names])?;
    inv.stats = fetch(src, &q::stats_sql(), &[&names])?;
    inv.collations = fetch(src, &q::collations_sql(src.server_version_num), &[&names])?;
    inv.extensions = fetch(src, &q::extensions_sql(), &[&names, &all])?;
    for c in inv.extensions.iter().flat_map(|x| x.config.iter()) {
        let cols: Vec<String> = src
            .query(
                "SELECT a.attname::text FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = t.relnamespace \
                 WHERE n.nspname = $1 AND t.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
                   AND a.attgenerated = '' ORDER BY a.attnum",
                &[&c.schema, &c.table],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        inv.extension_columns
            .push((c.schema.clone(), c.table.clone(), cols));
    }
    inv.default_acls = fetch(src, &q::default_acls_sql(), &[&names, &all])?;
    if all {
        inv.large_objects = fetch(src, &q::large_objects_sql(), &[])?;
    }
    inv.not_cloned = src.query_one(&q::not_cloned_sql(), &[&names, &all])?.get(0);
    inv.operators = fetch(src, &q::operators_sql(), &[&names])?;
    inv.ts_dicts = fetch(src, &q::ts_dicts_sql(), &[&names])?;
    inv.ts_configs = fetch(src, &q::ts_configs_sql(), &[&names])?;
    inv.casts = fetch(src, &q::casts_sql(), &[&names, &all])?;
    if all {
        inv.publications = fetch(src, &q::publications_sql(src.server_version_num), &[])?;
        inv.event_triggers = fetch(src, &q::event_triggers_sql(), &[])?;
    }
    inv.edges = src
        .query(&q::edges_sql(), &[])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    inv.key_edges = src
        .query(&q::key_edges_sql(), &[])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for r in src.query(&q::extension_members_sql(), &[])? {
        inv.aliases.insert(r.get(0), r.get(1));
    }
    // A table's own sequences are created with it.
    let owned = src.query(
        "SELECT 'rel:' || d.objid, 'rel:' || d.refobjid FROM pg_depend d JOIN pg_class s ON s.oid = d.objid \
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
           AND s.relkind = 'S' AND d.deptype IN ('a', 'i')",
        &[],
    )?;
    for r in owned {
        inv.aliases.insert(r.get(0), r.get(1));
    }
    inv.leave_out_readers();
    Ok(inv)
}
