//! `database_create()`: a new database shaped like the source's (encoding,
//! locale, settings, comment), with pgclone installed, then `database()` run
//! inside it. CREATE DATABASE cannot run in the caller's transaction, so the
//! work goes through a session of this server's own (the loopback).

use crate::conn::conninfo::ConnInfo;
use crate::conn::{session_setup_sql, SourceConn};
use crate::error::{CloneError, Result};
use crate::options::{Options, Scope};
use crate::sqltext::{quote_ident, quote_literal};
use crate::target;

/// What the source says about its database.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DatabaseShape {
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    /// 'c' libc, 'i' icu
    pub provider: String,
    pub icu_locale: Option<String>,
    pub comment: Option<String>,
    pub owner: String,
    /// `name=value` entries of ALTER DATABASE ... SET
    pub settings: Vec<String>,
}

/// CREATE DATABASE and the statements that follow it. Pure.
pub fn render_database(name: &str, shape: &DatabaseShape, owner_exists: bool) -> Vec<String> {
    let q = quote_ident(name);
    let mut create = format!(
        "CREATE DATABASE {q} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
        quote_literal(&shape.encoding),
        quote_literal(&shape.collate),
        quote_literal(&shape.ctype)
    );
    if shape.provider == "i" {
        create.push_str(&format!(
            " LOCALE_PROVIDER icu ICU_LOCALE {}",
            quote_literal(shape.icu_locale.as_deref().unwrap_or("und"))
        ));
    }
    let mut out = vec![create];
    for s in &shape.settings {
        if let Some((k, v)) = s.split_once('=') {
            out.push(format!(
                "ALTER DATABASE {q} SET {} = {}",
                quote_ident(k),
                setting_value(k, v)
            ));
        }
    }
    if let Some(c) = &shape.comment {
        out.push(format!("COMMENT ON DATABASE {q} IS {}", quote_literal(c)));
    }
    if owner_exists {
        out.push(format!(
            "ALTER DATABASE {q} OWNER TO {}",
            quote_ident(&shape.owner)
        ));
    }
    out
}

/// Settings whose value is a list: each element is its own literal, or the
/// whole list would become one element (pg_dump treats the same set alike).
const LIST_SETTINGS: &[&str] = &[
    "local_preload_libraries",
    "search_path",
    "session_preload_libraries",
    "shared_preload_libraries",
    "temp_tablespaces",
    "unix_socket_directories",
];

pub fn setting_value(name: &str, value: &str) -> String {
    if !LIST_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) {
        return quote_literal(value);
    }
    let items: Vec<String> = value
        .split(',')
        .map(|e| {
            let e = e.trim();
            match e.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
                Some(inner) => inner.replace("\"\"", "\""),
                None => e.to_string(),
            }
        })
        .map(|e| quote_literal(&e))
        .collect();
    items.join(", ")
}

fn read_shape(src: &SourceConn) -> Result<DatabaseShape> {
    let v = src.server_version_num;
    let (provider, icu) = if v >= 170000 {
        ("d.datlocprovider::text", "d.datlocale")
    } else if v >= 150000 {
        ("d.datlocprovider::text", "d.daticulocale")
    } else {
        ("'c'::text", "NULL::text")
    };
    let row = src.query_one(
        &format!(
            "SELECT pg_encoding_to_char(d.encoding)::text, d.datcollate::text, d.datctype::text, {provider}, {icu}::text, \
                    shobj_description(d.oid, 'pg_database'), pg_get_userbyid(d.datdba)::text, \
                    ARRAY(SELECT unnest(s.setconfig) FROM pg_db_role_setting s \
                          WHERE s.setdatabase = d.oid AND s.setrole = 0) \
             FROM pg_database d WHERE d.datname = current_database()"
        ),
        &[],
    )?;
    Ok(DatabaseShape {
        encoding: row.get(0),
        collate: row.get(1),
        ctype: row.get(2),
        provider: row.get(3),
        icu_locale: row.get(4),
        comment: row.get(5),
        owner: row.get(6),
        settings: row.get(7),
    })
}

/// The conninfo travels to the new database as a statement parameter, and
/// the server logs parameters of statements it logs. Switch that off for
/// this session; a role not allowed to do so gets an error instead of a
/// password in the log.
fn keep_out_of_the_log(conn: &SourceConn) -> Result<()> {
    for setting in [
        "log_parameter_max_length = 0",
        "log_parameter_max_length_on_error = 0",
        "log_statement = 'none'",
        "log_min_duration_statement = -1",
        "log_min_duration_sample = -1",
    ] {
        // Each may be refused to a role that is not a superuser; what counts
        // is the state afterwards.
        let _ = conn.batch(&format!("SET {setting}"));
    }
    let would_log: bool = conn
        .query_one(
            "SELECT current_setting('log_parameter_max_length') <> '0' \
               AND (current_setting('log_statement') = 'all' \
                    OR current_setting('log_min_duration_statement') <> '-1' \
                    OR current_setting('log_min_duration_sample') <> '-1')",
            &[],
        )?
        .get(0);
    if would_log {
        return Err(CloneError::Permission(
            "database_create would write the connection string into the server log; \
             a superuser (or a role granted SET on log_parameter_max_length) must call it"
                .into(),
        ));
    }
    Ok(())
}

