//! `diff`: the definitions of a schema's objects on both sides, each keyed
//! by what identifies it in PostgreSQL (an index, constraint, trigger or
//! policy by its table and name, a routine by its signature), compared as
//! the server itself prints them (`pg_get_*def` under `search_path = ''`).
//!
//! The JSON keeps pgclone 4.x's keys and shapes (`schema`, `in_sync`,
//! `diff_count`, `summary`, `tables`, `indexes`, `constraints`, `triggers`,
//! `views`, `sequences`) and adds `policies`, `functions` and `types`.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// One object as one side reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Obj {
    pub kind: String,
    /// The table an index, constraint, trigger, policy or column hangs on.
    pub table: Option<String>,
    pub name: String,
    pub def: String,
}

/// Every object of schema `$1` that a clone makes, one row each:
/// (kind, table, name, definition). The same statement runs on both sides.
pub fn objects_sql() -> &'static str {
    r#"
WITH rel AS (
  SELECT c.* FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = $1
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                    AND d.objid = c.oid AND d.deptype = 'e')
), coll AS (
  SELECT co.oid, pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname) AS name
  FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
)
SELECT 'table', NULL::text, c.relname::text, pg_catalog.json_build_object(
    'kind', c.relkind, 'persistence', c.relpersistence,
    'partition_key', CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END,
    'partition_of', (SELECT i.inhparent::pg_catalog.regclass::text FROM pg_catalog.pg_inherits i
                     WHERE i.inhrelid = c.oid AND c.relispartition),
    'partition_bound', CASE WHEN c.relispartition THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) END,
    'inherits', (SELECT pg_catalog.array_agg(i.inhparent::pg_catalog.regclass::text ORDER BY i.inhseqno)
                 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid AND NOT c.relispartition),
    'row_security', c.relrowsecurity, 'force_row_security', c.relforcerowsecurity,
    'options', c.reloptions,
    'access_method', (SELECT a.amname FROM pg_catalog.pg_am a WHERE a.oid = c.relam))::text
FROM rel c WHERE c.relkind IN ('r', 'p', 'f')
UNION ALL
SELECT 'column', c.relname::text, a.attname::text, pg_catalog.json_build_object(
    'position', pg_catalog.row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
    'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
    'not_null', a.attnotnull,
    'default', CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) END,
    'generated', CASE WHEN a.attgenerated <> '' THEN pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) END,
    'identity', CASE a.attidentity WHEN 'a' THEN 'ALWAYS' WHEN 'd' THEN 'BY DEFAULT' END,
    'collation', CASE WHEN a.attcollation <> t.typcollation THEN (SELECT name FROM coll WHERE coll.oid = a.attcollation) END,
    'storage', CASE WHEN a.attstorage <> t.typstorage THEN a.attstorage END)::text
FROM rel c
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE c.relkind IN ('r', 'p', 'f')
UNION ALL
SELECT 'index', t.relname::text, i.relname::text, pg_catalog.pg_get_indexdef(i.oid)
FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
JOIN rel t ON t.oid = x.indrelid
WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = x.indexrelid
                  AND k.conrelid = x.indrelid AND k.contype IN ('p', 'u', 'x'))
UNION ALL
SELECT 'constraint', t.relname::text, k.conname::text, pg_catalog.pg_get_constraintdef(k.oid)
FROM pg_catalog.pg_constraint k JOIN rel t ON t.oid = k.conrelid
-- NOT NULL is a column's property; PostgreSQL 18 also lists it here.
WHERE k.contype <> 'n'
UNION ALL
SELECT 'trigger', t.relname::text, g.tgname::text,
       pg_catalog.pg_get_triggerdef(g.oid)
       || CASE g.tgenabled WHEN 'D' THEN ' (disabled)' WHEN 'R' THEN ' (replica)' WHEN 'A' THEN ' (always)' ELSE '' END
FROM pg_catalog.pg_trigger g JOIN rel t ON t.oid = g.tgrelid
WHERE NOT g.tgisinternal
UNION ALL
SELECT 'policy', t.relname::text, p.polname::text,
       CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END
       || ' FOR ' || CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                                   WHEN 'd' THEN 'DELETE' ELSE 'ALL' END
       || ' TO ' || (SELECT pg_catalog.string_agg(w.who, ', ' ORDER BY w.who)
                     FROM (SELECT CASE WHEN r = 0 THEN 'PUBLIC'
                                       ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r)) END AS who
                           FROM pg_catalog.unnest(p.polroles) r) w)
       || coalesce(' USING (' || pg_catalog.pg_get_expr(p.polqual, p.polrelid) || ')', '')
       || coalesce(' WITH CHECK (' || pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) || ')', '')
