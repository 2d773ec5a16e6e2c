//! DDL text rendered from catalog structs. Pure: no server, unit-tested.

pub mod objects;
pub mod table;
pub mod undo;

use crate::catalog::AclEntry;
use crate::sqltext::{quote_ident, quote_literal};

pub const NAMEDATALEN: usize = 64;

/// Cut a name to what PostgreSQL keeps (63 bytes), on a character boundary.
pub fn truncate_name(name: &str) -> String {
    if name.len() < NAMEDATALEN {
        return name.to_string();
    }
    let mut end = NAMEDATALEN - 1;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// A name for an object of a renamed table: `t_pkey` of `t` becomes `t2_pkey`
/// of `t2`; a name that does not start with the table's becomes `t2_name`.
/// `taken` says whether a candidate is already used; a number is appended until
/// it is free, as PostgreSQL does for names it chooses.
pub fn renamed(
    old: &str,
    src_table: &str,
    tgt_table: &str,
    taken: &dyn Fn(&str) -> bool,
) -> String {
    let base = match old.strip_prefix(src_table) {
        Some(rest) => format!("{tgt_table}{rest}"),
        None => format!("{tgt_table}_{old}"),
    };
    let first = truncate_name(&base);
    if !taken(&first) {
        return first;
    }
    for n in 1.. {
        let suffix = n.to_string();
        let mut stem = truncate_name(&base);
        while stem.len() + suffix.len() >= NAMEDATALEN {
            stem.pop();
        }
        let cand = format!("{stem}{suffix}");
        if !taken(&cand) {
            return cand;
        }
    }
    unreachable!()
}

/// Privileges PostgreSQL grants. An ACL entry naming anything else (a
/// hostile source's JSON) is never written into a statement.
pub fn known_privilege(p: &str) -> bool {
    matches!(
        p,
        "SELECT"
            | "INSERT"
            | "UPDATE"
            | "DELETE"
            | "TRUNCATE"
            | "REFERENCES"
            | "TRIGGER"
            | "CREATE"
            | "CONNECT"
            | "TEMPORARY"
            | "TEMP"
            | "EXECUTE"
            | "USAGE"
            | "SET"
            | "ALTER SYSTEM"
            | "MAINTAIN"
    )
}

/// GRANT statements that rebuild an ACL exactly, in the source's order. The
/// object's default privileges are revoked first so that the result holds the
/// source's entries and nothing else. `object` is e.g. `TABLE "s"."t"`;
/// `column` restricts to one column. Entries for roles the target lacks are
/// left out and reported through `missing`.
pub fn acl_statements(
    object: &str,
    column: Option<&str>,
    owner: Option<&str>,
    acl: &[AclEntry],
    acl_null: bool,
    role_exists: &dyn Fn(&str) -> bool,
    missing: &mut Vec<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    let cols = column
        .map(|c| format!(" ({})", quote_ident(c)))
        .unwrap_or_default();
    if column.is_none() {
        if acl_null {
            return out;
        }
        out.push(format!("REVOKE ALL ON {object} FROM PUBLIC"));
        if let Some(o) = owner.filter(|o| role_exists(o)) {
            out.push(format!("REVOKE ALL ON {object} FROM {}", quote_ident(o)));
        }
    }
    for a in acl.iter().filter(|a| known_privilege(&a.privilege)) {
        let Some((grantee, opt)) = grantee(a, role_exists, missing) else {
            continue;
        };
        out.push(format!(
            "GRANT {}{cols} ON {object} TO {grantee}{opt}",
            a.privilege
        ));
    }
    out
}

/// The ALTER TABLE words that give a trigger or rule its firing state
/// (`what` is TRIGGER or RULE); None for the default (fires on origin).
pub fn enable_state(code: &str, what: &str) -> Option<String> {
    match code {
        "D" => Some(format!("DISABLE {what}")),
        "R" => Some(format!("ENABLE REPLICA {what}")),
        "A" => Some(format!("ENABLE ALWAYS {what}")),
        _ => None,
    }
}

/// The grantee of an ACL entry as SQL, and its WITH GRANT OPTION; None (and
/// the role noted as missing) when the role does not exist here.
pub fn grantee(
    a: &AclEntry,
    role_exists: &dyn Fn(&str) -> bool,
    missing: &mut Vec<String>,
) -> Option<(String, &'static str)> {
    let who = match &a.grantee {
        None => "PUBLIC".to_string(),
        Some(r) if role_exists(r) => quote_ident(r),
        Some(r) => {
            missing.push(r.clone());
            return None;
        }
    };
    Some((
        who,
        if a.grantable {
            " WITH GRANT OPTION"
        } else {
            ""
        },
    ))
}

/// START WITH ... [NO] CYCLE of a sequence.
pub fn sequence_clause(
    start: i64,
    increment: i64,
    min: i64,
    max: i64,
    cache: i64,
    cycle: bool,
) -> String {
    format!(
        "START WITH {start} INCREMENT BY {increment} MINVALUE {min} MAXVALUE {max} CACHE {cache}{}",
        if cycle { " CYCLE" } else { " NO CYCLE" }
    )
}

pub fn comment(object: &str, text: &Option<String>) -> Option<String> {
    text.as_ref()
        .map(|t| format!("COMMENT ON {object} IS {}", quote_literal(t)))
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn rename_rules() {
        let none = |_: &str| false;
        assert_eq!(renamed("t_pkey", "t", "t2", &none), "t2_pkey");
        assert_eq!(renamed("my_idx", "t", "t2", &none), "t2_my_idx");
        let taken = |n: &str| n == "t2_pkey" || n == "t2_pkey1";
        assert_eq!(renamed("t_pkey", "t", "t2", &taken), "t2_pkey2");
        let long = "x".repeat(70);
        let r = renamed("t_pkey", "t", &long, &none);
        assert_eq!(r.len(), 63);
        let r = renamed("t_pkey", "t", &long, &|n: &str| {
            n.len() == 63 && !n.ends_with('1')
        });
        assert!(r.ends_with('1') && r.len() <= 63, "{r}");
    }

    #[test]
    fn truncation_keeps_utf8() {
        let s = "é".repeat(40); // 80 bytes
        let t = truncate_name(&s);
        assert!(t.len() <= 63 && t.chars().all(|c| c == 'é'));
    }

    #[test]
    fn acl_rebuild() {
        let acl = vec![
            AclEntry {
                grantee: Some("own".into()),
                privilege: "SELECT".into(),
                grantable: false,
            },
            AclEntry {
                grantee: None,
                privilege: "SELECT".into(),
                grantable: false,
            },
            AclEntry {
                grantee: Some("gone".into()),
                privilege: "UPDATE".into(),
                grantable: true,
            },
            AclEntry {
                grantee: Some("r\"w".into()),
                privilege: "INSERT".into(),
                grantable: true,
            },
        ];
        let mut missing = vec![];
        let exists = |r: &str| r != "gone";
        let s = acl_statements(
            "TABLE \"s\".\"t\"",
            None,
            Some("own"),
            &acl,
            false,
            &exists,
            &mut missing,
        );
        assert_eq!(
            s,
            vec![
                "REVOKE ALL ON TABLE \"s\".\"t\" FROM PUBLIC",
                "REVOKE ALL ON TABLE \"s\".\"t\" FROM \"own\"",
                "GRANT SELECT ON TABLE \"s\".\"t\" TO \"own\"",
                "GRANT SELECT ON TABLE \"s\".\"t\" TO PUBLIC",
                "GRANT INSERT ON TABLE \"s\".\"t\" TO \"r\"\"w\" WITH GRANT OPTION",
            ]
        );
        assert_eq!(missing, vec!["gone"]);
        assert!(acl_statements(
            "TABLE x",
            None,
            Some("own"),
            &[],
            true,
            &exists,
            &mut missing
        )
        .is_empty());
        let col = acl_statements(
            "TABLE x",
            Some("c"),
            None,
            &acl[..1],
            false,
            &exists,
            &mut missing,
        );
        assert_eq!(col, vec!["GRANT SELECT (\"c\") ON TABLE x TO \"own\""]);
    }
}
