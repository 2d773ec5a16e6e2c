//! A clone as units of work with dependencies between them. Pure.
//!
//! Every clone, whatever the call, is this plan: the serial path runs the
//! units in id order in the caller's transaction (ids are a topological
//! order: a unit only ever depends on units with smaller ids); a job hands
//! ready units to its workers as their dependencies complete, each unit one
//! transaction with its own "done" mark.
//!
//! The shape follows where the time goes:
//! - objects that are not tables (types, functions, views...) are created
//!   in DDL units, many statements to a unit;
//! - small tables are created, loaded (COPY FREEZE: the table is new in the
//!   same transaction), keyed, indexed and analyzed several to a unit, so a
//!   database of thousands of small tables costs a few hundred transactions;
//! - a large table is created and loaded in a unit of its own, its indexes
//!   then built side by side in units of their own; one that would keep a
//!   worker busy far longer than the rest is cut into parts first;
//! - foreign keys go in units per group of tables they link (groups share
//!   no table, so their locks never meet), then one final unit does what
//!   must see everything (rules, comments, publications, event triggers).

use crate::copy::{CopySource, Part};
use crate::ddl::table::KeyBuilds;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Where a unit's work belongs, for the phase a job shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Stage {
    /// Objects the tables need.
    Schema,
    /// Tables, their rows and indexes; views and their refreshes.
    Data,
    /// Foreign keys, index attachments, what comes last.
    Post,
}

impl Stage {
    pub fn phase(self) -> &'static str {
        match self {
            Stage::Schema => "schema",
            Stage::Data => "copy",
            Stage::Post => "post-data",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnitKind {
    /// Statements that create objects.
    Ddl,
    /// Small tables: create (or truncate), copy, keys, indexes, analyze.
    Tables,
    /// One large table, or one part of it.
    Copy,
    /// One group of a large table's indexes.
    Index,
    /// What follows a large table's index builds.
    Keys,
    Refresh,
    ForeignKeys,
    /// Keys of partitioned tables and the attachment of partition indexes.
    Attach,
    LargeObjects,
    Final,
}

impl UnitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::Ddl => "ddl",
            UnitKind::Tables => "tables",
            UnitKind::Copy => "copy",
            UnitKind::Index => "index",
            UnitKind::Keys => "keys",
            UnitKind::Refresh => "refresh",
            UnitKind::ForeignKeys => "foreign keys",
            UnitKind::Attach => "attach",
            UnitKind::LargeObjects => "large objects",
            UnitKind::Final => "final",
        }
    }
}

/// A COPY from the source into a table of the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyStep {
    pub schema: String,
    /// The table on the target (a renamed clone's new name).
    pub table: String,
    pub source: CopySource,
    /// FREEZE: the table was created or truncated in the unit's transaction.
    pub freeze: bool,
    /// TRUNCATE first (a table made in an earlier unit, so FREEZE may apply).
    pub truncate: bool,
    /// The role the rows are loaded as (the table's owner), so code from the
    /// source (CHECK, domain and generated-column expressions) runs with its
    /// rights; None: the caller's.
    pub run_as: Option<String>,
    /// The rows pass the caller's `where` filter: an error the source raises
    /// is the filter's.
    #[serde(default)]
    pub user_filter: bool,
    /// The table may be missing here (an extension's configuration table of
    /// an extension that lacks it on this side): then nothing is copied.
    #[serde(default)]
    pub optional: bool,
}

/// One thing a unit does.
// A unit holds a handful of steps: the room a statement step leaves
// unused beside a copy step costs little, a box per copy would cost more.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Step {
    /// Statements run one after the other; `about` names the object for
    /// error messages.
    Sql {
        about: String,
        sql: Vec<String>,
    },
    Copy(CopyStep),
    /// A large object and its contents (or an empty one without data).
    LargeObject {
        oid: u32,
        with_data: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    /// 1-based; a unit depends only on smaller ids.
    pub id: u32,
    pub stage: Stage,
    pub kind: UnitKind,
    /// What it works on, for progress and errors ("s.t", "12 tables: s.a, ...").
    pub label: String,
    pub steps: Vec<Step>,
    pub deps: Vec<u32>,
    /// Bytes of source data it moves or indexes: the larger, the sooner.
    pub est_bytes: i64,
    /// Tables this unit completes (for "tables completed").
    pub tables_done: u32,
}

impl Unit {
    fn new(id: u32, stage: Stage, kind: UnitKind, label: String) -> Unit {
        Unit {
            id,
            stage,
            kind,
            label,
            steps: Vec::new(),
            deps: Vec::new(),
            est_bytes: 0,
            tables_done: 0,
        }
    }

    fn sql(&mut self, about: &str, sql: &[String]) {
        if sql.is_empty() {
            return;
        }
        match self.steps.last_mut() {
            Some(Step::Sql { about: a, sql: s }) if a == about => s.extend(sql.iter().cloned()),
            _ => self.steps.push(Step::Sql {
                about: about.to_string(),
                sql: sql.to_vec(),
            }),
        }
    }

    /// Like `sql`, but moves the statements in: a table's scripts are most
    /// of a large plan's memory, and the plan is their last owner.
    fn put(&mut self, about: &str, sql: &mut Vec<String>) {
        if sql.is_empty() {
            return;
        }
        let sql = std::mem::take(sql);
        match self.steps.last_mut() {
            Some(Step::Sql { about: a, sql: s }) if a == about => s.extend(sql),
            _ => self.steps.push(Step::Sql {
                about: about.to_string(),
                sql,
            }),
        }
    }

    fn depend(&mut self, on: impl IntoIterator<Item = u32>) {
        for d in on {
            if d != self.id && !self.deps.contains(&d) {
                self.deps.push(d);
            }
        }
    }

    /// How many statements and copies it runs.
    pub fn size(&self) -> usize {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Sql { sql, .. } => sql.len(),
                _ => 1,
            })
            .sum()
    }
}

/// An object created before the data that is not a table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObjectNode {
    pub key: String,
    /// "view s.v", for errors.
    pub about: String,
    pub create: Vec<String>,
    pub grants: Vec<String>,
    /// Views, materialized views: wait for the tables they read.
    pub after_tables: bool,
}

/// How a large table may be cut into parts.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum SplitBasis {
    #[default]
    None,
    /// Heap pages.
    Pages(i64),
    /// A NOT NULL integer key column (a one-column primary key), min and max.
    Key { column: String, min: i64, max: i64 },
}

