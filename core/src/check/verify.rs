//! `verify`: exact row counts and an order-independent content checksum of
//! every table, read on one snapshot per side. The same statements run on
//! the source and locally, so each side computes its own checksum and only
//! two numbers per table travel.
//!
//! A row's hash is the XOR of one hash per column, each column hashed by its
//! type's own extended hash function (the one hash partitioning uses, stable
//! across major versions) with the column's position as seed, so two columns
//! swapping values change it. The table's checksum is the SUM of its rows'
//! hashes: duplicates count, and order does not matter. Types without a hash
//! function (json, point, ...) are hashed through their text form, under
//! settings fixed on both sides.

use crate::sqltext::{qualified, quote_ident, quote_literal};
use serde::Deserialize;

/// A table, partition or materialized view to verify, as the source reads it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Rel {
    pub schema: String,
    pub name: String,
    /// `r` or `m`.
    pub kind: String,
    pub populated: bool,
    pub pages: i64,
    pub cols: Vec<HashCol>,
    /// A partitioned table's partitions (schema, name): its row is the sum
    /// of theirs, read once.
    #[serde(default)]
    pub parts: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct HashCol {
    pub name: String,
    /// The type as declared (`numeric(12,2)`, `app.short_text`).
    #[serde(rename = "type", default)]
    pub type_sql: String,
    /// Its base type's name (a domain's base), which picks the hash.
    #[serde(default)]
    pub base: String,
    /// NOT NULL: no NULL to stand in for (a NULL here after all makes the
    /// row's hash NULL, which still changes the sum).
    #[serde(default)]
    pub not_null: bool,
    /// The column's collation is nondeterministic: its hash would fold
    /// values the collation calls equal, so hash the bytes instead.
    pub fold: bool,
}

/// The relations of the given schemas (a parameter `$1 text[]`) to verify,
/// one JSON array. Extension members are left out, as a clone leaves them.
/// Every join is on a key, so the cost grows with the columns read. Each
/// column comes with its type as declared and its base type's name (under
/// `search_path = ''`, so only pg_catalog's types print unqualified); which
/// hash function reads it is decided here ([`hash_of`]), never by the
/// source, whose word would otherwise become SQL run on this server.
pub fn rels_sql() -> &'static str {
    "WITH rels AS ( \
       SELECT r.oid, n.nspname, r.relname, r.relkind, r.relispopulated, r.relpages \
       FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace \
       WHERE n.nspname = ANY($1) AND r.relkind IN ('r', 'm', 'p') \
         AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
             WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = r.oid AND d.deptype = 'e')), \
     cols AS ( \
       SELECT a.attrelid, a.attnum, a.attname, a.attnotnull, \
              pg_catalog.format_type(a.atttypid, a.atttypmod) AS declared, \
              pg_catalog.format_type(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END, NULL) AS base, \
              coalesce(co.collisdeterministic, true) AS det \
       FROM rels JOIN pg_catalog.pg_attribute a ON a.attrelid = rels.oid \
       JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
       LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation \
       WHERE a.attnum > 0 AND NOT a.attisdropped), \
     agg AS ( \
       SELECT x.attrelid, pg_catalog.json_agg(pg_catalog.json_build_object( \
                'name', x.attname, 'type', x.declared, 'base', x.base, 'not_null', x.attnotnull, \
                'fold', NOT x.det) ORDER BY x.attnum) AS cols \
       FROM cols x GROUP BY x.attrelid) \
     SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object( \
         'schema', r.nspname, 'name', r.relname, 'kind', r.relkind, \
         'populated', r.relispopulated, 'pages', r.relpages::int8, \
         'cols', coalesce(agg.cols, '[]'), 'parts', coalesce(parts.parts, '[]')) \
         ORDER BY r.nspname, r.relname), '[]')::text \
     FROM rels r LEFT JOIN agg ON agg.attrelid = r.oid \
     LEFT JOIN (SELECT i.inhparent, pg_catalog.json_agg(pg_catalog.json_build_array(cn.nspname, c.relname)) AS parts \
                FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
                JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace \
                WHERE i.inhparent IN (SELECT oid FROM rels WHERE relkind = 'p') GROUP BY i.inhparent) parts \
       ON parts.inhparent = r.oid"
}

