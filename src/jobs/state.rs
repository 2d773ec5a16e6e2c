//! The job tables. Operators may only read their own rows (row-level
//! security); every write goes through `privileged`, which acts as the
//! bootstrap superuser with search_path pinned to `pg_catalog, pg_temp` in
//! a security-restricted context, runs fixed statements with every name
//! qualified, and filters by the job's owner. No row an operator could
//! write is ever read back to run.

use crate::error::{CloneError, Result};
use pgclone_core::plan::units::{Step, Unit};
use pgclone_core::request::Spec;
use pgrx::prelude::*;

fn spi_err(e: pgrx::spi::SpiError) -> CloneError {
    CloneError::Internal(format!("job state: {e}"))
}

/// Run `f` as the bootstrap superuser, search_path pinned, GUCs reverted.
pub fn privileged<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(pg_sys::Oid, i32);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: puts back what GetUserIdAndSecContext returned.
            unsafe { pg_sys::SetUserIdAndSecContext(self.0, self.1) }
        }
    }
    let mut uid = pg_sys::InvalidOid;
    let mut ctx: i32 = 0;
    // SAFETY: the switch a SECURITY DEFINER function makes, restricted.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut uid, &mut ctx);
        pg_sys::SetUserIdAndSecContext(
            pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID),
            ctx | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
    }
    let _restore = Restore(uid, ctx);
    let _guc = crate::target::GucScope::enter(&[("search_path", "pg_catalog, pg_temp")]);
    f()
}

fn run(sql: &str, args: &[pgrx::datum::DatumWithOid]) -> Result<()> {
    privileged(|| Spi::run_with_args(sql, args)).map_err(spi_err)
}

/// A new job id.
pub fn next_id() -> Result<i32> {
    privileged(|| Spi::get_one::<i64>("SELECT pg_catalog.nextval('pgclone.jobs_job_id_seq')"))
        .map_err(spi_err)
        .map(|v| v.unwrap_or(0) as i32)
}

pub struct NewJob<'a> {
    pub job_id: i32,
    pub spec: &'a Spec,
    pub source: String,
    pub owner: u32,
    pub status: &'a str,
}

pub fn insert_job(j: &NewJob) -> Result<()> {
    let request = serde_json::to_string(j.spec).map_err(|e| CloneError::Internal(e.to_string()))?;
    run(
        "INSERT INTO pgclone.jobs (job_id, status, op_type, schema_name, table_name, request, source, \
                                   owner_name, owner_oid, workers, resumed_from, current_phase) \
         VALUES ($1, $2, $3, $4, $5, $6::pg_catalog.jsonb, $7, \
                 (SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.oid = $8), $8, $9, $10, 'catalog')",
        &[
            j.job_id.into(),
            j.status.into(),
            j.spec.what.as_str().into(),
            j.spec.schema.clone().into(),
            j.spec.shown_table().into(),
            request.into(),
            j.source.clone().into(),
            pg_sys::Oid::from(j.owner).into(),
            (j.spec.workers as i32).into(),
            j.spec.resumed_from.into(),
        ],
    )
}

pub fn insert_secret(job_id: i32, owner: u32, conninfo: &str) -> Result<()> {
    run(
        "INSERT INTO pgclone.job_secrets (job_id, conninfo, owner_oid) VALUES ($1, $2, $3)",
        &[
            job_id.into(),
            conninfo.into(),
            pg_sys::Oid::from(owner).into(),
        ],
    )
}

pub fn delete_secret(job_id: i32) -> Result<()> {
    run(
        "DELETE FROM pgclone.job_secrets WHERE job_id = $1",
        &[job_id.into()],
    )
}

