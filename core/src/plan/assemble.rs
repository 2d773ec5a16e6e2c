//! From what was read (the source's inventory, facts about the target) to
//! the input of the plan: every object rendered, ordered by its
//! dependencies, and placed. Pure.

use super::units::{CopyStep, ObjectNode, PlanInput, Refresh, SplitBasis, TableNode};
use super::{order, Node};
use crate::catalog::{Inventory, TableDef};
use crate::copy::CopySource;
use crate::ddl::objects::{self as render, ObjScript, Roles};
use crate::ddl::table::{render as render_table, RenderCtx};
use crate::ddl::undo::Made;
use crate::ddl::{acl_statements, comment, enable_state};
use crate::options::Options;
use crate::sqltext::{qualified, quote_ident};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Tables from this size on are analyzed as soon as they are loaded, in
/// their unit. Smaller ones are left to autovacuum, which analyzes a table
/// once 50 rows have changed: the planner estimates a table of a few pages
/// well from its size alone, and ANALYZE of a tiny table costs about as much
/// as loading it (13 % of the load of 2000 tables of 500 rows).
pub const ANALYZE_FROM_BYTES: i64 = 1 << 20;

/// What kind of clone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum What {
    /// One table (perhaps under another name).
    Table,
    /// One schema, everything in it.
    Schema,
    /// Every user schema of the source database.
    Database,
    /// Only the functions, procedures and aggregates of one schema.
    Functions,
}

impl What {
    pub fn as_str(self) -> &'static str {
        match self {
            What::Table => "table",
            What::Schema => "schema",
            What::Database => "database",
            What::Functions => "functions",
        }
    }
}

/// Facts about the target that decide how things are rendered.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Schemas present on the target now (after conflicts were settled).
    pub schemas_there: HashSet<String>,
    pub roles_there: HashSet<String>,
    /// Roles the caller may give objects to.
    pub can_own: HashSet<String>,
    pub extensions_there: HashSet<String>,
    /// Extensions this server's packages offer: (default version, versions).
    pub extensions_available: HashMap<String, (String, Vec<String>)>,
    /// Relation names in use in the target schema (a renamed table clone
    /// picks fresh index and sequence names).
    pub relations_taken: HashSet<String>,
    /// Tables on the target (for the foreign keys of a table clone).
    pub tables_there: HashSet<(String, String)>,
    /// Routines already on the target, by (schema, name, identity arguments):
    /// a clone replaces them (CREATE OR REPLACE), so discard() must not drop them.
    pub routines_there: HashSet<(String, String, String)>,
    /// Source tablespace → tablespace here (None: the database's default).
    pub tablespaces: std::collections::HashMap<String, Option<String>>,
}

/// What was asked, beyond the inventory.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    pub what: What,
    pub include_data: bool,
    pub options: &'a Options,
    /// Binary COPY: both servers share a major version.
    pub same_major: bool,
    /// A table clone's name on the target.
    pub target_name: Option<&'a str>,
    /// Record what the clone makes, for discard().
    pub in_job: bool,
    /// Masked columns, by source table (see `mask::plan`).
    pub masks: Option<&'a crate::mask::Masks>,
}

/// How many of each kind a clone makes, for its summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts(pub BTreeMap<&'static str, usize>);

/// The plan's input and what goes with it.
#[derive(Debug, Clone, Default)]
pub struct Assembled {
    pub input: PlanInput,
    /// What the clone makes that did not exist (for discard()).
    pub made: Vec<Made>,
    pub notices: Vec<String>,
    pub counts: Counts,
}

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

