//! DDL for everything in a schema besides tables. Pure.

use super::{acl_statements, comment, enable_state, grantee, sequence_clause};
use crate::catalog::objects::*;
use crate::catalog::AclEntry;
use crate::sqltext::{qualified, quote_ident, quote_literal};

/// What renderers need to know about the target's roles, and where they
/// report roles that are missing.
pub struct Roles<'a> {
    pub exists: &'a dyn Fn(&str) -> bool,
    pub can_own: &'a dyn Fn(&str) -> bool,
}

/// Statements for one object: `create` makes it and gives it its owner,
/// `grants` its privileges once every object exists (before any data, so
/// code that runs as an owner during the data stage, a materialized view's
/// query at refresh, has the privileges it has on the source), `after` its
/// comments and the rest once everything exists.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ObjScript {
    pub create: Vec<String>,
    pub grants: Vec<String>,
    pub after: Vec<String>,
    pub missing_roles: Vec<String>,
    pub notices: Vec<String>,
}

impl ObjScript {
    /// `ALTER <what> OWNER TO`, then the ACL, then the comment.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        alter: &str,
        grant_on: &str,
        comment_on: &str,
        owner: &str,
        acl: &[AclEntry],
        acl_null: bool,
        text: &Option<String>,
        roles: &Roles,
    ) {
        let assignable = (roles.exists)(owner) && (roles.can_own)(owner);
        if assignable {
            // A new object gets its owner right after it is made, as pg_dump
            // does, so whatever the server later runs on its behalf (a
            // materialized view's query at refresh) runs as that owner, never
            // as the caller. An object that was there already keeps its
            // owner until the clone completes.
            let owner_sql = format!("ALTER {alter} OWNER TO {}", quote_ident(owner));
            if self.create.is_empty() {
                self.after.push(owner_sql);
            } else {
                self.create.push(owner_sql);
            }
        } else if !(roles.exists)(owner) {
            self.missing_roles.push(owner.to_string());
        }
        let owner = assignable.then_some(owner);
        // An object that was there before keeps its privileges until the
        // clone completes.
        let to = if self.create.is_empty() {
            &mut self.after
        } else {
            &mut self.grants
        };
        to.extend(acl_statements(
            grant_on,
            None,
            owner,
            acl,
            acl_null,
            roles.exists,
            &mut self.missing_roles,
        ));
        self.after.extend(comment(comment_on, text));
    }
}

pub fn schema(s: &SchemaObj, exists_on_target: bool, roles: &Roles) -> ObjScript {
    let q = quote_ident(&s.name);
    let mut out = ObjScript::default();
    if !exists_on_target {
        out.create.push(format!("CREATE SCHEMA {q}"));
    }
    out.finish(
        &format!("SCHEMA {q}"),
        &format!("SCHEMA {q}"),
        &format!("SCHEMA {q}"),
        &s.owner,
        &s.acl,
        s.acl_null,
        &s.comment,
        roles,
    );
    out
}

