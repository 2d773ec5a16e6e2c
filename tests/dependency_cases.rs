//! Tier 3: one test per dependency case that defeats a fixed creation order.
//! Each builds a small source schema, clones it with schema(), and compares
//! pg_dump and content.

mod common;
use common::*;

fn case(name: &str, sql: &str) {
    let env = env();
    let src = format!("dep_{name}");
    let tgt = format!("dep_{name}_t");
    database_from(&env, env.src_port, &src, &[]);
    env.client(env.src_port, &src)
        .batch_execute(sql)
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    empty_target(&env, &tgt);
    env.client(env.tgt_port, &tgt)
        .query_one("SELECT pgclone.database($1)", &[&env.src_conninfo(&src)])
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
