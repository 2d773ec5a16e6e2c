//! Tier 3: every way a caller can get pgclone.table() wrong ends in a clear
//! ERROR with a SQLSTATE, and leaves the target exactly as it was.

mod common;
use common::*;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// Run `sql` on a fresh target, expect `code`, and check that no relation
/// was added or removed. Returns the message.
fn fails_cleanly(env: &Env, db: &str, sql: &str, code: &str) -> String {
    let before = env.relations(env.tgt_port, db);
    let mut c = env.client(env.tgt_port, db);
    let (got, msg) = expect_error(&mut c, sql);
    assert_eq!(got, code, "{sql}\n-> {msg}");
    assert!(!msg.contains(&env.password), "password leaked: {msg}");
    assert_eq!(
        before,
        env.relations(env.tgt_port, db),
        "something was left behind by: {sql}"
    );
    msg
}

fn setup(name: &str) -> (Env, String, String) {
    let env = env();
    let src = source_db(&env);
    let tgt = target_db(&env, name);
    let ci = env.src_conninfo(src);
    (env, tgt, ci)
}

#[test]
fn null_in_every_argument_position() {
    let (env, db, ci) = setup("bad_null");
    let c = lit(&ci);
    let cases = [
        (
            "SELECT pgclone.table(NULL, 'app', 'scratch')".to_string(),
            "conninfo",
        ),
        (
            format!("SELECT pgclone.table({c}, NULL, 'scratch')"),
            "schema_name",
        ),
        (
            format!("SELECT pgclone.table({c}, 'app', NULL)"),
            "table_name",
        ),
        (
            format!("SELECT pgclone.table({c}, 'app', 'scratch', NULL)"),
            "include_data",
        ),
        (
            format!("SELECT pgclone.table({c}, 'app', 'scratch', NULL, 'x')"),
            "include_data",
        ),
        (
            format!("SELECT pgclone.table({c}, 'app', 'scratch', NULL, 'x', '{{}}')"),
            "include_data",
        ),
        (
            format!("SELECT pgclone.table_ex({c}, 'app', 'scratch', true, 'x', NULL, true, true)"),
            "indexes",
        ),
        (
            format!("SELECT pgclone.table_ex({c}, 'app', 'scratch', true, 'x', true, NULL, true)"),
            "constraints",
        ),
        (
            format!("SELECT pgclone.table_ex({c}, 'app', 'scratch', true, 'x', true, true, NULL)"),
            "triggers",
        ),
        (
            "SELECT pgclone.table_ex(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)".to_string(),
            "conninfo",
        ),
    ];
    for (sql, arg) in cases {
        let msg = fails_cleanly(&env, &db, &sql, "22004");
        assert!(msg.contains(arg), "{msg}");
    }
    // NULL target and NULL options mean "same name" and "defaults"
    let mut cl = env.client(env.tgt_port, &db);
    cl.batch_execute(&format!(
        "SELECT pgclone.table({c}, 'app', 'scratch', true, NULL, NULL)"
    ))
    .unwrap();
}

#[test]
fn missing_schema_or_table_on_the_source() {
    let (env, db, ci) = setup("bad_missing");
    let c = lit(&ci);
    let m = fails_cleanly(
        &env,
        &db,
        &format!("SELECT pgclone.table({c}, 'no_such_schema', 't')"),
        "3F000",
    );
    assert!(m.contains("no_such_schema"), "{m}");
    let m = fails_cleanly(
        &env,
        &db,
        &format!("SELECT pgclone.table({c}, 'app', 'no_such_table')"),
        "42P01",
    );
    assert!(m.contains("no_such_table"), "{m}");
    // a hostile name is looked up, never executed
    let m = fails_cleanly(
        &env,
        &db,
        &format!("SELECT pgclone.table({c}, 'app', 'x\"; DROP TABLE app.scratch; --')"),
        "42P01",
    );
    assert!(
        m.contains("DROP TABLE"),
        "the name is reported as a name: {m}"
    );
    assert_eq!(
        env.content(env.src_port, "it_src", "app.scratch").0,
        100,
        "the source is untouched"
    );
    fails_cleanly(
        &env,
        &db,
        &format!("SELECT pgclone.table({c}, 'app', 'nodes_id_seq')"),
        "0A000",
    );
    fails_cleanly(
        &env,
        &db,
        &format!("SELECT pgclone.table({c}, 'app', 'nodes', true, NULL, '{{\"columns\": [\"id\", \"nope\"]}}')"),
        "42703",
    );
}