pub fn type_(t: &TypeObj, roles: &Roles) -> ObjScript {
    let q = qualified(&t.schema, &t.name);
    let mut out = ObjScript::default();
    let mut word = "TYPE";
    match t.kind.as_str() {
        "e" => {
            let labels: Vec<String> = t
                .labels
                .iter()
                .flatten()
                .map(|l| quote_literal(l))
                .collect();
            out.create
                .push(format!("CREATE TYPE {q} AS ENUM ({})", labels.join(", ")));
        }
        "c" => {
            let attrs: Vec<String> = t
                .attrs
                .iter()
                .flatten()
                .map(|a| {
                    let coll = a
                        .collation
                        .as_ref()
                        .map(|c| format!(" COLLATE {c}"))
                        .unwrap_or_default();
                    format!("{} {}{coll}", quote_ident(&a.name), a.type_sql)
                })
                .collect();
            out.create.push(format!(
                "CREATE TYPE {q} AS (\n    {}\n)",
                attrs.join(",\n    ")
            ));
            for a in t.attrs.iter().flatten() {
                out.after.extend(comment(
                    &format!("COLUMN {q}.{}", quote_ident(&a.name)),
                    &a.comment,
                ));
            }
        }
        "d" => {
            word = "DOMAIN";
            let mut sql = format!(
                "CREATE DOMAIN {q} AS {}",
                t.base.as_deref().unwrap_or("text")
            );
            if let Some(c) = &t.collation {
                sql.push_str(&format!(" COLLATE {c}"));
            }
            if let Some(d) = &t.default {
                sql.push_str(&format!(" DEFAULT {d}"));
            }
            let checks = t.checks.as_deref().unwrap_or_default();
            let has_named_not_null = checks.iter().any(|c| c.def == "NOT NULL");
            if t.not_null == Some(true) && !has_named_not_null {
                sql.push_str(" NOT NULL");
            }
            for c in checks.iter().filter(|c| c.validated) {
                sql.push_str(&format!(" CONSTRAINT {} {}", quote_ident(&c.name), c.def));
            }
            out.create.push(sql);
            for c in checks.iter().filter(|c| !c.validated) {
                out.after.push(format!(
                    "ALTER DOMAIN {q} ADD CONSTRAINT {} {}",
                    quote_ident(&c.name),
                    c.def
                ));
            }
            for c in checks {
                out.after.extend(comment(
                    &format!("CONSTRAINT {} ON DOMAIN {q}", quote_ident(&c.name)),
                    &c.comment,
                ));
            }
        }
        _ => {
            let mut parts = vec![format!(
                "SUBTYPE = {}",
                t.subtype.as_deref().unwrap_or("integer")
            )];
            if let Some(o) = &t.opclass {
                parts.push(format!("SUBTYPE_OPCLASS = {o}"));
            }
            if let Some(c) = &t.canonical {
                parts.push(format!("CANONICAL = {c}"));
            }
            if let Some(d) = &t.subdiff {
                parts.push(format!("SUBTYPE_DIFF = {d}"));
            }
            if let Some(m) = &t.multirange {
                parts.push(format!("MULTIRANGE_TYPE_NAME = {m}"));
            }
            out.create
                .push(format!("CREATE TYPE {q} AS RANGE ({})", parts.join(", ")));
        }
    }
    out.finish(
        &format!("{word} {q}"),
        &format!("TYPE {q}"),
        &format!("{word} {q}"),
        &t.owner,
        &t.acl,
        t.acl_null,
        &t.comment,
        roles,
    );
    out
}

fn proc_word(kind: &str) -> &'static str {
    match kind {
        "p" => "PROCEDURE",
        "a" => "AGGREGATE",
        _ => "FUNCTION",
    }
}

pub fn proc_(p: &ProcObj, roles: &Roles) -> ObjScript {
    let q = qualified(&p.schema, &p.name);
    let sig = format!("{q}({})", p.identity_args);
    let mut out = ObjScript::default();
    match (&p.agg, &p.def) {
        (Some(a), _) => out.create.push(aggregate(&q, a)),
        (None, Some(def)) => out
            .create
            .push(def.trim_end().trim_end_matches(';').to_string()),
        (None, None) => {
            out.notices.push(format!(
                "routine {sig} has no definition pgclone can read; skipped"
            ));
            return out;
        }
    }
    let word = proc_word(&p.kind);
    let grant_word = if p.kind == "p" {
        "PROCEDURE"
    } else {
        "FUNCTION"
    };
    out.finish(
        &format!("{word} {sig}"),
        &format!("{grant_word} {sig}"),
        &format!("{word} {sig}"),
        &p.owner,
        &p.acl,
        p.acl_null,
        &p.comment,
        roles,
    );
    out
}