/// Does any pattern match? None when there are no patterns.
pub fn matches_any(patterns: &Option<Vec<String>>, text: &str) -> Option<bool> {
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

/// "1.5 MB", for summaries.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} bytes")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

struct Nodes {
    list: Vec<Node>,
    objects: HashMap<String, ObjectNode>,
    scripts: HashMap<String, ObjScript>,
}

impl Nodes {
    fn add(
        &mut self,
        key: String,
        rank: u8,
        name: String,
        about: String,
        s: ObjScript,
        after_tables: bool,
    ) {
        self.list.push(Node {
            key: key.clone(),
            rank,
            name,
        });
        self.objects.insert(
            key.clone(),
            ObjectNode {
                key: key.clone(),
                about,
                create: s.create.clone(),
                grants: s.grants.clone(),
                after_tables,
            },
        );
        self.scripts.insert(key, s);
    }
}

/// Render everything and lay it out for the plan.
/// Takes the inventory: each table's definition is dropped as soon as its
/// node is made, so the two are never both whole in memory.
pub fn assemble(mut inv: Inventory, facts: &Facts, ask: &Ask) -> Result<Assembled, Vec<String>> {
    let role_exists = |r: &str| facts.roles_there.contains(r);
    let can_own = |r: &str| facts.can_own.contains(r);
    let roles = Roles {
        exists: &role_exists,
        can_own: &can_own,
    };
    let mut out = Assembled {
        notices: std::mem::take(&mut inv.notices),
        ..Assembled::default()
    };
    let (mut nodes, created_schemas) = object_nodes(&inv, facts, &roles, &mut out.made);
    let made_before = if ask.in_job {
        made_in_existing_schemas(&inv, &created_schemas, ask, facts)
    } else {
        Vec::new()
    };
    let table_defs = std::mem::take(&mut inv.tables);
    let inv = &inv;
    for t in &table_defs {
        nodes.list.push(Node {
            key: format!("rel:{}", t.oid),
            rank: 7,
            name: t.name.clone(),
        });
    }
    let (ordered, deps) = order_nodes(inv, &nodes.list)?;
    let position: HashMap<&str, usize> = ordered
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();

    let mut missing: Vec<String> = Vec::new();
    let mut table_counts = TableCounts {
        tables: table_defs.len(),
        ..TableCounts::default()
    };
    let tables = {
        let mut tl = Tables {
            inv,
            facts,
            ask,
            position: &position,
            cloned: table_defs
                .iter()
                .map(|t| (t.schema.clone(), t.name.clone()))
                .collect(),
            key_of: table_defs
                .iter()
                .map(|t| ((t.schema.clone(), t.name.clone()), format!("rel:{}", t.oid)))
                .collect(),
            notices: &mut out.notices,
            missing: &mut missing,
            counts: &mut table_counts,
        };
        // Each table's script goes straight into its node (moved, not copied):
        // at 20 000 tables the scripts are most of the plan's memory.
        let mut tables: HashMap<String, TableNode> = HashMap::with_capacity(table_defs.len());
        for t in table_defs {
            let node = tl.node(&t);
            tables.insert(node.key.clone(), node);
        }
        tables
    };

    let (refreshes, mut last) = matviews(inv, &ordered, ask);
    let mut last_notices = Vec::new();
    {
        let mut l = Last {
            inv,
            ask,
            roles: &roles,
            last: &mut last,
            notices: &mut last_notices,
            missing: &mut missing,
        };
        l.rules_and_view_triggers();
        l.objects_after(&nodes, &ordered);
        l.large_objects();
        l.default_acls_publications_event_triggers();
    }
    out.notices.extend(last_notices);
    last.retain(|(_, sql)| !sql.is_empty());

    if !inv.not_cloned.is_empty() {
        out.notices.push(format!(
            "not cloned (pgclone does not create these kinds yet): {}",
            inv.not_cloned.join(", ")
        ));
    }
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        out.notices.push(format!(
            "roles missing on the target (their ownership and grants were not carried over): {}",
            missing.join(", ")
        ));
    }

    out.made.extend(made_before);
    out.counts = counts(inv, &table_counts);
    let mut after_keys: HashMap<String, Vec<String>> = HashMap::new();
    for (f, t) in &inv.key_edges {
        let (f, t) = (resolve(inv, f), resolve(inv, t));
        if f != t && tables.contains_key(&t) {
            after_keys.entry(f).or_default().push(t);
        }
    }
    out.input = PlanInput {
        order: ordered,
        deps,
        after_keys,
        objects: nodes.objects,
        tables,
        refreshes,
        large_objects: inv
            .large_objects
            .iter()
            .map(|l| (l.oid as u32, ask.include_data))
            .collect(),
        extension_data: extension_data(inv, ask),
        last,
    };
    Ok(out)
}