/// A table of the clone, rendered.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableNode {
    pub key: String,
    pub schema: String,
    /// The name on the target.
    pub name: String,
    /// Partitioned: no rows of its own; its keys wait for its partitions'.
    pub partitioned: bool,
    /// A partition or inheritance child: its CREATE takes a lock on its
    /// parent, so it is created apart from its (long) data unit.
    pub child: bool,
    /// Heap and TOAST bytes on the source.
    pub bytes: i64,
    pub copy: Option<CopySource>,
    pub split: SplitBasis,
    pub owner: Option<String>,
    pub create: Vec<String>,
    pub grants: Vec<String>,
    /// Column defaults; `defaults_late`: they read objects made after the
    /// table, so they wait for the final unit.
    pub defaults: Vec<String>,
    pub defaults_late: bool,
    /// Keys and indexes, one after the other.
    pub keys: Vec<String>,
    /// The same as groups that can be built side by side, and what follows.
    pub key_builds: Option<KeyBuilds>,
    /// Partition indexes attached to the parent's, once all exist.
    pub attach: Vec<String>,
    pub fks: Vec<String>,
    /// Keys of the tables its foreign keys reference.
    pub fk_tables: Vec<String>,
    pub rest: Vec<String>,
    pub analyze: Option<String>,
    /// Its statistics and what a query over it sees wait for its keys unit:
    /// row-level security is on (policies decide what a query reads, and
    /// they come with the keys), or an expression index is built there
    /// (ANALYZE gathers statistics for its expressions).
    pub read_late: bool,
}

/// A populated materialized view: its refresh, then its indexes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Refresh {
    pub key: String,
    pub about: String,
    pub sql: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Workers of the job (1 for a serial clone).
    pub workers: u32,
    /// Everything runs in one transaction (the serial path): COPY cannot
    /// FREEZE there (PostgreSQL refuses it inside a query), nor need it.
    pub one_transaction: bool,
    /// A table above this many bytes is cut into parts; None: when it alone
    /// would be more than a worker's share of all the data.
    pub split_larger_than: Option<i64>,
    /// Tables up to this size are loaded several to a unit.
    pub small_table: i64,
    pub batch_tables: usize,
    pub batch_bytes: i64,
    /// Statements in one DDL or foreign key unit, at most.
    pub batch_statements: usize,
}

/// Tables up to this size are loaded several to a unit, their keys built
/// with their rows; larger ones build each index in a unit of its own.
pub const SMALL_TABLE_BYTES: i64 = 16 << 20;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            workers: 1,
            one_transaction: false,
            split_larger_than: None,
            small_table: SMALL_TABLE_BYTES,
            batch_tables: 32,
            batch_bytes: 64 << 20,
            batch_statements: 500,
        }
    }
}

/// Everything the plan is made of.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanInput {
    /// Every object and table key, each after everything it needs.
    pub order: Vec<String>,
    /// Node → the nodes it needs.
    pub deps: HashMap<String, Vec<String>>,
    /// Node → the tables whose keys it needs built first.
    pub after_keys: HashMap<String, Vec<String>>,
    pub objects: HashMap<String, ObjectNode>,
    pub tables: HashMap<String, TableNode>,
    /// Populated materialized views, in dependency order.
    pub refreshes: Vec<Refresh>,
    /// Large objects: (oid, with data).
    pub large_objects: Vec<(u32, bool)>,
    /// Copies of extension configuration tables.
    pub extension_data: Vec<CopyStep>,
    /// What the final unit runs: (about, statements), in order.
    pub last: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub units: Vec<Unit>,
    pub tables_total: i64,
    pub bytes_total: i64,
}

/// The smallest part worth a worker of its own.
const MIN_PART_BYTES: i64 = 64 << 20;
/// Parts of one table, at most.
const MAX_PARTS: i64 = 64;

/// How many parts a table of `bytes` is cut into. With an explicit
/// threshold, every table above it is split into parts of about that size
/// (at least one per worker); without one, a table is split when it alone is
/// well over a worker's share of all the data (it would hold one worker long
/// after the others ran out of work). Its parts are then half a share each
/// when other tables are left to pack beside them: parts of a whole share
/// leave the next largest table to one worker while the others wait (two
/// tables of 1.3 and 0.5 GB on two workers: 0.65 + 0.5 GB on one, 0.65 on
/// the other), half shares fill in around it.
pub fn parts(bytes: i64, total: i64, workers: u32, explicit: Option<i64>) -> i64 {
    if workers < 2 || bytes < 2 * MIN_PART_BYTES {
        return 1;
    }
    let n = match explicit {
        Some(t) if t <= 0 => return 1,
        Some(t) if bytes <= t => return 1,
        Some(t) => ((bytes + t - 1) / t).max(workers as i64),
        None => {
            // A table a little over its share costs the others a little
            // idle time, less than cutting it costs (no FREEZE, its index
            // builds waiting for every part): only a quarter over is cut.
            let share = (total / workers as i64).max(1);
            if bytes * 4 <= share * 5 {
                return 1;
            }
            // Other tables worth packing beside the parts: more than a
            // twentieth of a share.
            let part = if (total - bytes) * 20 > share {
                (share / 2).max(1)
            } else {
                share
            };
            (bytes + part - 1) / part
        }
    };
    n.min(bytes / MIN_PART_BYTES).clamp(1, MAX_PARTS)
}

/// The parts of a table cut `n` ways: by key value where there is a key,
/// else by pages. The first and last parts are open, so no row is lost
/// whatever was written since the sizes were read.
pub fn cut(split: &SplitBasis, n: i64) -> Vec<Part> {
    match split {
        SplitBasis::Key { column, min, max } if n > 1 && max > min => {
            let span = (*max as i128 - *min as i128 + 1).max(1);
            let bound = |i: i64| (*min as i128 + span * i as i128 / n as i128) as i64;
            (0..n)
                .map(|i| Part::Key {
                    column: column.clone(),
                    lo: (i > 0).then(|| bound(i)),
                    hi: (i < n - 1).then(|| bound(i + 1)),
                })
                .collect()
        }
        SplitBasis::Pages(pages) if n > 1 => {
            let per = (*pages + n - 1) / n;
            (0..n)
                .map(|i| Part::Pages(per * i, (i < n - 1).then(|| per * (i + 1))))
                .collect()
        }
        _ => Vec::new(),
    }
}

