//! Reading the source catalog: the queries of `pgclone_core::catalog` run on
//! the source session, their JSON rows turned into the core's structs.

pub use pgclone_core::catalog::*;

use crate::conn::SourceConn;
use pgclone_core::error::{CloneError, Result};
use pgclone_core::sqltext::qualified;
use serde::de::DeserializeOwned;

pub fn fetch<T: DeserializeOwned>(
    conn: &SourceConn,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<T> {
    let row = conn.query_one(sql, params)?;
    let text: String = row.get(0);
    serde_json::from_str(&text)
        .map_err(|e| CloneError::Internal(format!("unexpected catalog data: {e}")))
}

fn fetch_json<T: DeserializeOwned>(conn: &SourceConn, sql: &str, oid: u32) -> Result<T> {
    let row = conn.query_one(sql, &[&oid])?;
    let text: String = row.get(0);
    serde_json::from_str(&text)
        .map_err(|e| CloneError::Internal(format!("unexpected catalog data: {e}")))
}

/// The whole definition of `schema.name` on the source, or a clear error when
/// the schema or table is missing or the relation is not a table.
pub fn load(conn: &SourceConn, schema: &str, name: &str) -> Result<TableDef> {
    load_with(conn, schema, name, false)
}

/// As `load`; with `partitioned`, a partitioned table is accepted too (a
/// schema clone creates its partitions alongside).
pub fn load_with(
    conn: &SourceConn,
    schema: &str,
    name: &str,
    partitioned: bool,
) -> Result<TableDef> {
    let row = conn.query_opt(&table::table_sql(), &[&schema, &name])?;
    let Some(row) = row else {
        let exists = conn
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[&schema],
            )?
            .get::<_, bool>(0);
        return Err(if exists {
            CloneError::UndefinedTable(qualified(schema, name))
        } else {
            CloneError::UndefinedSchema(schema.to_string())
        });
    };
    let text: String = row.get(0);
    let mut def: TableDef = serde_json::from_str(&text)
        .map_err(|e| CloneError::Internal(format!("unexpected catalog data: {e}")))?;
    match def.relkind.as_str() {
        "r" => {}
        "p" if partitioned => {}
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
    let v = conn.server_version_num;
    def.columns = fetch_json::<Vec<Column>>(conn, &table::columns_sql(v), def.oid)?;
    def.constraints = fetch_json::<Vec<Constraint>>(conn, &table::constraints_sql(), def.oid)?;
    def.indexes = fetch_json::<Vec<Index>>(conn, &table::indexes_sql(), def.oid)?;
    def.triggers = fetch_json::<Vec<Trigger>>(conn, &table::triggers_sql(), def.oid)?;
    def.policies = fetch_json::<Vec<Policy>>(conn, &table::policies_sql(), def.oid)?;
    def.sequences = fetch_json::<Vec<OwnedSequence>>(conn, &table::sequences_sql(), def.oid)?;
    for s in &mut def.sequences {
        (s.last_value, s.is_called) = sequence_position(conn, &s.schema, &s.name)?;
    }
    Ok(def)
}

/// A sequence's last_value and is_called, as setval wants them.
pub fn sequence_position(conn: &SourceConn, schema: &str, name: &str) -> Result<(i64, bool)> {
    let row = conn.query_one(
        &format!(
            "SELECT last_value, is_called FROM {}",
            qualified(schema, name)
        ),
        &[],
    )?;
    Ok((row.get(0), row.get(1)))
}
