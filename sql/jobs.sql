-- Durable job state. Live state (processes, bytes in flight, the cancel flag,
-- the conninfo the job connects with) is in shared memory; these tables are
-- what survives a restart, so an interrupted job shows as failed and resume
-- knows which units are done.
--
-- A job belongs to the role that started it. Row-level security gives each
-- operator its own rows and nothing else (superusers see all), so neither
-- pgclone's functions nor a job's processes ever switch to a more privileged
-- role to read or write job state: they act as the job's own role.

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
    owner_name    name NOT NULL DEFAULT current_user,
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
    -- the role the unit runs as (the table's owner); NULL: the job's role
    run_as      name,
    owner_name  name NOT NULL DEFAULT current_user,
    PRIMARY KEY (job_id, unit_id)
);

-- The conninfo of a job that may still be resumed. Kept apart so nothing
-- that shows jobs can show it; deleted when the job completes or is cleared.
CREATE TABLE pgclone.job_secrets (
    job_id     integer PRIMARY KEY REFERENCES pgclone.jobs ON DELETE CASCADE,
    conninfo   text NOT NULL,
    owner_name name NOT NULL DEFAULT current_user
);

-- How to take back what a job made on this server, for pgclone.discard():
-- statements run newest first, as the job's role. Rows with on_success run
-- instead when the job completes (dropping a schema it replaced).
CREATE TABLE pgclone.job_undo (
    job_id     integer NOT NULL REFERENCES pgclone.jobs ON DELETE CASCADE,
    seq        integer NOT NULL,
    sql        text NOT NULL,
    on_success boolean NOT NULL DEFAULT false,
    owner_name name NOT NULL DEFAULT current_user,
    PRIMARY KEY (job_id, seq)
);

REVOKE ALL ON pgclone.jobs, pgclone.job_units, pgclone.job_secrets, pgclone.job_undo,
    pgclone.jobs_job_id_seq FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON pgclone.jobs, pgclone.job_units, pgclone.job_secrets,
    pgclone.job_undo TO pgclone_operator;
GRANT USAGE ON SEQUENCE pgclone.jobs_job_id_seq TO pgclone_operator;

ALTER TABLE pgclone.jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE pgclone.job_units ENABLE ROW LEVEL SECURITY;
ALTER TABLE pgclone.job_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE pgclone.job_undo ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_jobs ON pgclone.jobs
    USING (owner_name = current_user) WITH CHECK (owner_name = current_user);
CREATE POLICY own_units ON pgclone.job_units
    USING (owner_name = current_user) WITH CHECK (owner_name = current_user);
CREATE POLICY own_secrets ON pgclone.job_secrets
    USING (owner_name = current_user) WITH CHECK (owner_name = current_user);
CREATE POLICY own_undo ON pgclone.job_undo
    USING (owner_name = current_user) WITH CHECK (owner_name = current_user);
