//! Tier 3: pgclone played against as an attacker would. A non-superuser
//! operator tries to become superuser or another operator, a source schema
//! written by an untrusted role tries to run its code with the caller's
//! rights, a hostile server sends what no server should, and faults
//! (cancels, killed sessions, a full disk) must leave nothing half-made.
//!
//! The tests run one at a time: some hold locks on the source, restart
//! nothing, but load both cores.

mod common;
use common::*;
use postgres::Client;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
static SOURCE: Mutex<bool> = Mutex::new(false);

const SRC: &str = "sec_src";

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// The source: an ordinary schema `app`, the untrusted schemas of the
/// privilege tests (each written by its own non-superuser role), a schema
/// named `pgclone` that is not an extension there, and 1500 small tables in
/// `many` for cancels during the catalog phase.
fn source(env: &Env) {
    let mut ready = SOURCE.lock().unwrap_or_else(|p| p.into_inner());
    if *ready {
        return;
    }
    for role in UNTRUSTED.iter().chain(&["onex"]) {
        ensure_role(env, env.src_port, role);
        ensure_role(env, env.tgt_port, role);
    }
    database_from(env, env.src_port, SRC, &[]);
    let mut c = env.client(env.src_port, SRC);
    c.batch_execute(
        "CREATE SCHEMA app;
         CREATE TABLE app.small (id int PRIMARY KEY, note text);
         INSERT INTO app.small SELECT g, 'n' || g FROM generate_series(1, 1000) g;
         CREATE TABLE app.locked (id int PRIMARY KEY, payload text);
         INSERT INTO app.locked SELECT g, repeat('p', 50) FROM generate_series(1, 1000) g;
         CREATE TABLE app.zero ();
         INSERT INTO app.zero DEFAULT VALUES; INSERT INTO app.zero DEFAULT VALUES;
         CREATE TABLE app.extra_box (id int);
         CREATE TABLE app.big (id bigint PRIMARY KEY, payload text NOT NULL);
         INSERT INTO app.big SELECT g, md5(g::text) || repeat('x', 200) FROM generate_series(1, 200000) g;
         CREATE SCHEMA pgclone;
         CREATE TABLE pgclone.jobs (id int);
         CREATE TABLE pgclone.foo (id int);
         CREATE SCHEMA many;
         ALTER ROLE onex LOGIN PASSWORD 'x';
         GRANT USAGE ON SCHEMA app TO onex;
         GRANT SELECT ON ALL TABLES IN SCHEMA app TO onex;",
    )
    .expect("security source");
    // In transactions of 250 tables: one holding all 1500 would overflow the
    // lock table of a server with max_connections = 50.
    for from in (1..=1500).step_by(250) {
        c.batch_execute(&format!(
            "DO $$ BEGIN FOR i IN {from}..{} LOOP
               EXECUTE format('CREATE TABLE many.t%s (id int PRIMARY KEY, v text CHECK (v <> ''''))', i);
             END LOOP; END $$;",
            from + 249
        ))
        .expect("many tables");
    }
    for role in UNTRUSTED {
        c.batch_execute(&untrusted_schema(role))
            .unwrap_or_else(|e| panic!("{role}: {e:?}"));
    }
    c.batch_execute("ANALYZE").expect("analyze");
    *ready = true;
}

/// Roles that write a schema meant to raise their privileges on whoever
/// clones it; each tries through one kind of code the clone might run.
const UNTRUSTED: [&str; 6] = [
    "mal_check",
    "mal_domain",
    "mal_generated",
    "mal_index",
    "mal_matview",
    "mal_path",
];

/// A schema owned by `role`, written by it, whose code tries `ALTER ROLE
/// <role> SUPERUSER` whenever it runs (quietly, so the clone goes on).
fn untrusted_schema(role: &str) -> String {
    let body = match role {
        "mal_check" => "CREATE TABLE t (n int CHECK (escalate(n)));",
        "mal_domain" => "CREATE DOMAIN d AS int CHECK (escalate(VALUE)); CREATE TABLE t (n d);",
        "mal_generated" => "CREATE TABLE t (n int, g int GENERATED ALWAYS AS (sneaky(n)) STORED);",
        "mal_index" => "CREATE TABLE t (n int); CREATE INDEX ON t ((sneaky(n)));",
        // Leaves a search_path behind for whatever runs after it: pgclone's
        // own statements, or the caller's session.
        "mal_path" => {
            "CREATE FUNCTION leave_path(x int) RETURNS boolean LANGUAGE plpgsql AS $g$
             BEGIN
               PERFORM pg_catalog.set_config('search_path', 'mal_path, pg_catalog', false);
               RETURN true;
             END $g$;
             CREATE TABLE t (n int CHECK (leave_path(n)));"
        }
        _ => {
            "CREATE TABLE t (n int);
             CREATE MATERIALIZED VIEW mv AS SELECT n, escalate(n) AS e FROM t WITH NO DATA;"
        }
    };
    let refresh = if role == "mal_matview" {
        "REFRESH MATERIALIZED VIEW mv;"
    } else {
        ""
    };
    let insert = if ["mal_matview", "mal_check", "mal_index", "mal_path"].contains(&role) {
        "INSERT INTO t SELECT g FROM generate_series(1, 50) g;"
    } else {
        "INSERT INTO t (n) SELECT g FROM generate_series(1, 50) g;"
    };
    format!(
        "CREATE SCHEMA {role} AUTHORIZATION {role};
         SET ROLE {role};
         SET search_path = {role};
         CREATE FUNCTION escalate(x int) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $f$
         BEGIN
           BEGIN
             EXECUTE 'ALTER ROLE {role} SUPERUSER';
           EXCEPTION WHEN OTHERS THEN NULL;
           END;
           RETURN true;
         END $f$;
         CREATE FUNCTION sneaky(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$
         BEGIN
           PERFORM {role}.escalate(x);
           RETURN x;
         END $f$;
         {body}
         {insert}
         {refresh}
         RESET search_path;
         RESET ROLE;"
    )
}

fn role_is_superuser(c: &mut Client, role: &str) -> bool {
    c.query_one(
        "SELECT coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = $1), false)",
        &[&role],
    )
    .expect("rolsuper")
    .get(0)
}

/// A target database with pgclone and an operator role `op` that logs in
/// (trust on the local socket, as the test clusters are set up).
fn target_with_operator(env: &Env, db: &str, ops: &[&str]) -> Client {
    empty_target(env, db);
    let mut c = env.client(env.tgt_port, db);
    // Roles are cluster-wide: an attack that worked in an earlier run must
    // not be mistaken for one that works now.
    for role in ops.iter().chain(&UNTRUSTED) {
        c.batch_execute(&format!(
            "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN \
               ALTER ROLE {role} NOSUPERUSER; END IF; END $$;"
        ))
        .expect("reset role");
    }
    for op in ops {
        c.batch_execute(&format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{op}') THEN \
               CREATE ROLE {op} LOGIN; END IF; END $$; \
             GRANT pgclone_operator TO {op}; \
             GRANT CREATE ON DATABASE {db} TO {op}; \
             GRANT CREATE ON SCHEMA public TO {op};"
        ))
        .expect("operator");
    }
    c
}

fn client_as(env: &Env, db: &str, role: &str) -> Client {
    Client::connect(
        &format!(
            "host={} port={} user={role} dbname={db}",
            env.sock, env.tgt_port
        ),
        postgres::NoTls,
    )
    .unwrap_or_else(|e| panic!("connect as {role}: {e}"))
}

/// Wait until the job is no longer running; returns its status.
fn finished(c: &mut Client, job: i32) -> String {
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let s: String = one(
            c,
            "SELECT status FROM pgclone.jobs_view WHERE job_id = $1",
            &[&job],
        );
        if s != "running" && s != "pending" {
            return s;
        }
        assert!(Instant::now() < until, "job {job} still {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Hold an ACCESS EXCLUSIVE lock on a source table until the guard drops,
/// so a clone's COPY of it waits (a clone caught "mid-copy", every time).
struct SourceLock(Client);

fn lock_on_source(env: &Env, table: &str) -> SourceLock {
    let mut c = env.client(env.src_port, SRC);
    c.batch_execute(&format!(
        "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
    ))
    .expect("lock");
    SourceLock(c)
}

impl Drop for SourceLock {
    fn drop(&mut self) {
        let _ = self.0.batch_execute("ROLLBACK");
    }
}

/// The sessions pgclone holds on the source right now.
fn source_sessions(env: &Env) -> i64 {
    one(
        &mut env.client(env.src_port, "postgres"),
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pgclone'",
        &[&SRC],
    )
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < until, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

// ------------------------------------------------------------- privileges

/// Hole 1: an operator who owns operators and functions that shadow the
/// built-in ones, first on its search_path, calls every job function; none
/// of them may run its code with raised privileges.
#[test]
fn operator_cannot_become_superuser_through_the_job_functions() {
    let _g = serial();
    let env = env();
    source(&env);
    let db = "sec_hijack";
    let mut su = target_with_operator(&env, db, &["sec_evil"]);
    // A job of the superuser's, and one of the operator's own, so the job
    // functions have rows to compare, whoever they show them to.
    let ci = env.src_conninfo(SRC);
    let mut evil = client_as(&env, db, "sec_evil");
    let mine: i32 = one(
        &mut evil,
        "SELECT pgclone.table_async($1, 'app', 'small')",
        &[&ci],
    );
    assert_eq!(finished(&mut evil, mine), "completed");
    let job: i32 = one(
        &mut su,
        "SELECT pgclone.table_async($1, 'app', 'extra_box')",
        &[&ci],
    );
    assert_eq!(finished(&mut su, job), "completed");
    evil.batch_execute(
        "CREATE SCHEMA evil;
         CREATE FUNCTION evil.grab() RETURNS void LANGUAGE plpgsql AS $f$
         BEGIN
           BEGIN EXECUTE 'ALTER ROLE sec_evil SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
         END $f$;
         CREATE FUNCTION evil.texteq(text, text) RETURNS boolean LANGUAGE plpgsql AS $f$
         BEGIN PERFORM evil.grab(); RETURN $1 OPERATOR(pg_catalog.=) $2; END $f$;
         CREATE FUNCTION evil.textne(text, text) RETURNS boolean LANGUAGE plpgsql AS $f$
         BEGIN PERFORM evil.grab(); RETURN $1 OPERATOR(pg_catalog.<>) $2; END $f$;
         CREATE FUNCTION evil.int4eq(int, int) RETURNS boolean LANGUAGE plpgsql AS $f$
         BEGIN PERFORM evil.grab(); RETURN $1 OPERATOR(pg_catalog.=) $2; END $f$;
         CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq);
         CREATE OPERATOR evil.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.textne);
         CREATE OPERATOR evil.= (LEFTARG = int, RIGHTARG = int, FUNCTION = evil.int4eq);
         CREATE FUNCTION evil.format(text, text, text) RETURNS text LANGUAGE plpgsql AS $f$
         BEGIN PERFORM evil.grab(); RETURN 'x'; END $f$;
         SET search_path = evil, pg_catalog, public;",
    )
    .expect("hijack");
    let calls = [
        "SELECT count(*) FROM pgclone.jobs_view".to_string(),
        "SELECT pgclone.jobs()".to_string(),
        format!("SELECT pgclone.progress({mine})"),
        "SELECT count(*) FROM pgclone.progress_detail()".to_string(),
        format!("SELECT pgclone.cancel({mine})"),
        format!("SELECT pgclone.resume({mine})"),
        format!("SELECT pgclone.discard({mine})"),
        "SELECT pgclone.clear_jobs()".to_string(),
        format!("SELECT pgclone.progress({job})"),
        format!("SELECT pgclone.cancel({job})"),
    ];
    for sql in &calls {
        // Refusals are fine; running the operator's code as someone else is not.
        let _ = evil.batch_execute(sql);
        assert!(
            !role_is_superuser(&mut su, "sec_evil"),
            "{sql} ran the operator's code as superuser"
        );
    }
    // The functions pin their own search_path.
    let config: Vec<String> = su
        .query(
            "SELECT p.proname || ' ' || coalesce(array_to_string(p.proconfig, ','), '-') \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = 'pgclone' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!config.is_empty());
    for c in &config {
        assert!(c.ends_with("search_path=pg_catalog, pg_temp"), "{c}");
    }
}

/// Hole 2: a job belongs to the role that started it. Another operator
/// neither sees it nor cancels, resumes, discards or clears it, and a
/// superuser who resumes it runs it as its owner.
#[test]
fn jobs_belong_to_the_role_that_started_them() {
    let _g = serial();
    let env = env();
    source(&env);
    let db = "sec_owners";
    let mut su = target_with_operator(&env, db, &["sec_op_a", "sec_op_b"]);
    let ci = env.src_conninfo(SRC);
    let mut a = client_as(&env, db, "sec_op_a");
    let mut b = client_as(&env, db, "sec_op_b");
    let job = {
        let _lock = lock_on_source(&env, "app.locked");
        let job: i32 = one(
            &mut a,
            "SELECT pgclone.table_async($1, 'app', 'locked')",
            &[&ci],
        );
        // B sees nothing of A's job, and cannot touch it.
        let seen: i64 = one(
            &mut b,
            "SELECT count(*) FROM pgclone.jobs_view WHERE job_id = $1",
            &[&job],
        );
        assert_eq!(seen, 0, "another operator's job is visible");
        let all: String = one(&mut b, "SELECT pgclone.jobs()", &[]);
        assert!(!all.contains(&format!("\"job_id\":{job}")), "{all}");
        let (code, _) = expect_error(&mut b, &format!("SELECT pgclone.progress({job})"));
        assert_eq!(code, "22023");
        let cancelled: bool = one(&mut b, "SELECT pgclone.cancel($1)", &[&job]);
        assert!(!cancelled, "another operator cancelled the job");
        let rows: i64 = one(&mut b, "SELECT count(*) FROM pgclone.jobs", &[]);
        assert_eq!(rows, 0, "the job table shows another role's rows");
        let secrets: i64 = one(&mut b, "SELECT count(*) FROM pgclone.job_secrets", &[]);
        assert_eq!(secrets, 0);
        // Nor can it plant rows in the job tables for a job to run: an
        // operator only reads its own rows, and writes none.
        for sql in [
            format!("INSERT INTO pgclone.job_units (job_id, unit_id, stage, kind, label, steps, owner_oid) \
                     VALUES ({job}, 99999, 'Data', 'ddl', 'x', '[]', 0)"),
            format!("INSERT INTO pgclone.job_undo (job_id, seq, sql, owner_oid) VALUES ({job}, 99, 'SELECT 1', 0)"),
            format!("UPDATE pgclone.jobs SET status = 'failed' WHERE job_id = {job}"),
            "INSERT INTO pgclone.jobs (job_id, status, op_type, request, source, owner_name, owner_oid, workers) \
             VALUES (424242, 'failed', 'schema', '{}', '', 'x', 0, 1)"
                .to_string(),
            "SELECT nextval('pgclone.jobs_job_id_seq')".to_string(),
        ] {
            let (code, _) = expect_error(&mut b, &sql);
            assert_eq!(code, "42501", "{sql}");
        }
        // The superuser sees it; A cancels it.
        let seen: i64 = one(
            &mut su,
            "SELECT count(*) FROM pgclone.jobs_view WHERE job_id = $1",
            &[&job],
        );
        assert_eq!(seen, 1);
        let status: String = one(
            &mut a,
            "SELECT status FROM pgclone.jobs_view WHERE job_id = $1",
            &[&job],
        );
        assert_eq!(status, "running", "B's cancel stopped A's job");
        let ok: bool = one(&mut a, "SELECT pgclone.cancel($1)", &[&job]);
        assert!(ok);
        assert_eq!(finished(&mut a, job), "cancelled");
        job
    };
    // B can neither resume (with A's stored credentials) nor discard nor clear it.
    for sql in [
        format!("SELECT pgclone.resume({job})"),
        format!("SELECT pgclone.discard({job})"),
    ] {
        let (code, msg) = expect_error(&mut b, &sql);
        assert_eq!(code, "22023", "{sql}: {msg}");
        assert!(msg.contains("there is no job"), "{msg}");
    }
    let cleared: i64 = one(&mut b, "SELECT pgclone.clear_jobs()", &[]);
    assert_eq!(cleared, 0);
    let still: i64 = one(
        &mut su,
        "SELECT count(*) FROM pgclone.jobs WHERE job_id = $1",
        &[&job],
    );
    assert_eq!(still, 1);
    // A superuser resumes A's job: it runs as A, not as the superuser.
    let next: i32 = one(&mut su, "SELECT pgclone.resume($1)", &[&job]);
    let owner: String = one(
        &mut su,
        "SELECT owner_name::text FROM pgclone.jobs WHERE job_id = $1",
        &[&next],
    );
    assert_eq!(owner, "sec_op_a");
    assert_eq!(finished(&mut a, next), "completed");
    let rows: i64 = one(&mut a, "SELECT count(*) FROM app.locked", &[]);
    assert_eq!(rows, 1000);
    // A may not hand tables to postgres: the table stays A's, not the superuser's.
    let owner: String = one(
        &mut su,
        "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = 'app.locked'::regclass",
        &[],
    );
    assert_eq!(owner, "sec_op_a");
}

/// A job belongs to a role, not to a name: a role dropped and made again
/// under the same name sees nothing of the old one's jobs or credentials.
#[test]
fn a_recreated_role_inherits_no_jobs() {
    let _g = serial();
    let env = env();
    source(&env);
    let db = "sec_recreated";
    let mut su = target_with_operator(&env, db, &["sec_phoenix"]);
    let ci = env.src_conninfo(SRC);
    let mut op = client_as(&env, db, "sec_phoenix");
    let job: i32 = one(
        &mut op,
        "SELECT pgclone.table_async($1, 'app', 'small')",
        &[&ci],
    );
    assert_eq!(finished(&mut op, job), "completed");
    let cancelled_job: i32 = {
        let _lock = lock_on_source(&env, "app.locked");
        let j: i32 = one(
            &mut op,
            "SELECT pgclone.table_async($1, 'app', 'locked')",
            &[&ci],
        );
        assert!(one::<bool>(&mut op, "SELECT pgclone.cancel($1)", &[&j]));
        assert_eq!(finished(&mut op, j), "cancelled");
        j
    };
    let kept: i64 = one(
        &mut su,
        "SELECT count(*) FROM pgclone.job_secrets WHERE job_id = $1",
        &[&cancelled_job],
    );
    assert_eq!(kept, 1, "a cancelled job keeps its conninfo for resume");
    drop(op);
    su.batch_execute(
        "REASSIGN OWNED BY sec_phoenix TO postgres; DROP OWNED BY sec_phoenix; DROP ROLE sec_phoenix; \
         CREATE ROLE sec_phoenix LOGIN; GRANT pgclone_operator TO sec_phoenix;",
    )
    .unwrap();
    let mut again = client_as(&env, db, "sec_phoenix");
    for table in ["jobs", "job_units", "job_secrets", "job_undo"] {
        let n: i64 = one(
            &mut again,
            &format!("SELECT count(*) FROM pgclone.{table}"),
            &[],
        );
        assert_eq!(n, 0, "the new role sees the old one's {table}");
    }
    let (code, _) = expect_error(
        &mut again,
        &format!("SELECT pgclone.resume({cancelled_job})"),
    );
    assert_eq!(code, "22023");
    // The next job call forgets the credentials of a role that is gone.
    let _ = again.batch_execute("SELECT pgclone.clear_jobs()");
    let left: i64 = one(&mut su, "SELECT count(*) FROM pgclone.job_secrets", &[]);
    assert_eq!(left, 0, "a dropped role's conninfo is kept");
}

/// Hole 3: a superuser clones schemas whose CHECK function, domain check,
/// generated column, index expression and materialized view query try to
/// make their (non-superuser) author a superuser. They run as their owner,
/// serially, in a job, and through table().
#[test]
fn untrusted_code_runs_as_its_owner_never_as_the_caller() {
    let _g = serial();
    let env = env();
    source(&env);
    let ci = env.src_conninfo(SRC);
    for (mode, db) in [
        ("serial", "sec_untrusted_serial"),
        ("job", "sec_untrusted_job"),
    ] {
        let mut su = target_with_operator(&env, db, &[]);
        for role in UNTRUSTED {
            match mode {
                "serial" => {
                    let path: String = one(&mut su, "SHOW search_path", &[]);
                    su.query_one("SELECT pgclone.schema($1, $2)", &[&ci, &role])
                        .unwrap_or_else(|e| panic!("{role}: {e:?}"));
                    let after: String = one(&mut su, "SHOW search_path", &[]);
                    assert_eq!(path, after, "{role} changed the caller's search_path");
                }
                _ => {
                    let job: i32 = one(
                        &mut su,
                        "SELECT pgclone.schema_async($1, $2, true, '{\"parallel\": 2}')",
                        &[&ci, &role],
                    );
                    let status = finished(&mut su, job);
                    let err: Option<String> = one(
                        &mut su,
                        "SELECT error_message FROM pgclone.jobs_view WHERE job_id = $1",
                        &[&job],
                    );
                    assert_eq!(status, "completed", "{role}: {err:?}");
                }
            }
            assert!(
                !role_is_superuser(&mut su, role),
                "{mode}: cloning {role} ran its code as the superuser"
            );
            let n: i64 = one(&mut su, &format!("SELECT count(*) FROM {role}.t"), &[]);
            assert_eq!(n, 50, "{mode} {role}");
            assert_same_text(
                &env.dump(env.src_port, SRC, &[&format!("{role}.*")]),
                &env.dump(env.tgt_port, db, &[&format!("{role}.*")]),
                &format!("{mode} {role}"),
            );
        }
    }
    // table(): the COPY of a single table runs as its owner too.
    let db = "sec_untrusted_table";
    let mut su = target_with_operator(&env, db, &[]);
    su.batch_execute(
        "CREATE SCHEMA mal_check AUTHORIZATION mal_check;
         SET ROLE mal_check;
         CREATE FUNCTION mal_check.escalate(x int) RETURNS boolean LANGUAGE plpgsql AS $f$
         BEGIN
           BEGIN EXECUTE 'ALTER ROLE mal_check SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
           RETURN true;
         END $f$;
         RESET ROLE;",
    )
    .expect("function on the target");
    su.query_one("SELECT pgclone.table($1, 'mal_check', 't')", &[&ci])
        .expect("table clone");
    assert!(!role_is_superuser(&mut su, "mal_check"));
    for role in UNTRUSTED {
        assert!(!role_is_superuser(
            &mut env.client(env.src_port, "postgres"),
            role
        ));
    }
}

/// Hole 4: a `trust` line on this server must not let an operator in as
/// `postgres` with any password: the server has to ask for it.
#[test]
fn trust_does_not_lend_the_servers_identity() {
    let _g = serial();
    let env = env();
    let db = "sec_trust";
    let mut su = target_with_operator(&env, db, &["sec_truster"]);
    // The test clusters trust TCP logins to the database pgclone_trust.
    su.batch_execute("DROP DATABASE IF EXISTS pgclone_trust")
        .expect("drop");
    su.batch_execute("CREATE DATABASE pgclone_trust")
        .expect("create");
    env.client(env.tgt_port, "pgclone_trust")
        .batch_execute(
            "CREATE TABLE lent (secret text); INSERT INTO lent VALUES ('server identity')",
        )
        .expect("table");
    let ci = format!(
        "host=127.0.0.1 port={} dbname=pgclone_trust user=postgres password=anything",
        env.tgt_port
    );
    let mut op = client_as(&env, db, "sec_truster");
    let before = env.relations(env.tgt_port, db);
    let (code, msg) = expect_error(
        &mut op,
        &format!("SELECT pgclone.table({}, 'public', 'lent')", lit(&ci)),
    );
    assert_eq!(code, "42501", "{msg}");
    assert!(msg.contains("did not ask for the password"), "{msg}");
    assert!(!msg.contains("anything"), "{msg}");
    assert_eq!(before, env.relations(env.tgt_port, db));
    // A superuser may (it could read the data anyway).
    su.query_one("SELECT pgclone.table($1, 'public', 'lent')", &[&ci])
        .expect("superuser over trust");
}

/// Hole 5: a source schema named `pgclone` never drops, renames or writes
/// into the target's extension schema, whatever the conflict mode.
#[test]
fn a_source_schema_named_pgclone_leaves_the_extension_alone() {
    let _g = serial();
    let env = env();
    source(&env);
    let db = "sec_extschema";
    let mut su = target_with_operator(&env, db, &[]);
    let ci = lit(&env.src_conninfo(SRC));
    let intact = |c: &mut Client| {
        let n: i64 = one(
            c,
            "SELECT count(*) FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace \
             WHERE x.extname = 'pgclone' AND n.nspname = 'pgclone'",
            &[],
        );
        assert_eq!(n, 1, "the extension moved or went");
        let cols: i64 = one(
            c,
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'pgclone.jobs'::regclass AND attname = 'status'",
            &[],
        );
        assert_eq!(cols, 1, "the job table was replaced");
        let foo: i64 = one(
            c,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'pgclone' AND c.relname = 'foo'",
            &[],
        );
        assert_eq!(
            foo, 0,
            "a source table was written into the extension's schema"
        );
    };
    for mode in ["error", "replace", "rename"] {
        let (code, msg) = expect_error(
            &mut su,
            &format!(
                "SELECT pgclone.schema({ci}, 'pgclone', true, '{{\"conflict\": \"{mode}\"}}')"
            ),
        );
        assert_eq!(code, "42501", "{mode}: {msg}");
        assert!(msg.contains("extension"), "{msg}");
        intact(&mut su);
    }
    let skipped: String = one(
        &mut su,
        &format!("SELECT pgclone.schema({ci}, 'pgclone', true, '{{\"conflict\": \"skip\"}}')"),
        &[],
    );
    assert!(skipped.contains("cloned"), "{skipped}");
    intact(&mut su);
    for (table, mode) in [
        ("jobs", "replace"),
        ("jobs", "rename"),
        ("foo", "error"),
        ("foo", "replace"),
    ] {
        let (code, msg) = expect_error(
            &mut su,
            &format!("SELECT pgclone.table({ci}, 'pgclone', '{table}', true, NULL, '{{\"conflict\": \"{mode}\"}}')"),
        );
        assert_eq!(code, "42501", "{table} {mode}: {msg}");
        intact(&mut su);
    }
    let (code, msg) = expect_error(
        &mut su,
        &format!("SELECT pgclone.database({ci}, false, '{{\"include_schemas\": [\"pgclone\", \"app\"]}}')"),
    );
    assert_eq!(code, "42501", "{msg}");
    intact(&mut su);
    // A job takes the same care.
    let job: i32 = one(
        &mut su,
        &format!(
            "SELECT pgclone.schema_async({ci}, 'pgclone', true, '{{\"conflict\": \"replace\"}}')"
        ),
        &[],
    );
    assert_eq!(finished(&mut su, job), "failed");
    intact(&mut su);
}

/// Hole 6: an operator cannot use sslrootcert, sslcert or sslkey to learn
/// which files exist on the server; under pgclone.ssl_dir it may name them.
#[test]
fn files_on_the_server_are_for_superusers() {
    let _g = serial();
    let env = env();
    let db = "sec_files";
    let mut su = target_with_operator(&env, db, &["sec_prober"]);
    let mut op = client_as(&env, db, "sec_prober");
    let base = format!(
        "host=localhost port={} dbname=postgres user=postgres password={} sslmode=verify-full sslrootcert=system",
        env.tls_port, env.password
    );
    let mut seen = Vec::new();
    for (key, path) in [
        ("sslrootcert", "/etc/passwd"),
        ("sslrootcert", "/no/such/file"),
        ("sslcert", "/etc/passwd"),
        ("sslkey", "/etc/shadow"),
        ("sslrootcert", "/tmp/../etc/passwd"),
    ] {
        let ci = format!("{base} {key}={path}");
        let (code, msg) = expect_error(
            &mut op,
            &format!("SELECT pgclone.table({}, 'app', 'small')", lit(&ci)),
        );
        assert_eq!(code, "42501", "{key}={path}: {msg}");
        assert!(!msg.contains(path), "{msg}");
        seen.push((key, msg));
    }
    assert_eq!(
        seen[0].1, seen[1].1,
        "an existing and a missing file must look alike"
    );
    // A superuser names files as it likes (and learns what it could read anyway).
    let (code, msg) = expect_error(
        &mut su,
        &format!(
            "SELECT pgclone.table({}, 'app', 'small')",
            lit(&format!("{base} sslrootcert=/no/such/file"))
        ),
    );
    assert_eq!(code, "08001", "{msg}");
    // A directory set aside by a superuser opens the door for its files only.
    let dir = std::env::temp_dir().join(format!("pgclone-ssl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.crt");
    std::fs::copy(&env.tls_ca, &ca).unwrap();
    Command::new("chmod")
        .args(["-R", "a+rX", dir.to_str().unwrap()])
        .status()
        .unwrap();
    su.batch_execute(&format!(
        "ALTER DATABASE {db} SET pgclone.ssl_dir = {}",
        lit(dir.to_str().unwrap())
    ))
    .unwrap();
    let mut op = client_as(&env, db, "sec_prober");
    let ci = format!(
        "host=localhost port={} dbname=postgres user=postgres password={} sslmode=verify-full sslrootcert={}",
        env.tls_port,
        env.password,
        ca.display()
    );
    env.client(env.tls_port, "postgres")
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS app; CREATE TABLE IF NOT EXISTS app.tls_only (id int)",
        )
        .unwrap();
    op.query_one("SELECT pgclone.table($1, 'app', 'tls_only')", &[&ci])
        .expect("a CA file under pgclone.ssl_dir");
    let (code, _) = expect_error(
        &mut op,
        &format!(
            "SELECT pgclone.table({}, 'app', 'tls_only', true, 'x')",
            lit(&format!("{base} sslrootcert={}/../ca.crt", dir.display()))
        ),
    );
    assert_eq!(code, "42501");
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------- faults

/// Fault 7: a synchronous caller cancelled or timed out mid-COPY leaves no
/// session on the source (the COPY is cancelled there, not left waiting),
/// and nothing on the target.
#[test]
fn a_cancelled_caller_leaves_no_session_on_the_source() {
    let _g = serial();
    let env = env();
    source(&env);
    let db = "sec_cancel";
    let mut su = target_with_operator(&env, db, &[]);
    let ci = env.src_conninfo(SRC);
    for how in ["statement_timeout", "pg_cancel_backend"] {
        let lock = lock_on_source(&env, "app.locked");
        let before = env.relations(env.tgt_port, db);
        let started = Instant::now();
        let pid: i32 = one(&mut su, "SELECT pg_backend_pid()", &[]);
        let canceller = (how == "pg_cancel_backend").then(|| {
            let env2 = crate::common::env();
            let db = db.to_string();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(800));
                env2.client(env2.tgt_port, &db)
                    .query_one("SELECT pg_cancel_backend($1)", &[&pid])
                    .unwrap();
            })
        });
        if how == "statement_timeout" {
            su.batch_execute("SET statement_timeout = '800ms'").unwrap();
        }
        let (code, _) = expect_error(
            &mut su,
            &format!("SELECT pgclone.table({}, 'app', 'locked')", lit(&ci)),
        );
        su.batch_execute("RESET statement_timeout").unwrap();
        if let Some(t) = canceller {
            t.join().unwrap();
        }
        assert_eq!(code, "57014", "{how}");
        assert!(started.elapsed() < Duration::from_secs(5), "{how}");
        let gone = Instant::now();
        wait_for(
            &format!("{how}: the source session ends"),
            Duration::from_secs(2),
            || source_sessions(&env) == 0,
        );
        assert!(gone.elapsed() < Duration::from_secs(2));
        assert_eq!(before, env.relations(env.tgt_port, db));
        drop(lock);
    }
}

/// Fault 7: a cancel during the catalog phase is taken within about a
/// second, by a caller and by a job's coordinator.
#[test]
fn a_cancel_during_the_catalog_phase_is_taken_at_once() {
    let _g = serial();
    let env = env();
    source(&env);
    let db = "sec_cancel_catalog";
    let mut su = target_with_operator(&env, db, &[]);
    let ci = env.src_conninfo(SRC);
    su.batch_execute("SET statement_timeout = '300ms'").unwrap();
    let t = Instant::now();
    let (code, msg) = expect_error(
        &mut su,
        &format!("SELECT pgclone.schema({}, 'many')", lit(&ci)),
    );
    let took = t.elapsed();
    su.batch_execute("RESET statement_timeout").unwrap();
    assert_eq!(code, "57014", "{msg}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    wait_for("the source session ends", Duration::from_secs(2), || {
        source_sessions(&env) == 0
    });
    let job: i32 = one(
        &mut su,
        "SELECT pgclone.schema_async($1, 'many', true, '{\"parallel\": 2}')",
        &[&ci],
    );
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let ok: bool = one(&mut su, "SELECT pgclone.cancel($1)", &[&job]);
    if ok {
        assert_eq!(finished(&mut su, job), "cancelled");
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
    }
    wait_for(
        "the job's source sessions end",
        Duration::from_secs(2),
        || source_sessions(&env) == 0,
    );
}

/// A listener that speaks just enough of the protocol to announce a huge
/// message: at `stage` "auth" as its authentication request, at "query"
/// (after a trust-style login) as the row description of the first query.
fn hostile_server(stage: &'static str) -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut len = [0u8; 4];
        let mut read_packet = |s: &mut std::net::TcpStream| -> Option<Vec<u8>> {
            s.read_exact(&mut len).ok()?;
            let n = u32::from_be_bytes(len) as usize;
            let mut body = vec![0u8; n.saturating_sub(4)];
            s.read_exact(&mut body).ok()?;
            Some(body)
        };
        let Some(first) = read_packet(&mut s) else {
            return;
        };
        if first == [0x04, 0xd2, 0x16, 0x2f] {
            s.write_all(b"N").ok();
            if read_packet(&mut s).is_none() {
                return;
            }
        }
        let huge = |kind: u8| {
            let mut m = vec![kind];
            m.extend_from_slice(&0x7fff_fff0u32.to_be_bytes());
            m.extend_from_slice(&[0u8; 64]);
            m
        };
        if stage == "auth" {
            let mut m = huge(b'R');
            m[5..9].copy_from_slice(&10u32.to_be_bytes());
            s.write_all(&m).ok();
        } else {
            let mut ok = vec![b'R', 0, 0, 0, 8, 0, 0, 0, 0];
            ok.extend_from_slice(&[b'K', 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 2]);
            ok.extend_from_slice(&[b'Z', 0, 0, 0, 5, b'I']);
            s.write_all(&ok).ok();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            s.write_all(&huge(b'T')).ok();
        }
        std::thread::sleep(Duration::from_secs(3));
    });
    (port, h)
}

fn vm_peak_kb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmPeak:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Fault 8: a hostile server announcing a message of about 2 GB, during
/// authentication or after it, gets a clear error and the backend's memory
/// stays where it was.
#[test]
fn a_hostile_server_cannot_make_the_backend_allocate() {
    let _g = serial();
    let env = env();
    let db = "sec_hostile";
    let mut su = target_with_operator(&env, db, &[]);
    let pid: i32 = one(&mut su, "SELECT pg_backend_pid()", &[]);
    // Warm up the backend's own allocations before the baseline.
    let _ = su.batch_execute("SELECT pgclone.version()");
    for stage in ["auth", "query"] {
        let (port, h) = hostile_server(stage);
        let before = vm_peak_kb(pid);
        let (code, msg) = expect_error(
            &mut su,
            &format!(
                "SELECT pgclone.table('host=127.0.0.1 port={port} user=u password=pw dbname=d connect_timeout=5', 'a', 'b')"
            ),
        );
        let after = vm_peak_kb(pid);
        h.join().unwrap();
        assert_eq!(code, "08001", "{stage}: {msg}");
        assert!(msg.contains("bytes"), "{stage}: {msg}");
        if before > 0 {
            assert!(
                after < before + 256 * 1024,
                "{stage}: VmPeak grew from {before} kB to {after} kB"
            );
        }
    }
}

/// Fault 9: with a one-letter password, messages stay readable.
#[test]
fn a_one_letter_password_does_not_mangle_messages() {
    let _g = serial();
    let env = env();
    source(&env);
    let db = "sec_onex";
    let mut su = target_with_operator(&env, db, &[]);
    let ci = format!(
        "host=127.0.0.1 port={} dbname={SRC} user=onex password=x",
        env.src_port
    );
    // An error the source raises (and pgclone scrubs) names a column full of x.
    let (code, msg) = expect_error(
        &mut su,
        &format!(
            "SELECT pgclone.table({}, 'app', 'small', true, NULL, '{{\"where\": \"no_such_xx_box > 0\"}}')",
            lit(&ci)
        ),
    );
    assert_eq!(code, "22023", "{msg}");
    assert!(msg.contains("no_such_xx_box"), "{msg}");
    let n: String = one(
        &mut su,
        "SELECT pgclone.table($1, 'app', 'extra_box')",
        &[&ci],
    );
    assert!(n.contains("extra_box"), "{n}");
}

/// The lexer of `where` filters, against the server's: a filter pgclone lets
/// through must stay inside its parentheses as the server reads it.
#[test]
fn the_filter_check_agrees_with_the_server() {
    let _g = serial();
    let env = env();
    source(&env);
    let db = "sec_filters";
    let mut su = target_with_operator(&env, db, &[]);
    let mut srcc = env.client(env.src_port, SRC);
    let ci = env.src_conninfo(SRC);
    let frags = [
        "true",
        "1=1",
        "id > 5",
        " ",
        "\n",
        "\r",
        "\t",
        "(",
        ")",
        "((",
        "))",
        "--c",
        "--c\r",
        "--c\n",
        "/*",
        "*/",
        "/* /* */ */",
        "/**/",
        "'",
        "''",
        "'a''b'",
        "'\\'",
        "E'\\''",
        "E'x'",
        "\"",
        "\"id\"",
        "$$",
        "$$)$$",
        "$q$",
        "$q$ ) $q$",
        "U&'a'",
        "x'0f'",
        "UNION SELECT 1",
        "ORDER BY 1",
        "LIMIT 1",
        ";",
        "AND",
        "OR",
        "-",
        "+",
        "*",
        "[",
        "]",
        "id",
        "note",
        "::text",
    ];
    // A tiny deterministic generator (xorshift), so a failure reproduces.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut inputs: Vec<String> = vec![
        "true --\r) UNION SELECT 1 WHERE (true".into(),
        "true /* */) UNION (SELECT 1".into(),
        "note = $a$ ) $a$ OR true".into(),
        "E'\\'' ) UNION SELECT 1 WHERE (true".into(),
    ];
    for _ in 0..400 {
        let n = 1 + (next() % 7) as usize;
        let f: String = (0..n)
            .map(|_| frags[(next() % frags.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(if next() % 2 == 0 { " " } else { "" });
        inputs.push(f);
    }
    let lexer_says_no = ["unbalanced", "must not contain", "unterminated", "is empty"];
    let mut accepted = 0;
    for f in &inputs {
        let opts = serde_json::json!({ "where": f }).to_string();
        su.batch_execute("BEGIN").unwrap();
        let r = su.query_one(
            "SELECT pgclone.table($1, 'app', 'small', false, 'probe', $2)",
            &[&ci, &opts],
        );
        su.batch_execute("ROLLBACK").unwrap();
        let ours_ok = match &r {
            Ok(_) => true,
            Err(e) => {
                let m = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_default();
                !lexer_says_no.iter().any(|w| m.contains(w))
            }
        };
        if !ours_ok {
            continue;
        }
        accepted += 1;
        // The server's reading of the same text in the same place.
        let sql = format!("EXPLAIN (FORMAT JSON) SELECT 1 FROM ONLY app.small WHERE (\n{f}\n)");
        let Ok(msgs) = srcc.simple_query(&sql) else {
            continue; // the server cannot parse it: the clone fails on it, cleanly
        };
        let text = msgs
            .iter()
            .find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .unwrap_or_default();
        let plan: serde_json::Value = serde_json::from_str(&text).expect("plan");
        let top = &plan[0]["Plan"];
        let node = top["Node Type"].as_str().unwrap_or("");
        assert!(
            matches!(
                node,
                "Seq Scan" | "Result" | "Index Scan" | "Index Only Scan" | "Bitmap Heap Scan"
            ) && top["Plans"]
                .as_array()
                .is_none_or(|p| p.iter().all(|c| c["Parent Relationship"] != "Outer")),
            "the filter {f:?} escaped its parentheses on the server: {top}"
        );
    }
    assert!(
        accepted > 20,
        "only {accepted} generated filters were accepted"
    );
    // A NUL is refused as a bad filter, not a connection failure.
    let (code, _) = expect_error(
        &mut su,
        &format!(
            "SELECT pgclone.table({}, 'app', 'small', false, 'probe', '{{\"where\": \"true\\u0000) OR (true\"}}')",
            lit(&ci)
        ),
    );
    assert_eq!(code, "22023");
}

// ------------------------------------------------------------- discard

/// A database with a schema of its own and a table in `public`, so a
/// discard must take back objects the job made inside a schema that existed
/// before, and leave what was there alone.
fn target_for_discard(env: &Env, db: &str) -> Client {
    let mut c = target_with_operator(env, db, &[]);
    c.batch_execute(
        "CREATE SCHEMA keepme; CREATE TABLE keepme.t (id int PRIMARY KEY); \
         CREATE TABLE public.mine (id int); COMMENT ON SCHEMA public IS 'as before';",
    )
    .unwrap();
    c
}

fn discard_source(env: &Env) {
    source(env);
    let mut c = env.client(env.src_port, SRC);
    c.batch_execute(
        "DROP SCHEMA IF EXISTS disc CASCADE; DROP SCHEMA IF EXISTS disc_post CASCADE;
         DROP TABLE IF EXISTS public.pub_t, public.pub_child; DROP FUNCTION IF EXISTS public.pub_f(int);
         CREATE SCHEMA disc;
         CREATE TABLE disc.a (id int PRIMARY KEY, v text);
         INSERT INTO disc.a SELECT g, 'v' || g FROM generate_series(1, 2000) g;
         CREATE FUNCTION disc.boom(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$
         BEGIN
           IF current_database() <> 'sec_src' THEN RAISE EXCEPTION 'boom on the target'; END IF;
           RETURN x;
         END $f$;
         CREATE TABLE disc.b (id int, w int);
         INSERT INTO disc.b SELECT g, g FROM generate_series(1, 100) g;
         CREATE INDEX b_boom ON disc.b ((disc.boom(w)));
         CREATE SCHEMA disc_post;
         CREATE TABLE disc_post.c (id int PRIMARY KEY);
         INSERT INTO disc_post.c SELECT generate_series(1, 100);
         CREATE FUNCTION disc_post.boom(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$
         BEGIN
           IF current_database() <> 'sec_src' THEN RAISE EXCEPTION 'boom in post-data'; END IF;
           RETURN x;
         END $f$;
         CREATE MATERIALIZED VIEW disc_post.mv AS SELECT id FROM disc_post.c;
         CREATE INDEX mv_boom ON disc_post.mv ((disc_post.boom(id)));
         CREATE FUNCTION public.pub_f(x int) RETURNS int LANGUAGE sql AS 'SELECT x';
         CREATE TABLE public.pub_t (id int PRIMARY KEY, n int DEFAULT public.pub_f(1));
         CREATE TABLE public.pub_child (id int REFERENCES public.pub_t);
         INSERT INTO public.pub_t SELECT generate_series(1, 10);",
    )
    .expect("discard source");
}

/// Fault 11: discard() takes back a job that failed mid-copy, mid-index and
/// in post-data, and one that set a schema aside: afterwards pg_dump of the
/// target equals what it was before the job.
#[test]
fn discard_takes_back_what_a_failed_job_made() {
    let _g = serial();
    let env = env();
    discard_source(&env);
    let ci = env.src_conninfo(SRC);
    // Mid-copy: cancelled while its COPY waits behind a lock.
    let db = "sec_discard_copy";
    let mut c = target_for_discard(&env, db);
    let before = env.dump_db(env.tgt_port, db, &[]);
    // Not disc: its index that fails on the target would end the job
    // before the COPY of app.locked, batched with it, is reached.
    let job: i32 = one(
        &mut c,
        "SELECT pgclone.database_async($1, true, '{\"include_schemas\": [\"app\", \"public\"], \"parallel\": 1}')",
        &[&ci],
    );
    let current = |env: &Env| -> String {
        one::<Option<String>>(
            &mut env.client(env.tgt_port, db),
            "SELECT current_table FROM pgclone.jobs_view WHERE job_id = $1",
            &[&job],
        )
        .unwrap_or_default()
    };
    // Units go largest first: while app.big copies, app.locked gets locked,
    // so the COPY of it in the unit of small tables waits when its turn
    // comes, on the source, behind the lock.
    wait_for("copying app.big", Duration::from_secs(60), || {
        current(&env).contains("big")
    });
    {
        let _lock = lock_on_source(&env, "app.locked");
        wait_for(
            "the COPY of app.locked waiting",
            Duration::from_secs(60),
            || {
                one::<i64>(
                    &mut env.client(env.src_port, "postgres"),
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                 AND application_name = 'pgclone' AND wait_event_type = 'Lock' \
                 AND query LIKE 'COPY%locked%'",
                    &[&SRC],
                ) > 0
            },
        );
        assert!(current(&env).contains("locked"), "{}", current(&env));
        assert!(one::<bool>(&mut c, "SELECT pgclone.cancel($1)", &[&job]));
        assert_eq!(finished(&mut c, job), "cancelled");
    }
    assert_ne!(
        before,
        env.dump_db(env.tgt_port, db, &[]),
        "the job made nothing"
    );
    let out: String = one(&mut c, "SELECT pgclone.discard($1)", &[&job]);
    assert!(out.contains("discarded"), "{out}");
    assert_same_text(
        &before,
        &env.dump_db(env.tgt_port, db, &[]),
        "after discard (mid-copy)",
    );
    let left: i64 = one(&mut c, "SELECT count(*) FROM pgclone.jobs", &[]);
    assert_eq!(left, 0, "the job is forgotten");
    let (code, _) = expect_error(&mut c, &format!("SELECT pgclone.discard({job})"));
    assert_eq!(code, "22023");

    // Mid-index: an index expression that fails on the target.
    for (schema, phase) in [("disc", "index"), ("disc_post", "post-data")] {
        let db = format!("sec_discard_{}", schema);
        let mut c = target_for_discard(&env, &db);
        let before = env.dump_db(env.tgt_port, &db, &[]);
        let job: i32 = one(
            &mut c,
            "SELECT pgclone.schema_async($1, $2, true, '{\"parallel\": 2}')",
            &[&ci, &schema],
        );
        assert_eq!(finished(&mut c, job), "failed", "{phase}");
        let err: String = one(
            &mut c,
            "SELECT error_message FROM pgclone.jobs_view WHERE job_id = $1",
            &[&job],
        );
        assert!(err.contains("boom"), "{phase}: {err}");
        // A resumed attempt fails the same way; discard the last of the chain.
        let last: i32 = one(&mut c, "SELECT pgclone.resume($1)", &[&job]);
        assert_eq!(finished(&mut c, last), "failed");
        let (code, msg) = expect_error(&mut c, &format!("SELECT pgclone.discard({job})"));
        assert_eq!(code, "55000", "{msg}");
        assert!(msg.contains(&format!("discard job {last}")), "{msg}");
        one::<String>(&mut c, "SELECT pgclone.discard($1)", &[&last]);
        let left: i64 = one(&mut c, "SELECT count(*) FROM pgclone.jobs", &[]);
        assert_eq!(left, 0, "{phase}: the chain of jobs is forgotten");
        assert_same_text(
            &before,
            &env.dump_db(env.tgt_port, &db, &[]),
            &format!("after discard ({phase})"),
        );
    }

    // A schema set aside by conflict rename or replace comes back.
    for mode in ["rename", "replace"] {
        let db = format!("sec_discard_{mode}");
        let mut c = target_for_discard(&env, &db);
        c.batch_execute("CREATE SCHEMA disc; CREATE TABLE disc.old_one (x int); INSERT INTO disc.old_one VALUES (7)")
            .unwrap();
        let before = env.dump_db(env.tgt_port, &db, &[]);
        let job: i32 = one(
            &mut c,
            &format!(
                "SELECT pgclone.schema_async($1, 'disc', true, '{{\"conflict\": \"{mode}\"}}')"
            ),
            &[&ci],
        );
        assert_eq!(finished(&mut c, job), "failed");
        one::<String>(&mut c, "SELECT pgclone.discard($1)", &[&job]);
        assert_same_text(
            &before,
            &env.dump_db(env.tgt_port, &db, &[]),
            &format!("after discard ({mode})"),
        );
        let n: i32 = one(&mut c, "SELECT x FROM disc.old_one", &[]);
        assert_eq!(n, 7);
    }
    // Running and completed jobs are not discarded.
    let db = "sec_discard_done";
    let mut c = target_for_discard(&env, db);
    let job: i32 = one(
        &mut c,
        "SELECT pgclone.table_async($1, 'app', 'small')",
        &[&ci],
    );
    assert_eq!(finished(&mut c, job), "completed");
    let (code, msg) = expect_error(&mut c, &format!("SELECT pgclone.discard({job})"));
    assert_eq!(code, "55000");
    assert!(msg.contains("completed"), "{msg}");
}

// ------------------------------------------------------------- smaller defects

/// A table with no columns is a table, and is cloned.
#[test]
fn a_table_of_no_columns_is_cloned() {
    let _g = serial();
    let env = env();
    source(&env);
    let db = "sec_zero";
    let mut c = target_with_operator(&env, db, &[]);
    let ci = env.src_conninfo(SRC);
    c.query_one("SELECT pgclone.table($1, 'app', 'zero')", &[&ci])
        .expect("table()");
    let n: i64 = one(&mut c, "SELECT count(*) FROM app.zero", &[]);
    assert_eq!(n, 2);
    assert_same_text(
        &env.dump(env.src_port, SRC, &["app.zero"]),
        &env.dump(env.tgt_port, db, &["app.zero"]),
        "zero-column table",
    );
}

/// Two clones that make the same missing schema at once both succeed.
#[test]
fn two_clones_making_one_schema_at_once() {
    let _g = serial();
    let env = env();
    source(&env);
    let db = "sec_race";
    target_with_operator(&env, db, &[]);
    let ci = env.src_conninfo(SRC);
    for round in 0..3 {
        env.client(env.tgt_port, db)
            .batch_execute("DROP SCHEMA IF EXISTS app CASCADE")
            .unwrap();
        // app.big keeps the first transaction open long enough for the
        // others to meet its uncommitted schema.
        let handles: Vec<_> = ["big", "small", "locked", "extra_box"]
            .into_iter()
            .map(|t| {
                let ci = ci.clone();
                std::thread::spawn(move || {
                    let env = crate::common::env();
                    env.client(env.tgt_port, "sec_race")
                        .query_one("SELECT pgclone.table($1, 'app', $2)", &[&ci, &t])
                        .map(|_| ())
                        .map_err(|e| format!("{t}: {e:?}"))
                })
            })
            .collect();
        for h in handles {
            if let Err(e) = h.join().unwrap() {
                panic!("round {round}: {e}");
            }
        }
    }
}

/// database_create names the local server when the local server fails.
#[test]
fn database_create_names_the_server_that_failed() {
    let _g = serial();
    let env = env();
    source(&env);
    let db = "sec_dbcreate";
    target_with_operator(&env, db, &["sec_nocreatedb"]);
    let mut op = client_as(&env, db, "sec_nocreatedb");
    let ci = format!(
        "host=127.0.0.1 port={} dbname={SRC} user=postgres password={}",
        env.src_port, env.password
    );
    let (code, msg) = expect_error(
        &mut op,
        &format!("SELECT pgclone.database_create({}, 'sec_never')", lit(&ci)),
    );
    assert_eq!(code, "42501", "{msg}");
    assert!(msg.starts_with("local server:"), "{msg}");
    // A superuser session acting as the operator (SET ROLE, or an operator's
    // SECURITY DEFINER function it calls) creates nothing with the session
    // user's rights: the loopback acts as the current user too.
    let mut su = env.client(env.tgt_port, db);
    su.batch_execute("SET ROLE sec_nocreatedb").unwrap();
    let (code, msg) = expect_error(
        &mut su,
        &format!("SELECT pgclone.database_create({}, 'sec_never')", lit(&ci)),
    );
    assert_eq!(code, "42501", "{msg}");
    su.batch_execute("RESET ROLE").unwrap();
    let made: i64 = one(
        &mut su,
        "SELECT count(*) FROM pg_database WHERE datname = 'sec_never'",
        &[],
    );
    assert_eq!(made, 0);
}

/// Errors carry no Rust backtrace, even when the server's environment asks
/// for them (RUST_BACKTRACE=1).
#[test]
fn errors_carry_no_backtrace() {
    let _g = serial();
    let env = env();
    let dir = std::env::temp_dir().join(format!("pgclone-bt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Command::new("chown")
        .args(["postgres:", dir.to_str().unwrap()])
        .status()
        .unwrap();
    let data = dir.join("data");
    let as_pg = |args: &[&str], envs: &[(&str, &str)]| {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--", "env"]);
        for (k, v) in envs {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.args(args);
        cmd.output().expect("runuser")
    };
    let out = as_pg(
        &[
            &format!("{}/initdb", env.pgbin),
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "-A",
            "trust",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = format!(
        "-c port={port} -c listen_addresses='' -c unix_socket_directories={}",
        dir.display()
    );
    let out = as_pg(
        &[
            &format!("{}/pg_ctl", env.pgbin),
            "start",
            "-w",
            "-D",
            data.to_str().unwrap(),
            "-l",
            dir.join("log").to_str().unwrap(),
            "-o",
            &opts,
        ],
        &[("RUST_BACKTRACE", "1")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = std::panic::catch_unwind(|| {
        let mut c = Client::connect(
            &format!(
                "host={} port={port} user=postgres dbname=postgres",
                dir.display()
            ),
            postgres::NoTls,
        )
        .expect("connect");
        c.batch_execute("CREATE EXTENSION pgclone").unwrap();
        for sql in [
            "SELECT pgclone.table(NULL, 'a', 'b')",
            "SELECT pgclone.table('host=127.0.0.1 port=1 user=u password=p', 'a', 'b')",
        ] {
            let e = c.batch_execute(sql).unwrap_err();
            let db = e.as_db_error().expect("server error");
            assert!(
                db.detail()
                    .is_none_or(|d| !d.contains("backtrace") && !d.contains(".rs:")),
                "{sql}: {:?}",
                db.detail()
            );
        }
    });
    as_pg(
        &[
            &format!("{}/pg_ctl", env.pgbin),
            "stop",
            "-m",
            "immediate",
            "-D",
            data.to_str().unwrap(),
        ],
        &[],
    );
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// A source session killed mid-COPY: a clean error, nothing left behind.
#[test]
fn the_source_killed_mid_copy_leaves_nothing() {
    let _g = serial();
    let env = env();
    source(&env);
    let db = "sec_killed_source";
    let mut c = target_with_operator(&env, db, &[]);
    let ci = env.src_conninfo(SRC);
    let before = env.relations(env.tgt_port, db);
    let killer = std::thread::spawn(move || {
        let env = crate::common::env();
        let mut s = env.client(env.src_port, "postgres");
        wait_for("the COPY runs", Duration::from_secs(10), || {
            one::<i64>(
                &mut s,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgclone' AND query LIKE 'COPY%'",
                &[],
            ) > 0
        });
        s.batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgclone'",
        )
        .unwrap();
    });
    let (code, msg) = expect_error(
        &mut c,
        &format!("SELECT pgclone.table({}, 'app', 'big')", lit(&ci)),
    );
    killer.join().unwrap();
    assert!(code.starts_with("08") || code == "57P01", "{code}: {msg}");
    assert!(!msg.contains(&env.password), "{msg}");
    assert_eq!(before, env.relations(env.tgt_port, db));
}

/// A full disk (a small tablespace) mid-COPY: a clean error, nothing left,
/// the server up. Needs root to mount a small tmpfs; skipped otherwise.
#[test]
fn a_full_tablespace_fails_cleanly() {
    let _g = serial();
    let env = env();
    source(&env);
    let mnt = std::env::temp_dir().join(format!("pgclone-full-{}", std::process::id()));
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=6m",
            "tmpfs",
            mnt.to_str().unwrap(),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    }
    Command::new("chown")
        .args(["postgres:", mnt.to_str().unwrap()])
        .status()
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        let db = "sec_full";
        let mut c = target_with_operator(&env, db, &[]);
        let _ = c.batch_execute("DROP TABLESPACE IF EXISTS sec_small");
        c.batch_execute(&format!(
            "CREATE TABLESPACE sec_small LOCATION {}",
            lit(mnt.to_str().unwrap())
        ))
        .unwrap();
        let before = env.relations(env.tgt_port, db);
        c.batch_execute("SET default_tablespace = sec_small")
            .unwrap();
        let (code, msg) = expect_error(
            &mut c,
            &format!(
                "SELECT pgclone.table({}, 'app', 'big')",
                lit(&env.src_conninfo(SRC))
            ),
        );
        c.batch_execute("RESET default_tablespace").unwrap();
        assert_eq!(code, "53100", "{msg}");
        assert_eq!(before, env.relations(env.tgt_port, db));
        let up: i32 = one(&mut c, "SELECT 1", &[]);
        assert_eq!(up, 1);
        c.batch_execute("DROP TABLESPACE sec_small").unwrap();
    });
    let _ = Command::new("umount").arg(&mnt).status();
    let _ = std::fs::remove_dir(&mnt);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// A wrong password never reaches the target's log, views or JSON.
#[test]
fn a_wrong_password_is_never_written_down() {
    let _g = serial();
    let env = env();
    source(&env);
    let db = "sec_wrongpw";
    let mut c = target_with_operator(&env, db, &[]);
    let log = std::env::var("PGCLONE_IT_TGT_LOG").expect("PGCLONE_IT_TGT_LOG");
    let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) as usize;
    let secret = "Wr0ng-But-Secret-9";
    let ci = format!(
        "host=127.0.0.1 port={} dbname={SRC} user=postgres password={secret}",
        env.src_port
    );
    let job: i32 = one(
        &mut c,
        "SELECT pgclone.table_async($1, 'app', 'small')",
        &[&ci],
    );
    assert_eq!(finished(&mut c, job), "failed");
    for sql in [
        "SELECT coalesce(string_agg(v::text, ' '), '') FROM pgclone.jobs_view v",
        "SELECT pgclone.jobs()",
    ] {
        let text: String = one(&mut c, sql, &[]);
        assert!(!text.contains(secret), "{sql}");
    }
    let (_, msg) = expect_error(
        &mut c,
        &format!("SELECT pgclone.table({}, 'app', 'small')", lit(&ci)),
    );
    assert!(!msg.contains(secret));
    let bytes = std::fs::read(&log).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes[log_start.min(bytes.len())..]);
    assert!(
        text.contains("STATEMENT"),
        "the failed statement is logged (so the check below means something)"
    );
    assert!(
        !text.contains(secret),
        "the target's log holds the password"
    );
}
