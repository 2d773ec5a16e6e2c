//! Tier 3: jobs in background workers between two real clusters: the async
//! lifecycle (complete, cancel, resume, a killed worker, a server restart,
//! two jobs at once), split tables, and synchronous calls with "parallel".
//! Every finished clone is judged like the serial ones: pg_dump of the whole
//! database and the content of every table equal to the source's.
//!
//! The tests of this file run one at a time: one of them restarts the target
//! server, and each loads both cores.

mod common;
use common::*;
use postgres::Client;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
static SOURCE: Mutex<bool> = Mutex::new(false);

const SRC: &str = "jobs_src";

/// The source: one table large enough that a job is caught mid-COPY
/// (about 450 MB), with an index, a foreign key from a small table, a
/// partitioned table, a materialized view on another and a sequence.
fn source(env: &Env) {
    let mut ready = SOURCE.lock().unwrap_or_else(|p| p.into_inner());
    if *ready {
        return;
    }
    database_from(env, env.src_port, SRC, &[]);
    env.client(env.src_port, SRC)
        .batch_execute(
            "CREATE SCHEMA app;
             CREATE TABLE app.big (id bigint PRIMARY KEY, payload text NOT NULL, n int NOT NULL);
             INSERT INTO app.big SELECT g, md5(g::text) || repeat('x', 120), g % 1000
               FROM generate_series(1, 3000000) g;
             CREATE INDEX big_n ON app.big (n);
             CREATE TABLE app.child (id int PRIMARY KEY, big_id bigint REFERENCES app.big, note text);
             INSERT INTO app.child SELECT g, g * 7, 'c' || g FROM generate_series(1, 20000) g;
             CREATE TABLE app.events (at date NOT NULL, v int) PARTITION BY RANGE (at);
             CREATE TABLE app.events_2024 PARTITION OF app.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
             CREATE TABLE app.events_2025 PARTITION OF app.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
             INSERT INTO app.events SELECT date '2024-01-01' + (g % 700), g FROM generate_series(1, 50000) g;
             CREATE MATERIALIZED VIEW app.big_by_n AS SELECT n, count(*) AS c FROM app.big GROUP BY n;
             CREATE MATERIALIZED VIEW app.top_n AS SELECT * FROM app.big_by_n WHERE c > 2999;
             CREATE SEQUENCE app.tickets START 100;
             SELECT nextval('app.tickets') FROM generate_series(1, 5);
             ANALYZE;",
        )
        .expect("jobs source");
    *ready = true;
}

fn target(env: &Env, db: &str) -> Client {
    empty_target(env, db);
    env.client(env.tgt_port, db)
}

