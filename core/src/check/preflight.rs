//! `preflight`: will a clone of this schema work, and if not, why — each
//! check with `ok` and a reason a person can act on. The facts are read on
//! both servers (read-only); the verdicts are made here.
//!
//! The JSON keeps pgclone 4.x's shape: `schema`, `ready`, `summary`
//! (`errors`, `warnings`, `info`, `checks_run`), the `errors`, `warnings`
//! and `info` messages, and `checks` by name, each with `status` (`pass`,
//! `fail`, `warn`, `info`), `ok` and `message`.

use crate::options::Conflict;
use serde_json::{json, Map, Value};

/// An extension the schema needs, as the source has it and the target
/// could install it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExtensionFact {
    pub name: String,
    pub source_version: String,
    /// Installed here, at this version.
    pub installed: Option<String>,
    /// Versions the target server's packages offer (empty: none).
    pub available: Vec<String>,
    /// Creating it needs a superuser (not trusted).
    pub superuser_only: bool,
}

/// What following changes needs of both servers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FollowFacts {
    pub wal_level: String,
    pub can_replicate: bool,
    pub free_slots: i64,
    pub free_senders: i64,
    pub target_apply_workers: i64,
}

/// Everything preflight read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub schema: String,
    /// Why the source could not be reached (password scrubbed).
    pub connect_error: Option<String>,
    pub source_version: String,
    pub source_version_num: i32,
    pub target_version: String,
    pub target_version_num: i32,
    pub tls: bool,
    /// The source is this machine (a socket or loopback): TLS matters less.
    pub source_local: bool,
    pub schema_on_source: bool,
    pub schema_on_target: bool,
    /// The source role lacks USAGE on the schema.
    pub no_schema_usage: bool,
    /// Tables and sequences the source role cannot SELECT.
    pub unreadable: Vec<String>,
    pub large_objects: i64,
    pub unreadable_large_objects: i64,
    /// Why the caller cannot create the schema's objects here, if it cannot.
    pub target_denied: Option<String>,
    pub conflict: Conflict,
    /// (kind, name) of source objects whose names are taken here.
    pub conflicts: Vec<(String, String)>,
    pub missing_roles: Vec<String>,
    /// The clone is asked to clone roles first.
    pub roles_option: bool,
    /// Why this caller could not clone them (no CREATEROLE), if so.
    pub roles_denied: Option<String>,
    /// Tablespaces the `tablespaces` option maps to that do not exist here.
    pub bad_mappings: Vec<String>,
    pub extensions: Vec<ExtensionFact>,
    /// (source tablespace, where its objects go here: None = the default).
    pub tablespaces: Vec<(String, Option<String>)>,
    pub source_bytes: i64,
    /// Free bytes where this database stores its data (None: unknown).
    pub free_bytes: Option<u64>,
    pub counts: (i64, i64, i64, i64),
    pub parallel: i32,
    pub preloaded: bool,
    pub max_worker_processes: i64,
    pub free_job_slots: Option<usize>,
    pub follow: Option<FollowFacts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Warn,
    Info,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Warn => "warn",
            Status::Info => "info",
        }
    }
}

struct Report {
    checks: Map<String, Value>,
    errors: Vec<String>,
    warnings: Vec<String>,
    info: Vec<String>,
}

impl Report {
    fn add(&mut self, name: &str, status: Status, message: Option<String>, extra: Value) {
        let mut e = Map::new();
        e.insert("status".into(), json!(status.word()));
        e.insert("ok".into(), json!(status != Status::Fail));
        if let Some(m) = &message {
            e.insert("message".into(), json!(m));
            match status {
                Status::Fail => self.errors.push(m.clone()),
                Status::Warn => self.warnings.push(m.clone()),
                Status::Info => self.info.push(m.clone()),
                Status::Pass => {}
            }
        }
        if let Value::Object(x) = extra {
            e.extend(x);
        }
        self.checks.insert(name.into(), Value::Object(e));
    }
}

/// "a, b, c (and 7 more)": enough names to act on, never a wall of them.
fn names(list: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut s = list
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if list.len() > SHOWN {
        s.push_str(&format!(" (and {} more)", list.len() - SHOWN));
    }
    s
}

fn major(num: i32) -> i32 {
    num / 10000
}