struct Builder<'a> {
    /// The input without its tables, which `build` holds apart so that
    /// their statements can move into the units.
    input: &'a PlanInput,
    settings: &'a Settings,
    units: Vec<Unit>,
    /// The unit that makes each node (a table: the one that creates it).
    made_in: HashMap<String, u32>,
    /// The unit after which a table is complete (rows, keys, indexes).
    done_in: HashMap<String, u32>,
    /// The units after which every table reads as it will in the end: its
    /// rows in and analyzed, its policies made. A refresh waits for these,
    /// not for the indexes.
    readable: Vec<u32>,
    open_ddl: Option<usize>,
    open_batch: Option<usize>,
    total_bytes: i64,
}

impl Builder<'_> {
    fn add(&mut self, stage: Stage, kind: UnitKind, label: String) -> usize {
        let id = self.units.len() as u32 + 1;
        self.units.push(Unit::new(id, stage, kind, label));
        self.units.len() - 1
    }

    /// The units a node's dependencies are made in (the latest of them is
    /// what decides where the node may go).
    fn dep_units(&self, key: &str) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .input
            .deps
            .get(key)
            .into_iter()
            .flatten()
            .filter(|d| d.as_str() != key)
            .filter_map(|d| self.made_in.get(d).copied())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// A unit of `kind` the node may join: the open one, if every dependency
    /// is made in it or before it and it has room; else a new one.
    fn unit_for(&mut self, kind: UnitKind, deps: &[u32], room: bool) -> usize {
        let latest = deps.iter().max().copied().unwrap_or(0);
        let open = match kind {
            UnitKind::Ddl => self.open_ddl,
            _ => self.open_batch,
        };
        if let Some(i) = open {
            if room && self.units[i].id >= latest {
                return i;
            }
        }
        let stage = if kind == UnitKind::Ddl && self.done_in.is_empty() {
            Stage::Schema
        } else {
            Stage::Data
        };
        let label = match kind {
            UnitKind::Ddl => "objects".to_string(),
            _ => "tables".to_string(),
        };
        let i = self.add(stage, kind, label);
        match kind {
            UnitKind::Ddl => self.open_ddl = Some(i),
            _ => self.open_batch = Some(i),
        }
        i
    }

    fn object(&mut self, mut n: ObjectNode) {
        let mut deps = self.dep_units(&n.key);
        // The unit that completes each table whose keys it relies on.
        deps.extend(
            self.input
                .after_keys
                .get(&n.key)
                .into_iter()
                .flatten()
                .filter_map(|t| self.done_in.get(t).copied()),
        );
        deps.sort_unstable();
        deps.dedup();
        let room = self
            .open_ddl
            .is_some_and(|i| self.units[i].size() < self.settings.batch_statements);
        let i = self.unit_for(UnitKind::Ddl, &deps, room);
        let u = &mut self.units[i];
        u.depend(deps);
        u.put(&n.about, &mut n.create);
        u.put(&n.about, &mut n.grants);
        self.made_in.insert(n.key.clone(), u.id);
    }

    fn small(&self, t: &TableNode) -> bool {
        t.copy.is_none() || (t.bytes <= self.settings.small_table && self.split_of(t) == 1)
    }

    fn split_of(&self, t: &TableNode) -> i64 {
        if t.copy.is_none() || matches!(t.split, SplitBasis::None) {
            return 1;
        }
        parts(
            t.bytes,
            self.total_bytes,
            self.settings.workers,
            self.settings.split_larger_than,
        )
    }

    fn copy_step(&self, t: &TableNode, source: CopySource, whole: bool, made_here: bool) -> Step {
        let one = self.settings.one_transaction;
        let source_filtered = source.filter.is_some();
        Step::Copy(CopyStep {
            schema: t.schema.clone(),
            table: t.name.clone(),
            source,
            freeze: whole && !one,
            truncate: whole && !one && !made_here,
            run_as: t.owner.clone(),
            user_filter: source_filtered,
            optional: false,
        })
    }

    /// Where a table is created: in its data unit, or (a child of another
    /// table, or one whose rows come in parts) in a DDL unit first. The
    /// statements it places are moved out of `t`; what later stages need
    /// (a partitioned table's keys, attach, foreign keys, late defaults)
    /// stays.
    fn table(&mut self, t: &mut TableNode) {
        let deps = self.dep_units(&t.key);
        let about = format!("table {}.{}", t.schema, t.name);
        let parts = self.split_of(t);
        let created_apart = t.child || t.partitioned || parts > 1;
        let mut create_unit = None;
        if created_apart {
            let room = self
                .open_ddl
                .is_some_and(|i| self.units[i].size() < self.settings.batch_statements);
            let i = self.unit_for(UnitKind::Ddl, &deps, room);
            let u = &mut self.units[i];
            u.depend(deps.iter().copied());
            u.put(&about, &mut t.create);
            u.put(&about, &mut t.grants);
            if !t.defaults_late {
                u.put(&about, &mut t.defaults);
            }
            self.made_in.insert(t.key.clone(), u.id);
            create_unit = Some(u.id);
        }
        if t.partitioned {
            // No rows: it counts as done once made; its keys wait for its
            // partitions' (the attach unit).
            if let Some(id) = create_unit {
                self.units[id as usize - 1].tables_done += 1;
            }
            self.done_in.insert(t.key.clone(), create_unit.unwrap_or(0));
            return;
        }
        if self.small(t) {
            self.small_table(t, &about, &deps, create_unit);
        } else {
            self.large_table(t, &about, &deps, create_unit, parts);
        }
    }

    fn small_table(&mut self, t: &mut TableNode, about: &str, deps: &[u32], made: Option<u32>) {
        let room = self.open_batch.is_some_and(|i| {
            let u = &self.units[i];
            (u.tables_done as usize) < self.settings.batch_tables
                && u.est_bytes + t.bytes <= self.settings.batch_bytes
        });
        let mut need: Vec<u32> = deps.to_vec();
        need.extend(made);
        let i = self.unit_for(UnitKind::Tables, &need, room);
        let copy = t
            .copy
            .take()
            .map(|c| self.copy_step(t, c, true, made.is_none()));
        let u = &mut self.units[i];
        u.depend(need);
        if made.is_none() {
            u.put(about, &mut t.create);
            u.put(about, &mut t.grants);
            if !t.defaults_late {
                u.put(about, &mut t.defaults);
            }
        }
        let copied = copy.is_some();
        if let Some(c) = copy {
            u.steps.push(c);
        }
        u.put(about, &mut t.keys);
        u.put(about, &mut t.rest);
        if copied {
            u.sql(about, t.analyze.as_slice());
        }
        u.est_bytes += t.bytes;
        u.tables_done += 1;
        // The tables by name, as far as a label goes.
        let name = format!("{}.{}", t.schema, t.name);
        if u.tables_done == 1 {
            u.label = name;
        } else if u.label.len() + name.len() < 200 {
            u.label = format!("{}, {name}", u.label);
        } else if !u.label.ends_with(", ...") {
            u.label.push_str(", ...");
        }
        let id = u.id;
        self.made_in.entry(t.key.clone()).or_insert(id);
        self.done_in.insert(t.key.clone(), id);
        self.readable.push(id);
    }

    fn large_table(
        &mut self,
        t: &mut TableNode,
        about: &str,
        deps: &[u32],
        made: Option<u32>,
        parts: i64,
    ) {
        let label = format!("{}.{}", t.schema, t.name);
        let mut loads: Vec<u32> = Vec::new();
        let source = t.copy.take().unwrap_or_else(|| CopySource {
            schema: t.schema.clone(),
            table: t.name.clone(),
            columns: Vec::new(),
            filter: None,
            binary: false,
            part: None,
            masks: Vec::new(),
        });
        let pieces = cut(&t.split, parts);
        // Read by refreshes once its one load is in (see `read_late`).
        let read_early = pieces.is_empty() && !t.read_late;
        if pieces.is_empty() {
            let i = self.add(Stage::Data, UnitKind::Copy, label.clone());
            let step = self.copy_step(t, source, true, made.is_none());
            let u = &mut self.units[i];
            u.depend(deps.iter().copied().chain(made));
            if made.is_none() {
                u.put(about, &mut t.create);
                u.put(about, &mut t.grants);
                if !t.defaults_late {
                    u.put(about, &mut t.defaults);
                }
            }
            u.steps.push(step);
            u.est_bytes = t.bytes;
            // Statistics with the rows, in the same transaction (ANALYZE
            // counts its own transaction's rows): a refresh that reads the
            // table need not wait for its indexes to be planned well.
            if read_early {
                u.sql(about, t.analyze.take().as_slice());
            }
            loads.push(u.id);
            if read_early {
                self.readable.push(u.id);
            }
            self.made_in.entry(t.key.clone()).or_insert(u.id);
        } else {
            let n = pieces.len();
            for (k, part) in pieces.into_iter().enumerate() {
                let i = self.add(
                    Stage::Data,
                    UnitKind::Copy,
                    format!("{label} (part {} of {n})", k + 1),
                );
                let mut s = source.clone();
                s.part = Some(part);
                let step = self.copy_step(t, s, false, false);
                let u = &mut self.units[i];
                u.depend(deps.iter().copied().chain(made));
                u.steps.push(step);
                u.est_bytes = t.bytes / n as i64;
                loads.push(u.id);
            }
        }
        // Indexes side by side, then what turns them into constraints.
        let (groups, mut after) = match t.key_builds.take() {
            Some(b) => (b.builds, b.after),
            None => (vec![std::mem::take(&mut t.keys)], Vec::new()),
        };
        let mut built: Vec<u32> = Vec::new();
        for mut g in groups.into_iter().filter(|g| !g.is_empty()) {
            let i = self.add(Stage::Data, UnitKind::Index, label.clone());
            let u = &mut self.units[i];
            u.depend(loads.iter().copied());
            u.put(about, &mut g);
            u.est_bytes = t.bytes / 2;
            built.push(u.id);
        }
        let i = self.add(Stage::Data, UnitKind::Keys, label);
        let u = &mut self.units[i];
        u.depend(loads.iter().copied().chain(built));
        u.put(about, &mut after);
        u.put(about, &mut t.rest);
        u.sql(about, t.analyze.as_slice());
        u.tables_done = 1;
        let id = u.id;
        self.done_in.insert(t.key.clone(), id);
        if !read_early {
            self.readable.push(id);
        }
    }

    /// Every unit that completes a table.
    fn data_done(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.done_in.values().copied().filter(|i| *i > 0).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Materialized views, one after the other (one may read another), each
    /// once every table reads as it will in the end.
    fn refreshes(&mut self) {
        let mut data = self.readable.clone();
        data.sort_unstable();
        data.dedup();
        let mut prev: Option<u32> = None;
        for r in &self.input.refreshes {
            let made = self.made_in.get(&r.key).copied();
            let i = self.add(Stage::Data, UnitKind::Refresh, r.about.clone());
            let u = &mut self.units[i];
            u.depend(data.iter().copied().chain(made).chain(prev));
            u.sql(&r.about, &r.sql);
            prev = Some(u.id);
        }
    }

    fn large_objects(&mut self) {
        if self.input.large_objects.is_empty() && self.input.extension_data.is_empty() {
            return;
        }
        let schema_units: Vec<u32> = self
            .units
            .iter()
            .filter(|u| u.stage == Stage::Schema)
            .map(|u| u.id)
            .collect();
        let i = self.add(
            Stage::Data,
            UnitKind::LargeObjects,
            "large objects and extension data".into(),
        );
        let u = &mut self.units[i];
        u.depend(schema_units);
        for (oid, with_data) in &self.input.large_objects {
            u.steps.push(Step::LargeObject {
                oid: *oid,
                with_data: *with_data,
            });
        }
        for c in &self.input.extension_data {
            u.steps.push(Step::Copy(c.clone()));
        }
    }

    /// Partitioned tables' keys, then partition indexes joined to them.
    fn attach(&mut self, tables: &HashMap<String, TableNode>) -> Option<u32> {
        let order = &self.input.order;
        let parents: Vec<&TableNode> = order
            .iter()
            .filter_map(|k| tables.get(k))
            .filter(|t| t.partitioned)
            .collect();
        let attaches: Vec<&TableNode> = order
            .iter()
            .filter_map(|k| tables.get(k))
            .filter(|t| !t.attach.is_empty())
            .collect();
        if parents
            .iter()
            .all(|t| t.keys.is_empty() && t.rest.is_empty())
            && attaches.is_empty()
        {
            // Partitioned tables with nothing to add still count as done here.
            return None;
        }
        let data = self.data_done();
        let i = self.add(Stage::Post, UnitKind::Attach, "partitioned tables".into());
        let u = &mut self.units[i];
        u.depend(data);
        for t in &parents {
            let about = format!("table {}.{}", t.schema, t.name);
            u.sql(&about, &t.keys);
            u.sql(&about, &t.rest);
        }
        for t in attaches {
            u.sql(&format!("table {}.{}", t.schema, t.name), &t.attach);
        }
        let id = u.id;
        for t in parents {
            self.done_in.insert(t.key.clone(), id);
        }
        Some(id)
    }

    /// Foreign keys per group of tables they link: groups share no table,
    /// so they run side by side without lock waits; a large group is a
    /// chain of units.
    fn foreign_keys(&mut self, tables: &HashMap<String, TableNode>, attach: Option<u32>) {
        let order = &self.input.order;
        let with_fks: Vec<&TableNode> = order
            .iter()
            .filter_map(|k| tables.get(k))
            .filter(|t| !t.fks.is_empty())
            .collect();
        // Union-find over table keys.
        let mut parent: HashMap<&str, &str> = HashMap::new();
        fn find<'k>(p: &mut HashMap<&'k str, &'k str>, k: &'k str) -> &'k str {
            let mut r = k;
            while let Some(&n) = p.get(r) {
                if n == r {
                    break;
                }
                r = n;
            }
            p.insert(k, r);
            r
        }
        for t in &with_fks {
            parent.entry(t.key.as_str()).or_insert(t.key.as_str());
            for r in &t.fk_tables {
                parent.entry(r.as_str()).or_insert(r.as_str());
                let (a, b) = (find(&mut parent, &t.key), find(&mut parent, r));
                if a != b {
                    parent.insert(a, b);
                }
            }
        }
        let mut groups: BTreeMap<&str, Vec<&TableNode>> = BTreeMap::new();
        for t in &with_fks {
            let root = find(&mut parent, &t.key);
            groups.entry(root).or_default().push(t);
        }
        let mut ordered: Vec<Vec<&TableNode>> = groups.into_values().collect();
        // First-seen order of the group's first table keeps plans repeatable.
        let pos: HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        ordered.sort_by_key(|g| pos.get(g[0].key.as_str()).copied().unwrap_or(0));
        for group in ordered {
            let mut need: Vec<u32> = Vec::new();
            for t in &group {
                need.extend(self.done_in.get(&t.key));
                for r in &t.fk_tables {
                    need.extend(self.done_in.get(r));
                }
            }
            need.extend(attach);
            let mut prev: Option<usize> = None;
            for t in group {
                let full =
                    prev.is_none_or(|i| self.units[i].size() >= self.settings.batch_statements);
                if full {
                    let i = self.add(Stage::Post, UnitKind::ForeignKeys, "foreign keys".into());
                    let chain = prev.map(|p| self.units[p].id);
                    self.units[i].depend(need.iter().copied().chain(chain));
                    prev = Some(i);
                }
                if let Some(i) = prev {
                    self.units[i].sql(&format!("table {}.{}", t.schema, t.name), &t.fks);
                }
            }
        }
    }

    fn last(&mut self, tables: &HashMap<String, TableNode>) {
        let all: Vec<u32> = self.units.iter().map(|u| u.id).collect();
        let i = self.add(Stage::Post, UnitKind::Final, "post-data".into());
        let u = &mut self.units[i];
        u.depend(all);
        for key in &self.input.order {
            if let Some(t) = tables.get(key) {
                if t.defaults_late {
                    u.sql(&format!("table {}.{}", t.schema, t.name), &t.defaults);
                }
            }
        }
        for (about, sql) in &self.input.last {
            u.sql(about, sql);
        }
    }
}