fn start(c: &mut Client, sql: &str, env: &Env) -> i32 {
    c.query_one(sql, &[&env.src_conninfo(SRC)])
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

/// (status, current_table, bytes_copied, error_message) of a job.
fn state(c: &mut Client, job: i32) -> (String, Option<String>, i64, Option<String>) {
    let r = c
        .query_one(
            "SELECT status, current_table, bytes_copied, error_message FROM pgclone.jobs_view WHERE job_id = $1",
            &[&job],
        )
        .expect("jobs_view");
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

fn wait_until(
    c: &mut Client,
    job: i32,
    what: &str,
    timeout: Duration,
    done: impl Fn(&(String, Option<String>, i64, Option<String>)) -> bool,
) -> (String, Option<String>, i64, Option<String>) {
    let until = Instant::now() + timeout;
    loop {
        let s = state(c, job);
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < until,
            "job {job}: {what} not reached: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn finished(c: &mut Client, job: i32) -> (String, Option<String>, i64, Option<String>) {
    wait_until(c, job, "an end", Duration::from_secs(300), |s| {
        s.0 != "running" && s.0 != "pending"
    })
}

fn copying_big(c: &mut Client, job: i32) {
    wait_until(c, job, "copying app.big", Duration::from_secs(120), |s| {
        s.1.as_deref().unwrap_or("").contains("big") && s.2 > 0
    });
}

/// A fresh target `db` with a job started by `sql`, caught copying app.big.
fn job_copying_big(env: &Env, db: &str, sql: &str) -> (Client, i32) {
    source(env);
    let mut c = target(env, db);
    let job = start(&mut c, sql, env);
    copying_big(&mut c, job);
    (c, job)
}

fn big_copy_units(c: &mut Client, job: i32) -> Vec<String> {
    c.query(
        "SELECT status FROM pgclone.job_units WHERE job_id = $1 AND kind = 'copy' \
         AND (label = 'app.big' OR label LIKE 'app.big (part %') ORDER BY unit_id",
        &[&job],
    )
    .expect("units")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn assert_no_password(env: &Env, c: &mut Client, job: i32) {
    let pw = &env.password;
    for sql in [
        "SELECT coalesce(string_agg(v::text, ' '), '') FROM pgclone.jobs_view v",
        "SELECT pgclone.jobs()",
    ] {
        let text: String = c.query_one(sql, &[]).expect(sql).get(0);
        assert!(!text.contains(pw.as_str()), "{sql} shows the password");
    }
    let text: String = c
        .query_one("SELECT pgclone.progress($1)", &[&job])
        .expect("progress")
        .get(0);
    assert!(!text.contains(pw.as_str()), "progress() shows the password");
    assert!(text.contains("\"source\""), "{text}");
}

fn activity_has_password(env: &Env) -> bool {
    [env.src_port, env.tgt_port].iter().any(|port| {
        env.client(*port, "postgres")
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() \
                 AND (query LIKE '%' || $1 || '%' OR application_name LIKE '%' || $1 || '%')",
                &[&env.password],
            )
            .expect("activity")
            .get::<_, i64>(0)
            > 0
    })
}

#[test]
fn async_job_completes_with_progress_and_summary() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    source(&env);
    let mut c = target(&env, "jobs_complete");
    let job = start(
        &mut c,
        "SELECT pgclone.database_async($1, true, '{\"parallel\": 2}')",
        &env,
    );
    // The call returned at once; the job is known and running.
    let (status, ..) = state(&mut c, job);
    assert!(status == "running" || status == "pending", "{status}");
    copying_big(&mut c, job);
    assert!(
        !activity_has_password(&env),
        "the password shows in pg_stat_activity"
    );
    let (status, _, _, err) = finished(&mut c, job);
    assert_eq!(status, "completed", "{err:?}");
    env.assert_same_database(SRC, "jobs_complete", &[]);

    // jobs_view: the columns of pgclone 4.x, in order, and final figures.
    let cols: Vec<String> = c
        .query(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = 'pgclone.jobs_view'::regclass AND attnum > 0 ORDER BY attnum",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        cols,
        [
            "job_id",
            "status",
            "op_type",
            "schema_name",
            "table_name",
            "current_phase",
            "current_table",
            "tables_total",
            "tables_completed",
            "rows_copied",
            "bytes_copied",
            "elapsed_ms",
            "start_time",
            "end_time",
            "error_message",
            "pct_complete",
            "progress_bar",
            "elapsed_time"
        ]
    );
    let r = c
        .query_one(
            "SELECT op_type, tables_total, tables_completed, rows_copied, pct_complete, progress_bar, end_time IS NOT NULL \
             FROM pgclone.jobs_view WHERE job_id = $1",
            &[&job],
        )
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "database");
    let (total, done): (i64, i64) = (r.get(1), r.get(2));
    assert_eq!(total, done);
    assert_eq!(total, 5, "big, child, events and its two partitions");
    assert_eq!(r.get::<_, i64>(3), 3_000_000 + 20_000 + 50_000);
    assert_eq!(r.get::<_, f64>(4), 100.0);
    let bar: String = r.get(5);
    assert!(
        bar.starts_with("[████████████████████] 100.0% | 3070000 rows | "),
        "{bar}"
    );
    assert!(r.get::<_, bool>(6));
    // progress(): per-phase and per-table figures, readable from SQL.
    let p: serde_json::Value = serde_json::from_str(&one::<String>(
        &mut c,
        "SELECT pgclone.progress($1)",
        &[&job],
    ))
    .unwrap();
    for key in [
        "catalog_s",
        "schema_s",
        "data_s",
        "copy_cumulative_s",
        "indexes_cumulative_s",
        "post_data_s",
        "total_s",
    ] {
        assert!(p["phases"][key].is_number(), "phases lack {key}: {p}");
    }
    // Per unit: the copy of app.big and its index builds, with their times.
    let units = p["tables"].as_array().expect("units");
    let parts: Vec<&serde_json::Value> = units
        .iter()
        .filter(|u| u["kind"] == "copy" && u["label"].as_str().unwrap_or("").starts_with("app.big"))
        .collect();
    assert!(!parts.is_empty(), "app.big's copies in the units: {p}");
    let rows: i64 = parts.iter().map(|u| u["rows"].as_i64().unwrap_or(0)).sum();
    assert_eq!(rows, 3_000_000);
    assert!(
        parts.iter().all(|u| u["ms"].as_i64().unwrap_or(0) > 0),
        "{p}"
    );
    assert!(
        units
            .iter()
            .any(|u| u["label"] == "app.big" && u["kind"] == "index" && u["ms"].is_i64()),
        "{p}"
    );
    // Its primary key is built as a unique index beside its other index,
    // then made the key: the catalog read the key's index definition for
    // this large table (and only for large ones).
    let pk_apart: i64 = one(
        &mut c,
        "SELECT count(*) FROM pgclone.job_units WHERE job_id = $1 AND label = 'app.big' \
         AND kind = 'index' AND steps LIKE '%CREATE UNIQUE INDEX %big_pkey%'",
        &[&job],
    );
    assert_eq!(pk_apart, 1, "{p}");
    assert!(p["summary"].as_str().unwrap().contains("2 workers"), "{p}");
    assert_no_password(&env, &mut c, job);
    // Materialized views were refreshed by the workers, in dependency order.
    let refreshed: Vec<String> = c
        .query(
            "SELECT label FROM pgclone.job_units WHERE job_id = $1 AND kind = 'refresh' AND status = 'done' ORDER BY unit_id",
            &[&job],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        refreshed,
        [
            "materialized view app.big_by_n",
            "materialized view app.top_n"
        ]
    );
    // app.big, most of the data, was cut in two for the two workers.
    assert_eq!(big_copy_units(&mut c, job).len(), 2);
    // Whole tables were loaded frozen: every page all-visible at once.
    let r = c
        .query_one(
            "SELECT relpages, relallvisible FROM pg_class WHERE oid = 'app.child'::regclass",
            &[],
        )
        .unwrap();
    let (pages, visible): (i32, i32) = (r.get(0), r.get(1));
    assert!(pages > 0 && visible == pages, "{visible} of {pages}");
    // Finished jobs can be cleared; the secret goes with them.
    let cleared: i64 = one(&mut c, "SELECT pgclone.clear_jobs()", &[]);
    assert!(cleared >= 1);
    let left: i64 = one(
        &mut c,
        "SELECT (SELECT count(*) FROM pgclone.jobs) + (SELECT count(*) FROM pgclone.job_secrets)",
        &[],
    );
    assert_eq!(left, 0);
}

#[test]
fn cancel_stops_mid_copy_and_resume_completes() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    let (mut c, job) = job_copying_big(
        &env,
        "jobs_cancel",
        "SELECT pgclone.schema_async($1, 'app', true, '{\"parallel\": 2}')",
    );
    let asked = Instant::now();
    let cancelled: bool = one(&mut c, "SELECT pgclone.cancel($1)", &[&job]);
    assert!(cancelled);
    let (status, ..) = wait_until(&mut c, job, "cancelled", Duration::from_secs(10), |s| {
        s.0 != "running"
    });
    assert_eq!(status, "cancelled");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "took {:?} to stop",
        asked.elapsed()
    );
    // Stopped mid-COPY: the big table's parts are not done, and it holds no rows.
    let parts = big_copy_units(&mut c, job);
    assert!(
        !parts.is_empty() && parts.iter().all(|s| s == "pending"),
        "{parts:?}"
    );
    let rows: i64 = one(&mut c, "SELECT count(*) FROM app.big", &[]);
    assert_eq!(rows, 0);
    let workers: i64 = one(
        &mut c,
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'pgclone%'",
        &[],
    );
    assert_eq!(workers, 0, "no pgclone process is left");
    // cancel of a job that no longer runs says so
    let again: bool = one(&mut c, "SELECT pgclone.cancel($1)", &[&job]);
    assert!(!again);

    let next: i32 = one(&mut c, "SELECT pgclone.resume($1)", &[&job]);
    assert_ne!(next, job);
    let (status, _, _, err) = finished(&mut c, next);
    assert_eq!(status, "completed", "{err:?}");
    env.assert_same_database(SRC, "jobs_cancel", &["--schema", "app"]);
    // The same job cannot be resumed twice.
    let (code, msg) = expect_error(&mut c, &format!("SELECT pgclone.resume({job})"));
    assert_eq!(code, "55000");
    assert!(msg.contains("resumed already"), "{msg}");
}

