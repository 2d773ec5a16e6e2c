//! Shared helpers for the integration tests: the clusters started by
//! scripts/clusters.sh (their ports come in through PGCLONE_IT_* variables),
//! fixture loading, and pg_dump / content-hash comparisons.

#![allow(dead_code)]

use postgres::{Client, NoTls};
use std::process::Command;
use std::sync::Mutex;

pub struct Env {
    pub sock: String,
    pub pgbin: String,
    pub src_port: u16,
    pub tgt_port: u16,
    pub tls_port: u16,
    pub tls_ca: String,
    pub password: String,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests through scripts/test.sh, which starts the clusters")
    })
}

pub fn env() -> Env {
    Env {
        sock: var("PGCLONE_IT_SOCK"),
        pgbin: var("PGCLONE_IT_PGBIN"),
        src_port: var("PGCLONE_IT_SRC_PORT").parse().expect("port"),
        tgt_port: var("PGCLONE_IT_TGT_PORT").parse().expect("port"),
        tls_port: var("PGCLONE_IT_TLS_PORT").parse().expect("port"),
        tls_ca: var("PGCLONE_IT_TLS_CA"),
        password: var("PGCLONE_IT_PASSWORD"),
    }
}

impl Env {
    /// Superuser connection through the cluster's own socket.
    pub fn client(&self, port: u16, db: &str) -> Client {
        Client::connect(
            &format!("host={} port={port} user=postgres dbname={db}", self.sock),
            NoTls,
        )
        .unwrap_or_else(|e| panic!("connect to port {port} db {db}: {e}"))
    }

    /// A session as `user` through the cluster's socket (trust there).
    pub fn client_as(&self, port: u16, user: &str, db: &str) -> Client {
        Client::connect(
            &format!("host={} port={port} user={user} dbname={db}", self.sock),
            NoTls,
        )
        .unwrap_or_else(|e| panic!("connect to port {port} db {db} as {user}: {e}"))
    }

