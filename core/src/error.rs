//! One error type for the whole extension. Every variant carries the SQLSTATE a
//! DBA's script can branch on; messages never contain a conninfo password
//! (see `conn::redact` and `CloneError::scrub`).

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum CloneError {
    /// A NULL reached an argument that has no meaning as NULL.
    #[error("argument \"{0}\" must not be NULL")]
    NullArgument(&'static str),

    /// The JSON options are malformed, have an unknown key or a wrong type.
    #[error("invalid options: {0}")]
    InvalidOptions(String),

    /// The conninfo string cannot be parsed or names an unsupported key.
    #[error("invalid connection string: {0}")]
    InvalidConninfo(String),

    /// The source server could not be reached or refused us.
    #[error("could not connect to the source server: {0}")]
    Connect(String),

    /// The source answered a query with an error; the SQLSTATE is the source's own.
    #[error("source server: {message}")]
    Source { sqlstate: String, message: String },

    /// This server's own session (database_create's loopback) failed.
    #[error("local server: {message}")]
    Local { sqlstate: String, message: String },

    /// A `where` filter that is not a single read-only boolean expression.
    #[error("invalid \"where\" filter: {0}")]
    InvalidFilter(String),

    #[error("schema \"{0}\" does not exist on the source")]
    UndefinedSchema(String),

    #[error("table {0} does not exist on the source")]
    UndefinedTable(String),

    #[error("column \"{0}\" does not exist on the source table")]
    UndefinedColumn(String),

    #[error("{0} already exists on the target")]
    AlreadyExists(String),

    #[error("{0}")]
    NotSupported(String),

    #[error("permission denied: {0}")]
    Permission(String),

    #[error("pgclone was cancelled")]
    Cancelled,

    /// No job of this id that the caller may see.
    #[error("there is no job {0}")]
    NoJob(i32),

    /// The job is not in a state that allows what was asked.
    #[error("{0}")]
    JobState(String),

    #[error("{0}")]
    Internal(String),

    /// A background job's failure, carried back to the caller that waited for it.
    #[error("{message}")]
    Job { sqlstate: String, message: String },
}

impl CloneError {
    /// The five-character SQLSTATE for this error.
    pub fn sqlstate(&self) -> &str {
        match self {
            CloneError::NullArgument(_) => "22004",
            CloneError::InvalidOptions(_) => "22023",
            CloneError::InvalidConninfo(_) => "22023",
            CloneError::Connect(_) => "08001",
            CloneError::Source { sqlstate, .. } => sqlstate.as_str(),
            CloneError::Local { sqlstate, .. } => sqlstate.as_str(),
            CloneError::InvalidFilter(_) => "22023",
            CloneError::UndefinedSchema(_) => "3F000",
            CloneError::UndefinedTable(_) => "42P01",
            CloneError::UndefinedColumn(_) => "42703",
            CloneError::AlreadyExists(_) => "42P07",
            CloneError::NotSupported(_) => "0A000",
            CloneError::Permission(_) => "42501",
            CloneError::Cancelled => "57014",
            CloneError::NoJob(_) => "22023",
            CloneError::JobState(_) => "55000",
            CloneError::Internal(_) => "XX000",
            CloneError::Job { sqlstate, .. } => sqlstate.as_str(),
        }
    }

    /// Remove every occurrence of `secret` from the message, so a password that a
    /// server or a library echoes back can never reach the client or the log.
    pub fn scrub(self, secret: Option<&str>) -> CloneError {
        let Some(secret) = secret.filter(|s| !s.is_empty()) else {
            return self;
        };
        let clean = |s: String| scrub_text(&s, secret);
        match self {
            CloneError::InvalidConninfo(m) => CloneError::InvalidConninfo(clean(m)),
            CloneError::Connect(m) => CloneError::Connect(clean(m)),
            CloneError::Source { sqlstate, message } => CloneError::Source {
                sqlstate,
                message: clean(message),
            },
            CloneError::Local { sqlstate, message } => CloneError::Local {
                sqlstate,
                message: clean(message),
            },
            CloneError::InvalidFilter(m) => CloneError::InvalidFilter(clean(m)),
            CloneError::Internal(m) => CloneError::Internal(clean(m)),
            CloneError::Job { sqlstate, message } => CloneError::Job {
                sqlstate,
                message: clean(message),
            },
            other => other,
        }
    }
}

/// `text` with `secret` masked. A password of eight or more characters is
/// masked wherever it appears; a shorter one only where it stands as a word
/// of its own, so that a one-letter password does not mangle every word that
/// contains the letter. pgclone's own messages never carry the password (a
/// conninfo is only ever shown redacted); this is for text a server or a
/// library sends back.
pub fn scrub_text(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(secret) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + secret.len()..].chars().next();
        // Part of a longer word on either side: not the password standing alone.
        let joined = (word(before) && word(secret.chars().next()))
            || (word(after) && word(secret.chars().next_back()));
        let whole = secret.chars().count() >= 8 || !joined;
        out.push_str(&rest[..at]);
        if whole {
            out.push_str("********");
        } else {
            out.push_str(secret);
        }
        rest = &rest[at + secret.len()..];
    }
    out.push_str(rest);
    out
}

