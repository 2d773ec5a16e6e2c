//! Tier 3: masks between two real clusters. Every strategy on the types it
//! takes, with its documented output; every impossible rule refused before
//! anything is made; keys that stay keys; the same masked clone whatever
//! the path (serial, parallel, async, resumed after a cancel); and no raw
//! value of a masked column anywhere on the target, its server log
//! included.

mod common;
use common::*;
use postgres::Client;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SOURCE: Mutex<bool> = Mutex::new(false);
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The source database `mask_src`, schema `crm`:
/// - people: a column of every type the strategies take, with NULLs and
///   values too short for their masks;
/// - customers (email UNIQUE) and orders (customer_email REFERENCES
///   customers(email)), 300 and 3000 rows of `userN@corp.example`;
/// - slow: 1500 rows loaded slowly on the target (a CHECK that sleeps 2 ms
///   a row), to be caught mid-copy.
fn source(env: &Env) {
    let mut made = SOURCE.lock().unwrap_or_else(|p| p.into_inner());
    if *made {
        return;
    }
    database_from(env, env.src_port, "mask_src", &[]);
    env.client(env.src_port, "mask_src")
        .batch_execute(
            "CREATE SCHEMA crm;
             CREATE DOMAIN crm.short_text AS varchar(12);
             CREATE TABLE crm.people (
                 id int PRIMARY KEY, email text, full_name varchar(40) NOT NULL, phone text,
                 nick crm.short_text, tags text[], ext_ref uuid, score smallint,
                 balance numeric(6,2), born date, note text);
             INSERT INTO crm.people VALUES
               (1, 'alice@example.com', 'Alice Smith', '+1-555-123-4567', 'Johnson', '{red,blue}',
                '6f1c2f4e-8a8b-4c49-9d0e-111111111111', 5, 10.00, '1980-01-02', 'same'),
               (2, NULL, 'Bob', '123', 'Al', NULL, NULL, NULL, NULL, NULL, 'same'),
               (3, 'noat', 'Carol', NULL, NULL, '{}', '6f1c2f4e-8a8b-4c49-9d0e-222222222222', 1, 1,
                '1990-01-01', 'other');
             CREATE TABLE crm.customers (id int PRIMARY KEY, email text UNIQUE NOT NULL, name text);
             CREATE TABLE crm.orders (id int PRIMARY KEY,
                 customer_email text REFERENCES crm.customers (email), amount numeric(8,2));
             INSERT INTO crm.customers SELECT g, 'user' || g || '@corp.example', 'Name ' || g
               FROM generate_series(1, 300) g;
             INSERT INTO crm.orders SELECT g, 'user' || (g % 300 + 1) || '@corp.example', g
               FROM generate_series(1, 3000) g;
             CREATE FUNCTION crm.slow(int) RETURNS boolean LANGUAGE plpgsql AS
               $$BEGIN PERFORM pg_sleep(0.002); RETURN true; END$$;
             CREATE TABLE crm.slow (id int PRIMARY KEY CHECK (crm.slow(id)), contact text);
             INSERT INTO crm.slow SELECT g, 'user' || g || '@corp.example' FROM generate_series(1, 1500) g;
             CREATE SCHEMA hr;
             CREATE TABLE hr.staff (id int PRIMARY KEY, email text UNIQUE, first_name text,
                 last_name varchar(10) NOT NULL, phone varchar(20), ssn char(11), birth_date date,
                 salary numeric(8,2), api_token text, classname text, description text,
                 session_timeout int, is_email_verified boolean, email_count int, address_type text,
                 pipeline text, mailbox_size int);
             CREATE TABLE hr.badges (id int PRIMARY KEY, staff_email text REFERENCES hr.staff (email));
             INSERT INTO hr.staff SELECT g, 'staff' || g || '@corp.example', 'First' || g, 'Last' || g,
                 '+44 20 7946 ' || g, '123-45-' || g, date '1980-01-01' + g, 1000 + g, md5(g::text),
                 'c' || g, 'd' || g, 30, true, g, 'home', 'p' || g, g
               FROM generate_series(1, 50) g;
             INSERT INTO hr.badges SELECT g, 'staff' || g || '@corp.example' FROM generate_series(1, 50) g;
             CREATE TABLE hr.devices (id int PRIMARY KEY, mobile text);
             INSERT INTO hr.devices SELECT g, (ARRAY['iPhone 12', 'Pixel 7', 'none'])[1 + g % 3]
               FROM generate_series(1, 30) g;
             ANALYZE;",
        )
        .expect("mask_src");
    *made = true;
}

/// An empty target database whose hash key is `Jefe` (pgcrypto beside it,
/// to compute the expected HMACs independently).
fn target(env: &Env, db: &str) -> Client {
    empty_target(env, db);
    let mut c = env.client(env.tgt_port, db);
    c.batch_execute(&format!(
        "CREATE EXTENSION pgcrypto; ALTER DATABASE {db} SET pgclone.mask_key = 'Jefe'"
    ))
    .expect("target setup");
    env.client(env.tgt_port, db)
}

