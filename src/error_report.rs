//! Turning a `CloneError` into a PostgreSQL ERROR with its SQLSTATE.

use crate::error::{sqlstate_to_int, CloneError};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

pub fn raise(e: CloneError) -> ! {
    let code = PgSqlErrorCode::from(sqlstate_to_int(e.sqlstate()));
    let mut report = ErrorReport::new(code, e.to_string(), "pgclone");
    if let CloneError::InvalidFilter(_) = e {
        report =
            report.set_hint("the filter runs on the source as one read-only boolean expression");
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

pub fn notice(msg: &str) {
    pgrx::notice!("{}", msg);
}

pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T, CloneError> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => raise(e),
        }
    }
}
