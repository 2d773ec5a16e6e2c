-- The role that may use pgclone without being a superuser. Roles are
-- cluster-wide, so it may already exist from another database.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pgclone_operator') THEN
        CREATE ROLE pgclone_operator NOLOGIN;
    END IF;
END
$$;
