//! `schema()`, `database()` and `functions()`: every object of a set of
//! schemas, created in dependency order, then the data, then post-data.

use super::{copy_table, human_bytes, run_unit};
use crate::catalog::objects::{self as q, *};
use crate::catalog::{self, fetch, TableDef};
use crate::conn::{session_setup_sql, SourceConn};
use crate::copy::CopySource;
use crate::ddl::objects::{self as render, ObjScript, Roles};
use crate::ddl::table::{render as render_table, RenderCtx, TableScript};
use crate::ddl::undo::{undo_list, Made};
use crate::error::{CloneError, Result};
use crate::error_report::notice;
use crate::options::{Conflict, Options, Scope};
use crate::plan::units::{units, TableWork, UnitKind};
use crate::plan::{order, Node};
use crate::sqltext::{qualified, quote_ident};
use crate::target;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// One schema, everything in it.
    Schema,
    /// Every user schema of the source database.
    Database,
    /// Only the functions, procedures and aggregates of one schema.
    Functions,
}

pub struct SchemaRequest<'a> {
    pub conninfo: &'a str,
    pub schema: Option<&'a str>,
    pub what: What,
    pub include_data: bool,
    pub options: Options,
}

const SOURCE_LOCK_TIMEOUT: &str = "1min";

/// `*` matches any run of characters; everything else matches itself.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn matches_any(patterns: &Option<Vec<String>>, text: &str) -> Option<bool> {
    patterns
        .as_ref()
        .map(|ps| ps.iter().any(|p| wildcard_match(p, text)))
}

/// Which schemas of the source a database clone takes: every user schema,
/// including ones whose names merely begin with "pg".
pub fn is_user_schema(name: &str, extension_schema: Option<&str>) -> bool {
    !(name == "pg_catalog"
        || name == "information_schema"
        || name.starts_with("pg_toast")
        || name.starts_with("pg_temp_")
        || Some(name) == extension_schema)
}

struct Inventory {
    schemas: Vec<SchemaObj>,
    tables: Vec<TableDef>,
    types: Vec<TypeObj>,
    procs: Vec<ProcObj>,
    sequences: Vec<SeqObj>,
    views: Vec<ViewObj>,
    matview_indexes: Vec<(String, Vec<catalog::Index>)>,
    /// INSTEAD OF and other triggers on views.
    view_triggers: Vec<(String, Vec<catalog::Trigger>)>,
    rules: Vec<RuleObj>,
    stats: Vec<StatObj>,
    collations: Vec<CollObj>,
    extensions: Vec<ExtObj>,
    default_acls: Vec<DefaultAcl>,
    large_objects: Vec<LargeObj>,
    edges: Vec<Edge>,
    aliases: HashMap<String, String>,
    not_cloned: Vec<String>,
    operators: Vec<OperObj>,
    ts_dicts: Vec<TsDictObj>,
    ts_configs: Vec<TsConfigObj>,
    casts: Vec<CastObj>,
    event_triggers: Vec<EventTriggerObj>,
    publications: Vec<PublicationObj>,
}

