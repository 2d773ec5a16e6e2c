-- dataset-toast.sql -- the wide-row shape: a few tables whose bytes are
-- mostly out of line (TOAST), where the heap is small and the total large.
--
-- psql variable: scale (1 gives about 1.9 GB). Schema "docs":
--   * docs.big: 300 000 × scale rows of about 4 kB of text each (hex digests:
--     pglz does not shrink them, so they are stored out of line as they are),
--     a jsonb column and a bytea, PK, an index on (kind, id);
--   * docs.medium: 120 000 × scale rows of the same kind;
--   * docs.kinds: 50 rows, the table both point to.
-- Deterministic: the same scale gives the same rows.
\set ON_ERROR_STOP on
SET client_min_messages = warning;

CREATE SCHEMA docs;
CREATE TABLE docs.kinds (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO docs.kinds SELECT g, 'kind ' || g FROM generate_series(1, 50) g;

-- 4 kB of incompressible-looking text for row g of table salt.
CREATE FUNCTION pg_temp.body(g int, salt int) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(md5((g::int8 * 131 + salt * 7 + k)::text), '' ORDER BY k)
    FROM generate_series(1, 128) k
$$;

CREATE TABLE docs.big (
    id int PRIMARY KEY,
    kind int NOT NULL REFERENCES docs.kinds,
    title text NOT NULL,
    body text NOT NULL,
    meta jsonb,
    blob bytea
);
INSERT INTO docs.big
SELECT g, 1 + g % 50, 'document ' || g, pg_temp.body(g, 1),
       jsonb_build_object('n', g, 'tag', md5(g::text)),
       CASE WHEN g % 10 = 0 THEN decode(md5(g::text) || md5((g + 1)::text), 'hex') END
FROM generate_series(1, (300000 * :scale)::int) g;
CREATE INDEX big_kind ON docs.big (kind, id);

CREATE TABLE docs.medium (
    id int PRIMARY KEY,
    kind int NOT NULL REFERENCES docs.kinds,
    body text NOT NULL,
    created timestamptz NOT NULL
);
INSERT INTO docs.medium
SELECT g, 1 + g % 50, pg_temp.body(g, 2), timestamptz '2024-01-01 00:00+00' + g * interval '1 minute'
FROM generate_series(1, (120000 * :scale)::int) g;
CREATE INDEX medium_kind ON docs.medium (kind, created);

ANALYZE;
