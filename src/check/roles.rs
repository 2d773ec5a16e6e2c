//! `clone_roles`, and the `"roles": true` option of a clone: the source's
//! roles made or updated here, as the calling role (never with more
//! rights than it has), in the caller's transaction.

use crate::catalog;
use crate::conn::SourceConn;
use crate::error::{CloneError, Result};
use crate::target;
use pgclone_core::catalog::objects::{default_acls_sql, DefaultAcl};
use pgclone_core::check::roles::{
    grant_statements, grants_sql, membership_statement, reserved, role_statements, select,
    setting_statement, split_names, Grants, Membership, RoleDef, RoleSetting, Target, EXISTS_SQL,
};
use pgclone_core::ddl::objects::{default_acl, Roles};
use pgrx::prelude::*;
use std::collections::HashSet;

fn roles_sql(readable: bool) -> String {
    let password = if readable {
        "a.rolpassword, true"
    } else {
        "NULL::text, false"
    };
    let from = if readable {
        "pg_catalog.pg_authid a"
    } else {
        "pg_catalog.pg_roles a"
    };
    format!(
        "SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object( \
           'name', a.rolname, 'superuser', a.rolsuper, 'inherit', a.rolinherit, \
           'createrole', a.rolcreaterole, 'createdb', a.rolcreatedb, 'login', a.rolcanlogin, \
           'replication', a.rolreplication, 'bypassrls', a.rolbypassrls, 'connlimit', a.rolconnlimit, \
           'valid_until', a.rolvaliduntil::text, 'password', p.password, 'password_known', p.known, \
           'bootstrap', a.oid = 10) ORDER BY a.rolname), '[]')::text \
         FROM {from}, LATERAL (SELECT {password}) AS p(password, known)"
    )
}

fn memberships_sql(version: i32) -> String {
    let options = if version >= 160000 {
        "m.inherit_option, m.set_option"
    } else {
        "NULL::bool, NULL::bool"
    };
    format!(
        "SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object( \
           'role', r.rolname, 'member', u.rolname, 'admin', m.admin_option, \
           'inherit', o.inherit, 'set', o.set) ORDER BY r.rolname, u.rolname), '[]')::text \
         FROM pg_catalog.pg_auth_members m \
         JOIN pg_catalog.pg_roles r ON r.oid = m.roleid \
         JOIN pg_catalog.pg_roles u ON u.oid = m.member, \
         LATERAL (SELECT {options}) AS o(inherit, set)"
    )
}

const SETTINGS_SQL: &str = "\
    SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object( \
      'role', r.rolname, \
      'in_database', s.setdatabase = d.oid, \
      'elsewhere', s.setdatabase NOT IN (0, d.oid), \
      'config', s.setconfig)), '[]')::text \
    FROM pg_catalog.pg_db_role_setting s \
    JOIN pg_catalog.pg_roles r ON r.oid = s.setrole, \
    (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) d";

/// What a clone of roles did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub created: usize,
    pub updated: usize,
    pub memberships: usize,
    pub settings: usize,
    pub grants: usize,
    /// Roles whose password the source would not show.
    pub no_password: Vec<String>,
    pub notices: Vec<String>,
}

/// Run one statement that may carry a password hash. Its error names the
/// role and keeps the server's SQLSTATE and message, never the statement:
/// SPI puts the statement's text in the error's context, which would carry
/// the hash to the client and the log.
fn exec(sql: &str, what: &str) -> Result<()> {
    use pgrx::pg_sys::panic::CaughtError;
    let failed = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        Spi::run(sql)
            .err()
            .map(|e| ("XX000".to_string(), e.to_string()))
    }))
    .catch_others(|e| {
        let r = match &e {
            CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
            CaughtError::RustPanic { ereport, .. } => ereport,
        };
        Some((
            crate::error::int_to_sqlstate(r.sql_error_code() as i32),
            r.message().to_string(),
        ))
    })
    .execute();
    match failed {
        None => Ok(()),
        Some((sqlstate, message)) => Err(CloneError::Local {
            sqlstate,
            message: format!("{what}: {message}"),
        }),
    }
}

fn local_bool(sql: &str) -> bool {
    Spi::get_one::<bool>(sql).ok().flatten().unwrap_or(false)
}

/// Roles a source may never change or hand out here: this server's
/// superusers (the bootstrap one included: a source that set their
/// password or settings would own the server), and the calling role.
fn untouchable() -> HashSet<String> {
    let mut out: HashSet<String> = Spi::connect(|c| {
        let mut set = HashSet::new();
        for r in c.select(
            // Without SUPERUSER the caller cannot alter REPLICATION or
            // BYPASSRLS roles either: leave them as they are, cleanly.
            "SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolsuper OR oid = 10 \
               OR ((rolreplication OR rolbypassrls) AND NOT (SELECT rolsuper FROM pg_catalog.pg_roles \
                                                           WHERE rolname = current_user))",
            None,
            &[],
        )? {
            if let Some(n) = r.get::<String>(1)? {
                set.insert(n);
            }
        }
        Ok::<_, pgrx::spi::SpiError>(set)
    })
    .unwrap_or_default();
    out.insert(target::current_role());
    out
}

