//! Everything in a set of schemas besides tables: schemas, types, routines,
//! standalone sequences, views, rules, statistics, collations, extensions,
//! large objects, default privileges, and the dependencies between them.

use super::AclEntry;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SchemaObj {
    pub oid: i64,
    pub name: String,
    pub owner: String,
    pub acl: Vec<AclEntry>,
    pub acl_null: bool,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TypeAttr {
    pub name: String,
    pub type_sql: String,
    pub collation: Option<String>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DomainCheck {
    pub name: String,
    pub def: String,
    pub validated: bool,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TypeObj {
    pub oid: i64,
    pub schema: String,
    pub name: String,
    /// e enum, c composite, d domain, r range
    pub kind: String,
    pub owner: String,
    pub acl: Vec<AclEntry>,
    pub acl_null: bool,
    pub comment: Option<String>,
    pub labels: Option<Vec<String>>,
    pub attrs: Option<Vec<TypeAttr>>,
    pub base: Option<String>,
    pub default: Option<String>,
    pub not_null: Option<bool>,
    pub collation: Option<String>,
    pub checks: Option<Vec<DomainCheck>>,
    pub subtype: Option<String>,
    pub opclass: Option<String>,
    pub canonical: Option<String>,
    pub subdiff: Option<String>,
    pub multirange: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AggInfo {
    pub args: String,
    pub kind: String,
    pub sfunc: String,
    pub stype: String,
    pub sspace: i32,
    pub finalfunc: Option<String>,
    pub finalextra: bool,
    pub finalmodify: String,
    pub combinefunc: Option<String>,
    pub serialfunc: Option<String>,
    pub deserialfunc: Option<String>,
    pub initcond: Option<String>,
    pub msfunc: Option<String>,
    pub minvfunc: Option<String>,
    pub mstype: Option<String>,
    pub msspace: i32,
    pub mfinalfunc: Option<String>,
    pub mfinalextra: bool,
    pub mfinalmodify: String,
    pub minitcond: Option<String>,
    pub sortop: Option<String>,
    pub numdirect: i32,
    pub parallel: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProcObj {
    pub oid: i64,
    pub schema: String,
    pub name: String,
    /// f function, p procedure, a aggregate, w window
    pub kind: String,
    pub identity_args: String,
    pub def: Option<String>,
    pub owner: String,
    pub acl: Vec<AclEntry>,
    pub acl_null: bool,
    pub comment: Option<String>,
    pub agg: Option<AggInfo>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SeqObj {
    pub oid: i64,
    pub schema: String,
    pub name: String,
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
    pub persistence: String,
    /// A table column this sequence is OWNED BY, outside the cloned tables' own sequences.
    pub owned_by: Option<String>,
    #[serde(default)]
    pub last_value: i64,
    #[serde(default)]
    pub is_called: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ColumnComment {
    pub name: String,
    pub comment: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ViewObj {
    pub oid: i64,
    pub schema: String,
    pub name: String,
    /// v view, m materialized view
    pub kind: String,
    pub def: String,
    pub reloptions: Vec<String>,
    pub access_method: Option<String>,
    pub populated: bool,
    pub owner: String,
    pub acl: Vec<AclEntry>,
    pub acl_null: bool,
    pub comment: Option<String>,
    pub column_comments: Vec<ColumnComment>,
    pub column_defaults: Vec<ColumnComment>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RuleObj {
    pub name: String,
    pub table: String,
    pub def: String,
    pub enabled: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatObj {
    pub schema: String,
    pub name: String,
    pub def: String,
    pub stattarget: Option<i32>,
    pub owner: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CollObj {
    pub oid: i64,
    pub schema: String,
    pub name: String,
    pub provider: String,
    pub collate: Option<String>,
    pub ctype: Option<String>,
    pub icu_locale: Option<String>,
    pub deterministic: bool,
    pub owner: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExtConfig {
    pub schema: String,
    pub table: String,
    pub condition: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExtObj {
    pub oid: i64,
    pub name: String,
    pub schema: String,
    pub version: String,
    pub comment: Option<String>,
    pub config: Vec<ExtConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LargeObj {
    pub oid: i64,
    pub owner: String,
    pub acl: Vec<AclEntry>,
    pub acl_null: bool,
    pub comment: Option<String>,
    pub size: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DefaultAcl {
    pub role: String,
    pub schema: Option<String>,
    /// r tables, S sequences, f functions, T types, n schemas
    pub objtype: String,
    pub acl: Vec<AclEntry>,
}

/// A dependency between two node keys ("rel:123", "type:45", "proc:6", ...).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
}

fn acl(col: &str) -> String {
    super::table::acl_json(col)
}

/// Not a member of an extension (those come with CREATE EXTENSION).
fn not_member(catalog: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend ext_dep WHERE ext_dep.classid = '{catalog}'::regclass \
         AND ext_dep.objid = {oid} AND ext_dep.deptype = 'e')"
    )
}

fn qname(nsp: &str, name: &str) -> String {
    format!("quote_ident({nsp}) || '.' || quote_ident({name})")
}

pub fn schemas_sql() -> String {
    format!(
        "SELECT coalesce(json_agg(json_build_object('oid', n.oid::int8, 'name', n.nspname, \
            'owner', pg_get_userbyid(n.nspowner), 'acl', {acl}, 'acl_null', n.nspacl IS NULL, \
            'comment', obj_description(n.oid, 'pg_namespace')) ORDER BY n.nspname), '[]')::text \
         FROM pg_namespace n WHERE n.nspname = ANY($1)",
        acl = acl("n.nspacl")
    )
}

pub fn types_sql() -> String {
    format!(
        "SELECT coalesce(json_agg(json_build_object(\
            'oid', t.oid::int8, 'schema', n.nspname, 'name', t.typname, \
            'kind', CASE WHEN t.typtype = 'c' THEN 'c' ELSE t.typtype::text END, \
            'owner', pg_get_userbyid(t.typowner), 'acl', {acl}, 'acl_null', t.typacl IS NULL, \
            'comment', obj_description(t.oid, 'pg_type'), \
            'labels', CASE WHEN t.typtype = 'e' THEN ARRAY(SELECT enumlabel::text FROM pg_enum \
                WHERE enumtypid = t.oid ORDER BY enumsortorder) END, \
            'attrs', CASE WHEN t.typtype = 'c' THEN (SELECT json_agg(json_build_object(\
                'name', a.attname, 'type_sql', format_type(a.atttypid, a.atttypmod), \
                'collation', CASE WHEN a.attcollation <> at.typcollation AND a.attcollation <> 0 \
                    THEN {coll} END, \
                'comment', col_description(a.attrelid, a.attnum)) ORDER BY a.attnum) \
                FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid \
                LEFT JOIN pg_collation co ON co.oid = a.attcollation \
                LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace \
                WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) END, \
            'base', CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END, \
            'default', CASE WHEN t.typtype = 'd' THEN pg_get_expr(t.typdefaultbin, 0) END, \
            'not_null', t.typnotnull, \
            'collation', (SELECT {coll} FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace \
                JOIN pg_type bt ON bt.oid = t.typbasetype \
                WHERE t.typtype = 'd' AND co.oid = t.typcollation AND t.typcollation <> bt.typcollation), \
            'checks', CASE WHEN t.typtype = 'd' THEN (SELECT json_agg(json_build_object(\
                'name', c.conname, 'def', pg_get_constraintdef(c.oid), 'validated', c.convalidated, \
                'comment', obj_description(c.oid, 'pg_constraint')) ORDER BY c.conname) \
                FROM pg_constraint c WHERE c.contypid = t.oid) END, \
            'subtype', CASE WHEN t.typtype = 'r' THEN format_type(r.rngsubtype, NULL) END, \
            'opclass', CASE WHEN t.typtype = 'r' AND NOT oc.opcdefault THEN {opc} END, \
            'canonical', CASE WHEN r.rngcanonical <> 0 THEN r.rngcanonical::regproc::text END, \
            'subdiff', CASE WHEN r.rngsubdiff <> 0 THEN r.rngsubdiff::regproc::text END, \
            'multirange', (SELECT {mr} FROM pg_type m JOIN pg_namespace mn ON mn.oid = m.typnamespace \
                WHERE m.oid = r.rngmultitypid) \
         ) ORDER BY n.nspname, t.typname), '[]')::text \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         LEFT JOIN pg_class rc ON rc.oid = t.typrelid \
         LEFT JOIN pg_range r ON r.rngtypid = t.oid \
         LEFT JOIN pg_opclass oc ON oc.oid = r.rngsubopc \
         LEFT JOIN pg_namespace ocn ON ocn.oid = oc.opcnamespace \
         WHERE n.nspname = ANY($1) AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND rc.relkind = 'c')) \
           AND {member}",
        acl = acl("t.typacl"),
        coll = qname("cn.nspname", "co.collname"),
        opc = qname("ocn.nspname", "oc.opcname"),
        mr = qname("mn.nspname", "m.typname"),
        member = not_member("pg_type", "t.oid"),
    )
}

/// User base types need C functions of their own; pgclone cannot make them.
pub fn unsupported_types_sql() -> String {
    format!(
        "SELECT coalesce(string_agg(quote_ident(n.nspname) || '.' || quote_ident(t.typname), ', '), '') \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         WHERE n.nspname = ANY($1) AND t.typtype IN ('b', 'p') AND t.typelem = 0 AND {member}",
        member = not_member("pg_type", "t.oid")
    )
}

pub fn procs_sql() -> String {
    let opt = |e: &str| format!("CASE WHEN {e} <> 0 THEN {e}::regproc::text END");
    format!(
        "SELECT coalesce(json_agg(json_build_object(\
            'oid', p.oid::int8, 'schema', n.nspname, 'name', p.proname, 'kind', p.prokind::text, \
            'identity_args', pg_get_function_identity_arguments(p.oid), \
            'def', CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END, \
            'owner', pg_get_userbyid(p.proowner), 'acl', {acl}, 'acl_null', p.proacl IS NULL, \
            'comment', obj_description(p.oid, 'pg_proc'), \
            'agg', CASE WHEN p.prokind = 'a' THEN json_build_object(\
                'args', pg_get_function_arguments(p.oid), 'kind', a.aggkind::text, \
                'sfunc', a.aggtransfn::regproc::text, 'stype', format_type(a.aggtranstype, NULL), \
                'sspace', a.aggtransspace, 'finalfunc', {ff}, 'finalextra', a.aggfinalextra, \
                'finalmodify', a.aggfinalmodify::text, 'combinefunc', {cf}, 'serialfunc', {sf}, \
                'deserialfunc', {df}, 'initcond', a.agginitval, 'msfunc', {mf}, 'minvfunc', {mi}, \
                'mstype', CASE WHEN a.aggmtranstype <> 0 THEN format_type(a.aggmtranstype, NULL) END, \
                'msspace', a.aggmtransspace, 'mfinalfunc', {mff}, 'mfinalextra', a.aggmfinalextra, \
                'mfinalmodify', a.aggmfinalmodify::text, 'minitcond', a.aggminitval, \
                'sortop', CASE WHEN a.aggsortop <> 0 THEN a.aggsortop::regoperator::text END, \
                'numdirect', a.aggnumdirectargs::int, 'parallel', p.proparallel::text) END \
         ) ORDER BY n.nspname, p.proname, p.oid), '[]')::text \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         LEFT JOIN pg_aggregate a ON a.aggfnoid = p.oid \
         WHERE n.nspname = ANY($1) AND {member} \
           AND NOT EXISTS (SELECT 1 FROM pg_depend i WHERE i.classid = 'pg_proc'::regclass \
                           AND i.objid = p.oid AND i.deptype = 'i')",
        acl = acl("p.proacl"),
        ff = opt("a.aggfinalfn"),
        cf = opt("a.aggcombinefn"),
        sf = opt("a.aggserialfn"),
        df = opt("a.aggdeserialfn"),
        mf = opt("a.aggmtransfn"),
        mi = opt("a.aggminvtransfn"),
        mff = opt("a.aggmfinalfn"),
        member = not_member("pg_proc", "p.oid"),
    )
}

/// Sequences not owned by a table that is cloned along (those come with their table).
pub fn sequences_sql() -> String {
    format!(
        "SELECT coalesce(json_agg(json_build_object(\
            'oid', c.oid::int8, 'schema', n.nspname, 'name', c.relname, \
            'type_sql', format_type(s.seqtypid, NULL), 'start', s.seqstart, 'increment', s.seqincrement, \
            'min', s.seqmin, 'max', s.seqmax, 'cache', s.seqcache, 'cycle', s.seqcycle, \
            'owner', pg_get_userbyid(c.relowner), 'acl', {acl}, 'acl_null', c.relacl IS NULL, \
            'comment', obj_description(c.oid, 'pg_class'), 'persistence', c.relpersistence::text, \
            'owned_by', (SELECT quote_ident(tn.nspname) || '.' || quote_ident(tc.relname) || '.' || quote_ident(ta.attname) \
                FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid \
                JOIN pg_namespace tn ON tn.oid = tc.relnamespace \
                JOIN pg_attribute ta ON ta.attrelid = tc.oid AND ta.attnum = d.refobjsubid \
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'a' \
                  AND d.refclassid = 'pg_class'::regclass) \
         ) ORDER BY n.nspname, c.relname), '[]')::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_sequence s ON s.seqrelid = c.oid \
         WHERE n.nspname = ANY($1) AND c.relkind = 'S' AND {member} \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid \
                JOIN pg_namespace tn ON tn.oid = tc.relnamespace \
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i') \
                  AND d.refclassid = 'pg_class'::regclass AND tc.relkind IN ('r', 'p') \
                  AND tn.nspname = ANY($1))",
        acl = acl("c.relacl"),
        member = not_member("pg_class", "c.oid"),
    )
}

pub fn views_sql() -> String {
    format!(
        "SELECT coalesce(json_agg(json_build_object(\
            'oid', c.oid::int8, 'schema', n.nspname, 'name', c.relname, 'kind', c.relkind::text, \
            'def', pg_get_viewdef(c.oid), 'reloptions', coalesce(c.reloptions, '{{}}'), \
            'access_method', am.amname, 'populated', c.relispopulated, \
            'owner', pg_get_userbyid(c.relowner), 'acl', {acl}, 'acl_null', c.relacl IS NULL, \
            'comment', obj_description(c.oid, 'pg_class'), \
            'column_comments', ARRAY(SELECT json_build_object('name', a.attname, 'comment', d.description) \
                FROM pg_attribute a JOIN pg_description d ON d.objoid = c.oid \
                  AND d.classoid = 'pg_class'::regclass AND d.objsubid = a.attnum \
                WHERE a.attrelid = c.oid AND a.attnum > 0 ORDER BY a.attnum), \
            'column_defaults', ARRAY(SELECT json_build_object('name', a.attname, 'comment', pg_get_expr(ad.adbin, ad.adrelid)) \
                FROM pg_attribute a JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
                WHERE a.attrelid = c.oid AND a.attnum > 0 ORDER BY a.attnum) \
         ) ORDER BY n.nspname, c.relname), '[]')::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_am am ON am.oid = c.relam \
         WHERE n.nspname = ANY($1) AND c.relkind IN ('v', 'm') AND {member}",
        acl = acl("c.relacl"),
        member = not_member("pg_class", "c.oid"),
    )
}

pub fn rules_sql() -> String {
    "SELECT coalesce(json_agg(json_build_object(\
        'name', r.rulename, 'table', quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
        'def', pg_get_ruledef(r.oid), 'enabled', r.ev_enabled::text, \
        'comment', obj_description(r.oid, 'pg_rewrite')) ORDER BY n.nspname, c.relname, r.rulename), '[]')::text \
     FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = ANY($1) AND r.rulename <> '_RETURN'"
        .to_string()
}

pub fn stats_sql() -> String {
    "SELECT coalesce(json_agg(json_build_object(\
        'schema', n.nspname, 'name', s.stxname, 'def', pg_get_statisticsobjdef(s.oid), \
        'stattarget', CASE WHEN coalesce(s.stxstattarget::int, -1) >= 0 THEN s.stxstattarget::int END, \
        'owner', pg_get_userbyid(s.stxowner), 'comment', obj_description(s.oid, 'pg_statistic_ext') \
     ) ORDER BY n.nspname, s.stxname), '[]')::text \
     FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace WHERE n.nspname = ANY($1)"
        .to_string()
}

pub fn collations_sql(version: i32) -> String {
    let icu = if version >= 170000 {
        "c.colllocale"
    } else if version >= 150000 {
        "c.colliculocale"
    } else {
        "NULL::text"
    };
    format!(
        "SELECT coalesce(json_agg(json_build_object(\
            'oid', c.oid::int8, 'schema', n.nspname, 'name', c.collname, 'provider', c.collprovider::text, \
            'collate', c.collcollate, 'ctype', c.collctype, 'icu_locale', {icu}, \
            'deterministic', c.collisdeterministic, 'owner', pg_get_userbyid(c.collowner), \
            'comment', obj_description(c.oid, 'pg_collation')) ORDER BY n.nspname, c.collname), '[]')::text \
         FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace \
         WHERE n.nspname = ANY($1) AND {member}",
        member = not_member("pg_collation", "c.oid"),
    )
}

/// Extensions: with `all`, every one; otherwise those installed in the schemas.
pub fn extensions_sql() -> String {
    "SELECT coalesce(json_agg(json_build_object(\
        'oid', x.oid::int8, 'name', x.extname, 'schema', n.nspname, 'version', x.extversion, \
        'comment', obj_description(x.oid, 'pg_extension'), \
        'config', ARRAY(SELECT json_build_object('schema', cn.nspname, 'table', cc.relname, \
                'condition', nullif(x.extcondition[i.ord], '')) \
            FROM unnest(x.extconfig) WITH ORDINALITY AS i(rel, ord) \
            JOIN pg_class cc ON cc.oid = i.rel JOIN pg_namespace cn ON cn.oid = cc.relnamespace \
            WHERE cc.relkind = 'r') \
     ) ORDER BY x.extname), '[]')::text \
     FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace \
     WHERE x.extname NOT IN ('plpgsql', 'pgclone') AND ($2 OR n.nspname = ANY($1))"
        .to_string()
}

pub fn large_objects_sql() -> String {
    format!(
        "SELECT coalesce(json_agg(json_build_object(\
            'oid', m.oid::int8, 'owner', pg_get_userbyid(m.lomowner), 'acl', {acl}, \
            'acl_null', m.lomacl IS NULL, 'comment', obj_description(m.oid, 'pg_largeobject'), \
            'size', 0) ORDER BY m.oid), '[]')::text \
         FROM pg_largeobject_metadata m",
        acl = acl("m.lomacl")
    )
}

pub fn default_acls_sql() -> String {
    format!(
        "SELECT coalesce(json_agg(json_build_object(\
            'role', pg_get_userbyid(d.defaclrole), 'schema', n.nspname, 'objtype', d.defaclobjtype::text, \
            'acl', {acl}) ORDER BY pg_get_userbyid(d.defaclrole), n.nspname, d.defaclobjtype), '[]')::text \
         FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace \
         WHERE ($2 AND d.defaclnamespace = 0) OR n.nspname = ANY($1)",
        acl = acl("d.defaclacl")
    )
}

/// The node keys of the objects a clone creates before the data, as a CTE
/// `nodes(cls, oid, k)` to join on (classid, objid): the objects are keyed by
/// kind and OID; parts of them (a column default, a constraint, an index, a
/// view's rule, an array type, a table's row type) are mapped to the object
/// they belong to. Kinds whose key is their own OID need no row here (see
/// [`simple_key`]). Read with one scan per catalog and joined by hash: a
/// lookup per dependency row (a correlated subquery) costs a scan of
/// pg_type per array type, quadratic in the number of tables.
pub(crate) fn nodes_cte() -> &'static str {
    "nodes AS MATERIALIZED ( \
       SELECT 'pg_class'::regclass::oid AS cls, c.oid, \
              CASE WHEN c.relkind IN ('i', 'I') THEN 'rel:' || i.indrelid \
                   WHEN c.relkind = 'c' THEN 'type:' || c.reltype ELSE 'rel:' || c.oid END AS k \
         FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid WHERE c.oid >= 16384 \
       UNION ALL \
       SELECT 'pg_type'::regclass::oid, t.oid, CASE \
               WHEN t.typrelid <> 0 AND rc.relkind <> 'c' THEN 'rel:' || t.typrelid \
               WHEN et.oid IS NOT NULL AND et.typrelid <> 0 AND erc.relkind <> 'c' THEN 'rel:' || et.typrelid \
               WHEN et.oid IS NOT NULL THEN 'type:' || et.oid \
               WHEN t.typtype = 'm' THEN 'type:' || mr.rngtypid \
               ELSE 'type:' || t.oid END \
         FROM pg_type t LEFT JOIN pg_class rc ON rc.oid = t.typrelid \
         LEFT JOIN pg_type et ON et.typarray = t.oid LEFT JOIN pg_class erc ON erc.oid = et.typrelid \
         LEFT JOIN pg_range mr ON mr.rngmultitypid = t.oid \
         WHERE t.oid >= 16384 \
       UNION ALL \
       SELECT 'pg_rewrite'::regclass::oid, r.oid, CASE WHEN r.rulename = '_RETURN' THEN 'rel:' || r.ev_class END \
         FROM pg_rewrite r WHERE r.oid >= 16384 \
       UNION ALL \
       SELECT 'pg_attrdef'::regclass::oid, ad.oid, CASE WHEN a.attgenerated <> '' THEN 'rel:' || ad.adrelid END \
         FROM pg_attrdef ad JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum \
         WHERE ad.oid >= 16384 \
       UNION ALL \
       SELECT 'pg_constraint'::regclass::oid, co.oid, CASE WHEN co.contype IN ('f', 'p', 'u', 'x') THEN NULL \
               WHEN co.conrelid <> 0 THEN 'rel:' || co.conrelid ELSE 'type:' || co.contypid END \
         FROM pg_constraint co WHERE co.oid >= 16384)"
}

/// The key of an object of a kind keyed by its own OID, as SQL (NULL for
/// the kinds of [`nodes_cte`]).
fn simple_key(cls: &str, oid: &str) -> String {
    format!(
        "CASE {cls} \
          WHEN 'pg_proc'::regclass THEN 'proc:' || {oid} \
          WHEN 'pg_namespace'::regclass THEN 'nsp:' || {oid} \
          WHEN 'pg_collation'::regclass THEN 'coll:' || {oid} \
          WHEN 'pg_extension'::regclass THEN 'ext:' || {oid} \
          WHEN 'pg_operator'::regclass THEN 'oper:' || {oid} \
          WHEN 'pg_ts_config'::regclass THEN 'tscfg:' || {oid} \
          WHEN 'pg_ts_dict'::regclass THEN 'tsdict:' || {oid} \
          WHEN 'pg_cast'::regclass THEN 'cast:' || {oid} \
         END"
    )
}

/// The node key of the object (`cls`, `oid`), given the alias `n` of its
/// row of [`nodes_cte`] (LEFT JOINed on cls and oid).
pub(crate) fn node_key(cls: &str, oid: &str, n: &str) -> String {
    format!("coalesce({}, {n}.k)", simple_key(cls, oid))
}

/// Dependencies between objects of the source database that matter for the
/// order of creation, as rows (from, to). Only user objects (OID 16384 and up) can be nodes, so
/// the rows of the system's own objects are not even looked at. Column defaults, keys and foreign keys are left out:
/// they are created after every object exists.
pub fn edges_sql() -> String {
    format!(
        "WITH {nodes} \
         SELECT s.f, s.t FROM ( \
           SELECT DISTINCT {from} AS f, {to} AS t FROM pg_depend d \
           LEFT JOIN nodes nf ON nf.cls = d.classid AND nf.oid = d.objid \
           LEFT JOIN nodes nt ON nt.cls = d.refclassid AND nt.oid = d.refobjid \
           WHERE d.deptype IN ('n', 'a') AND d.objid >= 16384 AND d.refobjid >= 16384 \
             AND d.classid IN ('pg_class'::regclass, 'pg_type'::regclass, \
                 'pg_proc'::regclass, 'pg_rewrite'::regclass, 'pg_attrdef'::regclass, 'pg_constraint'::regclass, \
                 'pg_collation'::regclass, 'pg_extension'::regclass, 'pg_operator'::regclass, \
                 'pg_ts_config'::regclass, 'pg_ts_dict'::regclass, 'pg_cast'::regclass) \
           UNION \
           SELECT 'rel:' || i.inhrelid, 'rel:' || i.inhparent FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relkind IN ('r', 'p') \
         ) s WHERE s.f IS NOT NULL AND s.t IS NOT NULL AND s.f <> s.t",
        nodes = nodes_cte(),
        from = node_key("d.classid", "d.objid", "nf"),
        to = node_key("d.refclassid", "d.refobjid", "nt"),
    )
}

/// Objects that rely on a table's primary key, unique or exclusion
/// constraint, as rows (node key, table key): a view that groups by the
/// key alone and selects other columns through it, or a routine with a
/// SQL-standard body. They are created once that table's keys are built,
/// which for a large table is well after the table itself.
pub fn key_edges_sql() -> String {
    format!(
        "WITH {nodes} \
         SELECT s.f, s.t FROM ( \
           SELECT DISTINCT {from} AS f, 'rel:' || co.conrelid AS t FROM pg_depend d \
           JOIN pg_constraint co ON d.refclassid = 'pg_constraint'::regclass AND co.oid = d.refobjid \
           LEFT JOIN nodes nf ON nf.cls = d.classid AND nf.oid = d.objid \
           WHERE d.deptype = 'n' AND co.contype IN ('p', 'u', 'x') AND co.conrelid <> 0 \
             AND d.objid >= 16384 AND d.classid IN ('pg_rewrite'::regclass, 'pg_proc'::regclass) \
         ) s WHERE s.f IS NOT NULL AND s.f <> s.t",
        nodes = nodes_cte(),
        from = node_key("d.classid", "d.objid", "nf"),
    )
}

/// Objects that belong to extensions, as rows (node key, extension key), so
/// that a dependency on one becomes a dependency on its extension.
pub fn extension_members_sql() -> String {
    format!(
        "WITH {nodes} \
         SELECT s.k, 'ext:' || s.x FROM ( \
           SELECT DISTINCT {key} AS k, e.refobjid AS x FROM pg_depend e \
           LEFT JOIN nodes n ON n.cls = e.classid AND n.oid = e.objid \
           WHERE e.deptype = 'e' AND e.refclassid = 'pg_extension'::regclass AND e.objid >= 16384 \
             AND e.classid IN ('pg_class'::regclass, 'pg_type'::regclass, 'pg_proc'::regclass, 'pg_collation'::regclass, \
                               'pg_operator'::regclass, 'pg_ts_config'::regclass, 'pg_ts_dict'::regclass) \
         ) s WHERE s.k IS NOT NULL",
        nodes = nodes_cte(),
        key = node_key("e.classid", "e.objid", "n"),
    )
}

/// Objects of kinds pgclone does not create yet (operator classes and
/// families, conversions, text search parsers and templates, foreign servers), as "kind: name" lines, so a
/// clone can say what it left out instead of leaving it out silently.
pub fn not_cloned_sql() -> String {
    let member = |cat: &str, oid: &str| not_member(cat, oid);
    format!(
        "SELECT ARRAY( \
           SELECT 'operator class ' || quote_ident(n.nspname) || '.' || quote_ident(c.opcname) \
             FROM pg_opclass c JOIN pg_namespace n ON n.oid = c.opcnamespace WHERE n.nspname = ANY($1) AND {opc} \
           UNION ALL SELECT 'operator family ' || quote_ident(n.nspname) || '.' || quote_ident(f.opfname) \
             FROM pg_opfamily f JOIN pg_namespace n ON n.oid = f.opfnamespace WHERE n.nspname = ANY($1) AND {opf} \
           UNION ALL SELECT 'text search parser ' || quote_ident(n.nspname) || '.' || quote_ident(p.prsname) \
             FROM pg_ts_parser p JOIN pg_namespace n ON n.oid = p.prsnamespace WHERE n.nspname = ANY($1) AND {prs} \
           UNION ALL SELECT 'text search template ' || quote_ident(n.nspname) || '.' || quote_ident(t.tmplname) \
             FROM pg_ts_template t JOIN pg_namespace n ON n.oid = t.tmplnamespace WHERE n.nspname = ANY($1) AND {tmpl} \
           UNION ALL SELECT 'conversion ' || quote_ident(n.nspname) || '.' || quote_ident(c.conname) FROM pg_conversion c \
             JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = ANY($1) AND {conv} \
            \
           UNION ALL SELECT 'foreign server ' || quote_ident(s.srvname) FROM pg_foreign_server s WHERE $2 AND {srv} \
           ORDER BY 1)",
        opc = member("pg_opclass", "c.oid"),
        opf = member("pg_opfamily", "f.oid"),
        conv = member("pg_conversion", "c.oid"),
        prs = member("pg_ts_parser", "p.oid"),
        tmpl = member("pg_ts_template", "t.oid"),
        srv = member("pg_foreign_server", "s.oid"),
    )
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OperObj {
    pub oid: i64,
    pub schema: String,
    pub name: String,
    pub left: Option<String>,
    pub right: Option<String>,
    pub function: String,
    pub commutator: Option<String>,
    pub negator: Option<String>,
    pub restrict: Option<String>,
    pub join: Option<String>,
    pub hashes: bool,
    pub merges: bool,
    pub owner: String,
    pub comment: Option<String>,
    /// identity for ALTER/COMMENT: name(left,right) with NONE for a missing side
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TsMapping {
    pub token: String,
    pub dicts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TsConfigObj {
    pub oid: i64,
    pub schema: String,
    pub name: String,
    pub parser: String,
    pub mappings: Vec<TsMapping>,
    pub owner: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TsDictObj {
    pub oid: i64,
    pub schema: String,
    pub name: String,
    pub template: String,
    pub options: Option<String>,
    pub owner: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CastObj {
    pub oid: i64,
    pub source: String,
    pub target: String,
    /// f function, i inout, b binary coercible
    pub method: String,
    pub function: Option<String>,
    /// e explicit, a assignment, i implicit
    pub context: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EventTriggerObj {
    pub name: String,
    pub event: String,
    pub tags: Option<Vec<String>>,
    pub function: String,
    pub enabled: String,
    pub owner: String,
    pub comment: Option<String>,
}

pub fn operators_sql() -> String {
    let oper = |col: &str| {
        format!(
            "CASE WHEN {col} <> 0 THEN (SELECT 'OPERATOR(' || quote_ident(cn.nspname) || '.' || co.oprname || ')' \
             FROM pg_operator co JOIN pg_namespace cn ON cn.oid = co.oprnamespace WHERE co.oid = {col}) END"
        )
    };
    format!(
        "SELECT coalesce(json_agg(json_build_object(\
            'oid', o.oid::int8, 'schema', n.nspname, 'name', o.oprname, \
            'left', CASE WHEN o.oprleft <> 0 THEN format_type(o.oprleft, NULL) END, \
            'right', CASE WHEN o.oprright <> 0 THEN format_type(o.oprright, NULL) END, \
            'function', o.oprcode::regproc::text, 'commutator', {com}, 'negator', {neg}, \
            'restrict', CASE WHEN o.oprrest <> 0 THEN o.oprrest::regproc::text END, \
            'join', CASE WHEN o.oprjoin <> 0 THEN o.oprjoin::regproc::text END, \
            'hashes', o.oprcanhash, 'merges', o.oprcanmerge, 'owner', pg_get_userbyid(o.oprowner), \
            'comment', obj_description(o.oid, 'pg_operator'), \
            'signature', quote_ident(n.nspname) || '.' || o.oprname || '(' || \
                coalesce(format_type(nullif(o.oprleft, 0), NULL), 'NONE') || ', ' || \
                coalesce(format_type(nullif(o.oprright, 0), NULL), 'NONE') || ')' \
         ) ORDER BY n.nspname, o.oprname, o.oid), '[]')::text \
         FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace \
         WHERE n.nspname = ANY($1) AND {member}",
        com = oper("o.oprcom"),
        neg = oper("o.oprnegate"),
        member = not_member("pg_operator", "o.oid"),
    )
}

pub fn ts_configs_sql() -> String {
    format!(
        "SELECT coalesce(json_agg(json_build_object(\
            'oid', c.oid::int8, 'schema', n.nspname, 'name', c.cfgname, \
            'parser', (SELECT quote_ident(pn.nspname) || '.' || quote_ident(p.prsname) FROM pg_ts_parser p \
                JOIN pg_namespace pn ON pn.oid = p.prsnamespace WHERE p.oid = c.cfgparser), \
            'mappings', ARRAY(SELECT json_build_object('token', t.alias, 'dicts', \
                    ARRAY(SELECT m2.mapdict::regdictionary::text FROM pg_ts_config_map m2 \
                          WHERE m2.mapcfg = c.oid AND m2.maptokentype = t.tokid ORDER BY m2.mapseqno)) \
                FROM ts_token_type(c.cfgparser) t \
                WHERE EXISTS (SELECT 1 FROM pg_ts_config_map m WHERE m.mapcfg = c.oid AND m.maptokentype = t.tokid) \
                ORDER BY t.tokid), \
            'owner', pg_get_userbyid(c.cfgowner), 'comment', obj_description(c.oid, 'pg_ts_config') \
         ) ORDER BY n.nspname, c.cfgname), '[]')::text \
         FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace \
         WHERE n.nspname = ANY($1) AND {member}",
        member = not_member("pg_ts_config", "c.oid"),
    )
}

pub fn ts_dicts_sql() -> String {
    format!(
        "SELECT coalesce(json_agg(json_build_object(\
            'oid', d.oid::int8, 'schema', n.nspname, 'name', d.dictname, \
            'template', (SELECT quote_ident(tn.nspname) || '.' || quote_ident(t.tmplname) FROM pg_ts_template t \
                JOIN pg_namespace tn ON tn.oid = t.tmplnamespace WHERE t.oid = d.dicttemplate), \
            'options', d.dictinitoption, 'owner', pg_get_userbyid(d.dictowner), \
            'comment', obj_description(d.oid, 'pg_ts_dict') \
         ) ORDER BY n.nspname, d.dictname), '[]')::text \
         FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace \
         WHERE n.nspname = ANY($1) AND {member}",
        member = not_member("pg_ts_dict", "d.oid"),
    )
}

/// User casts: made after initdb, not by an extension nor by a range type.
/// A database clone takes them all; a schema clone those whose function or
/// types live in its schemas (they mean nothing without them).
pub fn casts_sql() -> String {
    format!(
        "SELECT coalesce(json_agg(json_build_object(\
            'oid', c.oid::int8, 'source', format_type(c.castsource, NULL), 'target', format_type(c.casttarget, NULL), \
            'method', c.castmethod::text, \
            'function', CASE WHEN c.castfunc <> 0 THEN c.castfunc::regprocedure::text END, \
            'context', c.castcontext::text, 'comment', obj_description(c.oid, 'pg_cast') \
         ) ORDER BY c.oid), '[]')::text \
         FROM pg_cast c WHERE c.oid >= 16384 AND {member} \
           AND NOT EXISTS (SELECT 1 FROM pg_depend i WHERE i.classid = 'pg_cast'::regclass \
                           AND i.objid = c.oid AND i.deptype = 'i') \
           AND ($2 OR EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
                              WHERE t.oid IN (c.castsource, c.casttarget) AND n.nspname = ANY($1)) \
                   OR EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                              WHERE p.oid = c.castfunc AND n.nspname = ANY($1)))",
        member = not_member("pg_cast", "c.oid"),
    )
}

pub fn event_triggers_sql() -> String {
    format!(
        "SELECT coalesce(json_agg(json_build_object(\
            'name', e.evtname, 'event', e.evtevent, 'tags', e.evttags, \
            'function', e.evtfoid::regproc::text, 'enabled', e.evtenabled::text, \
            'owner', pg_get_userbyid(e.evtowner), 'comment', obj_description(e.oid, 'pg_event_trigger') \
         ) ORDER BY e.evtname), '[]')::text \
         FROM pg_event_trigger e WHERE {member}",
        member = not_member("pg_event_trigger", "e.oid"),
    )
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PubTable {
    pub table: String,
    pub columns: Option<Vec<String>>,
    pub filter: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PublicationObj {
    pub name: String,
    pub all_tables: bool,
    pub publish: Vec<String>,
    pub via_root: bool,
    pub tables: Vec<PubTable>,
    pub schemas: Vec<String>,
    pub owner: String,
    pub comment: Option<String>,
}

/// Publications (database clones). Row filters, column lists and
/// TABLES IN SCHEMA exist from PostgreSQL 15 on.
pub fn publications_sql(version: i32) -> String {
    let (cols, filter, schemas) = if version >= 150000 {
        (
            "CASE WHEN r.prattrs IS NOT NULL THEN ARRAY(SELECT a.attname::text FROM unnest(r.prattrs::int2[]) WITH ORDINALITY k(n, o) \
               JOIN pg_attribute a ON a.attrelid = r.prrelid AND a.attnum = k.n ORDER BY k.o) END",
            "pg_get_expr(r.prqual, r.prrelid)",
            "ARRAY(SELECT quote_ident(n.nspname) FROM pg_publication_namespace pn \
               JOIN pg_namespace n ON n.oid = pn.pnnspid WHERE pn.pnpubid = p.oid ORDER BY 1)",
        )
    } else {
        ("NULL::text[]", "NULL::text", "'{}'::text[]")
    };
    format!(
        "SELECT coalesce(json_agg(json_build_object(\
            'name', p.pubname, 'all_tables', p.puballtables, \
            'publish', ARRAY(SELECT x FROM (VALUES (1, CASE WHEN p.pubinsert THEN 'insert' END), \
                (2, CASE WHEN p.pubupdate THEN 'update' END), (3, CASE WHEN p.pubdelete THEN 'delete' END), \
                (4, CASE WHEN p.pubtruncate THEN 'truncate' END)) v(o, x) WHERE x IS NOT NULL ORDER BY o), \
            'via_root', p.pubviaroot, \
            'tables', ARRAY(SELECT json_build_object('table', quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
                    'columns', {cols}, 'filter', {filter}) \
                FROM pg_publication_rel r JOIN pg_class c ON c.oid = r.prrelid \
                JOIN pg_namespace n ON n.oid = c.relnamespace WHERE r.prpubid = p.oid ORDER BY n.nspname, c.relname), \
            'schemas', {schemas}, \
            'owner', pg_get_userbyid(p.pubowner), 'comment', obj_description(p.oid, 'pg_publication') \
         ) ORDER BY p.pubname), '[]')::text FROM pg_publication p"
    )
}