fn aggregate(q: &str, a: &AggInfo) -> String {
    let mut parts = vec![
        format!("SFUNC = {}", a.sfunc),
        format!("STYPE = {}", a.stype),
    ];
    if a.sspace > 0 {
        parts.push(format!("SSPACE = {}", a.sspace));
    }
    let modify = |m: &str| match m {
        "s" => "SHAREABLE",
        "w" => "READ_WRITE",
        _ => "READ_ONLY",
    };
    if let Some(f) = &a.finalfunc {
        parts.push(format!("FINALFUNC = {f}"));
        if a.finalextra {
            parts.push("FINALFUNC_EXTRA".into());
        }
        parts.push(format!("FINALFUNC_MODIFY = {}", modify(&a.finalmodify)));
    }
    for (k, v) in [
        ("COMBINEFUNC", &a.combinefunc),
        ("SERIALFUNC", &a.serialfunc),
        ("DESERIALFUNC", &a.deserialfunc),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k} = {v}"));
        }
    }
    if let Some(i) = &a.initcond {
        parts.push(format!("INITCOND = {}", quote_literal(i)));
    }
    if let (Some(ms), Some(mi), Some(mt)) = (&a.msfunc, &a.minvfunc, &a.mstype) {
        parts.push(format!("MSFUNC = {ms}"));
        parts.push(format!("MINVFUNC = {mi}"));
        parts.push(format!("MSTYPE = {mt}"));
        if a.msspace > 0 {
            parts.push(format!("MSSPACE = {}", a.msspace));
        }
        if let Some(f) = &a.mfinalfunc {
            parts.push(format!("MFINALFUNC = {f}"));
            if a.mfinalextra {
                parts.push("MFINALFUNC_EXTRA".into());
            }
            parts.push(format!("MFINALFUNC_MODIFY = {}", modify(&a.mfinalmodify)));
        }
        if let Some(i) = &a.minitcond {
            parts.push(format!("MINITCOND = {}", quote_literal(i)));
        }
    }
    if let Some(op) = &a.sortop {
        // regoperator text is "name(left,right)"; SORTOP wants the name alone
        let name = op.split('(').next().unwrap_or(op);
        parts.push(format!("SORTOP = OPERATOR({name})"));
    }
    if a.kind == "h" {
        parts.push("HYPOTHETICAL".into());
    }
    match a.parallel.as_str() {
        "s" => parts.push("PARALLEL = SAFE".into()),
        "r" => parts.push("PARALLEL = RESTRICTED".into()),
        _ => {}
    }
    format!(
        "CREATE AGGREGATE {q}({}) (\n    {}\n)",
        a.args,
        parts.join(",\n    ")
    )
}

pub fn sequence(s: &SeqObj, roles: &Roles) -> ObjScript {
    let q = qualified(&s.schema, &s.name);
    let mut out = ObjScript::default();
    let unlogged = if s.persistence == "u" {
        "UNLOGGED "
    } else {
        ""
    };
    out.create.push(format!(
        "CREATE {unlogged}SEQUENCE {q} AS {} {}",
        s.type_sql,
        sequence_clause(s.start, s.increment, s.min, s.max, s.cache, s.cycle)
    ));
    out.finish(
        &format!("SEQUENCE {q}"),
        &format!("SEQUENCE {q}"),
        &format!("SEQUENCE {q}"),
        &s.owner,
        &s.acl,
        s.acl_null,
        &s.comment,
        roles,
    );
    out.after.push(format!(
        "SELECT pg_catalog.setval({}, {}, {})",
        quote_literal(&q),
        s.last_value,
        s.is_called
    ));
    out
}

fn reloptions(opts: &[String]) -> String {
    if opts.is_empty() {
        return String::new();
    }
    let list: Vec<String> = opts
        .iter()
        .map(|o| {
            let (k, v) = o.split_once('=').unwrap_or((o, ""));
            format!("{}={}", quote_ident(k), quote_literal(v))
        })
        .collect();
    format!(" WITH ({})", list.join(", "))
}

pub fn view(v: &ViewObj, roles: &Roles) -> ObjScript {
    let q = qualified(&v.schema, &v.name);
    let mut out = ObjScript::default();
    let body = v.def.trim().trim_end_matches(';');
    let word = if v.kind == "m" {
        "MATERIALIZED VIEW"
    } else {
        "VIEW"
    };
    if v.kind == "m" {
        let am = v
            .access_method
            .as_deref()
            .filter(|a| *a != "heap")
            .map(|a| format!(" USING {}", quote_ident(a)))
            .unwrap_or_default();
        out.create.push(format!(
            "CREATE MATERIALIZED VIEW {q}{am}{} AS\n{body}\nWITH NO DATA",
            reloptions(&v.reloptions)
        ));
    } else {
        out.create.push(format!(
            "CREATE VIEW {q}{} AS\n{body}",
            reloptions(&v.reloptions)
        ));
    }
    for d in &v.column_defaults {
        out.after.push(format!(
            "ALTER VIEW {q} ALTER COLUMN {} SET DEFAULT {}",
            quote_ident(&d.name),
            d.comment
        ));
    }
    for c in &v.column_comments {
        out.after.push(format!(
            "COMMENT ON COLUMN {q}.{} IS {}",
            quote_ident(&c.name),
            quote_literal(&c.comment)
        ));
    }
    out.finish(
        &format!("TABLE {q}"),
        &format!("TABLE {q}"),
        &format!("{word} {q}"),
        &v.owner,
        &v.acl,
        v.acl_null,
        &v.comment,
        roles,
    );
    out
}