/// A node for every object that is not a table, and the schemas the clone
/// creates.
fn object_nodes(
    inv: &Inventory,
    facts: &Facts,
    roles: &Roles,
    made: &mut Vec<Made>,
) -> (Nodes, HashSet<String>) {
    let mut nodes = Nodes {
        list: Vec::new(),
        objects: HashMap::new(),
        scripts: HashMap::new(),
    };
    let mut created_schemas: HashSet<String> = HashSet::new();
    for s in &inv.schemas {
        let there = facts.schemas_there.contains(&s.name);
        if !there {
            created_schemas.insert(s.name.clone());
            made.push(Made::Schema(s.name.clone()));
        }
        let script = render::schema(s, there, roles);
        let (key, about) = (format!("nsp:{}", s.oid), format!("schema {}", s.name));
        nodes.add(key, 0, s.name.clone(), about, script, false);
    }
    for x in &inv.extensions {
        let installed = facts.extensions_there.contains(&x.name);
        if !installed {
            made.push(Made::Extension(x.name.clone()));
        }
        let script = render::extension(x, installed, facts.extensions_available.get(&x.name));
        let (key, about) = (format!("ext:{}", x.oid), format!("extension {}", x.name));
        nodes.add(key, 1, x.name.clone(), about, script, false);
    }
    for c in &inv.collations {
        nodes.add(
            format!("coll:{}", c.oid),
            2,
            c.name.clone(),
            format!("collation {}.{}", c.schema, c.name),
            render::collation(c, roles),
            false,
        );
    }
    for t in &inv.types {
        nodes.add(
            format!("type:{}", t.oid),
            3,
            t.name.clone(),
            format!("type {}.{}", t.schema, t.name),
            render::type_(t, roles),
            false,
        );
    }
    for s in &inv.sequences {
        nodes.add(
            format!("rel:{}", s.oid),
            4,
            s.name.clone(),
            format!("sequence {}.{}", s.schema, s.name),
            render::sequence(s, roles),
            false,
        );
    }
    for p in &inv.procs {
        let rank = if p.kind == "a" { 6 } else { 5 };
        nodes.add(
            format!("proc:{}", p.oid),
            rank,
            p.name.clone(),
            format!("function {}.{}({})", p.schema, p.name, p.identity_args),
            render::proc_(p, roles),
            false,
        );
    }
    for d in &inv.ts_dicts {
        nodes.add(
            format!("tsdict:{}", d.oid),
            4,
            d.name.clone(),
            format!("text search dictionary {}.{}", d.schema, d.name),
            render::ts_dictionary(d, roles),
            false,
        );
    }
    for c in &inv.ts_configs {
        nodes.add(
            format!("tscfg:{}", c.oid),
            4,
            c.name.clone(),
            format!("text search configuration {}.{}", c.schema, c.name),
            render::ts_configuration(c, roles),
            false,
        );
    }
    for o in &inv.operators {
        nodes.add(
            format!("oper:{}", o.oid),
            6,
            o.name.clone(),
            format!("operator {}", o.signature),
            render::operator(o, roles),
            false,
        );
    }
    for c in &inv.casts {
        nodes.add(
            format!("cast:{}", c.oid),
            6,
            format!("{} AS {}", c.source, c.target),
            format!("cast ({} AS {})", c.source, c.target),
            render::cast(c),
            false,
        );
    }
    for v in &inv.views {
        let (rank, word) = if v.kind == "m" {
            (9, "materialized view")
        } else {
            (8, "view")
        };
        nodes.add(
            format!("rel:{}", v.oid),
            rank,
            v.name.clone(),
            format!("{word} {}.{}", v.schema, v.name),
            render::view(v, roles),
            true,
        );
    }
    (nodes, created_schemas)
}

/// A node key as the graph knows it (an alias names the node it stands for).
fn resolve(inv: &Inventory, k: &str) -> String {
    inv.aliases.get(k).cloned().unwrap_or_else(|| k.to_string())
}

/// The nodes in dependency order, and each node's dependencies among them.
type Ordered = (Vec<String>, HashMap<String, Vec<String>>);

fn order_nodes(inv: &Inventory, list: &[Node]) -> Result<Ordered, Vec<String>> {
    let edges: Vec<(String, String)> = inv
        .edges
        .iter()
        .map(|(f, t)| (resolve(inv, f), resolve(inv, t)))
        .collect();
    let ordered = order(list, &edges)?;
    let known: HashSet<&str> = ordered.iter().map(String::as_str).collect();
    let mut deps: HashMap<String, Vec<String>> = HashMap::new();
    for (f, t) in edges {
        if f != t && known.contains(f.as_str()) && known.contains(t.as_str()) {
            deps.entry(f).or_default().push(t);
        }
    }
    Ok((ordered, deps))
}

