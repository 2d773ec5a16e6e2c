//! Reading a clone and laying it out: the source's catalog, the target's
//! facts, conflicts settled, everything rendered and planned. The same for
//! every clone; a job runs it in its coordinator, a serial clone in the
//! caller's backend.

use crate::catalog::{self, Inventory, Scope};
use crate::conn::SourceConn;
use crate::error::{CloneError, Result};
use crate::target;
use pgclone_core::ddl::renamed;
use pgclone_core::ddl::undo::{undo_list, Made};
use pgclone_core::mask::Masks;
use pgclone_core::options::Conflict;
use pgclone_core::plan::assemble::{
    assemble, before_event_triggers, is_user_schema, matches_any, Ask, Counts, Facts, What,
};
use pgclone_core::plan::units::{build, Plan, PlanInput, Settings, SplitBasis};
use pgclone_core::request::Spec;
use pgclone_core::sqltext::{check_filter, qualified, quote_ident};
use std::collections::HashSet;

/// A clone read and planned, ready to run.
pub struct Prepared {
    pub plan: Plan,
    /// What takes back what the plan makes (a job's, for discard()).
    pub undo: Vec<String>,
    pub notices: Vec<String>,
    pub counts: Counts,
    /// "schema \"s\" cloned", "table \"s\".\"t\" cloned to ...", for the summary.
    pub what: String,
    /// Nothing to do (a table that exists, with conflict skip).
    pub skipped: Option<String>,
}

/// The catalog's rows and the inventory are freed by now, but the C
/// allocator keeps their pages: at 20 000 tables some 40 MB that a job's
/// coordinator would hold through the whole clone. Hand them back.
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap memory; it is safe to
    // call at any time from the thread that owns the heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Is the source on the target's major version? Binary COPY needs it.
pub fn same_major(src: &SourceConn) -> bool {
    src.server_version_num / 10000 == target::server_version_num() / 10000
}

/// The schemas a schema or database clone takes on the source.
pub fn schema_names(src: &SourceConn, spec: &Spec) -> Result<Vec<String>> {
    let opts = &spec.options;
    match (spec.what, spec.schema.as_deref()) {
        (What::Database, _) => {
            let ext_schema: Option<String> = src
                .query_opt(
                    "SELECT n.nspname::text FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace \
                     WHERE x.extname = 'pgclone'",
                    &[],
                )?
                .map(|r| r.get(0));
            let all: Vec<String> = src
                .query("SELECT nspname::text FROM pg_namespace ORDER BY 1", &[])?
                .iter()
                .map(|r| r.get(0))
                .collect();
            Ok(all
                .into_iter()
                .filter(|n| is_user_schema(n, ext_schema.as_deref()))
                .filter(|n| matches_any(&opts.include_schemas, n) != Some(false))
                .filter(|n| matches_any(&opts.exclude_schemas, n) != Some(true))
                .collect())
        }
        (_, Some(s)) => {
            catalog::require_schema(src, s)?;
            Ok(vec![s.to_string()])
        }
        (_, None) => Err(CloneError::NullArgument("schema_name")),
    }
}

/// What the conflict settling of schemas did, for the plan and discard().
#[derive(Default)]
struct Settled {
    keep: Vec<String>,
    existing: HashSet<String>,
    made: Vec<Made>,
    on_success: Vec<String>,
    notices: Vec<String>,
}

