//! `clone_roles`: the source's roles as statements for this server —
//! attributes, password hashes as stored, memberships with their options,
//! role settings — and the source's grants on the objects both sides have.
//!
//! Never touched: reserved roles (`pg_*`, a managed service's own), either
//! side's bootstrap superuser, and the calling role itself. Existing roles
//! are updated, never dropped.

use crate::catalog::AclEntry;
use crate::sqltext::{quote_ident, quote_literal};
use serde::Deserialize;

/// A role as the source has it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RoleDef {
    pub name: String,
    pub superuser: bool,
    pub inherit: bool,
    pub createrole: bool,
    pub createdb: bool,
    pub login: bool,
    pub replication: bool,
    pub bypassrls: bool,
    pub connlimit: i32,
    pub valid_until: Option<String>,
    /// The stored hash (SCRAM or MD5), None for no password.
    pub password: Option<String>,
    /// The source let us read pg_authid: `password` is the truth.
    pub password_known: bool,
    /// The bootstrap superuser (OID 10) of the source.
    pub bootstrap: bool,
}

/// A membership: `member` in `role`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Membership {
    pub role: String,
    pub member: String,
    pub admin: bool,
    /// PostgreSQL 16+: per-membership INHERIT and SET (None before 16).
    pub inherit: Option<bool>,
    pub set: Option<bool>,
}

/// `ALTER ROLE ... SET` of a role, everywhere (`here` false: a database of
/// the source other than the one cloned is left alone).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RoleSetting {
    pub role: String,
    /// Set for the source's cloned database only (else for every database).
    pub in_database: bool,
    /// Set for some other database of the source.
    pub elsewhere: bool,
    pub config: Vec<String>,
}

/// An object's privileges on the source, named as this server names it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Grants {
    /// `probe` kind for the existence check here: rel, routine, type,
    /// schema, language, lo, tablespace, fdw, server, database.
    pub kind: String,
    /// The name the probe reads (`s.t`, `s.f(integer)`, an OID, ...).
    pub probe: String,
    /// The source's name for it, for reading only: statements name the
    /// object as this server does ([`EXISTS_SQL`]).
    pub object: String,
    pub owner: Option<String>,
    pub column: Option<String>,
    pub acl: Vec<AclEntry>,
}

