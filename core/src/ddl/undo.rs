//! How to take back what a job made, for `pgclone.discard()`. Pure.
//!
//! A job commits its pre-data before its data, so a failed or cancelled job
//! leaves objects behind; everything after the data (foreign keys, grants,
//! comments, large objects, metadata of schemas that existed before) is one
//! transaction with the job's completion and never outlives a failure. So
//! what must be undone is what the pre-data made: schemas the job created
//! go whole, objects it created in schemas that were there before go one by
//! one, and a schema it set aside (`conflict` rename or replace) comes back.
//! The statements run newest first.

use crate::sqltext::{qualified, quote_ident};

/// One thing the pre-data of a job changed on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Made {
    /// A schema that did not exist before: everything in it goes with it.
    Schema(String),
    /// An existing schema renamed out of the way: (its name, the name it has now).
    SetAside(String, String),
    Extension(String),
    /// A relation (r, p, v, m, S) in a schema that existed before.
    Relation {
        kind: String,
        schema: String,
        name: String,
    },
    /// A type in a schema that existed before; `domain` says which DROP.
    Type {
        domain: bool,
        schema: String,
        name: String,
    },
    /// A routine: kind f, p, a or w, with its identity arguments.
    Routine {
        kind: String,
        schema: String,
        name: String,
        args: String,
    },
    Collation(String, String),
    /// An operator, by its signature `schema.op(left, right)`.
    Operator(String),
    TsDictionary(String, String),
    TsConfiguration(String, String),
    Cast(String, String),
    /// A large object (made in the data stage, with its contents).
    LargeObject(u32),
    /// A statement that takes back one change (renaming a table set aside
    /// back to its name).
    Undo(String),
}

/// The statement that takes `m` back. `IF EXISTS` throughout: a job may
/// have failed before it made the thing. `CASCADE` takes along what depends
/// on it, which the job made too (nothing that existed before the job can
/// depend on something the job created).
pub fn undo_sql(m: &Made) -> String {
    match m {
        Made::Schema(s) => format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(s)),
        Made::SetAside(name, aside) => format!(
            "ALTER SCHEMA {} RENAME TO {}",
            quote_ident(aside),
            quote_ident(name)
        ),
        Made::Extension(x) => format!("DROP EXTENSION IF EXISTS {} CASCADE", quote_ident(x)),
        Made::Relation { kind, schema, name } => {
            let word = match kind.as_str() {
                "v" => "VIEW",
                "m" => "MATERIALIZED VIEW",
                "S" => "SEQUENCE",
                _ => "TABLE",
            };
            format!("DROP {word} IF EXISTS {} CASCADE", qualified(schema, name))
        }
        Made::Type {
            domain,
            schema,
            name,
        } => format!(
            "DROP {} IF EXISTS {} CASCADE",
            if *domain { "DOMAIN" } else { "TYPE" },
            qualified(schema, name)
        ),
        Made::Routine {
            kind,
            schema,
            name,
            args,
        } => {
            let word = match kind.as_str() {
                "p" => "PROCEDURE",
                "a" => "AGGREGATE",
                _ => "FUNCTION",
            };
            format!(
                "DROP {word} IF EXISTS {}({args}) CASCADE",
                qualified(schema, name)
            )
        }
        Made::Collation(s, n) => format!("DROP COLLATION IF EXISTS {} CASCADE", qualified(s, n)),
        Made::Operator(sig) => format!("DROP OPERATOR IF EXISTS {sig} CASCADE"),
        Made::TsDictionary(s, n) => format!(
            "DROP TEXT SEARCH DICTIONARY IF EXISTS {} CASCADE",
            qualified(s, n)
        ),
        Made::TsConfiguration(s, n) => format!(
            "DROP TEXT SEARCH CONFIGURATION IF EXISTS {} CASCADE",
            qualified(s, n)
        ),
        Made::Cast(from, to) => format!("DROP CAST IF EXISTS ({from} AS {to}) CASCADE"),
        Made::Undo(sql) => sql.clone(),
        Made::LargeObject(oid) => format!(
            "SELECT pg_catalog.lo_unlink(m.oid) FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = {oid}"
        ),
    }
}

/// The undo statements of a job, in the order to record them (they run in
/// reverse): what was set aside first, so it comes back last, once the new
/// schema of its name is gone.
pub fn undo_list(made: &[Made]) -> Vec<String> {
    let (aside, rest): (Vec<&Made>, Vec<&Made>) = made
        .iter()
        .partition(|m| matches!(m, Made::SetAside(..) | Made::Undo(..)));
    aside.into_iter().chain(rest).map(undo_sql).collect()
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn statements_for_each_kind() {
        assert_eq!(
            undo_sql(&Made::Schema("my s".into())),
            "DROP SCHEMA IF EXISTS \"my s\" CASCADE"
        );
        assert_eq!(
            undo_sql(&Made::SetAside("app".into(), "app_old_1".into())),
            "ALTER SCHEMA \"app_old_1\" RENAME TO \"app\""
        );
        assert_eq!(
            undo_sql(&Made::Relation {
                kind: "m".into(),
                schema: "public".into(),
                name: "mv".into()
            }),
            "DROP MATERIALIZED VIEW IF EXISTS \"public\".\"mv\" CASCADE"
        );
        assert_eq!(
            undo_sql(&Made::Type {
                domain: true,
                schema: "public".into(),
                name: "d".into()
            }),
            "DROP DOMAIN IF EXISTS \"public\".\"d\" CASCADE"
        );
        assert_eq!(
            undo_sql(&Made::Routine {
                kind: "a".into(),
                schema: "public".into(),
                name: "agg".into(),
                args: "integer".into()
            }),
            "DROP AGGREGATE IF EXISTS \"public\".\"agg\"(integer) CASCADE"
        );
        assert_eq!(
            undo_sql(&Made::Cast("public.a".into(), "text".into())),
            "DROP CAST IF EXISTS (public.a AS text) CASCADE"
        );
    }

    #[test]
    fn set_aside_schemas_come_back_last() {
        let list = undo_list(&[
            Made::Schema("app".into()),
            Made::SetAside("app".into(), "app_old".into()),
        ]);
        // recorded first, run last
        assert!(list[0].starts_with("ALTER SCHEMA \"app_old\" RENAME"));
        assert!(list[1].starts_with("DROP SCHEMA IF EXISTS \"app\""));
    }
}
