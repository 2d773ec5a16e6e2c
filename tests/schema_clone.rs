//! Tier 3: schema() and database() between two real clusters, judged by
//! pg_dump --schema-only of the whole database, the content of every table,
//! every sequence's position and every large object.

mod common;
use common::*;

const PAGILA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/pagila/pagila-schema-pg15.sql"
);

fn fixture(name: &str) -> String {
    format!("{FIXTURE_DIR}/{name}")
}

fn roles(env: &Env) {
    for port in [env.src_port, env.tgt_port] {
        ensure_role(env, port, "hard_owner");
        ensure_role(env, port, "hard_reader");
    }
}

fn clone(env: &Env, tgt: &str, sql: &str, src_db: &str) -> String {
    let mut c = env.client(env.tgt_port, tgt);
    let row = c
        .query_one(sql, &[&env.src_conninfo(src_db)])
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    row.get(0)
}

#[test]
fn pagila_by_database_and_by_schema() {
    let env = env();
    database_from(
        &env,
        env.src_port,
        "sc_pagila",
        &[PAGILA, &fixture("pagila-data.sql")],
    );
    empty_target(&env, "sc_pagila_db");
    let s = clone(
        &env,
        "sc_pagila_db",
        "SELECT pgclone.database($1)",
        "sc_pagila",
    );
    assert!(s.contains("rows"), "{s}");
    env.assert_same_database("sc_pagila", "sc_pagila_db", &[]);
    assert_checks_clean(&env, "sc_pagila", "sc_pagila_db", &["public"]);

    empty_target(&env, "sc_pagila_schema");
    clone(
        &env,
        "sc_pagila_schema",
        "SELECT pgclone.schema($1, 'public')",
        "sc_pagila",
    );
    env.assert_same_database("sc_pagila", "sc_pagila_schema", &[]);
    // every partition of payment got its rows
    let parts: i64 = env
        .client(env.tgt_port, "sc_pagila_schema")
        .query_one("SELECT count(DISTINCT tableoid) FROM public.payment", &[])
        .unwrap()
        .get(0);
    assert!(parts > 50, "{parts}");
}

