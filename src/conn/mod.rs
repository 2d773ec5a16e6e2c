//! Connections to the source server.
//!
//! The source is reached with tokio-postgres on a current-thread runtime owned
//! by the calling backend: no extra threads, and every wait is cut into short
//! slices so that a cancel or terminate of the backend is noticed at once.
//! Host names are resolved here, on the backend's own thread, so the driver
//! never needs its blocking resolver pool.

pub mod conninfo;

use crate::error::{CloneError, Result};
use crate::sqltext::quote_literal;
use conninfo::{ConnInfo, SslMode};
use futures_util::StreamExt;
use std::future::Future;
use std::net::{IpAddr, ToSocketAddrs};
use std::pin::Pin;
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, CopyOutStream, Row};

pub const DEFAULT_CONNECT_TIMEOUT_S: u64 = 10;

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
        ("client_encoding", client_encoding),
        ("DateStyle", "ISO"),
        ("IntervalStyle", "postgres"),
        ("extra_float_digits", "3"),
        ("bytea_output", "hex"),
        ("TimeZone", "UTC"),
        ("statement_timeout", "0"),
        ("idle_in_transaction_session_timeout", "0"),
        ("lock_timeout", lock_timeout),
    ];
    settings
        .iter()
        .map(|(k, v)| format!("SET {k} = {};", quote_literal(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

pub struct SourceConn {
    rt: tokio::runtime::Runtime,
    client: Client,
    secret: Option<String>,
    pub server_version_num: i32,
    pub redacted: String,
}

fn tls_connector(info: &ConnInfo) -> Result<postgres_openssl::MakeTlsConnector> {
    use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
    let tls_err = |what: &str, e: openssl::error::ErrorStack| {
        CloneError::Connect(format!("TLS setup ({what}): {e}"))
    };
    let mut b =
        SslConnector::builder(SslMethod::tls_client()).map_err(|e| tls_err("context", e))?;
    let mode = info.ssl_mode();
    let root = info.get("sslrootcert");
    // libpq verifies the chain for verify-ca/verify-full, and for require when a
    // root certificate is named; otherwise TLS only encrypts.
    let verify = matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) || root.is_some();
    if verify {
        match root {
            Some("system") => b
                .set_default_verify_paths()
                .map_err(|e| tls_err("system roots", e))?,
            Some(path) => b.set_ca_file(path).map_err(|e| {
                CloneError::Connect(format!(
                    "could not read root certificate file \"{path}\": {e}"
                ))
            })?,
            None => {}
        }
        b.set_verify(SslVerifyMode::PEER);
    } else {
        b.set_verify(SslVerifyMode::NONE);
    }
    if let Some(cert) = info.get("sslcert") {
        b.set_certificate_chain_file(cert).map_err(|e| {
            CloneError::Connect(format!("could not read certificate file \"{cert}\": {e}"))
        })?;
        let key = info.get("sslkey").unwrap_or(cert);
        b.set_private_key_file(key, SslFiletype::PEM).map_err(|e| {
            CloneError::Connect(format!("could not read private key file \"{key}\": {e}"))
        })?;
    }
    let mut c = postgres_openssl::MakeTlsConnector::new(b.build());
    let full = mode == SslMode::VerifyFull;
    c.set_callback(move |cfg, _domain| {
        cfg.set_verify_hostname(full);
        Ok(())
    });
    Ok(c)
}

fn parse_secs(info: &ConnInfo, key: &str) -> Option<Duration> {
    info.get(key)
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Build the driver's configuration. Host names are resolved here, on the
/// calling thread.
fn driver_config(info: &ConnInfo) -> Result<(tokio_postgres::Config, Duration)> {
    let mut cfg = tokio_postgres::Config::new();
    let hosts = info.hosts();
    let ports = info.ports()?;
    let addrs: Vec<IpAddr> = info
        .get("hostaddr")
        .map(|s| s.split(',').filter_map(|a| a.trim().parse().ok()).collect())
        .unwrap_or_default();
    let port_for = |i: usize| -> u16 {
        match ports.len() {
            0 => 5432,
            1 => ports[0],
            _ => ports[i],
        }
    };
    if hosts.is_empty() {
        for (i, a) in addrs.iter().enumerate() {
            cfg.host(a.to_string());
            cfg.hostaddr(*a);
            cfg.port(port_for(i));
        }
    }
    for (i, h) in hosts.iter().enumerate() {
        if h.starts_with('/') {
            cfg.host_path(h);
        } else {
            cfg.host(h);
            let addr = match addrs.get(i) {
                Some(a) => *a,
                None => match h.parse::<IpAddr>() {
                    Ok(a) => a,
                    Err(_) => (h.as_str(), port_for(i))
                        .to_socket_addrs()
                        .map_err(|e| {
                            CloneError::Connect(format!(
                                "could not translate host name \"{h}\" to address: {e}"
                            ))
                        })?
                        .next()
                        .map(|sa| sa.ip())
                        .ok_or_else(|| {
                            CloneError::Connect(format!("host name \"{h}\" has no address"))
                        })?,
                },
            };
            cfg.hostaddr(addr);
        }
        cfg.port(port_for(i));
    }
    if let Some(u) = info.get("user") {
        cfg.user(u);
    }
    if let Some(p) = info.get("password") {
        cfg.password(p);
    }
    if let Some(d) = info.get("dbname") {
        cfg.dbname(d);
    }
    if let Some(o) = info.get("options") {
        cfg.options(o);
    }
    let app = info
        .get("application_name")
        .or(info.get("fallback_application_name"))
        .unwrap_or("pgclone");
    cfg.application_name(app);
    cfg.ssl_mode(match info.ssl_mode() {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    let timeout = parse_secs(info, "connect_timeout")
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_S));
    cfg.connect_timeout(timeout);
    // Keepalives on by default and far tighter than the kernel's two hours, so a
    // source that vanishes mid-COPY is noticed within about a minute.
    cfg.keepalives(info.get("keepalives") != Some("0"));
    cfg.keepalives_idle(parse_secs(info, "keepalives_idle").unwrap_or(Duration::from_secs(30)));
    cfg.keepalives_interval(
        parse_secs(info, "keepalives_interval").unwrap_or(Duration::from_secs(10)),
    );
    cfg.keepalives_retries(
        info.get("keepalives_count")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3),
    );
    if let Some(ms) = info
        .get("tcp_user_timeout")
        .and_then(|v| v.parse::<u64>().ok())
    {
        cfg.tcp_user_timeout(Duration::from_millis(ms));
    }
    if info.get("target_session_attrs") == Some("read-write") {
        cfg.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
    }
    match info.get("channel_binding") {
        Some("disable") => {
            cfg.channel_binding(tokio_postgres::config::ChannelBinding::Disable);
        }
        Some("require") => {
            cfg.channel_binding(tokio_postgres::config::ChannelBinding::Require);
        }
        _ => {}
    }
    if info.get("load_balance_hosts") == Some("random") {
        cfg.load_balance_hosts(tokio_postgres::config::LoadBalanceHosts::Random);
    }
    Ok((cfg, timeout))
}

impl SourceConn {
    /// Connect, with one deadline over the whole handshake (TCP, TLS and
    /// authentication), then apply the session settings.
    pub fn connect(info: &ConnInfo, setup_sql: &str) -> Result<SourceConn> {
        let secret = info.password().map(str::to_string);
        let scrub = |e: CloneError| e.scrub(secret.as_deref());
        let (cfg, timeout) = driver_config(info).map_err(scrub)?;
        let tls = tls_connector(info).map_err(scrub)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| CloneError::Internal(format!("could not start the I/O runtime: {e}")))?;
        let deadline = std::time::Instant::now() + timeout;
        let fut = cfg.connect(tls);
        let (client, connection) = match wait_on(&rt, fut, Some(deadline)) {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(scrub(connect_error(e))),
            Err(()) => {
                return Err(CloneError::Connect(format!(
                    "timeout expired after {} s (connect_timeout)",
                    timeout.as_secs()
                )))
            }
        };
        rt.spawn(async move {
            let _ = connection.await;
        });
        let mut conn = SourceConn {
            rt,
            client,
            secret,
            server_version_num: 0,
            redacted: info.redacted(),
        };
        conn.batch(setup_sql)?;
        let v: String = conn
            .query_one("SELECT current_setting('server_version_num')", &[])?
            .get(0);
        conn.server_version_num = v.parse().unwrap_or(0);
        Ok(conn)
    }

    fn map(&self, e: tokio_postgres::Error) -> CloneError {
        source_error(e).scrub(self.secret.as_deref())
    }

    /// Drive a future to completion on our runtime, checking for a cancel of the
    /// backend between short slices.
    pub fn wait<F: Future>(&self, fut: F) -> F::Output {
        match wait_on(&self.rt, fut, None) {
            Ok(v) => v,
            Err(()) => unreachable!("no deadline was set"),
        }
    }

    pub fn batch(&self, sql: &str) -> Result<()> {
        self.wait(self.client.batch_execute(sql))
            .map_err(|e| self.map(e))
    }

    pub fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.wait(self.client.query(sql, params))
            .map_err(|e| self.map(e))
    }

    pub fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        self.wait(self.client.query_one(sql, params))
            .map_err(|e| self.map(e))
    }

    pub fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        self.wait(self.client.query_opt(sql, params))
            .map_err(|e| self.map(e))
    }

    /// Parse a statement on the source without running it.
    pub fn prepare_only(&self, sql: &str) -> Result<()> {
        self.wait(self.client.prepare(sql))
            .map(|_| ())
            .map_err(|e| self.map(e))
    }

    /// Start a COPY TO STDOUT. With `filtered`, an error the source raises is
    /// the caller's filter at fault, and is reported as such.
    ///
    /// Text travels in `encoding`: binary COPY converts text values through
    /// each side's client_encoding, text COPY is told the encoding, so the
    /// source must send in the encoding the receiving side decodes with.
    pub fn copy_out(&self, sql: &str, filtered: bool, encoding: &str) -> Result<CopyReader<'_>> {
        self.batch(&format!(
            "SET client_encoding = {}",
            quote_literal(encoding)
        ))?;
        let stream = self
            .wait(self.client.copy_out(sql))
            .map_err(|e| filter_fault(self.map(e), filtered))?;
        Ok(CopyReader {
            conn: self,
            stream: Box::pin(stream),
            cur: bytes::Bytes::new(),
            done: false,
            filtered,
            bytes: 0,
        })
    }

    /// Ask the source to stop the running statement (used when we give up on a COPY).
    pub fn cancel(&self) {
        let token = self.client.cancel_token();
        let _ = wait_on(
            &self.rt,
            token.cancel_query(tokio_postgres::NoTls),
            Some(std::time::Instant::now() + Duration::from_secs(2)),
        );
    }
}