pub fn create_and_clone(
    conninfo: &str,
    target_db: &str,
    include_data: bool,
    options_text: Option<&str>,
) -> Result<String> {
    let opts = Options::parse(options_text)?;
    opts.check_scope(Scope::Database)?;
    if target_db.is_empty() {
        return Err(CloneError::InvalidOptions(
            "the target database name must not be empty".into(),
        ));
    }
    let info = target::resolve_conninfo(conninfo)?;
    let src = target::connect_source(conninfo, &session_setup_sql("UTF8", "1min"))?;
    let shape = read_shape(&src)?;
    drop(src);

    // The loopback: this server, through its own socket, as the session user.
    let local = target::local_defaults();
    let mut lb = ConnInfo::parse("")?;
    match &local.socket_dir {
        Some(d) => lb.set("host", d),
        None => lb.set("host", "127.0.0.1"),
    }
    lb.set("port", &local.port.to_string());
    lb.set("user", &local.user);
    lb.set("dbname", &target::current_database());
    lb.set("application_name", "pgclone database_create");
    let loopback = SourceConn::connect_local(&lb, "").map_err(|e| {
        CloneError::Connect(format!(
            "database_create needs a session of its own on this server (through {}, as \"{}\"): {e}",
            local.socket_dir.as_deref().unwrap_or("127.0.0.1"),
            local.user
        ))
    })?;
    // The loopback logs in as the session user; it acts as the current user
    // (a SECURITY DEFINER function calling this must not reach the session
    // user's rights through it).
    let act_as = format!("SET ROLE {}", quote_ident(&target::current_role()));
    loopback.batch(&act_as)?;
    let exists: bool = loopback
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&target_db],
        )?
        .get(0);
    if exists {
        return Err(CloneError::AlreadyExists(format!(
            "database {}",
            quote_ident(target_db)
        )));
    }
    let owner_exists = !target::existing_roles(std::slice::from_ref(&shape.owner)).is_empty();
    for sql in render_database(target_db, &shape, owner_exists) {
        loopback.batch(&sql)?;
    }
    let result = (|| -> Result<String> {
        lb.set("dbname", target_db);
        let inside = SourceConn::connect_local(&lb, "")?;
        inside.batch("CREATE EXTENSION IF NOT EXISTS pgclone")?;
        inside.batch(&act_as)?;
        keep_out_of_the_log(&inside)?;
        let row = inside.query_one(
            "SELECT pgclone.database($1, $2, $3)",
            &[&conninfo, &include_data, &options_text],
        )?;
        Ok(row.get::<_, String>(0))
    })();
    match result {
        Ok(summary) => Ok(format!(
            "database {} created ({}, {}); {summary}",
            quote_ident(target_db),
            shape.encoding,
            shape.collate
        )),
        Err(e) => {
            // Leave nothing half-made behind.
            let _ = loopback.batch(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(target_db)
            ));
            Err(e.scrub(info.password()))
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn database_statements() {
        let shape = DatabaseShape {
            encoding: "LATIN1".into(),
            collate: "C".into(),
            ctype: "C".into(),
            provider: "c".into(),
            icu_locale: None,
            comment: Some("it's prod".into()),
            owner: "app".into(),
            settings: vec!["work_mem=8MB".into(), "search_path=app, public".into()],
        };
        let s = render_database("new db", &shape, true);
        assert_eq!(
            s,
            vec![
                "CREATE DATABASE \"new db\" TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'",
                "ALTER DATABASE \"new db\" SET \"work_mem\" = '8MB'",
                "ALTER DATABASE \"new db\" SET \"search_path\" = 'app', 'public'",
                "COMMENT ON DATABASE \"new db\" IS 'it''s prod'",
                "ALTER DATABASE \"new db\" OWNER TO \"app\"",
            ]
        );
        let icu = DatabaseShape {
            provider: "i".into(),
            icu_locale: Some("de-DE".into()),
            ..shape
        };
        assert!(render_database("d", &icu, false)[0]
            .ends_with("LOCALE_PROVIDER icu ICU_LOCALE 'de-DE'"));
        assert_eq!(
            setting_value("search_path", "\"$user\", \"My Schema\", public"),
            "'$user', 'My Schema', 'public'"
        );
        assert_eq!(setting_value("work_mem", "8MB"), "'8MB'");
    }
}
