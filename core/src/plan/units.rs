//! The data stage of a clone as units of work: copy a table (or one page range
//! of it), then build its indexes. Pure: unit-tested without a server.
//!
//! The same list drives the serial path (run in order in the calling backend)
//! and the worker pool (each worker claims the first ready unit), so it is
//! ordered for the pool: largest tables first, so the long copies start early
//! and the small ones fill the gaps; a table's index unit right after its
//! copies, so its indexes are built while other tables are still copying.

use crate::copy::CopySource;

/// What the data stage needs to know about one table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableWork {
    pub schema: String,
    pub name: String,
    /// None: no data to copy (partitioned parent, data excluded, no data asked).
    pub copy: Option<CopySource>,
    /// Keys and indexes, run once the data is in: groups that may run at
    /// the same time (one unit each), then `keys_after` (one unit).
    pub index_groups: Vec<Vec<String>>,
    pub keys_after: Vec<String>,
    /// Size on the source, for ordering and splitting.
    pub bytes: i64,
    /// Pages on the source, for page-range splitting.
    pub pages: i64,
    /// The role the table's units run as (its owner), None: the caller.
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    Copy,
    Index,
    /// What follows a table's index builds: constraints made from them, ANALYZE.
    Keys,
    /// A materialized view refresh, once every table's data is in.
    Refresh,
}

impl UnitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::Copy => "copy",
            UnitKind::Index => "index",
            UnitKind::Keys => "keys",
            UnitKind::Refresh => "refresh",
        }
    }

    pub fn parse(s: &str) -> Option<UnitKind> {
        match s {
            "copy" => Some(UnitKind::Copy),
            "index" => Some(UnitKind::Index),
            "keys" => Some(UnitKind::Keys),
            "refresh" => Some(UnitKind::Refresh),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub id: i32,
    pub kind: UnitKind,
    pub schema: String,
    pub table: String,
    /// 1-based chunk number and chunk count; (1, 1) for a whole table.
    pub chunk: i32,
    pub chunks: i32,
    /// The statement run on the source (copy units).
    pub copy_sql: String,
    pub columns: Vec<String>,
    pub binary: bool,
    /// Whole-table copies may TRUNCATE + COPY FREEZE in one transaction.
    pub freeze: bool,
    /// Statements run on the target (index units).
    pub sqls: Vec<String>,
    pub est_bytes: i64,
    /// The role a copy unit loads its rows as: the table's owner, so that code
    /// from the source (CHECK and domain functions, generated columns) never
    /// runs with the caller's rights. None: the caller.
    pub run_as: Option<String>,
}

impl Unit {
    /// A unit of statements run on the target (index, keys, refresh).
    pub fn statements(kind: UnitKind, schema: &str, table: &str, sqls: &[String]) -> Unit {
        Unit {
            id: 0,
            kind,
            schema: schema.into(),
            table: table.into(),
            chunk: 1,
            chunks: 1,
            copy_sql: String::new(),
            columns: Vec::new(),
            binary: false,
            freeze: false,
            sqls: sqls.to_vec(),
            est_bytes: 0,
            run_as: None,
        }
    }
}

/// Default size above which a table is copied in page ranges by several workers.
/// On two cores, splitting the bench's 1 GB table costs FREEZE and lets its
/// index builds start later, for no gain in copy speed; tables this large
/// are where a bigger machine gains from splitting.
pub const DEFAULT_SPLIT_BYTES: i64 = 4 << 30;

/// Chunks never go below this many pages (64 MB), so each carries real work.
const MIN_CHUNK_PAGES: i64 = 8192;

/// How many page ranges a table of `bytes`/`pages` is cut into.
pub fn chunk_count(bytes: i64, pages: i64, split_bytes: i64, workers: i32) -> i32 {
    if split_bytes <= 0 || bytes <= split_bytes || workers < 2 || pages < 2 * MIN_CHUNK_PAGES {
        return 1;
    }
    let by_size = (bytes + split_bytes - 1) / split_bytes;
    let wanted = by_size.max(workers as i64);
    wanted.min(pages / MIN_CHUNK_PAGES).clamp(1, 64) as i32
}

/// Page bounds of chunk `i` (1-based) of `n` over `pages`: [lo, hi), the last
/// one open-ended so rows on pages added since the size was read still come.
pub fn chunk_pages(i: i32, n: i32, pages: i64) -> (i64, Option<i64>) {
    let per = (pages + n as i64 - 1) / n as i64;
    let lo = per * (i as i64 - 1);
    if i == n {
        (lo, None)
    } else {
        (lo, Some(per * i as i64))
    }
}

/// Turn the tables into units: largest first, each table's copy unit(s) then
/// its index unit.
pub fn units(tables: &[TableWork], split_bytes: i64, workers: i32) -> Vec<Unit> {
    let mut order: Vec<&TableWork> = tables.iter().collect();
    order.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then_with(|| a.schema.cmp(&b.schema))
            .then_with(|| a.name.cmp(&b.name))
    });
    let mut out = Vec::new();
    for t in order {
        if let Some(src) = &t.copy {
            let n = chunk_count(t.bytes, t.pages, split_bytes, workers);
            for i in 1..=n {
                let mut s = src.clone();
                if n > 1 {
                    s.pages = Some(chunk_pages(i, n, t.pages));
                }
                out.push(Unit {
                    id: 0,
                    kind: UnitKind::Copy,
                    schema: t.schema.clone(),
                    table: t.name.clone(),
                    chunk: i,
                    chunks: n,
                    copy_sql: s.sql(),
                    columns: s.columns.clone(),
                    binary: s.binary,
                    freeze: n == 1,
                    sqls: Vec::new(),
                    est_bytes: t.bytes / n as i64,
                    run_as: t.owner.clone(),
                });
            }
        }
        for g in t.index_groups.iter().filter(|g| !g.is_empty()) {
            out.push(Unit::statements(UnitKind::Index, &t.schema, &t.name, g));
        }
        if !t.keys_after.is_empty() {
            out.push(Unit::statements(
                UnitKind::Keys,
                &t.schema,
                &t.name,
                &t.keys_after,
            ));
        }
    }
    for (i, u) in out.iter_mut().enumerate() {
        u.id = i as i32 + 1;
    }
    out
}