/// The source's COPY output, read in whatever chunks the server sends.
pub struct CopyReader<'a> {
    conn: &'a SourceConn,
    stream: Pin<Box<CopyOutStream>>,
    cur: bytes::Bytes,
    done: bool,
    filtered: bool,
    pub bytes: u64,
}

impl CopyReader<'_> {
    /// Fill `buf` with at least `min` bytes (fewer only at the end of the data).
    pub fn read(&mut self, buf: &mut [u8], min: usize) -> Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            if self.cur.is_empty() {
                if self.done || n >= min.max(1) {
                    break;
                }
                match self.conn.wait(self.stream.next()) {
                    Some(Ok(chunk)) => self.cur = chunk,
                    Some(Err(e)) => return Err(filter_fault(self.conn.map(e), self.filtered)),
                    None => {
                        self.done = true;
                        // back to what the driver itself reads
                        self.conn.batch("SET client_encoding = 'UTF8'")?;
                        break;
                    }
                }
                continue;
            }
            let take = self.cur.len().min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&self.cur[..take]);
            let _ = self.cur.split_to(take);
            n += take;
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Poll `fut` in slices of 100 ms, checking for interrupts between slices.
/// `Err(())` when the deadline passes first.
fn wait_on<F: Future>(
    rt: &tokio::runtime::Runtime,
    fut: F,
    deadline: Option<std::time::Instant>,
) -> std::result::Result<F::Output, ()> {
    let mut fut = Box::pin(fut);
    loop {
        let slice = Duration::from_millis(100);
        if let Ok(v) = rt.block_on(async { tokio::time::timeout(slice, &mut fut).await }) {
            return Ok(v);
        }
        crate::interrupts::check();
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return Err(());
        }
    }
}

