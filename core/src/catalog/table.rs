//! Reading one table's full definition from the source.

use super::TableDef;
use crate::sqltext::{qualified, quote_ident};

/// JSON array of an ACL column, in the ACL's own order.
pub(crate) fn acl_json(col: &str) -> String {
    format!(
        "(SELECT coalesce(json_agg(json_build_object(\
            'grantee', CASE WHEN x.grantee = 0 THEN NULL ELSE pg_get_userbyid(x.grantee) END, \
            'privilege', x.privilege_type, 'grantable', x.is_grantable) ORDER BY x.ord), '[]') \
          FROM aclexplode({col}) WITH ORDINALITY AS x(grantor, grantee, privilege_type, is_grantable, ord))"
    )
}

/// The comment on an object, read by an index scan of pg_description. The
/// built-in obj_description() and col_description() are SQL functions run
/// once per row: at 100 000 columns or constraints they cost the catalog
/// phase a good part of a second each.
pub(crate) fn description(objoid: &str, catalog: &str) -> String {
    column_description(objoid, catalog, "0")
}

/// The comment on a column (`objsubid` = its number), or on an object when
/// `subid` is 0.
pub(crate) fn column_description(objoid: &str, catalog: &str, subid: &str) -> String {
    format!(
        "(SELECT ds.description FROM pg_catalog.pg_description ds \
          WHERE ds.objoid = {objoid} AND ds.classoid = 'pg_catalog.{catalog}'::pg_catalog.regclass \
            AND ds.objsubid = {subid})"
    )
}

/// The columns (besides plain key columns) that an object reads, from pg_depend.
fn depends_on_columns(classid: &str, objid: &str, relid: &str) -> String {
    format!(
        "SELECT dep.refobjsubid::int2 FROM pg_depend dep \
         WHERE dep.classid = '{classid}'::regclass AND dep.objid = {objid} \
           AND dep.refclassid = 'pg_class'::regclass AND dep.refobjid = {relid} AND dep.refobjsubid > 0"
    )
}

/// One JSON row per table: by `(schema, name)` ($1, $2) for a table clone,
/// or every table and partitioned table of the schemas in $1 that is not an
/// extension's. Sizes come from `relpages` (heap and TOAST), which takes no
/// lock on the table, except where `relpages` says nothing (`size_unknown`,
/// see `TOAST_UNKNOWN_FROM_PAGES`).
pub fn tables_sql(by_name: bool) -> String {
    let filter = if by_name {
        "n.nspname = $1 AND c.relname = $2"
    } else {
        "n.nspname = ANY($1) AND c.relkind IN ('r', 'p') \
         AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass \
                         AND e.objid = c.oid AND e.deptype = 'e')"
    };
    format!(
        "SELECT json_build_object(\
            'oid', c.oid::int8, 'schema', n.nspname, 'name', c.relname, 'relkind', c.relkind::text, \
            'persistence', c.relpersistence::text, 'reloptions', coalesce(c.reloptions, '{{}}'), \
            'toast_reloptions', coalesce(tc.reloptions, '{{}}'), 'access_method', am.amname, \
            'rls_enabled', c.relrowsecurity, 'rls_forced', c.relforcerowsecurity, \
            'replident', c.relreplident::text, \
            'replident_index', (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
                                 WHERE i.indrelid = c.oid AND i.indisreplident), \
            'cluster_index', (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
                                 WHERE i.indrelid = c.oid AND i.indisclustered), \
            'owner', pg_get_userbyid(c.relowner), 'acl', {acl}, 'acl_null', c.relacl IS NULL, \
            'comment', {comment}, 'is_partition', c.relispartition, \
            'inherits', EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = c.oid), \
            'tablespace', ts.spcname, \
            'bytes', (c.relpages::int8 + coalesce(tc.relpages, 0)) * current_setting('block_size')::int8, \
            'pages', c.relpages::int8, \
            'size_unknown', (c.reltuples < 0 AND c.relpages = 0) \
                OR (tc.oid IS NOT NULL AND tc.relpages = 0 AND c.relpages >= {toast_unknown_from}), \
            'has_toast', c.reltoastrelid <> 0, \
            'int_key', (SELECT a.attname FROM pg_constraint k \
                JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1] \
                WHERE k.conrelid = c.oid AND k.contype = 'p' AND cardinality(k.conkey) = 1 \
                  AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)), \
            'partkey', CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, \
            'partition_of', (SELECT quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) \
                FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent \
                JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = c.oid AND c.relispartition), \
            'partition_bound', CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END, \
            'inherits_from', ARRAY(SELECT quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) \
                FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent \
                JOIN pg_namespace pn ON pn.oid = pc.relnamespace \
                WHERE i.inhrelid = c.oid AND NOT c.relispartition ORDER BY i.inhseqno), \
            'of_type', CASE WHEN c.reloftype <> 0 THEN format_type(c.reloftype, NULL) END)::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_class tc ON tc.oid = c.reltoastrelid \
         LEFT JOIN pg_am am ON am.oid = c.relam \
         LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace \
         WHERE {filter} \
         ORDER BY n.nspname, c.relname",
        acl = acl_json("c.relacl"),
        comment = description("c.oid", "pg_class"),
        toast_unknown_from = TOAST_UNKNOWN_FROM_PAGES,
    )
}