FROM pg_catalog.pg_policy p JOIN rel t ON t.oid = p.polrelid
UNION ALL
SELECT 'view', NULL, c.relname::text,
       CASE c.relkind WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'VIEW' END
       || coalesce(' WITH (' || pg_catalog.array_to_string(c.reloptions, ', ') || ')', '')
       || ' AS ' || pg_catalog.pg_get_viewdef(c.oid, true)
FROM rel c WHERE c.relkind IN ('v', 'm')
UNION ALL
SELECT 'sequence', NULL, c.relname::text,
       'AS ' || pg_catalog.format_type(s.seqtypid, NULL) || ' START ' || s.seqstart || ' INCREMENT ' || s.seqincrement
       || ' MINVALUE ' || s.seqmin || ' MAXVALUE ' || s.seqmax || ' CACHE ' || s.seqcache
       || CASE WHEN s.seqcycle THEN ' CYCLE' ELSE '' END
       || coalesce((SELECT ' OWNED BY ' || d.refobjid::pg_catalog.regclass::text || '.'
                           || pg_catalog.quote_ident(a.attname)
                    FROM pg_catalog.pg_depend d
                    JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
                      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i')
                    LIMIT 1), '')
FROM rel c JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid
UNION ALL
SELECT 'function', NULL, p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')',
       CASE WHEN p.prokind = 'a' THEN
         (SELECT 'AGGREGATE RETURNS ' || pg_catalog.format_type(p.prorettype, NULL)
                 || ' SFUNC ' || g.aggtransfn::text || ' STYPE ' || pg_catalog.format_type(g.aggtranstype, NULL)
                 || coalesce(' FINALFUNC ' || NULLIF(g.aggfinalfn::oid, 0)::pg_catalog.regproc::text, '')
                 || coalesce(' COMBINEFUNC ' || NULLIF(g.aggcombinefn::oid, 0)::pg_catalog.regproc::text, '')
                 || coalesce(' INITCOND ' || pg_catalog.quote_literal(g.agginitval), '')
                 || ' KIND ' || g.aggkind::text
          FROM pg_catalog.pg_aggregate g WHERE g.aggfnoid = p.oid)
       ELSE pg_catalog.pg_get_functiondef(p.oid) END
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = $1
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                  AND d.objid = p.oid AND d.deptype = 'e')
UNION ALL
SELECT 'type', NULL, t.typname::text,
       CASE t.typtype
         WHEN 'e' THEN 'ENUM (' || (SELECT pg_catalog.string_agg(pg_catalog.quote_literal(e.enumlabel), ', '
                                           ORDER BY e.enumsortorder)
                                    FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid) || ')'
         WHEN 'd' THEN 'DOMAIN ' || pg_catalog.format_type(t.typbasetype, t.typtypmod)
             || coalesce(' COLLATE ' || (SELECT name FROM coll JOIN pg_catalog.pg_type b ON b.oid = t.typbasetype
                                         WHERE coll.oid = t.typcollation AND t.typcollation <> b.typcollation), '')
             || coalesce(' DEFAULT ' || pg_catalog.pg_get_expr(t.typdefaultbin, 0), '')
             || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END
             || coalesce((SELECT ' ' || pg_catalog.string_agg('CONSTRAINT ' || pg_catalog.quote_ident(k.conname) || ' '
                                 || pg_catalog.pg_get_constraintdef(k.oid), ' ' ORDER BY k.conname)
                          FROM pg_catalog.pg_constraint k WHERE k.contypid = t.oid AND k.contype <> 'n'), '')
         WHEN 'r' THEN 'RANGE (SUBTYPE = ' || (SELECT pg_catalog.format_type(r.rngsubtype, NULL)
                                            FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid) || ')'
         ELSE 'TYPE (' || coalesce((SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname) || ' '
                                           || pg_catalog.format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                                    FROM pg_catalog.pg_attribute a
                                    WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '') || ')'
       END
FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = $1
  AND (t.typtype IN ('e', 'd', 'r')
       OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid) = 'c'))
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
                  AND d.objid = t.oid AND d.deptype = 'e')
"#
}

/// The kinds in the order of the JSON, with their key there.
const KINDS: [(&str, &str); 9] = [
    ("table", "tables"),
    ("index", "indexes"),
    ("constraint", "constraints"),
    ("trigger", "triggers"),
    ("view", "views"),
    ("sequence", "sequences"),
    ("policy", "policies"),
    ("function", "functions"),
    ("type", "types"),
];

/// Objects hung on a table: keyed and reported with it.
fn on_table(kind: &str) -> bool {
    matches!(kind, "index" | "constraint" | "trigger" | "policy")
}

type Key = (Option<String>, String);

