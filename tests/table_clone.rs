//! Tier 3: pgclone.table() between two real clusters. Fidelity is judged by
//! pg_dump --schema-only and by row count + content hash of every table.

mod common;
use common::*;

const TABLES: &[(&str, &str)] = &[
    ("app", "accounts"),
    ("app", "nodes"),
    ("app", "scratch"),
    ("app", "orders"),
    ("Odd Schema", "Weird \"Table\"; DROP"),
];

fn pattern(schema: &str, table: &str) -> String {
    // pg_dump -t takes a pattern: quote both parts so nothing is a wildcard.
    format!(
        "\"{}\".\"{}\"",
        schema.replace('"', "\"\""),
        table.replace('"', "\"\"")
    )
}

#[test]
fn every_fixture_table_is_cloned_faithfully() {
    let env = env();
    let src = source_db(&env);
    let tgt = target_db(&env, "fidelity");
    let mut c = env.client(env.tgt_port, &tgt);
    // accounts before orders: orders' foreign key needs it
    for (schema, table) in TABLES {
        let row = c
            .query_one(
                "SELECT pgclone.table($1, $2, $3)",
                &[&env.src_conninfo(src), schema, table],
            )
            .unwrap_or_else(|e| panic!("clone {schema}.{table}: {e:?}"));
        let summary: String = row.get(0);
        assert!(summary.contains("rows"), "{summary}");
    }
    for (schema, table) in TABLES {
        let p = pattern(schema, table);
        let a = env.dump(env.src_port, src, &[&p]);
        let b = env.dump(env.tgt_port, &tgt, &[&p]);
        assert!(a.contains("TABLE "), "source dump of {p} is empty");
        assert_eq!(a, b, "pg_dump -t {p} differs");
        let (src_rows, src_hash) = env.content(env.src_port, src, &p);
        let (tgt_rows, tgt_hash) = env.content(env.tgt_port, &tgt, &p);
        assert!(src_rows > 0, "{p} has no rows on the source");
        assert_eq!(
            (src_rows, &src_hash),
            (tgt_rows, &tgt_hash),
            "content of {p}"
        );
    }
    // sequence positions (schema-only dumps do not show them)
    let mut s = env.client(env.src_port, src);
    for seq in [
        "app.accounts_id_seq",
        "app.nodes_id_seq",
        "app.orders_order_no_seq",
    ] {
        let q = format!("SELECT last_value, is_called FROM {seq}");
        let a = s.query_one(&q, &[]).unwrap();
        let b = c.query_one(&q, &[]).unwrap();
        assert_eq!(
            (a.get::<_, i64>(0), a.get::<_, bool>(1)),
            (b.get::<_, i64>(0), b.get::<_, bool>(1)),
            "{seq}"
        );
    }
    // the identity sequence keeps working after the clone
    c.batch_execute("INSERT INTO app.accounts (email) VALUES ('after-clone@example.com')")
        .unwrap();
}

#[test]
fn renamed_clone_matches_up_to_the_name_and_coexists() {
    let env = env();
    let src = source_db(&env);
    let tgt = target_db(&env, "rename");
    let mut c = env.client(env.tgt_port, &tgt);
    let ci = env.src_conninfo(src);
    c.query_one("SELECT pgclone.table($1, 'app', 'nodes')", &[&ci])
        .unwrap();
    c.query_one(
        "SELECT pgclone.table($1, 'app', 'nodes', true, 'nodes2')",
        &[&ci],
    )
    .unwrap();
    let a = env
        .dump(env.src_port, src, &["app.nodes"])
        .replace("nodes", "nodes2");
    let b = env.dump(env.tgt_port, &tgt, &["app.nodes2"]);
    assert_eq!(a, b);
    assert_eq!(
        env.content(env.src_port, src, "app.nodes"),
        env.content(env.tgt_port, &tgt, "app.nodes2")
    );
    // the original-name clone is untouched
    assert_eq!(
        env.dump(env.src_port, src, &["app.nodes"]),
        env.dump(env.tgt_port, &tgt, &["app.nodes"])
    );
}