/// A table is measured (a lock each) when it was never vacuumed or
/// analyzed, or when its heap has this many pages and its TOAST table says
/// none: ANALYZE leaves a TOAST table's relpages at 0 until the first
/// VACUUM, so a table loaded and analyzed a minute ago would look as if
/// its out-of-line values weighed nothing.
pub const TOAST_UNKNOWN_FROM_PAGES: i64 = 128;

/// The sizes (heap, TOAST, maps) of the tables in $1, for those `relpages`
/// cannot tell. This takes a lock on each, so it is asked for few tables.
pub fn table_sizes_sql() -> &'static str {
    "SELECT r::int8, pg_table_size(r)::int8 FROM unnest($1::oid[]) AS r"
}

/// TOAST bytes from which a table's stored values are sampled for how the
/// source compressed them (below it, failed compression costs little).
pub const SAMPLE_TOAST_FROM_BYTES: i64 = 64 << 20;

/// A stored value at least this large was a candidate for compression on the
/// source: its row was over the TOAST threshold (about 2 kB) with it.
const SAMPLE_LARGE_VALUE: i32 = 1024;

/// The query that samples a large TOASTed table (about 64 heap pages) for how
/// the source stored the values of its compressible (`EXTENDED`) columns, and
/// the indexes of those columns. One row: for each column, the values stored
/// compressed and the large ones stored as they are. `pg_column_compression`
/// and `pg_column_size` read the stored header only: nothing is detoasted,
/// and no function of the column's type runs. None when there is nothing to
/// sample (small TOAST, no such column, or a server before 14).
pub fn compression_sample_sql(def: &TableDef, version: i32) -> Option<(String, Vec<usize>)> {
    let toast = def.bytes - def.pages * 8192;
    if version < 140000 || def.relkind != "r" || !def.has_toast || toast < SAMPLE_TOAST_FROM_BYTES {
        return None;
    }
    let cols: Vec<usize> = (0..def.columns.len())
        .filter(|i| def.columns[*i].attstorage == "x")
        .collect();
    if cols.is_empty() {
        return None;
    }
    let pct = (6400.0 / def.pages.max(1) as f64).clamp(0.001, 100.0);
    let names: Vec<String> = cols
        .iter()
        .map(|i| quote_ident(&def.columns[*i].name))
        .collect();
    let counts: Vec<String> = names
        .iter()
        .map(|q| {
            format!(
                "count(*) FILTER (WHERE pg_catalog.pg_column_compression({q}) IS NOT NULL), \
                 count(*) FILTER (WHERE pg_catalog.pg_column_compression({q}) IS NULL \
                                  AND pg_catalog.pg_column_size({q}) >= {SAMPLE_LARGE_VALUE})"
            )
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM (SELECT {} FROM ONLY {} TABLESAMPLE SYSTEM ({pct}) REPEATABLE (0) LIMIT 5000) s",
        counts.join(", "),
        names.join(", "),
        qualified(&def.schema, &def.name),
    );
    Some((sql, cols))
}

/// Marks the sampled columns whose large values the source stores
/// uncompressed (at least 16 of them, and at most one compressed value for
/// every 20 that are not) to be loaded with `STORAGE EXTERNAL`. `counts` is
/// the sample's row: (compressed, large uncompressed) per column of `cols`.
pub fn apply_compression_sample(def: &mut TableDef, cols: &[usize], counts: &[i64]) {
    for (k, i) in cols.iter().enumerate() {
        let (Some(compressed), Some(plain)) = (counts.get(2 * k), counts.get(2 * k + 1)) else {
            return;
        };
        def.columns[*i].load_external = *plain >= 16 && compressed * 20 <= *plain;
    }
}

pub fn columns_sql(version: i32) -> String {
    let compression = if version >= 140000 {
        "nullif(a.attcompression::text, '')"
    } else {
        "NULL::text"
    };
    // A type whose binary form carries no server-specific OIDs: built-in base
    // types whose arrays hold built-in elements, enums (sent as labels), and
    // domains over those.
    let binary_ok = "EXISTS (SELECT 1 FROM pg_type b \
          WHERE b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
            AND b.typtype <> 'd' \
            AND (b.typtype = 'e' OR (b.oid < 16384 AND b.typsend::oid <> 0 AND b.typreceive::oid <> 0 \
                 AND (b.typelem = 0 OR b.typelem < 16384))))";
    format!(
        "SELECT a.attrelid::int8, json_agg(json_build_object(\
            'attnum', a.attnum, 'name', a.attname, 'type_sql', format_type(a.atttypid, a.atttypmod), \
            'not_null', a.attnotnull, \
            'default', CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END, \
            'generated', CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END, \
            'generated_kind', nullif(a.attgenerated::text, ''), \
            'identity', nullif(a.attidentity::text, ''), \
            'collation', CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0 \
                              THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END, \
            'storage', CASE WHEN a.attstorage <> t.typstorage THEN a.attstorage::text END, \
            'attstorage', a.attstorage::text, \
            'stattarget', CASE WHEN coalesce(a.attstattarget::int, -1) >= 0 THEN a.attstattarget::int END, \
            'options', a.attoptions, 'compression', {compression}, \
            'comment', {comment}, 'acl', {acl}, \
            'binary_ok', {binary_ok}, \
            'deps', CASE WHEN d.oid IS NOT NULL THEN ARRAY({deps}) END, \
            'is_local', a.attislocal, \
            'type_facts', json_build_object('category', t.typcategory, 'base_oid', bt.oid::int8, \
                'typmod', CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, \
                'elem_category', et.typcategory, 'elem_oid', coalesce(et.oid::int8, 0)) \
         ) ORDER BY a.attnum)::text \
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
         LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A' \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         LEFT JOIN pg_collation co ON co.oid = a.attcollation \
         LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace \
         WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
         GROUP BY a.attrelid",
        acl = acl_json("a.attacl"),
        deps = depends_on_columns("pg_attrdef", "d.oid", "a.attrelid"),
        comment = column_description("a.attrelid", "pg_class", "a.attnum"),
    )
}