/// Make or update the source's roles `wanted` (None: all), with their
/// memberships and settings. Grants are the caller's business.
pub fn clone_from(src: &SourceConn, wanted: Option<&[String]>) -> Result<(Outcome, Vec<String>)> {
    if !local_bool(
        "SELECT rolsuper OR rolcreaterole FROM pg_catalog.pg_roles WHERE rolname = current_user",
    ) {
        return Err(CloneError::Permission(
            "cloning roles creates and alters roles here: it needs a superuser or a role with CREATEROLE"
                .into(),
        ));
    }
    let superuser =
        local_bool("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user");
    let readable: bool = src
        .query_one(
            "SELECT pg_catalog.has_table_privilege('pg_catalog.pg_authid', 'SELECT')",
            &[],
        )?
        .get(0);
    let all: Vec<RoleDef> = catalog::fetch(src, &roles_sql(readable), &[])?;
    let chosen = select(&all, wanted).map_err(|missing| {
        CloneError::InvalidOptions(format!(
            "roles not found on the source: {}",
            missing.join(", ")
        ))
    })?;
    let mut out = Outcome::default();
    let keep_out = untouchable();
    let mut roles: Vec<&RoleDef> = Vec::new();
    for r in chosen {
        if reserved(&r.name) || r.bootstrap || keep_out.contains(&r.name) {
            out.notices.push(format!(
                "role \"{}\" is left as it is here (reserved, a bootstrap superuser, or the calling role)",
                r.name
            ));
        } else {
            roles.push(r);
        }
    }
    if !superuser {
        let mighty: Vec<&str> = roles
            .iter()
            .filter(|r| r.superuser || r.replication || r.bypassrls)
            .map(|r| r.name.as_str())
            .collect();
        if !mighty.is_empty() {
            return Err(CloneError::Permission(format!(
                "roles with SUPERUSER, REPLICATION or BYPASSRLS can only be made or changed by a superuser here: {}",
                mighty.join(", ")
            )));
        }
    }
    let names: Vec<String> = roles.iter().map(|r| r.name.clone()).collect();
    let existing = target::existing_roles(&names);
    for r in &roles {
        let there = existing.contains(&r.name);
        for sql in role_statements(r, there, superuser) {
            exec(&sql, &format!("role \"{}\"", r.name))?;
        }
        if there {
            out.updated += 1;
        } else {
            out.created += 1;
        }
        if !r.password_known {
            out.no_password.push(r.name.clone());
        }
    }
    let cloned: HashSet<&str> = names.iter().map(String::as_str).collect();

    let t = Target {
        version_num: target::server_version_num(),
    };
    let members: Vec<Membership> =
        catalog::fetch(src, &memberships_sql(src.server_version_num), &[])?;
    let involved: Vec<String> = members
        .iter()
        .flat_map(|m| [m.role.clone(), m.member.clone()])
        .collect();
    let here = target::existing_roles(&involved);
    for m in &members {
        // Both ends cloned now: a membership hands the member the role's
        // rights, so the source may not name a role of this server's own
        // (pg_write_server_files, a superuser, pgclone_operator, ...).
        let ours = cloned.contains(m.member.as_str()) && cloned.contains(m.role.as_str());
        if !ours {
            if cloned.contains(m.member.as_str()) && here.contains(&m.role) {
                out.notices.push(format!(
                    "membership of \"{}\" in \"{}\" not granted: \"{}\" is not among the roles cloned",
                    m.member, m.role, m.role
                ));
            }
            continue;
        }
        let (sql, lost) = membership_statement(m, &t);
        exec(
            &sql,
            &format!("membership of \"{}\" in \"{}\"", m.member, m.role),
        )?;
        out.memberships += 1;
        out.notices.extend(lost);
    }

    let db = target::current_database();
    let settings: Vec<RoleSetting> = catalog::fetch(src, SETTINGS_SQL, &[])?;
    for s in settings.iter().filter(|s| cloned.contains(s.role.as_str())) {
        if s.elsewhere {
            out.notices.push(format!(
                "settings of role \"{}\" for another database of the source are not copied",
                s.role
            ));
            continue;
        }
        let database = s.in_database.then_some(db.as_str());
        for entry in &s.config {
            if pgclone_core::check::roles::setting_refused(entry) {
                out.notices.push(format!(
                    "setting of role \"{}\" not copied: {} loads code at login",
                    s.role,
                    entry.split('=').next().unwrap_or_default()
                ));
                continue;
            }
            if let Some(sql) = setting_statement(&s.role, database, entry) {
                exec(&sql, &format!("setting of role \"{}\"", s.role))?;
                out.settings += 1;
            }
        }
    }
    Ok((out, names))
}

