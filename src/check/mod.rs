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
    // SAFETY: the same calls PL/pgSQL makes around an exception block: on
    // an error the subtransaction is rolled back and the caller's memory
    // context and resource owner restored before the error goes on, so an
    // EXCEPTION block around the caller rolls back its own subtransaction.
    unsafe {
        let ctx = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(ctx);
        let out = PgTryBuilder::new(std::panic::AssertUnwindSafe(f))
            .catch_others(|e| {
                pg_sys::RollbackAndReleaseCurrentSubTransaction();
                pg_sys::MemoryContextSwitchTo(ctx);
                pg_sys::CurrentResourceOwner = owner;
                e.rethrow()
            })
            .execute();
        pg_sys::RollbackAndReleaseCurrentSubTransaction();
        pg_sys::MemoryContextSwitchTo(ctx);
        pg_sys::CurrentResourceOwner = owner;
        out
    }
}

fn spi_err(e: pgrx::spi::SpiError) -> CloneError {
    CloneError::Internal(format!("local catalog: {e}"))
}

/// What a relation is here: (kind, populated, columns, partitions).
type Local = HashMap<(String, String), (String, bool, Vec<String>, Vec<(String, String)>)>;

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
            let mut cols = r
                .get::<Vec<String>>(5)
                .map_err(spi_err)?
                .unwrap_or_default();
            // Compared with the source's in one byte order, whatever the collation.
            cols.sort();
            let parts = r
                .get::<Vec<String>>(6)
                .map_err(spi_err)?
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| {
                    p.split_once('\u{1}')
                        .map(|(s, n)| (s.to_string(), n.to_string()))
                })
                .collect();
            out.insert(key, (kind, populated, cols, parts));
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

/// Sequences' (last_value, is_called) by (schema, name).
type Positions = HashMap<(String, String), (i64, bool)>;

/// Positions of the source's sequences, a statement per few hundred, each
/// under a savepoint rolled back after it (its locks given back).
fn source_sequences(
    src: &SourceConn,
    names: &[String],
) -> Result<(Vec<(String, String)>, Positions)> {
    let seqs: Vec<(String, String)> = src
        .query(v::sequences_sql(), &[&names])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut out = Positions::new();
    let indexed: Vec<(usize, &(String, String))> = seqs.iter().enumerate().collect();
    for chunk in indexed.chunks(v::SEQUENCES_PER_STATEMENT) {
        src.batch("SAVEPOINT pgclone_verify")?;
        for r in src.query(&v::positions_sql(chunk), &[])? {
            let i: i64 = r.get(0);
            out.insert(seqs[i as usize].clone(), (r.get(1), r.get(2)));
        }
        src.batch("ROLLBACK TO SAVEPOINT pgclone_verify")?;
    }
    Ok((seqs, out))
}

/// Positions of those of `seqs` that exist here.
fn local_sequences(names: &[String], seqs: &[(String, String)]) -> Result<Positions> {
    let here: std::collections::HashSet<(String, String)> = Spi::connect(|c| {
        let mut out = std::collections::HashSet::new();
        for r in c
            .select(v::sequences_sql(), None, &[names.to_vec().into()])
            .map_err(spi_err)?
        {
            out.insert((
                r.get::<String>(1).map_err(spi_err)?.unwrap_or_default(),
                r.get::<String>(2).map_err(spi_err)?.unwrap_or_default(),
            ));
        }
        Ok::<_, CloneError>(out)
    })?;
    let present: Vec<(usize, &(String, String))> = seqs
        .iter()
        .enumerate()
        .filter(|(_, s)| here.contains(*s))
        .collect();
    let mut out = Positions::new();
    for chunk in present.chunks(v::SEQUENCES_PER_STATEMENT) {
        let sql = v::positions_sql(chunk);
        released(|| {
            Spi::connect(|c| {
                for r in c.select(&sql, None, &[]).map_err(spi_err)? {
                    let i = r.get::<i64>(1).map_err(spi_err)?.unwrap_or(-1);
                    let last = r.get::<i64>(2).map_err(spi_err)?.unwrap_or(0);
                    let called = r.get::<bool>(3).map_err(spi_err)?.unwrap_or(false);
                    if let Some(s) = seqs.get(i as usize) {
                        out.insert(s.clone(), (last, called));
                    }
                }
                Ok::<_, CloneError>(())
            })
        })?;
    }
    Ok(out)
}

/// Exact counts and content checksums of every table, partition and
/// materialized view of `schema` (None: the whole database, with large
/// objects), then sequences, on both sides.
pub fn verify(conninfo: &str, schema: Option<&str>) -> Result<Vec<Verdict>> {
    let src = crate::exec::open_source_with(conninfo, &v::settings_sql())?;
    let names = schemas(&src, schema)?;
    let _guc =
        crate::target::GucScope::enter(&[&[("search_path", "")][..], &v::SETTINGS[..]].concat());
    let rels: Vec<Rel> = catalog::fetch(&src, v::rels_sql(), &[&names])?;
    let local = local_relations(&names)?;
    // A relation is hashed on both sides when it is populated on both and
    // has the same columns; otherwise only counted (or not read at all).
    let mut src_cols: Vec<Vec<String>> = rels
        .iter()
        .map(|r| r.cols.iter().map(v::column_key).collect())
        .collect();
    src_cols.iter_mut().for_each(|c| c.sort());
    let here = |i: usize| local.get(&(rels[i].schema.clone(), rels[i].name.clone()));
    let readable_here = |i: usize| here(i).is_some_and(|(_, populated, _, _)| *populated);
    let same_cols = |i: usize| here(i).is_some_and(|(_, _, cols, _)| *cols == src_cols[i]);
    let content = VERIFY_CONTENT.get();
    let hashed = |i: usize| content && same_cols(i);

    let (seq_names, src_seqs) = source_sequences(&src, &names)?;
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
    // Here, partitions are this side's own: one attached only here, or
    // missing here, changes the parent's sums.
    let local_rels: Vec<Rel> = rels
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut r = r.clone();
            if let Some((_, _, _, parts)) = here(i) {
                r.parts = parts.clone();
            }
            r
        })
        .collect();
    v::roll_up(&local_rels, &mut local_seen);
    for (i, r) in rels.iter().enumerate() {
        if let (true, Some(s)) = (r.kind == "p", local_seen.get_mut(&i)) {
            s.cols_differ = !same_cols(i);
        }
    }
    let mut out = Vec::with_capacity(rels.len() + src_seqs.len() + 1);
    for (i, r) in rels.iter().enumerate() {
        let s = source_seen.remove(&i).unwrap_or_default();
        let t = here(i).map(|(_, populated, _, _)| {
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
    let tgt_seqs = local_sequences(&names, &seq_names)?;
    for key in seq_names {
        let Some(&s) = src_seqs.get(&key) else {
            continue;
        };
        let t = tgt_seqs.get(&key).copied();
        let (schema, name) = key;
        out.push(Verdict {
            result: v::judge_sequence(s, t),
            source_rows: Some(s.0),
            // As for tables, a missing one reads 0.
            target_rows: Some(t.map_or(0, |t| t.0)),
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