/// The hash function (and what converts the column to its argument type)
/// for a base type of pg_catalog: the type's own extended hash, the one
/// hash partitioning uses and keeps stable across major versions. Three
/// types borrow another type's function. Anything else, enums included
/// (they hash their OIDs, which differ between databases), is hashed
/// through its text form.
pub fn hash_of(base: &str) -> Option<(&'static str, &'static str)> {
    let scalar = |t: &str| -> Option<(&'static str, &'static str)> {
        Some(match t {
            "smallint" => ("pg_catalog.hashint2extended", ""),
            "integer" => ("pg_catalog.hashint4extended", ""),
            "bigint" => ("pg_catalog.hashint8extended", ""),
            "oid" => ("pg_catalog.hashoidextended", ""),
            "text" | "character varying" => ("pg_catalog.hashtextextended", ""),
            "character" => ("pg_catalog.hashbpcharextended", ""),
            "numeric" => ("pg_catalog.hash_numeric_extended", ""),
            "uuid" => ("pg_catalog.uuid_hash_extended", ""),
            "jsonb" => ("pg_catalog.jsonb_hash_extended", ""),
            "real" => ("pg_catalog.hashfloat4extended", ""),
            "double precision" => ("pg_catalog.hashfloat8extended", ""),
            "timestamp without time zone" => ("pg_catalog.timestamp_hash_extended", ""),
            "timestamp with time zone" => {
                ("pg_catalog.timestamp_hash_extended", " AT TIME ZONE 'UTC'")
            }
            "date" => (
                "pg_catalog.timestamp_hash_extended",
                "::pg_catalog.timestamp",
            ),
            "boolean" => ("pg_catalog.hashint4extended", "::pg_catalog.int4"),
            _ => return None,
        })
    };
    match base.strip_suffix("[]") {
        // Arrays hash each element by its type's own function, inside.
        Some(elem) => scalar(elem).map(|_| ("pg_catalog.hash_array_extended", "")),
        None => scalar(base),
    }
}

/// The columns (name and declared type, see [`column_key`]) of the given
/// relations here, to tell a table whose columns differ: it is counted,
/// not hashed (its checksum statement could not run, or would hash the
/// same value differently).
pub fn local_columns_sql() -> &'static str {
    "SELECT n.nspname::text, r.relname::text, r.relkind::text, r.relispopulated, \
            coalesce(pg_catalog.array_agg(a.attname::text || pg_catalog.chr(1) \
                     || pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY a.attname) \
                     FILTER (WHERE a.attnum > 0 AND NOT a.attisdropped), '{}'), \
            CASE WHEN r.relkind = 'p' THEN ARRAY(SELECT cn.nspname::text || pg_catalog.chr(1) || c.relname::text \
                 FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
                 JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace WHERE i.inhparent = r.oid) END \
     FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace \
     LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid \
     WHERE n.nspname = ANY($1) AND r.relkind IN ('r', 'm', 'p') \
     GROUP BY r.oid, 1, 2, 3, 4"
}

/// A column as [`local_columns_sql`] lists it.
pub fn column_key(c: &HashCol) -> String {
    format!("{}\u{1}{}", c.name, c.type_sql)
}

