//! The SQL surface: argument checks, the permission check, then one call into
//! the core. No SQL text is built here.

use crate::error::CloneError;
use crate::error_report::{raise, OrRaise};
use crate::exec;
use crate::jobs;
use crate::options::Options;
use pgclone_core::plan::assemble::What;
use pgclone_core::request::Spec;
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
#[search_path(pg_catalog, pg_temp)]
fn version() -> String {
    format!("pgclone {VERSION}")
}

/// The request of a table call, checked.
#[allow(clippy::too_many_arguments)]
fn table_spec(
    schema_name: Option<&str>,
    table_name: Option<&str>,
    include_data: Option<bool>,
    target_table: Option<&str>,
    options: Option<&str>,
    flags: Option<(Option<bool>, Option<bool>, Option<bool>)>,
) -> Spec {
    let schema = required(schema_name, "schema_name");
    let table = required(table_name, "table_name");
    let include_data = required(include_data, "include_data");
    let mut options = Options::parse(options).or_raise();
    if let Some((i, c, t)) = flags {
        options.indexes = required(i, "indexes");
        options.constraints = required(c, "constraints");
        options.triggers = required(t, "triggers");
    }
    Spec {
        what: What::Table,
        schema: Some(schema.to_string()),
        table: Some(table.to_string()),
        target_table: target_table.map(str::to_string),
        include_data,
        options,
        workers: 1,
        resumed_from: None,
    }
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
    crate::target::conceal_statement(conninfo);
    let spec = table_spec(
        schema_name,
        table_name,
        include_data,
        target_table,
        options,
        flags,
    );
    exec::clone(spec, conninfo).or_raise()
}

#[pg_extern(name = "table", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
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
#[search_path(pg_catalog, pg_temp)]
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
#[search_path(pg_catalog, pg_temp)]
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
#[search_path(pg_catalog, pg_temp)]
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

/// The request of a schema, database or functions call, checked.
fn schema_spec(
    schema_name: Option<&str>,
    what: What,
    include_data: Option<bool>,
    options: Option<&str>,
    flags: Option<(Option<bool>, Option<bool>, Option<bool>)>,
) -> Spec {
    let schema = match what {
        What::Database => None,
        _ => Some(required(schema_name, "schema_name").to_string()),
    };
    let include_data = required(include_data, "include_data");
    let mut options = Options::parse(options).or_raise();
    if let Some((i, c, t)) = flags {
        options.indexes = required(i, "indexes");
        options.constraints = required(c, "constraints");
        options.triggers = required(t, "triggers");
    }
    Spec {
        what,
        schema,
        table: None,
        target_table: None,
        include_data,
        options,
        workers: 1,
        resumed_from: None,
    }
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
    crate::target::conceal_statement(conninfo);
    let spec = schema_spec(schema_name, what, include_data, options, flags);
    exec::clone(spec, conninfo).or_raise()
}

#[pg_extern(name = "schema", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
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
#[search_path(pg_catalog, pg_temp)]
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
#[search_path(pg_catalog, pg_temp)]
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
#[search_path(pg_catalog, pg_temp)]
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
#[search_path(pg_catalog, pg_temp)]
fn database_default(conninfo: Option<&str>, include_data: default!(Option<bool>, true)) -> String {
    schema_call(conninfo, None, What::Database, include_data, None, None)
}

#[pg_extern(name = "database", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
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
    crate::target::conceal_statement(conninfo);
    let target_db = required(target_db, "target_db");
    let include_data = required(include_data, "include_data");
    crate::exec::create_db::create_and_clone(conninfo, target_db, include_data, options).or_raise()
}

#[pg_extern(name = "database_create", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn database_create_default(
    conninfo: Option<&str>,
    target_db: Option<&str>,
    include_data: default!(Option<bool>, true),
) -> String {
    database_create_call(conninfo, target_db, include_data, None)
}

#[pg_extern(name = "database_create", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn database_create_options(
    conninfo: Option<&str>,
    target_db: Option<&str>,
    include_data: Option<bool>,
    options: Option<&str>,
) -> String {
    database_create_call(conninfo, target_db, include_data, options)
}

// ---- asynchronous jobs ----

fn async_call(conninfo: Option<&str>, mut spec: Spec) -> i32 {
    guarded();
    let conninfo = required(conninfo, "conninfo");
    crate::target::conceal_statement(conninfo);
    spec.check().or_raise();
    spec.workers = jobs::workers_for(&spec.options) as u32;
    jobs::start_async(&spec, conninfo).or_raise()
}

#[pg_extern(name = "table_async", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn table_async(
    conninfo: Option<&str>,
    schema_name: Option<&str>,
    table_name: Option<&str>,
    include_data: default!(Option<bool>, true),
    target_table: default!(Option<&str>, "NULL"),
    options: default!(Option<&str>, "NULL"),
) -> i32 {
    guarded();
    let spec = table_spec(
        schema_name,
        table_name,
        include_data,
        target_table,
        options,
        None,
    );
    async_call(conninfo, spec)
}