/// Settle the schema-level conflicts, in the current transaction. A job
/// commits as it goes, so a schema it replaces is set aside until it
/// completes (discard() can bring it back).
fn settle_schemas(names: Vec<String>, spec: &Spec, in_job: bool) -> Result<Settled> {
    let mut out = Settled::default();
    for s in names {
        // Two clones making the same schema at once: the second waits for the
        // first, then finds the schema there.
        target::lock_schema_name(&s);
        if !target::schema_exists(&s) {
            out.keep.push(s);
            continue;
        }
        let q = quote_ident(&s);
        match spec.options.conflict {
            Conflict::Skip => {
                out.notices
                    .push(format!("schema {q} exists on the target: skipped"));
                continue;
            }
            Conflict::Replace | Conflict::Rename => target::guard_drop_schema(&s)?,
            Conflict::Error => target::guard_write(&s)?,
        }
        match spec.options.conflict {
            Conflict::Replace if !in_job => {
                target::run(&format!("DROP SCHEMA {q} CASCADE"));
                out.notices.push(format!("schema {q} dropped and replaced"));
            }
            Conflict::Replace | Conflict::Rename => {
                let replace = spec.options.conflict == Conflict::Replace;
                let word = if replace { "replaced" } else { "old" };
                let aside = format!("{s}_{word}_{}", target::timestamp_tag());
                target::run(&format!(
                    "ALTER SCHEMA {q} RENAME TO {}",
                    quote_ident(&aside)
                ));
                out.made.push(Made::SetAside(s.clone(), aside.clone()));
                if replace {
                    out.on_success
                        .push(format!("DROP SCHEMA {} CASCADE", quote_ident(&aside)));
                    out.notices.push(format!("schema {q} dropped and replaced"));
                } else {
                    out.notices.push(format!(
                        "existing schema {q} renamed to {}",
                        quote_ident(&aside)
                    ));
                }
            }
            _ => {
                out.existing.insert(s.clone());
            }
        }
        out.keep.push(s);
    }
    Ok(out)
}