/// The hash of one row: the XOR of its columns' hashes.
pub fn row_hash(cols: &[HashCol]) -> String {
    if cols.is_empty() {
        return "0::int8".into();
    }
    let parts: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let seed = i as i64 + 1;
            let col = quote_ident(&c.name);
            let col = if c.fold {
                format!("{col} COLLATE pg_catalog.\"C\"")
            } else {
                col
            };
            let hashed = match hash_of(&c.base) {
                Some((f, suffix)) => format!("{f}({col}{suffix}, {seed})"),
                None => format!(
                    "pg_catalog.hashtextextended({}::text COLLATE pg_catalog.\"C\", {seed})",
                    quote_ident(&c.name)
                ),
            };
            // A NULL hashes to its seed, so a NULL moving between columns
            // still changes the row's hash.
            if c.not_null {
                hashed
            } else {
                format!("coalesce({hashed}, {seed})")
            }
        })
        .collect();
    parts.join(" # ")
}

/// One SELECT of (index, count, checksum) for a relation; `hashed` false
/// counts only.
pub fn rel_select(index: usize, rel: &Rel, hashed: bool) -> String {
    let sum = if hashed {
        format!("coalesce(pg_catalog.sum({}), 0)::text", row_hash(&rel.cols))
    } else {
        "NULL::text".into()
    };
    format!(
        "SELECT {index}::int4, pg_catalog.count(*)::int8, {sum} FROM ONLY {}",
        qualified(&rel.schema, &rel.name)
    )
}

/// Relations of at least this many pages are read one statement each (and
/// may use the server's parallel query); smaller ones share a statement.
pub const ALONE_PAGES: i64 = 1024;
/// Small relations per statement: few round trips and plans at 20 000
/// tables, a short statement each.
pub const PER_STATEMENT: usize = 100;

/// Groups of relation indexes, one statement each: large relations alone,
/// largest first (so both sides start on them at once), then the rest in
/// groups.
pub fn batches(rels: &[(usize, &Rel)]) -> Vec<Vec<usize>> {
    let rels: Vec<(usize, &Rel)> = rels
        .iter()
        .copied()
        .filter(|(_, r)| r.kind != "p")
        .collect();
    let mut large: Vec<&(usize, &Rel)> = rels
        .iter()
        .filter(|(_, r)| r.pages >= ALONE_PAGES)
        .collect();
    large.sort_by_key(|(_, r)| std::cmp::Reverse(r.pages));
    let mut out: Vec<Vec<usize>> = large.iter().map(|(i, _)| vec![*i]).collect();
    let small: Vec<usize> = rels
        .iter()
        .filter(|(_, r)| r.pages < ALONE_PAGES)
        .map(|(i, _)| *i)
        .collect();
    out.extend(small.chunks(PER_STATEMENT).map(<[usize]>::to_vec));
    out
}

/// The statement of a batch: its relations' SELECTs joined by UNION ALL.
pub fn batch_sql(batch: &[usize], rels: &[Rel], hashed: &dyn Fn(usize) -> bool) -> String {
    batch
        .iter()
        .map(|i| rel_select(*i, &rels[*i], hashed(*i)))
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// The sequences of the given schemas (`$1`): (schema, name).
pub fn sequences_sql() -> &'static str {
    "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = ANY($1) AND c.relkind = 'S' ORDER BY 1, 2"
}

/// Sequences per statement reading their positions.
pub const SEQUENCES_PER_STATEMENT: usize = 500;

/// One statement reading (index, last_value, is_called) of each sequence,
/// from the sequence itself (`pg_sequences` hides both behind NULL when it
/// was never called, and when the role may not read it).
pub fn positions_sql(seqs: &[(usize, &(String, String))]) -> String {
    let list: Vec<(i64, String)> = seqs
        .iter()
        .map(|(i, (schema, name))| (*i as i64, qualified(schema, name)))
        .collect();
    crate::catalog::table::sequence_positions_sql(&list)
}

/// Large objects: their number and a checksum of every object's oid and
/// bytes.
pub fn large_objects_sql() -> &'static str {
    "SELECT pg_catalog.count(*)::int8, coalesce(pg_catalog.sum(pg_catalog.hashint8extended(m.oid::int8, 1) \
         # pg_catalog.hashtextextended(pg_catalog.md5(pg_catalog.lo_get(m.oid)), 2)), 0)::text \
     FROM pg_catalog.pg_largeobject_metadata m"
}