fn load_inventory(
    src: &SourceConn,
    names: &[String],
    what: What,
    opts: &Options,
) -> Result<Inventory> {
    let all = what == What::Database;
    let mut inv = Inventory {
        schemas: fetch(src, &q::schemas_sql(), &[&names])?,
        tables: Vec::new(),
        types: Vec::new(),
        procs: fetch(src, &q::procs_sql(), &[&names])?,
        sequences: Vec::new(),
        views: Vec::new(),
        matview_indexes: Vec::new(),
        view_triggers: Vec::new(),
        rules: Vec::new(),
        stats: Vec::new(),
        collations: Vec::new(),
        extensions: Vec::new(),
        default_acls: Vec::new(),
        large_objects: Vec::new(),
        edges: Vec::new(),
        aliases: HashMap::new(),
        not_cloned: Vec::new(),
        operators: Vec::new(),
        ts_dicts: Vec::new(),
        ts_configs: Vec::new(),
        casts: Vec::new(),
        event_triggers: Vec::new(),
        publications: Vec::new(),
    };
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
    let rows = src.query(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p') \
           AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass \
                           AND e.objid = c.oid AND e.deptype = 'e') \
         ORDER BY 1, 2",
        &[&names],
    )?;
    for r in rows {
        let (s, t): (String, String) = (r.get(0), r.get(1));
        let full = format!("{s}.{t}");
        if matches_any(&opts.include_tables, &full) == Some(false)
            || matches_any(&opts.exclude_tables, &full) == Some(true)
        {
            continue;
        }
        inv.tables.push(catalog::load_with(src, &s, &t, true)?);
    }
    inv.types = fetch(src, &q::types_sql(), &[&names])?;
    inv.sequences = fetch(src, &q::sequences_sql(), &[&names])?;
    for s in &mut inv.sequences {
        (s.last_value, s.is_called) = catalog::sequence_position(src, &s.schema, &s.name)?;
    }
    inv.views = fetch(src, &q::views_sql(), &[&names])?;
    for v in inv.views.iter().filter(|v| v.kind == "m") {
        let idx: Vec<catalog::Index> =
            fetch(src, &catalog::table::indexes_sql(), &[&(v.oid as u32)])?;
        inv.matview_indexes
            .push((qualified(&v.schema, &v.name), idx));
    }
    for v in &inv.views {
        let trg: Vec<catalog::Trigger> =
            fetch(src, &catalog::table::triggers_sql(), &[&(v.oid as u32)])?;
        if !trg.is_empty() {
            inv.view_triggers.push((qualified(&v.schema, &v.name), trg));
        }
    }
    inv.rules = fetch(src, &q::rules_sql(), &[&names])?;
    inv.stats = fetch(src, &q::stats_sql(), &[&names])?;
    inv.collations = fetch(src, &q::collations_sql(src.server_version_num), &[&names])?;
    inv.extensions = fetch(src, &q::extensions_sql(), &[&names, &all])?;
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
    inv.edges = fetch(src, &q::edges_sql(), &[])?;
    let members: Vec<Edge> = fetch(src, &q::extension_members_sql(), &[])?;
    for m in members {
        inv.aliases.insert(m.from, m.to);
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
    Ok(inv)
}

/// What exists on the target in a schema, by name, for the conflict check.
fn target_names(schema: &str) -> HashSet<String> {
    let mut out = target::relation_names(schema);
    out.extend(target::type_and_routine_names(schema));
    out
}

/// The scope a request's options are checked against.
pub fn scope_of(what: What) -> Scope {
    if what == What::Database {
        Scope::Database
    } else {
        Scope::Schema
    }
}

/// Connect to the source and open the one read-only snapshot every read of
/// the clone goes through.
pub fn open_source(conninfo: &str) -> Result<SourceConn> {
    // The driver reads the catalog as UTF-8; each COPY switches the source to
    // the database encoding, which copy_into makes this session speak too.
    let src = target::connect_source(conninfo, &session_setup_sql("UTF8", SOURCE_LOCK_TIMEOUT))?;
    src.batch("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
    Ok(src)
}

/// The settings every statement of a clone runs under on the target.
pub fn target_settings() -> target::GucScope {
    target::GucScope::enter(&[("search_path", ""), ("check_function_bodies", "off")])
}

/// The serial clone: everything in the calling backend and its transaction,
/// so a failure leaves nothing behind. With `"parallel"` above 1 the same plan
/// goes to the worker pool instead.
pub fn clone_schemas(req: &SchemaRequest) -> Result<String> {
    req.options.check_scope(scope_of(req.what))?;
    if let Some(workers) = crate::jobs::pool_size(&req.options)? {
        return crate::jobs::run_sync(
            &crate::jobs::JobRequest::schemas(req, workers),
            req.conninfo,
        );
    }
    let src = open_source(req.conninfo)?;
    let _guc = target_settings();
    let mut p = prepare(&src, req, true, false)?;
    p.phases.mark("schema");
    let (mut rows, mut bytes) = p.copy_extras(&src, req.include_data)?;
    let units = units(&p.table_work(req), 0, 1);
    for u in units.iter().filter(|u| u.kind == UnitKind::Copy) {
        let (r, b) = run_unit(&src, u, &p.encoding, false)?;
        rows += r;
        bytes += b;
    }
    p.phases.mark("copy");
    for kind in [UnitKind::Index, UnitKind::Keys] {
        for u in units.iter().filter(|u| u.kind == kind) {
            run_unit(&src, u, &p.encoding, false)?;
        }
    }
    p.finish(&src, req)?;
    src.batch("COMMIT")?;
    p.phases.mark("post-data");
    Ok(p.summary(req, rows, bytes))
}

/// A clone read and rendered, ready to run.
pub struct Prepared {
    inv: Inventory,
    table_scripts: Vec<TableScript>,
    ordered: Vec<String>,
    scripts: HashMap<String, ObjScript>,
    roles_there: HashSet<String>,
    notices: Vec<String>,
    pub encoding: String,
    same_major: bool,
    started: Instant,
    pub phases: Phases,
    /// A job refreshes materialized views as units of its data stage.
    pub refresh_in_units: bool,
    /// What takes back the pre-data (a job's, for discard()), oldest first.
    pub undo: Vec<String>,
    /// Run when the job completes: dropping a schema it replaced.
    pub on_success: Vec<String>,
}

/// Objects the pre-data creates in schemas that existed before (those in
/// new schemas go with their schema).
fn made_in_existing_schemas(inv: &Inventory, created: &HashSet<String>) -> Vec<Made> {
    let old = |s: &str| !created.contains(s);
    let mut out = Vec::new();
    for c in inv.collations.iter().filter(|c| old(&c.schema)) {
        out.push(Made::Collation(c.schema.clone(), c.name.clone()));
    }
    for t in inv.types.iter().filter(|t| old(&t.schema)) {
        out.push(Made::Type {
            domain: t.kind == "d",
            schema: t.schema.clone(),
            name: t.name.clone(),
        });
    }
    for q in inv.sequences.iter().filter(|q| old(&q.schema)) {
        out.push(Made::Relation {
            kind: "S".into(),
            schema: q.schema.clone(),
            name: q.name.clone(),
        });
    }
    for p in inv.procs.iter().filter(|p| old(&p.schema)) {
        out.push(Made::Routine {
            kind: p.kind.clone(),
            schema: p.schema.clone(),
            name: p.name.clone(),
            args: p.identity_args.clone(),
        });
    }
    for d in inv.ts_dicts.iter().filter(|d| old(&d.schema)) {
        out.push(Made::TsDictionary(d.schema.clone(), d.name.clone()));
    }
    for c in inv.ts_configs.iter().filter(|c| old(&c.schema)) {
        out.push(Made::TsConfiguration(c.schema.clone(), c.name.clone()));
    }
    for o in inv.operators.iter().filter(|o| old(&o.schema)) {
        out.push(Made::Operator(o.signature.clone()));
    }
    for c in &inv.casts {
        out.push(Made::Cast(c.source.clone(), c.target.clone()));
    }
    for t in inv.tables.iter().filter(|t| old(&t.schema)) {
        out.push(Made::Relation {
            kind: t.relkind.clone(),
            schema: t.schema.clone(),
            name: t.name.clone(),
        });
    }
    for v in inv.views.iter().filter(|v| old(&v.schema)) {
        out.push(Made::Relation {
            kind: v.kind.clone(),
            schema: v.schema.clone(),
            name: v.name.clone(),
        });
    }
    out
}

/// The materialized views populated on the source, in dependency order.
fn refreshes(inv: &Inventory, ordered: &[String], req: &SchemaRequest) -> Vec<(String, String)> {
    if !(req.options.matviews && req.include_data) {
        return Vec::new();
    }
    let populated: HashMap<String, &ViewObj> = inv
        .views
        .iter()
        .filter(|v| v.kind == "m" && v.populated)
        .map(|v| (format!("rel:{}", v.oid), v))
        .collect();
    ordered
        .iter()
        .filter_map(|k| populated.get(k))
        .map(|v| (v.schema.clone(), v.name.clone()))
        .collect()
}

/// Read the source catalog (in the snapshot `src` holds), settle conflicts
/// and render every object. With `create`, the pre-data DDL is run too; a
/// resumed job, whose pre-data is already in, passes false.
/// In a job (`in_job`), whose pre-data commits before its data, what the
/// pre-data makes is recorded for `discard()`, and a schema to be replaced
/// is only set aside until the job completes.
pub fn prepare(
    src: &SourceConn,
    req: &SchemaRequest,
    create: bool,
    in_job: bool,
) -> Result<Prepared> {
    let started = Instant::now();
    let opts = &req.options;
    let encoding = target::database_encoding();

    let mut names: Vec<String> = match (req.what, req.schema) {
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
            all.into_iter()
                .filter(|n| is_user_schema(n, ext_schema.as_deref()))
                .filter(|n| matches_any(&opts.include_schemas, n) != Some(false))
                .filter(|n| matches_any(&opts.exclude_schemas, n) != Some(true))
                .collect()
        }
        (_, Some(s)) => {
            let exists: bool = src
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                    &[&s],
                )?
                .get(0);
            if !exists {
                return Err(CloneError::UndefinedSchema(s.to_string()));
            }
            vec![s.to_string()]
        }
        (_, None) => return Err(CloneError::NullArgument("schema_name")),
    };

    let mut notices: Vec<String> = Vec::new();
    let mut made: Vec<Made> = Vec::new();
    let mut on_success: Vec<String> = Vec::new();

    // Conflicts are settled before anything is created.
    let mut existing: HashSet<String> = HashSet::new();
    if req.what != What::Functions && create {
        let mut keep = Vec::new();
        for s in &names {
            // Two clones making the same schema at once: the second waits
            // for the first, then finds the schema there.
            target::lock_schema_name(s);
            if !target::schema_exists(s) {
                keep.push(s.clone());
                continue;
            }
            match opts.conflict {
                Conflict::Skip => {}
                Conflict::Replace | Conflict::Rename => target::guard_drop_schema(s)?,
                Conflict::Error => target::guard_write(s)?,
            }
            match opts.conflict {
                Conflict::Skip => {
                    notices.push(format!(
                        "schema {} exists on the target: skipped",
                        quote_ident(s)
                    ));
                    continue;
                }
                Conflict::Replace if !in_job => {
                    target::run(&format!("DROP SCHEMA {} CASCADE", quote_ident(s)));
                    notices.push(format!("schema {} dropped and replaced", quote_ident(s)));
                }
                Conflict::Replace => {
                    // A job commits as it goes: the old schema waits aside
                    // until the job completes, so discard() can bring it back.
                    let aside = format!("{s}_replaced_{}", target::timestamp_tag());
                    target::run(&format!(
                        "ALTER SCHEMA {} RENAME TO {}",
                        quote_ident(s),
                        quote_ident(&aside)
                    ));
                    made.push(Made::SetAside(s.clone(), aside.clone()));
                    on_success.push(format!("DROP SCHEMA {} CASCADE", quote_ident(&aside)));
                    notices.push(format!("schema {} dropped and replaced", quote_ident(s)));
                }
                Conflict::Rename => {
                    let aside = format!("{s}_old_{}", target::timestamp_tag());
                    target::run(&format!(
                        "ALTER SCHEMA {} RENAME TO {}",
                        quote_ident(s),
                        quote_ident(&aside)
                    ));
                    made.push(Made::SetAside(s.clone(), aside.clone()));
                    notices.push(format!(
                        "existing schema {} renamed to {}",
                        quote_ident(s),
                        quote_ident(&aside)
                    ));
                }
                Conflict::Error => {
                    existing.insert(s.clone());
                }
            }
            keep.push(s.clone());
        }
        names = keep;
    }
    let inv = load_inventory(src, &names, req.what, opts)?;
    if opts.conflict == Conflict::Error && create {
        let mut clashes = Vec::new();
        for s in names.iter().filter(|s| existing.contains(*s)) {
            let there = target_names(s);
            let here = inv
                .tables
                .iter()
                .filter(|t| &t.schema == s)
                .map(|t| t.name.clone())
                .chain(
                    inv.views
                        .iter()
                        .filter(|v| &v.schema == s)
                        .map(|v| v.name.clone()),
                )
                .chain(
                    inv.sequences
                        .iter()
                        .filter(|v| &v.schema == s)
                        .map(|v| v.name.clone()),
                )
                .chain(
                    inv.types
                        .iter()
                        .filter(|v| &v.schema == s)
                        .map(|v| v.name.clone()),
                );
            clashes.extend(here.filter(|n| there.contains(n)).map(|n| qualified(s, &n)));
        }
        if !clashes.is_empty() {
            clashes.sort();
            clashes.truncate(10);
            return Err(CloneError::AlreadyExists(format!(
                "objects of the same name: {} (use the option \"conflict\": \"skip\", \"replace\" or \"rename\")",
                clashes.join(", ")
            )));
        }
    }

    // Roles
    let mut role_names: Vec<String> = inv.tables.iter().flat_map(|t| t.roles()).collect();
    role_names.extend(inv.schemas.iter().map(|s| s.owner.clone()));
    role_names.extend(inv.types.iter().map(|t| t.owner.clone()));
    role_names.extend(inv.procs.iter().map(|p| p.owner.clone()));
    role_names.extend(inv.sequences.iter().map(|p| p.owner.clone()));
    role_names.extend(inv.views.iter().map(|p| p.owner.clone()));
    role_names.extend(inv.large_objects.iter().map(|p| p.owner.clone()));
    role_names.extend(inv.default_acls.iter().map(|p| p.role.clone()));
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
    role_names.extend(acls.filter_map(|a| a.grantee.clone()));
    role_names.sort();
    role_names.dedup();
    let roles_there = target::existing_roles(&role_names);
    let role_exists = |r: &str| roles_there.contains(r);
    let roles = Roles {
        exists: &role_exists,
        can_own: &target::can_own,
    };

    // Render every object; key → script.
    let mut nodes: Vec<Node> = Vec::new();
    let mut scripts: HashMap<String, ObjScript> = HashMap::new();
    let mut add = |key: String, rank: u8, name: String, script: ObjScript| {
        nodes.push(Node {
            key: key.clone(),
            rank,
            name,
        });
        scripts.insert(key, script);
    };
    let mut created_schemas: HashSet<String> = HashSet::new();
    for s in &inv.schemas {
        let there = existing.contains(&s.name) || target::schema_exists(&s.name);
        if !there {
            created_schemas.insert(s.name.clone());
            made.push(Made::Schema(s.name.clone()));
        }
        add(
            format!("nsp:{}", s.oid),
            0,
            s.name.clone(),
            render::schema(s, there, &roles),
        );
    }
    let installed = target::installed_extensions();
    for x in inv
        .extensions
        .iter()
        .filter(|x| !installed.contains(&x.name))
    {
        made.push(Made::Extension(x.name.clone()));
    }
    for x in &inv.extensions {
        add(
            format!("ext:{}", x.oid),
            1,
            x.name.clone(),
            render::extension(x),
        );
    }
    for c in &inv.collations {
        add(
            format!("coll:{}", c.oid),
            2,
            c.name.clone(),
            render::collation(c, &roles),
        );
    }
    for t in &inv.types {
        add(
            format!("type:{}", t.oid),
            3,
            t.name.clone(),
            render::type_(t, &roles),
        );
    }
    for s in &inv.sequences {
        add(
            format!("rel:{}", s.oid),
            4,
            s.name.clone(),
            render::sequence(s, &roles),
        );
    }
    for p in &inv.procs {
        let rank = if p.kind == "a" { 6 } else { 5 };
        add(
            format!("proc:{}", p.oid),
            rank,
            p.name.clone(),
            render::proc_(p, &roles),
        );
    }
    for d in &inv.ts_dicts {
        add(
            format!("tsdict:{}", d.oid),
            4,
            d.name.clone(),
            render::ts_dictionary(d, &roles),
        );
    }
    for c in &inv.ts_configs {
        add(
            format!("tscfg:{}", c.oid),
            4,
            c.name.clone(),
            render::ts_configuration(c, &roles),
        );
    }
    for o in &inv.operators {
        add(
            format!("oper:{}", o.oid),
            6,
            o.name.clone(),
            render::operator(o, &roles),
        );
    }
    for c in &inv.casts {
        add(
            format!("cast:{}", c.oid),
            6,
            format!("{} AS {}", c.source, c.target),
            render::cast(c),
        );
    }
    let cloned_tables: HashSet<(String, String)> = inv
        .tables
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect();
    let mut table_scripts: Vec<TableScript> = Vec::new();
    for t in &inv.tables {
        // Names are kept as on the source; nothing is renamed.
        let relation_taken = |_: &str| false;
        let table_exists = |s: &str, n: &str| {
            cloned_tables.contains(&(s.to_string(), n.to_string()))
                || target::relation(s, n).is_some_and(|(_, k)| k == "r" || k == "p")
        };
        let ctx = RenderCtx {
            target_schema: &t.schema,
            target_name: &t.name,
            indexes: opts.indexes,
            constraints: opts.constraints,
            triggers: opts.triggers,
            role_exists: &role_exists,
            can_own: &target::can_own,
            relation_taken: &relation_taken,
            table_exists: &table_exists,
            standalone: false,
        };
        let script = render_table(t, &ctx);
        add(
            format!("rel:{}", t.oid),
            7,
            t.name.clone(),
            ObjScript {
                create: script.pre_data.clone(),
                ..Default::default()
            },
        );
        table_scripts.push(script);
    }
    for v in &inv.views {
        let rank = if v.kind == "m" { 9 } else { 8 };
        add(
            format!("rel:{}", v.oid),
            rank,
            v.name.clone(),
            render::view(v, &roles),
        );
    }
    let resolve = |k: &str| inv.aliases.get(k).cloned().unwrap_or_else(|| k.to_string());
    let deps: Vec<(String, String)> = inv
        .edges
        .iter()
        .map(|e| (resolve(&e.from), resolve(&e.to)))
        .collect();
    let ordered = order(&nodes, &deps).map_err(|stuck| {
        CloneError::NotSupported(format!(
            "a dependency cycle pgclone cannot break among: {}",
            stuck.join(", ")
        ))
    })?;

    if in_job {
        made.extend(made_in_existing_schemas(&inv, &created_schemas));
    }

    let mut phases = Phases {
        last: Some(started),
        spent: Vec::new(),
    };
    phases.mark("catalog");
    let same_major = super::same_major(src);
    let p = Prepared {
        inv,
        table_scripts,
        ordered,
        scripts,
        roles_there,
        notices,
        encoding,
        same_major,
        started,
        phases,
        refresh_in_units: false,
        undo: undo_list(&made),
        on_success,
    };
    if create {
        p.create_pre_data();
    }
    Ok(p)
}

