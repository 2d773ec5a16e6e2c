-- verify() keeps pgclone 4.x's column name "match", which a Rust row
-- type cannot carry: SQL wrappers name it.
CREATE FUNCTION pgclone.verify(source_conninfo text)
RETURNS TABLE(schema_name text, table_name text, source_rows bigint, target_rows bigint, "match" text)
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS 'SELECT * FROM pgclone.verify_rows(source_conninfo, NULL, true)';
CREATE FUNCTION pgclone.verify(source_conninfo text, schema text)
RETURNS TABLE(schema_name text, table_name text, source_rows bigint, target_rows bigint, "match" text)
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS 'SELECT * FROM pgclone.verify_rows(source_conninfo, schema, false)';

-- pgclone reaches other servers and writes the local catalog: it is for
-- superusers and members of pgclone_operator only.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgclone FROM PUBLIC;
GRANT USAGE ON SCHEMA pgclone TO pgclone_operator;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pgclone TO pgclone_operator;

-- \df+ pgclone.* is the reference card.
COMMENT ON FUNCTION pgclone.version() IS
    'pgclone version, as "pgclone X.Y.Z"';
COMMENT ON FUNCTION pgclone."table"(text, text, text, boolean) IS
    'table(conninfo, schema, table, include_data DEFAULT true): clone one table from the source server into the same schema and name here, with its indexes, constraints, triggers, policies, comments, owner, grants and owned sequences; returns a summary';
COMMENT ON FUNCTION pgclone."table"(text, text, text, boolean, text) IS
    'table(conninfo, schema, table, include_data, target_table): clone one table under another name (NULL = same name); index, key and sequence names follow the new name';
COMMENT ON FUNCTION pgclone."table"(text, text, text, boolean, text, text) IS
    'table(conninfo, schema, table, include_data, target_table, options): clone one table with JSON options: indexes, constraints, triggers (bool), columns (array), where (row filter run on the source, read-only), conflict (error|skip|replace|rename)';
COMMENT ON FUNCTION pgclone.table_ex(text, text, text, boolean, text, boolean, boolean, boolean) IS
    'table_ex(conninfo, schema, table, include_data, target_table, indexes DEFAULT true, constraints DEFAULT true, triggers DEFAULT true): clone one table, choosing what comes along with flags';
COMMENT ON FUNCTION pgclone.schema(text, text, boolean) IS
    'schema(conninfo, schema, include_data DEFAULT true): clone every object of a schema (types, sequences, tables with partitions and data, views, materialized views, routines, rules, statistics, policies, comments, owners, grants) in dependency order from one snapshot of the source; returns a summary';
COMMENT ON FUNCTION pgclone.schema(text, text, boolean, text) IS
    'schema(conninfo, schema, include_data, options): as schema(), with JSON options (indexes, constraints, triggers, matviews, conflict, include_tables, exclude_tables, exclude_table_data)';
COMMENT ON FUNCTION pgclone.schema_ex(text, text, boolean, boolean, boolean, boolean) IS
    'schema_ex(conninfo, schema, include_data, indexes, constraints, triggers): clone a schema, choosing what comes along with flags';
COMMENT ON FUNCTION pgclone.functions(text, text) IS
    'functions(conninfo, schema): clone the functions, procedures and aggregates of a schema (not extension members)';
COMMENT ON FUNCTION pgclone.database(text, boolean) IS
    'database(conninfo, include_data DEFAULT true): clone every user schema of the source database, its extensions, large objects and default privileges into this database, from one snapshot';
COMMENT ON FUNCTION pgclone.database(text, boolean, text) IS
    'database(conninfo, include_data, options): as database(), with JSON options (include_schemas, exclude_schemas, include_tables, exclude_tables, exclude_table_data, conflict, ...)';
COMMENT ON FUNCTION pgclone.database_create(text, text, boolean) IS
    'database_create(conninfo, target_db, include_data DEFAULT true): create a database with the source''s encoding, locale, settings and comment (from template0), install pgclone there and clone the source database into it; dropped again if the clone fails. Needs a session of its own on this server through the local socket.';
COMMENT ON FUNCTION pgclone.database_create(text, text, boolean, text) IS
    'database_create(conninfo, target_db, include_data, options): as database_create(), with the JSON options of database()';

-- Live progress, one row per job (columns as pgclone 4.x).
CREATE VIEW pgclone.jobs_view AS SELECT * FROM pgclone.progress_detail();
REVOKE ALL ON pgclone.jobs_view FROM PUBLIC;
GRANT SELECT ON pgclone.jobs_view TO pgclone_operator;

COMMENT ON FUNCTION pgclone.table_async(text, text, text, boolean, text, text) IS
    'table_async(conninfo, schema, table, include_data DEFAULT true, target_table DEFAULT NULL, options DEFAULT NULL): clone one table in a background job; returns the job id at once';
