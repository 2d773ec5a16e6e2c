//! Tier 3: the engine's own promises between two real clusters: a
//! synchronous serial clone shows in jobs_view while it runs; a unit that
//! loads several small tables is all or nothing, so resuming after it was
//! cut short loads no row twice; a serial clone too large for one
//! transaction's locks runs as a job that commits as it goes; values the
//! source keeps uncompressed are loaded without compressing them, and the
//! table ends with its own storage.
//!
//! The tests of this file run one at a time: each loads both cores.

mod common;
use common::*;
use postgres::Client;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
static MADE: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Tables loaded slowly on the target: a CHECK calls a function that sleeps
/// 2 ms per row, so a clone is caught mid-unit at leisure.
const SLOW: &str = "CREATE SCHEMA {s};
    CREATE FUNCTION {s}.slow(int) RETURNS boolean LANGUAGE plpgsql AS
      $$BEGIN PERFORM pg_sleep(0.002); RETURN true; END$$;";

/// A source database per test, each one schema (the comparisons take whole
/// databases):
/// - engine_watch: two slow tables of 1500 rows (3 s each);
/// - engine_batch: ten small tables and one slow table of 1500 rows, few
///   enough to share one unit and all be named in its label;
/// - engine_many: 700 tables with a primary key and a text column (four
///   relations each), more than one transaction may lock on the test
///   target (max_locks_per_transaction 64, 72 backends: room for 2304);
/// - engine_toast: one table with 80 MB of TOAST: a column of 4 kB values
///   that pglz cannot shrink (stored uncompressed), one of values it
///   shrinks (stored compressed), and one of the former kind stored MAIN;
///   analyzed, never vacuumed, so its TOAST table's relpages says 0.
fn source(env: &Env, db: &'static str) {
    let mut made = MADE.lock().unwrap_or_else(|p| p.into_inner());
    if made.contains(&db) {
        return;
    }
    let sql = match db {
        "engine_watch" => format!(
            "{}
             CREATE TABLE watch.b1 (id int PRIMARY KEY CHECK (watch.slow(id)), t text);
             CREATE TABLE watch.b2 (id int PRIMARY KEY CHECK (watch.slow(id)), t text);
             INSERT INTO watch.b1 SELECT g, md5(g::text) FROM generate_series(1, 1500) g;
             INSERT INTO watch.b2 SELECT g, md5(g::text) FROM generate_series(1, 1500) g;",
            SLOW.replace("{s}", "watch")
        ),
        "engine_batch" => format!(
            "{}
             CREATE TABLE batch.slow_rows (id int PRIMARY KEY CHECK (batch.slow(id)), t text);
             INSERT INTO batch.slow_rows SELECT g, md5(g::text) FROM generate_series(1, 1500) g;
             DO $$BEGIN
               FOR i IN 1..10 LOOP
                 EXECUTE format('CREATE TABLE batch.t%s (id int PRIMARY KEY, v text)', i);
                 EXECUTE format('INSERT INTO batch.t%s SELECT g, md5(g::text) FROM generate_series(1, 200) g', i);
               END LOOP;
             END$$;",
            SLOW.replace("{s}", "batch")
        ),
        "engine_toast" => "CREATE SCHEMA toast;
             CREATE TABLE toast.docs (id int PRIMARY KEY, body text, note text, kept text);
             ALTER TABLE toast.docs ALTER COLUMN kept SET STORAGE MAIN;
             INSERT INTO toast.docs
             SELECT g, b, repeat('compressible ' || g, 300), CASE WHEN g % 50 = 0 THEN b END
             FROM (SELECT g, (SELECT string_agg(md5((g * 131 + k)::text), '' ORDER BY k)
                              FROM generate_series(1, 128) k) AS b
                   FROM generate_series(1, 20000) g) s;"
            .to_string(),
        _ => "CREATE SCHEMA many;
             DO $$BEGIN
               FOR i IN 1..700 LOOP
                 EXECUTE format('CREATE TABLE many.t%s (id int PRIMARY KEY, v text)', i);
                 EXECUTE format('INSERT INTO many.t%s VALUES (1, %L), (2, NULL)', i, 'row of ' || i);
               END LOOP;
             END$$;"
            .to_string(),
    };
    database_from(env, env.src_port, db, &[]);
    env.client(env.src_port, db)
        .batch_execute(&format!("{sql} ANALYZE;"))
        .unwrap_or_else(|e| panic!("{db}: {e:?}"));
    made.push(db);
}