#[test]
fn hard_fixture_by_database() {
    let env = env();
    roles(&env);
    database_from(&env, env.src_port, "sc_hard", &[&fixture("hard.sql")]);
    empty_target(&env, "sc_hard_db");
    let s = clone(&env, "sc_hard_db", "SELECT pgclone.database($1)", "sc_hard");
    assert!(s.contains("2 large objects"), "{s}");
    env.assert_same_database("sc_hard", "sc_hard_db", &[]);
    assert_checks_clean(
        &env,
        "sc_hard",
        "sc_hard_db",
        &["public", "core", "pgdata", "Mixed Case"],
    );
    assert_eq!(
        env.large_objects(env.src_port, "sc_hard"),
        env.large_objects(env.tgt_port, "sc_hard_db")
    );
    // the pg-prefixed user schema came along
    let n: i64 = env
        .client(env.tgt_port, "sc_hard_db")
        .query_one("SELECT count(*) FROM pgdata.events", &[])
        .unwrap()
        .get(0);
    assert!(n > 0);
    // the unpopulated matview stays unpopulated, the populated one is refreshed
    let (empty, full): (bool, bool) = {
        let r = env
            .client(env.tgt_port, "sc_hard_db")
            .query_one(
                "SELECT (SELECT relispopulated FROM pg_class WHERE oid = 'core.mv_empty'::regclass), \
                        (SELECT relispopulated FROM pg_class WHERE oid = 'core.mv_kinds'::regclass)",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(!empty && full);
}

#[test]
fn hard_fixture_by_schema() {
    let env = env();
    roles(&env);
    database_from(&env, env.src_port, "sc_hard2", &[&fixture("hard.sql")]);
    empty_target(&env, "sc_hard_schema");
    clone(
        &env,
        "sc_hard_schema",
        "SELECT pgclone.schema($1, 'core')",
        "sc_hard2",
    );
    let a = env.dump_db(env.src_port, "sc_hard2", &["-n", "core"]);
    let b = env.dump_db(env.tgt_port, "sc_hard_schema", &["-n", "core"]);
    assert_same_text(&a, &b, "pg_dump -n core");
    let only_core = |v: Vec<(String, i64, String)>| -> Vec<(String, i64, String)> {
        v.into_iter()
            .filter(|(r, _, _)| r.starts_with("core."))
            .collect()
    };
    assert_eq!(
        only_core(env.all_contents(env.src_port, "sc_hard2")),
        only_core(env.all_contents(env.tgt_port, "sc_hard_schema"))
    );
}

#[test]
fn functions_only() {
    let env = env();
    database_from(&env, env.src_port, "sc_fn", &[]);
    env.client(env.src_port, "sc_fn")
        .batch_execute(
            "CREATE SCHEMA fx; \
             CREATE TABLE fx.t (x int); \
             CREATE FUNCTION fx.add(a int, b int DEFAULT 1) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT a + b'; \
             CREATE FUNCTION fx.add(a text, b text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT a || b'; \
             CREATE FUNCTION fx.reads_t() RETURNS bigint LANGUAGE plpgsql AS $$BEGIN RETURN (SELECT count(*) FROM fx.t); END$$; \
             CREATE PROCEDURE fx.bump(INOUT n int) LANGUAGE plpgsql AS $$BEGIN n := n + 1; END$$; \
             CREATE AGGREGATE fx.mysum(int) (SFUNC = int4pl, STYPE = int, INITCOND = '0'); \
             COMMENT ON FUNCTION fx.add(int, int) IS 'adds';",
        )
        .unwrap();
    empty_target(&env, "sc_fn_t");
    let mut c = env.client(env.tgt_port, "sc_fn_t");
    c.batch_execute("CREATE SCHEMA fx").unwrap();
    clone(
        &env,
        "sc_fn_t",
        "SELECT pgclone.functions($1, 'fx')",
        "sc_fn",
    );
    let n: i32 = c.query_one("SELECT fx.add(2, 3)", &[]).unwrap().get(0);
    assert_eq!(n, 5);
    let rels: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'fx'::regnamespace",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(rels, 0, "functions() clones routines only");
    // the routines are exactly the source's (a plpgsql body may name a table
    // that is not there yet)
    let a = env.dump_db(
        env.src_port,
        "sc_fn",
        &["-n", "fx", "--exclude-table", "fx.t"],
    );
    let b = env.dump_db(env.tgt_port, "sc_fn_t", &["-n", "fx"]);
    assert_same_text(&a, &b, "routines of fx");
}

#[test]
fn schema_conflicts() {
    let env = env();
    database_from(&env, env.src_port, "sc_conf", &[]);
    env.client(env.src_port, "sc_conf")
        .batch_execute("CREATE SCHEMA s; CREATE TABLE s.t (id int PRIMARY KEY); INSERT INTO s.t VALUES (1), (2);")
        .unwrap();
    empty_target(&env, "sc_conf_t");
    let mut c = env.client(env.tgt_port, "sc_conf_t");
    c.batch_execute("CREATE SCHEMA s; CREATE TABLE s.t (id int); INSERT INTO s.t VALUES (9);")
        .unwrap();
    let ci = lit(&env.src_conninfo("sc_conf"));
    let before = env.relations(env.tgt_port, "sc_conf_t");
    let (code, msg) = expect_error(&mut c, &format!("SELECT pgclone.schema({ci}, 's')"));
    assert_eq!(code, "42P07", "{msg}");
    assert!(msg.contains("\"s\".\"t\""), "{msg}");
    assert_eq!(before, env.relations(env.tgt_port, "sc_conf_t"));

    let s: String = c
        .query_one(
            &format!("SELECT pgclone.schema({ci}, 's', true, '{{\"conflict\": \"skip\"}}')"),
            &[],
        )
        .unwrap()
        .get(0);
    assert!(s.contains("nothing to clone"), "{s}");
    c.batch_execute(&format!(
        "SELECT pgclone.schema({ci}, 's', true, '{{\"conflict\": \"rename\"}}')"
    ))
    .unwrap();
    let rels = env.relations(env.tgt_port, "sc_conf_t");
    assert!(
        rels.iter()
            .any(|r| r.starts_with("s_old_") && r.ends_with(".t")),
        "{rels:?}"
    );
    assert_eq!(env.content(env.tgt_port, "sc_conf_t", "s.t").0, 2);
    c.batch_execute(&format!(
        "SELECT pgclone.schema({ci}, 's', true, '{{\"conflict\": \"replace\"}}')"
    ))
    .unwrap();
    assert_eq!(env.content(env.tgt_port, "sc_conf_t", "s.t").0, 2);
    // a missing schema on the source
    let (code, _) = expect_error(&mut c, &format!("SELECT pgclone.schema({ci}, 'nope')"));
    assert_eq!(code, "3F000");
}

/// A clone taken while the source commits transactions that each write to
/// three tables holds, for every transaction, all of its rows or none.
#[test]
fn one_snapshot_while_the_source_takes_writes() {
    let env = env();
    database_from(&env, env.src_port, "sc_snap", &[]);
    env.client(env.src_port, "sc_snap")
        .batch_execute(
            "CREATE TABLE a_w1 (batch int); CREATE TABLE m_big (id int, pad text); CREATE TABLE z_w2 (batch int); \
             CREATE TABLE z_w3 (batch int); \
             INSERT INTO m_big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 300000) g;",
        )
        .unwrap();
    empty_target(&env, "sc_snap_t");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut w = env.client(env.src_port, "sc_snap");
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 100_000 {
                n += 1;
                w.batch_execute(&format!(
                    "BEGIN; INSERT INTO a_w1 VALUES ({n}); INSERT INTO z_w2 VALUES ({n}); INSERT INTO z_w3 VALUES ({n}); COMMIT;"
                ))
                .unwrap();
            }
            n
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    clone(
        &env,
        "sc_snap_t",
        "SELECT pgclone.schema($1, 'public')",
        "sc_snap",
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    let mut c = env.client(env.tgt_port, "sc_snap_t");
    let counts: Vec<i64> = ["a_w1", "z_w2", "z_w3"]
        .iter()
        .map(|t| {
            c.query_one(&format!("SELECT count(*) FROM {t}"), &[])
                .unwrap()
                .get(0)
        })
        .collect();
    assert!(
        counts[0] > 0 && (counts[0] as i32) < written,
        "the clone ran while writes went on: {counts:?} of {written}"
    );
    assert_eq!(counts[0], counts[1]);
    assert_eq!(counts[0], counts[2]);
    let mismatched: i64 = c
        .query_one(
            "SELECT count(*) FROM (SELECT batch FROM a_w1 EXCEPT SELECT batch FROM z_w3) x",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(mismatched, 0);
}

#[test]
fn database_create_matches_encoding_locale_and_settings() {
    let env = env();
    {
        let mut c = env.client(env.src_port, "postgres");
        c.batch_execute("DROP DATABASE IF EXISTS sc_latin WITH (FORCE)")
            .unwrap();
        c.batch_execute("CREATE DATABASE sc_latin TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'")
            .unwrap();
        c.batch_execute(
            "ALTER DATABASE sc_latin SET work_mem = '8MB'; ALTER DATABASE sc_latin SET search_path = app, public; \
             COMMENT ON DATABASE sc_latin IS 'latin one';",
        )
        .unwrap();
    }
    env.client(env.src_port, "sc_latin")
        .batch_execute(
            "CREATE SCHEMA app; CREATE TABLE app.words (w text PRIMARY KEY); \
             INSERT INTO app.words VALUES ('café'), ('naïve'), ('straße');",
        )
        .unwrap();
    let mut c = env.client(env.tgt_port, "postgres");
    c.batch_execute("DROP DATABASE IF EXISTS sc_latin_copy WITH (FORCE)")
        .unwrap();
    ensure_extension(&env, "postgres");
    let s: String = c
        .query_one(
            "SELECT pgclone.database_create($1, 'sc_latin_copy')",
            &[&env.src_conninfo("sc_latin")],
        )
        .unwrap()
        .get(0);
    assert!(s.contains("LATIN1"), "{s}");
    let shape = |port: u16, db: &str| -> (String, String, String, Vec<String>, Option<String>) {
        let r = env
            .client(port, "postgres")
            .query_one(
                "SELECT pg_encoding_to_char(d.encoding)::text, d.datcollate::text, d.datctype::text, \
                        ARRAY(SELECT unnest(s.setconfig) FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0 ORDER BY 1), \
                        shobj_description(d.oid, 'pg_database') \
                 FROM pg_database d WHERE d.datname = $1",
                &[&db],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
    };
    assert_eq!(
        shape(env.src_port, "sc_latin"),
        shape(env.tgt_port, "sc_latin_copy")
    );
    env.assert_same_database("sc_latin", "sc_latin_copy", &[]);

    // a failed clone leaves no database behind
    let (code, _) = expect_error(
        &mut c,
        &format!(
            "SELECT pgclone.database_create({}, 'sc_never', true, '{{\"exclude_schemas\": 5}}')",
            lit(&env.src_conninfo("sc_latin"))
        ),
    );
    assert_eq!(code, "22023");
    let bad = format!(
        "host=127.0.0.1 port={} dbname=sc_latin user=postgres password=wrong-pw",
        env.src_port
    );
    let (code, msg) = expect_error(
        &mut c,
        &format!("SELECT pgclone.database_create({}, 'sc_never')", lit(&bad)),
    );
    assert_eq!(code, "28P01", "{msg}");
    let left: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = 'sc_never'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

/// Kinds pgclone does not create yet are named in a NOTICE, never dropped silently.
#[test]
fn kinds_not_cloned_are_reported() {
    let env = env();
    database_from(&env, env.src_port, "sc_notice", &[]);
    env.client(env.src_port, "sc_notice")
        .batch_execute(
            "CREATE SCHEMA s; CREATE TABLE s.t (x int); \
             CREATE OPERATOR FAMILY s.fam USING btree; \
             CREATE CONVERSION s.conv FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8;",
        )
        .unwrap();
    empty_target(&env, "sc_notice_t");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut cfg: postgres::Config = format!(
        "host={} port={} user=postgres dbname=sc_notice_t",
        env.sock, env.tgt_port
    )
    .parse()
    .unwrap();
    cfg.notice_callback(move |n| {
        let _ = tx.send(n.message().to_string());
    });
    let mut c = cfg.connect(postgres::NoTls).unwrap();
    c.query_one(
        "SELECT pgclone.schema($1, 's')",
        &[&env.src_conninfo("sc_notice")],
    )
    .unwrap();
    let notices: Vec<String> = rx.try_iter().collect();
    let line = notices
        .iter()
        .find(|n| n.starts_with("not cloned"))
        .unwrap_or_else(|| panic!("{notices:?}"));
    assert!(line.contains("operator family s.fam"), "{line}");
    assert!(line.contains("conversion s.conv"), "{line}");
}

/// database_create() hands the conninfo to a session of its own on this
/// server; that session's statement must not put the password in the server
/// log, even when the log records every statement with its parameters.
#[test]
fn database_create_keeps_the_password_out_of_the_log() {
    let env = env();
    let secret = "NeverLogMe-7731";
    {
        let mut s = env.client(env.src_port, "postgres");
        s.batch_execute(&format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'it_logcheck') THEN \
               CREATE ROLE it_logcheck LOGIN SUPERUSER; END IF; END $$; \
             ALTER ROLE it_logcheck PASSWORD '{secret}';"
        ))
        .unwrap();
    }
    database_from(&env, env.src_port, "sc_logsrc", &[]);
    env.client(env.src_port, "sc_logsrc")
        .batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1);")
        .unwrap();
    let mut c = env.client(env.tgt_port, "postgres");
    c.batch_execute("DROP DATABASE IF EXISTS sc_logcopy WITH (FORCE)")
        .unwrap();
    let log_path = std::path::Path::new(&env.sock)
        .parent()
        .unwrap()
        .join("tgt/server.log");
    let log_start = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0) as usize;
    ensure_extension(&env, "postgres");
    // every statement of every new session of this role is logged with its parameters...
    c.batch_execute("ALTER ROLE postgres SET log_min_duration_statement = 0")
        .unwrap();
    // ...except the test's own call, which is the caller's business
    c.batch_execute("SET log_min_duration_statement = -1")
        .unwrap();
    let ci = format!(
        "host=127.0.0.1 port={} dbname=sc_logsrc user=it_logcheck password={secret}",
        env.src_port
    );
    let result = c.query_one("SELECT pgclone.database_create($1, 'sc_logcopy')", &[&ci]);
    c.batch_execute("ALTER ROLE postgres RESET log_min_duration_statement")
        .unwrap();
    result.unwrap();
    // only what the server wrote during this test
    let whole = std::fs::read(&log_path).expect("target server log");
    let log = String::from_utf8_lossy(&whole[log_start.min(whole.len())..]).into_owned();
    assert!(
        log.contains("sc_logcopy"),
        "the log records the clone's sessions: {}",
        log_path.display()
    );
    assert!(
        !log.contains(secret),
        "the password reached {}",
        log_path.display()
    );
}

/// An extension of the source at a version this server does not offer is
/// created at this server's default (as pg_dump does, with a NOTICE); one
/// this server has no package for is refused before anything is made.
/// The packages are simulated by control and script files of a test
/// extension in this installation's extension directory.
#[test]
fn extensions_follow_what_this_server_offers() {
    let env = env();
    let out = std::process::Command::new(format!("{}/pg_config", env.pgbin))
        .arg("--sharedir")
        .output()
        .expect("pg_config");
    let dir =
        std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("extension");
    let file = |name: &str| dir.join(name);
    let write = |name: &str, text: &str| {
        std::fs::write(file(name), text)
            .unwrap_or_else(|e| panic!("{name}: {e} (the tests need write access to {dir:?})"))
    };
    write(
        "pgclone_it_ext.control",
        "default_version = '1.1'\nrelocatable = true\ncomment = 'pgclone test extension'\n",
    );
    write(
        "pgclone_it_ext--1.0.sql",
        "CREATE FUNCTION it_ext_version() RETURNS text LANGUAGE sql AS $$SELECT '1.0'$$;\n",
    );
    write(
        "pgclone_it_ext--1.1.sql",
        "CREATE FUNCTION it_ext_version() RETURNS text LANGUAGE sql AS $$SELECT '1.1'$$;\n",
    );
    let result = std::panic::catch_unwind(|| {
        database_from(&env, env.src_port, "sc_ext", &[]);
        env.client(env.src_port, "sc_ext")
            .batch_execute(
                "CREATE EXTENSION pgclone_it_ext VERSION '1.0';
                 CREATE TABLE public.t (id int); INSERT INTO public.t VALUES (1);",
            )
            .expect("source");
        // This server now offers 1.1 only.
        std::fs::remove_file(file("pgclone_it_ext--1.0.sql")).expect("rm");
        empty_target(&env, "sc_ext_newer");
        let (mut c, heard) = client_hearing(&env, env.tgt_port, "postgres", "sc_ext_newer");
        c.query_one(
            "SELECT pgclone.database($1)",
            &[&env.src_conninfo("sc_ext")],
        )
        .expect("clone");
        let version: String = one(
            &mut c,
            "SELECT extversion FROM pg_extension WHERE extname = 'pgclone_it_ext'",
            &[],
        );
        assert_eq!(version, "1.1");
        let notices = heard.lock().unwrap().join("\n");
        assert!(
            notices.contains("the source has version 1.0")
                && notices.contains("default version 1.1"),
            "{notices}"
        );
        // And now no package at all: refused, nothing made.
        std::fs::remove_file(file("pgclone_it_ext--1.1.sql")).expect("rm");
        std::fs::remove_file(file("pgclone_it_ext.control")).expect("rm");
        empty_target(&env, "sc_ext_none");
        let before = env.relations(env.tgt_port, "sc_ext_none");
        let (state, msg) = expect_error(
            &mut env.client(env.tgt_port, "sc_ext_none"),
            &format!(
                "SELECT pgclone.database({})",
                lit(&env.src_conninfo("sc_ext"))
            ),
        );
        assert_eq!(state, "0A000", "{msg}");
        assert!(
            msg.contains("pgclone_it_ext (version 1.0 on the source)"),
            "{msg}"
        );
        assert_eq!(env.relations(env.tgt_port, "sc_ext_none"), before);
    });
    for f in [
        "pgclone_it_ext.control",
        "pgclone_it_ext--1.0.sql",
        "pgclone_it_ext--1.1.sql",
    ] {
        let _ = std::fs::remove_file(file(f));
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
