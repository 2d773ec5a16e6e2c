//! libpq-style connection strings, `key=value ...` or `postgresql://` URIs,
//! parsed into an ordered list of settings. Pure: no I/O, no server.

use crate::error::{CloneError, Result};
use crate::sqltext::quote_literal;

/// Keys pgclone carries out itself.
const SUPPORTED: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "connect_timeout",
    "application_name",
    "fallback_application_name",
    "options",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// Keys libpq knows that pgclone does not carry out; each gets an error naming it
/// rather than being silently ignored.
const UNSUPPORTED: &[&str] = &[
    "service",
    "passfile",
    "gssencmode",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "requirepeer",
    "require_auth",
    "sslcrl",
    "sslcrldir",
    "sslpassword",
    "sslcompression",
    "sslsni",
    "sslcertmode",
    "sslnegotiation",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "replication",
    "client_encoding",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub params: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl ConnInfo {
    pub fn parse(text: &str) -> Result<ConnInfo> {
        let t = text.trim();
        let params = if t.starts_with("postgresql://") || t.starts_with("postgres://") {
            parse_uri(t)?
        } else {
            parse_kv(t)?
        };
        let info = ConnInfo { params };
        info.validate()?;
        Ok(info)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        // libpq: the last setting of a key wins
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.params.retain(|(k, _)| k != key);
        self.params.push((key.to_string(), value.to_string()));
    }

    pub fn password(&self) -> Option<&str> {
        self.get("password")
    }

    pub fn ssl_mode(&self) -> SslMode {
        match self.get("sslmode").unwrap_or("prefer") {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => SslMode::Prefer,
        }
    }

    /// The hosts, split as libpq splits a comma list. Empty when no host is given.
    pub fn hosts(&self) -> Vec<String> {
        split_list(self.get("host"))
    }

    /// Every host is this machine (a socket directory or a loopback
    /// address): what travels never crosses a network.
    pub fn is_local(&self) -> bool {
        let hosts = self.hosts();
        let hosts = if hosts.is_empty() {
            split_list(self.get("hostaddr"))
        } else {
            hosts
        };
        hosts.is_empty()
            || hosts.iter().all(|h| {
                h.starts_with('/')
                    || h == "localhost"
                    || h.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
            })
    }

    pub fn ports(&self) -> Result<Vec<u16>> {
        split_list(self.get("port"))
            .iter()
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| CloneError::InvalidConninfo(format!("invalid port \"{p}\"")))
            })
            .collect()
    }

    /// The connection string with the password replaced, for messages and job views.
    pub fn redacted(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| {
                if k == "password" {
                    format!("{k}=********")
                } else {
                    format!("{k}={}", quote_value(v))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn validate(&self) -> Result<()> {
        for (k, v) in &self.params {
            if UNSUPPORTED.contains(&k.as_str()) {
                return Err(CloneError::InvalidConninfo(format!(
                    "connection option \"{k}\" is not supported by pgclone"
                )));
            }
            if !SUPPORTED.contains(&k.as_str()) {
                return Err(CloneError::InvalidConninfo(format!(
                    "invalid connection option \"{k}\""
                )));
            }
            let int_key = [
                "connect_timeout",
                "keepalives",
                "keepalives_idle",
                "keepalives_interval",
                "keepalives_count",
                "tcp_user_timeout",
            ];
            if int_key.contains(&k.as_str()) && v.parse::<u64>().is_err() {
                return Err(CloneError::InvalidConninfo(format!(
                    "invalid integer value \"{v}\" for connection option \"{k}\""
                )));
            }
            let allowed: &[&str] = match k.as_str() {
                "sslmode" => &[
                    "disable",
                    "allow",
                    "prefer",
                    "require",
                    "verify-ca",
                    "verify-full",
                ],
                "target_session_attrs" => &["any", "read-write"],
                "channel_binding" => &["disable", "prefer", "require"],
                "load_balance_hosts" => &["disable", "random"],
                _ => &[],
            };
            if !allowed.is_empty() && !allowed.contains(&v.as_str()) {
                return Err(CloneError::InvalidConninfo(format!(
                    "invalid value \"{v}\" for connection option \"{k}\" (expected one of: {})",
                    allowed.join(", ")
                )));
            }
        }
        self.ports()?;
        let hosts = self.hosts();
        let ports = self.ports()?;
        if ports.len() > 1 && ports.len() != hosts.len().max(1) {
            return Err(CloneError::InvalidConninfo(format!(
                "could not match {} port numbers to {} hosts",
                ports.len(),
                hosts.len()
            )));
        }
        let addrs = split_list(self.get("hostaddr"));
        for a in &addrs {
            if a.parse::<std::net::IpAddr>().is_err() {
                return Err(CloneError::InvalidConninfo(format!(
                    "invalid hostaddr \"{a}\""
                )));
            }
        }
        if !addrs.is_empty() && !hosts.is_empty() && addrs.len() != hosts.len() {
            return Err(CloneError::InvalidConninfo(format!(
                "could not match {} host names to {} hostaddr values",
                hosts.len(),
                addrs.len()
            )));
        }
        if matches!(self.ssl_mode(), SslMode::VerifyCa | SslMode::VerifyFull)
            && self.get("sslrootcert").is_none()
        {
            return Err(CloneError::InvalidConninfo(format!(
                "sslmode={} needs sslrootcert (the server's own home directory is not searched for root.crt)",
                self.get("sslmode").unwrap_or_default()
            )));
        }
        Ok(())
    }
}

fn split_list(v: Option<&str>) -> Vec<String> {
    match v {
        None | Some("") => Vec::new(),
        Some(s) => s.split(',').map(|p| p.trim().to_string()).collect(),
    }
}

fn quote_value(v: &str) -> String {
    if !v.is_empty() && !v.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
        return v.to_string();
    }
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn parse_kv(s: &str) -> Result<Vec<(String, String)>> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let err = |m: String| Err(CloneError::InvalidConninfo(m));
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let mut key = String::new();
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            key.push(chars[i]);
            i += 1;
        }
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() || chars[i] != '=' {
            return err(format!("missing \"=\" after \"{key}\""));
        }
        i += 1;
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut val = String::new();
        if i < chars.len() && chars[i] == '\'' {
            i += 1;
            let mut closed = false;
            while i < chars.len() {
                match chars[i] {
                    '\\' if i + 1 < chars.len() => {
                        val.push(chars[i + 1]);
                        i += 2;
                    }
                    '\'' => {
                        closed = true;
                        i += 1;
                        break;
                    }
                    c => {
                        val.push(c);
                        i += 1;
                    }
                }
            }
            if !closed {
                return err("unterminated quoted string".into());
            }
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    val.push(chars[i + 1]);
                    i += 2;
                } else {
                    val.push(chars[i]);
                    i += 1;
                }
            }
        }
        if key.is_empty() {
            return err("empty key".into());
        }
        out.push((key, val));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(v) => out.push(v),
                None => {
                    return Err(CloneError::InvalidConninfo(
                        "invalid percent-encoded token".into(),
                    ))
                }
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| CloneError::InvalidConninfo("percent-encoded value is not UTF-8".into()))
}