fn by_key<'a>(objs: &'a [Obj], kind: &str) -> BTreeMap<Key, &'a Obj> {
    objs.iter()
        .filter(|o| o.kind == kind)
        .map(|o| ((o.table.clone(), o.name.clone()), o))
        .collect()
}

fn parsed(def: &str) -> Value {
    serde_json::from_str(def).unwrap_or(Value::String(def.to_string()))
}

/// A column as 4.x lists one only on one side.
fn column_entry(name: &str, def: &Value) -> Value {
    json!({
        "name": name,
        "type": def["type"],
        "not_null": def["not_null"],
        "default": def["default"],
    })
}

/// Columns by table, each by name, parsed once for the whole report.
type Columns = BTreeMap<String, BTreeMap<String, Value>>;

fn columns(objs: &[Obj]) -> Columns {
    let mut out = Columns::new();
    for o in objs.iter().filter(|o| o.kind == "column") {
        out.entry(o.table.clone().unwrap_or_default())
            .or_default()
            .insert(o.name.clone(), parsed(&o.def));
    }
    out
}

/// What differs between two versions of a table: its columns (4.x's three
/// lists) and its own properties.
fn table_drift(
    name: &str,
    src: &Columns,
    tgt: &Columns,
    s_def: &str,
    t_def: &str,
) -> Option<Value> {
    let empty = BTreeMap::new();
    let cols = |c: &'_ Columns| c.get(name).cloned().unwrap_or_else(|| empty.clone());
    let (sc, tc) = (cols(src), cols(tgt));
    let only_src: Vec<Value> = sc
        .iter()
        .filter(|(n, _)| !tc.contains_key(*n))
        .map(|(n, d)| column_entry(n, d))
        .collect();
    let only_tgt: Vec<Value> = tc
        .iter()
        .filter(|(n, _)| !sc.contains_key(*n))
        .map(|(n, d)| column_entry(n, d))
        .collect();
    let mut drift = Vec::new();
    for (n, s) in &sc {
        let Some(t) = tc.get(n) else { continue };
        if s == t {
            continue;
        }
        let mut e = Map::new();
        e.insert("name".into(), json!(n));
        for field in ["type", "not_null", "default"] {
            e.insert(format!("source_{field}"), s[field].clone());
            e.insert(format!("target_{field}"), t[field].clone());
        }
        for field in ["identity", "generated", "collation", "position", "storage"] {
            if s[field] != t[field] {
                e.insert(format!("source_{field}"), s[field].clone());
                e.insert(format!("target_{field}"), t[field].clone());
            }
        }
        drift.push(Value::Object(e));
    }
    let (sp, tp) = (parsed(s_def), parsed(t_def));
    let mut props = Vec::new();
    if let (Value::Object(s), Value::Object(t)) = (&sp, &tp) {
        for (k, sv) in s {
            let tv = t.get(k).cloned().unwrap_or(Value::Null);
            if *sv != tv {
                props.push(json!({"property": k, "source": sv, "target": tv}));
            }
        }
    }
    if only_src.is_empty() && only_tgt.is_empty() && drift.is_empty() && props.is_empty() {
        return None;
    }
    Some(json!({
        "name": name,
        "columns_only_in_source": only_src,
        "columns_only_in_target": only_tgt,
        "columns_drift": drift,
        "properties_drift": props,
    }))
}

/// An object present on one side only, as 4.x lists it.
fn lone(kind: &str, o: &Obj) -> Value {
    match kind {
        "table" | "sequence" => json!(o.name),
        k if on_table(k) => json!({"name": o.name, "table": o.table, "def": o.def}),
        _ => json!({"name": o.name, "def": o.def}),
    }
}

/// The report: 4.x's keys first, in its order.
pub fn report(schema: &str, src: &[Obj], tgt: &[Obj]) -> Value {
    let mut summary = Map::new();
    let mut sections = Vec::new();
    let mut count = 0usize;
    let (src_cols, tgt_cols) = (columns(src), columns(tgt));
    for (kind, key) in KINDS {
        let (s, t) = (by_key(src, kind), by_key(tgt, kind));
        let only_src: Vec<Value> = s
            .iter()
            .filter(|(k, _)| !t.contains_key(*k))
            .map(|(_, o)| lone(kind, o))
            .collect();
        let only_tgt: Vec<Value> = t
            .iter()
            .filter(|(k, _)| !s.contains_key(*k))
            .map(|(_, o)| lone(kind, o))
            .collect();
        let mut modified = Vec::new();
        for (k, so) in &s {
            let Some(to) = t.get(k) else { continue };
            if kind == "table" {
                modified.extend(table_drift(
                    &so.name, &src_cols, &tgt_cols, &so.def, &to.def,
                ));
            } else if so.def != to.def {
                let mut e = Map::new();
                e.insert("name".into(), json!(so.name));
                if on_table(kind) {
                    e.insert("table".into(), json!(so.table));
                }
                e.insert("source_def".into(), json!(so.def));
                e.insert("target_def".into(), json!(to.def));
                modified.push(Value::Object(e));
            }
        }
        summary.insert(format!("{key}_only_in_source"), json!(only_src.len()));
        summary.insert(format!("{key}_only_in_target"), json!(only_tgt.len()));
        summary.insert(format!("{key}_modified"), json!(modified.len()));
        count += only_src.len() + only_tgt.len() + modified.len();
        sections.push((
            key,
            json!({"only_in_source": only_src, "only_in_target": only_tgt, "modified": modified}),
        ));
    }
    let mut out = Map::new();
    out.insert("schema".into(), json!(schema));
    out.insert("in_sync".into(), json!(count == 0));
    out.insert("diff_count".into(), json!(count));
    out.insert("summary".into(), Value::Object(summary));
    for (key, v) in sections {
        out.insert(key.into(), v);
    }
    Value::Object(out)
}

