//! Tier 2: tests inside a real server (`cargo pgrx test`).

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn version_names_the_extension() {
        let v = Spi::get_one::<String>("SELECT pgclone.version()")
            .unwrap()
            .unwrap();
        assert_eq!(v, format!("pgclone {}", env!("CARGO_PKG_VERSION")));
    }

    /// A conninfo with no host means this server: pgclone finds the socket
    /// directory and port from the server's own settings. The source table
    /// must be committed (the loopback session cannot see this transaction),
    /// so a catalog table with rows serves.
    #[pg_test]
    fn loopback_clone_of_a_committed_table() {
        let db = Spi::get_one::<String>("SELECT current_database()::text")
            .unwrap()
            .unwrap();
        let ci = format!("dbname='{db}'");
        let summary = Spi::get_one_with_args::<String>(
            "SELECT pgclone.table($1, 'information_schema', 'sql_features', true, 'features_copy')",
            &[ci.as_str().into()],
        )
        .unwrap()
        .unwrap();
        assert!(summary.contains("rows"), "{summary}");
        let same = Spi::get_one::<bool>(
            "SELECT (SELECT count(*) FROM information_schema.features_copy) = \
                    (SELECT count(*) FROM information_schema.sql_features) \
                AND (SELECT sum(hashtext(f::text)) FROM information_schema.features_copy f) = \
                    (SELECT sum(hashtext(f::text)) FROM information_schema.sql_features f)",
        )
        .unwrap()
        .unwrap();
        assert!(same);
    }

    #[pg_test(error = "argument \"conninfo\" must not be NULL")]
    fn null_conninfo_is_an_error() {
        Spi::run("SELECT pgclone.table(NULL, 'public', 't')").unwrap();
    }
}