/// The constraints of the tables in $1. A key's index definition (to build
/// it as an index of its own, beside the table's others) is read only for
/// the tables in $2: pg_get_indexdef() costs tens of microseconds a call,
/// seconds at 100 000 small tables that never need it.
pub fn constraints_sql() -> String {
    format!(
        "SELECT con.conrelid::int8, json_agg(json_build_object(\
        'name', con.conname, 'kind', con.contype::text, 'def', pg_get_constraintdef(con.oid), \
        'validated', con.convalidated, 'columns', coalesce(con.conkey, '{{}}'), \
        'ref_columns', coalesce(con.confkey, '{{}}'), \
        'ref_schema', rn.nspname, 'ref_table', rc.relname, \
        'self_ref', con.contype = 'f' AND con.confrelid = con.conrelid, \
        'comment', {comment}, \
        'index_comment', CASE WHEN con.contype IN ('p','u','x') THEN {index_comment} END, \
        'index_def', CASE WHEN con.contype IN ('p','u') AND con.conrelid = ANY($2) \
            THEN pg_get_indexdef(con.conindid) END, \
        'deferrable', con.condeferrable, 'deferred', con.condeferred, \
        'is_local', con.conislocal, \
        'parent_index', (SELECT quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) \
            FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent \
            JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = con.conindid) \
     ) ORDER BY con.contype, con.conname)::text \
     FROM pg_constraint con \
     LEFT JOIN pg_class rc ON rc.oid = con.confrelid \
     LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace \
     WHERE con.conrelid = ANY($1) AND con.contype IN ('p','u','c','f','x') \
       AND (con.conparentid = 0 OR con.contype IN ('p','u','x')) \
     GROUP BY con.conrelid",
        comment = description("con.oid", "pg_constraint"),
        index_comment = description("con.conindid", "pg_class"),
    )
}

