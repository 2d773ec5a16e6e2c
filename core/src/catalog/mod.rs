//! The source catalog as plain Rust structs. Each query asks the source to
//! build JSON, so one round trip brings a whole object kind, and every name and
//! expression arrives rendered by the source itself (`pg_get_*`, `format_type`)
//! with `search_path = ''`, so it is schema-qualified wherever that matters.

pub mod objects;
pub mod table;

use serde::Deserialize;

/// One entry of an ACL, as `aclexplode` gives it. `grantee = None` is PUBLIC.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AclEntry {
    pub grantee: Option<String>,
    pub privilege: String,
    pub grantable: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Column {
    pub attnum: i16,
    pub name: String,
    pub type_sql: String,
    pub not_null: bool,
    pub default: Option<String>,
    /// The expression of a generated column.
    pub generated: Option<String>,
    /// 's' stored (PG12+), 'v' virtual (PG18+).
    pub generated_kind: Option<String>,
    /// 'a' ALWAYS or 'd' BY DEFAULT.
    pub identity: Option<String>,
    /// Qualified, quoted collation when it is not the type's default.
    pub collation: Option<String>,
    /// Storage when it differs from the type's default.
    pub storage: Option<String>,
    /// The column's storage as it stands (`attstorage`), default or not.
    #[serde(default)]
    pub attstorage: String,
    /// Load it with `STORAGE EXTERNAL` and restore its storage after the data:
    /// the source keeps its large values uncompressed (they did not shrink),
    /// so the target would only spend CPU failing to compress them again.
    #[serde(default)]
    pub load_external: bool,
    pub stattarget: Option<i32>,
    pub options: Option<Vec<String>>,
    pub compression: Option<String>,
    pub comment: Option<String>,
    pub acl: Vec<AclEntry>,
    /// True when the type's binary COPY form is the same on any server of the
    /// same major version (built-in types, enums, domains over those).
    pub binary_ok: bool,
    /// Columns a generated expression reads.
    pub deps: Option<Vec<i16>>,
    /// Defined in this table, not only inherited.
    #[serde(default = "yes")]
    pub is_local: bool,
    /// What masks need to know of the type.
    #[serde(default)]
    pub type_facts: crate::mask::TypeFacts,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Constraint {
    pub name: String,
    /// p, u, c, f or x
    pub kind: String,
    pub def: String,
    pub validated: bool,
    pub columns: Vec<i16>,
    /// A foreign key's referenced columns, in the order of `columns`.
    #[serde(default)]
    pub ref_columns: Vec<i16>,
    pub ref_schema: Option<String>,
    pub ref_table: Option<String>,
    pub self_ref: bool,
    pub comment: Option<String>,
    pub index_comment: Option<String>,
    /// `pg_get_indexdef` of a PRIMARY KEY's or UNIQUE constraint's index.
    #[serde(default)]
    pub index_def: Option<String>,
    #[serde(default)]
    pub deferrable: bool,
    #[serde(default)]
    pub deferred: bool,
    #[serde(default = "yes")]
    pub is_local: bool,
    /// For a partition's key: the parent's index it attaches to (qualified).
    #[serde(default)]
    pub parent_index: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Index {
    pub name: String,
    pub def: String,
    pub columns: Vec<i16>,
    pub comment: Option<String>,
    /// (index column number, statistics target) for expression columns that have one.
    pub stats: Option<Vec<(i16, i32)>>,
    /// For a partition's index: the parent's index it attaches to (qualified).
    #[serde(default)]
    pub parent_index: Option<String>,
    /// Indexes an expression (ANALYZE gathers statistics for it).
    #[serde(default)]
    pub expression: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Trigger {
    pub name: String,
    pub def: String,
    /// O origin (default), D disabled, R replica, A always
    pub enabled: String,
    pub columns: Vec<i16>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Policy {
    pub name: String,
    pub permissive: bool,
    /// r SELECT, a INSERT, w UPDATE, d DELETE, * ALL
    pub cmd: String,
    /// Empty means PUBLIC.
    pub roles: Vec<String>,
    pub using: Option<String>,
    pub check: Option<String>,
    pub comment: Option<String>,
    pub columns: Vec<i16>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OwnedSequence {
    pub schema: String,
    pub name: String,
    pub column: i16,
    pub identity: bool,
    pub type_sql: String,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cache: i64,
    pub cycle: bool,
    pub owner: String,
    pub acl: Vec<AclEntry>,
    pub acl_null: bool,
    pub comment: Option<String>,
    /// The sequence's name as a literal the way the source renders it inside
    /// `nextval('...'::regclass)`, to find it in column defaults.
    pub literal: String,
    pub persistence: String,
    #[serde(default)]
    pub last_value: i64,
    #[serde(default)]
    pub is_called: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TableDef {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub relkind: String,
    pub persistence: String,
    pub reloptions: Vec<String>,
    pub toast_reloptions: Vec<String>,
    pub access_method: Option<String>,
    pub rls_enabled: bool,
    pub rls_forced: bool,
    /// d default, n nothing, f full, i index
    pub replident: String,
    pub replident_index: Option<String>,
    pub cluster_index: Option<String>,
    pub owner: String,
    pub acl: Vec<AclEntry>,
    pub acl_null: bool,
    pub comment: Option<String>,
    pub is_partition: bool,
    pub inherits: bool,
    pub tablespace: Option<String>,
    /// Heap and TOAST bytes on the source (from relpages, or measured when
    /// relpages cannot tell).
    pub bytes: i64,
    #[serde(default)]
    pub pages: i64,
    /// Never vacuumed or analyzed: `bytes` must be measured.
    #[serde(default)]
    pub size_unknown: bool,
    #[serde(default)]
    pub has_toast: bool,
    /// A one-column integer primary key, to cut the table by key ranges.
    #[serde(default)]
    pub int_key: Option<String>,
    /// Node keys of what its column defaults read.
    #[serde(default)]
    pub default_deps: Vec<String>,
    /// `pg_get_partkeydef` of a partitioned table.
    #[serde(default)]
    pub partkey: Option<String>,
    /// The parent (qualified) and bound of a partition.
    #[serde(default)]
    pub partition_of: Option<String>,
    #[serde(default)]
    pub partition_bound: Option<String>,
    /// Inheritance parents (qualified), in order.
    #[serde(default)]
    pub inherits_from: Vec<String>,
    /// The composite type of a typed table (`CREATE TABLE t OF type`).
    #[serde(default)]
    pub of_type: Option<String>,
    #[serde(default)]
    pub columns: Vec<Column>,
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    #[serde(default)]
    pub indexes: Vec<Index>,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    #[serde(default)]
    pub policies: Vec<Policy>,
    #[serde(default)]
    pub sequences: Vec<OwnedSequence>,
}

impl TableDef {
    /// Every role the definition names: the owner, grantees, policy roles.
    /// Every column COPY carries (generated ones are recomputed) has a type
    /// whose binary form holds no OIDs, so binary COPY is safe between two
    /// servers of one major version.
    pub fn binary_copy_ok(&self) -> bool {
        self.columns
            .iter()
            .filter(|c| c.generated.is_none())
            .all(|c| c.binary_ok)
    }

    pub fn roles(&self) -> Vec<String> {
        let mut r = vec![self.owner.clone()];
        let acl = self
            .acl
            .iter()
            .chain(self.columns.iter().flat_map(|c| c.acl.iter()));
        let seq_acl = self.sequences.iter().flat_map(|s| s.acl.iter());
        r.extend(acl.chain(seq_acl).filter_map(|a| a.grantee.clone()));
        r.extend(self.policies.iter().flat_map(|p| p.roles.iter().cloned()));
        r.extend(self.sequences.iter().map(|s| s.owner.clone()));
        r.sort();
        r.dedup();
        r
    }

    /// Keep only the named columns (in table order) and drop every object that
    /// reads a column left out. Returns what was dropped, for a NOTICE.
    pub fn restrict_columns(&mut self, keep: &[String]) -> Result<Vec<String>, String> {
        if let Some(missing) = keep
            .iter()
            .find(|k| !self.columns.iter().any(|c| &c.name == *k))
        {
            return Err(missing.clone());
        }
        let mut dropped_cols: Vec<i16> = Vec::new();
        let mut notes = Vec::new();
        // A generated column that reads a dropped column cannot stay either;
        // repeat until nothing more falls away.
        loop {
            let before = dropped_cols.len();
            for c in &self.columns {
                let gone = !keep.contains(&c.name)
                    || c.deps
                        .as_ref()
                        .is_some_and(|d| d.iter().any(|a| dropped_cols.contains(a)));
                if gone && !dropped_cols.contains(&c.attnum) {
                    dropped_cols.push(c.attnum);
                    if keep.contains(&c.name) {
                        notes.push(format!(
                            "generated column \"{}\" (it reads a column left out)",
                            c.name
                        ));
                    }
                }
            }
            if dropped_cols.len() == before {
                break;
            }
        }
        let hit = |cols: &[i16]| cols.iter().any(|a| dropped_cols.contains(a));
        self.columns.retain(|c| !dropped_cols.contains(&c.attnum));
        self.constraints.retain(|c| {
            let keep = !hit(&c.columns);
            if !keep {
                notes.push(format!("constraint \"{}\"", c.name));
            }
            keep
        });
        self.indexes.retain(|i| {
            let keep = !hit(&i.columns);
            if !keep {
                notes.push(format!("index \"{}\"", i.name));
            }
            keep
        });
        self.triggers.retain(|t| {
            let keep = !hit(&t.columns);
            if !keep {
                notes.push(format!("trigger \"{}\"", t.name));
            }
            keep
        });
        self.policies.retain(|p| {
            let keep = !hit(&p.columns);
            if !keep {
                notes.push(format!("policy \"{}\"", p.name));
            }
            keep
        });
        self.sequences.retain(|s| !dropped_cols.contains(&s.column));
        Ok(notes)
    }
}

#[cfg(test)]
pub(crate) mod fixture {
    use super::*;

    pub fn column(attnum: i16, name: &str, type_sql: &str) -> Column {
        Column {
            attnum,
            name: name.into(),
            type_sql: type_sql.into(),
            not_null: false,
            default: None,
            generated: None,
            generated_kind: None,
            identity: None,
            collation: None,
            storage: None,
            attstorage: "x".into(),
            load_external: false,
            stattarget: None,
            options: None,
            compression: None,
            comment: None,
            acl: vec![],
            binary_ok: true,
            deps: None,
            is_local: true,
            type_facts: Default::default(),
        }
    }

    /// A validated, local constraint of `kind` on `columns`.
    pub fn constraint(name: &str, kind: &str, columns: Vec<i16>) -> Constraint {
        Constraint {
            name: name.into(),
            kind: kind.into(),
            def: String::new(),
            validated: true,
            columns,
            ref_columns: vec![],
            ref_schema: None,
            ref_table: None,
            self_ref: false,
            comment: None,
            index_comment: None,
            index_def: None,
            deferrable: false,
            deferred: false,
            is_local: true,
            parent_index: None,
        }
    }

    pub fn table(schema: &str, name: &str) -> TableDef {
        TableDef {
            oid: 16400,
            schema: schema.into(),
            name: name.into(),
            relkind: "r".into(),
            persistence: "p".into(),
            reloptions: vec![],
            toast_reloptions: vec![],
            access_method: Some("heap".into()),
            rls_enabled: false,
            rls_forced: false,
            replident: "d".into(),
            replident_index: None,
            cluster_index: None,
            owner: "postgres".into(),
            acl: vec![],
            acl_null: true,
            comment: None,
            is_partition: false,
            inherits: false,
            tablespace: None,
            bytes: 0,
            pages: 0,
            size_unknown: false,
            has_toast: false,
            int_key: None,
            default_deps: vec![],
            partkey: None,
            partition_of: None,
            partition_bound: None,
            inherits_from: vec![],
            of_type: None,
            columns: vec![column(1, "id", "bigint"), column(2, "note", "text")],
            constraints: vec![],
            indexes: vec![],
            triggers: vec![],
            policies: vec![],
            sequences: vec![],
        }
    }
}

#[cfg(test)]
mod unit {
    use super::fixture::*;
    use super::*;

    fn view(oid: i64, name: &str) -> objects::ViewObj {
        serde_json::from_value(serde_json::json!({
            "oid": oid, "schema": "s", "name": name, "kind": "v", "def": "SELECT 1",
            "reloptions": [], "access_method": null, "populated": true, "owner": "o",
            "acl": [], "acl_null": true, "comment": null,
            "column_comments": [], "column_defaults": []
        }))
        .unwrap()
    }

    #[test]
    fn privileges_a_target_lacks_are_left_out_with_a_notice() {
        let grant = |p: &str| AclEntry {
            grantee: Some("app".into()),
            privilege: p.into(),
            grantable: false,
        };
        let mut t = table("s", "t");
        t.acl = vec![grant("SELECT"), grant("MAINTAIN")];
        let mut v = view(20, "v");
        v.acl = vec![grant("MAINTAIN")];
        let mut inv = Inventory {
            tables: vec![t],
            views: vec![v],
            ..Inventory::default()
        };
        let mut same = inv.clone();
        same.drop_privileges(unknown_privileges(170000));
        assert_eq!(same.tables[0].acl.len(), 2);
        assert!(same.notices.is_empty());
        inv.drop_privileges(unknown_privileges(150008));
        assert_eq!(inv.tables[0].acl, vec![grant("SELECT")]);
        assert!(inv.views[0].acl.is_empty());
        assert_eq!(
            inv.notices,
            ["2 grants of MAINTAIN left out: this server's version does not have that privilege"]
        );
    }

    /// A view of a table left out goes, and a view of that view, each with
    /// a NOTICE; a view of a kept table stays.
    #[test]
    fn readers_of_a_left_out_table_are_left_out() {
        let mut inv = Inventory {
            views: vec![view(20, "on_a"), view(21, "on_on_a"), view(22, "on_b")],
            left_out: vec![("rel:10".into(), "table s.a".into())],
            edges: vec![
                ("rel:20".into(), "rel:10".into()),
                ("rel:21".into(), "rel:20".into()),
                ("rel:22".into(), "rel:11".into()),
            ],
            ..Inventory::default()
        };
        inv.leave_out_readers();
        let kept: Vec<&str> = inv.views.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(kept, ["on_b"]);
        assert_eq!(
            inv.notices,
            [
                "view s.on_a not cloned: it reads table s.a, which the clone leaves out",
                "view s.on_on_a not cloned: it reads view s.on_a, which the clone leaves out"
            ]
        );
    }

    #[test]
    fn restrict_columns_drops_dependents() {
        let mut t = table("public", "t");
        let mut g = column(3, "note_len", "integer");
        g.generated = Some("length(note)".into());
        g.deps = Some(vec![2]);
        t.columns.push(g);
        t.indexes.push(Index {
            name: "t_note_idx".into(),
            def: "CREATE INDEX t_note_idx ON public.t USING btree (note)".into(),
            columns: vec![2],
            comment: None,
            stats: None,
            parent_index: None,
            expression: false,
        });
        t.indexes.push(Index {
            name: "t_id_idx".into(),
            def: "CREATE INDEX t_id_idx ON public.t USING btree (id)".into(),
            columns: vec![1],
            comment: None,
            stats: None,
            parent_index: None,
            expression: false,
        });
        let notes = t
            .restrict_columns(&["id".into(), "note_len".into()])
            .unwrap();
        assert_eq!(
            t.columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            vec!["id"]
        );
        assert_eq!(t.indexes.len(), 1);
        assert!(notes.iter().any(|n| n.contains("note_len")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("t_note_idx")), "{notes:?}");
    }

    #[test]
    fn restrict_columns_names_unknown() {
        let mut t = table("public", "t");
        assert_eq!(
            t.restrict_columns(&["nope".into()]),
            Err("nope".to_string())
        );
    }

    #[test]
    fn roles_are_collected_once() {
        let mut t = table("public", "t");
        t.acl.push(AclEntry {
            grantee: Some("reader".into()),
            privilege: "SELECT".into(),
            grantable: false,
        });
        t.acl.push(AclEntry {
            grantee: None,
            privilege: "SELECT".into(),
            grantable: false,
        });
        t.policies.push(Policy {
            name: "p".into(),
            permissive: true,
            cmd: "r".into(),
            roles: vec!["reader".into(), "app".into()],
            using: Some("true".into()),
            check: None,
            comment: None,
            columns: vec![],
        });
        assert_eq!(t.roles(), vec!["app", "postgres", "reader"]);
    }
}

/// Everything a clone reads from the source, for the schemas it takes.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub schemas: Vec<objects::SchemaObj>,
    pub tables: Vec<TableDef>,
    pub types: Vec<objects::TypeObj>,
    pub procs: Vec<objects::ProcObj>,
    pub sequences: Vec<objects::SeqObj>,
    pub views: Vec<objects::ViewObj>,
    /// Indexes of materialized views, by the view's OID.
    pub matview_indexes: Vec<(i64, Vec<Index>)>,
    /// Triggers on views (INSTEAD OF and others), by the view's OID.
    pub view_triggers: Vec<(i64, Vec<Trigger>)>,
    pub rules: Vec<objects::RuleObj>,
    pub stats: Vec<objects::StatObj>,
    pub collations: Vec<objects::CollObj>,
    pub extensions: Vec<objects::ExtObj>,
    /// Columns of each extension configuration table (schema, table) to copy.
    pub extension_columns: Vec<(String, String, Vec<String>)>,
    pub default_acls: Vec<objects::DefaultAcl>,
    pub large_objects: Vec<objects::LargeObj>,
    /// (from, to) node keys.
    pub edges: Vec<(String, String)>,
    /// (node, table): the node needs the table's keys built first.
    pub key_edges: Vec<(String, String)>,
    /// A member of an extension stands for its extension; a table's own
    /// sequence for its table.
    pub aliases: std::collections::HashMap<String, String>,
    pub not_cloned: Vec<String>,
    pub operators: Vec<objects::OperObj>,
    pub ts_dicts: Vec<objects::TsDictObj>,
    pub ts_configs: Vec<objects::TsConfigObj>,
    pub casts: Vec<objects::CastObj>,
    pub event_triggers: Vec<objects::EventTriggerObj>,
    pub publications: Vec<objects::PublicationObj>,
    /// Tables of the cloned schemas that `include_tables` or
    /// `exclude_tables` leave out: node key and qualified name.
    pub left_out: Vec<(String, String)>,
    /// What was left out because of them.
    pub notices: Vec<String>,
}

/// Privileges a server of this version does not know: a newer source's
/// grants of them cannot be replayed (MAINTAIN came with PostgreSQL 17).
pub fn unknown_privileges(target_version_num: i32) -> &'static [&'static str] {
    if target_version_num < 170000 {
        &["MAINTAIN"]
    } else {
        &[]
    }
}

impl Inventory {
    /// Drop every grant of a privilege in `unknown` (the target's version
    /// lacks it), with one NOTICE saying which and how many.
    pub fn drop_privileges(&mut self, unknown: &[&str]) {
        if unknown.is_empty() {
            return;
        }
        let mut dropped = 0usize;
        let mut keep = |acl: &mut Vec<AclEntry>| {
            let before = acl.len();
            acl.retain(|a| !unknown.contains(&a.privilege.as_str()));
            dropped += before - acl.len();
        };
        for t in &mut self.tables {
            keep(&mut t.acl);
            t.columns.iter_mut().for_each(|c| keep(&mut c.acl));
            t.sequences.iter_mut().for_each(|s| keep(&mut s.acl));
        }
        self.schemas.iter_mut().for_each(|o| keep(&mut o.acl));
        self.types.iter_mut().for_each(|o| keep(&mut o.acl));
        self.procs.iter_mut().for_each(|o| keep(&mut o.acl));
        self.sequences.iter_mut().for_each(|o| keep(&mut o.acl));
        self.views.iter_mut().for_each(|o| keep(&mut o.acl));
        self.large_objects.iter_mut().for_each(|o| keep(&mut o.acl));
        self.default_acls.iter_mut().for_each(|o| keep(&mut o.acl));
        if dropped > 0 {
            self.notices.push(format!(
                "{dropped} grants of {} left out: this server's version does not have that privilege",
                unknown.join(", ")
            ));
        }
    }

    /// Views, materialized views and routines that read a table the clone
    /// leaves out (or another object left out for it) cannot be made: they
    /// are left out too, each with a NOTICE naming what it reads.
    pub fn leave_out_readers(&mut self) {
        use std::collections::{HashMap, HashSet};
        if self.left_out.is_empty() {
            return;
        }
        let resolve = |k: &String| self.aliases.get(k).cloned().unwrap_or_else(|| k.clone());
        // Left out, by node key: the name a NOTICE gives it.
        let mut gone: HashMap<String, String> = self.left_out.iter().cloned().collect();
        let edges: Vec<(String, String)> = self
            .edges
            .iter()
            .map(|(f, t)| (resolve(f), resolve(t)))
            .collect();
        // What may have to go with them: (kind, schema.name) by node key.
        let mut readers: HashMap<String, (&str, String)> = HashMap::new();
        for v in &self.views {
            let word = if v.kind == "m" {
                "materialized view"
            } else {
                "view"
            };
            readers.insert(
                format!("rel:{}", v.oid),
                (word, format!("{}.{}", v.schema, v.name)),
            );
        }
        for p in &self.procs {
            let name = format!("{}.{}({})", p.schema, p.name, p.identity_args);
            readers.insert(format!("proc:{}", p.oid), ("function", name));
        }
        loop {
            let mut more: Vec<(String, String)> = Vec::new();
            for (from, to) in &edges {
                if gone.contains_key(from) || !readers.contains_key(from) {
                    continue;
                }
                if let Some(what) = gone.get(to) {
                    more.push((from.clone(), what.clone()));
                }
            }
            if more.is_empty() {
                break;
            }
            for (key, reads) in more {
                if gone.contains_key(&key) {
                    continue;
                }
                let (word, name) = &readers[&key];
                self.notices.push(format!(
                    "{word} {name} not cloned: it reads {reads}, which the clone leaves out"
                ));
                gone.insert(key, format!("{word} {name}"));
            }
        }
        let kept = |k: String| !gone.contains_key(&k);
        self.views.retain(|v| kept(format!("rel:{}", v.oid)));
        self.procs.retain(|p| kept(format!("proc:{}", p.oid)));
        let views: HashSet<i64> = self.views.iter().map(|v| v.oid).collect();
        self.matview_indexes.retain(|(oid, _)| views.contains(oid));
        self.view_triggers.retain(|(oid, _)| views.contains(oid));
        // A rule on a view left out goes with it (rules name their
        // relation as quote_ident does).
        let dropped_views: HashSet<String> = readers
            .iter()
            .filter(|(k, (w, _))| gone.contains_key(*k) && *w != "function")
            .map(|(_, (_, n))| n.clone())
            .collect();
        self.rules
            .retain(|r| !dropped_views.contains(&r.table.replace('"', "")));
    }
}