/// Routines on the target in these schemas, by (schema, name, identity
/// arguments).
fn routines_there(schemas: &[String]) -> HashSet<(String, String, String)> {
    pgrx::Spi::connect(|c| {
        let rows = c.select(
            "SELECT n.nspname::text, p.proname::text, pg_catalog.pg_get_function_identity_arguments(p.oid) \
             FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = ANY($1)",
            None,
            &[schemas.to_vec().into()],
        )?;
        let mut out = HashSet::new();
        for r in rows {
            if let (Some(a), Some(b), Some(c)) = (r.get::<String>(1)?, r.get::<String>(2)?, r.get::<String>(3)?) {
                out.insert((a, b, c));
            }
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_default()
}

/// With conflict "error", objects of the same name in an existing schema
/// (routines: of the same signature) stop the clone before anything is made.
fn clashes(
    inv: &Inventory,
    existing: &HashSet<String>,
    routines: &HashSet<(String, String, String)>,
) -> Result<()> {
    let mut found: Vec<String> = inv
        .procs
        .iter()
        .filter(|p| existing.contains(&p.schema))
        .filter(|p| routines.contains(&(p.schema.clone(), p.name.clone(), p.identity_args.clone())))
        .map(|p| format!("{}({})", qualified(&p.schema, &p.name), p.identity_args))
        .collect();
    for s in existing {
        let mut there = target::relation_names(s);
        there.extend(target::type_and_routine_names(s));
        let here = inv
            .tables
            .iter()
            .filter(|t| &t.schema == s)
            .map(|t| &t.name)
            .chain(inv.views.iter().filter(|v| &v.schema == s).map(|v| &v.name))
            .chain(
                inv.sequences
                    .iter()
                    .filter(|v| &v.schema == s)
                    .map(|v| &v.name),
            )
            .chain(inv.types.iter().filter(|v| &v.schema == s).map(|v| &v.name));
        found.extend(here.filter(|n| there.contains(*n)).map(|n| qualified(s, n)));
    }
    if found.is_empty() {
        return Ok(());
    }
    found.sort();
    found.truncate(10);
    Err(CloneError::AlreadyExists(format!(
        "objects of the same name: {} (use the option \"conflict\": \"skip\", \"replace\" or \"rename\")",
        found.join(", ")
    )))
}

/// The role set the inventory names, and which of them exist here and may
/// be given objects by the caller.
fn role_facts(inv: &Inventory, facts: &mut Facts) {
    let names = needed_roles(inv);
    facts.roles_there = target::existing_roles(&names);
    facts.can_own = facts
        .roles_there
        .iter()
        .filter(|r| target::can_own(r))
        .cloned()
        .collect();
}

/// Every role the inventory names: owners, grantees, default privileges.
fn needed_roles(inv: &Inventory) -> Vec<String> {
    let mut names: Vec<String> = inv.tables.iter().flat_map(|t| t.roles()).collect();
    names.extend(inv.schemas.iter().map(|s| s.owner.clone()));
    names.extend(inv.types.iter().map(|t| t.owner.clone()));
    names.extend(inv.procs.iter().map(|p| p.owner.clone()));
    names.extend(inv.sequences.iter().map(|p| p.owner.clone()));
    names.extend(inv.views.iter().map(|p| p.owner.clone()));
    names.extend(inv.large_objects.iter().map(|p| p.owner.clone()));
    names.extend(inv.default_acls.iter().map(|p| p.role.clone()));
    names.extend(inv.collations.iter().map(|p| p.owner.clone()));
    names.extend(inv.operators.iter().map(|p| p.owner.clone()));
    names.extend(inv.ts_dicts.iter().map(|p| p.owner.clone()));
    names.extend(inv.ts_configs.iter().map(|p| p.owner.clone()));
    names.extend(inv.stats.iter().map(|p| p.owner.clone()));
    names.extend(inv.event_triggers.iter().map(|p| p.owner.clone()));
    names.extend(inv.publications.iter().map(|p| p.owner.clone()));
    let acls = inv
        .schemas
        .iter()
        .flat_map(|s| s.acl.iter())
        .chain(inv.types.iter().flat_map(|s| s.acl.iter()))
        .chain(inv.procs.iter().flat_map(|s| s.acl.iter()))
        .chain(inv.sequences.iter().flat_map(|s| s.acl.iter()))
        .chain(inv.views.iter().flat_map(|s| s.acl.iter()))
        .chain(inv.large_objects.iter().flat_map(|s| s.acl.iter()))
        .chain(inv.default_acls.iter().flat_map(|s| s.acl.iter()));
    names.extend(acls.filter_map(|a| a.grantee.clone()));
    names.sort();
    names.dedup();
    names
}

/// What this server offers of each extension the clone must create; an
/// extension it has no package for is refused here, before anything is
/// made, rather than at its CREATE EXTENSION halfway through.
fn extension_facts(
    inv: &Inventory,
    installed: &HashSet<String>,
) -> Result<std::collections::HashMap<String, (String, Vec<String>)>> {
    let needed: Vec<String> = inv
        .extensions
        .iter()
        .filter(|x| !installed.contains(&x.name))
        .map(|x| x.name.clone())
        .collect();
    if needed.is_empty() {
        return Ok(Default::default());
    }
    let available = target::available_extensions(&needed);
    let missing: Vec<String> = inv
        .extensions
        .iter()
        .filter(|x| needed.contains(&x.name) && !available.contains_key(&x.name))
        .map(|x| format!("{} (version {} on the source)", x.name, x.version))
        .collect();
    if !missing.is_empty() {
        return Err(CloneError::NotSupported(format!(
            "extensions the source uses are not available on this server: {}; install their packages here first",
            missing.join(", ")
        )));
    }
    Ok(available)
}

/// Where each tablespace the source's tables use goes here. A mapping to
/// a tablespace that does not exist is refused before anything is made.
fn tablespace_facts(
    inv: &Inventory,
    opts: &pgclone_core::options::Options,
) -> Result<std::collections::HashMap<String, Option<String>>> {
    if let Some(map) = &opts.tablespaces {
        for (from, to) in map {
            if to != "pg_default" && !crate::exec::tablespace_exists(to) {
                return Err(CloneError::InvalidOptions(format!(
                    "option \"tablespaces\": tablespace \"{to}\" (for \"{from}\") does not exist here"
                )));
            }
        }
    }
    Ok(inv
        .tables
        .iter()
        .filter_map(|t| t.tablespace.clone())
        .map(|ts| {
            let here = crate::exec::tablespace_here(&ts, opts);
            (ts, here)
        })
        .collect())
}

/// A table clone's conflicts, in the current transaction; None: go on,
/// Some(text): nothing to do (skip).
fn settle_table(
    spec: &Spec,
    schema: &str,
    name: &str,
    in_job: bool,
    made: &mut Vec<Made>,
    on_success: &mut Vec<String>,
    notices: &mut Vec<String>,
) -> Result<Option<String>> {
    let opts = &spec.options;
    let tq = qualified(schema, name);
    target::lock_schema_name(schema);
    let existing = target::relation(schema, name);
    if !(existing.is_some() && opts.conflict == Conflict::Skip) {
        target::guard_write(schema)?;
    }
    let Some((oid, kind)) = existing else {
        return Ok(None);
    };
    if matches!(opts.conflict, Conflict::Replace | Conflict::Rename) {
        if let Some(ext) = target::relation_extension(oid) {
            return Err(CloneError::Permission(format!(
                "{tq} belongs to extension {} on the target: pgclone does not drop or rename it",
                quote_ident(&ext)
            )));
        }
    }
    match opts.conflict {
        Conflict::Error => Err(CloneError::AlreadyExists(format!(
            "relation {tq} (use the option \"conflict\": \"skip\", \"replace\" or \"rename\")"
        ))),
        Conflict::Skip => Ok(Some(format!(
            "table {tq} already exists on the target: skipped"
        ))),
        Conflict::Replace if kind != "r" && kind != "p" => Err(CloneError::AlreadyExists(format!(
            "relation {tq}, which is not a table, so it is not replaced"
        ))),
        Conflict::Replace if !in_job => {
            // No CASCADE: replacing a table must never drop a user's views or
            // foreign keys behind their back; the server names them.
            target::run(&format!("DROP TABLE {tq}"));
            notices.push(format!("existing table {tq} dropped and replaced"));
            Ok(None)
        }
        Conflict::Replace | Conflict::Rename => {
            let (aside, back) = move_aside(schema, name, oid);
            made.extend(back.into_iter().map(Made::Undo));
            if opts.conflict == Conflict::Replace {
                on_success.push(format!("DROP TABLE {}", qualified(schema, &aside)));
                notices.push(format!("existing table {tq} dropped and replaced"));
            } else {
                notices.push(format!("existing {tq} renamed to {}", quote_ident(&aside)));
            }
            Ok(None)
        }
    }
}

/// Rename an existing table out of the way, with its indexes and owned
/// sequences, so the clone can take every one of its names. Returns the new
/// name and the statements that rename everything back.
fn move_aside(schema: &str, name: &str, oid: pgrx::pg_sys::Oid) -> (String, Vec<String>) {
    let tag = target::timestamp_tag();
    let taken = target::relation_names(schema);
    let aside = renamed(&format!("_old_{tag}"), "", name, &|n| taken.contains(n));
    let mut chosen = taken.clone();
    let mut back = Vec::new();
    for (dep, kind) in target::dependent_relation_names(oid) {
        let new = renamed(&dep, name, &aside, &|n| chosen.contains(n));
        chosen.insert(new.clone());
        target::run(&format!(
            "ALTER {kind} {} RENAME TO {}",
            qualified(schema, &dep),
            quote_ident(&new)
        ));
        back.push(format!(
            "ALTER {kind} {} RENAME TO {}",
            qualified(schema, &new),
            quote_ident(&dep)
        ));
    }
    target::run(&format!(
        "ALTER TABLE {} RENAME TO {}",
        qualified(schema, name),
        quote_ident(&aside)
    ));
    back.push(format!(
        "ALTER TABLE {} RENAME TO {}",
        qualified(schema, &aside),
        quote_ident(name)
    ));
    (aside, back)
}

/// The layout of a clone's work for `workers` workers.
pub fn settings(spec: &Spec, one_transaction: bool) -> Settings {
    Settings {
        workers: spec.workers.max(1),
        one_transaction,
        split_larger_than: spec.options.split_tables_larger_than.map(|b| b.0 as i64),
        ..Settings::default()
    }
}

/// Read the source (in the snapshot `src` holds), settle conflicts on the
/// target, render and plan. `in_job`: the plan runs as a job, which commits
/// unit by unit; otherwise in the current transaction.
/// What reading a clone gathers besides the inventory.
#[derive(Default)]
struct Gathered {
    notices: Vec<String>,
    made: Vec<Made>,
    /// Run once the clone has succeeded (dropping what it replaced).
    on_success: Vec<String>,
    facts: Facts,
}

/// What a clone reads and how its summary names it, or (a table that exists,
/// with conflict skip) why there is nothing to do.
type Scoped = std::result::Result<(Inventory, String), (String, String)>;

pub fn prepare(src: &SourceConn, spec: &Spec, in_job: bool) -> Result<Prepared> {
    let mut g = Gathered {
        facts: Facts {
            extensions_there: target::installed_extensions(),
            ..Facts::default()
        },
        ..Gathered::default()
    };
    let scoped = if spec.what == What::Table {
        table_scope(src, spec, in_job, &mut g)?
    } else {
        Ok(schemas_scope(src, spec, in_job, &mut g)?)
    };
    let (mut inv, what) = match scoped {
        Ok(s) => s,
        Err((what, skip)) => {
            return Ok(Prepared {
                plan: Plan::default(),
                undo: Vec::new(),
                notices: g.notices,
                counts: Counts::default(),
                what,
                skipped: Some(skip),
            })
        }
    };
    inv.drop_privileges(catalog::unknown_privileges(target::server_version_num()));
    if spec.options.roles {
        let notices = crate::check::roles::clone_needed(src, &needed_roles(&inv))?;
        g.notices.extend(notices);
    }
    role_facts(&inv, &mut g.facts);
    g.facts.tablespaces = tablespace_facts(&inv, &spec.options)?;
    g.facts.extensions_available = extension_facts(&inv, &g.facts.extensions_there)?;
    let masks = masks(src, spec, &inv)?;
    let ask = Ask {
        what: spec.what,
        include_data: spec.include_data,
        options: &spec.options,
        same_major: same_major(src),
        target_name: spec.target_table.as_deref(),
        in_job,
        masks: Some(&masks),
    };
    let mut assembled = assemble(inv, &g.facts, &ask).map_err(|stuck| {
        CloneError::NotSupported(format!(
            "a dependency cycle pgclone cannot break among: {}",
            stuck.join(", ")
        ))
    })?;
    let set = settings(spec, !in_job);
    key_ranges(src, &mut assembled.input, &set)?;
    // What the clone replaced goes at the end, before the event triggers are
    // made (they would fire on the drop), in the same transaction as the
    // rest of the end: a job that fails before it still has it to give back.
    before_event_triggers(
        &mut assembled.input.last,
        "what the clone replaced",
        std::mem::take(&mut g.on_success),
    );
    let plan = build(std::mem::take(&mut assembled.input), &set);
    give_back_freed_memory();
    g.notices.extend(std::mem::take(&mut assembled.notices));
    g.made.extend(assembled.made);
    Ok(Prepared {
        plan,
        undo: undo_list(&g.made),
        notices: g.notices,
        counts: assembled.counts,
        what,
        skipped: None,
    })
}

/// The clone's masks, checked against the columns' types here and against
/// the source's own casts there, before anything is made.
fn masks(src: &SourceConn, spec: &Spec, inv: &Inventory) -> Result<Masks> {
    let opts = &spec.options;
    if opts.mask.is_none() && !opts.require_masks {
        return Ok(Masks::new());
    }
    let masks = pgclone_core::mask::plan(
        opts.mask.as_ref(),
        opts.require_masks,
        &inv.tables,
        spec.what == What::Table,
    )
    .map_err(CloneError::InvalidOptions)?;
    if !masks.is_empty() {
        crate::mask::check_on_source(src, &masks, &crate::mask::key()?)?;
    }
    Ok(masks)
}

/// A table clone: the table read by name (its columns narrowed, its filter
/// checked on the source), its conflict settled, and its schema made when
/// the target lacks it.
fn table_scope(src: &SourceConn, spec: &Spec, in_job: bool, g: &mut Gathered) -> Result<Scoped> {
    let opts = &spec.options;
    let schema = spec.schema.as_deref().unwrap_or_default();
    let table = spec.table.as_deref().unwrap_or_default();
    let target_name = spec.target_table.as_deref().unwrap_or(table);
    if schema.is_empty() || table.is_empty() || target_name.is_empty() {
        return Err(CloneError::InvalidOptions(
            "schema and table names must not be empty".into(),
        ));
    }
    if let Some(f) = &opts.where_ {
        check_filter(f).map_err(CloneError::InvalidFilter)?;
    }
    let mut def = catalog::one_table(src, schema, table)?;
    if let Some(cols) = &opts.columns {
        let dropped = def
            .restrict_columns(cols)
            .map_err(CloneError::UndefinedColumn)?;
        if !dropped.is_empty() {
            g.notices.push(format!(
                "left out because they read columns that are not cloned: {}",
                dropped.join(", ")
            ));
        }
    }
    if def.is_partition || def.inherits {
        g.notices.push(format!(
            "{} is a child of another table on the source; it is cloned as a stand-alone table",
            qualified(&def.schema, &def.name)
        ));
    }
    if let Some(f) = &opts.where_ {
        let probe = format!(
            "SELECT 1 FROM ONLY {} WHERE (\n{f}\n)",
            qualified(&def.schema, &def.name)
        );
        src.prepare_only(&probe)
            .map_err(|e| crate::conn::filter_fault(e, true))?;
    }
    let what = format!(
        "table {} cloned to {}",
        qualified(schema, table),
        qualified(schema, target_name)
    );
    let settled = settle_table(
        spec,
        schema,
        target_name,
        in_job,
        &mut g.made,
        &mut g.on_success,
        &mut g.notices,
    )?;
    if let Some(skip) = settled {
        return Ok(Err((what, skip)));
    }
    let facts = &mut g.facts;
    if target::schema_exists(schema) {
        facts.schemas_there.insert(schema.to_string());
    }
    facts.relations_taken = target::relation_names(schema);
    for c in def.constraints.iter().filter(|c| c.kind == "f") {
        if let (Some(s), Some(t)) = (&c.ref_schema, &c.ref_table) {
            if target::relation(s, t).is_some_and(|(_, k)| k == "r" || k == "p") {
                facts.tables_there.insert((s.clone(), t.clone()));
            }
        }
    }
    let table_key = format!("rel:{}", def.oid);
    let mut inv = catalog::inventory(src, Scope::Table(Box::new(def)), What::Table, opts)?;
    if !facts.schemas_there.contains(schema) {
        // A table clone makes its schema when it is missing, owned by the caller.
        inv.schemas.push(pgclone_core::catalog::objects::SchemaObj {
            oid: 0,
            name: schema.to_string(),
            owner: target::current_role(),
            acl: Vec::new(),
            acl_null: true,
            comment: None,
        });
        inv.edges.push((table_key, "nsp:0".into()));
        g.notices.push(format!(
            "schema {} created on the target",
            quote_ident(schema)
        ));
    }
    Ok(Ok((inv, what)))
}

/// A schema, database or functions clone: the schemas settled against the
/// target's, then read whole.
fn schemas_scope(
    src: &SourceConn,
    spec: &Spec,
    in_job: bool,
    g: &mut Gathered,
) -> Result<(Inventory, String)> {
    let opts = &spec.options;
    let names = schema_names(src, spec)?;
    let settled = if spec.what == What::Functions {
        Settled {
            keep: names,
            ..Settled::default()
        }
    } else {
        settle_schemas(names, spec, in_job)?
    };
    g.made.extend(settled.made);
    g.on_success.extend(settled.on_success);
    g.notices.extend(settled.notices);
    let inv = catalog::inventory(src, Scope::Schemas(&settled.keep), spec.what, opts)?;
    let facts = &mut g.facts;
    facts.routines_there = routines_there(&settled.keep);
    if spec.what == What::Functions {
        for s in &settled.keep {
            target::guard_write(s)?;
        }
    } else if opts.conflict == Conflict::Error {
        clashes(&inv, &settled.existing, &facts.routines_there)?;
    }
    for s in &settled.keep {
        if target::schema_exists(s) {
            facts.schemas_there.insert(s.clone());
        }
    }
    let schema = quote_ident(spec.schema.as_deref().unwrap_or_default());
    let what = match spec.what {
        What::Database => "database cloned".to_string(),
        What::Functions => format!("functions of schema {schema} cloned"),
        _ => format!("schema {schema} cloned"),
    };
    Ok((inv, what))
}

/// A table cut by key ranges needs the key's range on the source (a renamed
/// clone's table has its source name there).
fn key_ranges(src: &SourceConn, input: &mut PlanInput, set: &Settings) -> Result<()> {
    let total: i64 = input
        .tables
        .values()
        .filter(|t| t.copy.is_some())
        .map(|t| t.bytes)
        .sum();
    for t in input.tables.values_mut() {
        let parts =
            pgclone_core::plan::units::parts(t.bytes, total, set.workers, set.split_larger_than);
        if parts < 2 {
            continue;
        }
        let Some(source) = &t.copy else { continue };
        let SplitBasis::Key { column, .. } = &t.split else {
            continue;
        };
        let row = src.query_one(
            &format!(
                "SELECT min({c})::int8, max({c})::int8 FROM ONLY {}",
                qualified(&source.schema, &source.table),
                c = quote_ident(column)
            ),
            &[],
        )?;
        let (min, max): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
        t.split = match (min, max) {
            (Some(min), Some(max)) => SplitBasis::Key {
                column: column.clone(),
                min,
                max,
            },
            _ => SplitBasis::None,
        };
    }
    Ok(())
}