/// The settings under which both sides hash text forms alike.
pub const SETTINGS: [(&str, &str); 7] = [
    ("DateStyle", "ISO"),
    // money prints in the session's monetary locale.
    ("lc_monetary", "C"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
    ("TimeZone", "UTC"),
    // Rows hidden by a policy would make equal tables look different (or
    // different ones equal): be refused instead.
    ("row_security", "off"),
];

pub fn settings_sql() -> String {
    SETTINGS
        .iter()
        .map(|(k, v)| format!("SET {k} = {};", quote_literal(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What one side read of a relation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    pub rows: Option<i64>,
    /// None: not hashed (counts only, columns differ, or not populated).
    pub sum: Option<String>,
    pub populated: bool,
    /// The target's columns are not the source's: never the same content.
    pub cols_differ: bool,
}

/// One row of verify's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub schema: String,
    pub name: String,
    pub source_rows: Option<i64>,
    pub target_rows: Option<i64>,
    pub result: &'static str,
}

pub const SAME: &str = "✓";
pub const DIFFERENT: &str = "✗";
pub const MISSING: &str = "✗ (missing)";
pub const CONTENT: &str = "✗ (content)";

/// What one side saw of each partitioned table: the sums of what it saw of
/// its partitions (themselves partitioned, perhaps), counts and checksums
/// added. A partition this side lacks leaves the parent's sums short.
pub fn roll_up(rels: &[Rel], seen: &mut std::collections::HashMap<usize, Seen>) {
    let index: std::collections::HashMap<(&str, &str), usize> = rels
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.schema.as_str(), r.name.as_str()), i))
        .collect();
    fn total(
        i: usize,
        rels: &[Rel],
        index: &std::collections::HashMap<(&str, &str), usize>,
        seen: &mut std::collections::HashMap<usize, Seen>,
        depth: usize,
    ) -> Option<(i64, Option<i128>)> {
        if rels[i].kind != "p" {
            let s = seen.get(&i)?;
            return Some((s.rows?, s.sum.as_deref().and_then(|t| t.parse().ok())));
        }
        if let Some(s) = seen.get(&i) {
            return Some((s.rows?, s.sum.as_deref().and_then(|t| t.parse().ok())));
        }
        if depth > 64 {
            return None;
        }
        let (mut rows, mut sum) = (Some(0i64), Some(0i128));
        for (schema, name) in &rels[i].parts {
            // A partition outside what is verified (another schema, or one
            // only this side has): the parent's sums are unknown here.
            let part = index
                .get(&(schema.as_str(), name.as_str()))
                .and_then(|&c| total(c, rels, index, seen, depth + 1));
            match part {
                Some((r, s)) => {
                    rows = rows.map(|n| n + r);
                    sum = sum.zip(s).map(|(a, b)| a.wrapping_add(b));
                }
                None => (rows, sum) = (None, None),
            }
        }
        let out = Seen {
            rows,
            sum: sum.map(|s| s.to_string()),
            populated: true,
            cols_differ: false,
        };
        seen.insert(i, out);
        Some((rows?, sum))
    }
    for i in 0..rels.len() {
        if rels[i].kind == "p" {
            total(i, rels, &index, seen, 0);
        }
    }
}

/// The verdict on a relation from what each side saw (None: no such
/// relation on the target).
pub fn judge(src: &Seen, tgt: Option<&Seen>) -> &'static str {
    let Some(tgt) = tgt else { return MISSING };
    if src.populated != tgt.populated || src.rows != tgt.rows {
        return DIFFERENT;
    }
    if tgt.cols_differ {
        return CONTENT;
    }
    match (&src.sum, &tgt.sum) {
        (Some(a), Some(b)) if a == b => SAME,
        // Counted only (pgclone.verify_content off, or not populated).
        (None, None) => SAME,
        _ => CONTENT,
    }
}