pub fn rule(r: &RuleObj) -> Vec<String> {
    let mut out = vec![r.def.trim().trim_end_matches(';').to_string()];
    if let Some(state) = enable_state(&r.enabled, "RULE") {
        out.push(format!(
            "ALTER TABLE {} {state} {}",
            r.table,
            quote_ident(&r.name)
        ));
    }
    out.extend(comment(
        &format!("RULE {} ON {}", quote_ident(&r.name), r.table),
        &r.comment,
    ));
    out
}

pub fn statistics(s: &StatObj, roles: &Roles) -> ObjScript {
    let q = qualified(&s.schema, &s.name);
    let mut out = ObjScript::default();
    out.create.push(s.def.clone());
    if let Some(t) = s.stattarget {
        out.create
            .push(format!("ALTER STATISTICS {q} SET STATISTICS {t}"));
    }
    out.finish(
        &format!("STATISTICS {q}"),
        "",
        &format!("STATISTICS {q}"),
        &s.owner,
        &[],
        true,
        &s.comment,
        roles,
    );
    out
}

pub fn collation(c: &CollObj, roles: &Roles) -> ObjScript {
    let q = qualified(&c.schema, &c.name);
    let mut out = ObjScript::default();
    let mut parts = Vec::new();
    match c.provider.as_str() {
        "i" => {
            parts.push("provider = icu".to_string());
            let loc = c
                .icu_locale
                .as_deref()
                .or(c.collate.as_deref())
                .unwrap_or("");
            parts.push(format!("locale = {}", quote_literal(loc)));
        }
        "c" => {
            parts.push("provider = libc".to_string());
            parts.push(format!(
                "lc_collate = {}",
                quote_literal(c.collate.as_deref().unwrap_or(""))
            ));
            parts.push(format!(
                "lc_ctype = {}",
                quote_literal(c.ctype.as_deref().unwrap_or(""))
            ));
        }
        _ => {
            out.notices.push(format!(
                "collation {q} uses the database default provider; skipped"
            ));
            return out;
        }
    }
    if !c.deterministic {
        parts.push("deterministic = false".into());
    }
    out.create
        .push(format!("CREATE COLLATION {q} ({})", parts.join(", ")));
    out.finish(
        &format!("COLLATION {q}"),
        "",
        &format!("COLLATION {q}"),
        &c.owner,
        &[],
        true,
        &c.comment,
        roles,
    );
    out
}

/// An extension: created when the target lacks it (without IF NOT EXISTS:
/// one installed meanwhile by someone else makes the clone fail rather than
/// be taken for the clone's own), left alone when it is there. It gets the
/// source's version when this server offers it; otherwise (another major
/// version's packages) the default one, as pg_dump does, with a NOTICE.
/// `available`: this server's (default version, versions); an extension
/// it has no package for is refused before the plan is made.
pub fn extension(
    x: &ExtObj,
    installed: bool,
    available: Option<&(String, Vec<String>)>,
) -> ObjScript {
    let mut out = ObjScript::default();
    if !installed {
        let pin = available.is_none_or(|(_, versions)| versions.contains(&x.version));
        let mut sql = format!(
            "CREATE EXTENSION {} WITH SCHEMA {}",
            quote_ident(&x.name),
            quote_ident(&x.schema)
        );
        if pin {
            sql.push_str(&format!(" VERSION {}", quote_literal(&x.version)));
        } else if let Some((default, _)) = available {
            out.notices.push(format!(
                "extension \"{}\": the source has version {}, which this server does not offer; created at its default version {default}",
                x.name, x.version
            ));
        }
        out.create.push(sql);
    }
    out.after.extend(comment(
        &format!("EXTENSION {}", quote_ident(&x.name)),
        &x.comment,
    ));
    out
}