/// What turning table definitions into plan nodes needs to know, and where
/// it reports.
struct Tables<'a, 'o> {
    inv: &'a Inventory,
    facts: &'a Facts,
    ask: &'a Ask<'a>,
    position: &'a HashMap<&'a str, usize>,
    /// The tables the clone makes, by (schema, name).
    cloned: HashSet<(String, String)>,
    /// Their node keys, by (schema, name).
    key_of: HashMap<(String, String), String>,
    notices: &'o mut Vec<String>,
    missing: &'o mut Vec<String>,
    counts: &'o mut TableCounts,
}

impl Tables<'_, '_> {
    fn node(&mut self, t: &TableDef) -> TableNode {
        let (ask, facts, opts) = (self.ask, self.facts, self.ask.options);
        let key = format!("rel:{}", t.oid);
        let standalone = ask.what == What::Table;
        let target_name = ask.target_name.filter(|_| standalone).unwrap_or(&t.name);
        let role_exists = |r: &str| facts.roles_there.contains(r);
        let can_own = |r: &str| facts.can_own.contains(r);
        let taken = |n: &str| standalone && facts.relations_taken.contains(n);
        let cloned = &self.cloned;
        let table_exists = |s: &str, n: &str| {
            let k = (s.to_string(), n.to_string());
            cloned.contains(&k) || facts.tables_there.contains(&k)
        };
        let ctx = RenderCtx {
            target_schema: &t.schema,
            target_name,
            indexes: opts.indexes,
            constraints: opts.constraints,
            triggers: opts.triggers,
            role_exists: &role_exists,
            can_own: &can_own,
            relation_taken: &taken,
            table_exists: &table_exists,
            standalone,
            tablespaces: &facts.tablespaces,
        };
        let script = render_table(t, &ctx);
        self.counts.sequences += script.counts.sequences;
        self.counts.indexes += script.counts.indexes;
        self.notices.extend(script.notices);
        self.missing.extend(script.missing_roles);
        // Defaults that read an object made after the table wait for it.
        let me = self.position.get(key.as_str()).copied().unwrap_or(0);
        let defaults_late = t
            .default_deps
            .iter()
            .map(|d| resolve(self.inv, d))
            .any(|d| d != key && self.position.get(d.as_str()).is_some_and(|p| *p > me));
        let full = format!("{}.{}", t.schema, t.name);
        let copy = (ask.include_data
            && t.relkind == "r"
            && matches_any(&opts.exclude_table_data, &full) != Some(true))
        .then(|| CopySource {
            schema: t.schema.clone(),
            table: t.name.clone(),
            columns: script.copy_columns,
            filter: opts.where_.clone().filter(|_| standalone),
            binary: ask.same_major && t.binary_copy_ok(),
            part: None,
            masks: ask
                .masks
                .and_then(|m| m.get(&(t.schema.clone(), t.name.clone())))
                .cloned()
                .unwrap_or_default(),
        });
        let split = match (&t.int_key, copy.as_ref().map(|c| c.filter.is_some())) {
            (_, Some(true)) => SplitBasis::None,
            (Some(k), _) => SplitBasis::Key {
                column: k.clone(),
                min: 0,
                max: 0,
            },
            (None, _) => SplitBasis::Pages(t.pages),
        };
        let fk_tables: Vec<String> = t
            .constraints
            .iter()
            .filter(|c| c.kind == "f" && !c.self_ref)
            .filter_map(|c| {
                let k = (c.ref_schema.clone()?, c.ref_table.clone()?);
                self.key_of.get(&k).cloned()
            })
            .collect();
        TableNode {
            key,
            schema: t.schema.clone(),
            name: target_name.to_string(),
            partitioned: t.relkind == "p",
            child: !standalone && (t.is_partition || t.inherits),
            bytes: t.bytes,
            analyze: copy
                .as_ref()
                .filter(|_| t.bytes >= ANALYZE_FROM_BYTES)
                .map(|_| format!("ANALYZE {}", script.target)),
            copy,
            split,
            owner: script.owner,
            create: script.pre_data,
            grants: script.grants,
            defaults: script.defaults,
            defaults_late,
            keys: script.keys,
            key_builds: script.key_builds,
            attach: script.attach,
            fks: script.fks,
            fk_tables,
            rest: script.rest,
            read_late: t.rls_enabled || (opts.indexes && t.indexes.iter().any(|i| i.expression)),
        }
    }
}