pub fn indexes_sql() -> String {
    format!(
        "SELECT i.indrelid::int8, json_agg(json_build_object(\
            'name', ic.relname, 'def', pg_get_indexdef(i.indexrelid), \
            'columns', ARRAY(SELECT DISTINCT k FROM (SELECT unnest(i.indkey::int2[]) AS k UNION ALL {deps}) s WHERE k > 0), \
            'comment', {comment}, 'expression', i.indexprs IS NOT NULL, \
            'stats', (SELECT json_agg(json_build_array(ia.attnum, ia.attstattarget::int) ORDER BY ia.attnum) \
                      FROM pg_attribute ia WHERE ia.attrelid = i.indexrelid \
                        AND coalesce(ia.attstattarget::int, -1) >= 0), \
            'parent_index', (SELECT quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) \
                FROM pg_inherits inh JOIN pg_class pc ON pc.oid = inh.inhparent \
                JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE inh.inhrelid = i.indexrelid) \
         ) ORDER BY ic.relname)::text \
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
         WHERE i.indrelid = ANY($1) AND i.indisvalid AND i.indisready \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = i.indrelid \
                           AND c.conindid = i.indexrelid AND c.contype IN ('p','u','x')) \
         GROUP BY i.indrelid",
        deps = depends_on_columns("pg_class", "i.indexrelid", "i.indrelid"),
        comment = description("i.indexrelid", "pg_class"),
    )
}

pub fn triggers_sql() -> String {
    format!(
        "SELECT t.tgrelid::int8, json_agg(json_build_object(\
            'name', t.tgname, 'def', pg_get_triggerdef(t.oid), 'enabled', t.tgenabled::text, \
            'columns', ARRAY(SELECT DISTINCT k FROM (SELECT unnest(t.tgattr::int2[]) AS k UNION ALL {deps}) s WHERE k > 0), \
            'comment', {comment} \
         ) ORDER BY t.tgname)::text \
         FROM pg_trigger t WHERE t.tgrelid = ANY($1) AND NOT t.tgisinternal AND t.tgparentid = 0 \
         GROUP BY t.tgrelid",
        deps = depends_on_columns("pg_trigger", "t.oid", "t.tgrelid"),
        comment = description("t.oid", "pg_trigger"),
    )
}

pub fn policies_sql() -> String {
    format!(
        "SELECT p.polrelid::int8, json_agg(json_build_object(\
            'name', p.polname, 'permissive', p.polpermissive, 'cmd', p.polcmd::text, \
            'roles', CASE WHEN p.polroles = '{{0}}' THEN '[]'::json ELSE \
                (SELECT json_agg(pg_get_userbyid(r.role) ORDER BY r.ord) \
                 FROM unnest(p.polroles) WITH ORDINALITY AS r(role, ord)) END, \
            'using', pg_get_expr(p.polqual, p.polrelid), 'check', pg_get_expr(p.polwithcheck, p.polrelid), \
            'comment', {comment}, \
            'columns', ARRAY(SELECT DISTINCT k FROM ({deps}) s(k)) \
         ) ORDER BY p.polname)::text \
         FROM pg_policy p WHERE p.polrelid = ANY($1) GROUP BY p.polrelid",
        deps = depends_on_columns("pg_policy", "p.oid", "p.polrelid"),
        comment = description("p.oid", "pg_policy"),
    )
}

pub fn sequences_sql() -> String {
    format!(
        "SELECT d.refobjid::int8, json_agg(json_build_object(\
            'schema', n.nspname, 'name', c.relname, 'column', d.refobjsubid, 'identity', d.deptype = 'i', \
            'type_sql', format_type(s.seqtypid, NULL), 'start', s.seqstart, 'increment', s.seqincrement, \
            'min', s.seqmin, 'max', s.seqmax, 'cache', s.seqcache, 'cycle', s.seqcycle, \
            'owner', pg_get_userbyid(c.relowner), 'acl', {acl}, 'acl_null', c.relacl IS NULL, \
            'comment', {comment}, \
            'literal', quote_literal(quote_ident(n.nspname) || '.' || quote_ident(c.relname)), \
            'persistence', c.relpersistence::text \
         ) ORDER BY c.relname)::text \
         FROM pg_depend d JOIN pg_class c ON c.oid = d.objid AND c.relkind = 'S' \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_sequence s ON s.seqrelid = c.oid \
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
           AND d.refobjid = ANY($1) AND d.deptype IN ('a','i') \
         GROUP BY d.refobjid",
        acl = acl_json("c.relacl"),
        comment = description("c.oid", "pg_class"),
    )
}

