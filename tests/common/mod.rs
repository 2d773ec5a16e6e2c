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