#[pg_extern(name = "schema_async", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn schema_async(
    conninfo: Option<&str>,
    schema_name: Option<&str>,
    include_data: default!(Option<bool>, true),
    options: default!(Option<&str>, "NULL"),
) -> i32 {
    guarded();
    async_call(
        conninfo,
        schema_spec(schema_name, What::Schema, include_data, options, None),
    )
}

#[pg_extern(name = "database_async", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn database_async(
    conninfo: Option<&str>,
    include_data: default!(Option<bool>, true),
    options: default!(Option<&str>, "NULL"),
) -> i32 {
    guarded();
    async_call(
        conninfo,
        schema_spec(None, What::Database, include_data, options, None),
    )
}

#[pg_extern(name = "progress", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn progress(job_id: Option<i32>) -> String {
    guarded();
    jobs::progress_json(required(job_id, "job_id")).or_raise()
}

#[pg_extern(name = "jobs", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn jobs_list() -> String {
    guarded();
    jobs::jobs_json().or_raise()
}

#[pg_extern(name = "cancel", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn cancel(job_id: Option<i32>) -> bool {
    guarded();
    jobs::cancel(required(job_id, "job_id")).or_raise()
}

#[pg_extern(name = "resume", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn resume(job_id: Option<i32>) -> i32 {
    guarded();
    jobs::resume(required(job_id, "job_id")).or_raise()
}

#[pg_extern(name = "discard", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn discard(job_id: Option<i32>) -> String {
    guarded();
    jobs::discard(required(job_id, "job_id")).or_raise()
}

#[pg_extern(name = "clear_jobs", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn clear_jobs() -> i64 {
    guarded();
    jobs::clear_jobs().or_raise()
}

fn timestamptz(text: &Option<String>) -> Option<pgrx::datum::TimestampWithTimeZone> {
    text.as_deref().and_then(|t| {
        Spi::get_one_with_args::<pgrx::datum::TimestampWithTimeZone>(
            "SELECT $1::timestamptz",
            &[t.into()],
        )
        .ok()
        .flatten()
    })
}

#[allow(clippy::type_complexity)] // pgrx reads the column names from the tuple itself
#[pg_extern(name = "progress_detail", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn progress_detail() -> TableIterator<
    'static,
    (
        name!(job_id, i32),
        name!(status, String),
        name!(op_type, String),
        name!(schema_name, Option<String>),
        name!(table_name, Option<String>),
        name!(current_phase, Option<String>),
        name!(current_table, Option<String>),
        name!(tables_total, i64),
        name!(tables_completed, i64),
        name!(rows_copied, i64),
        name!(bytes_copied, i64),
        name!(elapsed_ms, i64),
        name!(start_time, Option<pgrx::datum::TimestampWithTimeZone>),
        name!(end_time, Option<pgrx::datum::TimestampWithTimeZone>),
        name!(error_message, Option<String>),
        name!(pct_complete, f64),
        name!(progress_bar, String),
        name!(elapsed_time, String),
    ),
> {
    guarded();
    let rows = jobs::job_rows(None).or_raise();
    let out: Vec<_> = rows
        .into_iter()
        .map(|r| {
            (
                r.job_id,
                r.status,
                r.op_type,
                r.schema_name,
                r.table_name,
                r.current_phase,
                r.current_table,
                r.tables_total,
                r.tables_completed,
                r.rows_copied,
                r.bytes_copied,
                r.elapsed_ms,
                timestamptz(&r.start_time),
                timestamptz(&r.end_time),
                r.error_message,
                r.pct_complete,
                r.progress_bar,
                r.elapsed_time,
            )
        })
        .collect();
    TableIterator::new(out)
}

// ---- masking ----

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn discover_sensitive(conninfo: Option<&str>, schema_name: Option<&str>) -> String {
    guarded();
    let conninfo = required(conninfo, "conninfo");
    crate::target::conceal_statement(conninfo);
    let schema = required(schema_name, "schema_name");
    crate::mask::discover(conninfo, schema, None).or_raise()
}

