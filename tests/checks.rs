//! Tier 3: the checks a DBA gates a release on — verify, diff, preflight
//! and clone_roles — between two real clusters: exact after a clone, and
//! each kind of difference named for what it is.

mod common;
use common::*;
use postgres::Client;
use serde_json::{json, Value};
use std::sync::Mutex;

static SOURCE: Mutex<bool> = Mutex::new(false);

/// Source database `ck_src`, schema `app`:
/// - stale: 1500 rows, but the planner believes 1000 (analyzed, then
///   loaded again with autovacuum off);
/// - a (identity, a default, an index, a policy) and b, each with a CHECK
///   constraint and a trigger named alike;
/// - c (json, enum, array, numeric, a column under a nondeterministic-free
///   collation), d, a sequence, a matview and a function.
fn source(env: &Env) {
    let mut made = SOURCE.lock().unwrap_or_else(|p| p.into_inner());
    if *made {
        return;
    }
    *made = true;
    database_from(env, env.src_port, "ck_src", &[]);
    env.client(env.src_port, "ck_src")
        .batch_execute(
            "CREATE SCHEMA app;
             CREATE TABLE app.stale (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false);
             INSERT INTO app.stale SELECT g, 'v' || g FROM generate_series(1, 1000) g;
             ANALYZE app.stale;
             INSERT INTO app.stale SELECT g, 'v' || g FROM generate_series(1001, 1500) g;
             CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
             CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
             CREATE FUNCTION app.f(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + 1';
             CREATE FUNCTION app.f(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT $1';
             CREATE TABLE app.a (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, x int DEFAULT 7,
                                 note text, CONSTRAINT positive CHECK (x > 0));
             CREATE INDEX a_note_idx ON app.a (note);
             CREATE TRIGGER touch BEFORE UPDATE ON app.a FOR EACH ROW EXECUTE FUNCTION app.touch();
             ALTER TABLE app.a ENABLE ROW LEVEL SECURITY;
             CREATE POLICY mine ON app.a USING (x > 0);
             CREATE TABLE app.b (id int PRIMARY KEY, x int, CONSTRAINT positive CHECK (x > 0));
             CREATE TRIGGER touch BEFORE UPDATE ON app.b FOR EACH ROW EXECUTE FUNCTION app.touch();
             INSERT INTO app.a (x, note) SELECT g, 'n' || g FROM generate_series(1, 50) g;
             INSERT INTO app.b SELECT g, g FROM generate_series(1, 50) g;
             CREATE TABLE app.c (id int PRIMARY KEY, doc json, m app.mood, tags text[], amount numeric,
                                 at timestamptz, pt point, bin bytea);
             INSERT INTO app.c SELECT g, json_build_object('g', g), (ARRAY['sad','ok','happy'])[g % 3 + 1]::app.mood,
                 ARRAY['t' || g, NULL], g / 7.0, '2024-01-01'::timestamptz + g * interval '1 hour',
                 point(g, -g), decode(md5(g::text), 'hex')
               FROM generate_series(1, 300) g;
             INSERT INTO app.c (id) VALUES (0);
             CREATE TABLE app.d (id int);
             INSERT INTO app.d VALUES (1), (1), (2);
             CREATE SEQUENCE app.counter;
             SELECT setval('app.counter', 42);
             CREATE MATERIALIZED VIEW app.totals AS SELECT count(*) AS n FROM app.b;",
        )
        .expect("source");
}

fn cloned(env: &Env, db: &str) -> Client {
    empty_target(env, db);
    let mut c = env.client(env.tgt_port, db);
    one::<String>(
        &mut c,
        "SELECT pgclone.schema($1, 'app')",
        &[&env.src_conninfo("ck_src")],
    );
    c
}

fn verify(c: &mut Client, conninfo: &str) -> Vec<(String, Option<i64>, Option<i64>, String)> {
    c.query(
        "SELECT table_name, source_rows, target_rows, match FROM pgclone.verify($1, 'app')",
        &[&conninfo],
    )
    .expect("verify")
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

fn row<'a>(
    rows: &'a [(String, Option<i64>, Option<i64>, String)],
    name: &str,
) -> &'a (String, Option<i64>, Option<i64>, String) {
    rows.iter()
        .find(|r| r.0 == name)
        .unwrap_or_else(|| panic!("no row for {name} in {rows:?}"))
}

fn diff(c: &mut Client, conninfo: &str) -> Value {
    let text: String = one(c, "SELECT pgclone.diff($1, 'app')", &[&conninfo]);
    serde_json::from_str(&text).expect("JSON")
}

#[test]
fn verify_counts_exactly_and_names_each_difference() {
    let env = env();
    source(&env);
    let mut c = cloned(&env, "ck_verify");
    let conninfo = env.src_conninfo("ck_src");
    let estimate: f32 = one(
        &mut env.client(env.src_port, "ck_src"),
        "SELECT reltuples FROM pg_class WHERE oid = 'app.stale'::regclass",
        &[],
    );
    assert_eq!(
        estimate, 1000.0,
        "the planner's estimate is wrong by design"
    );

    let rows = verify(&mut c, &conninfo);
    assert_eq!(
        row(&rows, "stale"),
        &("stale".into(), Some(1500), Some(1500), "✓".into())
    );
    for r in &rows {
        assert_eq!(r.3, "✓", "{r:?}");
    }
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    for n in ["a", "b", "c", "d", "stale", "totals", "counter"] {
        assert!(names.contains(&n), "{n} not verified: {names:?}");
    }

    c.batch_execute(
        "DELETE FROM app.b WHERE id = 1;
         UPDATE app.c SET doc = '{\"g\": 0}' WHERE id = 5;
         UPDATE app.d SET id = 2 WHERE ctid = (SELECT min(ctid) FROM app.d WHERE id = 1);
         DROP TABLE app.stale;
         SELECT setval('app.counter', 43);",
    )
    .expect("drift");
    let rows = verify(&mut c, &conninfo);
    assert_eq!(
        row(&rows, "b"),
        &("b".into(), Some(50), Some(49), "✗".into())
    );
    assert_eq!(row(&rows, "c").3, "✗ (content)", "one json value changed");
    assert_eq!(row(&rows, "c").1, row(&rows, "c").2);
    // Same rows, one duplicate moved: a per-row hash sum sees it.
    assert_eq!(row(&rows, "d").3, "✗ (content)");
    assert_eq!(
        row(&rows, "stale"),
        &("stale".into(), Some(1500), None, "✗ (missing)".into())
    );
    assert_eq!(
        row(&rows, "counter"),
        &("counter".into(), Some(42), Some(43), "✗".into())
    );
    assert_eq!(row(&rows, "a").3, "✓");
}

#[test]
fn verify_sees_a_swap_between_columns_and_a_moved_null() {
    let env = env();
    database_from(&env, env.src_port, "ck_swap", &[]);
    env.client(env.src_port, "ck_swap")
        .batch_execute(
            "CREATE TABLE public.p (a int, b int, c text);
             INSERT INTO public.p VALUES (1, 2, NULL), (3, 4, 'x');",
        )
        .expect("source");
    empty_target(&env, "ck_swap_t");
    let mut c = env.client(env.tgt_port, "ck_swap_t");
    let conninfo = env.src_conninfo("ck_swap");
    one::<String>(&mut c, "SELECT pgclone.schema($1, 'public')", &[&conninfo]);
    let check = |c: &mut Client| -> String {
        one(
            c,
            "SELECT match FROM pgclone.verify($1) WHERE table_name = 'p'",
            &[&conninfo],
        )
    };
    assert_eq!(check(&mut c), "✓");
    c.batch_execute("UPDATE public.p SET a = b, b = a WHERE a = 1")
        .expect("swap");
    assert_eq!(check(&mut c), "✗ (content)");
    c.batch_execute("UPDATE public.p SET a = b, b = a WHERE b = 1; UPDATE public.p SET c = 'x' WHERE a = 1; UPDATE public.p SET c = NULL WHERE a = 3")
        .expect("move");
    assert_eq!(check(&mut c), "✗ (content)");
}

#[test]
fn diff_is_in_sync_after_a_clone_and_names_each_drift() {
    let env = env();
    source(&env);
    let mut c = cloned(&env, "ck_diff");
    let conninfo = env.src_conninfo("ck_src");
    let clean = diff(&mut c, &conninfo);
    assert_eq!(clean["in_sync"], json!(true), "{clean}");
    assert_eq!(clean["diff_count"], json!(0));
    assert_eq!(clean["schema"], json!("app"));
    for key in [
        "tables",
        "indexes",
        "constraints",
        "triggers",
        "views",
        "sequences",
        "policies",
        "functions",
        "types",
    ] {
        assert!(clean[key]["only_in_target"].is_array(), "{key}");
    }

    c.batch_execute(
        "ALTER TABLE app.a ALTER COLUMN x SET DEFAULT 8;
         DROP INDEX app.a_note_idx;
         ALTER TABLE app.a ALTER COLUMN id DROP IDENTITY;
         ALTER POLICY mine ON app.a USING (x > 1);
         CREATE OR REPLACE FUNCTION app.f(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + 2';
         DROP TRIGGER touch ON app.b;
         CREATE TABLE app.extra (id int);",
    )
    .expect("drift");
    let d = diff(&mut c, &conninfo);
    assert_eq!(d["in_sync"], json!(false));
    let a = &d["tables"]["modified"][0];
    assert_eq!(a["name"], json!("a"), "{d}");
    let drift = a["columns_drift"].as_array().expect("drift");
    let x = drift.iter().find(|e| e["name"] == "x").expect("x drifts");
    assert_eq!(x["source_default"], json!("7"));
    assert_eq!(x["target_default"], json!("8"));
    let id = drift.iter().find(|e| e["name"] == "id").expect("id drifts");
    assert_eq!(id["source_identity"], json!("ALWAYS"));
    assert_eq!(id["target_identity"], json!(null));
    assert_eq!(
        d["indexes"]["only_in_source"],
        json!([{"name": "a_note_idx", "table": "a",
                "def": "CREATE INDEX a_note_idx ON app.a USING btree (note)"}])
    );
    let p = &d["policies"]["modified"][0];
    assert_eq!(p["name"], json!("mine"));
    assert!(p["target_def"].as_str().unwrap().contains("(x > 1)"), "{p}");
    let f = &d["functions"]["modified"];
    assert_eq!(f.as_array().unwrap().len(), 1, "only f(int) changed: {f}");
    assert_eq!(f[0]["name"], json!("f(integer)"));
    // The trigger of the same name on a is no drift; b's is gone.
    assert_eq!(
        d["triggers"]["only_in_source"].as_array().unwrap().len(),
        1,
        "{d}"
    );
    assert_eq!(d["triggers"]["only_in_source"][0]["table"], json!("b"));
    assert_eq!(d["triggers"]["modified"], json!([]));
    // Same-named constraints on two tables: no drift.
    assert_eq!(d["constraints"]["modified"], json!([]));
    assert_eq!(d["constraints"]["only_in_source"], json!([]));
    assert_eq!(d["tables"]["only_in_target"], json!(["extra"]));
    // Dropping the identity dropped its sequence too.
    assert_eq!(d["sequences"]["only_in_source"], json!(["a_id_seq"]));
    // a (one entry, however many columns), the index, the policy, f(int),
    // b's trigger, the identity's sequence and the extra table.
    assert_eq!(d["diff_count"], json!(7), "{d}");
    assert_eq!(d["summary"]["tables_modified"], json!(1));
}

#[test]
fn checks_refuse_null_arguments_and_a_missing_schema() {
    let env = env();
    empty_target(&env, "ck_bad");
    let mut c = env.client(env.tgt_port, "ck_bad");
    let conninfo = lit(&env.src_conninfo("postgres"));
    for sql in [
        "SELECT * FROM pgclone.verify(NULL)".to_string(),
        format!("SELECT * FROM pgclone.verify({conninfo}, NULL)"),
        format!("SELECT pgclone.diff({conninfo}, NULL)"),
        "SELECT pgclone.diff(NULL, 'public')".to_string(),
    ] {
        let (state, msg) = expect_error(&mut c, &sql);
        assert_eq!(state, "22004", "{sql}: {msg}");
    }
    let (state, msg) = expect_error(
        &mut c,
        &format!("SELECT pgclone.diff({conninfo}, 'no_such_schema')"),
    );
    assert_eq!(state, "3F000", "{msg}");
}

#[test]
fn an_operator_verifies_only_what_it_may_read_here() {
    let env = env();
    database_from(&env, env.src_port, "ck_priv", &[]);
    env.client(env.src_port, "ck_priv")
        .batch_execute(
            "CREATE TABLE public.secret (v text); INSERT INTO public.secret VALUES ('s');",
        )
        .expect("source");
    empty_target(&env, "ck_priv_t");
    let mut su = env.client(env.tgt_port, "ck_priv_t");
    let conninfo = env.src_conninfo("ck_priv");
    one::<String>(&mut su, "SELECT pgclone.schema($1, 'public')", &[&conninfo]);
    su.batch_execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ck_op') THEN \
           CREATE ROLE ck_op LOGIN; END IF; END $$; \
         GRANT pgclone_operator TO ck_op; REVOKE ALL ON public.secret FROM ck_op;",
    )
    .expect("operator");
    let mut op = Client::connect(
        &format!(
            "host={} port={} user=ck_op dbname=ck_priv_t",
            env.sock, env.tgt_port
        ),
        postgres::NoTls,
    )
    .expect("connect as operator");
    let (state, msg) = expect_error(
        &mut op,
        &format!("SELECT * FROM pgclone.verify({})", lit(&conninfo)),
    );
    assert_eq!(state, "42501", "{msg}");
    assert!(msg.contains("secret"), "{msg}");
    assert!(!msg.contains(&env.password), "{msg}");
}