impl Prepared {
    fn create_pre_data(&self) {
        // ---- pre-data, in dependency order ----
        for key in &self.ordered {
            for sql in &self.scripts[key].create {
                target::run(sql);
            }
        }
        for s in &self.table_scripts {
            for sql in &s.defaults {
                target::run(sql);
            }
        }
        // Privileges once every object exists and before any data, so what
        // runs as an owner in the data stage has what it has on the source.
        for key in &self.ordered {
            for sql in &self.scripts[key].grants {
                target::run(sql);
            }
        }
        for s in &self.table_scripts {
            for sql in &s.grants {
                target::run(sql);
            }
        }
    }

    /// `REFRESH MATERIALIZED VIEW` statements, in order, for a job's data stage.
    pub fn refresh_sql(&self, req: &SchemaRequest) -> Vec<(String, String, String)> {
        refreshes(&self.inv, &self.ordered, req)
            .into_iter()
            .map(|(s, n)| {
                let sql = format!("REFRESH MATERIALIZED VIEW {}", qualified(&s, &n));
                (s, n, sql)
            })
            .collect()
    }

    /// The tables of the data stage: what to copy and which indexes follow.
    pub fn table_work(&self, req: &SchemaRequest) -> Vec<TableWork> {
        let opts = &req.options;
        self.inv
            .tables
            .iter()
            .zip(&self.table_scripts)
            .map(|(t, script)| {
                let full = format!("{}.{}", t.schema, t.name);
                let copy = (req.include_data
                    && t.relkind == "r"
                    && matches_any(&opts.exclude_table_data, &full) != Some(true))
                .then(|| CopySource {
                    schema: t.schema.clone(),
                    table: t.name.clone(),
                    columns: script.copy_columns.clone(),
                    filter: None,
                    binary: self.same_major && t.binary_copy_ok(),
                    pages: None,
                });
                // In groups that several workers can build at once when the
                // table has data (where the time goes); in order otherwise.
                let (index_groups, keys_after) = match &script.key_builds {
                    Some(b) if copy.is_some() => (b.builds.clone(), b.after.clone()),
                    _ => (vec![script.keys.clone()], Vec::new()),
                };
                TableWork {
                    schema: t.schema.clone(),
                    name: t.name.clone(),
                    copy,
                    index_groups,
                    keys_after,
                    bytes: t.bytes,
                    pages: t.bytes / 8192,
                    owner: script.owner.clone(),
                }
            })
            .collect()
    }