fn parse_uri(s: &str) -> Result<Vec<(String, String)>> {
    let rest = s.split_once("://").map(|x| x.1).unwrap_or_default();
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let (netloc, path) = match main.find('/') {
        Some(i) => (&main[..i], Some(&main[i + 1..])),
        None => (main, None),
    };
    let mut out = Vec::new();
    let (userinfo, hostlist) = match netloc.rfind('@') {
        Some(i) => (Some(&netloc[..i]), &netloc[i + 1..]),
        None => (None, netloc),
    };
    if let Some(ui) = userinfo {
        let (u, p) = match ui.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (ui, None),
        };
        if !u.is_empty() {
            out.push(("user".into(), percent_decode(u)?));
        }
        if let Some(p) = p {
            out.push(("password".into(), percent_decode(p)?));
        }
    }
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    for part in hostlist.split(',').filter(|p| !p.is_empty()) {
        let (h, p) = if let Some(stripped) = part.strip_prefix('[') {
            let end = stripped.find(']').ok_or_else(|| {
                CloneError::InvalidConninfo("unterminated IPv6 address in URI".into())
            })?;
            let host = &stripped[..end];
            let after = &stripped[end + 1..];
            (
                host.to_string(),
                after.strip_prefix(':').map(|x| x.to_string()),
            )
        } else {
            match part.rsplit_once(':') {
                Some((h, p)) => (percent_decode(h)?, Some(p.to_string())),
                None => (percent_decode(part)?, None),
            }
        };
        hosts.push(h);
        ports.push(p.unwrap_or_default());
    }
    if !hosts.is_empty() && hosts.iter().any(|h| !h.is_empty()) {
        out.push(("host".into(), hosts.join(",")));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        out.push(("port".into(), ports.join(",")));
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        out.push(("dbname".into(), percent_decode(db)?));
    }
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                CloneError::InvalidConninfo(format!(
                    "missing \"=\" in URI query parameter \"{pair}\""
                ))
            })?;
            let k = percent_decode(k)?;
            // libpq accepts ssl=true as sslmode=require in URIs
            if k == "ssl" && v == "true" {
                out.push(("sslmode".into(), "require".into()));
            } else {
                out.push((k, percent_decode(v)?));
            }
        }
    }
    Ok(out)
}