COMMENT ON FUNCTION pgclone.schema_async(text, text, boolean, text) IS
    'schema_async(conninfo, schema, include_data DEFAULT true, options DEFAULT NULL): clone a schema in a background job with "parallel" copy workers; returns the job id at once';
COMMENT ON FUNCTION pgclone.database_async(text, boolean, text) IS
    'database_async(conninfo, include_data DEFAULT true, options DEFAULT NULL): clone every user schema in a background job with "parallel" copy workers; returns the job id at once';
COMMENT ON FUNCTION pgclone.progress(integer) IS
    'progress(job_id): one job as JSON: status, phase, tables, rows, bytes, percent, bar, and per-phase and per-table times';
COMMENT ON FUNCTION pgclone.jobs() IS
    'jobs(): every job of this database as a JSON array';
COMMENT ON FUNCTION pgclone.progress_detail() IS
    'progress_detail(): the rows of pgclone.jobs_view';
COMMENT ON FUNCTION pgclone.cancel(integer) IS
    'cancel(job_id): stop a running job''s processes, mid-COPY; true when it was running. pgclone.resume() continues it';
COMMENT ON FUNCTION pgclone.resume(integer) IS
    'resume(job_id): continue a failed or cancelled job from its last completed table or range, as a new job; returns the new job id';
COMMENT ON FUNCTION pgclone.discard(integer) IS
    'discard(job_id): drop what a failed or cancelled job made on this server (its schemas, or its objects in schemas that existed before; a schema it set aside comes back) and forget the job';
COMMENT ON FUNCTION pgclone.clear_jobs() IS
    'clear_jobs(): forget completed, failed and cancelled jobs; returns how many';

COMMENT ON FUNCTION pgclone.discover_sensitive(text, text) IS
    'discover_sensitive(conninfo, schema): JSON {"table": {"col": rule}} for the source schema''s columns that look sensitive by name and type, ready to paste as the "mask" option; read-only on the source';
COMMENT ON FUNCTION pgclone.mask_in_place(text, text, text) IS
    'mask_in_place(schema, table, mask_json): mask a local table with one UPDATE run as its owner; the rules and checks of a masked clone';
COMMENT ON FUNCTION pgclone.create_masking_policy(text, text, text, text) IS
    'create_masking_policy(schema, table, mask_json, privileged_role): <table>_masked, a security_barrier view with the masked columns, for every role that read the table; the table itself only for privileged_role';
COMMENT ON FUNCTION pgclone.drop_masking_policy(text, text) IS
    'drop_masking_policy(schema, table): drop the masked view and put back the table''s grants exactly as they were';
COMMENT ON FUNCTION pgclone.masking_report(text) IS
    'masking_report(schema): per column, its sensitivity, whether a masking policy masks it, and the rule to use';
COMMENT ON FUNCTION pgclone.discover_sensitive(text, text, integer) IS
    'discover_sensitive(conninfo, schema, sample_rows): as discover_sensitive(), with the first sample_rows rows of each table confirming or correcting what the column names say (regular expressions run on the source; only counts come back)';

COMMENT ON FUNCTION pgclone.verify(text) IS
    'verify(source_conninfo): every table, partition and materialized view of every user schema, then sequences and large objects: exact counts and an order-independent content checksum on one snapshot per side; match is ✓, ✗, ✗ (missing) or ✗ (content)';
COMMENT ON FUNCTION pgclone.verify(text, text) IS
    'verify(source_conninfo, schema): as verify(), for one schema';
COMMENT ON FUNCTION pgclone.verify_rows(text, text, boolean) IS
    'verify_rows(source_conninfo, schema, whole): the rows of verify(), which names its last column "match"';
COMMENT ON FUNCTION pgclone.diff(text, text) IS
    'diff(source_conninfo, schema): JSON of the schema''s definitions here against the source''s (tables and columns, indexes, constraints, triggers, views, sequences, policies, functions, types), keyed by table and name; in_sync, diff_count, summary';
COMMENT ON FUNCTION pgclone.preflight(text, text) IS
    'preflight(source_conninfo, schema): JSON: ready, and every check a clone depends on with ok and a reason to act on; read-only on both sides';
COMMENT ON FUNCTION pgclone.preflight(text, text, text) IS
    'preflight(source_conninfo, schema, options): as preflight(), for a clone with these options (conflict, parallel, roles, tablespaces, follow)';
COMMENT ON FUNCTION pgclone.clone_roles(text) IS
    'clone_roles(source_conninfo): make or update every role of the source (not reserved or bootstrap ones) with attributes, stored password hashes, memberships, settings, then the source''s grants on every object both sides have';
COMMENT ON FUNCTION pgclone.clone_roles(text, text) IS
    'clone_roles(source_conninfo, role_names): as clone_roles(), for the roles named (comma- or space-separated), adding only their grants';
