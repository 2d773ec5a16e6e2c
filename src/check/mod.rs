//! The checks a DBA gates a release on: `verify` (same rows?), `diff`
//! (same definitions?), `preflight` (will a clone work?), and `clone_roles`.
//! Each reads the source on one snapshot through the clone's own session
//! setup, and this database through SPI; what to compare and how to report
//! it lives in `pgclone_core::check`.

pub mod diff;
pub mod preflight;
pub mod roles;

use crate::catalog;
use crate::conn::SourceConn;
use crate::error::{CloneError, Result};
use pgclone_core::check::verify::{self as v, Rel, Seen, Verdict};
use pgclone_core::plan::assemble::What;
use pgclone_core::request::Spec;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;
use std::collections::HashMap;

/// `pgclone.verify_content`: off makes verify() compare exact counts only
/// (no content checksum), which costs what count(*) costs.
static VERIFY_CONTENT: GucSetting<bool> = GucSetting::<bool>::new(true);

pub fn init() {
    GucRegistry::define_bool_guc(
        c"pgclone.verify_content",
        c"verify() compares an order-independent checksum of every table's content, not only its row count.",
        c"Off: exact row counts only, at the cost of count(*); a changed value with the same count shows as \"✓\".",
        &VERIFY_CONTENT,
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// A read-only session on the source, in one REPEATABLE READ snapshot,
/// with `extra` settings after the clone's own.
pub fn open_source(conninfo: &str, extra: &str) -> Result<SourceConn> {
    let setup = format!(
        "{} {extra}",
        pgclone_core::conninfo::session_setup_sql("UTF8", crate::exec::SOURCE_LOCK_TIMEOUT)
    );
    let src = crate::target::connect_source(conninfo, &setup)?;
    src.batch("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
    Ok(src)
}

/// The schemas a check covers: the one named, or every user schema of the
/// source database (as `database()` takes them).
pub fn schemas(src: &SourceConn, schema: Option<&str>) -> Result<Vec<String>> {
    let spec = Spec {
        what: if schema.is_some() {
            What::Schema
        } else {
            What::Database
        },
        schema: schema.map(str::to_string),
        table: None,
        target_table: None,
        include_data: false,
        options: Default::default(),
        workers: 1,
        resumed_from: None,
    };
    crate::exec::prepare::schema_names(src, &spec)
}

/// Run `f` in a subtransaction that is then rolled back: what it read stays
/// read, and the locks it took are given back (one transaction reading
/// 20 000 tables would otherwise hold 20 000 locks).
pub fn released<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: the same calls PL/pgSQL makes around an exception block; an
    // error inside aborts the whole transaction, subtransaction included.
    unsafe {
        let ctx = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(ctx);
        let out = f();
        pg_sys::RollbackAndReleaseCurrentSubTransaction();
        pg_sys::MemoryContextSwitchTo(ctx);
        pg_sys::CurrentResourceOwner = owner;
        out
    }
}

fn spi_err(e: pgrx::spi::SpiError) -> CloneError {
    CloneError::Internal(format!("local catalog: {e}"))
}

/// What a relation is here: (kind, populated, column names).
type Local = HashMap<(String, String), (String, bool, Vec<String>)>;

fn local_relations(names: &[String]) -> Result<Local> {
    Spi::connect(|c| {
        let mut out = Local::new();
        for r in c
            .select(v::local_columns_sql(), None, &[names.to_vec().into()])
            .map_err(spi_err)?
        {
            let key = (
                r.get::<String>(1).map_err(spi_err)?.unwrap_or_default(),
                r.get::<String>(2).map_err(spi_err)?.unwrap_or_default(),
            );
            let kind = r.get::<String>(3).map_err(spi_err)?.unwrap_or_default();
            let populated = r.get::<bool>(4).map_err(spi_err)?.unwrap_or(false);
            let cols = r
                .get::<Vec<String>>(5)
                .map_err(spi_err)?
                .unwrap_or_default();
            out.insert(key, (kind, populated, cols));
        }
        Ok(out)
    })
}

/// (index, count, checksum) rows of one local statement.
fn local_batch(sql: &str) -> Result<Vec<(usize, i64, Option<String>)>> {
    released(|| {
        Spi::connect(|c| {
            let mut out = Vec::new();
            for r in c.select(sql, None, &[]).map_err(spi_err)? {
                out.push((
                    r.get::<i32>(1).map_err(spi_err)?.unwrap_or(-1) as usize,
                    r.get::<i64>(2).map_err(spi_err)?.unwrap_or(0),
                    r.get::<String>(3).map_err(spi_err)?,
                ));
            }
            Ok(out)
        })
    })
}

/// Sequences' last values by (schema, name).
type Positions = HashMap<(String, String), Option<i64>>;

fn local_sequences(names: &[String]) -> Result<Positions> {
    Spi::connect(|c| {
        let mut out = Positions::new();
        for r in c
            .select(v::sequences_sql(), None, &[names.to_vec().into()])
            .map_err(spi_err)?
        {
            out.insert(
                (
                    r.get::<String>(1).map_err(spi_err)?.unwrap_or_default(),
                    r.get::<String>(2).map_err(spi_err)?.unwrap_or_default(),
                ),
                r.get::<i64>(3).map_err(spi_err)?,
            );
        }
        Ok(out)
    })
}

/// Exact counts and content checksums of every table, partition and
/// materialized view of `schema` (None: the whole database, with large
/// objects), then sequences, on both sides.
pub fn verify(conninfo: &str, schema: Option<&str>) -> Result<Vec<Verdict>> {
    let src = open_source(conninfo, &v::settings_sql())?;
    let names = schemas(&src, schema)?;
    let _guc =
        crate::target::GucScope::enter(&[&[("search_path", "")][..], &v::SETTINGS[..]].concat());
    let rels: Vec<Rel> = catalog::fetch(&src, v::rels_sql(), &[&names])?;
    let local = local_relations(&names)?;
    // A relation is hashed on both sides when it is populated on both and
    // has the same columns; otherwise only counted (or not read at all).
    let mut src_cols: Vec<Vec<String>> = rels
        .iter()
        .map(|r| r.cols.iter().map(|c| c.name.clone()).collect())
        .collect();
    src_cols.iter_mut().for_each(|c| c.sort());
    let here = |i: usize| local.get(&(rels[i].schema.clone(), rels[i].name.clone()));
    let readable_here = |i: usize| here(i).is_some_and(|(_, populated, _)| *populated);
    let same_cols = |i: usize| here(i).is_some_and(|(_, _, cols)| *cols == src_cols[i]);
    let content = VERIFY_CONTENT.get();
    let hashed = |i: usize| content && same_cols(i);

    let mut src_seqs = Positions::new();
    for r in src.query(v::sequences_sql(), &[&names])? {
        src_seqs.insert((r.get(0), r.get(1)), r.get(2));
    }
    let src_lo: Option<(i64, String)> = match schema {
        None => {
            let r = src.query_one(v::large_objects_sql(), &[])?;
            Some((r.get(0), r.get(1)))
        }
        Some(_) => None,
    };

    let populated: Vec<(usize, &Rel)> = rels
        .iter()
        .enumerate()
        .filter(|(_, r)| r.populated)
        .collect();
    let both: Vec<(usize, &Rel)> = populated
        .iter()
        .copied()
        .filter(|(i, _)| readable_here(*i))
        .collect();
    let source_only: Vec<(usize, &Rel)> = populated
        .iter()
        .copied()
        .filter(|(i, _)| !readable_here(*i))
        .collect();
    let shared = v::batches(&both);
    // The source gets every statement at once and works through them while
    // this backend reads its own side; each runs under a savepoint rolled
    // back after it, which gives its locks back.
    let mut script = String::new();
    for b in shared.iter().chain(v::batches(&source_only).iter()) {
        script.push_str("SAVEPOINT pgclone_verify; ");
        script.push_str(&v::batch_sql(b, &rels, &hashed));
        script.push_str("; ROLLBACK TO SAVEPOINT pgclone_verify; ");
    }
    let mut source_seen: HashMap<usize, Seen> = HashMap::new();
    let mut local_seen: HashMap<usize, Seen> = HashMap::new();
    {
        let mut pending = (!script.is_empty()).then(|| src.send_simple(script));
        for b in &shared {
            crate::interrupts::check();
            for (i, rows, sum) in local_batch(&v::batch_sql(b, &rels, &hashed))? {
                local_seen.insert(
                    i,
                    Seen {
                        rows: Some(rows),
                        sum,
                        populated: true,
                        cols_differ: !same_cols(i),
                    },
                );
            }
            if let Some(p) = pending.as_mut() {
                p.pump();
            }
        }
        if let Some(p) = pending {
            for row in p.finish()?.into_iter().flatten() {
                let i: usize = row
                    .get(0)
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(usize::MAX);
                let rows = row.get(1).and_then(|t| t.parse().ok());
                let sum = row.get(2).map(str::to_string);
                source_seen.insert(
                    i,
                    Seen {
                        rows,
                        sum,
                        populated: true,
                        cols_differ: false,
                    },
                );
            }
        }
    }
    // A partitioned table's row: its partitions' rows added, on each side.
    v::roll_up(&rels, &mut source_seen);
    v::roll_up(&rels, &mut local_seen);
    let mut out = Vec::with_capacity(rels.len() + src_seqs.len() + 1);
    for (i, r) in rels.iter().enumerate() {
        let s = source_seen.remove(&i).unwrap_or_default();
        let t = here(i).map(|(_, populated, _)| {
            local_seen.remove(&i).unwrap_or(Seen {
                populated: *populated,
                cols_differ: !same_cols(i),
                ..Default::default()
            })
        });
        out.push(Verdict {
            schema: r.schema.clone(),
            name: r.name.clone(),
            source_rows: s.rows,
            // pgclone 4.x reports a missing table with 0 target rows.
            target_rows: t.as_ref().map_or(Some(0), |t| t.rows),
            result: v::judge(&s, t.as_ref()),
        });
    }
    let tgt_seqs = local_sequences(&names)?;
    let mut seqs: Vec<_> = src_seqs.into_iter().collect();
    seqs.sort();
    for ((schema, name), last) in seqs {
        let t = tgt_seqs.get(&(schema.clone(), name.clone())).copied();
        out.push(Verdict {
            result: v::judge_sequence(last, t),
            source_rows: last,
            target_rows: t.flatten(),
            schema,
            name,
        });
    }
    if let Some((count, sum)) = src_lo {
        let (tc, ts) = released(|| {
            Spi::connect(|c| {
                let r = c
                    .select(v::large_objects_sql(), None, &[])
                    .map_err(spi_err)?;
                let r = r.first();
                Ok::<_, CloneError>((
                    r.get::<i64>(1).map_err(spi_err)?.unwrap_or(0),
                    r.get::<String>(2).map_err(spi_err)?,
                ))
            })
        })?;
        if count > 0 || tc > 0 {
            let seen = |rows, sum| Seen {
                rows: Some(rows),
                sum,
                populated: true,
                cols_differ: false,
            };
            out.push(Verdict {
                schema: "pg_catalog".into(),
                name: "pg_largeobject".into(),
                source_rows: Some(count),
                target_rows: Some(tc),
                result: v::judge(&seen(count, Some(sum)), Some(&seen(tc, ts))),
            });
        }
    }
    src.batch("COMMIT")?;
    Ok(out)
}