/// Poll `sql` (one row) every 50 ms until `done` holds or `secs` pass.
fn poll<T>(
    c: &mut Client,
    sql: &str,
    secs: u64,
    what: &str,
    read: impl Fn(&postgres::Row) -> T,
    done: impl Fn(&T) -> bool,
) -> T
where
    T: std::fmt::Debug,
{
    let until = Instant::now() + Duration::from_secs(secs);
    let mut last = None;
    while Instant::now() < until {
        if let Some(r) = c.query_opt(sql, &[]).expect(sql) {
            let v = read(&r);
            if done(&v) {
                return v;
            }
            last = Some(v);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} not seen in {secs} s; last: {last:?}");
}

/// The source database `db` (made once) and an empty target of that name.
fn fresh(env: &Env, db: &'static str) {
    source(env, db);
    empty_target(env, db);
}

/// The status a job ends with (waits up to `secs` for it to stop running).
fn job_end(c: &mut Client, job: i32, secs: u64, what: &str) -> String {
    poll(
        c,
        &format!("SELECT status FROM pgclone.jobs_view WHERE job_id = {job}"),
        secs,
        what,
        |r| r.get(0),
        |s: &String| s != "running" && s != "pending",
    )
}

#[test]
fn a_serial_clone_shows_in_jobs_view_with_live_rows_and_bytes() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    fresh(&env, "engine_watch");
    let conninfo = env.src_conninfo("engine_watch");
    let clone = {
        std::thread::spawn(move || {
            let env = common::env();
            let mut c = env.client(env.tgt_port, "engine_watch");
            c.query_one("SELECT pgclone.schema($1, 'watch', true)", &[&conninfo])
                .map(|r| r.get::<_, String>(0))
        })
    };
    let mut w = env.client(env.tgt_port, "engine_watch");
    // While the second slow table loads, the first one's rows are counted
    // and the bytes of the COPY in flight show.
    let (status, op, rows, bytes) = poll(
        &mut w,
        "SELECT status, op_type, rows_copied, bytes_copied FROM pgclone.jobs_view \
         WHERE schema_name = 'watch' ORDER BY job_id DESC LIMIT 1",
        60,
        "a running serial clone with rows",
        |r| {
            (
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, i64>(2),
                r.get::<_, i64>(3),
            )
        },
        |v| v.0 == "running" && v.2 >= 1500,
    );
    assert_eq!((status.as_str(), op.as_str()), ("running", "schema"));
    assert!(rows < 3000, "caught after both tables: {rows}");
    assert!(bytes > 0, "no bytes while running");
    let summary = clone.join().expect("clone thread").expect("clone");
    assert!(summary.contains("3000 rows"), "{summary}");
    let (status, rows): (String, i64) = {
        let r = w
            .query_one(
                "SELECT status, rows_copied FROM pgclone.jobs_view \
                 WHERE schema_name = 'watch' ORDER BY job_id DESC LIMIT 1",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((status.as_str(), rows), ("completed", 3000));
    env.assert_same_database("engine_watch", "engine_watch", &[]);
}

#[test]
fn a_batched_unit_cut_short_loads_nothing_twice_on_resume() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    fresh(&env, "engine_batch");
    let mut c = env.client(env.tgt_port, "engine_batch");
    let job: i32 = one(
        &mut c,
        "SELECT pgclone.schema_async($1, 'batch', true, '{\"parallel\": 2}')",
        &[&env.src_conninfo("engine_batch")],
    );
    // The unit that loads batch.slow_rows loads the small tables too.
    let (unit, kind, label): (i32, String, String) = poll(
        &mut c,
        &format!(
            "SELECT unit_id, kind, label FROM pgclone.job_units \
             WHERE job_id = {job} AND label LIKE '%batch.slow_rows%'"
        ),
        30,
        "the plan",
        |r| (r.get(0), r.get(1), r.get(2)),
        |_| true,
    );
    assert_eq!(kind, "tables", "{label}");
    let mates: Vec<String> = label
        .split(", ")
        .filter(|t| t.starts_with("batch.t"))
        .map(str::to_string)
        .collect();
    assert!(!mates.is_empty(), "batch.slow_rows loads alone: {label}");
    // Caught while it loads batch.slow_rows (3 s), its worker is killed.
    let pid: i32 = poll(
        &mut c,
        &format!(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgclone worker' \
             AND query LIKE 'pgclone job {job}: %batch.slow_rows%'"
        ),
        30,
        "the worker of the batch",
        |r| r.get(0),
        |_| true,
    );
    std::thread::sleep(Duration::from_millis(500));
    let killed: bool = one(&mut c, "SELECT pg_terminate_backend($1)", &[&pid]);
    assert!(killed);
    let status: String = job_end(&mut c, job, 30, "the job's failure");
    assert_eq!(status, "failed");
    let pending: String = one(
        &mut c,
        "SELECT status FROM pgclone.job_units WHERE job_id = $1 AND unit_id = $2",
        &[&job, &unit],
    );
    assert_eq!(pending, "pending");
    // Nothing of the unit is left: not the tables it had loaded before.
    for t in mates.iter().chain([&"batch.slow_rows".to_string()]) {
        let there: bool = one(&mut c, "SELECT to_regclass($1) IS NOT NULL", &[t]);
        assert!(!there, "{t} outlived its unit");
    }
    let next: i32 = one(&mut c, "SELECT pgclone.resume($1)", &[&job]);
    let status: String = job_end(&mut c, next, 120, "the resumed job's end");
    assert_eq!(status, "completed");
    // Every table once: counts and contents equal the source's.
    env.assert_same_database("engine_batch", "engine_batch", &[]);
}

#[test]
fn a_serial_clone_beyond_the_lock_budget_runs_as_a_job() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    fresh(&env, "engine_many");
    let (mut c, notices) = client_hearing(&env, env.tgt_port, "postgres", "engine_many");
    let summary: String = one(
        &mut c,
        "SELECT pgclone.schema($1, 'many', true)",
        &[&env.src_conninfo("engine_many")],
    );
    let said = notices.lock().unwrap().join("\n");
    assert!(
        said.contains("more than one transaction can lock here"),
        "{said}"
    );
    assert!(summary.contains("job"), "{summary}");
    let n: i64 = one(
        &mut c,
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'many' AND c.relkind = 'r'",
        &[],
    );
    assert_eq!(n, 700);
    env.assert_same_database("engine_many", "engine_many", &[]);
}

