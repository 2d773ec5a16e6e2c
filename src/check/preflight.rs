//! `preflight`: the facts a clone of one schema depends on, read on both
//! servers without changing either (the source in a READ ONLY
//! transaction, this side through SELECTs only).

use crate::conn::SourceConn;
use crate::error::{CloneError, Result};
use crate::target;
use pgclone_core::check::preflight::{report, ExtensionFact, Facts, FollowFacts};
use pgclone_core::options::Options;
use pgrx::prelude::*;

fn spi<T>(r: std::result::Result<T, pgrx::spi::SpiError>) -> Result<T> {
    r.map_err(|e| CloneError::Internal(format!("local catalog: {e}")))
}

fn local_one<T: pgrx::datum::FromDatum + pgrx::datum::IntoDatum>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Result<Option<T>> {
    spi(Spi::get_one_with_args::<T>(sql, args))
}

/// The JSON report of a preflight of `schema` with the clone's `options`.
pub fn preflight(conninfo: &str, schema: &str, options: &Options) -> Result<String> {
    let mut f = Facts {
        schema: schema.to_string(),
        conflict: options.conflict,
        roles_option: options.roles,
        parallel: crate::jobs::asked(options),
        ..Facts::default()
    };
    target_facts(&mut f, options)?;
    match crate::exec::open_source(conninfo) {
        Err(e) => f.connect_error = Some(e.to_string()),
        Ok(src) => {
            f.source_local = target::resolve_conninfo(conninfo)
                .map(|i| i.is_local())
                .unwrap_or(false);
            source_facts(&src, &mut f, options)?;
            src.batch("COMMIT")?;
        }
    }
    Ok(report(&f).to_string())
}

fn target_facts(f: &mut Facts, options: &Options) -> Result<()> {
    f.target_version =
        local_one::<String>("SELECT pg_catalog.current_setting('server_version')", &[])?
            .unwrap_or_default();
    f.target_version_num = target::server_version_num();
    f.schema_on_target = target::schema_exists(&f.schema);
    f.target_denied = local_one::<String>(
        "SELECT CASE \
           WHEN (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN NULL \
           WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1) THEN \
             CASE WHEN NOT pg_catalog.has_schema_privilege(current_user, $1, 'CREATE') \
               THEN pg_catalog.format('role %I lacks CREATE on schema %I here: GRANT CREATE ON SCHEMA %I TO %I', current_user, $1, $1, current_user) END \
           WHEN NOT pg_catalog.has_database_privilege(current_user, pg_catalog.current_database(), 'CREATE') \
             THEN pg_catalog.format('role %I lacks CREATE on database %I here, which creating schema %I needs: GRANT CREATE ON DATABASE %I TO %I', \
                  current_user, pg_catalog.current_database(), $1, pg_catalog.current_database(), current_user) \
         END",
        &[f.schema.as_str().into()],
    )?;
    if options.roles {
        f.roles_denied = local_one::<bool>(
            "SELECT (SELECT rolsuper OR rolcreaterole FROM pg_catalog.pg_roles WHERE rolname = current_user)",
            &[],
        )?
        .is_some_and(|ok| !ok)
        .then(|| "you need SUPERUSER or CREATEROLE here".to_string());
    }
    if let Some(map) = &options.tablespaces {
        f.bad_mappings = map
            .values()
            .filter(|to| *to != "pg_default" && !crate::exec::tablespace_exists(to))
            .cloned()
            .collect();
    }
    f.max_worker_processes = local_one::<String>(
        "SELECT pg_catalog.current_setting('max_worker_processes')",
        &[],
    )?
    .and_then(|v| v.parse().ok())
    .unwrap_or(0);
    f.preloaded = crate::jobs::available();
    f.free_job_slots = crate::jobs::free_job_slots();
    f.free_bytes = free_bytes();
    if options.follow {
        f.follow = Some(FollowFacts {
            target_apply_workers: local_one::<String>(
                "SELECT pg_catalog.current_setting('max_logical_replication_workers')",
                &[],
            )?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
            ..FollowFacts::default()
        });
    }
    Ok(())
}

/// Free bytes on the file system of this server's data directory.
fn free_bytes() -> Option<u64> {
    // SAFETY: DataDir is set at start; statvfs only reads into `st`.
    unsafe {
        let dir = std::ffi::CStr::from_ptr(pg_sys::DataDir);
        let mut st: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(dir.as_ptr(), &mut st) == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
    }
}

const SOURCE_SQL: &str = "\
    SELECT pg_catalog.current_setting('server_version'), \
           pg_catalog.current_setting('server_version_num')::int4, \
           coalesce((SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_catalog.pg_backend_pid()), false), \
           EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1), \
           coalesce((SELECT NOT pg_catalog.has_schema_privilege(oid, 'USAGE') \
                     FROM pg_catalog.pg_namespace WHERE nspname = $1), false)";