/// The verdict on a sequence from its (last_value, is_called) on each
/// side (None: not here).
pub fn judge_sequence(src: (i64, bool), tgt: Option<(i64, bool)>) -> &'static str {
    match tgt {
        None => MISSING,
        Some(t) if t == src => SAME,
        Some(_) => DIFFERENT,
    }
}

/// The text form of a `SUM` of int8 (a numeric) compares as text: both
/// sides print integers the same way.
pub fn parse_rows(text: Option<&str>) -> Option<i64> {
    text.and_then(|t| t.parse().ok())
}

#[cfg(test)]
mod unit {
    use super::*;

    fn col(name: &str, base: &str, fold: bool) -> HashCol {
        HashCol {
            name: name.into(),
            type_sql: base.into(),
            base: base.into(),
            fold,
            ..HashCol::default()
        }
    }

    fn rel(name: &str, pages: i64) -> Rel {
        Rel {
            schema: "s".into(),
            name: name.into(),
            kind: "r".into(),
            populated: true,
            pages,
            cols: vec![col("id", "integer", false)],
            parts: Vec::new(),
        }
    }

    #[test]
    fn each_column_hashes_with_its_own_seed_and_nulls_count() {
        let h = row_hash(&[
            col("id", "integer", false),
            col("Name", "text", true),
            col("doc", "json", false),
        ]);
        assert_eq!(
            h,
            "coalesce(pg_catalog.hashint4extended(\"id\", 1), 1) # \
             coalesce(pg_catalog.hashtextextended(\"Name\" COLLATE pg_catalog.\"C\", 2), 2) # \
             coalesce(pg_catalog.hashtextextended(\"doc\"::text COLLATE pg_catalog.\"C\", 3), 3)"
        );
        assert_eq!(row_hash(&[]), "0::int8");
        let mut at = col("at", "timestamp with time zone", false);
        at.not_null = true;
        assert_eq!(
            row_hash(&[at]),
            "pg_catalog.timestamp_hash_extended(\"at\" AT TIME ZONE 'UTC', 1)"
        );
    }

    /// What the source says of a column's type only picks among fixed,
    /// qualified functions: a hostile type name is hashed as text.
    #[test]
    fn hash_functions_come_from_a_fixed_list() {
        assert_eq!(
            hash_of("integer[]"),
            Some(("pg_catalog.hash_array_extended", ""))
        );
        assert_eq!(hash_of("app.mood"), None);
        assert_eq!(hash_of("app.mood[]"), None);
        assert_eq!(hash_of("json"), None);
        let evil = col("x", "integer, 1) # pg_catalog.pg_sleep(10", false);
        let h = row_hash(&[evil]);
        assert_eq!(
            h,
            "coalesce(pg_catalog.hashtextextended(\"x\"::text COLLATE pg_catalog.\"C\", 1), 1)"
        );
    }

    #[test]
    fn a_statement_counts_and_sums_one_relation_by_its_quoted_name() {
        let mut r = rel("Odd \"name\"", 1);
        r.schema = "my schema".into();
        let sql = rel_select(7, &r, true);
        assert!(
            sql.starts_with("SELECT 7::int4, pg_catalog.count(*)::int8, coalesce(pg_catalog.sum(")
        );
        assert!(sql.ends_with("FROM ONLY \"my schema\".\"Odd \"\"name\"\"\""));
        assert!(rel_select(7, &r, false).contains("NULL::text"));
    }