/// The plan of a clone. Takes the input: its statements move into the
/// units rather than being copied.
pub fn build(mut input: PlanInput, settings: &Settings) -> Plan {
    let mut tables = std::mem::take(&mut input.tables);
    let mut objects = std::mem::take(&mut input.objects);
    let tables_total = tables.len() as i64;
    let total_bytes: i64 = tables
        .values()
        .filter(|t| t.copy.is_some())
        .map(|t| t.bytes)
        .sum();
    let input = &input;
    let mut b = Builder {
        input,
        settings,
        units: Vec::new(),
        made_in: HashMap::new(),
        done_in: HashMap::new(),
        readable: Vec::new(),
        open_ddl: None,
        open_batch: None,
        total_bytes,
    };
    for key in &input.order {
        // What later stages read stays in the table (keys of partitioned
        // tables, attach, foreign keys, late defaults).
        if let Some(t) = tables.get_mut(key) {
            b.table(t);
        } else if let Some(o) = objects.remove(key) {
            b.object(o);
        }
    }
    b.refreshes();
    b.large_objects();
    let attach = b.attach(&tables);
    b.foreign_keys(&tables, attach);
    b.last(&tables);
    let mut units = b.units;
    let dropped: HashMap<u32, Vec<u32>> = units
        .iter()
        .filter(|u| u.steps.is_empty() && u.kind != UnitKind::Final)
        .map(|u| (u.id, u.deps.clone()))
        .collect();
    units.retain(|u| !dropped.contains_key(&u.id));
    renumber(&mut units, &dropped);
    Plan {
        tables_total,
        bytes_total: total_bytes,
        units,
    }
}