fn people_mask() -> &'static str {
    r#"{"mask": {"email": "email", "full_name": "name", "phone": "phone",
        "nick": {"type": "partial", "prefix": 2, "suffix": 3}, "tags": "hash", "ext_ref": "hash",
        "score": {"type": "random_int", "min": 1, "max": 9},
        "balance": {"type": "constant", "value": "1.50"}, "born": "null", "note": "hash"}}"#
}

/// The HMAC of `v` under the key `Jefe`, by pgcrypto.
fn hmac(c: &mut Client, v: &str) -> String {
    one(
        c,
        "SELECT encode(substr(hmac(convert_to($1, 'UTF8'), sha256('Jefe'::bytea), 'sha256'), 1, 16), 'hex')",
        &[&v],
    )
}

#[test]
fn every_strategy_gives_its_documented_output() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    source(&env);
    let mut c = target(&env, "mask_out");
    // A table clone finds its column types on the target.
    c.batch_execute("CREATE SCHEMA crm; CREATE DOMAIN crm.short_text AS varchar(12)")
        .unwrap();
    let summary: String = one(
        &mut c,
        "SELECT pgclone.table($1, 'crm', 'people', true, NULL, $2)",
        &[&env.src_conninfo("mask_src"), &people_mask()],
    );
    assert!(summary.contains("3 rows"), "{summary}");
    let rows = c
        .query(
            "SELECT id, email, full_name, phone, nick::text, tags, ext_ref::text, score, balance::text, born::text, note \
             FROM crm.people ORDER BY id",
            &[],
        )
        .unwrap();
    let text = |r: &postgres::Row, i: usize| r.get::<_, Option<String>>(i);
    let (same, red, blue) = (
        hmac(&mut c, "same"),
        hmac(&mut c, "red"),
        hmac(&mut c, "blue"),
    );
    let uuid1 = hmac(&mut c, "6f1c2f4e-8a8b-4c49-9d0e-111111111111");
    let r1 = &rows[0];
    assert_eq!(text(r1, 1).as_deref(), Some("a***@example.com"));
    assert_eq!(text(r1, 2).as_deref(), Some("XXXX"));
    assert_eq!(text(r1, 3).as_deref(), Some("***-4567"));
    assert_eq!(text(r1, 4).as_deref(), Some("Jo***son"));
    assert_eq!(r1.get::<_, Option<Vec<String>>>(5), Some(vec![red, blue]));
    let as_uuid = format!(
        "{}-{}-{}-{}-{}",
        &uuid1[0..8],
        &uuid1[8..12],
        &uuid1[12..16],
        &uuid1[16..20],
        &uuid1[20..32]
    );
    assert_eq!(text(r1, 6), Some(as_uuid), "hash of a uuid is a valid uuid");
    let score: Option<i16> = r1.get(7);
    assert!(score.is_some_and(|s| (1..=9).contains(&s)), "{score:?}");
    assert_eq!(text(r1, 8).as_deref(), Some("1.50"));
    assert_eq!(text(r1, 9), None);
    assert_eq!(text(r1, 10), Some(same.clone()));
    // NULL stays NULL where the strategy says so; short values hide whole.
    let r2 = &rows[1];
    assert_eq!(text(r2, 1), None, "email keeps NULL");
    assert_eq!(text(r2, 3).as_deref(), Some("****"));
    assert_eq!(text(r2, 4).as_deref(), Some("**"));
    assert_eq!(r2.get::<_, Option<Vec<String>>>(5), None);
    assert_eq!(text(r2, 6), None, "hash keeps NULL");
    assert_eq!(text(r2, 10), Some(same), "same input, same hash");
    let r3 = &rows[2];
    assert_eq!(text(r3, 1).as_deref(), Some("***"));
    assert_eq!(r3.get::<_, Option<Vec<String>>>(5), Some(vec![]));
    assert_eq!(text(r3, 4), None);
}