/// Apply the source's grants on every object both sides have (`only`:
/// just the grants to those roles), and its default privileges.
fn apply_grants(src: &SourceConn, only: Option<&[String]>, out: &mut Outcome) -> Result<()> {
    let schemas = super::schemas(src, None)?;
    let grants: Vec<Grants> = catalog::fetch(src, &grants_sql(), &[&schemas])?;
    let kinds: Vec<String> = grants.iter().map(|g| g.kind.clone()).collect();
    let probes: Vec<String> = grants.iter().map(|g| g.probe.clone()).collect();
    let columns: Vec<Option<String>> = grants.iter().map(|g| g.column.clone()).collect();
    // Each object here, named as this server names it.
    let present: std::collections::HashMap<usize, String> = Spi::connect(|c| {
        let mut found = std::collections::HashMap::new();
        for r in c.select(
            EXISTS_SQL,
            None,
            &[kinds.into(), probes.into(), columns.into()],
        )? {
            if let (Some(i), Some(object)) = (r.get::<i32>(1)?, r.get::<String>(2)?) {
                found.insert(i as usize - 1, object);
            }
        }
        Ok::<_, pgrx::spi::SpiError>(found)
    })
    .map_err(|e| CloneError::Internal(format!("local catalog: {e}")))?;
    let mut grantees: Vec<String> = grants
        .iter()
        .flat_map(|g| {
            g.acl
                .iter()
                .filter_map(|a| a.grantee.clone())
                .chain(g.owner.clone())
        })
        .collect();
    let defaults: Vec<DefaultAcl> = catalog::fetch(src, &default_acls_sql(), &[&schemas, &true])?;
    grantees.extend(defaults.iter().flat_map(|d| {
        d.acl
            .iter()
            .filter_map(|a| a.grantee.clone())
            .chain([d.role.clone()])
    }));
    grantees.sort();
    grantees.dedup();
    let exists_here = target::existing_roles(&grantees);
    let role_exists = |r: &str| exists_here.contains(r);
    let mut missing = Vec::new();
    for (i, g) in grants.iter().enumerate() {
        let Some(object) = present.get(&i) else {
            continue;
        };
        for sql in grant_statements(g, object, only, &role_exists, &mut missing) {
            exec(&sql, &format!("privileges on {object}"))?;
            out.grants += sql.starts_with("GRANT ") as usize;
        }
    }
    let roles = Roles {
        exists: &role_exists,
        can_own: &|_| true,
    };
    let keep_out = untouchable();
    for d in &defaults {
        // Default privileges FOR ROLE a superuser here would hand out what
        // that role creates: the source does not decide that.
        if only.is_some_and(|o| !o.contains(&d.role)) || keep_out.contains(&d.role) {
            continue;
        }
        for sql in default_acl(d, &roles, &mut missing) {
            exec(&sql, &format!("default privileges of role \"{}\"", d.role))?;
            out.grants += sql.contains(" GRANT ") as usize;
        }
    }
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        out.notices.push(format!(
            "grants to roles missing here were left out: {}",
            missing.join(", ")
        ));
    }
    Ok(())
}

/// clone_roles(conninfo [, role_names]): pgclone 4.x's summary line, then
/// what else was done and what could not be.
pub fn clone_roles(conninfo: &str, role_names: Option<&str>) -> Result<String> {
    let src = crate::exec::open_source(conninfo)?;
    let wanted = role_names.map(split_names).filter(|n| !n.is_empty());
    let _guc = target::GucScope::enter(&[("search_path", "")]);
    let (mut out, names) = clone_from(&src, wanted.as_deref())?;
    let only = wanted.as_ref().map(|_| names.as_slice());
    apply_grants(&src, only, &mut out)?;
    src.batch("COMMIT")?;
    for n in &out.notices {
        crate::error_report::notice(n);
    }
    let mut text = format!(
        "OK: {} roles created, {} roles updated, {} grants applied; {} memberships, {} settings",
        out.created, out.updated, out.grants, out.memberships, out.settings
    );
    if !out.no_password.is_empty() {
        text.push_str(&format!(
            "; passwords not copied (the source does not show pg_authid to this role): {}",
            out.no_password.join(", ")
        ));
    }
    Ok(text)
}

/// The `"roles": true` option: the roles a clone's objects name, made or
/// updated here first. Roles the source does not have are left to the
/// clone's own notices.
pub fn clone_needed(src: &SourceConn, needed: &[String]) -> Result<Vec<String>> {
    let known: HashSet<String> = catalog::fetch::<Vec<String>>(
        src,
        "SELECT coalesce(pg_catalog.json_agg(rolname), '[]')::text FROM pg_catalog.pg_roles WHERE rolname = ANY($1)",
        &[&needed],
    )?
    .into_iter()
    .collect();
    let keep_out = untouchable();
    let wanted: Vec<String> = needed
        .iter()
        .filter(|n| known.contains(*n) && !reserved(n) && !keep_out.contains(*n))
        .cloned()
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let (out, _) = clone_from(src, Some(&wanted))?;
    let mut notices = out.notices;
    notices.push(format!(
        "roles cloned first: {} created, {} updated, {} memberships, {} settings",
        out.created, out.updated, out.memberships, out.settings
    ));
    if !out.no_password.is_empty() {
        notices.push(format!(
            "passwords not copied (the source does not show pg_authid to this role): {}",
            out.no_password.join(", ")
        ));
    }
    Ok(notices)
}