/// Roles no clone may create, change or grant: PostgreSQL's own, those of
/// managed services (RDS, Aurora, Azure, Cloud SQL, AlloyDB), and the role
/// that lets its members use pgclone.
pub fn reserved(name: &str) -> bool {
    const PREFIXES: [&str; 7] = [
        "pg_", "rds", "azure_", "azuresu", "cloudsql", "alloydb", "aurora",
    ];
    name == "pgclone_operator" || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Words of a list split at `sep`, double quotes keeping a word whole
/// (`""` inside them is a quote); blanks outside quotes are dropped.
fn split_quoted(text: &str, sep: &dyn Fn(char) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => quoted = !quoted,
            c if !quoted && sep(c) => out.push(std::mem::take(&mut cur)),
            c if !quoted && c.is_whitespace() => {}
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.retain(|w| !w.is_empty());
    out
}

/// Role names from clone_roles' `role_names` argument: comma- or
/// space-separated, as pgclone 4.x reads them; double quotes keep a name
/// with either in it whole.
pub fn split_names(text: &str) -> Vec<String> {
    let mut out = split_quoted(text, &|c| c == ',' || c.is_whitespace());
    out.dedup();
    out
}

/// What the target version understands of memberships.
pub struct Target {
    pub version_num: i32,
}

/// CREATE (when new) and ALTER statements that give `r` the source's
/// attributes and, when it was readable, its password hash. `superuser`:
/// the caller is one here; anyone else may not even name SUPERUSER,
/// REPLICATION or BYPASSRLS (roles that have them are refused before).
pub fn role_statements(r: &RoleDef, exists: bool, superuser: bool) -> Vec<String> {
    let name = quote_ident(&r.name);
    let mut out = Vec::new();
    if !exists {
        out.push(format!("CREATE ROLE {name}"));
    }
    let flag = |on: bool, word: &str| {
        if on {
            word.to_string()
        } else {
            format!("NO{word}")
        }
    };
    let mut attrs = Vec::new();
    if superuser {
        attrs.push(flag(r.superuser, "SUPERUSER"));
    }
    attrs.extend([
        flag(r.inherit, "INHERIT"),
        flag(r.createrole, "CREATEROLE"),
        flag(r.createdb, "CREATEDB"),
        flag(r.login, "LOGIN"),
    ]);
    if superuser {
        attrs.push(flag(r.replication, "REPLICATION"));
        attrs.push(flag(r.bypassrls, "BYPASSRLS"));
    }
    attrs.extend([
        format!("CONNECTION LIMIT {}", r.connlimit),
        format!(
            "VALID UNTIL {}",
            quote_literal(r.valid_until.as_deref().unwrap_or("infinity"))
        ),
    ]);
    if r.password_known {
        attrs.push(match &r.password {
            // A stored SCRAM verifier or MD5 hash is kept as it is: the
            // server recognises the form and does not hash it again.
            Some(p) => format!("PASSWORD {}", quote_literal(p)),
            None => "PASSWORD NULL".into(),
        });
    }
    out.push(format!("ALTER ROLE {name} WITH {}", attrs.join(" ")));
    out
}

/// The GRANT of a membership, in the words the target knows. Before 16
/// there are no per-membership INHERIT and SET options: the member's own
/// INHERIT attribute decides, and SET is always allowed.
pub fn membership_statement(m: &Membership, t: &Target) -> (String, Option<String>) {
    let head = format!(
        "GRANT {} TO {}",
        quote_ident(&m.role),
        quote_ident(&m.member)
    );
    if t.version_num >= 160000 {
        let mut opts = vec![format!("ADMIN {}", m.admin)];
        if let Some(i) = m.inherit {
            opts.push(format!("INHERIT {i}"));
        }
        if let Some(s) = m.set {
            opts.push(format!("SET {s}"));
        }
        return (format!("{head} WITH {}", opts.join(", ")), None);
    }
    let sql = if m.admin {
        format!("{head} WITH ADMIN OPTION")
    } else {
        head
    };
    let lost = (m.inherit == Some(false) || m.set == Some(false)).then(|| {
        format!(
            "membership of {} in {}: INHERIT/SET options need PostgreSQL 16 here; granted with the defaults",
            m.member, m.role
        )
    });
    (sql, lost)
}

/// Settings whose value is a list of names, each quoted on its own (as
/// pg_dump writes them): quoting the whole list would make it one name.
const LIST_SETTINGS: [&str; 6] = [
    "search_path",
    "session_preload_libraries",
    "shared_preload_libraries",
    "local_preload_libraries",
    "temp_tablespaces",
    "unix_socket_directories",
];

/// The elements of a list setting as stored (`"$user", public`).
fn list_elements(value: &str) -> Vec<String> {
    split_quoted(value, &|c| c == ',')
}

/// Settings that load code from this server's disk at login: a source's
/// word is not enough to have them run here.
const NOT_COPIED: [&str; 2] = ["session_preload_libraries", "local_preload_libraries"];

/// Is a stored `name=value` one clone_roles leaves out?
pub fn setting_refused(entry: &str) -> bool {
    entry
        .split_once('=')
        .is_some_and(|(n, _)| NOT_COPIED.contains(&n.to_ascii_lowercase().as_str()))
}

/// ALTER ROLE ... [IN DATABASE db] SET for one stored `name=value`.
pub fn setting_statement(role: &str, database: Option<&str>, entry: &str) -> Option<String> {
    if setting_refused(entry) {
        return None;
    }
    let (name, value) = entry.split_once('=')?;
    let value = if LIST_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) {
        let elements = list_elements(value);
        if elements.is_empty() {
            // `SET search_path = ''` is stored as `""`: an empty list.
            "''".to_string()
        } else {
            elements
                .iter()
                .map(|e| quote_literal(e))
                .collect::<Vec<_>>()
                .join(", ")
        }
    } else {
        quote_literal(value)
    };
    let db = database
        .map(|d| format!(" IN DATABASE {}", quote_ident(d)))
        .unwrap_or_default();
    // A custom setting's name has a prefix: each part is an identifier.
    let name = name
        .split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".");
    Some(format!(
        "ALTER ROLE {}{db} SET {name} TO {value}",
        quote_ident(role)
    ))
}

/// The source's roles to clone (`wanted` None: all but the reserved and
/// bootstrap ones); Err names the ones asked for that the source lacks.
pub fn select<'a>(
    roles: &'a [RoleDef],
    wanted: Option<&[String]>,
) -> Result<Vec<&'a RoleDef>, Vec<String>> {
    match wanted {
        None => Ok(roles
            .iter()
            .filter(|r| !r.bootstrap && !reserved(&r.name))
            .collect()),
        Some(names) => {
            let missing: Vec<String> = names
                .iter()
                .filter(|n| !roles.iter().any(|r| &r.name == *n))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(missing);
            }
            Ok(roles.iter().filter(|r| names.contains(&r.name)).collect())
        }
    }
}