const UNREADABLE_SQL: &str = "\
    SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) \
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'S') \
      AND NOT pg_catalog.has_table_privilege(c.oid, 'SELECT') ORDER BY 1";

const LARGE_OBJECTS_SQL: &str = "\
    SELECT pg_catalog.count(*)::int8, \
           pg_catalog.count(*) FILTER (WHERE NOT pg_catalog.current_setting('lo_compat_privileges')::bool \
             AND NOT pg_catalog.pg_has_role(m.lomowner, 'USAGE') \
             AND NOT EXISTS (SELECT 1 FROM pg_catalog.aclexplode(m.lomacl) a WHERE a.privilege_type = 'SELECT' \
                             AND (a.grantee = 0 OR pg_catalog.pg_has_role(a.grantee, 'USAGE'))))::int8 \
    FROM pg_catalog.pg_largeobject_metadata m";

/// Roles the schema's objects name: owners, grantees, policy roles.
const ROLES_SQL: &str = "\
    WITH n AS (SELECT oid, nspowner, nspacl FROM pg_catalog.pg_namespace WHERE nspname = $1), \
    r(r) AS ( \
      SELECT nspowner FROM n \
      UNION SELECT (pg_catalog.aclexplode(nspacl)).grantee FROM n \
      UNION SELECT relowner FROM pg_catalog.pg_class WHERE relnamespace IN (SELECT oid FROM n) \
      UNION SELECT (pg_catalog.aclexplode(relacl)).grantee FROM pg_catalog.pg_class WHERE relnamespace IN (SELECT oid FROM n) \
      UNION SELECT (pg_catalog.aclexplode(a.attacl)).grantee FROM pg_catalog.pg_attribute a \
        JOIN pg_catalog.pg_class c ON c.oid = a.attrelid WHERE c.relnamespace IN (SELECT oid FROM n) AND a.attacl IS NOT NULL \
      UNION SELECT proowner FROM pg_catalog.pg_proc WHERE pronamespace IN (SELECT oid FROM n) \
      UNION SELECT (pg_catalog.aclexplode(proacl)).grantee FROM pg_catalog.pg_proc WHERE pronamespace IN (SELECT oid FROM n) \
      UNION SELECT typowner FROM pg_catalog.pg_type WHERE typnamespace IN (SELECT oid FROM n) \
      UNION SELECT (pg_catalog.aclexplode(typacl)).grantee FROM pg_catalog.pg_type WHERE typnamespace IN (SELECT oid FROM n) \
      UNION SELECT pg_catalog.unnest(p.polroles) FROM pg_catalog.pg_policy p \
        JOIN pg_catalog.pg_class c ON c.oid = p.polrelid WHERE c.relnamespace IN (SELECT oid FROM n)) \
    SELECT DISTINCT ro.rolname::text FROM r JOIN pg_catalog.pg_roles ro ON ro.oid = r.r ORDER BY 1";