/// Ids 1..n again after empty units were dropped; a dependency on a dropped
/// unit becomes one on what that unit depended on.
fn renumber(units: &mut [Unit], dropped: &HashMap<u32, Vec<u32>>) {
    fn resolve(d: u32, dropped: &HashMap<u32, Vec<u32>>, out: &mut Vec<u32>) {
        match dropped.get(&d) {
            Some(up) => up.iter().for_each(|u| resolve(*u, dropped, out)),
            None => out.push(d),
        }
    }
    let map: HashMap<u32, u32> = units
        .iter()
        .enumerate()
        .map(|(i, u)| (u.id, i as u32 + 1))
        .collect();
    for u in units.iter_mut() {
        let mut deps = Vec::new();
        for d in &u.deps {
            resolve(*d, dropped, &mut deps);
        }
        let mut deps: Vec<u32> = deps.iter().filter_map(|d| map.get(d).copied()).collect();
        deps.sort_unstable();
        deps.dedup();
        u.deps = deps;
        u.id = map[&u.id];
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    fn table(key: &str, bytes: i64) -> TableNode {
        TableNode {
            key: key.into(),
            schema: "s".into(),
            name: key.trim_start_matches("rel:").into(),
            bytes,
            copy: Some(CopySource {
                schema: "s".into(),
                table: key.trim_start_matches("rel:").into(),
                columns: vec!["id".into()],
                filter: None,
                binary: true,
                part: None,
                masks: Vec::new(),
            }),
            owner: Some("app".into()),
            create: vec![format!("CREATE TABLE {key}")],
            grants: vec![format!("GRANT {key}")],
            keys: vec![format!("PK {key}")],
            key_builds: Some(KeyBuilds {
                builds: vec![vec![format!("CREATE UNIQUE INDEX {key}")]],
                after: vec![format!("USING INDEX {key}")],
            }),
            rest: vec![format!("COMMENT {key}")],
            analyze: Some(format!("ANALYZE {key}")),
            ..Default::default()
        }
    }

    fn object(key: &str, after_tables: bool) -> ObjectNode {
        ObjectNode {
            key: key.into(),
            about: key.into(),
            create: vec![format!("CREATE {key}")],
            grants: Vec::new(),
            after_tables,
        }
    }

    fn input(objects: Vec<ObjectNode>, tables: Vec<TableNode>, order: &[&str]) -> PlanInput {
        PlanInput {
            order: order.iter().map(|s| s.to_string()).collect(),
            objects: objects.into_iter().map(|o| (o.key.clone(), o)).collect(),
            tables: tables.into_iter().map(|t| (t.key.clone(), t)).collect(),
            ..Default::default()
        }
    }

    fn sqls(u: &Unit) -> Vec<String> {
        u.steps
            .iter()
            .flat_map(|s| match s {
                Step::Sql { sql, .. } => sql.clone(),
                Step::Copy(c) => vec![format!("COPY {}", c.table)],
                Step::LargeObject { oid, .. } => vec![format!("LO {oid}")],
            })
            .collect()
    }

    /// Every dependency points at an earlier unit, and every unit but the
    /// first ones waits for something.
    fn well_formed(p: &Plan) {
        for (i, u) in p.units.iter().enumerate() {
            assert_eq!(u.id as usize, i + 1);
            assert!(u.deps.iter().all(|d| *d < u.id), "{u:?}");
        }
    }

    #[test]
    fn small_tables_go_several_to_a_unit() {
        let tables: Vec<TableNode> = (0..70)
            .map(|i| table(&format!("rel:t{i:02}"), 1000))
            .collect();
        let keys: Vec<String> = tables.iter().map(|t| t.key.clone()).collect();
        let mut order: Vec<&str> = vec!["type:a"];
        order.extend(keys.iter().map(|k| k.as_str()));
        order.push("rel:v");
        let mut inp = input(
            vec![object("type:a", false), object("rel:v", true)],
            tables,
            &order,
        );
        inp.deps.insert("rel:v".into(), vec!["rel:t05".into()]);
        inp.deps.insert("rel:t00".into(), vec!["type:a".into()]);
        let p = build(inp.clone(), &Settings::default());
        well_formed(&p);
        let kinds: Vec<(UnitKind, u32)> = p.units.iter().map(|u| (u.kind, u.tables_done)).collect();
        assert_eq!(
            kinds,
            vec![
                (UnitKind::Ddl, 0),
                (UnitKind::Tables, 32),
                (UnitKind::Tables, 32),
                (UnitKind::Tables, 6),
                (UnitKind::Ddl, 0),
                (UnitKind::Final, 0),
            ]
        );
        // Each table: created, loaded with FREEZE (new in this transaction,
        // so no TRUNCATE), keyed, commented, analyzed, in that order.
        let first = sqls(&p.units[1]);
        assert_eq!(
            first[..6],
            [
                "CREATE TABLE rel:t00",
                "GRANT rel:t00",
                "COPY t00",
                "PK rel:t00",
                "COMMENT rel:t00",
                "ANALYZE rel:t00"
            ]
        );
        match &p.units[1].steps[1] {
            Step::Copy(c) => assert!(c.freeze && !c.truncate && c.run_as.as_deref() == Some("app")),
            s => panic!("{s:?}"),
        }
        // The view waits for the batch that holds its table, not for the others.
        assert_eq!(p.units[4].deps, vec![2]);
        assert_eq!(p.units[1].deps, vec![1]);
        assert_eq!(p.tables_total, 70);
    }

    #[test]
    fn one_transaction_loads_without_freeze() {
        let inp = input(vec![], vec![table("rel:a", 10)], &["rel:a"]);
        let p = build(
            inp.clone(),
            &Settings {
                one_transaction: true,
                ..Default::default()
            },
        );
        match &p.units[0].steps[1] {
            Step::Copy(c) => assert!(!c.freeze && !c.truncate),
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn a_view_that_relies_on_a_key_waits_for_the_keys_of_a_large_table() {
        let mut big = table("rel:big", 1 << 30);
        big.key_builds = Some(KeyBuilds {
            builds: vec![vec!["PK INDEX".into()]],
            after: vec!["ADD PRIMARY KEY USING INDEX".into()],
        });
        let mut inp = input(
            vec![object("rel:v", false), object("rel:w", false)],
            vec![big],
            &["rel:big", "rel:v", "rel:w"],
        );
        inp.deps.insert("rel:v".into(), vec!["rel:big".into()]);
        inp.deps.insert("rel:w".into(), vec!["rel:big".into()]);
        let plain = build(inp.clone(), &Settings::default());
        let unit_of = |p: &Plan, sql: &str| {
            p.units
                .iter()
                .find(|u| sqls(u).iter().any(|s| s == sql))
                .map(|u| (u.id, u.deps.clone()))
                .unwrap()
        };
        // Without the key edge a view needs only the table to exist.
        let keys = unit_of(&plain, "ADD PRIMARY KEY USING INDEX").0;
        assert!(!unit_of(&plain, "CREATE rel:v").1.contains(&keys));
        inp.after_keys
            .insert("rel:v".into(), vec!["rel:big".into()]);
        let p = build(inp, &Settings::default());
        well_formed(&p);
        let keys = unit_of(&p, "ADD PRIMARY KEY USING INDEX").0;
        let (v, deps) = unit_of(&p, "CREATE rel:v");
        assert!(deps.contains(&keys) && v > keys, "{deps:?}");
    }

    #[test]
    fn a_large_table_loads_alone_and_builds_its_indexes_side_by_side() {
        let mut big = table("rel:big", 1 << 30);
        big.key_builds = Some(KeyBuilds {
            builds: vec![vec!["IDX1".into()], vec!["IDX2".into()]],
            after: vec!["USING".into()],
        });
        let inp = input(
            vec![],
            vec![big, table("rel:small", 10)],
            &["rel:big", "rel:small"],
        );
        let p = build(inp.clone(), &Settings::default());
        well_formed(&p);
        let shape: Vec<(UnitKind, Vec<u32>)> =
            p.units.iter().map(|u| (u.kind, u.deps.clone())).collect();
        assert_eq!(
            shape,
            vec![
                (UnitKind::Copy, vec![]),
                (UnitKind::Index, vec![1]),
                (UnitKind::Index, vec![1]),
                (UnitKind::Keys, vec![1, 2, 3]),
                (UnitKind::Tables, vec![]),
                (UnitKind::Final, vec![1, 2, 3, 4, 5]),
            ]
        );
        // Statistics with the rows, so refreshes need not wait for indexes.
        assert_eq!(
            sqls(&p.units[0]),
            [
                "CREATE TABLE rel:big",
                "GRANT rel:big",
                "COPY big",
                "ANALYZE rel:big"
            ]
        );
        assert_eq!(sqls(&p.units[3]), ["USING", "COMMENT rel:big"]);
        // Unless statistics or reads wait for what the keys unit makes.
        let mut late = inp.clone();
        late.tables.get_mut("rel:big").unwrap().read_late = true;
        let p = build(late, &Settings::default());
        assert_eq!(
            sqls(&p.units[0]),
            ["CREATE TABLE rel:big", "GRANT rel:big", "COPY big"]
        );
        assert_eq!(
            sqls(&p.units[3]),
            ["USING", "COMMENT rel:big", "ANALYZE rel:big"]
        );
    }

    #[test]
    fn a_table_that_would_hold_one_worker_is_cut_into_parts() {
        let mut wide = table("rel:wide", 1300 << 20);
        wide.split = SplitBasis::Key {
            column: "id".into(),
            min: 1,
            max: 1000,
        };
        let inp = input(
            vec![],
            vec![wide, table("rel:other", 500 << 20)],
            &["rel:wide", "rel:other"],
        );
        let p = build(
            inp.clone(),
            &Settings {
                workers: 2,
                ..Default::default()
            },
        );
        well_formed(&p);
        // 1.8 GB over 2 workers: a share is 0.9 GB, so the 1.3 GB table is
        // cut, in parts of half a share (3) so that the 0.5 GB one, which
        // stays whole, packs beside them; created first in a DDL unit.
        assert_eq!(p.units[0].kind, UnitKind::Ddl);
        let copies: Vec<&Unit> = p
            .units
            .iter()
            .filter(|u| u.kind == UnitKind::Copy)
            .collect();
        assert_eq!(copies.len(), 4);
        let parts: Vec<String> = copies[..3]
            .iter()
            .map(|u| match &u.steps[0] {
                Step::Copy(c) => {
                    assert!(!c.freeze && !c.truncate);
                    c.source.sql(None)
                }
                s => panic!("{s:?}"),
            })
            .collect();
        assert!(
            parts[0].ends_with("WHERE \"id\" < 334) TO STDOUT (FORMAT binary)"),
            "{}",
            parts[0]
        );
        assert!(
            parts[1].contains("WHERE \"id\" >= 334 AND \"id\" < 667)"),
            "{}",
            parts[1]
        );
        assert!(parts[2].contains("WHERE \"id\" >= 667)"), "{}", parts[2]);
        // Every part of a masked table is masked.
        let mut masked = inp.clone();
        let wide = masked.tables.get_mut("rel:wide").unwrap();
        wide.copy.as_mut().unwrap().masks = vec![crate::mask::MaskedColumn {
            column: "id".into(),
            type_sql: "integer".into(),
            strategy: crate::mask::Strategy::RandomInt { min: 1, max: 9 },
            elementwise: false,
            clamp: None,
        }];
        let p = build(
            masked,
            &Settings {
                workers: 2,
                ..Default::default()
            },
        );
        let key = crate::mask::MaskKey::new(b"k");
        let parts: Vec<String> = p
            .units
            .iter()
            .filter(|u| u.kind == UnitKind::Copy && u.label.contains("part"))
            .map(|u| match &u.steps[0] {
                Step::Copy(c) => c.source.sql(Some(&key)),
                s => panic!("{s:?}"),
            })
            .collect();
        assert_eq!(parts.len(), 3);
        for sql in &parts {
            assert!(
                sql.contains("pg_catalog.random()") && sql.contains("WHERE \"id\""),
                "{sql}"
            );
        }
        // With one worker nothing is split.
        let p = build(inp.clone(), &Settings::default());
        assert_eq!(
            p.units.iter().filter(|u| u.kind == UnitKind::Copy).count(),
            2
        );
    }

    #[test]
    fn parts_follow_the_work() {
        let gb = 1i64 << 30;
        assert_eq!(parts(gb, gb, 1, None), 1);
        assert_eq!(parts(gb, 2 * gb, 2, None), 1);
        // a little over its share: whole
        assert_eq!(parts(gb + (gb / 10), 2 * gb, 2, None), 1);
        // with a table beside it: half shares, so the two pack evenly
        assert_eq!(parts(3 * gb, 4 * gb, 2, None), 3);
        assert_eq!(parts(1300 << 20, 1800 << 20, 2, None), 3);
        // alone: one part per worker
        assert_eq!(parts(3 * gb, 3 * gb, 2, None), 2);
        assert_eq!(parts(gb, gb, 4, None), 4);
        assert_eq!(parts(100 << 20, 100 << 20, 4, None), 1);
        assert_eq!(parts(gb, gb, 2, Some(256 << 20)), 4);
        assert_eq!(parts(gb, gb, 2, Some(0)), 1);
        assert_eq!(parts(gb, gb, 2, Some(2 * gb)), 1);
    }

    #[test]
    fn key_and_page_cuts_cover_everything() {
        let k = cut(
            &SplitBasis::Key {
                column: "id".into(),
                min: 0,
                max: 99,
            },
            3,
        );
        assert_eq!(
            k,
            vec![
                Part::Key {
                    column: "id".into(),
                    lo: None,
                    hi: Some(33)
                },
                Part::Key {
                    column: "id".into(),
                    lo: Some(33),
                    hi: Some(66)
                },
                Part::Key {
                    column: "id".into(),
                    lo: Some(66),
                    hi: None
                },
            ]
        );
        assert_eq!(
            cut(&SplitBasis::Pages(100), 3),
            vec![
                Part::Pages(0, Some(34)),
                Part::Pages(34, Some(68)),
                Part::Pages(68, None)
            ]
        );
        assert!(cut(&SplitBasis::None, 3).is_empty());
    }

    #[test]
    fn partitions_are_created_apart_and_keyed_by_the_attach_unit() {
        let mut parent = table("rel:p", 0);
        parent.partitioned = true;
        parent.copy = None;
        parent.keys = vec!["PK ONLY p".into()];
        let mut c1 = table("rel:p1", 100);
        c1.child = true;
        c1.attach = vec!["ATTACH p1".into()];
        let mut c2 = table("rel:p2", 100);
        c2.child = true;
        c2.attach = vec!["ATTACH p2".into()];
        let mut inp = input(vec![], vec![parent, c1, c2], &["rel:p", "rel:p1", "rel:p2"]);
        inp.deps.insert("rel:p1".into(), vec!["rel:p".into()]);
        inp.deps.insert("rel:p2".into(), vec!["rel:p".into()]);
        let p = build(inp.clone(), &Settings::default());
        well_formed(&p);
        let kinds: Vec<UnitKind> = p.units.iter().map(|u| u.kind).collect();
        assert_eq!(
            kinds,
            vec![
                UnitKind::Ddl,
                UnitKind::Tables,
                UnitKind::Attach,
                UnitKind::Final
            ]
        );
        // The partitions' rows go in with TRUNCATE + FREEZE, their keys too.
        let batch = &p.units[1];
        assert!(batch
            .steps
            .iter()
            .any(|s| matches!(s, Step::Copy(c) if c.truncate && c.freeze)));
        assert_eq!(
            sqls(&p.units[2]),
            ["PK ONLY p", "COMMENT rel:p", "ATTACH p1", "ATTACH p2"]
        );
    }

    #[test]
    fn foreign_keys_go_by_groups_that_share_no_table() {
        let mut a = table("rel:a", 10);
        a.fks = vec!["FK a->b".into()];
        a.fk_tables = vec!["rel:b".into()];
        let b = table("rel:b", 10);
        let mut c = table("rel:c", 10);
        c.fks = vec!["FK c->d".into()];
        c.fk_tables = vec!["rel:d".into()];
        let d = table("rel:d", 10);
        let inp = input(
            vec![],
            vec![a, b, c, d],
            &["rel:a", "rel:b", "rel:c", "rel:d"],
        );
        let p = build(
            inp.clone(),
            &Settings {
                batch_tables: 1,
                ..Default::default()
            },
        );
        well_formed(&p);
        let fks: Vec<(Vec<String>, Vec<u32>)> = p
            .units
            .iter()
            .filter(|u| u.kind == UnitKind::ForeignKeys)
            .map(|u| (sqls(u), u.deps.clone()))
            .collect();
        assert_eq!(
            fks,
            vec![
                (vec!["FK a->b".to_string()], vec![1, 2]),
                (vec!["FK c->d".to_string()], vec![3, 4]),
            ]
        );
    }

    #[test]
    fn a_large_group_of_foreign_keys_is_a_chain() {
        let mut tables = vec![table("rel:parent", 10)];
        for i in 0..5 {
            let mut t = table(&format!("rel:c{i}"), 10);
            t.fks = vec![format!("FK c{i}")];
            t.fk_tables = vec!["rel:parent".into()];
            tables.push(t);
        }
        let keys: Vec<String> = tables.iter().map(|t| t.key.clone()).collect();
        let order: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        let inp = input(vec![], tables, &order);
        let p = build(
            inp.clone(),
            &Settings {
                batch_statements: 2,
                ..Default::default()
            },
        );
        well_formed(&p);
        let fks: Vec<&Unit> = p
            .units
            .iter()
            .filter(|u| u.kind == UnitKind::ForeignKeys)
            .collect();
        assert_eq!(fks.len(), 3);
        assert!(fks[1].deps.contains(&fks[0].id));
        assert!(fks[2].deps.contains(&fks[1].id));
    }

    /// A refresh waits for every table's rows and statistics, and for the
    /// keys unit only of a table whose policies or expression statistics
    /// come there.
    #[test]
    fn refreshes_follow_every_table_in_order() {
        let mut inp = input(
            vec![object("rel:mv1", true), object("rel:mv2", true)],
            vec![table("rel:a", 10), table("rel:b", 1 << 30)],
            &["rel:a", "rel:b", "rel:mv1", "rel:mv2"],
        );
        inp.refreshes = vec![
            Refresh {
                key: "rel:mv1".into(),
                about: "mv1".into(),
                sql: vec!["REFRESH mv1".into()],
            },
            Refresh {
                key: "rel:mv2".into(),
                about: "mv2".into(),
                sql: vec!["REFRESH mv2".into()],
            },
        ];
        let p = build(inp.clone(), &Settings::default());
        well_formed(&p);
        let r: Vec<&Unit> = p
            .units
            .iter()
            .filter(|u| u.kind == UnitKind::Refresh)
            .collect();
        let id_of = |p: &Plan, kind: UnitKind| p.units.iter().find(|u| u.kind == kind).unwrap().id;
        let (copy, keys) = (id_of(&p, UnitKind::Copy), id_of(&p, UnitKind::Keys));
        let small = id_of(&p, UnitKind::Tables);
        assert!(
            r[0].deps.contains(&copy) && r[0].deps.contains(&small),
            "{:?}",
            r[0].deps
        );
        assert!(!r[0].deps.contains(&keys), "{:?}", r[0].deps);
        assert!(r[1].deps.contains(&r[0].id));
        inp.tables.get_mut("rel:b").unwrap().read_late = true;
        let p = build(inp, &Settings::default());
        let r = p
            .units
            .iter()
            .find(|u| u.kind == UnitKind::Refresh)
            .unwrap();
        assert!(r.deps.contains(&id_of(&p, UnitKind::Keys)), "{:?}", r.deps);
    }

    #[test]
    fn an_empty_unit_passes_its_dependencies_on() {
        // A schema that exists already has nothing to create: its unit goes,
        // and what needed it needs what it needed.
        let mut empty = object("nsp:old", false);
        empty.create.clear();
        let mut inp = input(
            vec![object("type:a", false), empty],
            vec![table("rel:t", 10)],
            &["type:a", "rel:t", "nsp:old"],
        );
        inp.deps.insert("rel:t".into(), vec!["type:a".into()]);
        let p = build(inp.clone(), &Settings::default());
        well_formed(&p);
        assert_eq!(p.units.len(), 3);
        assert_eq!(p.units[1].deps, vec![1]);
    }

    #[test]
    fn late_defaults_wait_for_the_final_unit() {
        let mut a = table("rel:a", 10);
        a.defaults = vec!["DEFAULT a".into()];
        let mut b = table("rel:b", 10);
        b.defaults = vec!["DEFAULT b".into()];
        b.defaults_late = true;
        let mut inp = input(vec![], vec![a, b], &["rel:a", "rel:b"]);
        inp.last = vec![("rules".into(), vec!["RULE".into()])];
        let p = build(inp.clone(), &Settings::default());
        assert!(sqls(&p.units[0]).contains(&"DEFAULT a".to_string()));
        assert!(!sqls(&p.units[0]).contains(&"DEFAULT b".to_string()));
        assert_eq!(sqls(p.units.last().unwrap()), ["DEFAULT b", "RULE"]);
    }
}