/// Store the plan, about a megabyte of it per statement. Takes the units:
/// each is dropped once written out, so the plan and its JSON are never
/// both whole in memory.
pub fn insert_units(job_id: i32, owner: u32, units: Vec<Unit>) -> Result<()> {
    // The server holds a statement's text, its parse and its new rows at
    // once: one statement for a plan of 20 000 tables would cost the
    // coordinator several times the plan's size.
    const STATEMENT_BYTES: usize = 1 << 20;
    let flush = |rows: &mut String| -> Result<()> {
        if rows.len() <= 1 {
            return Ok(());
        }
        rows.push(']');
        run(
            "INSERT INTO pgclone.job_units (job_id, unit_id, stage, kind, label, deps, steps, est_bytes, tables_done, owner_oid) \
             SELECT r.job_id, r.unit_id, r.stage, r.kind, r.label, r.deps, r.steps, r.est_bytes, r.tables_done, $2 \
             FROM pg_catalog.json_populate_recordset(NULL::pgclone.job_units, $1::pg_catalog.json) r",
            &[
                std::mem::take(rows).into(),
                pg_sys::Oid::from(owner).into(),
            ],
        )?;
        rows.push('[');
        Ok(())
    };
    let mut rows = String::from("[");
    for u in units {
        let row = serde_json::json!({
            "job_id": job_id,
            "unit_id": u.id,
            "stage": format!("{:?}", u.stage),
            "kind": u.kind.as_str(),
            "label": u.label,
            "deps": u.deps,
            "steps": serde_json::to_string(&u.steps).unwrap_or_default(),
            "est_bytes": u.est_bytes,
            "tables_done": u.tables_done,
        });
        drop(u);
        if rows.len() > 1 {
            rows.push(',');
        }
        rows.push_str(&row.to_string());
        if rows.len() >= STATEMENT_BYTES {
            flush(&mut rows)?;
        }
    }
    flush(&mut rows)
}

pub fn insert_undo(job_id: i32, owner: u32, undo: &[String]) -> Result<()> {
    let rows: Vec<serde_json::Value> = undo
        .iter()
        .enumerate()
        .map(|(i, q)| serde_json::json!({"job_id": job_id, "seq": i + 1, "sql": q}))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    run(
        "INSERT INTO pgclone.job_undo (job_id, seq, sql, owner_oid) \
         SELECT r.job_id, r.seq, r.sql, $2 \
         FROM pg_catalog.json_populate_recordset(NULL::pgclone.job_undo, $1::pg_catalog.json) r",
        &[
            serde_json::Value::Array(rows).to_string().into(),
            pg_sys::Oid::from(owner).into(),
        ],
    )
}

/// A resumed job takes over the plan of the job it continues (done units
/// stay done) and its undo record, and the old job's secret is no longer
/// needed. Only rows of the same owner are taken.
pub fn take_over(job_id: i32, old: i32, owner: u32) -> Result<()> {
    let o = pg_sys::Oid::from(owner);
    run(
        "INSERT INTO pgclone.job_units (job_id, unit_id, stage, kind, label, deps, steps, est_bytes, tables_done, \
                                        status, rows, bytes, ms, owner_oid) \
         SELECT $1, unit_id, stage, kind, label, deps, steps, est_bytes, tables_done, status, \
                CASE WHEN status = 'done' THEN rows END, CASE WHEN status = 'done' THEN bytes END, \
                CASE WHEN status = 'done' THEN ms END, owner_oid \
         FROM pgclone.job_units WHERE job_id = $2 AND owner_oid = $3",
        &[job_id.into(), old.into(), o.into()],
    )?;
    run(
        "INSERT INTO pgclone.job_undo (job_id, seq, sql, owner_oid) \
         SELECT $1, seq, sql, owner_oid FROM pgclone.job_undo WHERE job_id = $2 AND owner_oid = $3",
        &[job_id.into(), old.into(), o.into()],
    )?;
    run(
        "DELETE FROM pgclone.job_secrets WHERE job_id = $1",
        &[old.into()],
    )
}

/// One unit's place in the plan: (id, deps, est_bytes, tables, done,
/// stage: 0 schema, 1 data, 2 post).
pub type UnitMeta = (u32, Vec<u32>, i64, u32, bool, u8);