/// Materialized views: refreshed once the tables are in, indexed after
/// (those not refreshed get their indexes with what comes last).
fn matviews(
    inv: &Inventory,
    ordered: &[String],
    ask: &Ask,
) -> (Vec<Refresh>, Vec<(String, Vec<String>)>) {
    let mv_indexes: HashMap<String, &Vec<crate::catalog::Index>> = inv
        .matview_indexes
        .iter()
        .map(|(oid, idx)| (format!("rel:{oid}"), idx))
        .collect();
    let index_sql = |schema: &str, idx: &[crate::catalog::Index]| -> Vec<String> {
        let mut v: Vec<String> = idx.iter().map(|i| i.def.clone()).collect();
        for i in idx {
            v.extend(comment(
                &format!("INDEX {}", qualified(schema, &i.name)),
                &i.comment,
            ));
        }
        v
    };
    let mut refreshes = Vec::new();
    let mut last: Vec<(String, Vec<String>)> = Vec::new();
    let matviews: HashMap<String, &crate::catalog::objects::ViewObj> = inv
        .views
        .iter()
        .filter(|v| v.kind == "m")
        .map(|v| (format!("rel:{}", v.oid), v))
        .collect();
    for key in ordered {
        let Some(v) = matviews.get(key) else {
            continue;
        };
        let idx = mv_indexes
            .get(key)
            .map(|i| index_sql(&v.schema, i))
            .unwrap_or_default();
        let about = format!("materialized view {}.{}", v.schema, v.name);
        if ask.options.matviews && ask.include_data && v.populated {
            let mut sql = vec![format!(
                "REFRESH MATERIALIZED VIEW {}",
                qualified(&v.schema, &v.name)
            )];
            sql.extend(idx);
            refreshes.push(Refresh {
                key: key.clone(),
                about,
                sql,
            });
        } else if !idx.is_empty() {
            last.push((about, idx));
        }
    }
    (refreshes, last)
}

/// What comes last, in the order the old post-data ran it.
struct Last<'a, 'o> {
    inv: &'a Inventory,
    ask: &'a Ask<'a>,
    roles: &'a Roles<'a>,
    last: &'o mut Vec<(String, Vec<String>)>,
    notices: &'o mut Vec<String>,
    missing: &'o mut Vec<String>,
}

impl Last<'_, '_> {
    fn rules_and_view_triggers(&mut self) {
        let (inv, opts) = (self.inv, self.ask.options);
        if opts.triggers || self.ask.what != What::Functions {
            for r in &inv.rules {
                self.last
                    .push((format!("rule {} on {}", r.name, r.table), render::rule(r)));
            }
        }
        if !opts.triggers {
            return;
        }
        for (oid, triggers) in &inv.view_triggers {
            let Some(v) = inv.views.iter().find(|v| v.oid == *oid) else {
                continue;
            };
            let view = qualified(&v.schema, &v.name);
            for t in triggers {
                let mut sql = vec![t.def.clone()];
                if let Some(state) = enable_state(&t.enabled, "TRIGGER") {
                    sql.push(format!(
                        "ALTER TABLE {view} {state} {}",
                        quote_ident(&t.name)
                    ));
                }
                sql.extend(comment(
                    &format!("TRIGGER {} ON {view}", quote_ident(&t.name)),
                    &t.comment,
                ));
                self.last
                    .push((format!("trigger {} on {view}", t.name), sql));
            }
        }
    }

    /// Extended statistics, then what each object does after the tables
    /// (in dependency order), then the statistics' own settings.
    fn objects_after(&mut self, nodes: &Nodes, ordered: &[String]) {
        let mut stat_after = Vec::new();
        for s in &self.inv.stats {
            let sc = render::statistics(s, self.roles);
            let mut sql = sc.create.clone();
            sql.extend(sc.grants.iter().cloned());
            let about = format!("statistics {}.{}", s.schema, s.name);
            self.last.push((about.clone(), sql));
            stat_after.push((about, sc.after.clone()));
        }
        for key in ordered {
            if let Some(s) = nodes.scripts.get(key) {
                let about = nodes
                    .objects
                    .get(key)
                    .map(|o| o.about.clone())
                    .unwrap_or_default();
                self.last.push((about, s.after.clone()));
                self.missing.extend(s.missing_roles.iter().cloned());
                self.notices.extend(s.notices.iter().cloned());
            }
        }
        self.last.extend(stat_after);
    }

