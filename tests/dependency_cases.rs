//! Tier 3: one test per dependency case that defeats a fixed creation order.
//! Each builds a small source schema, clones it with schema(), and compares
//! pg_dump and content.

mod common;
use common::*;

fn case(name: &str, sql: &str) {
    case_with(name, sql, "{}");
}

fn case_with(name: &str, sql: &str, options: &str) {
    let env = env();
    let src = format!("dep_{name}");
    let tgt = format!("dep_{name}_t");
    database_from(&env, env.src_port, &src, &[]);
    env.client(env.src_port, &src)
        .batch_execute(sql)
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    empty_target(&env, &tgt);
    env.client(env.tgt_port, &tgt)
        .query_one(
            "SELECT pgclone.database($1, true, $2)",
            &[&env.src_conninfo(&src), &options],
        )
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    env.assert_same_database(&src, &tgt, &[]);
}

#[test]
fn view_that_calls_a_function() {
    case(
        "view_fn",
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1);
         CREATE FUNCTION zz_double(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2';
         CREATE VIEW aa_v AS SELECT zz_double(x) AS y FROM t;",
    );
}

#[test]
fn function_whose_sql_body_reads_a_table() {
    case(
        "fn_table",
        "CREATE TABLE zz_t (x int); INSERT INTO zz_t VALUES (1), (2);
         CREATE FUNCTION aa_total() RETURNS bigint LANGUAGE sql STABLE BEGIN ATOMIC SELECT sum(x) FROM zz_t; END;",
    );
}

#[test]
fn default_that_uses_a_function_that_reads_the_table() {
    case(
        "default_fn",
        "CREATE TABLE t (id int, code text); INSERT INTO t VALUES (1, 'a');
         CREATE FUNCTION next_code() RETURNS text LANGUAGE sql VOLATILE BEGIN ATOMIC SELECT 'C' || (SELECT count(*) FROM t); END;
         ALTER TABLE t ALTER COLUMN code SET DEFAULT next_code();",
    );
}

#[test]
fn domain_that_uses_a_function() {
    case(
        "domain_fn",
        "CREATE FUNCTION zz_ok(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 > 0';
         CREATE DOMAIN aa_pos AS int CHECK (zz_ok(VALUE));
         CREATE TABLE t (v aa_pos); INSERT INTO t VALUES (5);",
    );
}

#[test]
fn view_on_a_view() {
    case(
        "view_view",
        "CREATE TABLE t (x int); INSERT INTO t VALUES (3);
         CREATE VIEW zz_base AS SELECT x FROM t;
         CREATE VIEW aa_top AS SELECT x + 1 AS y FROM zz_base;
         CREATE MATERIALIZED VIEW mm AS SELECT y FROM aa_top;",
    );
}

#[test]
fn table_using_a_type_from_another_schema() {
    case(
        "cross_schema",
        "CREATE SCHEMA zz_types; CREATE SCHEMA aa_data;
         CREATE TYPE zz_types.color AS ENUM ('red', 'green');
         CREATE TABLE aa_data.paint (c zz_types.color, cs zz_types.color[]);
         INSERT INTO aa_data.paint VALUES ('red', ARRAY['green', 'red']::zz_types.color[]);",
    );
}

#[test]
fn mutually_referencing_foreign_keys() {
    case(
        "mutual_fk",
        "CREATE TABLE a (id int PRIMARY KEY, b_id int);
         CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a (id));
         ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b (id) DEFERRABLE INITIALLY DEFERRED;
         BEGIN; INSERT INTO a VALUES (1, 1); INSERT INTO b VALUES (1, 1); COMMIT;",
    );
}

/// Views (and views of views, and functions whose bodies read them) of a
/// table that `exclude_tables` leaves out are left out too, each with a
/// NOTICE; before, the clone failed at the first of them.
#[test]
fn readers_of_an_excluded_table_are_left_out() {
    let env = env();
    let (src, tgt) = ("dep_excluded", "dep_excluded_t");
    database_from(&env, env.src_port, src, &[]);
    env.client(env.src_port, src)
        .batch_execute(
            "CREATE SCHEMA app;
             CREATE TABLE app.a (x int); CREATE TABLE app.b (y int);
             INSERT INTO app.a VALUES (1); INSERT INTO app.b VALUES (2);
             CREATE VIEW app.on_a AS SELECT x FROM app.a;
             CREATE VIEW app.on_on_a AS SELECT x FROM app.on_a;
             CREATE VIEW app.on_b AS SELECT y FROM app.b;
             CREATE FUNCTION app.count_a() RETURNS bigint LANGUAGE sql STABLE
               BEGIN ATOMIC SELECT count(*) FROM app.on_a; END;",
        )
        .unwrap();
    empty_target(&env, tgt);
    let (mut c, notices) = client_hearing(&env, env.tgt_port, "postgres", tgt);
    c.query_one(
        "SELECT pgclone.schema($1, 'app', true, '{\"exclude_tables\": [\"app.a\"]}')",
        &[&env.src_conninfo(src)],
    )
    .expect("clone");
    let said = notices.lock().unwrap().join("\n");
    for n in [
        "view app.on_a not cloned: it reads table app.a",
        "view app.on_on_a not cloned: it reads view app.on_a",
        "function app.count_a() not cloned: it reads view app.on_a",
    ] {
        assert!(said.contains(n), "{n}: {said}");
    }
    let made: Vec<String> = c
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'app' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(made, ["b", "on_b"]);
    let y: i32 = c.query_one("SELECT y FROM app.on_b", &[]).unwrap().get(0);
    assert_eq!(y, 2);
}

/// A view that groups by a table's primary key alone, selecting other
/// columns through it, and a function whose SQL body does the same: both
/// need the key. A large table's key is built after its rows, in a unit of
/// its own, so a parallel clone created them too early.
#[test]
fn view_and_function_that_rely_on_a_primary_key_of_a_large_table() {
    case_with(
        "view_pk",
        "CREATE TABLE o (id int PRIMARY KEY, user_id int, amount int);
         INSERT INTO o SELECT g, g % 100, g FROM generate_series(1, 700000) g;
         ANALYZE o;
         CREATE VIEW per_order AS SELECT o.id, o.user_id, sum(o.amount) AS total FROM o GROUP BY o.id;
         CREATE VIEW on_top AS SELECT * FROM per_order;
         CREATE FUNCTION by_key() RETURNS TABLE (id int, user_id int) LANGUAGE sql STABLE
           BEGIN ATOMIC SELECT o.id, o.user_id FROM o GROUP BY o.id; END;",
        r#"{"parallel": 2}"#,
    );
}