    /// Data that is not a table's: extension configuration rows and large
    /// objects (their contents, or empty ones without data).
    pub fn copy_extras(&self, src: &SourceConn, include_data: bool) -> Result<(u64, u64)> {
        let (mut rows, mut bytes) = (0u64, 0u64);
        if include_data {
            for x in &self.inv.extensions {
                for c in &x.config {
                    let (r, b) = copy_extension_config(src, c, &self.encoding)?;
                    rows += r;
                    bytes += b;
                }
            }
            for lo in &self.inv.large_objects {
                bytes += copy_large_object(src, lo.oid)?;
            }
        } else {
            for lo in &self.inv.large_objects {
                target::run(&format!("SELECT pg_catalog.lo_create({})", lo.oid));
            }
        }
        Ok((rows, bytes))
    }

    /// Everything after the data and the tables' own indexes: partition
    /// index attaches, foreign keys, triggers, rules, policies, matviews,
    /// grants, comments, large object metadata, publications, event triggers.
    pub fn finish(&mut self, src: &SourceConn, req: &SchemaRequest) -> Result<()> {
        let _ = src;
        let opts = &req.options;
        let inv = &self.inv;
        let table_scripts = &self.table_scripts;
        let ordered = &self.ordered;
        let scripts = &self.scripts;
        let roles_there = &self.roles_there;
        let role_exists = |r: &str| roles_there.contains(r);
        let roles = Roles {
            exists: &role_exists,
            can_own: &target::can_own,
        };
        let notices = &mut self.notices;
        let phases = &mut self.phases;
        // ---- post-data ----
        for (_, idx) in &inv.matview_indexes {
            for i in idx {
                target::run(&i.def);
            }
        }
        for s in table_scripts {
            s.attach.iter().for_each(|q| target::run(q));
        }
        phases.mark("indexes");
        for s in table_scripts {
            s.fks.iter().for_each(|q| target::run(q));
        }
        phases.mark("constraints");
        for s in table_scripts {
            s.rest.iter().for_each(|q| target::run(q));
        }
        if opts.triggers || req.what != What::Functions {
            for r in &inv.rules {
                render::rule(r).iter().for_each(|q| target::run(q));
            }
        }
        if opts.triggers {
            for (view, triggers) in &inv.view_triggers {
                for t in triggers {
                    target::run(&t.def);
                    if let Some(state) = crate::ddl::enable_state(&t.enabled, "TRIGGER") {
                        target::run(&format!(
                            "ALTER TABLE {view} {state} {}",
                            quote_ident(&t.name)
                        ));
                    }
                    let what = format!("TRIGGER {} ON {view}", quote_ident(&t.name));
                    if let Some(c) = crate::ddl::comment(&what, &t.comment) {
                        target::run(&c);
                    }
                }
            }
        }
        let mut stat_scripts = Vec::new();
        for s in &inv.stats {
            let sc = render::statistics(s, &roles);
            sc.create.iter().for_each(|q| target::run(q));
            stat_scripts.push(sc);
        }
        if !self.refresh_in_units {
            for (schema, name) in refreshes(inv, ordered, req) {
                target::run(&format!(
                    "REFRESH MATERIALIZED VIEW {}",
                    qualified(&schema, &name)
                ));
            }
        }
        for (name, idx) in &inv.matview_indexes {
            for i in idx {
                let iq = qualified(
                    name.split('.').next().unwrap_or("").trim_matches('"'),
                    &i.name,
                );
                if let Some(c) = crate::ddl::comment(&format!("INDEX {iq}"), &i.comment) {
                    target::run(&c);
                }
            }
        }
        let mut missing: Vec<String> = Vec::new();
        for key in ordered {
            let s = &scripts[key];
            s.after.iter().for_each(|q| target::run(q));
            missing.extend(s.missing_roles.iter().cloned());
            notices.extend(s.notices.iter().cloned());
        }
        for s in &stat_scripts {
            s.grants.iter().chain(&s.after).for_each(|q| target::run(q));
        }
        for lo in &inv.large_objects {
            let obj = format!("LARGE OBJECT {}", lo.oid);
            let ok = role_exists(&lo.owner) && target::can_own(&lo.owner);
            if ok {
                target::run(&format!("ALTER {obj} OWNER TO {}", quote_ident(&lo.owner)));
            } else {
                missing.push(lo.owner.clone());
            }
            for g in crate::ddl::acl_statements(
                &obj,
                None,
                ok.then_some(lo.owner.as_str()),
                &lo.acl,
                lo.acl_null,
                &role_exists,
                &mut missing,
            ) {
                target::run(&g);
            }
            if let Some(c) = crate::ddl::comment(&obj, &lo.comment) {
                target::run(&c);
            }
        }
        for d in &inv.default_acls {
            for sql in render::default_acl(d, &roles, &mut missing) {
                target::run(&sql);
            }
        }
        for p in &inv.publications {
            let s = render::publication(p, &roles);
            s.create
                .iter()
                .chain(&s.grants)
                .chain(&s.after)
                .for_each(|q| target::run(q));
            missing.extend(s.missing_roles);
        }
        // Event triggers come last: they fire on DDL, and must not fire on the clone's own.
        for e in &inv.event_triggers {
            let s = render::event_trigger(e, &roles);
            s.create
                .iter()
                .chain(&s.grants)
                .chain(&s.after)
                .for_each(|q| target::run(q));
            missing.extend(s.missing_roles);
        }
        missing_done(notices, &mut missing, table_scripts, inv);
        Ok(())
    }