    fn large_objects(&mut self) {
        let role_exists = self.roles.exists;
        for lo in &self.inv.large_objects {
            let obj = format!("LARGE OBJECT {}", lo.oid);
            let mut sql = Vec::new();
            let ok = role_exists(&lo.owner) && (self.roles.can_own)(&lo.owner);
            if ok {
                sql.push(format!("ALTER {obj} OWNER TO {}", quote_ident(&lo.owner)));
            } else {
                self.missing.push(lo.owner.clone());
            }
            sql.extend(acl_statements(
                &obj,
                None,
                ok.then_some(lo.owner.as_str()),
                &lo.acl,
                lo.acl_null,
                role_exists,
                self.missing,
            ));
            sql.extend(comment(&obj, &lo.comment));
            self.last.push((format!("large object {}", lo.oid), sql));
        }
    }

    /// Event triggers come last: they fire on DDL, and must not fire on the
    /// clone's own.
    fn default_acls_publications_event_triggers(&mut self) {
        let inv = self.inv;
        for d in &inv.default_acls {
            let sql = render::default_acl(d, self.roles, self.missing);
            self.last.push(("default privileges".into(), sql));
        }
        let mut whole = |about: String, s: ObjScript| {
            let sql: Vec<String> = s
                .create
                .iter()
                .chain(&s.grants)
                .chain(&s.after)
                .cloned()
                .collect();
            self.last.push((about, sql));
            self.missing.extend(s.missing_roles);
        };
        for p in &inv.publications {
            whole(
                format!("publication {}", p.name),
                render::publication(p, self.roles),
            );
        }
        for e in &inv.event_triggers {
            whole(
                format!("event trigger {}", e.name),
                render::event_trigger(e, self.roles),
            );
        }
    }
}

/// The rows of extension configuration tables (pg_extension_config_dump),
/// under the extension's own filter.
fn extension_data(inv: &Inventory, ask: &Ask) -> Vec<CopyStep> {
    if !ask.include_data {
        return Vec::new();
    }
    inv.extension_columns
        .iter()
        .map(|(schema, table, columns)| {
            let cond = inv
                .extensions
                .iter()
                .flat_map(|x| x.config.iter())
                .find(|c| &c.schema == schema && &c.table == table)
                .and_then(|c| c.condition.clone())
                .map(|w| {
                    let t = w.trim();
                    t.strip_prefix("WHERE")
                        .or_else(|| t.strip_prefix("where"))
                        .unwrap_or(t)
                        .trim()
                        .to_string()
                })
                .filter(|f| !f.is_empty());
            CopyStep {
                schema: schema.clone(),
                table: table.clone(),
                source: CopySource {
                    schema: schema.clone(),
                    table: table.clone(),
                    columns: columns.clone(),
                    filter: cond,
                    binary: false,
                    part: None,
                    masks: Vec::new(),
                },
                freeze: false,
                truncate: false,
                run_as: None,
                user_filter: false,
                optional: true,
            }
        })
        .collect()
}

/// Put statements at the end of what comes last, but before any event
/// trigger is made: an event trigger would fire on them.
pub fn before_event_triggers(last: &mut Vec<(String, Vec<String>)>, about: &str, sql: Vec<String>) {
    if sql.is_empty() {
        return;
    }
    let at = last
        .iter()
        .position(|(a, _)| a.starts_with("event trigger"))
        .unwrap_or(last.len());
    last.insert(at, (about.to_string(), sql));
}

/// What the tables' scripts hold besides the tables themselves.
#[derive(Default)]
struct TableCounts {
    tables: usize,
    sequences: usize,
    indexes: usize,
}

fn counts(inv: &Inventory, t: &TableCounts) -> Counts {
    let mut c: BTreeMap<&'static str, usize> = BTreeMap::new();
    c.insert("schemas", inv.schemas.len());
    c.insert("tables", t.tables);
    c.insert("views", inv.views.len());
    c.insert("routines", inv.procs.len());
    c.insert("types", inv.types.len());
    c.insert("sequences", inv.sequences.len() + t.sequences);
    c.insert(
        "indexes",
        t.indexes
            + inv
                .matview_indexes
                .iter()
                .map(|(_, i)| i.len())
                .sum::<usize>(),
    );
    c.insert("extensions", inv.extensions.len());
    c.insert("large objects", inv.large_objects.len());
    Counts(c)
}