#[test]
fn malformed_conninfo() {
    let (env, db, _) = setup("bad_conninfo");
    for (ci, needle) in [
        ("host", "missing \"=\""),
        ("host='unterminated", "unterminated"),
        ("service=prod", "\"service\""),
        ("sslrootcert_typo=x", "\"sslrootcert_typo\""),
        ("host=127.0.0.1 port=notaport", "port"),
        ("postgresql://u:p%zz@h/db", "percent"),
    ] {
        let m = fails_cleanly(
            &env,
            &db,
            &format!("SELECT pgclone.table({}, 'app', 'scratch')", lit(ci)),
            "22023",
        );
        assert!(m.contains(needle), "{ci}: {m}");
    }
}

#[test]
fn unreachable_host_fails_within_the_connect_timeout() {
    let (env, db, _) = setup("bad_unreachable");
    // Nothing listens: refused at once.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let t = Instant::now();
    fails_cleanly(
        &env,
        &db,
        &format!("SELECT pgclone.table('host=127.0.0.1 port={port} user=u password=pw connect_timeout=2', 'app', 'scratch')"),
        "08001",
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    // Something accepts the TCP connection but never answers: the deadline
    // covers the whole handshake, not just the TCP connect.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let t = Instant::now();
    let m = fails_cleanly(
        &env,
        &db,
        &format!("SELECT pgclone.table('host=127.0.0.1 port={port} user=u password=hunter2secret connect_timeout=2', 'app', 'scratch')"),
        "08001",
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "took {took:?}"
    );
    assert!(m.contains("timeout"), "{m}");
    assert!(!m.contains("hunter2secret"), "{m}");
    drop(silent);
}

#[test]
fn wrong_password_is_refused_and_not_shown() {
    let (env, db, _) = setup("bad_password");
    let ci = format!(
        "host=127.0.0.1 port={} dbname=it_src user=postgres password=Wr0ngPassw0rd",
        env.src_port
    );
    let m = fails_cleanly(
        &env,
        &db,
        &format!("SELECT pgclone.table({}, 'app', 'scratch')", lit(&ci)),
        "28P01",
    );
    assert!(!m.contains("Wr0ngPassw0rd"), "{m}");
    assert!(m.contains("password authentication failed"), "{m}");
}

#[test]
fn bad_options() {
    let (env, db, ci) = setup("bad_options");
    let c = lit(&ci);
    for (opts, needle) in [
        ("{not json", "malformed JSON"),
        ("[1]", "JSON object"),
        ("{\"indexs\": true}", "unknown option \"indexs\""),
        ("{\"indexes\": \"yes\"}", "option \"indexes\""),
        ("{\"conflict\": \"merge\"}", "option \"conflict\""),
        ("{\"parallel\": \"four\"}", "option \"parallel\""),
        ("{\"exclude_tables\": [\"x\"]}", "schema and database calls"),
    ] {
        let m = fails_cleanly(
            &env,
            &db,
            &format!(
                "SELECT pgclone.table({c}, 'app', 'scratch', true, NULL, {})",
                lit(opts)
            ),
            "22023",
        );
        assert!(m.contains(needle), "{opts}: {m}");
    }
}

#[test]
fn where_filters_that_escape_or_write_are_rejected() {
    let (env, db, ci) = setup("bad_where");
    let c = lit(&ci);
    for filter in [
        "1=1) TO '/tmp/pgclone-escape' (FORMAT text",
        "true; DELETE FROM app.scratch",
        "k > 1 /* unterminated",
        // reaches a write: the source transaction is READ ONLY
        "nextval('app.nodes_id_seq') > 0",
        // not an expression the source accepts
        "no_such_column = 1",
    ] {
        let opts = serde_json::json!({ "where": filter }).to_string();
        fails_cleanly(
            &env,
            &db,
            &format!(
                "SELECT pgclone.table({c}, 'app', 'scratch', true, NULL, {})",
                lit(&opts)
            ),
            "22023",
        );
    }
    assert!(!std::path::Path::new("/tmp/pgclone-escape").exists());
    let v: i64 = env
        .client(env.src_port, "it_src")
        .query_one("SELECT last_value FROM app.nodes_id_seq", &[])
        .unwrap()
        .get(0);
    assert_eq!(v, 500, "the source sequence did not move");
}

#[test]
fn failure_mid_copy_leaves_nothing_behind() {
    let (env, db, ci) = setup("bad_midcopy");
    // Row k = 60 divides by zero on the source after rows have streamed in.
    let opts = serde_json::json!({ "where": "1 / (k - 60) IS NOT NULL" }).to_string();
    fails_cleanly(
        &env,
        &db,
        &format!(
            "SELECT pgclone.table({}, 'app', 'scratch', true, NULL, {})",
            lit(&ci),
            lit(&opts)
        ),
        "22023",
    );
}

#[test]
fn existing_table_with_conflict_error() {
    let (env, db, ci) = setup("bad_exists");
    env.client(env.tgt_port, &db)
        .batch_execute("CREATE TABLE app.scratch (k int)")
        .unwrap();
    let m = fails_cleanly(
        &env,
        &db,
        &format!("SELECT pgclone.table({}, 'app', 'scratch')", lit(&ci)),
        "42P07",
    );
    assert!(
        m.contains("conflict"),
        "the message says how to proceed: {m}"
    );
}

#[test]
fn only_superusers_and_operators_may_call() {
    let (env, db, ci) = setup("bad_role");
    let mut su = env.client(env.tgt_port, &db);
    su.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'it_nobody') THEN CREATE ROLE it_nobody LOGIN; END IF;
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'it_operator') THEN CREATE ROLE it_operator LOGIN; END IF;
         END $$;
         GRANT pgclone_operator TO it_operator;
         GRANT CREATE, USAGE ON SCHEMA app TO it_operator;",
    )
    .unwrap();
    let as_role = |role: &str| {
        postgres::Client::connect(
            &format!(
                "host={} port={} user={role} dbname={db}",
                env.sock, env.tgt_port
            ),
            postgres::NoTls,
        )
        .unwrap()
    };
    let before = env.relations(env.tgt_port, &db);
    let (code, msg) = expect_error(
        &mut as_role("it_nobody"),
        &format!("SELECT pgclone.table({}, 'app', 'scratch')", lit(&ci)),
    );
    assert_eq!(code, "42501", "{msg}");
    // An operator must authenticate to the source with a password over TCP:
    // the server's own identity on the local socket is not lent out.
    let (code, msg) = expect_error(
        &mut as_role("it_operator"),
        &format!(
            "SELECT pgclone.table('host={} port={} dbname=it_src user=postgres', 'app', 'scratch')",
            env.sock, env.src_port
        ),
    );
    assert_eq!(code, "42501", "{msg}");
    assert_eq!(before, env.relations(env.tgt_port, &db));
    // ... and with one, it works.
    as_role("it_operator")
        .query_one("SELECT pgclone.table($1, 'app', 'scratch')", &[&ci])
        .unwrap();
    assert_eq!(
        env.content(env.tgt_port, &db, "app.scratch"),
        env.content(env.src_port, "it_src", "app.scratch")
    );
}