#[test]
fn uncompressed_values_load_as_they_are_and_the_table_keeps_its_storage() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    fresh(&env, "engine_toast");
    let mut c = env.client(env.tgt_port, "engine_toast");
    // A job keeps its units (a synchronous clone holds them in memory).
    let job: i32 = one(
        &mut c,
        "SELECT pgclone.schema_async($1, 'toast', true, '{\"parallel\": 2}')",
        &[&env.src_conninfo("engine_toast")],
    );
    assert_eq!(job_end(&mut c, job, 120, "the clone"), "completed");
    // The plan loaded `body` (source values uncompressed) with EXTERNAL
    // storage and gave EXTENDED back; `note` (compressed on the source) and
    // `kept` (MAIN) were left alone.
    let steps: String = one(
        &mut c,
        "SELECT string_agg(steps, ' ') FROM pgclone.job_units WHERE job_id = $1",
        &[&job],
    );
    for (want, what) in [
        (
            "ALTER COLUMN \\\"body\\\" SET STORAGE EXTERNAL",
            "body loaded EXTERNAL",
        ),
        (
            "ALTER COLUMN \\\"body\\\" SET STORAGE EXTENDED",
            "body given back",
        ),
    ] {
        assert!(steps.contains(want), "{what}: {steps}");
    }
    assert!(!steps.contains("\\\"note\\\" SET STORAGE"), "note: {steps}");
    assert!(
        !steps.contains("\\\"kept\\\" SET STORAGE EXTERNAL"),
        "kept: {steps}"
    );
    // Storage and how each value is stored are the source's.
    let stored = "SELECT string_agg(attname || ' ' || attstorage::text, ', ' ORDER BY attnum) || ' / ' || \
                  (SELECT string_agg(x, ', ') FROM (SELECT DISTINCT \
                     coalesce(pg_column_compression(body), '-') || coalesce(pg_column_compression(note), '-') AS x \
                   FROM toast.docs ORDER BY 1) s) \
                  FROM pg_attribute WHERE attrelid = 'toast.docs'::regclass AND attnum > 0";
    let src: String = one(&mut env.client(env.src_port, "engine_toast"), stored, &[]);
    let tgt: String = one(&mut c, stored, &[]);
    assert_eq!(src, "id p, body x, note x, kept m / -pglz");
    assert_eq!(tgt, src);
    env.assert_same_database("engine_toast", "engine_toast", &[]);
}