#[test]
fn an_impossible_rule_is_refused_before_anything_is_made() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    source(&env);
    let mut c = target(&env, "mask_bad");
    for (mask, says) in [
        (r#"{"score": "email"}"#, "score"),
        (
            r#"{"score": {"type": "random_int", "min": 0, "max": 40000}}"#,
            "does not fit",
        ),
        (r#"{"ext_ref": "name"}"#, "uuid"),
        (
            r#"{"balance": {"type": "constant", "value": "abc"}}"#,
            "refuses its value",
        ),
        (
            r#"{"balance": {"type": "random_int", "min": 0, "max": 100000}}"#,
            "digits",
        ),
        (r#"{"full_name": "null"}"#, "NOT NULL"),
        (r#"{"nick": "hash"}"#, "holds 12"),
        (r#"{"nope": "hash"}"#, "no column \"nope\""),
        (r#"{"born": "random_int"}"#, "date"),
        (r#"{"id": "name"}"#, "primary key"),
        (r#"{"email": "mystery"}"#, "unknown mask"),
    ] {
        let (code, msg) = expect_error(
            &mut c,
            &format!(
                "SELECT pgclone.table({}, 'crm', 'people', true, NULL, {})",
                lit(&env.src_conninfo("mask_src")),
                lit(&format!("{{\"mask\": {mask}}}"))
            ),
        );
        assert_eq!(code, "22023", "{mask}: {msg}");
        assert!(msg.contains(says), "{mask}: {msg}");
        let made: bool = one(
            &mut c,
            "SELECT to_regclass('crm.people') IS NOT NULL OR to_regnamespace('crm') IS NOT NULL",
            &[],
        );
        assert!(!made, "{mask}: something was made");
    }
}

/// Every text value of the clone's tables, with the table it is in.
fn every_text(c: &mut Client, schema: &str) -> Vec<(String, String)> {
    let cols: Vec<(String, String)> = c
        .query(
            "SELECT c.oid::regclass::text, quote_ident(a.attname) FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped",
            &[&schema],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut out = Vec::new();
    for (t, col) in cols {
        for r in c
            .query(
                &format!("SELECT {col}::text FROM {t} WHERE {col} IS NOT NULL"),
                &[],
            )
            .unwrap()
        {
            out.push((t.clone(), r.get(0)));
        }
    }
    out
}

const CRM_MASK: &str =
    r#""mask": {"customers.email": "hash", "customers.name": "name", "slow.contact": "email"}"#;

#[test]
fn a_masked_join_stays_valid_and_no_raw_value_reaches_the_target() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    source(&env);
    let mut c = target(&env, "mask_keys");
    c.batch_execute("ALTER DATABASE mask_keys SET log_statement = 'all'")
        .unwrap();
    let mut c = env.client(env.tgt_port, "mask_keys");
    let log_from = std::fs::metadata(env_tgt_log())
        .map(|m| m.len())
        .unwrap_or(0);
    let opts = format!("{{{CRM_MASK}, \"exclude_tables\": [\"crm.people\"]}}");
    one::<String>(
        &mut c,
        "SELECT pgclone.schema($1, 'crm', true, $2)",
        &[&env.src_conninfo("mask_src"), &opts],
    );
    // The foreign key was made (so it held) and every order finds its customer.
    let joined: i64 = one(
        &mut c,
        "SELECT count(*) FROM crm.orders o JOIN crm.customers k ON k.email = o.customer_email",
        &[],
    );
    assert_eq!(joined, 3000);
    let fk: i64 = one(
        &mut c,
        "SELECT count(*) FROM pg_constraint WHERE conname = 'orders_customer_email_fkey' AND convalidated",
        &[],
    );
    assert_eq!(fk, 1);
    // No raw value of a masked column anywhere in the clone...
    let raw: Vec<(String, String)> = every_text(&mut c, "crm")
        .into_iter()
        .filter(|(_, v)| v.contains("corp.example") && !v.starts_with("u***@"))
        .collect();
    assert!(
        raw.is_empty(),
        "raw values on the target: {:?}",
        &raw[..raw.len().min(5)]
    );
    // ... nor in the target's server log, every statement logged.
    let log = std::fs::read(env_tgt_log()).unwrap_or_default();
    let text = String::from_utf8_lossy(&log[(log_from as usize).min(log.len())..]);
    assert!(!text.is_empty(), "nothing logged");
    for v in ["user1@corp.example", "user17@corp.example", "Name 17"] {
        assert!(!text.contains(v), "{v} in the target's log");
    }
    // (Only now: the reference HMAC's own query names a raw value.)
    let expected = hmac(&mut c, "user1@corp.example");
    let got: String = one(&mut c, "SELECT email FROM crm.customers WHERE id = 1", &[]);
    assert_eq!(got, expected, "keyed hash, the same as pgcrypto's HMAC");
    // A mask that would repeat values of a unique column, or break the join.
    for (mask, says) in [
        (
            r#"{"customers.email": "name"}"#,
            "orders_customer_email_fkey",
        ),
        (
            r#"{"customers.email": "hash", "orders.customer_email": "hash", "customers.id": "null"}"#,
            "customers_pkey",
        ),
        (
            r#"{"orders.customer_email": "email"}"#,
            "orders_customer_email_fkey",
        ),
    ] {
        let db = "mask_keys_bad";
        empty_target(&env, db);
        let (code, msg) = expect_error(
            &mut env.client(env.tgt_port, db),
            &format!(
                "SELECT pgclone.schema({}, 'crm', true, {})",
                lit(&env.src_conninfo("mask_src")),
                lit(&format!("{{\"mask\": {mask}}}"))
            ),
        );
        assert_eq!(code, "22023", "{msg}");
        assert!(msg.contains(says), "{mask}: {msg}");
    }
}

fn env_tgt_log() -> String {
    std::env::var("PGCLONE_IT_TGT_LOG").expect("PGCLONE_IT_TGT_LOG")
}

/// Poll until `sql` returns true, or fail after `secs`.
fn wait_for(c: &mut Client, sql: &str, secs: u64, what: &str) {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if c.query_one(sql, &[])
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} not seen in {secs} s");
}

fn job_end(c: &mut Client, job: i32) -> String {
    wait_for(
        c,
        &format!("SELECT status NOT IN ('running', 'pending') FROM pgclone.jobs_view WHERE job_id = {job}"),
        120,
        "the job's end",
    );
    one(
        c,
        &format!("SELECT status FROM pgclone.jobs_view WHERE job_id = {job}"),
        &[],
    )
}

#[test]
fn every_path_gives_the_same_masked_clone() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    source(&env);
    let src = env.src_conninfo("mask_src");
    let opts = |extra: &str| format!("{{{CRM_MASK}, \"exclude_tables\": [\"crm.people\"]{extra}}}");
    // Serial, in this session.
    let mut c = target(&env, "mask_serial");
    one::<String>(
        &mut c,
        "SELECT pgclone.schema($1, 'crm', true, $2)",
        &[&src, &opts("")],
    );
    // Four workers, waited for.
    let mut c = target(&env, "mask_par");
    one::<String>(
        &mut c,
        "SELECT pgclone.schema($1, 'crm', true, $2)",
        &[&src, &opts(", \"parallel\": 4")],
    );
    // In the background.
    let mut c = target(&env, "mask_async");
    let job: i32 = one(
        &mut c,
        "SELECT pgclone.schema_async($1, 'crm', true, $2)",
        &[&src, &opts(", \"parallel\": 2")],
    );
    assert_eq!(job_end(&mut c, job), "completed");
    // Cancelled while it copies crm.slow, then resumed.
    let mut c = target(&env, "mask_resumed");
    let job: i32 = one(
        &mut c,
        "SELECT pgclone.schema_async($1, 'crm', true, $2)",
        &[&src, &opts(", \"parallel\": 2")],
    );
    wait_for(
        &mut c,
        &format!(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'pgclone worker' \
             AND query LIKE 'pgclone job {job}: %crm.slow%')"
        ),
        30,
        "the copy of crm.slow",
    );
    std::thread::sleep(Duration::from_millis(500));
    one::<bool>(&mut c, "SELECT pgclone.cancel($1)", &[&job]);
    assert_eq!(job_end(&mut c, job), "cancelled");
    let next: i32 = one(&mut c, "SELECT pgclone.resume($1)", &[&job]);
    assert_eq!(job_end(&mut c, next), "completed");
    let serial = env.all_contents(env.tgt_port, "mask_serial");
    assert_eq!(serial.len(), 3, "{serial:?}");
    for db in ["mask_par", "mask_async", "mask_resumed"] {
        assert_eq!(
            env.all_contents(env.tgt_port, db),
            serial,
            "{db} differs from the serial clone"
        );
    }
    // And none of them copied a raw contact.
    let raw: i64 = one(
        &mut env.client(env.tgt_port, "mask_resumed"),
        "SELECT count(*) FROM crm.slow WHERE contact NOT LIKE 'u***@corp.example'",
        &[],
    );
    assert_eq!(raw, 0);
}

#[test]
fn require_masks_refuses_a_sensitive_column_without_a_rule() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    source(&env);
    let mut c = target(&env, "mask_require");
    let (code, msg) = expect_error(
        &mut c,
        &format!(
            "SELECT pgclone.schema({}, 'crm', true, {})",
            lit(&env.src_conninfo("mask_src")),
            lit(&format!("{{{CRM_MASK}, \"require_masks\": true}}"))
        ),
    );
    assert_eq!(code, "22023", "{msg}");
    for col in [
        "crm.people.email (email)",
        "crm.people.phone (phone)",
        "crm.people.full_name (name)",
    ] {
        assert!(msg.contains(col), "{col}: {msg}");
    }
    assert!(!msg.contains("crm.customers.email"), "it has a rule: {msg}");
    assert!(
        !msg.contains("crm.orders.customer_email"),
        "it follows its key's rule: {msg}"
    );
    let made: bool = one(&mut c, "SELECT to_regnamespace('crm') IS NOT NULL", &[]);
    assert!(!made);
    // With every sensitive column ruled, the clone goes through.
    let all = r#"{"require_masks": true, "mask": {"customers.email": "hash", "slow.contact": "email",
        "people.email": "email", "people.phone": "phone", "people.full_name": "name"}}"#;
    let summary: String = one(
        &mut c,
        "SELECT pgclone.schema($1, 'crm', true, $2)",
        &[&env.src_conninfo("mask_src"), &all],
    );
    assert!(summary.contains("cloned"), "{summary}");
}

/// The hash key is the superuser's: an operator can neither read nor set
/// it, yet its masked clones hash with it, or with the random key made
/// with the extension when none is set.
#[test]
fn an_operator_masks_with_a_key_it_cannot_read() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    source(&env);
    let opts = r#"{"mask": {"customers.email": "hash"}, "include_tables": ["crm.customers"]}"#;
    for (db, keyed) in [("mask_op_keyed", true), ("mask_op_random", false)] {
        let mut su = if keyed {
            target(&env, db)
        } else {
            empty_target(&env, db);
            let mut c = env.client(env.tgt_port, db);
            c.batch_execute("CREATE EXTENSION pgcrypto").unwrap();
            c
        };
        su.batch_execute(&format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mask_op') THEN \
               CREATE ROLE mask_op LOGIN; END IF; END $$; \
             ALTER ROLE mask_op NOSUPERUSER; GRANT pgclone_operator TO mask_op; \
             GRANT CREATE ON DATABASE {db} TO mask_op;"
        ))
        .unwrap();
        let mut op = postgres::Client::connect(
            &format!(
                "host={} port={} user=mask_op dbname={db}",
                env.sock, env.tgt_port
            ),
            postgres::NoTls,
        )
        .expect("connect as mask_op");
        for attempt in [
            "SHOW pgclone.mask_key",
            "SELECT current_setting('pgclone.mask_key')",
            "SELECT key FROM pgclone.mask_secret",
            "SET pgclone.mask_key = 'mine'",
            "ALTER ROLE mask_op SET pgclone.mask_key = 'mine'",
        ] {
            let (code, msg) = expect_error(&mut op, attempt);
            assert_eq!(code, "42501", "{attempt}: {msg}");
        }
        one::<String>(
            &mut op,
            "SELECT pgclone.schema($1, 'crm', true, $2)",
            &[&env.src_conninfo("mask_src"), &opts],
        );
        let got: String = one(&mut su, "SELECT email FROM crm.customers WHERE id = 1", &[]);
        let expected: String = if keyed {
            hmac(&mut su, "user1@corp.example")
        } else {
            one(
                &mut su,
                "SELECT encode(substr(hmac(convert_to('user1@corp.example', 'UTF8'), \
                 sha256((SELECT key FROM pgclone.mask_secret)), 'sha256'), 1, 16), 'hex')",
                &[],
            )
        };
        assert_eq!(got, expected, "{db}");
    }
}