    /// The conninfo pgclone gets for the source: TCP with a password, like a
    /// real remote server.
    pub fn src_conninfo(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} dbname={db} user=postgres password={}",
            self.src_port, self.password
        )
    }

    pub fn psql_file(&self, port: u16, db: &str, file: &str) {
        let out = Command::new(format!("{}/psql", self.pgbin))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &self.sock,
                "-p",
                &port.to_string(),
            ])
            .args(["-U", "postgres", "-d", db, "-f", file])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql -f {file} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_dump --schema-only` of some tables, without the lines that differ
    /// on every run (psql's \restrict tokens) or carry no meaning (comments, blanks).
    pub fn dump(&self, port: u16, db: &str, tables: &[&str]) -> String {
        let mut cmd = Command::new(format!("{}/pg_dump", self.pgbin));
        cmd.args([
            "-h",
            &self.sock,
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
            "--schema-only",
        ]);
        for t in tables {
            cmd.args(["-t", t]);
        }
        let out = cmd.output().expect("pg_dump");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        normalise(&String::from_utf8_lossy(&out.stdout))
    }

    /// Row count and an order-independent hash of every row.
    pub fn content(&self, port: u16, db: &str, table: &str) -> (i64, String) {
        let mut c = self.client(port, db);
        let row = c
            .query_one(
                &format!("SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0)::text FROM {table} t"),
                &[],
            )
            .expect("content hash");
        (row.get(0), row.get(1))
    }

    /// The names of every relation in a database outside the system schemas.
    /// `pg_dump --schema-only` with extra arguments, normalised.
    pub fn pg_dump(&self, port: u16, db: &str, args: &[&str]) -> String {
        let out = Command::new(format!("{}/pg_dump", self.pgbin))
            .args([
                "-h",
                &self.sock,
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "--schema-only",
            ])
            .args(args)
            .output()
            .expect("pg_dump");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        normalise(&String::from_utf8_lossy(&out.stdout))
    }

    pub fn relations(&self, port: u16, db: &str) -> Vec<String> {
        let mut c = self.client(port, db);
        c.query(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' \
             ORDER BY 1",
            &[],
        )
        .expect("relations")
        .iter()
        .map(|r| r.get(0))
        .collect()
    }
}

pub fn normalise(dump: &str) -> String {
    dump.lines()
        .filter(|l| {
            !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict") && !l.starts_with("--")
        })
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

static SOURCE_READY: Mutex<bool> = Mutex::new(false);
// Tests run in parallel threads; roles are cluster-wide, so their creation
// (and the databases' set-up around it) goes one at a time.
static TARGET_SETUP: Mutex<()> = Mutex::new(());

pub const FIXTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn ensure_roles(c: &mut Client) {
    c.batch_execute(
        "DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fixture_reader') THEN CREATE ROLE fixture_reader NOLOGIN; END IF;
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fixture_owner') THEN CREATE ROLE fixture_owner NOLOGIN; END IF;
         END $$;",
    )
    .expect("roles");
}

/// The source database `it_src` with the table fixture, loaded once per run.
pub fn source_db(env: &Env) -> &'static str {
    let mut ready = SOURCE_READY.lock().unwrap_or_else(|p| p.into_inner());
    if !*ready {
        let mut c = env.client(env.src_port, "postgres");
        c.batch_execute("DROP DATABASE IF EXISTS it_src")
            .expect("drop it_src");
        c.batch_execute("CREATE DATABASE it_src")
            .expect("create it_src");
        ensure_roles(&mut c);
        env.psql_file(env.src_port, "it_src", &format!("{FIXTURE_DIR}/tables.sql"));
        *ready = true;
    }
    "it_src"
}

/// A fresh target database with pgclone and the fixture's prerequisites.
pub fn target_db(env: &Env, name: &str) -> String {
    let db = format!("it_{name}");
    let _one_at_a_time = TARGET_SETUP.lock().unwrap_or_else(|p| p.into_inner());
    let mut c = env.client(env.tgt_port, "postgres");
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .expect("drop target");
    c.batch_execute(&format!("CREATE DATABASE {db}"))
        .expect("create target");
    ensure_roles(&mut c);
    env.psql_file(
        env.tgt_port,
        &db,
        &format!("{FIXTURE_DIR}/tables_prereq.sql"),
    );
    env.client(env.tgt_port, &db)
        .batch_execute("CREATE EXTENSION pgclone")
        .expect("create extension");
    db
}

/// Run a statement expected to fail; returns (SQLSTATE, message).
/// A session as `user` on `port` whose NOTICEs are collected.
pub fn client_hearing(
    env: &Env,
    port: u16,
    user: &str,
    db: &str,
) -> (Client, std::sync::Arc<Mutex<Vec<String>>>) {
    let heard = std::sync::Arc::new(Mutex::new(Vec::<String>::new()));
    let n = heard.clone();
    let mut cfg: postgres::Config =
        format!("host={} port={port} user={user} dbname={db}", env.sock)
            .parse()
            .expect("config");
    cfg.notice_callback(move |e| n.lock().unwrap().push(e.message().to_string()));
    (cfg.connect(postgres::NoTls).expect("connect"), heard)
}

/// The one value of a one-row, one-column query.
pub fn one<T: postgres::types::FromSqlOwned>(
    c: &mut Client,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> T {
    c.query_one(sql, params)
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

/// The first column of every row of a query.
pub fn column<T: postgres::types::FromSqlOwned>(c: &mut Client, sql: &str) -> Vec<T> {
    c.query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

pub fn expect_error(c: &mut Client, sql: &str) -> (String, String) {
    match c.batch_execute(sql) {
        Ok(()) => panic!("expected an error from: {sql}"),
        Err(e) => {
            let db = e
                .as_db_error()
                .unwrap_or_else(|| panic!("not a server error: {e}"));
            (db.code().code().to_string(), db.message().to_string())
        }
    }
}

pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub fn ensure_role(env: &Env, port: u16, role: &str) {
    let _g = TARGET_SETUP.lock().unwrap_or_else(|p| p.into_inner());
    let mut c = env.client(port, "postgres");
    c.batch_execute(&format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN CREATE ROLE {role} NOLOGIN; END IF; END $$;"
    ))
    .expect("role");
}

/// A fresh database on `port` built from SQL files.
pub fn database_from(env: &Env, port: u16, db: &str, files: &[&str]) {
    {
        let _g = TARGET_SETUP.lock().unwrap_or_else(|p| p.into_inner());
        let mut c = env.client(port, "postgres");
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .expect("drop");
        c.batch_execute(&format!("CREATE DATABASE {db}"))
            .expect("create");
    }
    for f in files {
        env.psql_file(port, db, f);
    }
}

/// A fresh, empty target database with pgclone installed.
pub fn empty_target(env: &Env, db: &str) {
    database_from(env, env.tgt_port, db, &[]);
    env.client(env.tgt_port, db)
        .batch_execute("CREATE EXTENSION pgclone")
        .expect("extension");
}

impl Env {
    /// Whole-database schema dump without pgclone's own extension.
    pub fn dump_db(&self, port: u16, db: &str, args: &[&str]) -> String {
        let out = Command::new(format!("{}/pg_dump", self.pgbin))
            .args([
                "-h",
                &self.sock,
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "--schema-only",
            ])
            .args(["--exclude-schema", "pgclone"])
            .args(args)
            .output()
            .expect("pg_dump");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        normalise(&String::from_utf8_lossy(&out.stdout))
            .lines()
            .filter(|l| {
                !l.contains("EXTENSION IF NOT EXISTS pgclone")
                    && !l.contains("COMMENT ON EXTENSION pgclone")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Row count and content hash of every table and materialized view
    /// outside the system schemas and pgclone's own.
    pub fn all_contents(&self, port: u16, db: &str) -> Vec<(String, i64, String)> {
        let mut c = self.client(port, db);
        let rels: Vec<String> = c
            .query(
                "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'm') AND c.relispopulated \
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgclone') AND n.nspname NOT LIKE 'pg_toast%' \
                 ORDER BY 1",
                &[],
            )
            .expect("relations")
            .iter()
            .map(|r| r.get(0))
            .collect();
        rels.into_iter()
            .map(|r| {
                let row = c
                    .query_one(
                        &format!("SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0)::text FROM ONLY {r} t"),
                        &[],
                    )
                    .expect("hash");
                (r, row.get(0), row.get(1))
            })
            .collect()
    }

    /// last_value and is_called of every sequence.
    pub fn sequences(&self, port: u16, db: &str) -> Vec<(String, i64, bool)> {
        let mut c = self.client(port, db);
        let seqs: Vec<String> = c
            .query(
                "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'S' AND n.nspname <> 'pgclone' ORDER BY 1",
                &[],
            )
            .expect("sequences")
            .iter()
            .map(|r| r.get(0))
            .collect();
        seqs.into_iter()
            .map(|s| {
                let row = c
                    .query_one(&format!("SELECT last_value, is_called FROM {s}"), &[])
                    .expect("seq");
                (s, row.get(0), row.get(1))
            })
            .collect()
    }

    /// Every large object: oid, owner, md5 of the data, comment, ACL.
    pub fn large_objects(&self, port: u16, db: &str) -> Vec<String> {
        let mut c = self.client(port, db);
        c.query(
            "SELECT m.oid::text || ' ' || pg_get_userbyid(m.lomowner) || ' ' || md5(lo_get(m.oid)) || ' ' || \
                    coalesce(obj_description(m.oid, 'pg_largeobject'), '-') || ' ' || coalesce(m.lomacl::text, '-') \
             FROM pg_largeobject_metadata m ORDER BY m.oid",
            &[],
        )
        .expect("large objects")
        .iter()
        .map(|r| r.get(0))
        .collect()
    }

    /// Assert that two databases are the same to pg_dump and in content.
    pub fn assert_same_database(&self, src_db: &str, tgt_db: &str, dump_args: &[&str]) {
        let a = self.dump_db(self.src_port, src_db, dump_args);
        let b = self.dump_db(self.tgt_port, tgt_db, dump_args);
        assert_same_text(&a, &b, &format!("pg_dump of {src_db} vs {tgt_db}"));
        let (ca, cb) = (
            self.all_contents(self.src_port, src_db),
            self.all_contents(self.tgt_port, tgt_db),
        );
        assert!(!ca.is_empty());
        assert_eq!(ca, cb, "table contents differ");
        assert_eq!(
            self.sequences(self.src_port, src_db),
            self.sequences(self.tgt_port, tgt_db),
            "sequences differ"
        );
    }
}

/// Equal texts, or a panic that shows `diff -u` of the two.
pub fn assert_same_text(a: &str, b: &str, what: &str) {
    if a == b {
        return;
    }
    let dir = std::env::temp_dir().join(format!("pgclone-diff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let (fa, fb) = (dir.join("source.sql"), dir.join("target.sql"));
    std::fs::write(&fa, a).expect("write");
    std::fs::write(&fb, b).expect("write");
    let out = Command::new("diff")
        .arg("-u")
        .arg(&fa)
        .arg(&fb)
        .output()
        .expect("diff");
    let text = String::from_utf8_lossy(&out.stdout);
    let shown: Vec<&str> = text.lines().take(80).collect();
    panic!("{what} differs:\n{}", shown.join("\n"));
}

/// pgclone in an existing database that several tests share (the target's
/// `postgres`): installed once, one test at a time.
pub fn ensure_extension(env: &Env, db: &str) {
    let _g = TARGET_SETUP.lock().unwrap_or_else(|p| p.into_inner());
    env.client(env.tgt_port, db)
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pgclone")
        .expect("extension");
}

/// pgclone's own checks agree that `tgt_db` is a faithful clone of `src_db`:
/// `diff` in sync for each of `schemas`, and every row of `verify` (the
/// whole database) `✓`.
pub fn assert_checks_clean(env: &Env, src_db: &str, tgt_db: &str, schemas: &[&str]) {
    let mut c = env.client(env.tgt_port, tgt_db);
    let conninfo = env.src_conninfo(src_db);
    for s in schemas {
        let report: String = one(&mut c, "SELECT pgclone.diff($1, $2)", &[&conninfo, s]);
        let v: serde_json::Value = serde_json::from_str(&report).expect("diff is JSON");
        assert_eq!(
            v["in_sync"],
            serde_json::json!(true),
            "diff of {s}: {report}"
        );
        assert_eq!(v["diff_count"], serde_json::json!(0), "{report}");
    }
    let rows = c
        .query(
            "SELECT schema_name, table_name, source_rows, target_rows, match FROM pgclone.verify($1)",
            &[&conninfo],
        )
        .expect("verify");
    assert!(!rows.is_empty(), "verify saw no table");
    for r in &rows {
        let m: String = r.get(4);
        assert_eq!(
            m,
            "✓",
            "verify: {}.{} {:?} vs {:?}",
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, Option<i64>>(2),
            r.get::<_, Option<i64>>(3)
        );
    }
}