#[test]
fn killed_worker_fails_the_job_and_resume_completes() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    let (mut c, job) = job_copying_big(
        &env,
        "jobs_kill",
        "SELECT pgclone.database_async($1, true, '{\"parallel\": 2}')",
    );
    // The worker copying app.big says so in pg_stat_activity.
    let pid: i32 = one(
        &mut c,
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgclone worker' \
         AND query LIKE format('pgclone job %s: app.big%%', $1::int) LIMIT 1",
        &[&job],
    );
    let killed: bool = one(&mut c, "SELECT pg_terminate_backend($1)", &[&pid]);
    assert!(killed);
    let (status, _, _, err) = wait_until(&mut c, job, "failed", Duration::from_secs(30), |s| {
        s.0 != "running"
    });
    assert_eq!(status, "failed");
    let err = err.unwrap_or_default();
    assert!(err.contains("terminat") || err.contains("ended"), "{err}");
    assert!(big_copy_units(&mut c, job).contains(&"pending".to_string()));

    let next: i32 = one(&mut c, "SELECT pgclone.resume($1)", &[&job]);
    let (status, _, _, err) = finished(&mut c, next);
    assert_eq!(status, "completed", "{err:?}");
    env.assert_same_database(SRC, "jobs_kill", &[]);
}

#[test]
fn server_restart_mid_job_shows_failed_and_resume_completes() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    let (c, job) = job_copying_big(
        &env,
        "jobs_restart",
        "SELECT pgclone.database_async($1, true, '{\"parallel\": 2}')",
    );
    drop(c);
    let data = std::env::var("PGCLONE_IT_TGT_DATA").expect("PGCLONE_IT_TGT_DATA");
    let log = std::env::var("PGCLONE_IT_TGT_LOG").expect("PGCLONE_IT_TGT_LOG");
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(format!("{}/pg_ctl", env.pgbin))
        .args(["restart", "-w", "-m", "fast", "-D", &data, "-l", &log])
        .output()
        .expect("pg_ctl");
    assert!(
        out.status.success(),
        "restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = env.client(env.tgt_port, "jobs_restart");
    let (status, _, _, err) = state(&mut c, job);
    assert_eq!(status, "failed");
    assert!(err.unwrap_or_default().contains("interrupted"));
    let next: i32 = one(&mut c, "SELECT pgclone.resume($1)", &[&job]);
    // The restart put the failure in the table itself.
    let stored: String = one(
        &mut c,
        "SELECT status FROM pgclone.jobs WHERE job_id = $1",
        &[&job],
    );
    assert_eq!(stored, "failed");
    let (status, _, _, err) = finished(&mut c, next);
    assert_eq!(status, "completed", "{err:?}");
    env.assert_same_database(SRC, "jobs_restart", &[]);
}