pub fn default_acl(d: &DefaultAcl, roles: &Roles, missing: &mut Vec<String>) -> Vec<String> {
    let what = match d.objtype.as_str() {
        "r" => "TABLES",
        "S" => "SEQUENCES",
        "f" => "FUNCTIONS",
        "T" => "TYPES",
        "n" => "SCHEMAS",
        _ => return vec![],
    };
    if !(roles.exists)(&d.role) {
        missing.push(d.role.clone());
        return vec![];
    }
    let head = format!(
        "ALTER DEFAULT PRIVILEGES FOR ROLE {}{}",
        quote_ident(&d.role),
        d.schema
            .as_ref()
            .map(|s| format!(" IN SCHEMA {}", quote_ident(s)))
            .unwrap_or_default()
    );
    let mut out = Vec::new();
    if d.schema.is_none() {
        // A database-wide entry replaces the built-in defaults: start from nothing.
        out.push(format!("{head} REVOKE ALL ON {what} FROM PUBLIC"));
        out.push(format!(
            "{head} REVOKE ALL ON {what} FROM {}",
            quote_ident(&d.role)
        ));
    }
    for a in d
        .acl
        .iter()
        .filter(|a| super::known_privilege(&a.privilege))
    {
        let Some((grantee, opt)) = grantee(a, roles.exists, missing) else {
            continue;
        };
        out.push(format!(
            "{head} GRANT {} ON {what} TO {grantee}{opt}",
            a.privilege
        ));
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    fn roles() -> Roles<'static> {
        Roles {
            exists: &|r: &str| r != "ghost",
            can_own: &|_| true,
        }
    }

    fn ty(kind: &str) -> TypeObj {
        TypeObj {
            oid: 1,
            schema: "s".into(),
            name: "t".into(),
            kind: kind.into(),
            owner: "postgres".into(),
            acl: vec![],
            acl_null: true,
            comment: Some("a type".into()),
            labels: Some(vec!["a".into(), "it's".into()]),
            attrs: Some(vec![TypeAttr {
                name: "x".into(),
                type_sql: "text".into(),
                collation: Some("pg_catalog.\"C\"".into()),
                comment: Some("x!".into()),
            }]),
            base: Some("numeric(10,2)".into()),
            default: Some("0".into()),
            not_null: Some(true),
            collation: None,
            checks: Some(vec![
                DomainCheck {
                    name: "pos".into(),
                    def: "CHECK ((VALUE > (0)::numeric))".into(),
                    validated: true,
                    comment: None,
                },
                DomainCheck {
                    name: "small".into(),
                    def: "CHECK ((VALUE < (100)::numeric)) NOT VALID".into(),
                    validated: false,
                    comment: Some("later".into()),
                },
            ]),
            subtype: Some("timestamp with time zone".into()),
            opclass: None,
            canonical: None,
            subdiff: Some("s.diff".into()),
            multirange: Some("s.tmulti".into()),
        }
    }

    #[test]
    fn an_extension_keeps_its_version_when_this_server_offers_it() {
        let x = crate::catalog::objects::ExtObj {
            oid: 1,
            name: "btree_gist".into(),
            schema: "public".into(),
            version: "1.8".into(),
            comment: None,
            config: Vec::new(),
        };
        let offers = |v: &[&str]| ("1.7".to_string(), v.iter().map(|s| s.to_string()).collect());
        let same = extension(&x, false, Some(&offers(&["1.7", "1.8"])));
        assert_eq!(
            same.create,
            ["CREATE EXTENSION \"btree_gist\" WITH SCHEMA \"public\" VERSION '1.8'"]
        );
        assert!(same.notices.is_empty());
        let older = extension(&x, false, Some(&offers(&["1.6", "1.7"])));
        assert_eq!(
            older.create,
            ["CREATE EXTENSION \"btree_gist\" WITH SCHEMA \"public\""]
        );
        assert!(older.notices[0].contains("version 1.8") && older.notices[0].contains("1.7"));
        assert!(extension(&x, true, None).create.is_empty());
    }

    #[test]
    fn types_of_every_kind() {
        let e = type_(&ty("e"), &roles());
        assert_eq!(
            e.create,
            vec![
                "CREATE TYPE \"s\".\"t\" AS ENUM ('a', 'it''s')",
                "ALTER TYPE \"s\".\"t\" OWNER TO \"postgres\""
            ]
        );
        assert!(e
            .after
            .contains(&"COMMENT ON TYPE \"s\".\"t\" IS 'a type'".to_string()));
        let c = type_(&ty("c"), &roles());
        assert!(c.create[0].contains("\"x\" text COLLATE pg_catalog.\"C\""));
        assert!(c
            .after
            .contains(&"COMMENT ON COLUMN \"s\".\"t\".\"x\" IS 'x!'".to_string()));
        let d = type_(&ty("d"), &roles());
        assert_eq!(
            d.create,
            vec![
                "CREATE DOMAIN \"s\".\"t\" AS numeric(10,2) DEFAULT 0 NOT NULL CONSTRAINT \"pos\" CHECK ((VALUE > (0)::numeric))",
                "ALTER DOMAIN \"s\".\"t\" OWNER TO \"postgres\""
            ]
        );
        assert!(d
            .after
            .iter()
            .any(|s| s.starts_with("ALTER DOMAIN \"s\".\"t\" ADD CONSTRAINT \"small\"")));
        let r = type_(&ty("r"), &roles());
        assert_eq!(
            r.create[0],
            "CREATE TYPE \"s\".\"t\" AS RANGE (SUBTYPE = timestamp with time zone, SUBTYPE_DIFF = s.diff, MULTIRANGE_TYPE_NAME = s.tmulti)"
        );
    }

    #[test]
    fn aggregate_definition() {
        let a = AggInfo {
            args: "text".into(),
            kind: "n".into(),
            sfunc: "public._group_concat".into(),
            stype: "text".into(),
            sspace: 0,
            finalfunc: None,
            finalextra: false,
            finalmodify: "r".into(),
            combinefunc: None,
            serialfunc: None,
            deserialfunc: None,
            initcond: None,
            msfunc: None,
            minvfunc: None,
            mstype: None,
            msspace: 0,
            mfinalfunc: None,
            mfinalextra: false,
            mfinalmodify: "r".into(),
            minitcond: None,
            sortop: Some(">(integer,integer)".into()),
            numdirect: 0,
            parallel: "s".into(),
        };
        let sql = aggregate("\"public\".\"group_concat\"", &a);
        assert_eq!(
            sql,
            "CREATE AGGREGATE \"public\".\"group_concat\"(text) (\n    SFUNC = public._group_concat,\n    STYPE = text,\n    SORTOP = OPERATOR(>),\n    PARALLEL = SAFE\n)"
        );
    }

    #[test]
    fn views_and_missing_owner() {
        let v = ViewObj {
            oid: 1,
            schema: "s".into(),
            name: "v".into(),
            kind: "m".into(),
            def: " SELECT 1 AS one;".into(),
            reloptions: vec!["fillfactor=50".into()],
            access_method: Some("heap".into()),
            populated: true,
            owner: "ghost".into(),
            acl: vec![],
            acl_null: true,
            comment: None,
            column_comments: vec![ColumnComment {
                name: "one".into(),
                comment: "1".into(),
            }],
            column_defaults: vec![],
        };
        let s = view(&v, &roles());
        assert_eq!(
            s.create,
            vec!["CREATE MATERIALIZED VIEW \"s\".\"v\" WITH (\"fillfactor\"='50') AS\nSELECT 1 AS one\nWITH NO DATA"]
        );
        assert_eq!(s.missing_roles, vec!["ghost"]);
        assert!(!s.after.iter().any(|a| a.contains("OWNER")));
    }

    #[test]
    fn default_privileges() {
        let d = DefaultAcl {
            role: "app".into(),
            schema: Some("s".into()),
            objtype: "r".into(),
            acl: vec![AclEntry {
                grantee: Some("reader".into()),
                privilege: "SELECT".into(),
                grantable: false,
            }],
        };
        let mut missing = vec![];
        assert_eq!(
            default_acl(&d, &roles(), &mut missing),
            vec!["ALTER DEFAULT PRIVILEGES FOR ROLE \"app\" IN SCHEMA \"s\" GRANT SELECT ON TABLES TO \"reader\""]
        );
    }
}

