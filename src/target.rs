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
/// not a superuser must authenticate with a password over TCP: the server's
/// own OS identity (peer authentication on the socket) must not be lent out.
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
    }
    Ok(full)
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
