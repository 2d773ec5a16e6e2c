-- Durable job state. Live state (processes, bytes in flight, the cancel flag,
-- the conninfo the job connects with) is in shared memory; these tables are
-- what survives a restart, so an interrupted job shows as failed and resume
-- knows which units are done. Only superusers read them directly: operators
-- see jobs through pgclone.jobs_view, progress(), jobs().

CREATE SEQUENCE pgclone.jobs_job_id_seq;

CREATE TABLE pgclone.jobs (
    job_id        integer PRIMARY KEY,
    status        text NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    op_type       text NOT NULL,
    schema_name   text,
    table_name    text,
    -- what was asked (options, flags), never the conninfo
    request       jsonb NOT NULL,
    -- the source, password removed
    source        text NOT NULL,
    owner_name    name NOT NULL,
    workers       integer NOT NULL,
    resumed_from  integer,
    pre_data_done boolean NOT NULL DEFAULT false,
    current_phase text,
    tables_total  bigint NOT NULL DEFAULT 0,
    bytes_total   bigint,
    start_time    timestamptz NOT NULL DEFAULT clock_timestamp(),
    end_time      timestamptz,
    error_message text,
    error_sqlstate text,
    summary       text,
    -- per phase: wall time, and for copy and indexes the time summed over workers
    phases        jsonb
);

CREATE TABLE pgclone.job_units (
    job_id      integer NOT NULL REFERENCES pgclone.jobs ON DELETE CASCADE,
    unit_id     integer NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('copy', 'index', 'keys', 'refresh')),
    schema_name text NOT NULL,
    table_name  text NOT NULL,
    chunk       integer NOT NULL DEFAULT 1,
    chunks      integer NOT NULL DEFAULT 1,
    copy_sql    text NOT NULL DEFAULT '',
    columns     text[] NOT NULL DEFAULT '{}',
    "binary"    boolean NOT NULL DEFAULT false,
    "freeze"    boolean NOT NULL DEFAULT false,
    sqls        text[] NOT NULL DEFAULT '{}',
    est_bytes   bigint NOT NULL DEFAULT 0,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done')),
    worker_pid  integer,
    rows        bigint,
    bytes       bigint,
    started     timestamptz,
    ms          bigint,
    PRIMARY KEY (job_id, unit_id)
);

-- The conninfo of a job that may still be resumed. Kept apart so nothing
-- that shows jobs can show it; deleted when the job completes or is cleared.
CREATE TABLE pgclone.job_secrets (
    job_id   integer PRIMARY KEY REFERENCES pgclone.jobs ON DELETE CASCADE,
    conninfo text NOT NULL
);

REVOKE ALL ON pgclone.jobs, pgclone.job_units, pgclone.job_secrets, pgclone.jobs_job_id_seq FROM PUBLIC;