/// PostgreSQL packs a SQLSTATE into an int six bits per character (MAKE_SQLSTATE).
/// The five characters of a SQLSTATE packed by [`sqlstate_to_int`].
pub fn int_to_sqlstate(code: i32) -> String {
    (0..5)
        .map(|i| (((code >> (6 * i)) & 0x3F) as u8 + b'0') as char)
        .collect()
}

pub fn sqlstate_to_int(code: &str) -> i32 {
    let b = code.as_bytes();
    if b.len() != 5 {
        return sqlstate_to_int("XX000");
    }
    let six = |c: u8| ((c.wrapping_sub(b'0')) & 0x3F) as i32;
    six(b[0]) | (six(b[1]) << 6) | (six(b[2]) << 12) | (six(b[3]) << 18) | (six(b[4]) << 24)
}

/// The five characters of a packed SQLSTATE (PGUNSIXBIT).
pub fn sqlstate_from_int(code: i32) -> String {
    (0..5)
        .map(|i| (((code >> (6 * i)) & 0x3F) as u8 + b'0') as char)
        .collect()
}

pub type Result<T> = std::result::Result<T, CloneError>;

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn sqlstates_round_trip() {
        for code in ["42501", "XX000", "22P02", "0A000"] {
            assert_eq!(int_to_sqlstate(sqlstate_to_int(code)), code);
        }
    }

    #[test]
    fn sqlstate_packing_matches_postgres() {
        // ERRCODE_UNDEFINED_TABLE = MAKE_SQLSTATE('4','2','P','0','1')
        let expect = (4) | (2 << 6) | ((b'P' - b'0') as i32 & 0x3F) << 12 | (1 << 24);
        assert_eq!(sqlstate_to_int("42P01"), expect);
        assert_eq!(sqlstate_to_int("00000"), 0);
        for code in ["42P01", "57014", "XX000", "22023", "0A000"] {
            assert_eq!(sqlstate_from_int(sqlstate_to_int(code)), code);
        }
    }

    #[test]
    fn scrub_hides_password() {
        let e = CloneError::Connect("password authentication failed: s3cr3t".into());
        let msg = e.scrub(Some("s3cr3t")).to_string();
        assert!(!msg.contains("s3cr3t"), "{msg}");
        assert!(msg.contains("********"));
    }

    #[test]
    fn short_passwords_are_scrubbed_as_words_only() {
        let e = CloneError::Connect("unexpected message: x (user x)".into());
        let msg = e.scrub(Some("x")).to_string();
        assert_eq!(
            msg,
            "could not connect to the source server: unexpected message: ******** (user ********)"
        );
        assert_eq!(scrub_text("p4ss=p4ss;", "p4ss"), "********=********;");
        assert_eq!(scrub_text("bypass", "pass"), "bypass");
        // long secrets go wherever they are
        assert_eq!(scrub_text("xxs3cr3t-pw!xx", "s3cr3t-pw!"), "xx********xx");
    }

    #[test]
    fn every_variant_has_five_char_sqlstate() {
        let all = [
            CloneError::NullArgument("x"),
            CloneError::InvalidOptions("x".into()),
            CloneError::Connect("x".into()),
            CloneError::UndefinedTable("x".into()),
            CloneError::Cancelled,
        ];
        for e in all {
            assert_eq!(e.sqlstate().len(), 5, "{e:?}");
        }
    }
}
