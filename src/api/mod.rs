//! The SQL surface: argument checks, the permission check, then one call into
//! the core. No SQL text is built here.

use crate::error::CloneError;
use crate::error_report::{raise, OrRaise};
use crate::exec::schema::{clone_schemas, SchemaRequest, What};
use crate::exec::table::{clone_table, TableRequest};
use crate::options::Options;
use pgrx::prelude::*;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn required<T>(v: Option<T>, name: &'static str) -> T {
    match v {
        Some(v) => v,
        None => raise(CloneError::NullArgument(name)),
    }
}

fn guarded() {
    crate::target::check_caller().or_raise();
}

#[pg_extern(name = "version", immutable, parallel_safe)]
fn version() -> String {
    format!("pgclone {VERSION}")
}

#[allow(clippy::too_many_arguments)]
fn table_call(
    conninfo: Option<&str>,
    schema_name: Option<&str>,
    table_name: Option<&str>,
    include_data: Option<bool>,
    target_table: Option<&str>,
    options: Option<&str>,
    flags: Option<(Option<bool>, Option<bool>, Option<bool>)>,
) -> String {
    guarded();
    let conninfo = required(conninfo, "conninfo");
    let schema = required(schema_name, "schema_name");
    let table = required(table_name, "table_name");
    let include_data = required(include_data, "include_data");
    let mut options = Options::parse(options).or_raise();
    if let Some((i, c, t)) = flags {
        options.indexes = required(i, "indexes");
        options.constraints = required(c, "constraints");
        options.triggers = required(t, "triggers");
    }
    clone_table(&TableRequest {
        conninfo,
        schema,
        table,
        include_data,
        target_table,
        options,
    })
    .or_raise()
}

#[pg_extern(name = "table", volatile, parallel_unsafe)]
fn table_default(
    conninfo: Option<&str>,
    schema_name: Option<&str>,
    table_name: Option<&str>,
    include_data: default!(Option<bool>, true),
) -> String {
    table_call(
        conninfo,
        schema_name,
        table_name,
        include_data,
        None,
        None,
        None,
    )
}

#[pg_extern(name = "table", volatile, parallel_unsafe)]
fn table_target(
    conninfo: Option<&str>,
    schema_name: Option<&str>,
    table_name: Option<&str>,
    include_data: Option<bool>,
    target_table: Option<&str>,
) -> String {
    table_call(
        conninfo,
        schema_name,
        table_name,
        include_data,
        target_table,
        None,
        None,
    )
}

#[pg_extern(name = "table", volatile, parallel_unsafe)]
fn table_options(
    conninfo: Option<&str>,
    schema_name: Option<&str>,
    table_name: Option<&str>,
    include_data: Option<bool>,
    target_table: Option<&str>,
    options: Option<&str>,
) -> String {
    table_call(
        conninfo,
        schema_name,
        table_name,
        include_data,
        target_table,
        options,
        None,
    )
}

#[allow(clippy::too_many_arguments)]
#[pg_extern(name = "table_ex", volatile, parallel_unsafe)]
fn table_ex(
    conninfo: Option<&str>,
    schema_name: Option<&str>,
    table_name: Option<&str>,
    include_data: Option<bool>,
    target_table: Option<&str>,
    indexes: default!(Option<bool>, true),
    constraints: default!(Option<bool>, true),
    triggers: default!(Option<bool>, true),
) -> String {
    table_call(
        conninfo,
        schema_name,
        table_name,
        include_data,
        target_table,
        None,
        Some((indexes, constraints, triggers)),
    )
}

fn schema_call(
    conninfo: Option<&str>,
    schema_name: Option<&str>,
    what: What,
    include_data: Option<bool>,
    options: Option<&str>,
    flags: Option<(Option<bool>, Option<bool>, Option<bool>)>,
) -> String {
    guarded();
    let conninfo = required(conninfo, "conninfo");
    let schema = match what {
        What::Database => None,
        _ => Some(required(schema_name, "schema_name")),
    };
    let include_data = required(include_data, "include_data");
    let mut options = Options::parse(options).or_raise();
    if let Some((i, c, t)) = flags {
        options.indexes = required(i, "indexes");
        options.constraints = required(c, "constraints");
        options.triggers = required(t, "triggers");
    }
    clone_schemas(&SchemaRequest {
        conninfo,
        schema,
        what,
        include_data,
        options,
    })
    .or_raise()
}

#[pg_extern(name = "schema", volatile, parallel_unsafe)]
fn schema_default(
    conninfo: Option<&str>,
    schema_name: Option<&str>,
    include_data: default!(Option<bool>, true),
) -> String {
    schema_call(
        conninfo,
        schema_name,
        What::Schema,
        include_data,
        None,
        None,
    )
}

#[pg_extern(name = "schema", volatile, parallel_unsafe)]
fn schema_options(
    conninfo: Option<&str>,
    schema_name: Option<&str>,
    include_data: Option<bool>,
    options: Option<&str>,
) -> String {
    schema_call(
        conninfo,
        schema_name,
        What::Schema,
        include_data,
        options,
        None,
    )
}

#[pg_extern(name = "schema_ex", volatile, parallel_unsafe)]
fn schema_ex(
    conninfo: Option<&str>,
    schema_name: Option<&str>,
    include_data: Option<bool>,
    indexes: Option<bool>,
    constraints: Option<bool>,
    triggers: Option<bool>,
) -> String {
    schema_call(
        conninfo,
        schema_name,
        What::Schema,
        include_data,
        None,
        Some((indexes, constraints, triggers)),
    )
}

#[pg_extern(name = "functions", volatile, parallel_unsafe)]
fn functions(conninfo: Option<&str>, schema_name: Option<&str>) -> String {
    schema_call(
        conninfo,
        schema_name,
        What::Functions,
        Some(true),
        None,
        None,
    )
}

#[pg_extern(name = "database", volatile, parallel_unsafe)]
fn database_default(conninfo: Option<&str>, include_data: default!(Option<bool>, true)) -> String {
    schema_call(conninfo, None, What::Database, include_data, None, None)
}

#[pg_extern(name = "database", volatile, parallel_unsafe)]
fn database_options(
    conninfo: Option<&str>,
    include_data: Option<bool>,
    options: Option<&str>,
) -> String {
    schema_call(conninfo, None, What::Database, include_data, options, None)
}

fn database_create_call(
    conninfo: Option<&str>,
    target_db: Option<&str>,
    include_data: Option<bool>,
    options: Option<&str>,
) -> String {
    guarded();
    let conninfo = required(conninfo, "conninfo");
    let target_db = required(target_db, "target_db");
    let include_data = required(include_data, "include_data");
    crate::exec::create_db::create_and_clone(conninfo, target_db, include_data, options).or_raise()
}

#[pg_extern(name = "database_create", volatile, parallel_unsafe)]
fn database_create_default(
    conninfo: Option<&str>,
    target_db: Option<&str>,
    include_data: default!(Option<bool>, true),
) -> String {
    database_create_call(conninfo, target_db, include_data, None)
}

#[pg_extern(name = "database_create", volatile, parallel_unsafe)]
fn database_create_options(
    conninfo: Option<&str>,
    target_db: Option<&str>,
    include_data: Option<bool>,
    options: Option<&str>,
) -> String {
    database_create_call(conninfo, target_db, include_data, options)
}