#[test]
fn two_jobs_at_once_and_a_split_table() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    source(&env);
    let mut a = target(&env, "jobs_two_a");
    let mut b = target(&env, "jobs_two_b");
    // Split every table above 64 MB into page ranges copied by both workers.
    let ja = start(
        &mut a,
        "SELECT pgclone.database_async($1, true, '{\"parallel\": 2, \"split_tables_larger_than\": \"64MB\"}')",
        &env,
    );
    let jb = start(
        &mut b,
        "SELECT pgclone.schema_async($1, 'app', true, '{\"parallel\": 1}')",
        &env,
    );
    let (sa, _, _, ea) = finished(&mut a, ja);
    let (sb, _, _, eb) = finished(&mut b, jb);
    assert_eq!(
        (sa.as_str(), sb.as_str()),
        ("completed", "completed"),
        "{ea:?} {eb:?}"
    );
    let chunks = big_copy_units(&mut a, ja);
    assert!(chunks.len() > 1, "app.big was not split: {chunks:?}");
    env.assert_same_database(SRC, "jobs_two_a", &[]);
    env.assert_same_database(SRC, "jobs_two_b", &["--schema", "app"]);
}

#[test]
fn table_async_and_synchronous_parallel_calls() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    source(&env);
    let mut c = target(&env, "jobs_sync");
    c.batch_execute("CREATE SCHEMA app").unwrap();
    let job = start(
        &mut c,
        "SELECT pgclone.table_async($1, 'app', 'child', true, 'child_copy')",
        &env,
    );
    let (status, _, _, err) = finished(&mut c, job);
    assert_eq!(status, "completed", "{err:?}");
    let r = c
        .query_one(
            "SELECT op_type, table_name, rows_copied FROM pgclone.jobs_view WHERE job_id = $1",
            &[&job],
        )
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "table");
    assert_eq!(r.get::<_, String>(1), "child_copy");
    assert_eq!(r.get::<_, i64>(2), 20_000);
    let n: i64 = one(&mut c, "SELECT count(*) FROM app.child_copy", &[]);
    assert_eq!(n, 20_000);

    // parallel on a table call is honoured: its one large table is cut into
    // parts that both workers copy.
    let summary: String = one(
        &mut c,
        "SELECT pgclone.table($1, 'app', 'big', true, 'big_copy', '{\"parallel\": 2}')",
        &[&env.src_conninfo(SRC)],
    );
    assert!(summary.contains("2 workers"), "{summary}");
    let job: i32 = one(&mut c, "SELECT max(job_id) FROM pgclone.jobs", &[]);
    let parts: i64 = one(
        &mut c,
        "SELECT count(*) FROM pgclone.job_units WHERE job_id = $1 AND kind = 'copy'",
        &[&job],
    );
    assert!(parts > 1, "app.big was copied whole");
    let (a, b) = (
        env.content(env.src_port, SRC, "app.big"),
        env.content(env.tgt_port, "jobs_sync", "app.big_copy"),
    );
    assert_eq!(a, b);

    // A synchronous call with parallel runs through the pool and returns the summary.
    empty_target(&env, "jobs_sync_db");
    let mut d = env.client(env.tgt_port, "jobs_sync_db");
    let summary: String = one(
        &mut d,
        "SELECT pgclone.database($1, true, '{\"parallel\": 2}')",
        &[&env.src_conninfo(SRC)],
    );
    assert!(summary.contains("2 workers"), "{summary}");
    env.assert_same_database(SRC, "jobs_sync_db", &[]);

    // Cancelled by its own statement_timeout, the caller's job is cancelled too.
    empty_target(&env, "jobs_sync_timeout");
    let mut t = env.client(env.tgt_port, "jobs_sync_timeout");
    t.batch_execute("SET statement_timeout = '1500ms'").unwrap();
    let err = t
        .query_one(
            "SELECT pgclone.schema($1, 'app', true, '{\"parallel\": 2}')",
            &[&env.src_conninfo(SRC)],
        )
        .expect_err("the timeout should stop it");
    assert_eq!(
        err.as_db_error().map(|e| e.code().code()),
        Some("57014"),
        "{err:?}"
    );
    t.batch_execute("RESET statement_timeout").unwrap();
    let job: i32 = one(&mut t, "SELECT max(job_id) FROM pgclone.jobs", &[]);
    let (status, ..) = wait_until(&mut t, job, "cancelled", Duration::from_secs(10), |s| {
        s.0 != "running"
    });
    assert_eq!(status, "cancelled");
}

