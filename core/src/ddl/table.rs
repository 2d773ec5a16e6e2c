//! One table's DDL, split the way pg_dump splits it: what must exist before the
//! data (sequences, the table, column settings) and what is cheaper or only
//! correct after it (keys, indexes, foreign keys, triggers, policies, grants,
//! sequence positions).

use super::{acl_statements, comment, enable_state, renamed, truncate_name};
use crate::catalog::{AclEntry, Column, Constraint, OwnedSequence, Policy, TableDef};
use crate::sqltext::{qualified, quote_ident, quote_literal, replace_name_after};
use std::collections::{HashMap, HashSet};

pub struct RenderCtx<'a> {
    pub target_schema: &'a str,
    pub target_name: &'a str,
    pub indexes: bool,
    pub constraints: bool,
    pub triggers: bool,
    pub role_exists: &'a dyn Fn(&str) -> bool,
    /// May the caller hand a new object to this role? (A superuser may; anyone
    /// else only to roles whose privileges they have.)
    pub can_own: &'a dyn Fn(&str) -> bool,
    /// Is a relation name already used in the target schema?
    pub relation_taken: &'a dyn Fn(&str) -> bool,
    /// Does `schema.table` exist on the target (for foreign keys)?
    pub table_exists: &'a dyn Fn(&str, &str) -> bool,
    /// A single-table clone: no ATTACH PARTITION or INHERITS, defaults inline.
    pub standalone: bool,
    /// Source tablespace → tablespace here (None or absent: the default).
    pub tablespaces: &'a std::collections::HashMap<String, Option<String>>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counts {
    pub indexes: usize,
    pub constraints: usize,
    pub triggers: usize,
    pub policies: usize,
    pub sequences: usize,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct KeyBuilds {
    pub builds: Vec<Vec<String>>,
    pub after: Vec<String>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct TableScript {
    pub target: String,
    /// Sequences, the table, column settings; ATTACH PARTITION for a partition.
    pub pre_data: Vec<String>,
    /// Column defaults, run once every table, function and sequence exists
    /// (schema clones only: a single table keeps them inline).
    pub defaults: Vec<String>,
    /// After the data: keys and indexes.
    pub keys: Vec<String>,
    /// The same keys and indexes as groups that may be built at once by
    /// several sessions (each a CREATE [UNIQUE] INDEX, which takes a lock
    /// that does not conflict with itself), then `keys_after` to turn the
    /// unique indexes into constraints. None when the table's keys cannot
    /// be split so (partitions, partitioned tables).
    pub key_builds: Option<KeyBuilds>,
    /// Partition indexes joined to their parent's, once all exist.
    pub attach: Vec<String>,
    /// Foreign keys, once every table's keys exist.
    pub fks: Vec<String>,
    /// Privileges on the table, its columns and sequences: after every object
    /// exists, before the data.
    pub grants: Vec<String>,
    /// Checks added NOT VALID, triggers, policies, comments, sequence positions.
    pub rest: Vec<String>,
    /// Columns that COPY carries, in order (generated columns are recomputed).
    pub copy_columns: Vec<String>,
    /// The owner given to the table, when the caller could give it: the role
    /// its data is loaded and its indexes built as.
    pub owner: Option<String>,
    pub notices: Vec<String>,
    pub missing_roles: Vec<String>,
    pub counts: Counts,
}

impl TableScript {
    /// Everything after the data, in the order a single table needs.
    pub fn post_data(&self) -> Vec<String> {
        [&self.keys, &self.attach, &self.fks, &self.rest]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// `attstorage` as ALTER COLUMN ... SET STORAGE names it.
pub fn storage_word(c: &str) -> Option<&'static str> {
    Some(match c {
        "p" => "PLAIN",
        "e" => "EXTERNAL",
        "m" => "MAIN",
        "x" => "EXTENDED",
        _ => return None,
    })
}

/// `attcompression` as ALTER COLUMN ... SET COMPRESSION names it (None:
/// the server's default method).
pub fn compression_word(c: &str) -> Option<&'static str> {
    match c {
        "p" => Some("pglz"),
        "l" => Some("lz4"),
        _ => None,
    }
}

/// `fillfactor=70` → `fillfactor='70'`; keys are the server's own option names.
fn reloption(opt: &str, prefix: &str) -> String {
    let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
    let key_ok = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let key = if key_ok {
        k.to_string()
    } else {
        quote_ident(k)
    };
    format!("{prefix}{key}={}", quote_literal(v))
}

/// A column option the server sets on every column by itself (`pg_attver`,
/// kept by some PostgreSQL builds): pg_dump leaves it out, a server without
/// it refuses it ("unrecognized parameter"), and one with it sets its own
/// value whatever is sent, so sending it only costs an ALTER per column.
fn server_kept_option(opt: &str) -> bool {
    opt.split_once('=').map_or(opt, |(k, _)| k) == "pg_attver"
}

fn sequence_options(s: &OwnedSequence) -> String {
    super::sequence_clause(s.start, s.increment, s.min, s.max, s.cache, s.cycle)
}

/// A PRIMARY KEY or UNIQUE constraint as `CREATE UNIQUE INDEX` (which can
/// be built while other indexes of the table are) and the `ADD CONSTRAINT
/// ... USING INDEX` that makes it the constraint, with the same result.
fn using_index(con: &Constraint, name: &str, tq: &str) -> Option<(String, String)> {
    let word = match con.kind.as_str() {
        "p" => "PRIMARY KEY",
        "u" => "UNIQUE",
        _ => return None,
    };
    let def = con.index_def.as_ref()?;
    let create = replace_name_after(def, "INDEX", &[], &quote_ident(name))
        .and_then(|s| replace_name_after(&s, "ON", &["ONLY"], tq))?;
    let mut attach = format!(
        "ALTER TABLE ONLY {tq} ADD CONSTRAINT {} {word} USING INDEX {}",
        quote_ident(name),
        quote_ident(name)
    );
    if con.deferrable {
        attach.push_str(" DEFERRABLE");
        if con.deferred {
            attach.push_str(" INITIALLY DEFERRED");
        }
    }
    Some((create, attach))
}

pub fn render(def: &TableDef, ctx: &RenderCtx) -> TableScript {
    let mut r = Renderer::new(def, ctx);
    r.sequences();
    r.create_table();
    r.column_settings();
    r.owner();
    r.keys();
    r.indexes();
    r.foreign_keys();
    r.restore_storage();
    r.late_constraints();
    r.triggers();
    r.row_security();
    r.comments();
    r.grants();
    r.sequence_positions();
    r.out
}

/// One table's rendering: the names chosen so far and the script being
/// written, filled section by section in the order the script runs.
struct Renderer<'a, 'c> {
    def: &'a TableDef,
    ctx: &'a RenderCtx<'c>,
    tq: String,
    is_renamed: bool,
    /// The parent a partition attaches to (schema clones only).
    partition_of: Option<&'a String>,
    /// The parents an inheritance child names (schema clones only).
    inherits: &'a [String],
    /// Relation names given in this table so far (renamed clones).
    chosen: HashSet<String>,
    /// Owned sequences by source name: their qualified target names.
    seq_names: HashMap<String, String>,
    /// How column defaults reach renamed sequences.
    default_rewrites: Vec<(String, String)>,
    /// Indexes (and key constraints' indexes) by source name: target names.
    index_names: HashMap<String, String>,
    fk_done: Vec<&'a str>,
    trigger_done: Vec<&'a str>,
    policy_done: Vec<&'a str>,
    /// Column storage to give back once the data is in.
    storage_back: Vec<String>,
    owner_ok: bool,
    owner_assignable: bool,
    out: TableScript,
}

impl<'a, 'c> Renderer<'a, 'c> {
    fn new(def: &'a TableDef, ctx: &'a RenderCtx<'c>) -> Self {
        let tq = qualified(ctx.target_schema, ctx.target_name);
        // In a schema clone, partitions attach to their parent and inheritance
        // children name theirs; a stand-alone table clone carries everything itself.
        let partition_of = def.partition_of.as_ref().filter(|_| !ctx.standalone);
        let inherits: &[String] = if ctx.standalone || partition_of.is_some() {
            &[]
        } else {
            &def.inherits_from
        };
        Renderer {
            def,
            ctx,
            out: TableScript {
                target: tq.clone(),
                ..Default::default()
            },
            tq,
            is_renamed: ctx.target_name != def.name || ctx.target_schema != def.schema,
            partition_of,
            inherits,
            chosen: HashSet::new(),
            seq_names: HashMap::new(),
            default_rewrites: Vec::new(),
            index_names: HashMap::new(),
            fk_done: Vec::new(),
            trigger_done: Vec::new(),
            policy_done: Vec::new(),
            storage_back: Vec::new(),
            owner_ok: false,
            owner_assignable: false,
        }
    }

    /// Relation-level names (indexes, sequences) share the schema's
    /// namespace: a renamed clone gets fresh ones that collide with nothing.
    fn rel_name(&mut self, old: &str) -> String {
        if !self.is_renamed {
            return old.to_string();
        }
        let ctx = self.ctx;
        let chosen = &self.chosen;
        let taken = |n: &str| (ctx.relation_taken)(n) || chosen.contains(n) || n == ctx.target_name;
        let n = renamed(old, &self.def.name, ctx.target_name, &taken);
        self.chosen.insert(n.clone());
        n
    }

    /// Constraint names are per table; only the table's own prefix changes.
    fn con_name(&self, old: &str) -> String {
        match old.strip_prefix(self.def.name.as_str()) {
            Some(rest) if self.is_renamed => {
                truncate_name(&format!("{}{rest}", self.ctx.target_name))
            }
            _ => old.to_string(),
        }
    }

    fn index_q(&self, name: &str) -> String {
        qualified(self.ctx.target_schema, name)
    }

    /// Owned sequences: new names for a renamed table, the literal that the
    /// column defaults use to reach them, and the CREATE of those that are
    /// not identities.
    fn sequences(&mut self) {
        let def = self.def;
        for s in &def.sequences {
            let new = self.rel_name(&s.name);
            let schema = if self.is_renamed {
                self.ctx.target_schema
            } else {
                s.schema.as_str()
            };
            let new_q = qualified(schema, &new);
            if self.is_renamed {
                self.default_rewrites.push((
                    format!("{}::regclass", s.literal),
                    format!("{}::regclass", quote_literal(&new_q)),
                ));
            }
            self.seq_names.insert(s.name.clone(), new_q);
        }
        for s in def.sequences.iter().filter(|s| !s.identity) {
            let unlogged = if s.persistence == "u" {
                "UNLOGGED "
            } else {
                ""
            };
            self.out.pre_data.push(format!(
                "CREATE {unlogged}SEQUENCE {} AS {} {}",
                self.seq_names[&s.name],
                s.type_sql,
                sequence_options(s)
            ));
        }
    }

    /// The column list and checks of CREATE TABLE.
    fn table_items(&mut self) -> Vec<String> {
        let (def, ctx) = (self.def, self.ctx);
        let mut items: Vec<String> = Vec::new();
        for c in &def.columns {
            if c.generated.is_none() {
                self.out.copy_columns.push(c.name.clone());
            }
            // An inheritance child takes inherited columns from its parents.
            if !self.inherits.is_empty() && !c.is_local {
                continue;
            }
            items.push(column_sql(
                c,
                def,
                &self.seq_names,
                &self.default_rewrites,
                ctx.standalone,
            ));
        }
        if ctx.constraints {
            // A partition must carry its parent's checks before it is attached; an
            // inheritance child gets them from INHERITS.
            let checks = def
                .constraints
                .iter()
                .filter(|c| c.kind == "c" && c.validated);
            for con in
                checks.filter(|c| c.is_local || self.partition_of.is_some() || ctx.standalone)
            {
                items.push(format!(
                    "CONSTRAINT {} {}",
                    quote_ident(&self.con_name(&con.name)),
                    con.def
                ));
                self.out.counts.constraints += 1;
            }
        }
        items
    }

    fn create_table(&mut self) {
        let def = self.def;
        let items = self.table_items();
        let unlogged = if def.persistence == "u" {
            "UNLOGGED "
        } else {
            ""
        };
        let tq = &self.tq;
        let mut create = match &def.of_type {
            // A typed table takes its columns from the type; only its
            // constraints are listed, and NOT NULL is set column by column below.
            Some(ty) => {
                let checks: Vec<&str> = items
                    .iter()
                    .filter(|i| i.starts_with("CONSTRAINT "))
                    .map(|i| i.as_str())
                    .collect();
                let list = if checks.is_empty() {
                    String::new()
                } else {
                    format!(" (\n    {}\n)", checks.join(",\n    "))
                };
                format!("CREATE {unlogged}TABLE {tq} OF {ty}{list}")
            }
            None => format!(
                "CREATE {unlogged}TABLE {tq} (\n    {}\n)",
                items.join(",\n    ")
            ),
        };
        if !self.inherits.is_empty() {
            create.push_str(&format!(" INHERITS ({})", self.inherits.join(", ")));
        }
        if let Some(key) = def.partkey.as_ref().filter(|_| def.relkind == "p") {
            create.push_str(&format!(" PARTITION BY {key}"));
        }
        if let Some(am) = def.access_method.as_deref().filter(|am| *am != "heap") {
            create.push_str(&format!(" USING {}", quote_ident(am)));
        }
        let mut with: Vec<String> = def.reloptions.iter().map(|o| reloption(o, "")).collect();
        with.extend(def.toast_reloptions.iter().map(|o| reloption(o, "toast.")));
        if !with.is_empty() {
            create.push_str(&format!(" WITH ({})", with.join(", ")));
        }
        if let Some(ts) = &def.tablespace {
            match self.ctx.tablespaces.get(ts).cloned().flatten() {
                Some(here) if here != "pg_default" => {
                    create.push_str(&format!(" TABLESPACE {}", quote_ident(&here)));
                }
                Some(_) => {}
                None => self.out.notices.push(format!(
                    "tablespace \"{ts}\" of the source does not exist here: table {tq} goes to the database's default (map it with the \"tablespaces\" option)"
                )),
            }
        }
        self.out.pre_data.push(create);
        if let (Some(parent), Some(bound)) = (self.partition_of, def.partition_bound.as_ref()) {
            self.out.pre_data.push(format!(
                "ALTER TABLE ONLY {parent} ATTACH PARTITION {tq} {bound}"
            ));
        }
    }

    /// Per-column settings after CREATE TABLE, and the column defaults.
    fn column_settings(&mut self) {
        let (def, ctx, tq) = (self.def, self.ctx, &self.tq);
        let out = &mut self.out;
        for c in &def.columns {
            let col = format!(
                "ALTER TABLE ONLY {tq} ALTER COLUMN {}",
                quote_ident(&c.name)
            );
            if def.of_type.is_some() && c.not_null {
                out.pre_data.push(format!("{col} SET NOT NULL"));
            }
            if def.of_type.is_some() && ctx.standalone && c.generated.is_none() {
                if let Some(d) = &c.default {
                    out.pre_data.push(format!(
                        "{col} SET DEFAULT {}",
                        rewrite(d, &self.default_rewrites)
                    ));
                }
            }
            if let Some(w) = c.storage.as_deref().and_then(storage_word) {
                out.pre_data.push(format!("{col} SET STORAGE {w}"));
            }
            // Values the source keeps uncompressed go in as they are; the
            // column's own storage comes back once the data is in.
            if c.load_external && c.attstorage == "x" && def.relkind == "r" {
                out.pre_data.push(format!("{col} SET STORAGE EXTERNAL"));
                self.storage_back
                    .push(format!("{col} SET STORAGE EXTENDED"));
            }
            if let Some(n) = c.stattarget {
                out.pre_data.push(format!("{col} SET STATISTICS {n}"));
            }
            let list: Vec<String> = c
                .options
                .iter()
                .flatten()
                .filter(|o| !server_kept_option(o))
                .map(|o| reloption(o, ""))
                .collect();
            if !list.is_empty() {
                out.pre_data
                    .push(format!("{col} SET ({})", list.join(", ")));
            }
            if let Some(w) = c.compression.as_deref().and_then(compression_word) {
                out.pre_data.push(format!("{col} SET COMPRESSION {w}"));
            }
            // Defaults wait until every function and sequence exists, as in pg_dump:
            // that is what breaks a table ↔ function cycle.
            if !ctx.standalone && c.generated.is_none() {
                if let Some(d) = &c.default {
                    out.defaults.push(format!(
                        "{col} SET DEFAULT {}",
                        rewrite(d, &self.default_rewrites)
                    ));
                }
            }
        }
        for s in def.sequences.iter().filter(|s| !s.identity) {
            if let Some(col) = def.columns.iter().find(|c| c.attnum == s.column) {
                out.pre_data.push(format!(
                    "ALTER SEQUENCE {} OWNED BY {tq}.{}",
                    self.seq_names[&s.name],
                    quote_ident(&col.name)
                ));
            }
        }
    }

    /// The owner right after the table, as pg_dump does: from here on the
    /// server runs the table's index expressions (and the clone runs its
    /// COPY) as the owner, not as the caller.
    fn owner(&mut self) {
        let def = self.def;
        self.owner_ok = (self.ctx.role_exists)(&def.owner);
        self.owner_assignable = self.owner_ok && (self.ctx.can_own)(&def.owner);
        if self.owner_assignable {
            self.out.pre_data.push(format!(
                "ALTER TABLE {} OWNER TO {}",
                self.tq,
                quote_ident(&def.owner)
            ));
            self.out.owner = Some(def.owner.clone());
        }
    }

    /// Parallel builds: plain tables only (a partition's keys attach to its
    /// parent's, which USING INDEX cannot do).
    fn builds_allowed(&self) -> bool {
        self.def.relkind == "r" && self.partition_of.is_none()
    }

    /// A partition's index joined to its parent's, once both exist.
    fn attach_index(&mut self, parent: Option<&String>, name: &str) {
        if let Some(parent) = parent.filter(|_| self.partition_of.is_some()) {
            let sql = format!(
                "ALTER INDEX {parent} ATTACH PARTITION {}",
                self.index_q(name)
            );
            self.out.attach.push(sql);
        }
    }

    /// Primary keys, unique and exclusion constraints.
    fn keys(&mut self) {
        if !self.ctx.constraints {
            return;
        }
        let def = self.def;
        let mut builds = self.builds_allowed().then(KeyBuilds::default);
        for con in def
            .constraints
            .iter()
            .filter(|c| matches!(c.kind.as_str(), "p" | "u" | "x"))
        {
            // The backing index takes the constraint's name, so it is a relation name.
            let name = self.rel_name(&con.name);
            let tq = &self.tq;
            let add = format!(
                "ALTER TABLE ONLY {tq} ADD CONSTRAINT {} {}",
                quote_ident(&name),
                con.def
            );
            if let Some(b) = builds.as_mut() {
                match using_index(con, &name, tq) {
                    Some((create, attach)) => {
                        b.builds.push(vec![create]);
                        b.after.push(attach);
                    }
                    None => b.builds.push(vec![add.clone()]),
                }
            }
            self.out.keys.push(add);
            self.attach_index(con.parent_index.as_ref(), &name);
            self.index_names.insert(con.name.clone(), name);
            self.out.counts.constraints += 1;
            self.out.counts.indexes += 1;
        }
        self.out.key_builds = builds;
    }

    fn indexes(&mut self) {
        let def = self.def;
        if self.ctx.indexes {
            for idx in &def.indexes {
                let name = self.rel_name(&idx.name);
                let sql = replace_name_after(&idx.def, "INDEX", &[], &quote_ident(&name))
                    .and_then(|s| replace_name_after(&s, "ON", &["ONLY"], &self.tq));
                let Some(sql) = sql else {
                    self.out.notices.push(format!(
                        "index \"{}\" has a definition pgclone cannot read; skipped",
                        idx.name
                    ));
                    continue;
                };
                self.out.keys.push(sql.clone());
                let mut group = vec![sql];
                for (col, target) in idx.stats.iter().flatten() {
                    let stat = format!(
                        "ALTER INDEX {} ALTER COLUMN {col} SET STATISTICS {target}",
                        self.index_q(&name)
                    );
                    self.out.keys.push(stat.clone());
                    group.push(stat);
                }
                if self.builds_allowed() {
                    self.out
                        .key_builds
                        .get_or_insert_with(KeyBuilds::default)
                        .builds
                        .push(group);
                }
                self.attach_index(idx.parent_index.as_ref(), &name);
                self.index_names.insert(idx.name.clone(), name);
                self.out.counts.indexes += 1;
            }
        }
        let builds = self.out.key_builds.take();
        self.out.key_builds = builds.filter(|b| !b.builds.is_empty());
    }

    fn foreign_keys(&mut self) {
        if !self.ctx.constraints {
            return;
        }
        let def = self.def;
        for con in def.constraints.iter().filter(|c| c.kind == "f") {
            let def_sql = if con.self_ref {
                replace_name_after(&con.def, "REFERENCES", &[], &self.tq)
            } else {
                Some(con.def.clone())
            };
            let rs = con.ref_schema.as_deref().unwrap_or("");
            let rt = con.ref_table.as_deref().unwrap_or("");
            match def_sql {
                Some(d) if con.self_ref || (self.ctx.table_exists)(rs, rt) => {
                    // ONLY is refused for foreign keys on partitioned tables; a
                    // partitioned parent's key reaches its partitions by itself.
                    let only = if def.relkind == "p" { "" } else { "ONLY " };
                    let sql = format!(
                        "ALTER TABLE {only}{} ADD CONSTRAINT {} {d}",
                        self.tq,
                        quote_ident(&self.con_name(&con.name))
                    );
                    self.out.fks.push(sql);
                    self.fk_done.push(&con.name);
                    self.out.counts.constraints += 1;
                }
                _ => self.out.notices.push(format!(
                    "foreign key \"{}\" skipped: the referenced table {} does not exist on the target",
                    con.name,
                    qualified(rs, rt)
                )),
            }
        }
    }

    /// First after the data: the storage of columns loaded EXTERNAL.
    fn restore_storage(&mut self) {
        self.out.rest.append(&mut self.storage_back);
    }

    /// Checks added NOT VALID, CLUSTER ON, replica identity.
    fn late_constraints(&mut self) {
        let def = self.def;
        let tq = &self.tq;
        let mut rest = Vec::new();
        if self.ctx.constraints {
            for con in def
                .constraints
                .iter()
                .filter(|c| c.kind == "c" && !c.validated && c.is_local)
            {
                rest.push(format!(
                    "ALTER TABLE {tq} ADD CONSTRAINT {} {}",
                    quote_ident(&self.con_name(&con.name)),
                    con.def
                ));
                self.out.counts.constraints += 1;
            }
        }
        let index_name = |i: &Option<String>| i.as_ref().and_then(|i| self.index_names.get(i));
        if let Some(name) = index_name(&def.cluster_index) {
            rest.push(format!("ALTER TABLE {tq} CLUSTER ON {}", quote_ident(name)));
        }
        match def.replident.as_str() {
            "n" => rest.push(format!("ALTER TABLE ONLY {tq} REPLICA IDENTITY NOTHING")),
            "f" => rest.push(format!("ALTER TABLE ONLY {tq} REPLICA IDENTITY FULL")),
            "i" => {
                if let Some(name) = index_name(&def.replident_index) {
                    rest.push(format!(
                        "ALTER TABLE ONLY {tq} REPLICA IDENTITY USING INDEX {}",
                        quote_ident(name)
                    ));
                }
            }
            _ => {}
        }
        self.out.rest.append(&mut rest);
    }

    fn triggers(&mut self) {
        if !self.ctx.triggers {
            return;
        }
        let def = self.def;
        let tq = &self.tq;
        for t in &def.triggers {
            let Some(sql) = replace_name_after(&t.def, "ON", &[], tq) else {
                self.out.notices.push(format!(
                    "trigger \"{}\" has a definition pgclone cannot read; skipped",
                    t.name
                ));
                continue;
            };
            self.out.rest.push(sql);
            if let Some(state) = enable_state(&t.enabled, "TRIGGER") {
                self.out
                    .rest
                    .push(format!("ALTER TABLE {tq} {state} {}", quote_ident(&t.name)));
            }
            self.trigger_done.push(&t.name);
            self.out.counts.triggers += 1;
        }
    }

    /// Row-level security is always carried: dropping it would widen access.
    fn row_security(&mut self) {
        let def = self.def;
        let tq = &self.tq;
        if def.rls_enabled {
            self.out
                .rest
                .push(format!("ALTER TABLE {tq} ENABLE ROW LEVEL SECURITY"));
        }
        if def.rls_forced {
            self.out
                .rest
                .push(format!("ALTER TABLE {tq} FORCE ROW LEVEL SECURITY"));
        }
        for p in &def.policies {
            if let Some(sql) = self.policy(p) {
                self.out.rest.push(sql);
                self.policy_done.push(&p.name);
                self.out.counts.policies += 1;
            }
        }
    }

    fn policy(&mut self, p: &Policy) -> Option<String> {
        let mut roles = Vec::new();
        for r in &p.roles {
            if (self.ctx.role_exists)(r) {
                roles.push(quote_ident(r));
            } else {
                self.out.missing_roles.push(r.clone());
            }
        }
        if !p.roles.is_empty() && roles.is_empty() {
            // Never turn a policy for named roles into one for PUBLIC.
            self.out.notices.push(format!(
                "policy \"{}\" skipped: none of its roles exist on the target",
                p.name
            ));
            return None;
        }
        let cmd = match p.cmd.as_str() {
            "r" => "SELECT",
            "a" => "INSERT",
            "w" => "UPDATE",
            "d" => "DELETE",
            _ => "ALL",
        };
        let mut sql = format!(
            "CREATE POLICY {} ON {} AS {} FOR {cmd} TO {}",
            quote_ident(&p.name),
            self.tq,
            if p.permissive {
                "PERMISSIVE"
            } else {
                "RESTRICTIVE"
            },
            if roles.is_empty() {
                "PUBLIC".to_string()
            } else {
                roles.join(", ")
            }
        );
        if let Some(u) = &p.using {
            sql.push_str(&format!(" USING ({u})"));
        }
        if let Some(c) = &p.check {
            sql.push_str(&format!(" WITH CHECK ({c})"));
        }
        Some(sql)
    }

    /// Comments on the table and on everything of it that was made.
    fn comments(&mut self) {
        let (def, ctx, tq) = (self.def, self.ctx, &self.tq);
        let mut rest = Vec::new();
        rest.extend(comment(&format!("TABLE {tq}"), &def.comment));
        for c in &def.columns {
            rest.extend(comment(
                &format!("COLUMN {tq}.{}", quote_ident(&c.name)),
                &c.comment,
            ));
        }
        for con in &def.constraints {
            let name = match con.kind.as_str() {
                "p" | "u" | "x" => self.index_names.get(&con.name).cloned(),
                "f" => self
                    .fk_done
                    .contains(&con.name.as_str())
                    .then(|| self.con_name(&con.name)),
                _ => (ctx.constraints
                    && (con.is_local || self.partition_of.is_some() || ctx.standalone))
                    .then(|| self.con_name(&con.name)),
            };
            let Some(name) = name else { continue };
            rest.extend(comment(
                &format!("CONSTRAINT {} ON {tq}", quote_ident(&name)),
                &con.comment,
            ));
            if let Some(idx) = self.index_names.get(&con.name) {
                rest.extend(comment(
                    &format!("INDEX {}", self.index_q(idx)),
                    &con.index_comment,
                ));
            }
        }
        for idx in &def.indexes {
            if let Some(name) = self.index_names.get(&idx.name) {
                rest.extend(comment(
                    &format!("INDEX {}", self.index_q(name)),
                    &idx.comment,
                ));
            }
        }
        for t in def
            .triggers
            .iter()
            .filter(|t| self.trigger_done.contains(&t.name.as_str()))
        {
            rest.extend(comment(
                &format!("TRIGGER {} ON {tq}", quote_ident(&t.name)),
                &t.comment,
            ));
        }
        for p in def
            .policies
            .iter()
            .filter(|p| self.policy_done.contains(&p.name.as_str()))
        {
            rest.extend(comment(
                &format!("POLICY {} ON {tq}", quote_ident(&p.name)),
                &p.comment,
            ));
        }
        for s in &def.sequences {
            rest.extend(comment(
                &format!("SEQUENCE {}", self.seq_names[&s.name]),
                &s.comment,
            ));
        }
        self.out.rest.append(&mut rest);
    }

    /// Grants: a superuser's GRANT is recorded as the owner's, as on the source.
    fn grants(&mut self) {
        let (def, ctx) = (self.def, self.ctx);
        let mut missing = std::mem::take(&mut self.out.missing_roles);
        if self.owner_ok && !self.owner_assignable {
            self.out.notices.push(format!(
                "the owner \"{}\" was not assigned: the calling role may not create objects for it",
                def.owner
            ));
        } else if !self.owner_ok {
            missing.push(def.owner.clone());
        }
        let owner = self.out.owner.as_deref();
        let grants = &mut self.out.grants;
        let table_obj = format!("TABLE {}", self.tq);
        let mut acl = |obj: &str, column: Option<&str>, entries: &[AclEntry], null: bool| {
            grants.extend(acl_statements(
                obj,
                column,
                owner,
                entries,
                null,
                ctx.role_exists,
                &mut missing,
            ));
        };
        acl(&table_obj, None, &def.acl, def.acl_null);
        for c in &def.columns {
            acl(&table_obj, Some(&c.name), &c.acl, false);
        }
        for s in &def.sequences {
            let obj = format!("SEQUENCE {}", self.seq_names[&s.name]);
            acl(&obj, None, &s.acl, s.acl_null);
        }
        missing.sort();
        missing.dedup();
        self.out.missing_roles = missing;
    }

    fn sequence_positions(&mut self) {
        for s in &self.def.sequences {
            self.out.rest.push(format!(
                "SELECT pg_catalog.setval({}, {}, {})",
                quote_literal(&self.seq_names[&s.name]),
                s.last_value,
                s.is_called
            ));
            self.out.counts.sequences += 1;
        }
    }
}

fn rewrite(expr: &str, rewrites: &[(String, String)]) -> String {
    let mut d = expr.to_string();
    for (from, to) in rewrites {
        d = d.replace(from, to);
    }
    d
}

fn column_sql(
    c: &Column,
    def: &TableDef,
    seq_names: &HashMap<String, String>,
    rewrites: &[(String, String)],
    inline_default: bool,
) -> String {
    let mut s = format!("{} {}", quote_ident(&c.name), c.type_sql);
    if let Some(coll) = &c.collation {
        s.push_str(&format!(" COLLATE {coll}"));
    }
    if let Some(expr) = &c.generated {
        let kind = if c.generated_kind.as_deref() == Some("v") {
            "VIRTUAL"
        } else {
            "STORED"
        };
        s.push_str(&format!(" GENERATED ALWAYS AS ({expr}) {kind}"));
    }
    if let Some(id) = &c.identity {
        let how = if id == "a" { "ALWAYS" } else { "BY DEFAULT" };
        s.push_str(&format!(" GENERATED {how} AS IDENTITY"));
        if let Some(seq) = def
            .sequences
            .iter()
            .find(|q| q.identity && q.column == c.attnum)
        {
            s.push_str(&format!(
                " (SEQUENCE NAME {} {})",
                seq_names[&seq.name],
                sequence_options(seq)
            ));
        }
    }
    if c.not_null {
        s.push_str(" NOT NULL");
    }
    if let (true, Some(d)) = (inline_default, &c.default) {
        s.push_str(&format!(" DEFAULT {}", rewrite(d, rewrites)));
    }
    s
}

#[cfg(test)]
mod unit {
    use super::*;
    use crate::catalog::fixture::{column, constraint, table};
    use crate::catalog::{AclEntry, Constraint, Index, Policy, Trigger};

    fn ctx<'a>(name: &'a str, exists: &'a dyn Fn(&str) -> bool) -> RenderCtx<'a> {
        RenderCtx {
            target_schema: "public",
            target_name: name,
            indexes: true,
            constraints: true,
            triggers: true,
            role_exists: exists,
            can_own: &|_| true,
            relation_taken: &|n: &str| n == "t_pkey" || n == "t",
            table_exists: &|_, t| t == "parent",
            standalone: true,
            tablespaces: Box::leak(Box::new(HashMap::new())),
        }
    }

    fn rich() -> TableDef {
        let mut t = table("public", "t");
        t.columns[0].identity = Some("a".into());
        t.columns[0].not_null = true;
        let mut serial = column(3, "n", "integer");
        serial.default = Some("nextval('public.t_n_seq'::regclass)".into());
        serial.not_null = true;
        t.columns.push(serial);
        let mut g = column(4, "note_len", "integer");
        g.generated = Some("length(note)".into());
        g.generated_kind = Some("s".into());
        t.columns.push(g);
        t.columns[1].collation = Some("pg_catalog.\"C\"".into());
        t.columns[1].storage = Some("e".into());
        t.columns[1].stattarget = Some(500);
        t.columns[1].comment = Some("it's a note".into());
        let seq = |name: &str, col: i16, identity: bool| OwnedSequence {
            schema: "public".into(),
            name: name.into(),
            column: col,
            identity,
            type_sql: "integer".into(),
            start: 1,
            increment: 1,
            min: 1,
            max: 2147483647,
            cache: 1,
            cycle: false,
            owner: "postgres".into(),
            acl: vec![],
            acl_null: true,
            comment: None,
            literal: format!("'public.{name}'"),
            persistence: "p".into(),
            last_value: 42,
            is_called: true,
        };
        t.sequences = vec![seq("t_id_seq", 1, true), seq("t_n_seq", 3, false)];
        t.constraints = vec![
            Constraint {
                def: "PRIMARY KEY (id)".into(),
                comment: Some("pk".into()),
                ..constraint("t_pkey", "p", vec![1])
            },
            Constraint {
                def: "CHECK ((n > 0))".into(),
                ..constraint("t_n_check", "c", vec![3])
            },
            Constraint {
                def: "CHECK ((n < 100)) NOT VALID".into(),
                validated: false,
                ..constraint("late", "c", vec![3])
            },
            Constraint {
                def: "FOREIGN KEY (n) REFERENCES public.t(id) DEFERRABLE".into(),
                ref_schema: Some("public".into()),
                ref_table: Some("t".into()),
                self_ref: true,
                ..constraint("t_self_fk", "f", vec![3])
            },
            Constraint {
                def: "FOREIGN KEY (n) REFERENCES public.parent(id)".into(),
                ref_schema: Some("public".into()),
                ref_table: Some("parent".into()),
                ..constraint("t_parent_fk", "f", vec![3])
            },
            Constraint {
                def: "FOREIGN KEY (n) REFERENCES public.other(id)".into(),
                ref_schema: Some("public".into()),
                ref_table: Some("other".into()),
                ..constraint("t_other_fk", "f", vec![3])
            },
        ];
        t.indexes = vec![Index {
            name: "t_lower_idx".into(),
            def: "CREATE INDEX t_lower_idx ON public.t USING btree (lower(note)) WHERE (n > 1)"
                .into(),
            columns: vec![2, 3],
            comment: Some("expr".into()),
            stats: Some(vec![(1, 250)]),
            parent_index: None,
            expression: true,
        }];
        t.triggers = vec![Trigger {
            name: "trg".into(),
            def: "CREATE TRIGGER trg BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.f()".into(),
            enabled: "D".into(),
            columns: vec![],
            comment: None,
        }];
        t.rls_enabled = true;
        t.policies = vec![
            Policy {
                name: "p_all".into(),
                permissive: true,
                cmd: "*".into(),
                roles: vec![],
                using: Some("(n > 0)".into()),
                check: None,
                comment: None,
                columns: vec![3],
            },
            Policy {
                name: "p_ghost".into(),
                permissive: false,
                cmd: "r".into(),
                roles: vec!["ghost".into()],
                using: Some("true".into()),
                check: None,
                comment: None,
                columns: vec![],
            },
        ];
        t.acl_null = false;
        t.acl = vec![
            AclEntry {
                grantee: Some("postgres".into()),
                privilege: "SELECT".into(),
                grantable: false,
            },
            AclEntry {
                grantee: Some("ghost".into()),
                privilege: "SELECT".into(),
                grantable: false,
            },
        ];
        t
    }

    #[test]
    fn a_tablespace_is_mapped_kept_or_left_with_a_notice() {
        let mut t = table("public", "t");
        t.columns = vec![column(1, "id", "integer")];
        t.tablespace = Some("fast".into());
        let exists = |_: &str| true;
        let mut c = ctx("t", &exists);
        let out = render(&t, &c);
        assert!(
            !out.pre_data[0].contains("TABLESPACE"),
            "{:?}",
            out.pre_data
        );
        assert!(out
            .notices
            .iter()
            .any(|n| n.contains("\"fast\"") && n.contains("tablespaces")));
        let map: HashMap<String, Option<String>> =
            [("fast".to_string(), Some("ssd 1".to_string()))].into();
        c.tablespaces = &map;
        let out = render(&t, &c);
        assert!(
            out.pre_data[0].ends_with(" TABLESPACE \"ssd 1\""),
            "{:?}",
            out.pre_data
        );
        assert!(out.notices.is_empty());
        let map: HashMap<String, Option<String>> =
            [("fast".to_string(), Some("pg_default".to_string()))].into();
        c.tablespaces = &map;
        let out = render(&t, &c);
        assert!(!out.pre_data[0].contains("TABLESPACE"));
        assert!(out.notices.is_empty());
    }

    #[test]
    fn keys_split_into_builds_that_run_side_by_side() {
        let exists = |r: &str| r == "postgres";
        let mut t = rich();
        // without the index definition the key stays one ALTER TABLE
        let s = render(&t, &ctx("t", &exists));
        let b = s.key_builds.expect("builds for a plain table");
        assert!(b.builds[0][0].starts_with("ALTER TABLE ONLY"));
        assert!(b.after.is_empty());
        // with it: CREATE UNIQUE INDEX now, the constraint from it after
        t.constraints[0].index_def =
            Some("CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)".into());
        t.constraints[0].deferrable = true;
        t.constraints[0].deferred = true;
        let s = render(&t, &ctx("t", &exists));
        let b = s.key_builds.expect("builds");
        assert_eq!(
            b.builds[0],
            ["CREATE UNIQUE INDEX \"t_pkey\" ON \"public\".\"t\" USING btree (id)"]
        );
        assert_eq!(
            b.after,
            ["ALTER TABLE ONLY \"public\".\"t\" ADD CONSTRAINT \"t_pkey\" PRIMARY KEY USING INDEX \"t_pkey\" DEFERRABLE INITIALLY DEFERRED"]
        );
        // every index of the table is a build of its own
        assert_eq!(b.builds.len(), 1 + t.indexes.len());
        // the serial form is unchanged
        assert!(s.keys[0].contains("ADD CONSTRAINT \"t_pkey\" PRIMARY KEY (id)"));
        // a partitioned table's keys cascade to its partitions: no builds
        t.relkind = "p".into();
        assert!(render(&t, &ctx("t", &exists)).key_builds.is_none());
    }

    #[test]
    fn same_name_keeps_every_name() {
        let exists = |r: &str| r == "postgres";
        let s = render(&rich(), &ctx("t", &exists));
        let all = s.pre_data.join(";\n") + &s.post_data().join(";\n");
        assert!(s.pre_data[0]
            .starts_with("CREATE SEQUENCE \"public\".\"t_n_seq\" AS integer START WITH 1"));
        let create = &s.pre_data[1];
        assert!(create.contains("\"id\" bigint GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME \"public\".\"t_id_seq\" START WITH 1"), "{create}");
        assert!(
            create.contains("\"note\" text COLLATE pg_catalog.\"C\""),
            "{create}"
        );
        assert!(
            create.contains("\"n\" integer NOT NULL DEFAULT nextval('public.t_n_seq'::regclass)"),
            "{create}"
        );
        assert!(
            create.contains("GENERATED ALWAYS AS (length(note)) STORED"),
            "{create}"
        );
        assert!(
            create.contains("CONSTRAINT \"t_n_check\" CHECK ((n > 0))"),
            "{create}"
        );
        assert!(
            !create.contains("late"),
            "NOT VALID checks come after the data"
        );
        assert_eq!(s.copy_columns, vec!["id", "note", "n"]);
        assert!(all.contains("ALTER COLUMN \"note\" SET STORAGE EXTERNAL"));
        assert!(all.contains("ALTER COLUMN \"note\" SET STATISTICS 500"));
        assert!(
            all.contains("ALTER SEQUENCE \"public\".\"t_n_seq\" OWNED BY \"public\".\"t\".\"n\"")
        );
        assert!(all.contains("ADD CONSTRAINT \"t_pkey\" PRIMARY KEY (id)"));
        assert!(all.contains("CREATE INDEX \"t_lower_idx\" ON \"public\".\"t\" USING btree (lower(note)) WHERE (n > 1)"));
        assert!(all
            .contains("ALTER INDEX \"public\".\"t_lower_idx\" ALTER COLUMN 1 SET STATISTICS 250"));
        assert!(all.contains("ADD CONSTRAINT \"late\" CHECK ((n < 100)) NOT VALID"));
        assert!(all.contains("ADD CONSTRAINT \"t_self_fk\" FOREIGN KEY (n) REFERENCES \"public\".\"t\"(id) DEFERRABLE"));
        assert!(all.contains("ADD CONSTRAINT \"t_parent_fk\""));
        assert!(!all.contains("t_other_fk\" FOREIGN"));
        assert!(s
            .notices
            .iter()
            .any(|n| n.contains("t_other_fk") && n.contains("\"public\".\"other\"")));
        assert!(all.contains("ALTER TABLE \"public\".\"t\" DISABLE TRIGGER \"trg\""));
        assert!(all.contains("ENABLE ROW LEVEL SECURITY"));
        assert!(all.contains("CREATE POLICY \"p_all\" ON \"public\".\"t\" AS PERMISSIVE FOR ALL TO PUBLIC USING ((n > 0))"));
        assert!(
            !all.contains("p_ghost\" ON"),
            "a policy whose roles are all missing must not become PUBLIC"
        );
        assert!(all.contains("COMMENT ON COLUMN \"public\".\"t\".\"note\" IS 'it''s a note'"));
        assert!(all.contains("COMMENT ON CONSTRAINT \"t_pkey\" ON \"public\".\"t\" IS 'pk'"));
        assert!(s
            .grants
            .contains(&"GRANT SELECT ON TABLE \"public\".\"t\" TO \"postgres\"".to_string()));
        assert!(
            !all.contains("GRANT "),
            "privileges come before the data, not after"
        );
        assert!(all.contains("setval('\"public\".\"t_id_seq\"', 42, true)"));
        assert_eq!(s.missing_roles, vec!["ghost"]);
        assert_eq!(s.counts.indexes, 2);
        assert_eq!(s.counts.sequences, 2);
    }

    #[test]
    fn renamed_clone_gets_fresh_relation_names() {
        let exists = |_: &str| true;
        let s = render(&rich(), &ctx("t2", &exists));
        let all = s.pre_data.join(";\n") + &s.post_data().join(";\n");
        assert!(
            all.contains("CREATE SEQUENCE \"public\".\"t2_n_seq\""),
            "{all}"
        );
        assert!(
            all.contains("DEFAULT nextval('\"public\".\"t2_n_seq\"'::regclass)"),
            "{all}"
        );
        assert!(
            all.contains("SEQUENCE NAME \"public\".\"t2_id_seq\""),
            "{all}"
        );
        assert!(
            all.contains("ADD CONSTRAINT \"t2_pkey\" PRIMARY KEY"),
            "{all}"
        );
        assert!(
            all.contains("CREATE INDEX \"t2_lower_idx\" ON \"public\".\"t2\""),
            "{all}"
        );
        assert!(all.contains("CONSTRAINT \"t2_n_check\" CHECK"), "{all}");
        assert!(
            all.contains("REFERENCES \"public\".\"t2\"(id)"),
            "self reference follows the rename: {all}"
        );
        assert!(
            all.contains("CREATE TRIGGER trg BEFORE INSERT ON \"public\".\"t2\""),
            "{all}"
        );
        assert!(
            !all.contains("\"public\".\"t\" "),
            "nothing may point at the source table: {all}"
        );
    }

    #[test]
    fn switches_leave_out_objects() {
        let exists = |_: &str| true;
        let mut c = ctx("t", &exists);
        c.indexes = false;
        c.constraints = false;
        c.triggers = false;
        let s = render(&rich(), &c);
        let all = s.pre_data.join(";\n") + &s.post_data().join(";\n");
        assert!(!all.contains("CHECK"));
        assert!(!all.contains("PRIMARY KEY"));
        assert!(!all.contains("CREATE INDEX"));
        assert!(!all.contains("CREATE TRIGGER"));
        assert!(all.contains("CREATE POLICY"), "policies always come along");
        assert!(all.contains("NOT NULL"), "NOT NULL is part of the column");
    }

    #[test]
    fn owner_left_alone_when_the_caller_may_not_assign_it() {
        let exists = |_: &str| true;
        let mut c = ctx("t", &exists);
        c.can_own = &|_| false;
        let s = render(&rich(), &c);
        assert!(!s.post_data().iter().any(|p| p.contains("OWNER TO")));
        assert!(!s
            .post_data()
            .iter()
            .any(|p| p.contains("FROM \"postgres\"")));
        assert!(s.notices.iter().any(|n| n.contains("owner")));
    }

    #[test]
    fn typed_table() {
        let mut t = table("public", "t");
        t.of_type = Some("public.pair".into());
        t.columns[0].not_null = true;
        let exists = |_: &str| true;
        let s = render(&t, &ctx("t", &exists));
        assert_eq!(
            s.pre_data[0],
            "CREATE TABLE \"public\".\"t\" OF public.pair"
        );
        assert!(s.pre_data.contains(
            &"ALTER TABLE ONLY \"public\".\"t\" ALTER COLUMN \"id\" SET NOT NULL".to_string()
        ));
    }

    #[test]
    fn table_options() {
        let mut t = table("public", "t");
        t.persistence = "u".into();
        t.reloptions = vec!["fillfactor=70".into()];
        t.toast_reloptions = vec!["autovacuum_enabled=false".into()];
        t.replident = "f".into();
        let exists = |_: &str| true;
        let s = render(&t, &ctx("t", &exists));
        assert!(s.pre_data[0].starts_with("CREATE UNLOGGED TABLE"));
        assert!(
            s.pre_data[0].ends_with("WITH (fillfactor='70', toast.autovacuum_enabled='false')"),
            "{}",
            s.pre_data[0]
        );
        assert!(s
            .post_data()
            .iter()
            .any(|p| p.ends_with("REPLICA IDENTITY FULL")));
    }

    /// pg_attver is kept by the server itself: not sent, while the column's
    /// other options are.
    #[test]
    fn column_options_leave_out_what_the_server_keeps() {
        let mut t = table("public", "t");
        t.columns[0].options = Some(vec!["pg_attver=406608840".into()]);
        let exists = |_: &str| true;
        let s = render(&t, &ctx("t", &exists));
        assert!(
            !s.pre_data.iter().any(|q| q.contains("pg_attver")),
            "{:?}",
            s.pre_data
        );
        t.columns[0].options = Some(vec!["pg_attver=1".into(), "n_distinct=-1".into()]);
        let s = render(&t, &ctx("t", &exists));
        assert!(
            s.pre_data.contains(
                &"ALTER TABLE ONLY \"public\".\"t\" ALTER COLUMN \"id\" SET (n_distinct='-1')"
                    .to_string()
            ),
            "{:?}",
            s.pre_data
        );
    }

    /// A column whose values the source keeps uncompressed is loaded with
    /// EXTERNAL storage and given back EXTENDED before anything else after
    /// the data, so the finished table is the source's.
    #[test]
    fn uncompressed_values_load_external_then_storage_comes_back() {
        let mut t = table("public", "t");
        t.columns.push(column(3, "body", "text"));
        t.columns[2].load_external = true;
        let exists = |_: &str| true;
        let s = render(&t, &ctx("t", &exists));
        let set = "ALTER TABLE ONLY \"public\".\"t\" ALTER COLUMN \"body\" SET STORAGE EXTERNAL";
        let back = "ALTER TABLE ONLY \"public\".\"t\" ALTER COLUMN \"body\" SET STORAGE EXTENDED";
        assert!(s.pre_data.iter().any(|q| q == set), "{:?}", s.pre_data);
        assert_eq!(
            s.rest.first().map(String::as_str),
            Some(back),
            "{:?}",
            s.rest
        );
        // A column stored MAIN or PLAIN is left as it is.
        t.columns[2].attstorage = "m".into();
        let s = render(&t, &ctx("t", &exists));
        assert!(!s
            .pre_data
            .iter()
            .chain(&s.rest)
            .any(|q| q.contains("\"body\" SET STORAGE")));
    }
}