/// The SQL that lists every object of the given schemas (`$1`) and of the
/// database with a non-default ACL, as `Grants` JSON rows. Under
/// `search_path = ''` the regclass/regprocedure/regtype forms print
/// qualified names that this server reads back.
pub fn grants_sql() -> String {
    let acl = |col: &str| crate::catalog::table::acl_json(col);
    format!(
        "SELECT coalesce(json_agg(g), '[]')::text FROM ( \
           SELECT 'database' AS kind, '' AS probe, '' AS object, pg_get_userbyid(d.datdba) AS owner, \
                  NULL::text AS column, {dacl} AS acl \
             FROM pg_database d WHERE d.datname = current_database() AND d.datacl IS NOT NULL \
           UNION ALL SELECT 'schema', n.nspname, 'SCHEMA ' || quote_ident(n.nspname), pg_get_userbyid(n.nspowner), \
                  NULL, {nacl} FROM pg_namespace n WHERE n.nspname = ANY($1) AND n.nspacl IS NOT NULL \
           UNION ALL SELECT 'rel', c.oid::regclass::text, \
                  CASE c.relkind WHEN 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END || c.oid::regclass::text, \
                  pg_get_userbyid(c.relowner), NULL, {racl} \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND c.relacl IS NOT NULL \
           UNION ALL SELECT 'rel', c.oid::regclass::text, 'TABLE ' || c.oid::regclass::text, \
                  pg_get_userbyid(c.relowner), a.attname::text, {aacl} \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = ANY($1) AND a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped \
           UNION ALL SELECT 'routine', p.oid::regprocedure::text, 'ROUTINE ' || p.oid::regprocedure::text, \
                  pg_get_userbyid(p.proowner), NULL, {pacl} \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = ANY($1) AND p.proacl IS NOT NULL \
           UNION ALL SELECT 'type', t.oid::regtype::text, 'TYPE ' || t.oid::regtype::text, \
                  pg_get_userbyid(t.typowner), NULL, {tacl} \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE n.nspname = ANY($1) AND t.typacl IS NOT NULL \
           UNION ALL SELECT 'language', l.lanname, 'LANGUAGE ' || quote_ident(l.lanname), \
                  pg_get_userbyid(l.lanowner), NULL, {lacl} FROM pg_language l WHERE l.lanacl IS NOT NULL \
           UNION ALL SELECT 'lo', m.oid::text, 'LARGE OBJECT ' || m.oid, pg_get_userbyid(m.lomowner), NULL, {macl} \
             FROM pg_largeobject_metadata m WHERE m.lomacl IS NOT NULL \
           UNION ALL SELECT 'tablespace', s.spcname, 'TABLESPACE ' || quote_ident(s.spcname), \
                  pg_get_userbyid(s.spcowner), NULL, {sacl} FROM pg_tablespace s WHERE s.spcacl IS NOT NULL \
           UNION ALL SELECT 'fdw', w.fdwname, 'FOREIGN DATA WRAPPER ' || quote_ident(w.fdwname), \
                  pg_get_userbyid(w.fdwowner), NULL, {wacl} FROM pg_foreign_data_wrapper w WHERE w.fdwacl IS NOT NULL \
           UNION ALL SELECT 'server', v.srvname, 'FOREIGN SERVER ' || quote_ident(v.srvname), \
                  pg_get_userbyid(v.srvowner), NULL, {vacl} FROM pg_foreign_server v WHERE v.srvacl IS NOT NULL \
         ) g",
        dacl = acl("d.datacl"),
        nacl = acl("n.nspacl"),
        racl = acl("c.relacl"),
        aacl = acl("a.attacl"),
        pacl = acl("p.proacl"),
        tacl = acl("t.typacl"),
        lacl = acl("l.lanacl"),
        macl = acl("m.lomacl"),
        sacl = acl("s.spcacl"),
        wacl = acl("w.fdwacl"),
        vacl = acl("v.srvacl"),
    )
}