#[test]
fn bad_job_input_is_refused_before_a_job_starts() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    let mut c = target(&env, "jobs_bad");
    for (sql, code) in [
        ("SELECT pgclone.schema_async(NULL, 'app')", "22004"),
        (
            "SELECT pgclone.schema_async('host=127.0.0.1', NULL)",
            "22004",
        ),
        (
            "SELECT pgclone.schema_async('host=127.0.0.1 bogus=1', 'app')",
            "22023",
        ),
        (
            "SELECT pgclone.database_async('host=127.0.0.1', true, '{\"parallel\": \"two\"}')",
            "22023",
        ),
        (
            "SELECT pgclone.schema_async('host=127.0.0.1', 'app', true, '{\"where\": \"true\"}')",
            "22023",
        ),
        ("SELECT pgclone.resume(424242)", "22023"),
        ("SELECT pgclone.progress(NULL)", "22004"),
    ] {
        let (got, msg) = expect_error(&mut c, sql);
        assert_eq!(got, code, "{sql}: {msg}");
    }
    let jobs: i64 = one(&mut c, "SELECT count(*) FROM pgclone.jobs", &[]);
    assert_eq!(jobs, 0, "no job was recorded");
    // A schema missing on the source fails the job, which creates nothing.
    let job: i32 = one(
        &mut c,
        "SELECT pgclone.schema_async($1, 'no_such_schema')",
        &[&env.src_conninfo("postgres")],
    );
    let (status, _, _, err) = finished(&mut c, job);
    assert_eq!(status, "failed");
    assert!(err.unwrap_or_default().contains("no_such_schema"));
    let code: Option<String> = one(
        &mut c,
        "SELECT error_sqlstate FROM pgclone.jobs WHERE job_id = $1",
        &[&job],
    );
    assert_eq!(code.as_deref(), Some("3F000"));
    assert!(!one::<bool>(
        &mut c,
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'no_such_schema')",
        &[]
    ));
}

/// Every object kind of the hard fixture, through the worker path: keys
/// built as unique indexes side by side, deferrable and NULLS NOT DISTINCT
/// constraints, partitions whose keys attach to their parents', FREEZE.
#[test]
fn hard_fixture_through_the_workers() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    for port in [env.src_port, env.tgt_port] {
        ensure_role(&env, port, "hard_owner");
        ensure_role(&env, port, "hard_reader");
    }
    database_from(
        &env,
        env.src_port,
        "jobs_hard",
        &[&format!("{FIXTURE_DIR}/hard.sql")],
    );
    empty_target(&env, "jobs_hard_t");
    let summary: String = env
        .client(env.tgt_port, "jobs_hard_t")
        .query_one(
            "SELECT pgclone.database($1, true, '{\"parallel\": 2}')",
            &[&env.src_conninfo("jobs_hard")],
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
        .get(0);
    assert!(summary.contains("2 workers"), "{summary}");
    env.assert_same_database("jobs_hard", "jobs_hard_t", &[]);
    assert_eq!(
        env.large_objects(env.src_port, "jobs_hard"),
        env.large_objects(env.tgt_port, "jobs_hard_t")
    );
}