/// The plan of a job, without the steps (the coordinator schedules it).
pub fn plan_of(job_id: i32, owner: u32) -> Result<Vec<UnitMeta>> {
    privileged(|| {
        Spi::connect(|c| {
            let rows = c.select(
                "SELECT unit_id, deps, est_bytes, tables_done, status = 'done', \
                        CASE stage WHEN 'Schema' THEN 0 WHEN 'Data' THEN 1 ELSE 2 END \
                 FROM pgclone.job_units \
                 WHERE job_id = $1 AND owner_oid = $2 ORDER BY unit_id",
                None,
                &[job_id.into(), pg_sys::Oid::from(owner).into()],
            )?;
            let mut out = Vec::new();
            for r in rows {
                out.push((
                    r.get::<i32>(1)?.unwrap_or(0) as u32,
                    r.get::<Vec<i32>>(2)?
                        .unwrap_or_default()
                        .into_iter()
                        .map(|d| d as u32)
                        .collect(),
                    r.get::<i64>(3)?.unwrap_or(0),
                    r.get::<i32>(4)?.unwrap_or(0) as u32,
                    r.get::<bool>(5)?.unwrap_or(false),
                    r.get::<i32>(6)?.unwrap_or(1) as u8,
                ));
            }
            Ok::<_, pgrx::spi::SpiError>(out)
        })
    })
    .map_err(spi_err)
}

/// What a unit does, and its label.
pub fn unit_steps(job_id: i32, unit_id: u32, owner: u32) -> Result<(String, Vec<Step>)> {
    let row = privileged(|| {
        Spi::connect(|c| {
            let t = c.select(
                "SELECT label, steps FROM pgclone.job_units \
                 WHERE job_id = $1 AND unit_id = $2 AND owner_oid = $3 AND status = 'pending'",
                None,
                &[
                    job_id.into(),
                    (unit_id as i32).into(),
                    pg_sys::Oid::from(owner).into(),
                ],
            )?;
            let mut out = None;
            for r in t {
                out = Some((
                    r.get::<String>(1)?.unwrap_or_default(),
                    r.get::<String>(2)?.unwrap_or_default(),
                ));
            }
            Ok::<_, pgrx::spi::SpiError>(out)
        })
    })
    .map_err(spi_err)?;
    let (label, steps) = row.ok_or_else(|| {
        CloneError::Internal(format!("job {job_id} has no pending unit {unit_id}"))
    })?;
    let steps: Vec<Step> =
        serde_json::from_str(&steps).map_err(|e| CloneError::Internal(format!("job unit: {e}")))?;
    Ok((label, steps))
}

/// A unit is done, in the transaction that did its work.
pub fn mark_done(job_id: i32, unit_id: u32, rows: u64, bytes: u64, ms: i64) -> Result<()> {
    run(
        "UPDATE pgclone.job_units SET status = 'done', rows = $3, bytes = $4, ms = $5, \
           worker_pid = pg_catalog.pg_backend_pid(), finished = pg_catalog.clock_timestamp() \
         WHERE job_id = $1 AND unit_id = $2",
        &[
            job_id.into(),
            (unit_id as i32).into(),
            (rows as i64).into(),
            (bytes as i64).into(),
            ms.into(),
        ],
    )
}

/// Time spent in units summed over workers: (copies, index builds and the
/// rest after them), in ms.
pub fn unit_time(job_id: i32, owner: u32) -> Result<(i64, i64)> {
    privileged(|| {
        Spi::connect(|c| {
            let t = c.select(
                "SELECT coalesce(pg_catalog.sum(ms) FILTER (WHERE kind IN ('tables', 'copy')), 0)::int8, \
                        coalesce(pg_catalog.sum(ms) FILTER (WHERE kind IN ('index', 'keys', 'refresh')), 0)::int8 \
                 FROM pgclone.job_units WHERE job_id = $1 AND owner_oid = $2",
                None,
                &[job_id.into(), pg_sys::Oid::from(owner).into()],
            )?;
            let r = t.first();
            Ok::<_, pgrx::spi::SpiError>((
                r.get::<i64>(1)?.unwrap_or(0),
                r.get::<i64>(2)?.unwrap_or(0),
            ))
        })
    })
    .map_err(spi_err)
}