/// Refresh units for materialized views (schema, name, statement), in their
/// dependency order, numbered after `list`.
pub fn refresh_units(list: &mut Vec<Unit>, views: &[(String, String, String)]) {
    for (schema, name, sql) in views {
        let mut u = Unit::statements(UnitKind::Refresh, schema, name, std::slice::from_ref(sql));
        u.id = list.len() as i32 + 1;
        list.push(u);
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    fn table(name: &str, bytes: i64, copy: bool, idx: usize) -> TableWork {
        TableWork {
            schema: "s".into(),
            name: name.into(),
            copy: copy.then(|| CopySource {
                schema: "s".into(),
                table: name.into(),
                columns: vec!["id".into()],
                filter: None,
                binary: true,
                pages: None,
            }),
            index_groups: (0..idx)
                .map(|i| vec![format!("CREATE INDEX i{i}")])
                .collect(),
            keys_after: if idx > 0 {
                vec!["ANALYZE".into()]
            } else {
                vec![]
            },
            bytes,
            pages: bytes / 8192,
            owner: Some("app".into()),
        }
    }

    #[test]
    fn largest_first_with_indexes_after_their_copy() {
        let u = units(
            &[
                table("small", 10, true, 1),
                table("big", 1000, true, 2),
                table("parent", 0, false, 1),
            ],
            DEFAULT_SPLIT_BYTES,
            2,
        );
        let shape: Vec<(&str, &str)> = u
            .iter()
            .map(|u| (u.table.as_str(), u.kind.as_str()))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("big", "copy"),
                ("big", "index"),
                ("big", "index"),
                ("big", "keys"),
                ("small", "copy"),
                ("small", "index"),
                ("small", "keys"),
                ("parent", "index"),
                ("parent", "keys")
            ]
        );
        assert_eq!(
            u.iter().map(|u| u.id).collect::<Vec<_>>(),
            (1..=9).collect::<Vec<_>>()
        );
        assert!(u[0].freeze);
        assert!(u
            .iter()
            .all(|u| (u.kind == UnitKind::Copy) == (u.run_as.as_deref() == Some("app"))));
        assert_eq!(u[1].sqls, ["CREATE INDEX i0"]);
        assert_eq!(u[2].sqls, ["CREATE INDEX i1"]);
    }

    #[test]
    fn large_tables_split_into_page_ranges_without_freeze() {
        let big = 1i64 << 30; // 131072 pages
        let u = units(&[table("big", big, true, 1)], 256 << 20, 2);
        let copies: Vec<&Unit> = u.iter().filter(|u| u.kind == UnitKind::Copy).collect();
        assert_eq!(copies.len(), 4);
        assert!(copies.iter().all(|c| !c.freeze && c.chunks == 4));
        assert!(copies[0].copy_sql.contains("ctid >= '(0,0)'::tid"));
        assert!(copies[0].copy_sql.contains("ctid < '(32768,0)'::tid"));
        assert!(copies[3].copy_sql.contains("ctid >= '(98304,0)'::tid"));
        assert!(!copies[3].copy_sql.contains("ctid <"));
        assert_eq!(u.last().unwrap().kind, UnitKind::Keys);
    }

    #[test]
    fn refreshes_come_last_in_order() {
        let mut u = units(&[table("t", 10, true, 0)], DEFAULT_SPLIT_BYTES, 2);
        refresh_units(
            &mut u,
            &[
                ("s".into(), "mv1".into(), "REFRESH 1".into()),
                ("s".into(), "mv2".into(), "REFRESH 2".into()),
            ],
        );
        let tail: Vec<(i32, &str, &str)> = u
            .iter()
            .map(|u| (u.id, u.kind.as_str(), u.table.as_str()))
            .collect();
        assert_eq!(
            tail,
            [
                (1, "copy", "t"),
                (2, "refresh", "mv1"),
                (3, "refresh", "mv2")
            ]
        );
    }

    #[test]
    fn chunk_counts() {
        // below the threshold, one worker, or too few pages: whole table
        assert_eq!(chunk_count(100, 1, 50, 4), 1);
        assert_eq!(chunk_count(1 << 30, 131072, 1 << 20, 1), 1);
        assert_eq!(chunk_count(1 << 30, 10000, 1 << 20, 4), 1);
        // at least one chunk per worker, bounded by the minimum chunk size
        assert_eq!(chunk_count(1 << 30, 131072, 512 << 20, 4), 4);
        assert_eq!(chunk_count(1 << 30, 131072, 1 << 20, 4), 16);
        // zero disables splitting
        assert_eq!(chunk_count(1 << 30, 131072, 0, 4), 1);
    }

    #[test]
    fn chunk_bounds_cover_every_page() {
        assert_eq!(chunk_pages(1, 3, 100), (0, Some(34)));
        assert_eq!(chunk_pages(2, 3, 100), (34, Some(68)));
        assert_eq!(chunk_pages(3, 3, 100), (68, None));
    }
}