/// Which of the source's objects (`$1` kinds, `$2` probes, `$3` columns)
/// exist here, and their names as this server writes them: rows (index
/// from 1, object). The source's own rendering of a name is never used:
/// its probe only goes through name lookups (`to_regclass` and the like)
/// and equality, so a crafted name finds nothing rather than running.
pub const EXISTS_SQL: &str = "\
    SELECT x.i::int4, x.object FROM ( \
      SELECT u.i, CASE u.k \
        WHEN 'database' THEN 'DATABASE ' || pg_catalog.quote_ident(pg_catalog.current_database()) \
        WHEN 'schema' THEN (SELECT 'SCHEMA ' || pg_catalog.quote_ident(nspname) \
                            FROM pg_catalog.pg_namespace WHERE nspname = u.n) \
        WHEN 'rel' THEN (SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END || c.oid::pg_catalog.regclass::text \
                         FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass(u.n) \
                           AND (u.c IS NULL OR EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a \
                                WHERE a.attrelid = c.oid AND a.attname = u.c AND NOT a.attisdropped))) \
        WHEN 'routine' THEN 'ROUTINE ' || pg_catalog.to_regprocedure(u.n)::text \
        WHEN 'type' THEN 'TYPE ' || pg_catalog.to_regtype(u.n)::text \
        WHEN 'language' THEN (SELECT 'LANGUAGE ' || pg_catalog.quote_ident(lanname) \
                              FROM pg_catalog.pg_language WHERE lanname = u.n) \
        WHEN 'lo' THEN (SELECT 'LARGE OBJECT ' || oid FROM pg_catalog.pg_largeobject_metadata WHERE oid::text = u.n) \
        WHEN 'tablespace' THEN (SELECT 'TABLESPACE ' || pg_catalog.quote_ident(spcname) \
                                FROM pg_catalog.pg_tablespace WHERE spcname = u.n) \
        WHEN 'fdw' THEN (SELECT 'FOREIGN DATA WRAPPER ' || pg_catalog.quote_ident(fdwname) \
                         FROM pg_catalog.pg_foreign_data_wrapper WHERE fdwname = u.n) \
        WHEN 'server' THEN (SELECT 'FOREIGN SERVER ' || pg_catalog.quote_ident(srvname) \
                            FROM pg_catalog.pg_foreign_server WHERE srvname = u.n) \
      END AS object \
      FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(k, n, c, i)) x \
    WHERE x.object IS NOT NULL";