pub fn operator(o: &OperObj, roles: &Roles) -> ObjScript {
    let mut out = ObjScript::default();
    let mut parts = vec![format!("FUNCTION = {}", o.function)];
    if let Some(l) = &o.left {
        parts.push(format!("LEFTARG = {l}"));
    }
    if let Some(r) = &o.right {
        parts.push(format!("RIGHTARG = {r}"));
    }
    for (k, v) in [
        ("COMMUTATOR", &o.commutator),
        ("NEGATOR", &o.negator),
        ("RESTRICT", &o.restrict),
        ("JOIN", &o.join),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k} = {v}"));
        }
    }
    if o.hashes {
        parts.push("HASHES".into());
    }
    if o.merges {
        parts.push("MERGES".into());
    }
    // An operator's name is a run of symbols: it is never quoted.
    out.create.push(format!(
        "CREATE OPERATOR {}.{} ({})",
        quote_ident(&o.schema),
        o.name,
        parts.join(", ")
    ));
    let sig = format!("OPERATOR {}", o.signature);
    out.finish(&sig, "", &sig, &o.owner, &[], true, &o.comment, roles);
    out
}

pub fn ts_dictionary(d: &TsDictObj, roles: &Roles) -> ObjScript {
    let q = qualified(&d.schema, &d.name);
    let mut out = ObjScript::default();
    let opts = d
        .options
        .as_ref()
        .map(|o| format!(", {o}"))
        .unwrap_or_default();
    out.create.push(format!(
        "CREATE TEXT SEARCH DICTIONARY {q} (TEMPLATE = {}{opts})",
        d.template
    ));
    let obj = format!("TEXT SEARCH DICTIONARY {q}");
    out.finish(&obj, "", &obj, &d.owner, &[], true, &d.comment, roles);
    out
}