    #[test]
    fn large_relations_go_alone_and_first_small_ones_in_groups() {
        let rels: Vec<Rel> = (0..250)
            .map(|i| {
                rel(
                    &format!("t{i}"),
                    if i == 5 {
                        5000
                    } else if i == 9 {
                        9000
                    } else {
                        3
                    },
                )
            })
            .collect();
        let indexed: Vec<(usize, &Rel)> = rels.iter().enumerate().collect();
        let b = batches(&indexed);
        assert_eq!(b[0], vec![9]);
        assert_eq!(b[1], vec![5]);
        assert_eq!(b.len(), 2 + 3);
        assert_eq!(b[2].len(), PER_STATEMENT);
        assert_eq!(b.iter().map(Vec::len).sum::<usize>(), 250);
        let sql = batch_sql(&b[4], &rels, &|_| true);
        assert_eq!(sql.matches(" UNION ALL ").count(), b[4].len() - 1);
    }

    #[test]
    fn a_partitioned_table_is_the_sum_of_its_partitions() {
        let mut parent = rel("p", 0);
        parent.kind = "p".into();
        parent.parts = vec![("s".into(), "p1".into()), ("s".into(), "p2".into())];
        let mut mid = rel("p2", 0);
        mid.kind = "p".into();
        mid.parts = vec![("s".into(), "p2a".into())];
        let rels = vec![parent, rel("p1", 1), mid, rel("p2a", 1)];
        let leaf = |rows: i64, sum: &str| Seen {
            rows: Some(rows),
            sum: Some(sum.into()),
            populated: true,
            cols_differ: false,
        };
        let mut seen: std::collections::HashMap<usize, Seen> =
            [(1, leaf(2, "9223372036854775807")), (3, leaf(3, "5"))].into();
        let mut unknown = rels.clone();
        unknown[0].parts.push(("s".into(), "elsewhere".into()));
        let mut partial = seen.clone();
        roll_up(&unknown, &mut partial);
        assert_eq!(partial[&0].rows, None, "a partition it cannot see");
        roll_up(&rels, &mut seen);
        assert_eq!(seen[&2].rows, Some(3));
        assert_eq!(seen[&0].rows, Some(5));
        assert_eq!(seen[&0].sum.as_deref(), Some("9223372036854775812"));
        let batched: Vec<(usize, &Rel)> = rels.iter().enumerate().collect();
        assert!(batches(&batched)
            .iter()
            .flatten()
            .all(|i| rels[*i].kind != "p"));
    }

    #[test]
    fn verdicts() {
        let seen = |rows: i64, sum: &str| Seen {
            rows: Some(rows),
            sum: Some(sum.into()),
            populated: true,
            cols_differ: false,
        };
        assert_eq!(judge(&seen(3, "10"), Some(&seen(3, "10"))), SAME);
        assert_eq!(judge(&seen(3, "10"), Some(&seen(4, "10"))), DIFFERENT);
        assert_eq!(judge(&seen(3, "10"), Some(&seen(3, "11"))), CONTENT);
        assert_eq!(judge(&seen(3, "10"), None), MISSING);
        let unhashed = Seen {
            rows: Some(3),
            sum: None,
            populated: true,
            cols_differ: true,
        };
        assert_eq!(judge(&seen(3, "10"), Some(&unhashed)), CONTENT);
        let counted = Seen {
            rows: Some(3),
            populated: true,
            ..Seen::default()
        };
        assert_eq!(judge(&counted, Some(&counted)), SAME);
        assert_eq!(judge(&counted, Some(&unhashed)), CONTENT);
        let empty = Seen::default();
        assert_eq!(judge(&empty, Some(&empty)), SAME);
        assert_eq!(judge(&empty, Some(&seen(0, "0"))), DIFFERENT);
        assert_eq!(judge_sequence((5, true), Some((5, true))), SAME);
        // setval(s, 1000, false) against a fresh sequence: not the same.
        assert_eq!(judge_sequence((1000, false), Some((1, false))), DIFFERENT);
        assert_eq!(judge_sequence((5, true), Some((5, false))), DIFFERENT);
        assert_eq!(judge_sequence((5, true), None), MISSING);
    }
}