#[test]
fn discover_sensitive_proposes_rules_the_clone_takes() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    source(&env);
    let mut c = target(&env, "mask_discover");
    let found: String = one(
        &mut c,
        "SELECT pgclone.discover_sensitive($1, 'hr')",
        &[&env.src_conninfo("mask_src")],
    );
    let v: serde_json::Value = serde_json::from_str(&found).expect("JSON");
    let staff = v["staff"].as_object().unwrap_or_else(|| panic!("{found}"));
    let mut cols: Vec<&str> = staff.keys().map(String::as_str).collect();
    cols.sort();
    assert_eq!(
        cols,
        [
            "api_token",
            "birth_date",
            "email",
            "first_name",
            "last_name",
            "phone",
            "salary",
            "ssn"
        ],
        "{found}"
    );
    // A unique column takes the hash; a text too short for it something
    // shorter; look-alikes (classname, description, session_timeout,
    // is_email_verified, email_count, address_type, pipeline, mailbox_size)
    // are not flagged.
    assert_eq!(staff["email"], "hash", "{found}");
    assert_eq!(staff["phone"], "phone", "{found}");
    assert_eq!(staff["ssn"], "null", "{found}");
    assert_eq!(v["badges"]["staff_email"], "hash", "{found}");
    // What it proposes is the mask option to paste: the clone takes it, and
    // require_masks finds nothing left.
    let opts = format!("{{\"mask\": {found}, \"require_masks\": true}}");
    one::<String>(
        &mut c,
        "SELECT pgclone.schema($1, 'hr', true, $2)",
        &[&env.src_conninfo("mask_src"), &opts],
    );
    let joined: i64 = one(
        &mut c,
        "SELECT count(*) FROM hr.badges b JOIN hr.staff s ON s.email = b.staff_email",
        &[],
    );
    assert_eq!(joined, 50);
    let raw: i64 = one(
        &mut c,
        "SELECT count(*) FROM hr.staff WHERE email LIKE '%@%' OR first_name LIKE 'First%' OR ssn IS NOT NULL",
        &[],
    );
    assert_eq!(raw, 0);
    let (code, _) = expect_error(
        &mut c,
        "SELECT pgclone.discover_sensitive('host=/nowhere', NULL)",
    );
    assert_eq!(code, "22004", "a NULL schema is refused");
    // A sample of the values confirms or corrects the names: crm.slow.contact
    // holds emails under a name that says nothing; hr.devices.mobile is
    // named like a phone and holds device names.
    let src = env.src_conninfo("mask_src");
    let by_name: serde_json::Value = serde_json::from_str(&one::<String>(
        &mut c,
        "SELECT pgclone.discover_sensitive($1, 'crm')",
        &[&src],
    ))
    .unwrap();
    assert!(by_name["slow"].get("contact").is_none(), "{by_name}");
    let sampled: serde_json::Value = serde_json::from_str(&one::<String>(
        &mut c,
        "SELECT pgclone.discover_sensitive($1, 'crm', 100)",
        &[&src],
    ))
    .unwrap();
    assert_eq!(sampled["slow"]["contact"], "email", "{sampled}");
    assert_eq!(v["devices"]["mobile"], "phone", "by its name: {found}");
    let hr: serde_json::Value = serde_json::from_str(&one::<String>(
        &mut c,
        "SELECT pgclone.discover_sensitive($1, 'hr', 100)",
        &[&src],
    ))
    .unwrap();
    assert!(
        hr.get("devices").is_none(),
        "its values are no phones: {hr}"
    );
    assert_eq!(hr["staff"]["phone"], "phone", "{hr}");
}