/// GRANT statements for an object here. With `only` (clone_roles with a
/// list of roles) just the grants to those roles, nothing revoked;
/// otherwise the source's ACL exactly, PUBLIC's entries (and their
/// absence) included.
pub fn grant_statements(
    g: &Grants,
    object: &str,
    only: Option<&[String]>,
    role_exists: &dyn Fn(&str) -> bool,
    missing: &mut Vec<String>,
) -> Vec<String> {
    match only {
        None => crate::ddl::acl_statements(
            object,
            g.column.as_deref(),
            g.owner.as_deref(),
            &g.acl,
            false,
            role_exists,
            missing,
        ),
        Some(names) => {
            let cols = g
                .column
                .as_deref()
                .map(|c| format!(" ({})", quote_ident(c)))
                .unwrap_or_default();
            g.acl
                .iter()
                .filter(|a| a.grantee.as_ref().is_some_and(|r| names.contains(r)))
                .filter(|a| crate::ddl::known_privilege(&a.privilege))
                .filter_map(|a| {
                    let (who, opt) = crate::ddl::grantee(a, role_exists, missing)?;
                    Some(format!(
                        "GRANT {}{cols} ON {object} TO {who}{opt}",
                        a.privilege
                    ))
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    fn role(name: &str) -> RoleDef {
        RoleDef {
            name: name.into(),
            inherit: true,
            login: true,
            connlimit: -1,
            password: Some("SCRAM-SHA-256$4096:abc$def:ghi".into()),
            password_known: true,
            ..RoleDef::default()
        }
    }

    #[test]
    fn a_role_gets_every_attribute_and_its_stored_hash() {
        let mut r = role("Alice");
        r.createdb = true;
        r.connlimit = 3;
        r.valid_until = Some("2030-01-01 00:00:00+00".into());
        let s = role_statements(&r, false, true);
        assert_eq!(s[0], "CREATE ROLE \"Alice\"");
        assert_eq!(
            s[1],
            "ALTER ROLE \"Alice\" WITH NOSUPERUSER INHERIT NOCREATEROLE CREATEDB LOGIN NOREPLICATION \
             NOBYPASSRLS CONNECTION LIMIT 3 VALID UNTIL '2030-01-01 00:00:00+00' \
             PASSWORD 'SCRAM-SHA-256$4096:abc$def:ghi'"
        );
        let plain = role_statements(&r, true, false);
        assert_eq!(plain.len(), 1);
        for word in ["SUPERUSER", "REPLICATION", "BYPASSRLS"] {
            assert!(!plain[0].contains(word), "{plain:?}");
        }
        let mut hidden = role("bob");
        hidden.password_known = false;
        let s = role_statements(&hidden, true, true);
        assert_eq!(s.len(), 1);
        assert!(!s[0].contains("PASSWORD"), "{s:?}");
        assert!(s[0].contains("VALID UNTIL 'infinity'"));
    }

    #[test]
    fn memberships_speak_the_targets_version() {
        let m = Membership {
            role: "grp".into(),
            member: "alice".into(),
            admin: true,
            inherit: Some(false),
            set: Some(true),
        };
        let new = Target {
            version_num: 160002,
        };
        let old = Target {
            version_num: 150008,
        };
        assert_eq!(
            membership_statement(&m, &new).0,
            "GRANT \"grp\" TO \"alice\" WITH ADMIN true, INHERIT false, SET true"
        );
        let (sql, lost) = membership_statement(&m, &old);
        assert_eq!(sql, "GRANT \"grp\" TO \"alice\" WITH ADMIN OPTION");
        assert!(lost.unwrap().contains("INHERIT/SET"));
    }

    #[test]
    fn settings_quote_lists_element_by_element() {
        assert_eq!(
            setting_statement("app", None, "search_path=\"$user\", public, \"My Schema\"").unwrap(),
            "ALTER ROLE \"app\" SET \"search_path\" TO '$user', 'public', 'My Schema'"
        );
        assert_eq!(
            setting_statement("app", Some("shop db"), "statement_timeout=5s").unwrap(),
            "ALTER ROLE \"app\" IN DATABASE \"shop db\" SET \"statement_timeout\" TO '5s'"
        );
        assert!(setting_statement("app", None, "session_preload_libraries=evil").is_none());
        assert_eq!(
            setting_statement("app", None, "search_path=\"\"").unwrap(),
            "ALTER ROLE \"app\" SET \"search_path\" TO ''"
        );
        assert!(setting_refused("Local_Preload_Libraries=x"));
        assert_eq!(
            setting_statement("app", None, "myapp.x=it's").unwrap(),
            "ALTER ROLE \"app\" SET \"myapp\".\"x\" TO 'it''s'"
        );
    }

    #[test]
    fn reserved_and_bootstrap_roles_are_never_chosen() {
        let mut boot = role("postgres");
        boot.bootstrap = true;
        let roles = vec![
            boot,
            role("rds_superuser"),
            role("pg_monitor"),
            role("app"),
            role("azure_pg_admin"),
        ];
        let all: Vec<&str> = select(&roles, None)
            .unwrap()
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(all, ["app"]);
        assert_eq!(
            select(&roles, Some(&["nobody".into()])).unwrap_err(),
            ["nobody"]
        );
        assert_eq!(split_names("a, b c,,\"d e\""), ["a", "b", "c", "d e"]);
    }

    #[test]
    fn grants_rebuild_the_acl_or_add_only_the_chosen_roles() {
        let g = Grants {
            kind: "routine".into(),
            probe: "s.f(integer)".into(),
            object: "ROUTINE s.f(integer)".into(),
            owner: Some("owner".into()),
            column: None,
            acl: vec![
                AclEntry {
                    grantee: Some("owner".into()),
                    privilege: "EXECUTE".into(),
                    grantable: false,
                },
                AclEntry {
                    grantee: Some("app".into()),
                    privilege: "EXECUTE".into(),
                    grantable: true,
                },
            ],
        };
        let mut missing = Vec::new();
        let all = grant_statements(&g, &g.object, None, &|_| true, &mut missing);
        assert_eq!(
            all,
            [
                "REVOKE ALL ON ROUTINE s.f(integer) FROM PUBLIC",
                "REVOKE ALL ON ROUTINE s.f(integer) FROM \"owner\"",
                "GRANT EXECUTE ON ROUTINE s.f(integer) TO \"owner\"",
                "GRANT EXECUTE ON ROUTINE s.f(integer) TO \"app\" WITH GRANT OPTION",
            ]
        );
        let some = grant_statements(
            &g,
            &g.object,
            Some(&["app".into()]),
            &|_| true,
            &mut missing,
        );
        assert_eq!(
            some,
            ["GRANT EXECUTE ON ROUTINE s.f(integer) TO \"app\" WITH GRANT OPTION"]
        );
    }
}