/// As discover_sensitive(), with the first `sample_rows` rows of each table
/// confirming or correcting what the column names say.
#[pg_extern(name = "discover_sensitive", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn discover_sensitive_sampled(
    conninfo: Option<&str>,
    schema_name: Option<&str>,
    sample_rows: Option<i32>,
) -> String {
    guarded();
    let conninfo = required(conninfo, "conninfo");
    crate::target::conceal_statement(conninfo);
    let schema = required(schema_name, "schema_name");
    let rows = required(sample_rows, "sample_rows");
    if !(1..=1_000_000).contains(&rows) {
        crate::error_report::raise(CloneError::InvalidOptions(
            "sample_rows must be from 1 to 1000000".into(),
        ));
    }
    crate::mask::discover(conninfo, schema, Some(rows as i64)).or_raise()
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn mask_in_place(
    schema_name: Option<&str>,
    table_name: Option<&str>,
    mask_json: Option<&str>,
) -> String {
    guarded();
    crate::mask::local::in_place(
        required(schema_name, "schema_name"),
        required(table_name, "table_name"),
        required(mask_json, "mask_json"),
    )
    .or_raise()
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn create_masking_policy(
    schema_name: Option<&str>,
    table_name: Option<&str>,
    mask_json: Option<&str>,
    privileged_role: Option<&str>,
) -> String {
    guarded();
    crate::mask::local::create_policy(
        required(schema_name, "schema_name"),
        required(table_name, "table_name"),
        required(mask_json, "mask_json"),
        required(privileged_role, "privileged_role"),
    )
    .or_raise()
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn drop_masking_policy(schema_name: Option<&str>, table_name: Option<&str>) -> String {
    guarded();
    crate::mask::local::drop_policy(
        required(schema_name, "schema_name"),
        required(table_name, "table_name"),
    )
    .or_raise()
}

#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn masking_report(
    schema_name: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(schema_name, String),
        name!(table_name, String),
        name!(column_name, String),
        name!(sensitivity, String),
        name!(mask_status, String),
        name!(recommendation, String),
    ),
> {
    guarded();
    let rows = crate::mask::local::report(required(schema_name, "schema_name")).or_raise();
    TableIterator::new(rows.into_iter().map(|r| {
        (
            r.schema,
            r.table,
            r.column,
            r.sensitivity,
            r.status,
            r.recommendation,
        )
    }))
}

// ---- checks ----

/// `schema`: None for the database, Some(None) for a NULL schema name.
#[allow(clippy::type_complexity)]
fn verify_call(
    conninfo: Option<&str>,
    schema: Option<Option<&str>>,
) -> TableIterator<'static, (String, String, Option<i64>, Option<i64>, String)> {
    guarded();
    let conninfo = required(conninfo, "source_conninfo");
    crate::target::conceal_statement(conninfo);
    let schema = schema.map(|s| required(s, "schema_name"));
    let rows = crate::check::verify(conninfo, schema).or_raise();
    TableIterator::new(rows.into_iter().map(|r| {
        (
            r.schema,
            r.name,
            r.source_rows,
            r.target_rows,
            r.result.to_string(),
        )
    }))
}

/// verify(): exact counts and content checksums of every table of the
/// source database (`whole`) or schema against this one, on one snapshot
/// per side. SQL functions named `verify` wrap it (finalize.sql): a column
/// of the result is called `match`, a word the row type here cannot spell.
#[allow(clippy::type_complexity)] // pgrx reads the column names from the tuple itself
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn verify_rows(
    source_conninfo: Option<&str>,
    schema_name: Option<&str>,
    whole: Option<bool>,
) -> TableIterator<
    'static,
    (
        name!(schema_name, String),
        name!(table_name, String),
        name!(source_rows, Option<i64>),
        name!(target_rows, Option<i64>),
        name!(result, String),
    ),
> {
    let whole = required(whole, "whole");
    verify_call(source_conninfo, (!whole).then_some(schema_name))
}

/// diff(): the definitions of a schema's objects here against the source's,
/// as JSON (pgclone 4.x's keys, plus policies, functions and types).
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn diff(source_conninfo: Option<&str>, schema_name: Option<&str>) -> String {
    guarded();
    let conninfo = required(source_conninfo, "source_conninfo");
    crate::target::conceal_statement(conninfo);
    let schema = required(schema_name, "schema_name");
    crate::check::diff::diff(conninfo, schema).or_raise()
}

fn preflight_call(conninfo: Option<&str>, schema: Option<&str>, options: Option<&str>) -> String {
    guarded();
    let conninfo = required(conninfo, "source_conninfo");
    crate::target::conceal_statement(conninfo);
    let schema = required(schema, "schema_name");
    let options = Options::parse(options).or_raise();
    crate::check::preflight::preflight(conninfo, schema, &options).or_raise()
}

/// preflight(): will a clone of the schema work here, and if not, why.
/// Read-only on both sides.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn preflight(source_conninfo: Option<&str>, schema_name: Option<&str>) -> String {
    preflight_call(source_conninfo, schema_name, None)
}

/// preflight() of a clone with these options (conflict, parallel, roles,
/// tablespaces, follow).
#[pg_extern(name = "preflight", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn preflight_options(
    source_conninfo: Option<&str>,
    schema_name: Option<&str>,
    options: Option<&str>,
) -> String {
    preflight_call(source_conninfo, schema_name, options)
}

fn clone_roles_call(conninfo: Option<&str>, role_names: Option<&str>) -> String {
    guarded();
    let conninfo = required(conninfo, "source_conninfo");
    crate::target::conceal_statement(conninfo);
    crate::check::roles::clone_roles(conninfo, role_names).or_raise()
}

/// clone_roles(): every role of the source (but reserved and bootstrap
/// ones) made or updated here, with memberships, settings and grants.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn clone_roles(source_conninfo: Option<&str>) -> String {
    clone_roles_call(source_conninfo, None)
}

/// clone_roles() of the roles named (comma- or space-separated; NULL or
/// empty: all), and only their grants.
#[pg_extern(name = "clone_roles", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn clone_roles_named(source_conninfo: Option<&str>, role_names: Option<&str>) -> String {
    clone_roles_call(source_conninfo, role_names)
}