#[test]
fn mask_in_place_masks_a_local_table_and_keeps_its_keys() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    source(&env);
    let mut c = target(&env, "mask_inplace");
    one::<String>(
        &mut c,
        "SELECT pgclone.schema($1, 'crm', true, '{\"exclude_tables\": [\"crm.slow\"]}')",
        &[&env.src_conninfo("mask_src")],
    );
    let said: String = one(
        &mut c,
        "SELECT pgclone.mask_in_place('crm', 'people', '{\"email\": \"email\", \"note\": \"hash\"}')",
        &[],
    );
    assert!(said.contains("3 rows"), "{said}");
    let email: String = one(&mut c, "SELECT email FROM crm.people WHERE id = 1", &[]);
    assert_eq!(email, "a***@example.com");
    let note: String = one(&mut c, "SELECT note FROM crm.people WHERE id = 1", &[]);
    assert_eq!(note, hmac(&mut c, "same"), "the same hash as a clone's");
    // A column another table's foreign key points at stays as it is.
    let (code, msg) = expect_error(
        &mut c,
        "SELECT pgclone.mask_in_place('crm', 'customers', '{\"email\": \"hash\"}')",
    );
    assert_eq!(code, "22023", "{msg}");
    assert!(msg.contains("orders_customer_email_fkey"), "{msg}");
    let (code, msg) = expect_error(
        &mut c,
        "SELECT pgclone.mask_in_place('crm', 'people', '{\"score\": \"email\"}')",
    );
    assert_eq!(code, "22023", "{msg}");
    // A large table is rewritten: no dead row versions, the same size, the
    // same definition, and no trigger fired (an audit trigger would keep
    // the raw values).
    c.batch_execute(
        "CREATE TABLE public.big (id int PRIMARY KEY, email text COLLATE \"C\", n int);
         ALTER TABLE public.big ALTER COLUMN email SET STORAGE MAIN, ALTER COLUMN email SET STATISTICS 300;
         CREATE INDEX big_email ON public.big (email);
         CREATE TABLE public.audit (v text);
         CREATE FUNCTION public.keep() RETURNS trigger LANGUAGE plpgsql AS
           $$BEGIN INSERT INTO public.audit VALUES (OLD.email); RETURN NEW; END$$;
         CREATE TRIGGER keep BEFORE UPDATE ON public.big FOR EACH ROW EXECUTE FUNCTION public.keep();
         INSERT INTO public.big SELECT g, 'user' || g || '@big.example', g FROM generate_series(1, 20000) g;",
    )
    .unwrap();
    let shape = |c: &mut Client| -> (String, i64) {
        let dump = env.dump_db(env.tgt_port, "mask_inplace", &["-t", "public.big"]);
        (dump, one(c, "SELECT pg_relation_size('public.big')", &[]))
    };
    let (before, size) = shape(&mut c);
    let file: u32 = one(
        &mut c,
        "SELECT relfilenode FROM pg_class WHERE oid = 'public.big'::regclass",
        &[],
    );
    let said: String = one(
        &mut c,
        "SELECT pgclone.mask_in_place('public', 'big', '{\"email\": \"hash\"}')",
        &[],
    );
    assert!(
        said.contains("rewritten") && said.contains("20000 rows"),
        "{said}"
    );
    let (after, size_after) = shape(&mut c);
    assert_eq!(after, before, "the definition changed");
    // Hashes are longer than the emails; an UPDATE would also keep every
    // old row version (about 2.2 times the size in all).
    assert!(size_after < size * 2, "{size} bytes became {size_after}");
    let file_after: u32 = one(
        &mut c,
        "SELECT relfilenode FROM pg_class WHERE oid = 'public.big'::regclass",
        &[],
    );
    assert_ne!(file, file_after, "not rewritten");
    let (raw, audited): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT (SELECT count(*) FROM public.big WHERE email LIKE '%@%'), (SELECT count(*) FROM public.audit)",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((raw, audited), (0, 0));
    // Read by a view: one UPDATE instead, masked all the same.
    c.batch_execute("CREATE VIEW public.big_view AS SELECT id, n FROM public.big WHERE n > 0")
        .unwrap();
    let said: String = one(
        &mut c,
        "SELECT pgclone.mask_in_place('public', 'big', '{\"n\": {\"type\": \"random_int\", \"min\": 1, \"max\": 5}}')",
        &[],
    );
    assert!(said.contains("updated"), "{said}");
    let out_of_range: i64 = one(
        &mut c,
        "SELECT count(*) FROM public.big WHERE n NOT BETWEEN 1 AND 5",
        &[],
    );
    assert_eq!(out_of_range, 0);
}