/// Space a clone needs beyond the source's size: indexes are built from
/// sorted runs and WAL is written before checkpoints recycle it.
pub fn space_needed(source_bytes: i64) -> u64 {
    (source_bytes.max(0) as u64).saturating_mul(5) / 4
}

/// The report of a preflight.
pub fn report(f: &Facts) -> Value {
    let mut r = Report {
        checks: Map::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        info: Vec::new(),
    };
    match &f.connect_error {
        Some(e) => r.add(
            "source_connection",
            Status::Fail,
            Some(format!("cannot connect to the source: {e}")),
            json!({}),
        ),
        None => r.add("source_connection", Status::Pass, None, json!({})),
    }
    r.add("target_connection", Status::Pass, None, json!({}));
    if f.connect_error.is_none() {
        source_checks(f, &mut r);
    }
    finish(f, r)
}

fn source_checks(f: &Facts, r: &mut Report) {
    if f.tls {
        r.add("source_tls", Status::Pass, None, json!({"tls": true}));
    } else if f.source_local {
        r.add(
            "source_tls",
            Status::Info,
            Some("the source is on this machine and is reached without TLS".into()),
            json!({"tls": false}),
        );
    } else {
        r.add(
            "source_tls",
            Status::Warn,
            Some("the source is reached without TLS: rows and the password cross the network in clear; add sslmode=verify-full to the conninfo".into()),
            json!({"tls": false}),
        );
    }
    r.add(
        "source_version",
        Status::Info,
        None,
        json!({"value": f.source_version, "major": major(f.source_version_num)}),
    );
    r.add(
        "target_version",
        Status::Info,
        None,
        json!({"value": f.target_version, "major": major(f.target_version_num)}),
    );
    let (s, t) = (major(f.source_version_num), major(f.target_version_num));
    let copy = if s == t { "binary" } else { "text" };
    if s > t {
        r.add("version_compat", Status::Warn, Some(format!(
            "source major version {s} is newer than target {t}: COPY runs as text, and objects or syntax that {t} lacks will be refused"
        )), json!({"copy": copy}));
    } else {
        r.add(
            "version_compat",
            Status::Pass,
            Some(format!("rows travel as {copy} COPY")),
            json!({"copy": copy}),
        );
    }
    if !f.schema_on_source {
        r.add(
            "schema_exists_source",
            Status::Fail,
            Some(format!(
                "schema \"{}\" does not exist on the source",
                f.schema
            )),
            json!({}),
        );
        return;
    }
    r.add("schema_exists_source", Status::Pass, None, json!({}));
    r.add(
        "schema_exists_target",
        Status::Info,
        (!f.schema_on_target).then(|| {
            format!(
                "schema \"{}\" does not exist here: the clone creates it",
                f.schema
            )
        }),
        json!({"value": f.schema_on_target}),
    );
    permissions(f, r);
    objects(f, r);
    resources(f, r);
}

fn permissions(f: &Facts, r: &mut Report) {
    if f.no_schema_usage {
        r.add("source_permissions", Status::Fail, Some(format!(
            "the source role lacks USAGE on schema \"{}\": GRANT USAGE ON SCHEMA to it on the source", f.schema
        )), json!({"items": []}));
    } else if !f.unreadable.is_empty() {
        r.add("source_permissions", Status::Fail, Some(format!(
            "the source role lacks SELECT on {}: GRANT SELECT on them to it on the source (or leave them out with exclude_tables)",
            names(&f.unreadable)
        )), json!({"items": f.unreadable}));
    } else {
        r.add(
            "source_permissions",
            Status::Pass,
            None,
            json!({"items": []}),
        );
    }
    if f.unreadable_large_objects > 0 {
        r.add("source_large_objects", Status::Warn, Some(format!(
            "the source role cannot read {} of the source database's {} large objects: database() would fail on them; grant SELECT on them or clone as their owner",
            f.unreadable_large_objects, f.large_objects
        )), json!({"count": f.large_objects}));
    } else {
        r.add(
            "source_large_objects",
            Status::Pass,
            None,
            json!({"count": f.large_objects}),
        );
    }
    match &f.target_denied {
        Some(why) => r.add(
            "target_permissions",
            Status::Fail,
            Some(why.clone()),
            json!({}),
        ),
        None => r.add("target_permissions", Status::Pass, None, json!({})),
    }
}