#[cfg(test)]
mod unit {
    use super::*;

    fn obj(kind: &str, table: Option<&str>, name: &str, def: &str) -> Obj {
        Obj {
            kind: kind.into(),
            table: table.map(str::to_string),
            name: name.into(),
            def: def.into(),
        }
    }

    fn col(table: &str, name: &str, default: Option<&str>, identity: Option<&str>) -> Obj {
        obj(
            "column",
            Some(table),
            name,
            &json!({"position": 1, "type": "integer", "not_null": true, "default": default,
                    "generated": null, "identity": identity, "collation": null, "storage": null})
            .to_string(),
        )
    }

    fn base() -> Vec<Obj> {
        vec![
            obj("table", None, "a", r#"{"kind":"r","row_security":false}"#),
            obj("table", None, "b", r#"{"kind":"r","row_security":false}"#),
            col("a", "id", None, Some("ALWAYS")),
            col("b", "id", Some("1"), None),
            obj(
                "index",
                Some("a"),
                "by_x",
                "CREATE INDEX by_x ON s.a USING btree (x)",
            ),
            obj(
                "index",
                Some("b"),
                "by_x",
                "CREATE INDEX by_x ON s.b USING btree (x)",
            ),
        ]
    }

    #[test]
    fn the_same_objects_are_in_sync_with_4x_keys_in_order() {
        let r = report("s", &base(), &base());
        assert_eq!(r["in_sync"], json!(true));
        assert_eq!(r["diff_count"], json!(0));
        let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
        assert_eq!(
            keys[..10],
            [
                "schema",
                "in_sync",
                "diff_count",
                "summary",
                "tables",
                "indexes",
                "constraints",
                "triggers",
                "views",
                "sequences"
            ]
        );
        assert_eq!(r["summary"]["indexes_only_in_source"], json!(0));
    }

    #[test]
    fn same_named_indexes_on_two_tables_are_two_objects() {
        let mut tgt = base();
        tgt.retain(|o| !(o.kind == "index" && o.table.as_deref() == Some("b")));
        let r = report("s", &base(), &tgt);
        assert_eq!(r["diff_count"], json!(1));
        assert_eq!(r["indexes"]["only_in_source"][0]["table"], json!("b"));
        assert_eq!(r["indexes"]["modified"], json!([]));
    }

    #[test]
    fn column_and_table_drift_are_named() {
        let mut tgt = base();
        tgt[2] = col("a", "id", None, None);
        tgt[3] = col("b", "id", Some("2"), None);
        tgt[0] = obj("table", None, "a", r#"{"kind":"r","row_security":true}"#);
        tgt.push(obj("table", None, "extra", "{}"));
        let r = report("s", &base(), &tgt);
        assert_eq!(r["tables"]["only_in_target"], json!(["extra"]));
        let m = &r["tables"]["modified"];
        assert_eq!(m[0]["name"], json!("a"));
        assert_eq!(m[0]["columns_drift"][0]["source_identity"], json!("ALWAYS"));
        assert_eq!(m[0]["columns_drift"][0]["target_identity"], json!(null));
        assert_eq!(
            m[0]["properties_drift"][0]["property"],
            json!("row_security")
        );
        assert_eq!(m[1]["columns_drift"][0]["source_default"], json!("1"));
        assert_eq!(m[1]["columns_drift"][0]["target_default"], json!("2"));
        assert!(m[1]["columns_drift"][0].get("source_identity").is_none());
        assert_eq!(r["diff_count"], json!(3));
        assert_eq!(r["summary"]["tables_modified"], json!(2));
        assert_eq!(r["in_sync"], json!(false));
    }
}
