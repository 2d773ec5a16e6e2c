-- Durable job state. Live state (processes, the queue of ready units, bytes
-- in flight, the cancel flag, the conninfo the job connects with) is in
-- shared memory; these tables are what survives a restart: the plan of each
-- job as units with their dependencies, which units are done (marked in the
-- same transaction as the unit's work, so resume never runs one twice), and
-- how to take back what a job made.
--
-- A job belongs to the role that started it (by OID: a role dropped and
-- made again under the same name is another role). Operators may read their
-- own rows (row-level security) and write none: pgclone writes job state
-- itself, with search_path pinned and every name qualified, so no row an
-- operator could forge is ever run by a job.

CREATE SEQUENCE pgclone.jobs_job_id_seq;

CREATE TABLE pgclone.jobs (
    job_id           integer PRIMARY KEY,
    status           text NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    op_type          text NOT NULL,
    schema_name      text,
    table_name       text,
    -- what was asked (options, flags), never the conninfo
    request          jsonb NOT NULL,
    -- the source, password removed
    source           text NOT NULL,
    owner_name       name NOT NULL,
    owner_oid        oid NOT NULL,
    workers          integer NOT NULL,
    resumed_from     integer,
    current_phase    text,
    tables_total     bigint NOT NULL DEFAULT 0,
    tables_completed bigint NOT NULL DEFAULT 0,
    rows_copied      bigint NOT NULL DEFAULT 0,
    bytes_copied     bigint NOT NULL DEFAULT 0,
    bytes_total      bigint,
    units_total      integer NOT NULL DEFAULT 0,
    start_time       timestamptz NOT NULL DEFAULT clock_timestamp(),
    end_time         timestamptz,
    error_message    text,
    error_sqlstate   text,
    summary          text,
    -- per phase: wall time, and for copy and indexes the time summed over workers
    phases           jsonb
);

-- The plan: one row per unit of work, with the units it waits for.
CREATE TABLE pgclone.job_units (
    job_id      integer NOT NULL REFERENCES pgclone.jobs ON DELETE CASCADE,
    unit_id     integer NOT NULL,
    stage       text NOT NULL,
    kind        text NOT NULL,
    label       text NOT NULL,
    deps        integer[] NOT NULL DEFAULT '{}',
    -- what it does, as JSON (statements, copies)
    steps       text NOT NULL,
    est_bytes   bigint NOT NULL DEFAULT 0,
    tables_done integer NOT NULL DEFAULT 0,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done')),
    worker_pid  integer,
    rows        bigint,
    bytes       bigint,
    finished    timestamptz,
    ms          bigint,
    owner_oid   oid NOT NULL,
    PRIMARY KEY (job_id, unit_id)
);

-- The conninfo of a job that may still be resumed. Kept apart so nothing
-- that shows jobs can show it; deleted when the job completes or is cleared.
CREATE TABLE pgclone.job_secrets (
    job_id     integer PRIMARY KEY REFERENCES pgclone.jobs ON DELETE CASCADE,
    conninfo   text NOT NULL,
    owner_oid  oid NOT NULL
);

-- How to take back what a job made on this server, for pgclone.discard():
-- statements run newest first, as the job's role.
CREATE TABLE pgclone.job_undo (
    job_id     integer NOT NULL REFERENCES pgclone.jobs ON DELETE CASCADE,
    seq        integer NOT NULL,
    sql        text NOT NULL,
    owner_oid  oid NOT NULL,
    PRIMARY KEY (job_id, seq)
);

REVOKE ALL ON pgclone.jobs, pgclone.job_units, pgclone.job_secrets, pgclone.job_undo,
    pgclone.jobs_job_id_seq FROM PUBLIC;
GRANT SELECT ON pgclone.jobs, pgclone.job_units, pgclone.job_secrets, pgclone.job_undo
    TO pgclone_operator;

ALTER TABLE pgclone.jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE pgclone.job_units ENABLE ROW LEVEL SECURITY;
ALTER TABLE pgclone.job_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE pgclone.job_undo ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_jobs ON pgclone.jobs FOR SELECT
    USING (owner_oid = (current_user::pg_catalog.regrole)::pg_catalog.oid);
CREATE POLICY own_units ON pgclone.job_units FOR SELECT
    USING (owner_oid = (current_user::pg_catalog.regrole)::pg_catalog.oid);
CREATE POLICY own_secrets ON pgclone.job_secrets FOR SELECT
    USING (owner_oid = (current_user::pg_catalog.regrole)::pg_catalog.oid);
CREATE POLICY own_undo ON pgclone.job_undo FOR SELECT
    USING (owner_oid = (current_user::pg_catalog.regrole)::pg_catalog.oid);