    /// The one-line result: what was made, rows, bytes, time per phase.
    pub fn summary(&self, req: &SchemaRequest, rows: u64, bytes: u64) -> String {
        let inv = &self.inv;
        let table_scripts = &self.table_scripts;
        for n in &self.notices {
            notice(n);
        }

        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        counts.insert("schemas", inv.schemas.len());
        counts.insert("tables", inv.tables.len());
        counts.insert("views", inv.views.len());
        counts.insert("routines", inv.procs.len());
        counts.insert("types", inv.types.len());
        counts.insert(
            "sequences",
            inv.sequences.len()
                + table_scripts
                    .iter()
                    .map(|s| s.counts.sequences)
                    .sum::<usize>(),
        );
        counts.insert(
            "indexes",
            table_scripts
                .iter()
                .map(|s| s.counts.indexes)
                .sum::<usize>()
                + inv
                    .matview_indexes
                    .iter()
                    .map(|(_, i)| i.len())
                    .sum::<usize>(),
        );
        counts.insert("extensions", inv.extensions.len());
        counts.insert("large objects", inv.large_objects.len());
        let what = match req.what {
            What::Database => "database".to_string(),
            What::Schema => format!("schema {}", quote_ident(req.schema.unwrap_or_default())),
            What::Functions => format!(
                "functions of schema {}",
                quote_ident(req.schema.unwrap_or_default())
            ),
        };
        let list: Vec<String> = counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        format!(
            "{what} cloned: {}; {rows} rows, {}; {:.2} s ({})",
            if list.is_empty() {
                "nothing to clone".to_string()
            } else {
                list.join(", ")
            },
            human_bytes(bytes),
            self.started.elapsed().as_secs_f64(),
            self.phases.summary()
        )
    }
}