#[test]
fn columns_where_and_switches() {
    let env = env();
    let src = source_db(&env);
    let tgt = target_db(&env, "subset");
    let mut c = env.client(env.tgt_port, &tgt);
    let ci = env.src_conninfo(src);
    c.query_one(
        "SELECT pgclone.table($1, 'app', 'nodes', true, 'nodes_small', \
         '{\"columns\": [\"id\", \"code\"], \"where\": \"id <= 100 AND coalesce(code, '''') <> ''Do not ship; ever''\"}')",
        &[&ci],
    )
    .unwrap();
    let cols: Vec<String> = c
        .query(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = 'app.nodes_small'::regclass AND attnum > 0 ORDER BY attnum",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(cols, vec!["id", "code"]);
    let n: i64 = c
        .query_one("SELECT count(*) FROM app.nodes_small", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 100);
    // the exclusion constraint and the FK read columns that were left out
    let cons: Vec<String> = c
        .query(
            "SELECT contype::text FROM pg_constraint WHERE conrelid = 'app.nodes_small'::regclass ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(cons, vec!["p", "u"]);

    // an honest filter with ; and a keyword inside a literal
    c.query_one(
        "SELECT pgclone.table($1, 'app', 'orders', true, 'orders_hold', '{\"where\": \"note = ''Do not ship; ever''\"}')",
        &[&ci],
    )
    .unwrap();
    let (want, _) = env.content(
        env.src_port,
        src,
        "(SELECT * FROM app.orders WHERE note = 'Do not ship; ever')",
    );
    let n: i64 = c
        .query_one("SELECT count(*) FROM app.orders_hold", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, want);
    assert!(n > 0);

    // table_ex without indexes, constraints or triggers; no data
    c.query_one(
        "SELECT pgclone.table_ex($1, 'app', 'accounts', false, 'acc_bare', false, false, false)",
        &[&ci],
    )
    .unwrap();
    let (idx, con, trg, rows): (i64, i64, i64, i64) = {
        let r = c
            .query_one(
                "SELECT (SELECT count(*) FROM pg_index WHERE indrelid = 'app.acc_bare'::regclass), \
                        (SELECT count(*) FROM pg_constraint WHERE conrelid = 'app.acc_bare'::regclass), \
                        (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'app.acc_bare'::regclass), \
                        (SELECT count(*) FROM app.acc_bare)",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3))
    };
    assert_eq!((idx, con, trg, rows), (0, 0, 0, 0));
    let pol: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_policy WHERE polrelid = 'app.acc_bare'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(pol, 2, "policies always come along");
}

#[test]
fn conflict_modes() {
    let env = env();
    let src = source_db(&env);
    let tgt = target_db(&env, "conflict");
    let mut c = env.client(env.tgt_port, &tgt);
    let ci = env.src_conninfo(src);
    c.query_one("SELECT pgclone.table($1, 'app', 'scratch')", &[&ci])
        .unwrap();
    c.batch_execute("DELETE FROM app.scratch WHERE k > 10")
        .unwrap();

    let (code, msg) = expect_error(
        &mut c,
        &format!("SELECT pgclone.table({}, 'app', 'scratch')", lit(&ci)),
    );
    assert_eq!(code, "42P07", "{msg}");

    let s: String = c
        .query_one(
            "SELECT pgclone.table($1, 'app', 'scratch', true, NULL, '{\"conflict\": \"skip\"}')",
            &[&ci],
        )
        .unwrap()
        .get(0);
    assert!(s.contains("skipped"), "{s}");
    assert_eq!(env.content(env.tgt_port, &tgt, "app.scratch").0, 10);

    c.query_one(
        "SELECT pgclone.table($1, 'app', 'scratch', true, NULL, '{\"conflict\": \"replace\"}')",
        &[&ci],
    )
    .unwrap();
    assert_eq!(
        env.content(env.tgt_port, &tgt, "app.scratch"),
        env.content(env.src_port, src, "app.scratch")
    );

    c.batch_execute("DELETE FROM app.scratch WHERE k > 10")
        .unwrap();
    c.query_one(
        "SELECT pgclone.table($1, 'app', 'scratch', true, NULL, '{\"conflict\": \"rename\"}')",
        &[&ci],
    )
    .unwrap();
    assert_eq!(
        env.content(env.tgt_port, &tgt, "app.scratch"),
        env.content(env.src_port, src, "app.scratch")
    );
    assert_eq!(
        env.dump(env.src_port, src, &["app.scratch"]),
        env.dump(env.tgt_port, &tgt, &["app.scratch"])
    );
    let moved: Vec<String> = env
        .relations(env.tgt_port, &tgt)
        .into_iter()
        .filter(|r| r.starts_with("app.scratch_old_"))
        .collect();
    assert_eq!(
        moved.len(),
        2,
        "the old table and its index are set aside: {moved:?}"
    );
    let kept: i64 = c
        .query_one(
            &format!(
                "SELECT count(*) FROM {}",
                moved.iter().find(|m| !m.ends_with("pkey")).unwrap()
            ),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(kept, 10, "the old rows are kept");
}

#[test]
fn clone_over_tls_with_verify_full() {
    let env = env();
    let mut s = env.client(env.tls_port, "postgres");
    s.batch_execute(
        "DROP TABLE IF EXISTS public.secure_t; \
         CREATE TABLE public.secure_t (id int PRIMARY KEY, v text); \
         INSERT INTO public.secure_t SELECT g, md5(g::text) FROM generate_series(1, 500) g;",
    )
    .unwrap();
    let tgt = target_db(&env, "tls");
    let mut c = env.client(env.tgt_port, &tgt);
    for host in ["localhost", "127.0.0.1"] {
        let ci = format!(
            "host={host} port={} dbname=postgres user=postgres password={} sslmode=verify-full sslrootcert={}",
            env.tls_port, env.password, env.tls_ca
        );
        c.batch_execute("DROP TABLE IF EXISTS public.secure_t")
            .unwrap();
        c.query_one("SELECT pgclone.table($1, 'public', 'secure_t')", &[&ci])
            .unwrap();
        assert_eq!(
            env.content(env.tls_port, "postgres", "public.secure_t"),
            env.content(env.tgt_port, &tgt, "public.secure_t"),
            "over TLS to {host}"
        );
    }
    // sslmode=require encrypts without checking the certificate.
    let require = format!(
        "host=127.0.0.1 port={} dbname=postgres user=postgres password={} sslmode=require",
        env.tls_port, env.password
    );
    c.query_one(
        "SELECT pgclone.table($1, 'public', 'secure_t', true, 'secure_req')",
        &[&require],
    )
    .unwrap();
    assert_eq!(env.content(env.tgt_port, &tgt, "public.secure_req").0, 500);
    // The server accepts TLS only: a plain connection is refused by pg_hba.
    let plain = format!(
        "host=127.0.0.1 port={} dbname=postgres user=postgres password={} sslmode=disable",
        env.tls_port, env.password
    );
    let (code, msg) = expect_error(
        &mut c,
        &format!(
            "SELECT pgclone.table({}, 'public', 'secure_t', true, 'x')",
            lit(&plain)
        ),
    );
    assert_eq!(code, "28000", "{msg}");
    // A certificate that does not chain to the given root is rejected.
    let wrong_ca = format!(
        "{}/tests/fixtures/not-the-ca.crt",
        env!("CARGO_MANIFEST_DIR")
    );
    let bad = format!(
        "host=127.0.0.1 port={} dbname=postgres user=postgres password={} sslmode=verify-full sslrootcert={wrong_ca}",
        env.tls_port, env.password
    );
    let (code, msg) = expect_error(
        &mut c,
        &format!(
            "SELECT pgclone.table({}, 'public', 'secure_t', true, 'x')",
            lit(&bad)
        ),
    );
    assert_eq!(code, "08001", "{msg}");
    assert!(!msg.contains(&env.password), "{msg}");
}

/// The caller's client_encoding must not matter: rows travel in the
/// database encoding, even when the client's cannot hold every character.
#[test]
fn caller_client_encoding_does_not_matter() {
    let env = env();
    let src = source_db(&env);
    let tgt = target_db(&env, "latin_client");
    let mut c = env.client(env.tgt_port, &tgt);
    c.batch_execute("SET client_encoding = 'LATIN1'").unwrap();
    c.batch_execute(&format!(
        "SELECT pgclone.table({}, 'app', 'accounts')",
        lit(&env.src_conninfo(src))
    ))
    .unwrap();
    assert_eq!(
        env.content(env.src_port, src, "app.accounts"),
        env.content(env.tgt_port, &tgt, "app.accounts")
    );
}