/// Errors the source raises while running a caller's row filter.
pub fn filter_fault(e: CloneError, filtered: bool) -> CloneError {
    match e {
        CloneError::Source { message, .. } if filtered => CloneError::InvalidFilter(message),
        other => other,
    }
}

fn connect_error(e: tokio_postgres::Error) -> CloneError {
    match e.as_db_error() {
        Some(db) => CloneError::Source {
            sqlstate: db.code().code().to_string(),
            message: format!("could not connect: {}", db.message()),
        },
        None => CloneError::Connect(flatten_error(&e)),
    }
}

fn source_error(e: tokio_postgres::Error) -> CloneError {
    match e.as_db_error() {
        Some(db) => {
            let mut message = db.message().to_string();
            if let Some(d) = db.detail() {
                message.push_str(&format!(" ({d})"));
            }
            CloneError::Source {
                sqlstate: db.code().code().to_string(),
                message,
            }
        }
        None if e.is_closed() => {
            CloneError::Connect("the connection to the source server was lost".into())
        }
        None => CloneError::Connect(flatten_error(&e)),
    }
}

/// The driver's own message plus its causes ("error connecting to server: Connection refused").
fn flatten_error(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let m = inner.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod unit {
    use super::*;

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
        let s = session_setup_sql("UTF8", "1min");
        assert!(s.contains("SET search_path = '';"));
        assert!(s.contains("SET client_encoding = 'UTF8';"));
        assert!(s.contains("SET lock_timeout = '1min';"));
        let s = session_setup_sql("x'; DROP", "0");
        assert!(s.contains("'x''; DROP'"));
    }

    #[test]
    fn driver_config_defaults() {
        let (cfg, t) =
            driver_config(&ConnInfo::parse("host=127.0.0.1 port=6000 user=u").unwrap()).unwrap();
        assert_eq!(t, Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_S));
        assert_eq!(cfg.get_ports(), &[6000]);
        assert!(cfg.get_keepalives());
        assert_eq!(cfg.get_keepalives_idle(), Duration::from_secs(30));
        let (_, t) =
            driver_config(&ConnInfo::parse("host=127.0.0.1 connect_timeout=3").unwrap()).unwrap();
        assert_eq!(t, Duration::from_secs(3));
    }
}
