//! The local (target) server, seen from inside the calling backend: catalog
//! look-ups and statements through SPI, in the caller's transaction.

use crate::conn::conninfo::ConnInfo;
use crate::conn::{with_local_defaults, LocalDefaults};
use crate::error::{CloneError, Result};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::collections::HashSet;
use std::ffi::{CStr, CString};

pub const OPERATOR_ROLE: &str = "pgclone_operator";

/// Superusers and members of pgclone_operator only. EXECUTE is already revoked
/// from PUBLIC; this holds even if someone grants it back.
pub fn check_caller() -> Result<()> {
    // SAFETY: plain catalog look-ups on the backend thread.
    let ok = unsafe {
        pg_sys::superuser() || {
            let name = CString::new(OPERATOR_ROLE).unwrap_or_default();
            let role = pg_sys::get_role_oid(name.as_ptr(), true);
            role != pg_sys::InvalidOid && pg_sys::has_privs_of_role(pg_sys::GetUserId(), role)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(CloneError::Permission(format!(
            "only superusers and members of {OPERATOR_ROLE} may use pgclone"
        )))
    }
}

fn is_superuser() -> bool {
    // SAFETY: reads the current user's flag.
    unsafe { pg_sys::superuser() }
}

fn setting(name: &str) -> Option<String> {
    let c = CString::new(name).ok()?;
    // SAFETY: GetConfigOption returns a pointer into GUC storage or NULL.
    unsafe {
        let p = pg_sys::GetConfigOption(c.as_ptr(), true, false);
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    }
}

/// The role acting now (current_user).
pub fn current_role() -> String {
    // SAFETY: the current user always has a name.
    unsafe {
        let p = pg_sys::GetUserNameFromId(pg_sys::GetUserId(), false);
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

pub fn local_defaults() -> LocalDefaults {
    let socket_dir = setting("unix_socket_directories").and_then(|s| {
        s.split(',')
            .map(|d| d.trim().to_string())
            .find(|d| d.starts_with('/'))
    });
    let port = setting("port").and_then(|p| p.parse().ok()).unwrap_or(5432);
    // SAFETY: the session user always has a name.
    let user = unsafe {
        let p = pg_sys::GetUserNameFromId(pg_sys::GetSessionUserId(), false);
        CStr::from_ptr(p).to_string_lossy().into_owned()
    };
    LocalDefaults {
        socket_dir,
        port,
        user,
    }
}

/// Parse the caller's conninfo and fill it in for this server. A caller who is
/// not a superuser must authenticate with a password over TCP (the server's
/// own OS identity, through peer authentication on the socket, is not lent
/// out), and may name no file on this server's disk, except under the
/// directory `pgclone.ssl_dir` a superuser set aside for certificates.
pub fn resolve_conninfo(text: &str) -> Result<ConnInfo> {
    let info = ConnInfo::parse(text)?;
    let full = with_local_defaults(&info, &local_defaults());
    if !is_superuser() {
        let socket = full.hosts().iter().any(|h| h.starts_with('/'));
        if full.password().is_none_or(|p| p.is_empty()) || socket {
            return Err(CloneError::Permission(
                "a caller who is not a superuser must give a password and a TCP host in the conninfo".into(),
            ));
        }
        for key in ["sslrootcert", "sslcert", "sslkey"] {
            let Some(path) = full.get(key) else { continue };
            if key == "sslrootcert" && path == "system" {
                continue;
            }
            if !file_allowed(path, crate::jobs::ssl_dir().as_deref()) {
                return Err(CloneError::Permission(format!(
                    "{key}: only superusers may name files on this server{}",
                    match crate::jobs::ssl_dir() {
                        Some(d) => format!(" outside pgclone.ssl_dir ({d})"),
                        None => String::new(),
                    }
                )));
            }
        }
    }
    Ok(full)
}

/// Whether a non-superuser may name `path`: only a plain absolute path
/// inside `dir`, also once symbolic links are resolved. Nothing is said
/// about files outside it, so no caller learns what exists there.
pub fn file_allowed(path: &str, dir: Option<&str>) -> bool {
    let Some(dir) = dir.filter(|d| d.starts_with('/')) else {
        return false;
    };
    let inside = |p: &std::path::Path, d: &std::path::Path| {
        p.is_absolute()
            && p.starts_with(d)
            && p != d
            && !p
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
    };
    let (p, d) = (std::path::Path::new(path), std::path::Path::new(dir));
    if !inside(p, d) {
        return false;
    }
    match (std::fs::canonicalize(p), std::fs::canonicalize(d)) {
        (Ok(rp), Ok(rd)) => inside(&rp, &rd),
        // Missing inside the directory: the TLS layer says so, which tells
        // nothing about the rest of the disk.
        _ => true,
    }
}

/// Connect to the source named by the caller's conninfo, under the rules of
/// `resolve_conninfo`, and hold a non-superuser to them once connected: a
/// server that let us in without asking for the password (`trust`) would
/// lend its own identity, as dblink and postgres_fdw also refuse.
pub fn connect_source(text: &str, setup_sql: &str) -> Result<crate::conn::SourceConn> {
    let info = resolve_conninfo(text)?;
    let src = crate::conn::SourceConn::connect(&info, setup_sql)?;
    if !is_superuser() && !src.password_used {
        return Err(CloneError::Permission(
            "the source server did not ask for the password (trust or peer authentication);              a caller who is not a superuser may only connect with a password the server checks"
                .into(),
        ));
    }
    Ok(src)
}

pub fn server_version_num() -> i32 {
    setting("server_version_num")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Settings for the statements pgclone runs locally, undone when the scope
/// ends (and by transaction abort on error).
pub struct GucScope(i32);

impl GucScope {
    pub fn enter(settings: &[(&str, &str)]) -> GucScope {
        // SAFETY: the same calls a function with SET clauses makes.
        unsafe {
            let level = pg_sys::NewGUCNestLevel();
            for (k, v) in settings {
                let (k, v) = (
                    CString::new(*k).unwrap_or_default(),
                    CString::new(*v).unwrap_or_default(),
                );
                pg_sys::set_config_option(
                    k.as_ptr(),
                    v.as_ptr(),
                    pg_sys::GucContext::PGC_USERSET,
                    pg_sys::GucSource::PGC_S_SESSION,
                    pg_sys::GucAction::GUC_ACTION_SAVE,
                    true,
                    0,
                    false,
                );
            }
            GucScope(level)
        }
    }
}

impl Drop for GucScope {
    fn drop(&mut self) {
        // On an error, transaction abort restores the settings; touching the
        // GUC stack while an ERROR unwinds would be wrong.
        if !std::thread::panicking() {
            // SAFETY: pops the level pushed in enter().
            unsafe { pg_sys::AtEOXact_GUC(true, self.0) }
        }
    }
}

pub fn run(sql: &str) {
    if let Err(e) = Spi::run(sql) {
        crate::error_report::raise(CloneError::Internal(format!("{e}: {sql}")));
    }
}

pub fn schema_exists(schema: &str) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
        &[schema.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// (oid, relkind) of a relation, if it exists.
pub fn relation(schema: &str, name: &str) -> Option<(pg_sys::Oid, String)> {
    Spi::connect(|c| {
        let rows = c.select(
            "SELECT c.oid, c.relkind::text FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            None,
            &[schema.into(), name.into()],
        )?;
        let mut out = None;
        for row in rows {
            let oid: Option<pg_sys::Oid> = row.get(1)?;
            let kind: Option<String> = row.get(2)?;
            out = oid.zip(kind);
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .ok()
    .flatten()
}

pub fn relation_names(schema: &str) -> HashSet<String> {
    name_set(
        "SELECT c.relname::text FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
        schema,
    )
}

/// The first column of a one-parameter query, as a set of names.
fn name_set(sql: &str, arg: &str) -> HashSet<String> {
    Spi::connect(|c| {
        let rows = c.select(sql, None, &[arg.into()])?;
        let mut out = HashSet::new();
        for row in rows {
            if let Some(n) = row.get::<String>(1)? {
                out.insert(n);
            }
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_default()
}

pub fn existing_roles(names: &[String]) -> HashSet<String> {
    let mut out = HashSet::new();
    for n in names {
        let found = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)",
            &[n.as_str().into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false);
        if found {
            out.insert(n.clone());
        }
    }
    out
}

/// Index and owned-sequence names of a table, which share the schema's
/// namespace and must move with it when it is set aside.
pub fn dependent_relation_names(relid: pg_sys::Oid) -> Vec<(String, String)> {
    Spi::connect(|c| {
        let rows = c.select(
            "SELECT ic.relname::text, 'INDEX' FROM pg_catalog.pg_index i \
               JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = $1 \
             UNION ALL \
             SELECT s.relname::text, 'SEQUENCE' FROM pg_catalog.pg_depend d \
               JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
              WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refobjid = $1 AND d.deptype IN ('a', 'i')",
            None,
            &[relid.into()],
        )?;
        let mut out = Vec::new();
        for row in rows {
            if let (Some(n), Some(k)) = (row.get::<String>(1)?, row.get::<String>(2)?) {
                out.push((n, k));
            }
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_default()
}

pub fn timestamp_tag() -> String {
    Spi::get_one::<String>("SELECT to_char(clock_timestamp(), 'YYYYMMDD_HH24MISS')")
        .ok()
        .flatten()
        .unwrap_or_else(|| "old".into())
}

/// Whether the calling role may make `role` the owner of a new object.
pub fn can_own(role: &str) -> bool {
    if is_superuser() {
        return true;
    }
    let Ok(name) = CString::new(role) else {
        return false;
    };
    // SAFETY: catalog look-ups on the backend thread.
    unsafe {
        let oid = pg_sys::get_role_oid(name.as_ptr(), true);
        oid != pg_sys::InvalidOid && pg_sys::has_privs_of_role(pg_sys::GetUserId(), oid)
    }
}

/// Type and routine names in a schema (for the schema-level conflict check).
pub fn type_and_routine_names(schema: &str) -> HashSet<String> {
    name_set(
        "SELECT t.typname::text FROM pg_catalog.pg_type t \
           JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = $1 \
         UNION SELECT p.proname::text FROM pg_catalog.pg_proc p \
           JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1",
        schema,
    )
}

/// Write a piece of a large object.
pub fn lo_put(oid: u32, offset: i64, data: &[u8]) {
    let r = Spi::run_with_args(
        "SELECT pg_catalog.lo_put($1, $2, $3)",
        &[pg_sys::Oid::from(oid).into(), offset.into(), data.into()],
    );
    if let Err(e) = r {
        crate::error_report::raise(CloneError::Internal(format!(
            "writing large object {oid}: {e}"
        )));
    }
}

pub fn current_database() -> String {
    // SAFETY: MyDatabaseId is set in every backend that runs SQL.
    unsafe {
        let p = pg_sys::get_database_name(pg_sys::MyDatabaseId);
        if p.is_null() {
            return String::new();
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

pub fn database_encoding() -> String {
    // SAFETY: returns a static string.
    unsafe {
        CStr::from_ptr(pg_sys::GetDatabaseEncodingName())
            .to_string_lossy()
            .into_owned()
    }
}

/// The extension a schema belongs to, if any: the schema an installed
/// extension's control file names (pgclone's own `pgclone`), or a schema
/// that is itself a member of an extension. Nothing may be written into it,
/// nor may it be dropped or renamed.
pub fn owning_extension(schema: &str) -> Option<String> {
    let found = Spi::get_one_with_args::<String>(
        // pgclone's own schema, whatever its control file says today; the
        // schema a control file pins for an installed extension (any of its
        // versions: the installed one's script may be gone after a package
        // upgrade); a schema that is itself a member of an extension.
        "SELECT (SELECT x.extname::text FROM pg_catalog.pg_extension x \
           JOIN pg_catalog.pg_namespace n ON n.oid = x.extnamespace \
          WHERE n.nspname = $1 AND (x.extname = 'pgclone' OR NOT x.extrelocatable AND EXISTS ( \
                SELECT 1 FROM pg_catalog.pg_available_extension_versions v \
                 WHERE v.name = x.extname AND v.schema = n.nspname)) \
         UNION ALL \
         SELECT x.extname::text FROM pg_catalog.pg_depend d \
           JOIN pg_catalog.pg_namespace n ON n.oid = d.objid \
           JOIN pg_catalog.pg_extension x ON x.oid = d.refobjid \
          WHERE d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND d.deptype = 'e' AND n.nspname = $1 \
         LIMIT 1)",
        &[schema.into()],
    );
    match found {
        Ok(v) => v,
        // Could not tell: refuse, rather than write where we must not.
        Err(_) => Some("(unknown)".into()),
    }
}

/// Extensions installed in a schema (their objects would go with a DROP
/// SCHEMA ... CASCADE, or move with a rename).
pub fn extensions_in(schema: &str) -> Vec<String> {
    let names = name_set(
        "SELECT x.extname::text FROM pg_catalog.pg_extension x \
           JOIN pg_catalog.pg_namespace n ON n.oid = x.extnamespace WHERE n.nspname = $1",
        schema,
    );
    let mut v: Vec<String> = names.into_iter().collect();
    v.sort();
    v
}

/// Refuse to write into a schema that belongs to an extension.
pub fn guard_write(schema: &str) -> Result<()> {
    match owning_extension(schema) {
        Some(ext) => Err(CloneError::Permission(format!(
            "schema {} belongs to extension {} on the target: pgclone does not write into it \
             (leave it out, or clone it under another name)",
            crate::sqltext::quote_ident(schema),
            crate::sqltext::quote_ident(&ext)
        ))),
        None => Ok(()),
    }
}

/// Refuse to drop or rename a schema that belongs to an extension or holds one.
pub fn guard_drop_schema(schema: &str) -> Result<()> {
    guard_write(schema)?;
    let exts = extensions_in(schema);
    if exts.is_empty() {
        return Ok(());
    }
    Err(CloneError::Permission(format!(
        "schema {} holds the extension(s) {} on the target: pgclone does not drop or rename it",
        crate::sqltext::quote_ident(schema),
        exts.join(", ")
    )))
}

/// The extension a relation is a member of, if any.
pub fn relation_extension(relid: pg_sys::Oid) -> Option<String> {
    Spi::get_one_with_args::<String>(
        "SELECT (SELECT x.extname::text FROM pg_catalog.pg_depend d \
                   JOIN pg_catalog.pg_extension x ON x.oid = d.refobjid \
                  WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = $1 \
                    AND d.deptype = 'e' LIMIT 1)",
        &[relid.into()],
    )
    // Could not tell: refuse, rather than drop what we must not.
    .unwrap_or_else(|_| Some("(unknown)".into()))
}

/// Run `f` as `role` in a security-restricted context (as PostgreSQL itself
/// runs index builds and materialized view refreshes as their owner), so
/// the code of a cloned object runs with its owner's rights, never the
/// caller's. `None` runs `f` as the caller. Only a role the current user
/// may act as is taken: a superuser, or a member with its privileges.
pub fn as_role<R>(role: Option<&str>, f: impl FnOnce() -> R) -> Result<R> {
    let Some(role) = role else { return Ok(f()) };
    let name = CString::new(role)
        .map_err(|_| CloneError::Internal(format!("role name {role:?} has a NUL")))?;
    // SAFETY: catalog look-ups on the backend thread.
    let (oid, allowed) = unsafe {
        let oid = pg_sys::get_role_oid(name.as_ptr(), true);
        let allowed = oid != pg_sys::InvalidOid
            && (pg_sys::superuser() || pg_sys::has_privs_of_role(pg_sys::GetUserId(), oid));
        (oid, allowed)
    };
    if !allowed {
        return Err(CloneError::Permission(format!(
            "the clone would run as role {}, which the current role may not act as",
            crate::sqltext::quote_ident(role)
        )));
    }
    /// Puts the user back, and undoes every setting the code run meanwhile
    /// changed (as PostgreSQL does around an index build): code from the
    /// source must not leave a search_path behind for what runs next.
    struct Restore(pg_sys::Oid, i32, i32);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: pops the GUC level pushed below and puts back what
            // GetUserIdAndSecContext returned. While an ERROR unwinds, the
            // transaction's abort restores the settings itself.
            unsafe {
                if !std::thread::panicking() {
                    pg_sys::AtEOXact_GUC(false, self.2);
                }
                pg_sys::SetUserIdAndSecContext(self.0, self.1)
            }
        }
    }
    let mut uid = pg_sys::InvalidOid;
    let mut ctx: i32 = 0;
    // SAFETY: the switch PostgreSQL makes for a security-restricted operation.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut uid, &mut ctx);
        pg_sys::SetUserIdAndSecContext(
            oid,
            ctx | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
    }
    // SAFETY: a GUC nest level popped by Restore.
    let level = unsafe { pg_sys::NewGUCNestLevel() };
    let _restore = Restore(uid, ctx, level);
    let _path = GucScope::enter(&[("search_path", "pg_catalog, pg_temp")]);
    Ok(f())
}

/// Serialise the creation of a schema of this name among pgclone sessions
/// (until the end of the transaction): two clones making the same missing
/// schema at once would otherwise meet a unique violation in pg_namespace.
pub fn lock_schema_name(schema: &str) {
    // The first key marks the lock as pgclone's; the second is the name's.
    let r = Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock(1885823843, pg_catalog.hashtext($1))",
        &[schema.into()],
    );
    if let Err(e) = r {
        crate::error_report::raise(CloneError::Internal(format!("schema lock: {e}")));
    }
}

/// Extensions installed in this database.
pub fn installed_extensions() -> HashSet<String> {
    Spi::connect(|c| {
        let rows = c.select(
            "SELECT extname::text FROM pg_catalog.pg_extension",
            None,
            &[],
        )?;
        let mut out = HashSet::new();
        for row in rows {
            if let Some(n) = row.get::<String>(1)? {
                out.insert(n);
            }
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_default()
}

/// The versions this server's packages offer for each extension named:
/// (default version, every version). Absent: no package here.
pub fn available_extensions(
    names: &[String],
) -> std::collections::HashMap<String, (String, Vec<String>)> {
    Spi::connect(|c| {
        let rows = c.select(
            "SELECT a.name::text, a.default_version::text, \
                    pg_catalog.array_agg(v.version::text ORDER BY v.version) \
             FROM pg_catalog.pg_available_extensions a \
             JOIN pg_catalog.pg_available_extension_versions v ON v.name = a.name \
             WHERE a.name = ANY($1) GROUP BY 1, 2",
            None,
            &[names.to_vec().into()],
        )?;
        let mut out = std::collections::HashMap::new();
        for row in rows {
            if let (Some(n), Some(d)) = (row.get::<String>(1)?, row.get::<String>(2)?) {
                out.insert(n, (d, row.get::<Vec<String>>(3)?.unwrap_or_default()));
            }
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_default()
}

thread_local! {
    /// The caller's statement text with the password hidden, kept alive for
    /// as long as the server may print it.
    static SHOWN: std::cell::RefCell<Option<CString>> = const { std::cell::RefCell::new(None) };
}

/// Hide the conninfo's password in what the server shows of the caller's
/// statement: pg_stat_activity.query while it runs, and the STATEMENT line
/// of the log if it fails. (A caller who passes the conninfo as a query
/// parameter never has it in the text at all; log_statement logs the text
/// before pgclone runs, so it can hide nothing there.)
pub fn conceal_statement(conninfo: &str) {
    let Ok(info) = ConnInfo::parse(conninfo) else {
        return;
    };
    let Some(password) = info
        .password()
        .filter(|p| !p.is_empty())
        .map(str::to_string)
    else {
        return;
    };
    // SAFETY: the text of the statement being run, or NULL.
    let text = unsafe { pg_sys::debug_query_string };
    if text.is_null() {
        return;
    }
    // SAFETY: a NUL-terminated string owned by the server for this statement.
    let query = unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned();
    let redacted = info.redacted();
    let mut hidden = query.clone();
    for form in [conninfo.to_string(), conninfo.replace('\'', "''")] {
        hidden = hidden.replace(&form, &redacted);
    }
    for form in [password.clone(), password.replace('\'', "''")] {
        hidden = crate::error::scrub_text(&hidden, &form);
    }
    if hidden == query {
        return;
    }
    let Ok(c) = CString::new(hidden) else { return };
    SHOWN.with(|s| {
        let mut s = s.borrow_mut();
        *s = Some(c);
        if let Some(c) = s.as_ref() {
            // SAFETY: `c` lives in SHOWN until the next concealed statement;
            // the server resets debug_query_string at its next statement.
            unsafe {
                pg_sys::debug_query_string = c.as_ptr();
                pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_RUNNING, c.as_ptr());
            }
        }
    });
}