/// Extensions the clone creates (those in the schema) or needs (those
/// whose types the schema's columns use).
const EXTENSIONS_SQL: &str = "\
    WITH used AS ( \
      SELECT a.atttypid AS t FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
        JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace WHERE cn.nspname = $1 AND a.attnum > 0 \
      UNION SELECT ty.typelem FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
        JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid \
        WHERE cn.nspname = $1 AND a.attnum > 0) \
    SELECT x.extname::text, x.extversion::text \
    FROM pg_catalog.pg_extension x JOIN pg_catalog.pg_namespace n ON n.oid = x.extnamespace \
    WHERE x.extname NOT IN ('plpgsql', 'pgclone') \
      AND (n.nspname = $1 OR x.oid IN (SELECT d.refobjid FROM pg_catalog.pg_depend d \
           WHERE d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass \
             AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e' \
             AND d.objid IN (SELECT t FROM used))) \
    ORDER BY 1";

const SIZES_SQL: &str = "\
    SELECT coalesce(pg_catalog.sum(pg_catalog.pg_total_relation_size(c.oid)) \
             FILTER (WHERE c.relkind IN ('r', 'm')), 0)::int8, \
           pg_catalog.count(*) FILTER (WHERE c.relkind IN ('r', 'p'))::int8, \
           pg_catalog.count(*) FILTER (WHERE c.relkind IN ('v', 'm'))::int8, \
           pg_catalog.count(*) FILTER (WHERE c.relkind = 'S')::int8, \
           pg_catalog.count(*) FILTER (WHERE c.relkind IN ('i', 'I'))::int8 \
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname = $1";

/// Names a clone of the schema would create: relations, types, routines.
const NAMES_SQL: &str = "\
    SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' \
                WHEN 'i' THEN 'index' WHEN 'I' THEN 'index' WHEN 'c' THEN 'type' ELSE 'table' END, c.relname::text \
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname = $1 AND c.relkind <> 't' \
    UNION ALL \
    SELECT 'type', t.typname::text FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
    WHERE n.nspname = $1 AND t.typtype IN ('e', 'd', 'r') \
    UNION ALL \
    SELECT 'function', p.proname::text FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
    WHERE n.nspname = $1";

const FOLLOW_SQL: &str = "\
    SELECT pg_catalog.current_setting('wal_level'), \
           (SELECT rolreplication OR rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), \
           pg_catalog.current_setting('max_replication_slots')::int8 \
             - (SELECT pg_catalog.count(*) FROM pg_catalog.pg_replication_slots), \
           pg_catalog.current_setting('max_wal_senders')::int8 \
             - (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_replication)";

fn source_facts(src: &SourceConn, f: &mut Facts, options: &Options) -> Result<()> {
    let schema = f.schema.clone();
    let r = src.query_one(SOURCE_SQL, &[&schema])?;
    f.source_version = r.get(0);
    f.source_version_num = r.get(1);
    f.tls = r.get(2);
    f.schema_on_source = r.get(3);
    f.no_schema_usage = r.get(4);
    if let Some(fl) = f.follow.as_mut() {
        let r = src.query_one(FOLLOW_SQL, &[])?;
        fl.wal_level = r.get(0);
        fl.can_replicate = r.get::<_, Option<bool>>(1).unwrap_or(false);
        fl.free_slots = r.get(2);
        fl.free_senders = r.get(3);
    }
    if !f.schema_on_source {
        return Ok(());
    }
    f.unreadable = src
        .query(UNREADABLE_SQL, &[&schema])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let r = src.query_one(LARGE_OBJECTS_SQL, &[])?;
    (f.large_objects, f.unreadable_large_objects) = (r.get(0), r.get(1));
    let r = src.query_one(SIZES_SQL, &[&schema])?;
    f.source_bytes = r.get(0);
    f.counts = (r.get(1), r.get(2), r.get(3), r.get(4));

    let needed: Vec<String> = src
        .query(ROLES_SQL, &[&schema])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let here = target::existing_roles(&needed);
    f.missing_roles = needed.into_iter().filter(|r| !here.contains(r)).collect();

    if f.schema_on_target {
        let relations = target::relation_names(&schema);
        let others = target::type_and_routine_names(&schema);
        let mut listed = std::collections::HashSet::new();
        for r in src.query(NAMES_SQL, &[&schema])? {
            let (kind, name): (String, String) = (r.get(0), r.get(1));
            let taken = match kind.as_str() {
                "function" => others.contains(&name),
                "type" => others.contains(&name) || relations.contains(&name),
                _ => relations.contains(&name),
            };
            if taken && listed.insert(name.clone()) {
                f.conflicts.push((kind, name));
            }
        }
    }

    let superuser = local_one::<bool>(
        "SELECT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)",
        &[],
    )?
    .unwrap_or(false);
    for r in src.query(EXTENSIONS_SQL, &[&schema])? {
        let (name, version): (String, String) = (r.get(0), r.get(1));
        f.extensions.push(extension_here(name, version, superuser)?);
    }

    for r in src.query(
        "SELECT DISTINCT t.spcname::text FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_tablespace t ON t.oid = c.reltablespace \
         WHERE n.nspname = $1 ORDER BY 1",
        &[&schema],
    )? {
        let ts: String = r.get(0);
        f.tablespaces
            .push((ts.clone(), crate::exec::tablespace_here(&ts, options)));
    }
    Ok(())
}

fn extension_here(name: String, version: String, superuser: bool) -> Result<ExtensionFact> {
    let mut x = ExtensionFact {
        name,
        source_version: version,
        ..ExtensionFact::default()
    };
    x.installed = local_one::<String>(
        "SELECT (SELECT extversion::text FROM pg_catalog.pg_extension WHERE extname = $1)",
        &[x.name.as_str().into()],
    )?;
    spi(Spi::connect(|c| {
        for r in c.select(
            "SELECT version::text, superuser AND NOT trusted \
             FROM pg_catalog.pg_available_extension_versions WHERE name = $1",
            None,
            &[x.name.as_str().into()],
        )? {
            if let Some(v) = r.get::<String>(1)? {
                x.available.push(v);
            }
            if r.get::<bool>(2)?.unwrap_or(false) && !superuser {
                x.superuser_only = true;
            }
        }
        Ok::<_, pgrx::spi::SpiError>(())
    }))?;
    Ok(x)
}
