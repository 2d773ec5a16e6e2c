-- dataset-many.sql -- the many-objects shape: what ERP and schema-per-tenant
-- databases look like, thousands of small tables rather than a few big ones.
--
-- psql variables: tables (number of tables, default set by dataset.sh) and
-- rows (rows per table). Laid out like a schema-per-tenant database: the
-- tables come in schemas of 100, tenant_0001, tenant_0002, ..., each with
--   * parent: 1000 rows, the table the schema's other tables point to;
--   * t00001 .. : id int PRIMARY KEY, parent_id int NOT NULL REFERENCES
--     parent, qty int CHECK (qty >= 0), label text, created date; an index on
--     (parent_id, created); every fifth table also has a foreign key to the
--     table before it (a chain of FKs between the small tables);
--   * one view per ten tables (v00010, ...), one sequence per twenty tables
--     (s00020, ..., each advanced to a table-specific value);
-- then ANALYZE. Everything is deterministic: the same parameters give the
-- same rows. The work is committed every 250 tables, so no transaction holds
-- more locks than a default max_locks_per_transaction allows.
--
-- One parent per 100 tables, not one for all: each foreign key adds two
-- triggers to the table it references, and PostgreSQL reads all of that
-- table's triggers again after each one, so N foreign keys to one table cost
-- every tool O(N^2) (at 20 000 that alone is minutes, whoever restores).
\set ON_ERROR_STOP on
SET client_min_messages = warning;

CREATE PROCEDURE pg_temp.make_tables(n int, per int)
LANGUAGE plpgsql AS $$
DECLARE
    t text;
    s text;
BEGIN
    FOR i IN 1..n LOOP
        t := format('t%s', lpad(i::text, 5, '0'));
        s := format('tenant_%s', lpad(((i - 1) / 100 + 1)::text, 4, '0'));
        IF (i - 1) % 100 = 0 THEN
            EXECUTE format('CREATE SCHEMA %I', s);
            EXECUTE format('CREATE TABLE %I.parent (id int PRIMARY KEY, name text NOT NULL)', s);
            EXECUTE format('INSERT INTO %I.parent SELECT g, %L || g FROM generate_series(1, 1000) g', s, s || ' parent ');
        END IF;
        EXECUTE format(
            'CREATE TABLE %I.%I (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES %I.parent,
                                 qty int NOT NULL CHECK (qty >= 0), label text, created date)', s, t, s);
        EXECUTE format('CREATE INDEX %I ON %I.%I (parent_id, created)', t || '_parent_created', s, t);
        EXECUTE format(
            'INSERT INTO %I.%I SELECT g, 1 + (g * 7 + %s) %% 1000, (g * 13 + %s) %% 500,
                    md5((g + %s)::text), date ''2020-01-01'' + (g + %s) %% 1500
             FROM generate_series(1, %s) g', s, t, i, i, i * 1000, i, per);
        IF i % 5 = 0 THEN
            -- the table before it is in the same schema (i - 1 is not a multiple of 100)
            EXECUTE format('ALTER TABLE %I.%I ADD COLUMN prev_id int REFERENCES %I.%I', s, t, s,
                           format('t%s', lpad((i - 1)::text, 5, '0')));
            EXECUTE format('UPDATE %I.%I SET prev_id = id WHERE id %% 3 = 0', s, t);
        END IF;
        IF i % 10 = 0 THEN
            EXECUTE format('CREATE VIEW %I.%I AS SELECT parent_id, count(*) AS n, sum(qty) AS qty
                            FROM %I.%I GROUP BY parent_id', s, format('v%s', lpad(i::text, 5, '0')), s, t);
        END IF;
        IF i % 20 = 0 THEN
            EXECUTE format('CREATE SEQUENCE %I.%I', s, format('s%s', lpad(i::text, 5, '0')));
            PERFORM setval(format('%I.%I', s, format('s%s', lpad(i::text, 5, '0'))), i * 3);
        END IF;
        IF i % 250 = 0 THEN
            COMMIT;
        END IF;
    END LOOP;
END $$;

CALL pg_temp.make_tables(:tables, :rows);
ANALYZE;