/// Totals and phase of a running job, as the coordinator sees them.
pub struct Progress {
    pub phase: String,
    pub tables_total: i64,
    pub tables_done: i64,
    pub rows: i64,
    pub bytes: i64,
    pub bytes_total: i64,
    pub units_total: i32,
}

pub fn set_progress(job_id: i32, p: &Progress) -> Result<()> {
    run(
        "UPDATE pgclone.jobs SET current_phase = $2, tables_total = $3, tables_completed = $4, \
           rows_copied = $5, bytes_copied = $6, bytes_total = $7, units_total = $8 WHERE job_id = $1",
        &[
            job_id.into(),
            p.phase.clone().into(),
            p.tables_total.into(),
            p.tables_done.into(),
            p.rows.into(),
            p.bytes.into(),
            p.bytes_total.into(),
            p.units_total.into(),
        ],
    )
}

pub struct Outcome<'a> {
    pub status: &'a str,
    pub summary: Option<String>,
    pub error: Option<&'a CloneError>,
    pub phases: String,
}

pub fn finish(job_id: i32, o: &Outcome) -> Result<()> {
    run(
        "UPDATE pgclone.jobs SET status = $2, end_time = pg_catalog.clock_timestamp(), summary = $3, \
           error_message = $4, error_sqlstate = $5, phases = $6::pg_catalog.jsonb, \
           current_phase = CASE WHEN $2 = 'completed' THEN 'done' ELSE current_phase END \
         WHERE job_id = $1",
        &[
            job_id.into(),
            o.status.into(),
            o.summary.clone().into(),
            o.error.map(|e| e.to_string()).into(),
            o.error.map(|e| e.sqlstate().to_string()).into(),
            o.phases.clone().into(),
        ],
    )?;
    if o.status == "completed" {
        delete_secret(job_id)?;
    }
    Ok(())
}

/// What discard() runs, newest first.
pub fn undo_of(job_id: i32, owner: u32) -> Result<Vec<String>> {
    strings(
        "SELECT sql FROM pgclone.job_undo WHERE job_id = $1 AND owner_oid = $2 ORDER BY seq DESC",
        job_id,
        owner,
    )
}

fn strings(sql: &str, job_id: i32, owner: u32) -> Result<Vec<String>> {
    privileged(|| {
        Spi::connect(|c| {
            let rows = c.select(sql, None, &[job_id.into(), pg_sys::Oid::from(owner).into()])?;
            let mut out = Vec::new();
            for r in rows {
                out.extend(r.get::<String>(1)?);
            }
            Ok::<_, pgrx::spi::SpiError>(out)
        })
    })
    .map_err(spi_err)
}

/// A job as the caller may see it: (status, request, owner oid, resumed by,
/// conninfo kept for resume). None: no such job, or another role's.
pub struct Seen {
    pub status: String,
    pub spec: Spec,
    pub owner: u32,
    pub resumed_by: Option<i32>,
    pub conninfo: Option<String>,
}