/// What the column defaults of the tables in $1 read, as node keys
/// (functions, sequences, types...): a default whose needs are made after
/// its table waits for the end of the clone.
pub fn default_deps_sql() -> String {
    format!(
        "WITH {nodes} \
         SELECT ad.adrelid::int8, array_agg(DISTINCT {key}) FILTER (WHERE {key} IS NOT NULL) \
         FROM pg_attrdef ad JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum \
         JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid \
         LEFT JOIN nodes n ON n.cls = d.refclassid AND n.oid = d.refobjid \
         WHERE ad.adrelid = ANY($1) AND a.attgenerated = '' AND d.refobjid >= 16384 \
         GROUP BY ad.adrelid",
        nodes = super::objects::nodes_cte(),
        key = super::objects::node_key("d.refclassid", "d.refobjid", "n")
    )
}

/// The positions of some sequences, in one statement: `oid, last_value,
/// is_called` per row.
pub fn sequence_positions_sql(seqs: &[(i64, String)]) -> String {
    seqs.iter()
        .map(|(oid, qualified)| {
            format!("SELECT {oid}::int8, last_value, is_called FROM {qualified}")
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

#[cfg(test)]
mod unit {
    use super::*;
    use crate::sqltext::{tokenize, Tok};

    /// Every bracket closes what it opened: the queries are built as text, and
    /// a stray parenthesis only shows on a server otherwise.
    fn balanced(sql: &str) -> bool {
        let mut depth = 0i32;
        for t in tokenize(sql).expect("lexes") {
            match t.kind {
                Tok::Punct('(') | Tok::Punct('[') => depth += 1,
                Tok::Punct(')') | Tok::Punct(']') => depth -= 1,
                _ => {}
            }
            if depth < 0 {
                return false;
            }
        }
        depth == 0
    }

    #[test]
    fn the_queries_are_well_formed() {
        let all = [
            tables_sql(true),
            tables_sql(false),
            table_sizes_sql().to_string(),
            columns_sql(150000),
            columns_sql(130000),
            constraints_sql(),
            indexes_sql(),
            triggers_sql(),
            policies_sql(),
            sequences_sql(),
            default_deps_sql(),
            sequence_positions_sql(&[(1, "\"s\".\"q\"".into()), (2, "\"s\".\"r\"".into())]),
            super::super::objects::edges_sql(),
            super::super::objects::extension_members_sql(),
            super::super::objects::not_cloned_sql(),
        ];
        for q in &all {
            assert!(balanced(q), "{q}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::fixture::{column, table};

    fn toasted() -> TableDef {
        let mut t = table("docs", "big");
        t.columns = vec![
            column(1, "id", "integer"),
            column(2, "Body", "text"),
            column(3, "meta", "jsonb"),
        ];
        t.columns[0].attstorage = "p".into();
        t.columns[2].attstorage = "m".into();
        t.has_toast = true;
        t.pages = 1000;
        t.bytes = t.pages * 8192 + (200 << 20);
        t
    }

    #[test]
    fn samples_only_large_toast_and_extended_columns() {
        let t = toasted();
        let (sql, cols) = compression_sample_sql(&t, 150000).unwrap();
        assert_eq!(cols, vec![1]);
        assert!(
            sql.contains("pg_catalog.pg_column_compression(\"Body\")"),
            "{sql}"
        );
        assert!(
            sql.contains("FROM ONLY \"docs\".\"big\" TABLESAMPLE SYSTEM (6.4) REPEATABLE (0)"),
            "{sql}"
        );
        assert!(
            compression_sample_sql(&t, 130000).is_none(),
            "no pg_column_compression before 14"
        );
        let mut small = toasted();
        small.bytes = small.pages * 8192 + (10 << 20);
        assert!(compression_sample_sql(&small, 150000).is_none());
        let mut no_toast = toasted();
        no_toast.has_toast = false;
        assert!(compression_sample_sql(&no_toast, 150000).is_none());
        let mut parent = toasted();
        parent.relkind = "p".into();
        assert!(compression_sample_sql(&parent, 150000).is_none());
    }

    #[test]
    fn external_only_when_the_source_kept_values_uncompressed() {
        let mut t = toasted();
        apply_compression_sample(&mut t, &[1], &[2, 900]);
        assert!(t.columns[1].load_external);
        apply_compression_sample(&mut t, &[1], &[]);
        assert!(t.columns[1].load_external, "a short row changes nothing");
        apply_compression_sample(&mut t, &[1], &[100, 900]);
        assert!(!t.columns[1].load_external, "too many compressed values");
        apply_compression_sample(&mut t, &[1], &[0, 900]);
        apply_compression_sample(&mut t, &[1], &[0, 10]);
        assert!(!t.columns[1].load_external, "too few values to tell");
    }
}