fn objects(f: &Facts, r: &mut Report) {
    let (tables, views, sequences, indexes) = f.counts;
    r.add(
        "object_counts",
        Status::Info,
        None,
        json!({"tables": tables, "views": views, "sequences": sequences, "indexes": indexes}),
    );
    let items: Vec<Value> = f
        .conflicts
        .iter()
        .map(|(k, n)| json!({"name": n, "kind": k}))
        .collect();
    let listed: Vec<String> = f
        .conflicts
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if f.conflicts.is_empty() {
        r.add(
            "name_conflicts",
            Status::Pass,
            None,
            json!({"count": 0, "items": []}),
        );
    } else {
        let (status, what) = match f.conflict {
            Conflict::Error => (Status::Fail, format!(
                "the clone stops at the first; drop them, or choose \"conflict\": \"skip\" (keep schema \"{s}\" as it is), \"replace\" (drop it first) or \"rename\" (set it aside)",
                s = f.schema
            )),
            Conflict::Skip => (Status::Warn, format!(
                "with \"conflict\": \"skip\" schema \"{}\" is left as it is and not cloned", f.schema
            )),
            Conflict::Replace => (Status::Warn, format!(
                "with \"conflict\": \"replace\" schema \"{}\" here is dropped, with everything in it, and cloned again", f.schema
            )),
            Conflict::Rename => (Status::Warn, format!(
                "with \"conflict\": \"rename\" schema \"{}\" here is set aside under a new name", f.schema
            )),
        };
        r.add(
            "name_conflicts",
            status,
            Some(format!("{} already exist here: {what}", names(&listed))),
            json!({"count": items.len(), "items": items}),
        );
    }
    if f.missing_roles.is_empty() {
        r.add(
            "missing_roles",
            Status::Pass,
            None,
            json!({"count": 0, "items": []}),
        );
    } else if f.roles_option {
        r.add(
            "missing_roles",
            Status::Info,
            Some(format!(
                "roles {} are missing here; \"roles\": true clones them first",
                names(&f.missing_roles)
            )),
            json!({"count": f.missing_roles.len(), "items": f.missing_roles}),
        );
    } else {
        r.add("missing_roles", Status::Fail, Some(format!(
            "roles the objects name (owners, grantees, policy roles) are missing here: {}; run pgclone.clone_roles() first or pass \"roles\": true",
            names(&f.missing_roles)
        )), json!({"count": f.missing_roles.len(), "items": f.missing_roles}));
    }
    extensions(f, r);
    let moved: Vec<String> = f
        .tablespaces
        .iter()
        .filter(|(_, to)| to.is_none())
        .map(|(s, _)| s.clone())
        .collect();
    let items: Vec<Value> = f
        .tablespaces
        .iter()
        .map(|(s, to)| json!({"source": s, "target": to.clone().unwrap_or_else(|| "default".into())}))
        .collect();
    if !f.bad_mappings.is_empty() {
        r.add(
            "tablespaces",
            Status::Fail,
            Some(format!(
                "the \"tablespaces\" option maps to tablespaces that do not exist here: {}",
                names(&f.bad_mappings)
            )),
            json!({"items": items}),
        );
    } else if moved.is_empty() {
        r.add("tablespaces", Status::Pass, None, json!({"items": items}));
    } else {
        r.add("tablespaces", Status::Warn, Some(format!(
            "tablespaces {} of the source do not exist here: their objects go to the database's default; map them with the \"tablespaces\" option",
            names(&moved)
        )), json!({"items": items}));
    }
}