pub fn seen(job_id: i32) -> Result<Option<Seen>> {
    // Read as the caller: row-level security shows an operator its own jobs.
    let row = Spi::connect(|c| {
        let t = c.select(
            "SELECT j.status, j.request::text, j.owner_oid, \
                    (SELECT pg_catalog.min(n.job_id) FROM pgclone.jobs n WHERE n.resumed_from = j.job_id), \
                    s.conninfo \
             FROM pgclone.jobs j LEFT JOIN pgclone.job_secrets s \
               ON s.job_id = j.job_id AND s.owner_oid = j.owner_oid \
             WHERE j.job_id = $1",
            None,
            &[job_id.into()],
        )?;
        let mut out = None;
        for r in t {
            out = Some((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
                r.get::<pg_sys::Oid>(3)?.map(|o| o.to_u32()).unwrap_or(0),
                r.get::<i32>(4)?,
                r.get::<String>(5)?,
            ));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .map_err(spi_err)?;
    let Some((status, request, owner, resumed_by, conninfo)) = row else {
        return Ok(None);
    };
    let spec: Spec = serde_json::from_str(&request)
        .map_err(|e| CloneError::Internal(format!("job request: {e}")))?;
    Ok(Some(Seen {
        status,
        spec,
        owner,
        resumed_by,
        conninfo,
    }))
}

/// Jobs the table says are running but no process runs any more (the
/// server restarted, the coordinator was killed) are failed: those of
/// `owner` (None: a superuser's call, every one).
pub fn reap(live: &[i32], owner: Option<u32>) -> Result<()> {
    run(
        "UPDATE pgclone.jobs SET status = 'failed', end_time = coalesce(end_time, pg_catalog.clock_timestamp()), \
           error_message = coalesce(error_message, 'interrupted: the job''s processes ended (server restart or terminated); pgclone.resume(' || job_id || ') continues it') \
         WHERE status OPERATOR(pg_catalog.=) ANY (ARRAY['pending', 'running']) AND job_id <> ALL($1) \
           AND ($2 IS NULL OR owner_oid = $2)",
        &[live.to_vec().into(), owner.map(pg_sys::Oid::from).into()],
    )?;
    // A role dropped since keeps nothing: its stored source credentials go.
    run(
        "DELETE FROM pgclone.job_secrets s \
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.oid = s.owner_oid)",
        &[],
    )
}

/// Forget finished jobs of `owner` (None: every role's); how many.
pub fn clear(owner: Option<u32>) -> Result<i64> {
    privileged(|| {
        Spi::get_one_with_args::<i64>(
            "WITH gone AS (DELETE FROM pgclone.jobs \
               WHERE status OPERATOR(pg_catalog.=) ANY (ARRAY['completed', 'failed', 'cancelled']) \
                 AND ($1 IS NULL OR owner_oid = $1) RETURNING 1) \
             SELECT pg_catalog.count(*) FROM gone",
            &[owner.map(pg_sys::Oid::from).into()],
        )
    })
    .map(|n| n.unwrap_or(0))
    .map_err(spi_err)
}

/// Forget a job and the chain of jobs it resumed; how many rows went.
pub fn forget_chain(job_id: i32, owner: u32) -> Result<i64> {
    privileged(|| {
        Spi::get_one_with_args::<i64>(
            "WITH RECURSIVE chain AS (SELECT job_id, resumed_from FROM pgclone.jobs WHERE job_id = $1 AND owner_oid = $2 \
               UNION ALL SELECT j.job_id, j.resumed_from FROM pgclone.jobs j JOIN chain c ON j.job_id = c.resumed_from \
               WHERE j.owner_oid = $2), \
             gone AS (DELETE FROM pgclone.jobs WHERE job_id IN (SELECT job_id FROM chain) RETURNING 1) \
             SELECT pg_catalog.count(*) FROM gone",
            &[job_id.into(), pg_sys::Oid::from(owner).into()],
        )
    })
    .map(|n| n.unwrap_or(0))
    .map_err(spi_err)
}

/// A finished serial clone, for the record (in the caller's transaction).
pub fn record_serial(
    job_id: i32,
    spec: &Spec,
    owner: u32,
    source: &str,
    summary: &str,
    p: &Progress,
    started_ms: i64,
) -> Result<()> {
    insert_job(&NewJob {
        job_id,
        spec,
        source: source.to_string(),
        owner,
        status: "completed",
    })?;
    set_progress(job_id, p)?;
    run(
        "UPDATE pgclone.jobs SET end_time = pg_catalog.clock_timestamp(), summary = $2, current_phase = 'done', \
           start_time = pg_catalog.to_timestamp($3::pg_catalog.float8 / 1000) WHERE job_id = $1",
        &[job_id.into(), summary.into(), (started_ms as f64).into()],
    )
}