/// Table notices and missing roles join the clone's notices once post-data is done.
fn missing_done(
    notices: &mut Vec<String>,
    missing: &mut Vec<String>,
    table_scripts: &[TableScript],
    inv: &Inventory,
) {
    for s in table_scripts {
        notices.extend(s.notices.iter().cloned());
        missing.extend(s.missing_roles.iter().cloned());
    }
    if !inv.not_cloned.is_empty() {
        notices.push(format!(
            "not cloned (pgclone does not create these kinds yet): {}",
            inv.not_cloned.join(", ")
        ));
    }
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        notices.push(format!(
            "roles missing on the target (their ownership and grants were not carried over): {}",
            missing.join(", ")
        ));
    }
}

/// Wall time per phase of a clone, for the summary.
pub struct Phases {
    last: Option<Instant>,
    pub spent: Vec<(&'static str, f64)>,
}

impl Phases {
    pub fn mark(&mut self, phase: &'static str) {
        let now = Instant::now();
        if let Some(prev) = self.last {
            self.spent.push((phase, (now - prev).as_secs_f64()));
        }
        self.last = Some(now);
    }

    fn summary(&self) -> String {
        self.spent
            .iter()
            .map(|(p, s)| format!("{p} {s:.1} s"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn copy_extension_config(src: &SourceConn, c: &ExtConfig, encoding: &str) -> Result<(u64, u64)> {
    let cols: Vec<String> = src
        .query(
            "SELECT a.attname::text FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = t.relnamespace \
             WHERE n.nspname = $1 AND t.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' \
             ORDER BY a.attnum",
            &[&c.schema, &c.table],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let filter = c.condition.as_ref().map(|w| {
        let t = w.trim();
        t.strip_prefix("WHERE")
            .or_else(|| t.strip_prefix("where"))
            .unwrap_or(t)
            .trim()
            .to_string()
    });
    let copy_src = CopySource {
        schema: c.schema.clone(),
        table: c.table.clone(),
        columns: cols.clone(),
        filter: filter.filter(|f| !f.is_empty()),
        binary: false,
        pages: None,
    };
    if target::relation(&c.schema, &c.table).is_none() {
        return Ok((0, 0));
    }
    copy_table(src, &copy_src, &c.schema, &c.table, encoding, false, None)
}

/// One large object, in 1 MB pieces so memory stays bounded.
fn copy_large_object(src: &SourceConn, oid: i64) -> Result<u64> {
    const PIECE: i32 = 1 << 20;
    target::run(&format!("SELECT pg_catalog.lo_create({oid})"));
    let o = oid as u32;
    let mut offset: i64 = 0;
    loop {
        let row = src.query_one("SELECT lo_get($1, $2, $3)", &[&o, &offset, &PIECE])?;
        let data: Vec<u8> = row.get(0);
        if data.is_empty() {
            break;
        }
        target::lo_put(o, offset, &data);
        offset += data.len() as i64;
        if data.len() < PIECE as usize {
            break;
        }
    }
    Ok(offset as u64)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("sales*", "sales_2024"));
        assert!(wildcard_match("*", "x"));
        assert!(wildcard_match("a*b*c", "aXXbYc"));
        assert!(!wildcard_match("sales*", "hr"));
        assert!(wildcard_match("public.t", "public.t"));
        assert!(!wildcard_match("public.t", "public.tt"));
    }

    #[test]
    fn schema_selection_keeps_pg_prefixed_user_schemas() {
        assert!(is_user_schema("pgdata", Some("pgclone")));
        assert!(is_user_schema("pg_app", None));
        assert!(is_user_schema("public", None));
        assert!(!is_user_schema("pg_catalog", None));
        assert!(!is_user_schema("information_schema", None));
        assert!(!is_user_schema("pg_toast", None));
        assert!(!is_user_schema("pg_toast_temp_1", None));
        assert!(!is_user_schema("pg_temp_3", None));
        assert!(!is_user_schema("pgclone", Some("pgclone")));
    }
}