fn extensions(f: &Facts, r: &mut Report) {
    let mut fail = Vec::new();
    let mut warn = Vec::new();
    for x in &f.extensions {
        if x.installed.is_some() {
            continue;
        }
        if x.available.is_empty() {
            fail.push(format!(
                "{} (not installed on the target server: install its package there)",
                x.name
            ));
        } else if x.superuser_only {
            fail.push(format!(
                "{} (only a superuser may create it: create it here first)",
                x.name
            ));
        } else if !x.available.contains(&x.source_version) {
            warn.push(format!(
                "{} is created at the target's default version, not the source's {}",
                x.name, x.source_version
            ));
        }
    }
    let items: Vec<Value> = f
        .extensions
        .iter()
        .map(|x| json!({"name": x.name, "source_version": x.source_version, "installed": x.installed}))
        .collect();
    if !fail.is_empty() {
        r.add(
            "missing_extensions",
            Status::Fail,
            Some(format!(
                "extensions cannot be created here: {}",
                names(&fail)
            )),
            json!({"count": fail.len(), "items": items}),
        );
    } else if !warn.is_empty() {
        r.add(
            "missing_extensions",
            Status::Warn,
            Some(names(&warn)),
            json!({"count": 0, "items": items}),
        );
    } else {
        r.add(
            "missing_extensions",
            Status::Pass,
            None,
            json!({"count": 0, "items": items}),
        );
    }
}

fn resources(f: &Facts, r: &mut Report) {
    let need = space_needed(f.source_bytes);
    match f.free_bytes {
        Some(free) if free < need => r.add("disk_space", Status::Fail, Some(format!(
            "the clone needs about {need} bytes here (the source's {} plus room for index builds and WAL), and {free} are free",
            f.source_bytes
        )), json!({"source_bytes": f.source_bytes, "free_bytes": free, "needed_bytes": need})),
        Some(free) => r.add("disk_space", Status::Pass, None,
            json!({"source_bytes": f.source_bytes, "free_bytes": free, "needed_bytes": need})),
        None => r.add("disk_space", Status::Warn, Some("free space here is unknown".into()),
            json!({"source_bytes": f.source_bytes})),
    }
    let p = f.parallel;
    if p > 1 && !f.preloaded {
        r.add("workers", Status::Warn, Some(format!(
            "parallel {p} needs shared_preload_libraries = 'pgclone' here; without it the clone runs serially"
        )), json!({"parallel": p}));
    } else if p > 1 && i64::from(p) + 1 > f.max_worker_processes {
        r.add("workers", Status::Warn, Some(format!(
            "parallel {p} needs {} background workers and max_worker_processes is {}: raise it (restart needed) or ask for fewer",
            p + 1, f.max_worker_processes
        )), json!({"parallel": p, "max_worker_processes": f.max_worker_processes}));
    } else if f.preloaded && f.free_job_slots == Some(0) {
        r.add("workers", Status::Fail, Some(
            "every pgclone job slot is taken: wait for a job to finish, clear_jobs(), or raise pgclone.max_jobs".into()
        ), json!({"parallel": p}));
    } else {
        r.add(
            "workers",
            Status::Pass,
            None,
            json!({"parallel": p, "max_worker_processes": f.max_worker_processes}),
        );
    }
    if let Some(fl) = &f.follow {
        let mut why = Vec::new();
        if fl.wal_level != "logical" {
            why.push(format!(
                "the source's wal_level is {}: set wal_level = logical there and restart it",
                fl.wal_level
            ));
        }
        if !fl.can_replicate {
            why.push("the source role has neither REPLICATION nor SUPERUSER: ALTER ROLE ... REPLICATION on the source".into());
        }
        if fl.free_slots < 1 {
            why.push("the source has no free replication slot: raise max_replication_slots or drop an unused slot".into());
        }
        if fl.free_senders < 1 {
            why.push("the source has no free WAL sender: raise max_wal_senders".into());
        }
        if fl.target_apply_workers < 1 {
            why.push("max_logical_replication_workers is 0 here".into());
        }
        let extra = json!({"wal_level": fl.wal_level, "free_slots": fl.free_slots, "free_senders": fl.free_senders});
        if why.is_empty() {
            r.add("follow", Status::Pass, None, extra);
        } else {
            r.add("follow", Status::Fail, Some(why.join("; ")), extra);
        }
    }
}

fn finish(f: &Facts, r: Report) -> Value {
    let checks_run = r.checks.len();
    let mut out = Map::new();
    out.insert("schema".into(), json!(f.schema));
    out.insert("ready".into(), json!(r.errors.is_empty()));
    out.insert(
        "summary".into(),
        json!({"errors": r.errors.len(), "warnings": r.warnings.len(), "info": r.info.len(), "checks_run": checks_run}),
    );
    out.insert("errors".into(), json!(r.errors));
    out.insert("warnings".into(), json!(r.warnings));
    out.insert("info".into(), json!(r.info));
    out.insert("checks".into(), Value::Object(r.checks));
    Value::Object(out)
}