pub fn ts_configuration(c: &TsConfigObj, roles: &Roles) -> ObjScript {
    let q = qualified(&c.schema, &c.name);
    let mut out = ObjScript::default();
    out.create.push(format!(
        "CREATE TEXT SEARCH CONFIGURATION {q} (PARSER = {})",
        c.parser
    ));
    for m in c.mappings.iter().filter(|m| !m.dicts.is_empty()) {
        out.create.push(format!(
            "ALTER TEXT SEARCH CONFIGURATION {q} ADD MAPPING FOR {} WITH {}",
            quote_ident(&m.token),
            m.dicts.join(", ")
        ));
    }
    let obj = format!("TEXT SEARCH CONFIGURATION {q}");
    out.finish(&obj, "", &obj, &c.owner, &[], true, &c.comment, roles);
    out
}

pub fn cast(c: &CastObj) -> ObjScript {
    let mut out = ObjScript::default();
    let how = match (c.method.as_str(), &c.function) {
        ("f", Some(f)) => format!("WITH FUNCTION {f}"),
        ("i", _) => "WITH INOUT".to_string(),
        _ => "WITHOUT FUNCTION".to_string(),
    };
    let ctx = match c.context.as_str() {
        "a" => " AS ASSIGNMENT",
        "i" => " AS IMPLICIT",
        _ => "",
    };
    out.create.push(format!(
        "CREATE CAST ({} AS {}) {how}{ctx}",
        c.source, c.target
    ));
    out.after.extend(comment(
        &format!("CAST ({} AS {})", c.source, c.target),
        &c.comment,
    ));
    out
}

pub fn event_trigger(e: &EventTriggerObj, roles: &Roles) -> ObjScript {
    let q = quote_ident(&e.name);
    let mut out = ObjScript::default();
    let when = e
        .tags
        .as_ref()
        .filter(|t| !t.is_empty())
        .map(|t| {
            let tags: Vec<String> = t.iter().map(|x| quote_literal(x)).collect();
            format!(" WHEN TAG IN ({})", tags.join(", "))
        })
        .unwrap_or_default();
    out.create.push(format!(
        "CREATE EVENT TRIGGER {q} ON {}{when} EXECUTE FUNCTION {}()",
        quote_ident(&e.event),
        e.function
    ));
    match e.enabled.as_str() {
        "D" => out.create.push(format!("ALTER EVENT TRIGGER {q} DISABLE")),
        "R" => out
            .create
            .push(format!("ALTER EVENT TRIGGER {q} ENABLE REPLICA")),
        "A" => out
            .create
            .push(format!("ALTER EVENT TRIGGER {q} ENABLE ALWAYS")),
        _ => {}
    }
    let obj = format!("EVENT TRIGGER {q}");
    out.finish(&obj, "", &obj, &e.owner, &[], true, &e.comment, roles);
    out
}

