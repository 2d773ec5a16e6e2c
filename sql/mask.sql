-- The key of the "hash" mask when the pgclone.mask_key setting is empty:
-- 32 random bytes made with the extension, readable by superusers only.
-- pg_dump carries it with the database, so a restored copy hashes the same.
CREATE TABLE pgclone.mask_secret (key bytea NOT NULL);
INSERT INTO pgclone.mask_secret
SELECT pg_catalog.decode(pg_catalog.replace(
           pg_catalog.gen_random_uuid()::text || pg_catalog.gen_random_uuid()::text, '-', ''), 'hex');
REVOKE ALL ON pgclone.mask_secret FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pgclone.mask_secret', '');

-- Masking policies made by create_masking_policy(): the view, the rules,
-- and the table's grants as they were, which drop_masking_policy() puts
-- back. Written by pgclone itself, readable by superusers only.
CREATE TABLE pgclone.masking_policies (
    schema_name text NOT NULL,
    table_name  text NOT NULL,
    view_name   text NOT NULL,
    relacl      aclitem[],
    column_acls jsonb,
    mask        jsonb NOT NULL,
    created     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema_name, table_name)
);
REVOKE ALL ON pgclone.masking_policies FROM PUBLIC;
