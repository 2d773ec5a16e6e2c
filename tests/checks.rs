//! Tier 3: the checks a DBA gates a release on — verify, diff, preflight
//! and clone_roles — between two real clusters: exact after a clone, and
//! each kind of difference named for what it is.

mod common;
use common::*;
use postgres::Client;
use serde_json::{json, Value};
use std::sync::Mutex;

static SOURCE: Mutex<bool> = Mutex::new(false);
/// The clone_roles tests make and drop the same cluster-wide roles.
static ROLES: Mutex<()> = Mutex::new(());

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
             CREATE SEQUENCE app.later;
             SELECT setval('app.later', 1000, false);
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
        &("stale".into(), Some(1500), Some(0), "✗ (missing)".into())
    );
    assert_eq!(
        row(&rows, "counter"),
        &("counter".into(), Some(42), Some(43), "✗".into())
    );
    assert_eq!(row(&rows, "a").3, "✓");
    // Never called on both sides, at different positions: pg_sequences
    // shows NULL for both; the sequences themselves do not.
    assert_eq!(row(&verify(&mut c, &conninfo), "later").3, "✓");
    c.batch_execute("ALTER SEQUENCE app.later RESTART")
        .expect("restart");
    assert_eq!(row(&verify(&mut c, &conninfo), "later").3, "✗");
    // A column of another type here is counted, not hashed: no error.
    c.batch_execute("ALTER TABLE app.a ALTER COLUMN id TYPE bigint")
        .expect("retype");
    assert_eq!(row(&verify(&mut c, &conninfo), "a").3, "✗ (content)");
}

