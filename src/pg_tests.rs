//! Tier 2: tests inside a real server (`cargo pgrx test`).

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;
    #[pg_test]
    fn version_names_the_extension() {
        assert_eq!(crate::api::VERSION, env!("CARGO_PKG_VERSION"));
        let v = Spi::get_one::<String>("SELECT pgclone.version()")
            .unwrap()
            .unwrap();
        assert_eq!(v, format!("pgclone {}", env!("CARGO_PKG_VERSION")));
    }
}