/// The ACL of a table and its columns, as sorted text.
fn acl(c: &mut Client, table: &str) -> Vec<String> {
    c.query(
        "SELECT coalesce(a.attname, '') || ' ' || pg_get_userbyid(x.grantee) || ' ' || x.privilege_type || ' ' || x.is_grantable          FROM pg_class r LEFT JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND a.attacl IS NOT NULL,               aclexplode(CASE WHEN a.attname IS NULL THEN coalesce(r.relacl, acldefault('r', r.relowner)) ELSE a.attacl END) x          WHERE r.oid = $1::text::regclass ORDER BY 1",
        &[&table],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[test]
fn a_masking_policy_cannot_be_bypassed_and_gives_back_the_grants() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    source(&env);
    let mut su = target(&env, "mask_policy");
    one::<String>(
        &mut su,
        "SELECT pgclone.schema($1, 'crm', true, '{\"exclude_tables\": [\"crm.slow\"]}')",
        &[&env.src_conninfo("mask_src")],
    );
    su.batch_execute(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mask_reader') THEN CREATE ROLE mask_reader LOGIN; END IF;
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mask_admin') THEN CREATE ROLE mask_admin; END IF;
         END $$;
         GRANT USAGE ON SCHEMA crm TO mask_reader;
         GRANT SELECT ON crm.customers TO mask_reader;
         GRANT SELECT (id), UPDATE (name) ON crm.customers TO mask_admin WITH GRANT OPTION;
         CREATE FUNCTION public.leak(text) RETURNS boolean LANGUAGE plpgsql COST 0.0001 AS
           $$BEGIN RAISE NOTICE 'leak: %', $1; RETURN true; END$$;
         CREATE FUNCTION public.peek() RETURNS SETOF text LANGUAGE sql AS $$SELECT email FROM crm.customers$$;",
    )
    .unwrap();
    let before = acl(&mut su, "crm.customers");
    let (code, msg) = expect_error(
        &mut su,
        "SELECT pgclone.create_masking_policy('crm', 'customers', '{\"email\": \"hash\"}', 'mask_admin')",
    );
    assert_eq!(code, "22023", "a keyed hash has no place in a view: {msg}");
    let said: String = one(
        &mut su,
        "SELECT pgclone.create_masking_policy('crm', 'customers', \
         '{\"email\": {\"type\": \"partial\", \"prefix\": 1, \"suffix\": 0}, \"name\": \"name\"}', 'mask_admin')",
        &[],
    );
    assert!(said.contains("customers_masked"), "{said}");
    let (mut reader, notices) = client_hearing(&env, env.tgt_port, "mask_reader", "mask_policy");
    // The view: masked values only.
    let shown: String = one(
        &mut reader,
        "SELECT email || ' ' || name FROM crm.customers_masked WHERE id = 1",
        &[],
    );
    assert_eq!(shown, "u*** XXXX");
    // Every way around it fails or shows masked values.
    for attempt in [
        "SELECT email FROM crm.customers LIMIT 1",
        "COPY crm.customers TO STDOUT",
        "SELECT * FROM public.peek()",
        "TABLE crm.customers",
    ] {
        let (code, msg) = expect_error(&mut reader, attempt);
        assert_eq!(code, "42501", "{attempt}: {msg}");
    }
    reader
        .batch_execute(
            "BEGIN; DECLARE c CURSOR FOR SELECT email FROM crm.customers_masked ORDER BY id; FETCH 5 FROM c; COMMIT;",
        )
        .unwrap();
    // pg_dump as the reader: the table is refused, the view gives its
    // definition only, with no value in it.
    let dump = |table: &str| {
        std::process::Command::new(format!("{}/pg_dump", env.pgbin))
            .args([
                "-h",
                &env.sock,
                "-p",
                &env.tgt_port.to_string(),
                "-U",
                "mask_reader",
            ])
            .args(["-d", "mask_policy", "-t", table])
            .output()
            .expect("pg_dump")
    };
    let base = dump("crm.customers");
    assert!(!base.status.success(), "pg_dump read the base table");
    assert!(String::from_utf8_lossy(&base.stderr).contains("permission denied"));
    let view = dump("crm.customers_masked");
    let text = String::from_utf8_lossy(&view.stdout);
    assert!(
        view.status.success(),
        "{}",
        String::from_utf8_lossy(&view.stderr)
    );
    assert!(text.contains("CREATE VIEW crm.customers_masked"), "{text}");
    assert!(!text.contains("corp.example"), "{text}");
    let rows = reader
        .query(
            "SELECT email FROM crm.customers_masked WHERE public.leak(email)",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 300);
    let heard = notices.lock().unwrap().join("\n");
    assert!(heard.contains("leak: u***"), "{heard}");
    assert!(
        !heard.contains("corp.example"),
        "a raw value leaked: {heard}"
    );
    // The report sees the policy.
    let status: String = one(
        &mut su,
        "SELECT mask_status FROM pgclone.masking_report('crm') WHERE table_name = 'customers' AND column_name = 'email'",
        &[],
    );
    assert_eq!(status, "MASKED (view customers_masked)");
    let (sens, rec): (String, String) = {
        let r = su
            .query_one(
                "SELECT sensitivity, recommendation FROM pgclone.masking_report('crm') \
                 WHERE table_name = 'orders' AND column_name = 'customer_email'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(sens, "PII - Email");
    assert!(rec.contains("email"), "{rec}");
    // pgclone 4.x's words, which its scripts compare with.
    let (name, ssn_like, plain): (String, String, String) = {
        let r = su
            .query_one(
                "SELECT (SELECT sensitivity FROM pgclone.masking_report('crm') WHERE table_name = 'people' AND column_name = 'full_name'), \
                        (SELECT mask_status FROM pgclone.masking_report('crm') WHERE table_name = 'orders' AND column_name = 'customer_email'), \
                        (SELECT sensitivity FROM pgclone.masking_report('crm') WHERE table_name = 'orders' AND column_name = 'amount')",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!(
        (name.as_str(), ssn_like.as_str(), plain.as_str()),
        ("PII - Name", "UNMASKED", "none")
    );
    // Dropped: the grants are those of before, exactly.
    let said: String = one(
        &mut su,
        "SELECT pgclone.drop_masking_policy('crm', 'customers')",
        &[],
    );
    assert!(said.contains("dropped"), "{said}");
    assert_eq!(acl(&mut su, "crm.customers"), before);
    let gone: bool = one(
        &mut su,
        "SELECT to_regclass('crm.customers_masked') IS NULL",
        &[],
    );
    assert!(gone);
    let back: i64 = one(&mut reader, "SELECT count(*) FROM crm.customers", &[]);
    assert_eq!(back, 300);
}

#[test]
fn database_create_masks_too() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    source(&env);
    ensure_extension(&env, "postgres");
    let mut c = env.client(env.tgt_port, "postgres");
    c.batch_execute("DROP DATABASE IF EXISTS mask_created WITH (FORCE)")
        .unwrap();
    let opts = r#"{"mask": {"crm.customers.email": "hash", "crm.customers.name": "name"},
                   "include_schemas": ["crm"], "exclude_tables": ["crm.people", "crm.slow"]}"#;
    one::<String>(
        &mut c,
        "SELECT pgclone.database_create($1, 'mask_created', true, $2)",
        &[&env.src_conninfo("mask_src"), &opts],
    );
    let mut m = env.client(env.tgt_port, "mask_created");
    let hashed: i64 = one(
        &mut m,
        "SELECT count(*) FROM crm.customers WHERE email ~ '^[0-9a-f]{32}$' AND name = 'XXXX'",
        &[],
    );
    assert_eq!(hashed, 300);
    let joined: i64 = one(
        &mut m,
        "SELECT count(*) FROM crm.orders o JOIN crm.customers k ON k.email = o.customer_email",
        &[],
    );
    assert_eq!(joined, 3000);
    let raw: Vec<(String, String)> = every_text(&mut m, "crm")
        .into_iter()
        .filter(|(_, v)| v.contains("corp.example") || v.starts_with("Name "))
        .collect();
    assert!(raw.is_empty(), "{:?}", &raw[..raw.len().min(5)]);
}

/// The masking functions act on tables with their owner's rights, taken
/// only by a role that has them: an operator cannot mask, hide or unhide
/// a table it does not own, and leaves nothing changed trying.
#[test]
fn an_operator_cannot_mask_or_hide_a_table_it_does_not_own() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let env = env();
    let db = "mask_not_mine";
    empty_target(&env, db);
    let mut su = env.client(env.tgt_port, db);
    su.batch_execute(&format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mask_op') THEN \
           CREATE ROLE mask_op LOGIN; END IF; END $$; \
         ALTER ROLE mask_op NOSUPERUSER; GRANT pgclone_operator TO mask_op; \
         GRANT CREATE ON DATABASE {db} TO mask_op; \
         CREATE TABLE public.secrets (id int PRIMARY KEY, email text); \
         INSERT INTO public.secrets VALUES (1, 'boss@corp.example'); \
         GRANT SELECT ON public.secrets TO mask_op;"
    ))
    .unwrap();
    let before = acl(&mut su, "public.secrets");
    let mut op = postgres::Client::connect(
        &format!(
            "host={} port={} user=mask_op dbname={db}",
            env.sock, env.tgt_port
        ),
        postgres::NoTls,
    )
    .expect("connect as mask_op");
    for attempt in [
        "SELECT pgclone.mask_in_place('public', 'secrets', '{\"email\": \"name\"}')",
        "SELECT pgclone.create_masking_policy('public', 'secrets', '{\"email\": \"name\"}', 'mask_op')",
        "SELECT pgclone.drop_masking_policy('public', 'secrets')",
    ] {
        let (code, msg) = expect_error(&mut op, attempt);
        assert_eq!(code, "42501", "{attempt}: {msg}");
    }
    let email: String = one(&mut su, "SELECT email FROM public.secrets", &[]);
    assert_eq!(email, "boss@corp.example");
    assert_eq!(acl(&mut su, "public.secrets"), before);
    let view: bool = one(
        &mut su,
        "SELECT to_regclass('public.secrets_masked') IS NULL",
        &[],
    );
    assert!(view);
}