/// What the local server says about itself, used to fill in a conninfo that
/// names no host, port or user: such a conninfo means "this server".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDefaults {
    pub socket_dir: Option<String>,
    pub port: u16,
    pub user: String,
}

/// Fill the gaps of `info` the way a DBA expects inside a server: no host means
/// the local server's own socket, no port its own port, no user the caller.
pub fn with_local_defaults(info: &ConnInfo, local: &LocalDefaults) -> ConnInfo {
    let mut out = info.clone();
    if info.get("host").is_none_or(|h| h.is_empty()) && info.get("hostaddr").is_none() {
        match &local.socket_dir {
            Some(dir) => out.set("host", dir),
            None => out.set("host", "127.0.0.1"),
        }
        if info.get("port").is_none() {
            out.set("port", &local.port.to_string());
        }
    }
    if info.get("user").is_none_or(|u| u.is_empty()) {
        out.set("user", &local.user);
    }
    if info.get("dbname").is_none_or(|d| d.is_empty()) {
        let user = out.get("user").unwrap_or_default().to_string();
        out.set("dbname", &user);
    }
    out
}

/// Settings every source session gets, so text COPY is lossless and parsable
/// by the target whatever the source's own defaults are.
pub fn session_setup_sql(client_encoding: &str, lock_timeout: &str) -> String {
    let settings = [
        ("search_path", ""),
        // The filter check reads string literals as the server does with
        // this setting on; a server defaulting to off must not disagree.
        ("standard_conforming_strings", "on"),
        ("client_encoding", client_encoding),
        ("DateStyle", "ISO"),
        ("IntervalStyle", "postgres"),
        ("extra_float_digits", "3"),
        ("bytea_output", "hex"),
        ("TimeZone", "UTC"),
        ("statement_timeout", "0"),
        ("idle_in_transaction_session_timeout", "0"),
        ("lock_timeout", lock_timeout),
        // The catalog queries are large expressions over many rows: with
        // JIT on (PostgreSQL's default) compiling one cost 1.4 s, three
        // times its run, at 20 000 tables. COPY gains nothing worth that.
        ("jit", "off"),
    ];
    settings
        .iter()
        .map(|(k, v)| format!("SET {k} = {};", quote_literal(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn key_value_with_quotes_and_escapes() {
        let c = ConnInfo::parse("host=10.0.0.5 dbname = 'my db' user=cl\\ oner password='it\\'s'")
            .unwrap();
        assert_eq!(c.get("host"), Some("10.0.0.5"));
        assert_eq!(c.get("dbname"), Some("my db"));
        assert_eq!(c.get("user"), Some("cl oner"));
        assert_eq!(c.password(), Some("it's"));
    }

    #[test]
    fn uri_forms() {
        let c = ConnInfo::parse(
            "postgresql://bob:p%40ss@db.example:6543/prod?sslmode=require&application_name=x",
        )
        .unwrap();
        assert_eq!(c.get("user"), Some("bob"));
        assert_eq!(c.password(), Some("p@ss"));
        assert_eq!(c.get("host"), Some("db.example"));
        assert_eq!(c.ports().unwrap(), vec![6543]);
        assert_eq!(c.get("dbname"), Some("prod"));
        assert_eq!(c.ssl_mode(), SslMode::Require);
        let c = ConnInfo::parse("postgres://[::1]:5433,127.0.0.1:5434/db").unwrap();
        assert_eq!(c.hosts(), vec!["::1", "127.0.0.1"]);
        assert_eq!(c.ports().unwrap(), vec![5433, 5434]);
        let c = ConnInfo::parse("postgresql:///db?host=%2Ftmp").unwrap();
        assert_eq!(c.get("host"), Some("/tmp"));
    }

    #[test]
    fn redaction_never_shows_password() {
        for s in [
            "host=h password=hunter2 user=u",
            "postgresql://u:hunter2@h/db",
        ] {
            let c = ConnInfo::parse(s).unwrap();
            let r = c.redacted();
            assert!(!r.contains("hunter2"), "{r}");
            assert!(r.contains("password=********"), "{r}");
        }
    }

    #[test]
    fn bad_strings_are_named() {
        let e = |s: &str| ConnInfo::parse(s).unwrap_err().to_string();
        assert!(e("host").contains("missing \"=\""));
        assert!(e("host='abc").contains("unterminated"));
        assert!(e("service=prod").contains("\"service\" is not supported"));
        assert!(e("passfile=/x").contains("\"passfile\""));
        assert!(e("colour=blue").contains("invalid connection option \"colour\""));
        assert!(e("port=abc").contains("invalid port"));
        assert!(e("port=0").contains("invalid port"));
        assert!(e("connect_timeout=soon").contains("connect_timeout"));
        assert!(e("sslmode=maybe").contains("sslmode"));
        assert!(e("sslmode=verify-full host=h").contains("sslrootcert"));
        assert!(e("hostaddr=not-an-ip").contains("hostaddr"));
        assert!(e("postgresql://u:p%zz@h/db").contains("percent"));
        // a password never appears, even in a parse error
        assert!(!e("password=hunter2 bogus=1").contains("hunter2"));
    }

    #[test]
    fn last_setting_wins_and_set_replaces() {
        let mut c = ConnInfo::parse("dbname=a dbname=b").unwrap();
        assert_eq!(c.get("dbname"), Some("b"));
        c.set("dbname", "c");
        assert_eq!(c.get("dbname"), Some("c"));
        assert_eq!(c.params.iter().filter(|(k, _)| k == "dbname").count(), 1);
    }

    fn local() -> LocalDefaults {
        LocalDefaults {
            socket_dir: Some("/var/run/postgresql".into()),
            port: 5433,
            user: "alice".into(),
        }
    }

    #[test]
    fn empty_conninfo_means_this_server() {
        let c = with_local_defaults(&ConnInfo::parse("dbname=prod").unwrap(), &local());
        assert_eq!(c.get("host"), Some("/var/run/postgresql"));
        assert_eq!(c.get("port"), Some("5433"));
        assert_eq!(c.get("user"), Some("alice"));
        assert_eq!(c.get("dbname"), Some("prod"));
        let c = with_local_defaults(&ConnInfo::parse("").unwrap(), &local());
        assert_eq!(c.get("dbname"), Some("alice"));
    }

    #[test]
    fn explicit_host_is_kept() {
        let c = with_local_defaults(
            &ConnInfo::parse("host=10.1.2.3 user=bob").unwrap(),
            &local(),
        );
        assert_eq!(c.get("host"), Some("10.1.2.3"));
        assert_eq!(c.get("port"), None);
        assert_eq!(c.get("user"), Some("bob"));
    }

    #[test]
    fn setup_sql_quotes_values() {
        for (text, local) in [
            ("host=/tmp port=5432", true),
            ("host=127.0.0.1,localhost", true),
            ("host=::1", true),
            ("dbname=x", true),
            ("host=10.0.0.5", false),
            ("host=localhost,db.example.com", false),
        ] {
            assert_eq!(ConnInfo::parse(text).unwrap().is_local(), local, "{text}");
        }
        let s = session_setup_sql("UTF8", "1min");
        assert!(s.contains("SET search_path = '';"));
        assert!(s.contains("SET client_encoding = 'UTF8';"));
        assert!(s.contains("SET lock_timeout = '1min';"));
        assert!(s.contains("SET jit = 'off';"));
        let s = session_setup_sql("x'; DROP", "0");
        assert!(s.contains("'x''; DROP'"));
    }
}