#[test]
fn verify_sees_a_swap_between_columns_a_moved_null_and_large_objects() {
    let env = env();
    database_from(&env, env.src_port, "ck_swap", &[]);
    env.client(env.src_port, "ck_swap")
        .batch_execute(
            "CREATE TABLE public.p (a int, b int, c text);
             INSERT INTO public.p VALUES (1, 2, NULL), (3, 4, 'x');
             CREATE TABLE public.pt (id int) PARTITION BY RANGE (id);
             CREATE TABLE public.pt1 PARTITION OF public.pt FOR VALUES FROM (0) TO (10);
             CREATE TABLE public.pt2 PARTITION OF public.pt FOR VALUES FROM (10) TO (20);
             INSERT INTO public.pt SELECT generate_series(0, 19);
             SELECT lo_from_bytea(0, 'first object'), lo_from_bytea(0, 'second object');",
        )
        .expect("source");
    empty_target(&env, "ck_swap_t");
    let mut c = env.client(env.tgt_port, "ck_swap_t");
    let conninfo = env.src_conninfo("ck_swap");
    one::<String>(&mut c, "SELECT pgclone.database($1)", &[&conninfo]);
    let check = |c: &mut Client, table: &str| -> String {
        one(
            c,
            "SELECT match FROM pgclone.verify($1) WHERE table_name = $2",
            &[&conninfo, &table],
        )
    };
    assert_eq!(check(&mut c, "p"), "✓");
    assert_eq!(check(&mut c, "pg_largeobject"), "✓");
    // A partitioned table reads as the sum of its partitions.
    let pt: (Option<i64>, String) = {
        let r = c
            .query_one(
                "SELECT target_rows, match FROM pgclone.verify($1) WHERE table_name = 'pt'",
                &[&conninfo],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(pt, (Some(20), "✓".to_string()));
    c.batch_execute("ALTER TABLE public.pt DETACH PARTITION public.pt2; DROP TABLE public.pt2")
        .expect("drop a partition");
    assert_eq!(check(&mut c, "pt"), "✗");
    assert_eq!(check(&mut c, "pt2"), "✗ (missing)");
    // A partition only this side has: the parent is not the source's.
    c.batch_execute(
        "CREATE TABLE public.pt2 PARTITION OF public.pt FOR VALUES FROM (10) TO (20);
         INSERT INTO public.pt SELECT generate_series(10, 19);
         CREATE TABLE public.pt3 PARTITION OF public.pt FOR VALUES FROM (20) TO (30);",
    )
    .expect("partitions back, and one more");
    assert_eq!(check(&mut c, "pt2"), "✓");
    assert_eq!(check(&mut c, "pt"), "✗");
    c.batch_execute("UPDATE public.p SET a = b, b = a WHERE a = 1")
        .expect("swap");
    assert_eq!(check(&mut c, "p"), "✗ (content)");
    c.batch_execute("UPDATE public.p SET a = b, b = a WHERE b = 1; UPDATE public.p SET c = 'x' WHERE a = 1; UPDATE public.p SET c = NULL WHERE a = 3")
        .expect("move");
    assert_eq!(check(&mut c, "p"), "✗ (content)");
    // Counts only, when asked: the same count reads as the same table,
    // but other columns never do.
    c.batch_execute("SET pgclone.verify_content = off")
        .expect("set");
    assert_eq!(check(&mut c, "p"), "✓");
    c.batch_execute("ALTER TABLE public.p ADD COLUMN d int")
        .expect("column");
    assert_eq!(check(&mut c, "p"), "✗ (content)");
    c.batch_execute("RESET pgclone.verify_content")
        .expect("reset");
    c.batch_execute("SELECT lo_put(oid, 0, 'F') FROM pg_largeobject_metadata WHERE oid = (SELECT min(oid) FROM pg_largeobject_metadata)")
        .expect("lo");
    assert_eq!(check(&mut c, "pg_largeobject"), "✗ (content)");
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
    operator(&mut su, "ck_op", "REVOKE ALL ON public.secret FROM ck_op");
    let mut op = env.client_as(env.tgt_port, "ck_op", "ck_priv_t");
    let (state, msg) = expect_error(
        &mut op,
        &format!("SELECT * FROM pgclone.verify({})", lit(&conninfo)),
    );
    assert_eq!(state, "42501", "{msg}");
    assert!(msg.contains("secret"), "{msg}");
    assert!(!msg.contains(&env.password), "{msg}");
    // The same failure caught by the caller's own EXCEPTION block rolls
    // back that block's work only: verify's subtransactions are its own.
    op.batch_execute(&format!(
        "DO $$ BEGIN
           CREATE TEMP TABLE outer_keep (x int);
           BEGIN
             CREATE TEMP TABLE inner_gone (x int);
             PERFORM * FROM pgclone.verify({});
           EXCEPTION WHEN insufficient_privilege THEN NULL;
           END;
         END $$;",
        lit(&conninfo)
    ))
    .expect("the block catches verify's error");
    let (kept, gone): (bool, bool) = {
        let r = op
            .query_one(
                "SELECT to_regclass('pg_temp.outer_keep') IS NOT NULL, to_regclass('pg_temp.inner_gone') IS NULL",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(kept && gone, "outer kept {kept}, inner rolled back {gone}");
}

fn preflight(c: &mut Client, conninfo: &str, schema: &str, options: &str) -> Value {
    let text: String = one(
        c,
        "SELECT pgclone.preflight($1, $2, $3)",
        &[&conninfo, &schema, &options],
    );
    serde_json::from_str(&text).expect("JSON")
}

/// The check named failed, alone, with a reason containing `reason`.
fn fails_for(v: &Value, check: &str, reason: &str) {
    assert_eq!(v["ready"], json!(false), "{v}");
    assert_eq!(v["checks"][check]["ok"], json!(false), "{check}: {v}");
    assert_eq!(v["checks"][check]["status"], json!("fail"));
    let msg = v["checks"][check]["message"].as_str().expect("message");
    assert!(msg.contains(reason), "{check}: {msg}");
    let failed: Vec<&String> = v["checks"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, c)| c["ok"] == json!(false))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(failed, [check], "{v}");
}

/// What a preflight must not change: the catalogs of both sides.
fn catalog_state(c: &mut Client) -> Vec<i64> {
    let r = c
        .query_one(
            "SELECT (SELECT count(*) FROM pg_class), (SELECT count(*) FROM pg_namespace), \
                    (SELECT count(*) FROM pg_roles), (SELECT count(*) FROM pg_extension), \
                    (SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_proc)",
            &[],
        )
        .expect("state");
    (0..6).map(|i| r.get(i)).collect()
}

/// A role that logs in here through the socket and may use pgclone, then
/// `then` (its grants and revokes for the test).
fn operator(c: &mut Client, role: &str, then: &str) {
    c.batch_execute(&format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN \
           CREATE ROLE {role} LOGIN; END IF; END $$; \
         GRANT pgclone_operator TO {role}; {then};"
    ))
    .expect("operator");
}

fn login_role(c: &mut Client, role: &str, password: &str) {
    c.batch_execute(&format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN \
           CREATE ROLE {role} LOGIN; END IF; END $$; \
         ALTER ROLE {role} LOGIN NOSUPERUSER PASSWORD '{password}';"
    ))
    .expect("role");
}

#[test]
fn preflight_is_ready_on_a_clean_case_and_changes_nothing() {
    let env = env();
    source(&env);
    empty_target(&env, "ck_pf_clean");
    let mut c = env.client(env.tgt_port, "ck_pf_clean");
    let mut s = env.client(env.src_port, "ck_src");
    let before = (catalog_state(&mut c), catalog_state(&mut s));
    let v = preflight(&mut c, &env.src_conninfo("ck_src"), "app", "{}");
    assert_eq!(v["ready"], json!(true), "{v}");
    assert_eq!(v["schema"], json!("app"));
    for k in ["errors", "warnings", "info", "checks_run"] {
        assert!(v["summary"].get(k).is_some(), "{k}");
    }
    for k in [
        "source_connection",
        "target_connection",
        "source_tls",
        "source_version",
        "target_version",
        "version_compat",
        "schema_exists_source",
        "schema_exists_target",
        "source_permissions",
        "target_permissions",
        "name_conflicts",
        "missing_roles",
        "missing_extensions",
        "tablespaces",
        "disk_space",
        "workers",
    ] {
        assert_eq!(v["checks"][k]["ok"], json!(true), "{k}: {v}");
    }
    assert_eq!(v["checks"]["version_compat"]["copy"], json!("binary"));
    assert_eq!(v["checks"]["object_counts"]["tables"], json!(5));
    assert!(v["checks"]["disk_space"]["source_bytes"].as_i64().unwrap() > 0);
    // 4.x's reading: a missing schema is not ready and says why.
    let v = preflight(&mut c, &env.src_conninfo("ck_src"), "no_such_schema", "{}");
    fails_for(&v, "schema_exists_source", "does not exist on the source");
    assert_eq!((catalog_state(&mut c), catalog_state(&mut s)), before);
}

#[test]
fn preflight_names_an_unreachable_source_without_its_password() {
    let env = env();
    empty_target(&env, "ck_pf_conn");
    let mut c = env.client(env.tgt_port, "ck_pf_conn");
    let conninfo = format!(
        "host=127.0.0.1 port={} dbname=ck_src user=postgres password=wrong-{} connect_timeout=5",
        env.src_port, env.password
    );
    let v = preflight(&mut c, &conninfo, "app", "{}");
    fails_for(&v, "source_connection", "cannot connect");
    assert!(!v.to_string().contains(&format!("wrong-{}", env.password)));
}

#[test]
fn preflight_names_what_the_source_role_cannot_read() {
    let env = env();
    source(&env);
    let mut s = env.client(env.src_port, "ck_src");
    login_role(&mut s, "ck_reader", "reader-pw");
    s.batch_execute(
        "GRANT USAGE ON SCHEMA app TO ck_reader; \
         GRANT SELECT ON ALL TABLES IN SCHEMA app TO ck_reader; \
         GRANT SELECT ON ALL SEQUENCES IN SCHEMA app TO ck_reader; \
         REVOKE SELECT ON app.d FROM ck_reader;",
    )
    .expect("grants");
    empty_target(&env, "ck_pf_read");
    let mut c = env.client(env.tgt_port, "ck_pf_read");
    ensure_role(&env, env.tgt_port, "ck_reader");
    let conninfo = format!(
        "host=127.0.0.1 port={} dbname=ck_src user=ck_reader password=reader-pw",
        env.src_port
    );
    let v = preflight(&mut c, &conninfo, "app", "{}");
    fails_for(&v, "source_permissions", "SELECT on app.d");
    assert_eq!(v["checks"]["source_permissions"]["items"], json!(["app.d"]));
}

#[test]
fn preflight_names_what_the_caller_cannot_create_here() {
    let env = env();
    source(&env);
    empty_target(&env, "ck_pf_priv");
    let mut su = env.client(env.tgt_port, "ck_pf_priv");
    operator(
        &mut su,
        "ck_pf_op",
        "REVOKE CREATE ON DATABASE ck_pf_priv FROM ck_pf_op",
    );
    let mut op = env.client_as(env.tgt_port, "ck_pf_op", "ck_pf_priv");
    let v = preflight(&mut op, &env.src_conninfo("ck_src"), "app", "{}");
    fails_for(&v, "target_permissions", "lacks CREATE on database");
}

#[test]
fn preflight_names_conflicts_under_the_chosen_mode() {
    let env = env();
    source(&env);
    empty_target(&env, "ck_pf_names");
    let mut c = env.client(env.tgt_port, "ck_pf_names");
    c.batch_execute("CREATE SCHEMA app; CREATE TABLE app.a (x int);")
        .expect("clash");
    let conninfo = env.src_conninfo("ck_src");
    let v = preflight(&mut c, &conninfo, "app", "{}");
    fails_for(&v, "name_conflicts", "table a");
    assert_eq!(
        v["checks"]["name_conflicts"]["items"],
        json!([{"name": "a", "kind": "table"}])
    );
    let v = preflight(&mut c, &conninfo, "app", r#"{"conflict": "skip"}"#);
    assert_eq!(v["ready"], json!(true), "{v}");
    assert_eq!(v["checks"]["name_conflicts"]["status"], json!("warn"));
}

#[test]
fn preflight_names_missing_roles_and_extensions() {
    let env = env();
    database_from(&env, env.src_port, "ck_pf_src2", &[]);
    let mut s = env.client(env.src_port, "ck_pf_src2");
    s.batch_execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ck_only_on_source') THEN \
           CREATE ROLE ck_only_on_source; END IF; END $$; \
         CREATE SCHEMA ext; CREATE EXTENSION postgres_fdw WITH SCHEMA ext; \
         CREATE TABLE ext.t (id int); ALTER TABLE ext.t OWNER TO ck_only_on_source;",
    )
    .expect("source");
    empty_target(&env, "ck_pf_need");
    let mut su = env.client(env.tgt_port, "ck_pf_need");
    su.batch_execute("DROP ROLE IF EXISTS ck_only_on_source")
        .expect("drop");
    let conninfo = env.src_conninfo("ck_pf_src2");
    let v = preflight(&mut su, &conninfo, "ext", "{}");
    fails_for(&v, "missing_roles", "ck_only_on_source");
    let v = preflight(&mut su, &conninfo, "ext", r#"{"roles": true}"#);
    assert_eq!(v["ready"], json!(true), "{v}");
    assert_eq!(v["checks"]["missing_roles"]["status"], json!("info"));
    // postgres_fdw is not trusted: an operator cannot create it here.
    operator(
        &mut su,
        "ck_pf_op2",
        "GRANT CREATE ON DATABASE ck_pf_need TO ck_pf_op2",
    );
    let mut op = env.client_as(env.tgt_port, "ck_pf_op2", "ck_pf_need");
    let v = preflight(&mut op, &conninfo, "ext", r#"{"roles": true}"#);
    fails_for(
        &v,
        "missing_extensions",
        "postgres_fdw (only a superuser may create it",
    );
}

#[test]
fn preflight_checks_what_following_needs() {
    let env = env();
    source(&env);
    empty_target(&env, "ck_pf_follow");
    let mut c = env.client(env.tgt_port, "ck_pf_follow");
    let level: String = one(
        &mut env.client(env.src_port, "postgres"),
        "SHOW wal_level",
        &[],
    );
    let v = preflight(
        &mut c,
        &env.src_conninfo("ck_src"),
        "app",
        r#"{"follow": true}"#,
    );
    if level == "logical" {
        assert_eq!(v["checks"]["follow"]["ok"], json!(true), "{v}");
    } else {
        fails_for(&v, "follow", &format!("wal_level is {level}"));
    }
    let v = preflight(
        &mut c,
        &env.src_conninfo("ck_src"),
        "app",
        r#"{"parallel": 64}"#,
    );
    assert_eq!(v["checks"]["workers"]["status"], json!("warn"), "{v}");
    assert!(v["checks"]["workers"]["message"]
        .as_str()
        .unwrap()
        .contains("max_worker_processes"));
}

/// Roles ck_r_* on the source (dropped from the target first), a schema
/// whose grants name them, and a function overloaded by argument type.
fn roles_source(env: &Env) -> String {
    let mut t = env.client(env.tgt_port, "postgres");
    for r in ["ck_r_app", "ck_r_grp", "ck_r_md5", "ck_r_owner"] {
        for db in ["ck_roles_t", "ck_roles_opt_t", "ck_roles_op"] {
            let _ = t.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        }
        t.batch_execute(&format!("DROP ROLE IF EXISTS {r}"))
            .expect("drop role");
    }
    database_from(env, env.src_port, "ck_roles_src", &[]);
    let mut s = env.client(env.src_port, "ck_roles_src");
    s.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ck_r_grp') THEN CREATE ROLE ck_r_grp; END IF;
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ck_r_app') THEN CREATE ROLE ck_r_app; END IF;
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ck_r_md5') THEN CREATE ROLE ck_r_md5; END IF;
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ck_r_owner') THEN CREATE ROLE ck_r_owner; END IF;
         END $$;
         ALTER ROLE ck_r_app LOGIN CREATEDB CONNECTION LIMIT 5 VALID UNTIL '2099-01-01 00:00:00+00' PASSWORD 'app-secret';
         SET password_encryption = 'md5';
         ALTER ROLE ck_r_md5 LOGIN PASSWORD 'md5-secret';
         RESET password_encryption;
         GRANT ck_r_grp TO ck_r_app WITH ADMIN OPTION;
         ALTER ROLE ck_r_app SET search_path = app, \"$user\";
         ALTER ROLE ck_r_app IN DATABASE ck_roles_src SET work_mem = '8MB';
         ALTER ROLE ck_r_grp SET session_preload_libraries = 'auto_explain';
         CREATE SCHEMA app;
         GRANT USAGE ON SCHEMA app TO ck_r_grp;
         CREATE TABLE app.t (id int, secret text);
         GRANT SELECT ON app.t TO ck_r_grp;
         GRANT SELECT (id) ON app.t TO ck_r_md5;
         CREATE FUNCTION app.f(int) RETURNS int LANGUAGE sql AS 'SELECT 1';
         CREATE FUNCTION app.f(text) RETURNS int LANGUAGE sql AS 'SELECT 2';
         REVOKE EXECUTE ON FUNCTION app.f(int) FROM PUBLIC;
         GRANT EXECUTE ON FUNCTION app.f(int) TO ck_r_app;
         ALTER DEFAULT PRIVILEGES FOR ROLE ck_r_grp IN SCHEMA app GRANT SELECT ON TABLES TO ck_r_app;
         CREATE TABLE app.owned (id int);
         ALTER TABLE app.owned OWNER TO ck_r_owner;",
    )
    .expect("source roles");
    env.src_conninfo("ck_roles_src")
}

fn password_hash(c: &mut Client, role: &str) -> Option<String> {
    one(
        c,
        "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
        &[&role],
    )
}

#[test]
fn clone_roles_copies_attributes_hashes_memberships_settings_and_grants() {
    let _one_at_a_time = ROLES.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    let conninfo = roles_source(&env);
    empty_target(&env, "ck_roles_t");
    let mut c = env.client(env.tgt_port, "ck_roles_t");
    // The schema first, while its roles are missing here: its grants to
    // them are left out, and clone_roles puts them in.
    one::<String>(&mut c, "SELECT pgclone.schema($1, 'app')", &[&conninfo]);
    let text: String = one(
        &mut c,
        "SELECT pgclone.clone_roles($1, 'ck_r_app, ck_r_grp ck_r_md5')",
        &[&conninfo],
    );
    assert!(
        text.starts_with("OK: 3 roles created, 0 roles updated, "),
        "{text}"
    );
    let mut s = env.client(env.src_port, "ck_roles_src");
    for r in ["ck_r_app", "ck_r_md5"] {
        let (a, b) = (password_hash(&mut s, r), password_hash(&mut c, r));
        assert!(a.is_some());
        assert_eq!(a, b, "{r}'s stored hash");
    }
    assert!(password_hash(&mut c, "ck_r_md5")
        .unwrap()
        .starts_with("md5"));
    // The role logs in here with its source password, over scram-sha-256.
    postgres::Client::connect(
        &format!(
            "host=127.0.0.1 port={} dbname=ck_roles_t user=ck_r_app password=app-secret",
            env.tgt_port
        ),
        postgres::NoTls,
    )
    .expect("ck_r_app logs in with its source password");
    let attrs: (bool, bool, i32, String) = {
        let r = c
            .query_one(
                "SELECT rolcanlogin, rolcreatedb, rolconnlimit, rolvaliduntil::text FROM pg_roles WHERE rolname = 'ck_r_app'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3))
    };
    assert_eq!(attrs, (true, true, 5, "2099-01-01 00:00:00+00".to_string()));
    let admin: bool = one(
        &mut c,
        "SELECT admin_option FROM pg_auth_members WHERE roleid = 'ck_r_grp'::regrole AND member = 'ck_r_app'::regrole",
        &[],
    );
    assert!(admin, "membership keeps its ADMIN option");
    let settings: Vec<String> = column(
        &mut c,
        "SELECT coalesce(d.datname, '*') || ':' || array_to_string(s.setconfig, ';') \
             FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase \
             WHERE s.setrole = 'ck_r_app'::regrole ORDER BY 1",
    );
    assert_eq!(
        settings,
        ["*:search_path=app, \"$user\"", "ck_roles_t:work_mem=8MB"]
    );
    // A hostile source cannot have code loaded here at a role's login.
    let preload: i64 = one(
        &mut c,
        "SELECT count(*) FROM pg_db_role_setting WHERE setrole = 'ck_r_grp'::regrole",
        &[],
    );
    assert_eq!(preload, 0, "session_preload_libraries was copied");
    let privs: Vec<bool> = c
        .query_one(
            "SELECT has_table_privilege('ck_r_grp', 'app.t', 'SELECT'), \
                    has_column_privilege('ck_r_md5', 'app.t', 'id', 'SELECT'), \
                    has_column_privilege('ck_r_md5', 'app.t', 'secret', 'SELECT'), \
                    has_function_privilege('ck_r_app', 'app.f(integer)', 'EXECUTE'), \
                    has_function_privilege('ck_r_md5', 'app.f(integer)', 'EXECUTE'), \
                    has_function_privilege('ck_r_md5', 'app.f(text)', 'EXECUTE'), \
                    has_schema_privilege('ck_r_grp', 'app', 'USAGE'), \
                    EXISTS (SELECT 1 FROM pg_default_acl WHERE defaclrole = 'ck_r_grp'::regrole)",
            &[],
        )
        .map(|r| (0..8).map(|i| r.get(i)).collect())
        .unwrap();
    assert_eq!(
        privs,
        [true, true, false, true, false, true, true, true],
        "grants by signature, PUBLIC's revoke kept, columns, schema, defaults"
    );
    // Again: the same roles, updated, and nothing doubled.
    let again: String = one(
        &mut c,
        "SELECT pgclone.clone_roles($1, 'ck_r_app,ck_r_grp,ck_r_md5')",
        &[&conninfo],
    );
    assert!(
        again.starts_with("OK: 0 roles created, 3 roles updated, "),
        "{again}"
    );
    // The whole schema's ACLs now match the source's: diff and pg_dump agree.
    assert_same_text(
        &env.dump_db(env.src_port, "ck_roles_src", &["-n", "app", "--no-owner"]),
        &env.dump_db(env.tgt_port, "ck_roles_t", &["-n", "app", "--no-owner"]),
        "pg_dump of app after clone_roles",
    );
}

#[test]
fn clone_roles_without_pg_authid_and_as_an_operator() {
    let _one_at_a_time = ROLES.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    let conninfo = roles_source(&env);
    let mut s = env.client(env.src_port, "ck_roles_src");
    login_role(&mut s, "ck_r_reader", "reader-pw");
    empty_target(&env, "ck_roles_op");
    let mut su = env.client(env.tgt_port, "ck_roles_op");
    // A source role that cannot read pg_authid: roles come without
    // passwords, and the summary says whose.
    let reader = format!(
        "host=127.0.0.1 port={} dbname=ck_roles_src user=ck_r_reader password=reader-pw",
        env.src_port
    );
    let text: String = one(
        &mut su,
        "SELECT pgclone.clone_roles($1, 'ck_r_grp')",
        &[&reader],
    );
    assert!(
        text.contains(
            "passwords not copied (the source does not show pg_authid to this role): ck_r_grp"
        ),
        "{text}"
    );
    // An operator without CREATEROLE is refused, clearly.
    operator(
        &mut su,
        "ck_r_op",
        "ALTER ROLE ck_r_op NOSUPERUSER NOCREATEROLE",
    );
    let op = |env: &Env| env.client_as(env.tgt_port, "ck_r_op", "ck_roles_op");
    let (state, msg) = expect_error(
        &mut op(&env),
        &format!("SELECT pgclone.clone_roles({}, 'ck_r_md5')", lit(&conninfo)),
    );
    assert_eq!(state, "42501", "{msg}");
    assert!(msg.contains("superuser or a role with CREATEROLE"), "{msg}");
    // With CREATEROLE it may clone plain roles, never a REPLICATION one, and
    // a source role of its own name does not touch it.
    s.batch_execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ck_r_op') THEN \
           CREATE ROLE ck_r_op; END IF; END $$; ALTER ROLE ck_r_op SUPERUSER; \
         ALTER ROLE ck_r_owner REPLICATION;",
    )
    .expect("source roles");
    su.batch_execute("ALTER ROLE ck_r_op CREATEROLE")
        .expect("createrole");
    let mut op = op(&env);
    let text: String = one(
        &mut op,
        "SELECT pgclone.clone_roles($1, 'ck_r_md5 ck_r_op')",
        &[&conninfo],
    );
    assert!(text.starts_with("OK: "), "{text}");
    let (state, msg) = expect_error(
        &mut op,
        &format!(
            "SELECT pgclone.clone_roles({}, 'ck_r_owner')",
            lit(&conninfo)
        ),
    );
    assert_eq!(state, "42501", "{msg}");
    assert!(msg.contains("ck_r_owner"), "{msg}");
    let mighty: bool = one(
        &mut su,
        "SELECT rolsuper FROM pg_roles WHERE rolname = 'ck_r_op'",
        &[],
    );
    assert!(!mighty, "the operator made itself a superuser");
    s.batch_execute("ALTER ROLE ck_r_op NOSUPERUSER; ALTER ROLE ck_r_owner NOREPLICATION;")
        .expect("reset");
}

#[test]
fn the_roles_option_clones_the_roles_a_schema_needs_first() {
    let _one_at_a_time = ROLES.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    let conninfo = roles_source(&env);
    empty_target(&env, "ck_roles_opt_t");
    let mut c = env.client(env.tgt_port, "ck_roles_opt_t");
    one::<String>(
        &mut c,
        "SELECT pgclone.schema($1, 'app', true, '{\"roles\": true}')",
        &[&conninfo],
    );
    let owner: String = one(
        &mut c,
        "SELECT relowner::regrole::text FROM pg_class WHERE oid = 'app.owned'::regclass",
        &[],
    );
    assert_eq!(owner, "ck_r_owner");
    assert_same_text(
        &env.dump_db(env.src_port, "ck_roles_src", &["-n", "app"]),
        &env.dump_db(env.tgt_port, "ck_roles_opt_t", &["-n", "app"]),
        "pg_dump of app cloned with roles",
    );
}

/// A tablespace named `name` on the cluster at `port`, in a fresh directory.
fn tablespace(env: &Env, port: u16, name: &str, dbs: &[&str]) {
    let mut c = env.client(port, "postgres");
    for db in dbs {
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .expect("drop db");
    }
    c.batch_execute(&format!("DROP TABLESPACE IF EXISTS {name}"))
        .expect("drop tablespace");
    let dir = std::env::temp_dir().join(format!("pgclone-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::process::Command::new("chown")
        .args(["postgres:", dir.to_str().unwrap()])
        .status()
        .expect("chown");
    c.batch_execute(&format!(
        "CREATE TABLESPACE {name} LOCATION {}",
        lit(dir.to_str().unwrap())
    ))
    .expect("create tablespace");
}

#[test]
fn tablespaces_are_mapped_kept_or_left_with_a_notice() {
    let env = env();
    tablespace(&env, env.src_port, "ck_ts_fast", &["ck_ts_src"]);
    tablespace(
        &env,
        env.tgt_port,
        "ck_ts_here",
        &["ck_ts_mapped", "ck_ts_unmapped"],
    );
    database_from(&env, env.src_port, "ck_ts_src", &[]);
    env.client(env.src_port, "ck_ts_src")
        .batch_execute(
            "CREATE SCHEMA app;
             CREATE TABLE app.hot (id int PRIMARY KEY) TABLESPACE ck_ts_fast;
             INSERT INTO app.hot SELECT generate_series(1, 10);
             CREATE TABLE app.cold (id int);",
        )
        .expect("source");
    let conninfo = env.src_conninfo("ck_ts_src");
    let tablespace_of = |c: &mut Client| -> Option<String> {
        one(
            c,
            "SELECT t.spcname::text FROM pg_class c LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace \
             WHERE c.oid = 'app.hot'::regclass",
            &[],
        )
    };

    empty_target(&env, "ck_ts_mapped");
    let mut c = env.client(env.tgt_port, "ck_ts_mapped");
    let v = preflight(&mut c, &conninfo, "app", "{}");
    assert_eq!(v["checks"]["tablespaces"]["status"], json!("warn"), "{v}");
    let v = preflight(
        &mut c,
        &conninfo,
        "app",
        r#"{"tablespaces": {"ck_ts_fast": "ck_ts_here"}}"#,
    );
    assert_eq!(v["checks"]["tablespaces"]["status"], json!("pass"), "{v}");
    let (state, msg) = expect_error(
        &mut c,
        &format!(
            "SELECT pgclone.schema({}, 'app', true, '{{\"tablespaces\": {{\"ck_ts_fast\": \"nowhere\"}}}}')",
            lit(&conninfo)
        ),
    );
    assert_eq!(state, "22023", "{msg}");
    assert!(msg.contains("\"nowhere\""), "{msg}");
    one::<String>(
        &mut c,
        "SELECT pgclone.schema($1, 'app', true, '{\"tablespaces\": {\"ck_ts_fast\": \"ck_ts_here\"}}')",
        &[&conninfo],
    );
    assert_eq!(tablespace_of(&mut c).as_deref(), Some("ck_ts_here"));
    let rows: i64 = one(&mut c, "SELECT count(*) FROM app.hot", &[]);
    assert_eq!(rows, 10);

    empty_target(&env, "ck_ts_unmapped");
    let (mut c, heard) = client_hearing(&env, env.tgt_port, "postgres", "ck_ts_unmapped");
    one::<String>(&mut c, "SELECT pgclone.schema($1, 'app')", &[&conninfo]);
    assert_eq!(tablespace_of(&mut c), None, "the database's default");
    let notices = heard.lock().unwrap().join("\n");
    assert!(
        notices.contains("tablespace \"ck_ts_fast\" of the source does not exist here"),
        "{notices}"
    );
}

/// A hostile source: it lists a role of its own as a member of roles that
/// hold this server's keys, and names an existing superuser here as one of
/// its (ordinary) roles with a password it knows. clone_roles grants none
/// of that and leaves the superuser as it was.
#[test]
fn clone_roles_never_hands_out_this_servers_keys() {
    let env = env();
    let _one_at_a_time = ROLES.lock().unwrap_or_else(|p| p.into_inner());
    // Roles are cluster-wide: what an earlier run granted must not linger.
    let mut pg = env.client(env.tgt_port, "postgres");
    for sql in [
        "DROP DATABASE IF EXISTS ck_evil_t WITH (FORCE)",
        "DROP ROLE IF EXISTS ck_evil",
    ] {
        pg.batch_execute(sql).expect("reset");
    }
    database_from(&env, env.src_port, "ck_evil_src", &[]);
    let mut s = env.client(env.src_port, "ck_evil_src");
    s.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ck_evil') THEN CREATE ROLE ck_evil; END IF;
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ck_dba') THEN CREATE ROLE ck_dba; END IF;
         END $$;
         ALTER ROLE ck_evil LOGIN PASSWORD 'evil-pw';
         ALTER ROLE ck_dba NOSUPERUSER LOGIN PASSWORD 'known-to-the-attacker';
         GRANT pg_write_server_files, pg_execute_server_program TO ck_evil;
         GRANT ck_dba TO ck_evil;",
    )
    .expect("source");
    empty_target(&env, "ck_evil_t");
    let mut t = env.client(env.tgt_port, "ck_evil_t");
    t.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ck_dba') THEN CREATE ROLE ck_dba; END IF;
         END $$;
         ALTER ROLE ck_dba SUPERUSER LOGIN PASSWORD 'the-real-one';",
    )
    .expect("target superuser");
    let before = password_hash(&mut t, "ck_dba");
    let text: String = one(
        &mut t,
        "SELECT pgclone.clone_roles($1, 'ck_evil ck_dba')",
        &[&env.src_conninfo("ck_evil_src")],
    );
    assert!(text.starts_with("OK: "), "{text}");
    let memberships: Vec<String> = column(
        &mut t,
        "SELECT r.rolname::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid \
             WHERE m.member = 'ck_evil'::regrole ORDER BY 1",
    );
    assert!(memberships.is_empty(), "granted: {memberships:?}");
    let dba: bool = one(
        &mut t,
        "SELECT rolsuper FROM pg_roles WHERE rolname = 'ck_dba'",
        &[],
    );
    assert!(dba, "the superuser was demoted");
    assert_eq!(
        password_hash(&mut t, "ck_dba"),
        before,
        "its password changed"
    );
    t.batch_execute("ALTER ROLE ck_dba NOSUPERUSER")
        .expect("reset");
}