#[cfg(test)]
mod more {
    use super::*;

    fn roles() -> Roles<'static> {
        Roles {
            exists: &|_| true,
            can_own: &|_| true,
        }
    }

    #[test]
    fn operator_and_text_search() {
        let o = OperObj {
            oid: 1,
            schema: "s".into(),
            name: "===".into(),
            left: Some("integer".into()),
            right: Some("integer".into()),
            function: "s.eq".into(),
            commutator: Some("OPERATOR(s.===)".into()),
            negator: None,
            restrict: Some("eqsel".into()),
            join: None,
            hashes: false,
            merges: false,
            owner: "postgres".into(),
            comment: Some("eq".into()),
            signature: "s.===(integer, integer)".into(),
        };
        let s = operator(&o, &roles());
        assert_eq!(
            s.create,
            vec![
                "CREATE OPERATOR \"s\".=== (FUNCTION = s.eq, LEFTARG = integer, RIGHTARG = integer, COMMUTATOR = OPERATOR(s.===), RESTRICT = eqsel)",
                "ALTER OPERATOR s.===(integer, integer) OWNER TO \"postgres\""
            ]
        );
        assert!(s
            .after
            .contains(&"COMMENT ON OPERATOR s.===(integer, integer) IS 'eq'".to_string()));
        let c = TsConfigObj {
            oid: 2,
            schema: "s".into(),
            name: "cfg".into(),
            parser: "pg_catalog.\"default\"".into(),
            mappings: vec![TsMapping {
                token: "asciiword".into(),
                dicts: vec!["s.mydict".into(), "simple".into()],
            }],
            owner: "postgres".into(),
            comment: None,
        };
        let s = ts_configuration(&c, &roles());
        assert_eq!(s.create[1], "ALTER TEXT SEARCH CONFIGURATION \"s\".\"cfg\" ADD MAPPING FOR \"asciiword\" WITH s.mydict, simple");
        let cs = cast(&CastObj {
            oid: 3,
            source: "s.t".into(),
            target: "text".into(),
            method: "f".into(),
            function: Some("s.t_to_text(s.t)".into()),
            context: "a".into(),
            comment: None,
        });
        assert_eq!(
            cs.create,
            vec!["CREATE CAST (s.t AS text) WITH FUNCTION s.t_to_text(s.t) AS ASSIGNMENT"]
        );
    }
}

/// A publication, created after every table exists, as pg_dump does: the
/// publication first, then its tables and schemas one by one.
pub fn publication(p: &PublicationObj, roles: &Roles) -> ObjScript {
    let q = quote_ident(&p.name);
    let mut out = ObjScript::default();
    let all = if p.all_tables { " FOR ALL TABLES" } else { "" };
    out.create.push(format!(
        "CREATE PUBLICATION {q}{all} WITH (publish = {}, publish_via_partition_root = {})",
        quote_literal(&p.publish.join(", ")),
        p.via_root
    ));
    for t in &p.tables {
        let cols = t
            .columns
            .as_ref()
            .map(|c| {
                format!(
                    " ({})",
                    c.iter()
                        .map(|x| quote_ident(x))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .unwrap_or_default();
        let filter = t
            .filter
            .as_ref()
            .map(|f| format!(" WHERE ({f})"))
            .unwrap_or_default();
        out.create.push(format!(
            "ALTER PUBLICATION {q} ADD TABLE ONLY {}{cols}{filter}",
            t.table
        ));
    }
    for s in &p.schemas {
        out.create
            .push(format!("ALTER PUBLICATION {q} ADD TABLES IN SCHEMA {s}"));
    }
    let obj = format!("PUBLICATION {q}");
    out.finish(&obj, "", &obj, &p.owner, &[], true, &p.comment, roles);
    out
}