#[cfg(test)]
mod unit {
    use super::*;

    fn clean() -> Facts {
        Facts {
            schema: "app".into(),
            source_version: "15.8".into(),
            source_version_num: 150008,
            target_version: "15.8".into(),
            target_version_num: 150008,
            tls: true,
            schema_on_source: true,
            source_bytes: 1000,
            free_bytes: Some(10_000),
            parallel: 1,
            max_worker_processes: 8,
            ..Facts::default()
        }
    }

    #[test]
    fn a_clean_case_is_ready_with_4x_keys() {
        let v = report(&clean());
        assert_eq!(v["ready"], json!(true), "{v}");
        for k in [
            "source_connection",
            "target_connection",
            "source_version",
            "target_version",
            "schema_exists_source",
            "schema_exists_target",
            "name_conflicts",
            "object_counts",
            "version_compat",
        ] {
            assert!(v["checks"].get(k).is_some(), "{k}");
        }
        assert_eq!(v["checks"]["version_compat"]["copy"], json!("binary"));
        assert_eq!(v["checks"]["name_conflicts"]["items"], json!([]));
        assert_eq!(v["summary"]["errors"], json!(0));
    }

    #[test]
    fn each_failure_says_why() {
        type Change = Box<dyn Fn(&mut Facts)>;
        let cases: Vec<(&str, Change, &str)> = vec![
            (
                "source_connection",
                Box::new(|f| f.connect_error = Some("refused".into())),
                "refused",
            ),
            (
                "schema_exists_source",
                Box::new(|f| f.schema_on_source = false),
                "does not exist",
            ),
            (
                "source_permissions",
                Box::new(|f| f.unreadable = vec!["app.t".into()]),
                "SELECT on app.t",
            ),
            (
                "target_permissions",
                Box::new(|f| f.target_denied = Some("no CREATE".into())),
                "no CREATE",
            ),
            (
                "name_conflicts",
                Box::new(|f| f.conflicts = vec![("table".into(), "t".into())]),
                "table t",
            ),
            (
                "missing_roles",
                Box::new(|f| f.missing_roles = vec!["alice".into()]),
                "alice",
            ),
            (
                "missing_extensions",
                Box::new(|f| {
                    f.extensions = vec![ExtensionFact {
                        name: "postgis".into(),
                        source_version: "3.4".into(),
                        ..Default::default()
                    }]
                }),
                "postgis",
            ),
            (
                "disk_space",
                Box::new(|f| f.free_bytes = Some(10)),
                "are free",
            ),
            (
                "follow",
                Box::new(|f| {
                    f.follow = Some(FollowFacts {
                        wal_level: "replica".into(),
                        can_replicate: true,
                        free_slots: 1,
                        free_senders: 1,
                        target_apply_workers: 4,
                    })
                }),
                "wal_level",
            ),
        ];
        for (check, change, reason) in cases {
            let mut f = clean();
            change(&mut f);
            let v = report(&f);
            assert_eq!(v["ready"], json!(false), "{check}: {v}");
            assert_eq!(v["checks"][check]["ok"], json!(false), "{check}: {v}");
            let msg = v["checks"][check]["message"].as_str().unwrap();
            assert!(msg.contains(reason), "{check}: {msg}");
            assert!(v["errors"].as_array().unwrap().iter().any(|e| e == msg));
        }
    }

    #[test]
    fn what_a_clone_survives_is_a_warning() {
        let mut f = clean();
        f.conflicts = vec![("table".into(), "t".into())];
        f.conflict = Conflict::Skip;
        f.tablespaces = vec![("fast".into(), None)];
        f.missing_roles = vec!["alice".into()];
        f.roles_option = true;
        f.source_version_num = 160002;
        let v = report(&f);
        assert_eq!(v["ready"], json!(true), "{v}");
        assert_eq!(v["checks"]["name_conflicts"]["status"], json!("warn"));
        assert_eq!(v["checks"]["tablespaces"]["status"], json!("warn"));
        assert_eq!(v["checks"]["version_compat"]["copy"], json!("text"));
    }
}