impl Counts {
    /// "3 schemas, 12 tables, ..." (kinds with none are left out).
    pub fn list(&self) -> String {
        let l: Vec<String> = self
            .0
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        if l.is_empty() {
            "nothing to clone".into()
        } else {
            l.join(", ")
        }
    }
}

/// Objects the pre-data creates in schemas that existed before (those in
/// new schemas go with their schema).
fn made_in_existing_schemas(
    inv: &Inventory,
    created: &HashSet<String>,
    ask: &Ask,
    facts: &Facts,
) -> Vec<Made> {
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
    let replaced = |p: &&crate::catalog::objects::ProcObj| {
        facts
            .routines_there
            .contains(&(p.schema.clone(), p.name.clone(), p.identity_args.clone()))
    };
    for p in inv
        .procs
        .iter()
        .filter(|p| old(&p.schema))
        .filter(|p| !replaced(p))
    {
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
        let name = ask
            .target_name
            .filter(|_| ask.what == What::Table)
            .unwrap_or(&t.name);
        out.push(Made::Relation {
            kind: t.relkind.clone(),
            schema: t.schema.clone(),
            name: name.to_string(),
        });
    }
    for v in inv.views.iter().filter(|v| old(&v.schema)) {
        out.push(Made::Relation {
            kind: v.kind.clone(),
            schema: v.schema.clone(),
            name: v.name.clone(),
        });
    }
    for l in &inv.large_objects {
        out.push(Made::LargeObject(l.oid as u32));
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;
    use crate::catalog::fixture::{column, table};
    use crate::catalog::objects::{SchemaObj, ViewObj};
    use crate::plan::units::{build, Settings, Step, UnitKind};

    fn facts() -> Facts {
        Facts {
            roles_there: ["postgres".to_string()].into_iter().collect(),
            can_own: ["postgres".to_string()].into_iter().collect(),
            ..Default::default()
        }
    }

    fn inventory() -> Inventory {
        let mut t = table("s", "t");
        t.oid = 10;
        t.columns = vec![column(1, "id", "integer")];
        t.bytes = ANALYZE_FROM_BYTES;
        let mut inv = Inventory::default();
        inv.schemas.push(SchemaObj {
            oid: 1,
            name: "s".into(),
            owner: "postgres".into(),
            acl: Vec::new(),
            acl_null: true,
            comment: Some("mine".into()),
        });
        inv.tables.push(t);
        inv.views.push(ViewObj {
            oid: 20,
            schema: "s".into(),
            name: "mv".into(),
            kind: "m".into(),
            def: "SELECT 1".into(),
            reloptions: Vec::new(),
            access_method: None,
            populated: true,
            owner: "postgres".into(),
            acl: Vec::new(),
            acl_null: true,
            comment: None,
            column_comments: Vec::new(),
            column_defaults: Vec::new(),
        });
        inv.edges = vec![
            ("rel:10".into(), "nsp:1".into()),
            ("rel:20".into(), "rel:10".into()),
        ];
        inv
    }

    /// A schema clone with data, as a job (`in_job`) or serially.
    fn schema_ask(opts: &Options, in_job: bool) -> Ask<'_> {
        Ask {
            what: What::Schema,
            include_data: true,
            options: opts,
            same_major: true,
            target_name: None,
            in_job,
            masks: None,
        }
    }

    /// A table of a few pages is not analyzed by the clone; one from
    /// ANALYZE_FROM_BYTES on is.
    #[test]
    fn only_tables_big_enough_are_analyzed() {
        let opts = Options::default();
        let ask = schema_ask(&opts, true);
        let analyzes = |bytes: i64| {
            let mut inv = inventory();
            inv.tables[0].bytes = bytes;
            let a = assemble(inv.clone(), &facts(), &ask).unwrap();
            a.input
                .tables
                .values()
                .filter(|t| t.analyze.is_some())
                .count()
        };
        assert_eq!(analyzes(ANALYZE_FROM_BYTES - 1), 0);
        assert_eq!(analyzes(ANALYZE_FROM_BYTES), 1);
    }

    #[test]
    fn a_schema_becomes_a_plan_in_order() {
        let inv = inventory();
        let opts = Options::default();
        let ask = schema_ask(&opts, true);
        let a = assemble(inv.clone(), &facts(), &ask).unwrap();
        assert_eq!(a.input.order, ["nsp:1", "rel:10", "rel:20"]);
        assert_eq!(a.made, vec![Made::Schema("s".into())]);
        let p = build(a.input.clone(), &Settings::default());
        let kinds: Vec<UnitKind> = p.units.iter().map(|u| u.kind).collect();
        assert_eq!(
            kinds,
            [
                UnitKind::Ddl,
                UnitKind::Tables,
                UnitKind::Ddl,
                UnitKind::Refresh,
                UnitKind::Final
            ]
        );
        let copy = p.units[1].steps.iter().find_map(|s| match s {
            Step::Copy(c) => Some(c),
            _ => None,
        });
        assert!(copy.is_some_and(|c| c.source.binary));
        // the schema's comment waits for the end; the table's ANALYZE is in its unit
        assert!(p.units[1].steps.iter().any(
            |s| matches!(s, Step::Sql { sql, .. } if sql.iter().any(|q| q.starts_with("ANALYZE")))
        ));
        let last = &p.units[4].steps;
        assert!(last.iter().any(|s| matches!(s, Step::Sql { sql, .. } if sql.iter().any(|q| q.starts_with("COMMENT ON SCHEMA")))));
    }

    #[test]
    fn no_data_means_no_copy_no_refresh() {
        let inv = inventory();
        let opts = Options::default();
        let ask = Ask {
            what: What::Schema,
            include_data: false,
            options: &opts,
            same_major: true,
            target_name: None,
            in_job: false,
            masks: None,
        };
        let a = assemble(inv.clone(), &facts(), &ask).unwrap();
        assert_eq!(a.made, vec![Made::Schema("s".into())]);
        let p = build(a.input.clone(), &Settings::default());
        assert!(p.units.iter().all(|u| u.kind != UnitKind::Refresh));
        assert!(p
            .units
            .iter()
            .all(|u| u.steps.iter().all(|s| !matches!(s, Step::Copy(_)))));
    }

    #[test]
    fn a_cycle_is_an_error_naming_its_members() {
        let mut inv = inventory();
        inv.edges.push(("nsp:1".into(), "rel:20".into()));
        let opts = Options::default();
        let ask = schema_ask(&opts, false);
        let e = assemble(inv.clone(), &facts(), &ask).unwrap_err();
        assert!(e.contains(&"s".to_string()), "{e:?}");
    }

    #[test]
    fn what_replaces_comes_before_event_triggers() {
        let mut last = vec![
            ("rule r".to_string(), vec!["RULE".to_string()]),
            (
                "event trigger e".to_string(),
                vec!["CREATE EVENT TRIGGER".to_string()],
            ),
        ];
        before_event_triggers(&mut last, "replaced", vec!["DROP SCHEMA old".into()]);
        let order: Vec<&str> = last.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(order, ["rule r", "replaced", "event trigger e"]);
    }

    #[test]
    fn a_routine_that_was_there_is_not_taken_back() {
        let mut inv = inventory();
        inv.procs.push(crate::catalog::objects::ProcObj {
            oid: 30,
            schema: "s".into(),
            name: "f".into(),
            kind: "f".into(),
            identity_args: "integer".into(),
            def: Some("CREATE OR REPLACE FUNCTION s.f(integer) RETURNS integer LANGUAGE sql AS 'SELECT 1'".into()),
            owner: "postgres".into(),
            acl: Vec::new(),
            acl_null: true,
            comment: None,
            agg: None,
        });
        let opts = Options::default();
        let ask = schema_ask(&opts, true);
        let mut f = facts();
        f.schemas_there.insert("s".into());
        let made = assemble(inv.clone(), &f, &ask).unwrap().made;
        assert!(made
            .iter()
            .any(|m| matches!(m, Made::Routine { name, .. } if name == "f")));
        f.routines_there
            .insert(("s".into(), "f".into(), "integer".into()));
        let made = assemble(inv.clone(), &f, &ask).unwrap().made;
        assert!(
            !made.iter().any(|m| matches!(m, Made::Routine { .. })),
            "{made:?}"
        );
    }

    #[test]
    fn wildcards_and_schema_selection() {
        assert!(wildcard_match("sales*", "sales_2024"));
        assert!(wildcard_match("a*b*c", "aXXbYc"));
        assert!(!wildcard_match("public.t", "public.tt"));
        assert!(is_user_schema("pgdata", Some("pgclone")));
        assert!(!is_user_schema("pgclone", Some("pgclone")));
        assert!(!is_user_schema("pg_toast_temp_1", None));
        assert_eq!(human_bytes(1536), "1.5 kB");
    }
}
