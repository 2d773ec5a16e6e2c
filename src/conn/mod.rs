//! Connections to the source server.
//!
//! The source is reached with tokio-postgres on a current-thread runtime owned
//! by the calling backend: no extra threads, and every wait is cut into short
//! slices so that a cancel or terminate of the backend is noticed at once.
//! Host names are resolved here, on the backend's own thread, so the driver
//! never needs its blocking resolver pool.

pub mod wire;

pub use pgclone_core::conninfo;
pub use pgclone_core::conninfo::{session_setup_sql, with_local_defaults, LocalDefaults};

use futures_util::StreamExt;
use pgclone_core::conninfo::{ConnInfo, SslMode};
use pgclone_core::error::{CloneError, Result};
use pgclone_core::sqltext::quote_literal;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::{IpAddr, ToSocketAddrs};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, CopyOutStream, Row, SimpleQueryMessage};

pub const DEFAULT_CONNECT_TIMEOUT_S: u64 = 10;

pub struct SourceConn {
    rt: tokio::runtime::Runtime,
    client: Client,
    secret: Option<String>,
    pub server_version_num: i32,
    pub redacted: String,
    /// The server asked for the password before it let us in.
    pub password_used: bool,
    /// This server itself (database_create's own sessions), not the source:
    /// errors say so.
    local: bool,
    /// A request is in flight: if this connection is dropped now (an error,
    /// a cancel of the backend), the server is told to stop it.
    busy: Rc<Cell<bool>>,
    cancel: CancelRoute,
    id: u64,
    /// What the watch below the driver saw: why it cut the session, if it did.
    watch: Arc<Mutex<wire::Observed>>,
    /// The session's client_encoding now: the driver reads rows in UTF8, a
    /// COPY sends in the target database's encoding; switched only when
    /// they differ, and only when needed.
    encoding: RefCell<String>,
}

/// How to reach the server again to cancel what it runs for us.
#[derive(Clone)]
struct CancelRoute {
    token: tokio_postgres::CancelToken,
    addr: Addr,
    tls: Option<(openssl::ssl::SslConnector, bool, String)>,
}

impl CancelRoute {
    /// Ask the server to stop the running statement, within two seconds,
    /// without taking interrupts (this runs while an ERROR unwinds, or while
    /// the process exits).
    fn send(&self, rt: &tokio::runtime::Runtime) {
        let fut = async {
            let socket = open_socket(&self.addr, None).await.ok()?;
            match &self.tls {
                Some((connector, verify, host)) => {
                    let tls = session_tls(connector, *verify, host).ok()?;
                    self.token.cancel_query_raw(socket, tls).await.ok()
                }
                None => self
                    .token
                    .cancel_query_raw(socket, tokio_postgres::NoTls)
                    .await
                    .ok(),
            }
        };
        let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(2), fut).await });
    }
}

/// An open session: its id, its busy flag, and how to cancel its work.
type OpenSession = (u64, Rc<Cell<bool>>, CancelRoute);

thread_local! {
    /// This process's open source sessions, for the exit callback: a process
    /// terminated (FATAL) unwinds nothing, so no Drop would cancel their work.
    static OPEN: RefCell<Vec<OpenSession>> = const { RefCell::new(Vec::new()) };
    static EXIT_HOOK: Cell<bool> = const { Cell::new(false) };
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn cancel_open_sessions(
    _code: std::ffi::c_int,
    _arg: pgrx::pg_sys::Datum,
) {
    let open = OPEN.with(|o| std::mem::take(&mut *o.borrow_mut()));
    let busy: Vec<CancelRoute> = open
        .into_iter()
        .filter(|(_, b, _)| b.get())
        .map(|(_, _, r)| r)
        .collect();
    if busy.is_empty() {
        return;
    }
    if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        for r in &busy {
            r.send(&rt);
        }
    }
}

fn register(route: &CancelRoute, busy: &Rc<Cell<bool>>) -> u64 {
    if !EXIT_HOOK.with(|h| h.replace(true)) {
        // SAFETY: registers a callback with no argument, once per process.
        unsafe {
            pgrx::pg_sys::on_proc_exit(
                Some(cancel_open_sessions),
                pgrx::pg_sys::Datum::from(0usize),
            )
        };
    }
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    OPEN.with(|o| o.borrow_mut().push((id, busy.clone(), route.clone())));
    id
}

#[derive(Debug, Clone)]
enum Addr {
    Tcp(std::net::SocketAddr),
    Unix(std::path::PathBuf),
}

/// A socket of either kind, so one connection path serves both.
enum Socket {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

impl tokio::io::AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// TLS as the conninfo asks: the connector, and whether the host name is
/// verified (verify-full).
fn tls_connector(info: &ConnInfo) -> Result<(openssl::ssl::SslConnector, bool)> {
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
    Ok((b.build(), mode == SslMode::VerifyFull))
}

/// The TLS connector for one session with host `domain`, watched by `shared`.
fn session_tls(
    connector: &openssl::ssl::SslConnector,
    verify_host: bool,
    domain: &str,
) -> Result<postgres_openssl::TlsConnector> {
    let mut cfg = connector
        .configure()
        .map_err(|e| CloneError::Connect(format!("TLS setup (session): {e}")))?;
    cfg.set_verify_hostname(verify_host);
    Ok(postgres_openssl::TlsConnector::new(cfg, domain))
}

fn parse_secs(info: &ConnInfo, key: &str) -> Option<Duration> {
    info.get(key)
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Where to connect, in the order libpq tries: (host name for TLS, address).
/// Host names are resolved here, on the calling thread.
fn candidates(info: &ConnInfo) -> Result<Vec<(String, Addr)>> {
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
            _ => ports.get(i).copied().unwrap_or(5432),
        }
    };
    let mut out = Vec::new();
    if hosts.is_empty() {
        for (i, a) in addrs.iter().enumerate() {
            out.push((a.to_string(), Addr::Tcp((*a, port_for(i)).into())));
        }
    }
    for (i, h) in hosts.iter().enumerate() {
        if h.starts_with('/') {
            let path = std::path::Path::new(h).join(format!(".s.PGSQL.{}", port_for(i)));
            out.push((String::new(), Addr::Unix(path)));
            continue;
        }
        let ip = match addrs.get(i) {
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
        out.push((h.clone(), Addr::Tcp((ip, port_for(i)).into())));
    }
    if out.is_empty() {
        return Err(CloneError::InvalidConninfo("no host to connect to".into()));
    }
    if info.get("load_balance_hosts") == Some("random") {
        use rand::seq::SliceRandom;
        out.shuffle(&mut rand::thread_rng());
    }
    Ok(out)
}

/// The driver's configuration: who we are and what we ask for. The socket
/// is opened by `open_socket`, so the driver only speaks the protocol.
fn driver_config(info: &ConnInfo) -> tokio_postgres::Config {
    let mut cfg = tokio_postgres::Config::new();
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
    match info.get("channel_binding") {
        Some("disable") => {
            cfg.channel_binding(tokio_postgres::config::ChannelBinding::Disable);
        }
        Some("require") => {
            cfg.channel_binding(tokio_postgres::config::ChannelBinding::Require);
        }
        _ => {}
    }
    cfg
}

fn connect_timeout(info: &ConnInfo) -> Duration {
    parse_secs(info, "connect_timeout")
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_S))
}

/// Open the socket, with keepalives far tighter than the kernel's two hours
/// (on by default), so a source that vanishes mid-COPY is noticed within
/// about a minute.
async fn open_socket(addr: &Addr, info: Option<&ConnInfo>) -> std::io::Result<Socket> {
    match addr {
        Addr::Unix(p) => Ok(Socket::Unix(tokio::net::UnixStream::connect(p).await?)),
        Addr::Tcp(a) => {
            let s = tokio::net::TcpStream::connect(a).await?;
            s.set_nodelay(true)?;
            if let Some(info) = info {
                let sock = socket2::SockRef::from(&s);
                if info.get("keepalives") != Some("0") {
                    let ka = socket2::TcpKeepalive::new()
                        .with_time(
                            parse_secs(info, "keepalives_idle").unwrap_or(Duration::from_secs(30)),
                        )
                        .with_interval(
                            parse_secs(info, "keepalives_interval")
                                .unwrap_or(Duration::from_secs(10)),
                        )
                        .with_retries(
                            info.get("keepalives_count")
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(3),
                        );
                    sock.set_tcp_keepalive(&ka)?;
                }
                if let Some(ms) = info
                    .get("tcp_user_timeout")
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    sock.set_tcp_user_timeout(Some(Duration::from_millis(ms)))?;
                }
            }
            Ok(Socket::Tcp(s))
        }
    }
}

type Session = (
    Client,
    Pin<Box<dyn Future<Output = std::result::Result<(), tokio_postgres::Error>> + Send>>,
);

/// One attempt at one address: socket, TLS, authentication, all watched.
async fn connect_one(
    cfg: &tokio_postgres::Config,
    info: &ConnInfo,
    host: &str,
    addr: &Addr,
    tls: &(openssl::ssl::SslConnector, bool),
    shared: Arc<Mutex<wire::Observed>>,
) -> Result<Session> {
    let socket = open_socket(addr, Some(info))
        .await
        .map_err(|e| CloneError::Connect(format!("{}: {e}", describe(addr))))?;
    let stream = wire::Watched::new(socket, false, shared.clone());
    let connector = wire::WatchedTls {
        inner: session_tls(&tls.0, tls.1, host)?,
        shared: shared.clone(),
    };
    let (client, connection) = cfg.connect_raw(stream, connector).await.map_err(|e| {
        let seen = shared.lock().map(|o| o.violation.clone()).unwrap_or(None);
        match seen {
            Some(why) => CloneError::Connect(why),
            None => connect_error(e),
        }
    })?;
    let connection: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(connection);
    Ok((client, connection))
}

fn describe(addr: &Addr) -> String {
    match addr {
        Addr::Tcp(a) => format!("connection to {a} failed"),
        Addr::Unix(p) => format!("connection to socket \"{}\" failed", p.display()),
    }
}

impl SourceConn {
    /// Connect, with one deadline over the whole handshake (TCP, TLS and
    /// authentication) of each host tried, then apply the session settings.
    pub fn connect(info: &ConnInfo, setup_sql: &str) -> Result<SourceConn> {
        Self::open(info, setup_sql, false)
    }

    /// A session on this server itself (database_create): same path, but its
    /// errors are labelled as the local server's.
    pub fn connect_local(info: &ConnInfo, setup_sql: &str) -> Result<SourceConn> {
        Self::open(info, setup_sql, true)
    }

    fn open(info: &ConnInfo, setup_sql: &str, local: bool) -> Result<SourceConn> {
        let secret = info.password().map(str::to_string);
        let scrub = |e: CloneError| e.scrub(secret.as_deref());
        let targets = candidates(info).map_err(scrub)?;
        let tls = tls_connector(info).map_err(scrub)?;
        let cfg = driver_config(info);
        let timeout = connect_timeout(info);
        let read_write = info.get("target_session_attrs") == Some("read-write");
        let mut last = None;
        for (host, addr) in &targets {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
                .map_err(|e| {
                    CloneError::Internal(format!("could not start the I/O runtime: {e}"))
                })?;
            let shared = Arc::new(Mutex::new(wire::Observed::default()));
            let deadline = std::time::Instant::now() + timeout;
            let attempt = wait_on(
                &rt,
                connect_one(&cfg, info, host, addr, &tls, shared.clone()),
                Some(deadline),
            );
            let (client, connection) = match attempt {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => {
                    last = Some(scrub(e));
                    continue;
                }
                Err(()) => {
                    last = Some(CloneError::Connect(format!(
                        "timeout expired after {} s (connect_timeout)",
                        timeout.as_secs()
                    )));
                    continue;
                }
            };
            rt.spawn(async move {
                let _ = connection.await;
            });
            let observed = shared.lock().map(|o| o.clone()).unwrap_or_default();
            let route = CancelRoute {
                token: client.cancel_token(),
                addr: addr.clone(),
                tls: (info.ssl_mode() != SslMode::Disable)
                    .then(|| (tls.0.clone(), tls.1, host.clone())),
            };
            let busy = Rc::new(Cell::new(false));
            let id = register(&route, &busy);
            let mut conn = SourceConn {
                rt,
                client,
                secret: secret.clone(),
                server_version_num: 0,
                redacted: info.redacted(),
                password_used: observed.password_requested,
                local,
                busy,
                cancel: route,
                id,
                watch: shared,
                encoding: RefCell::new("UTF8".into()),
            };
            if read_write {
                let ro: String = conn
                    .query_one("SELECT current_setting('transaction_read_only')", &[])?
                    .get(0);
                if ro == "on" {
                    last = Some(CloneError::Connect(format!(
                        "{}: the server does not allow writes (target_session_attrs=read-write)",
                        describe(addr)
                    )));
                    continue;
                }
            }
            conn.batch(setup_sql)?;
            let v: String = conn
                .query_one("SELECT current_setting('server_version_num')", &[])?
                .get(0);
            conn.server_version_num = v.parse().unwrap_or(0);
            return Ok(conn);
        }
        Err(last.unwrap_or_else(|| CloneError::Connect("no host to connect to".into())))
    }

    fn map(&self, e: tokio_postgres::Error) -> CloneError {
        if let Some(why) = self.watch.lock().ok().and_then(|o| o.violation.clone()) {
            return CloneError::Connect(why);
        }
        let e = source_error(e);
        let e = match e {
            CloneError::Source { sqlstate, message } if self.local => {
                CloneError::Local { sqlstate, message }
            }
            CloneError::Connect(m) if self.local => CloneError::Local {
                sqlstate: "08006".into(),
                message: m,
            },
            other => other,
        };
        e.scrub(self.secret.as_deref())
    }

    /// Drive a future to completion on our runtime, checking for a cancel of
    /// the backend before it starts and between short slices. If the backend
    /// is cancelled meanwhile, the request stays marked busy and `Drop` asks
    /// the server to stop it.
    pub fn wait<F: Future>(&self, fut: F) -> F::Output {
        self.busy.set(true);
        let out = match wait_on(&self.rt, fut, None) {
            Ok(v) => v,
            Err(()) => unreachable!("no deadline was set"),
        };
        self.busy.set(false);
        out
    }

    pub fn batch(&self, sql: &str) -> Result<()> {
        self.wait(self.client.batch_execute(sql))
            .map_err(|e| self.map(e))
    }

    /// Speak `encoding` from now on (one round trip, when it changes).
    fn speak(&self, encoding: &str) -> Result<()> {
        if self.encoding.borrow().as_str() == encoding {
            return Ok(());
        }
        self.batch(&format!(
            "SET client_encoding = {}",
            quote_literal(encoding)
        ))?;
        *self.encoding.borrow_mut() = encoding.to_string();
        Ok(())
    }

    pub fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.speak("UTF8")?;
        self.wait(self.client.query(sql, params))
            .map_err(|e| self.map(e))
    }

    /// Several queries sent at once: the source runs them back to back while
    /// `each` handles the rows of the earlier ones here, in order. The
    /// session counts as busy until the last has been read, so a failure in
    /// `each` leaves the rest to be cancelled with the session.
    pub fn query_pipelined(
        &self,
        queries: &[(&str, &[&(dyn ToSql + Sync)])],
        mut each: impl FnMut(usize, Vec<Row>) -> Result<()>,
    ) -> Result<()> {
        use futures_util::stream::{FuturesOrdered, StreamExt};
        self.speak("UTF8")?;
        let mut pending: FuturesOrdered<_> = queries
            .iter()
            .map(|(sql, params)| self.client.query(*sql, params))
            .collect();
        self.busy.set(true);
        let mut i = 0;
        while let Ok(Some(rows)) = wait_on(&self.rt, pending.next(), None) {
            each(i, rows.map_err(|e| self.map(e))?)?;
            i += 1;
        }
        self.busy.set(false);
        Ok(())
    }

    pub fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        self.speak("UTF8")?;
        self.wait(self.client.query_one(sql, params))
            .map_err(|e| self.map(e))
    }

    pub fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        self.speak("UTF8")?;
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
        self.speak(encoding)?;
        let stream = self
            .wait(self.client.copy_out(sql))
            .map_err(|e| filter_fault(self.map(e), filtered))?;
        // The COPY runs until its last row is read.
        self.busy.set(true);
        Ok(CopyReader {
            conn: self,
            stream: Box::pin(stream),
            cur: bytes::Bytes::new(),
            done: false,
            filtered,
            bytes: 0,
        })
    }

    /// Send a simple-protocol request (one or more statements) now and read
    /// its results later: the server works on it while this backend does
    /// other work. `Pending::pump` lets the driver read what has arrived.
    pub fn send_simple(&self, sql: String) -> Pending<'_> {
        let client = &self.client;
        let mut fut: Pin<Box<dyn Future<Output = _> + '_>> =
            Box::pin(async move { client.simple_query(&sql).await });
        self.busy.set(true);
        // Poll until the request is written: the driver task runs only
        // while the runtime is driven.
        let done = self
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_millis(2), &mut fut).await })
            .ok();
        Pending {
            conn: self,
            fut,
            done,
        }
    }

    /// Ask the server to stop the running statement (used when we give up
    /// on a COPY).
    pub fn cancel(&self) {
        self.cancel.send(&self.rt);
    }
}

impl Drop for SourceConn {
    fn drop(&mut self) {
        // A statement still running for us (the backend was cancelled, or
        // failed mid-COPY) would go on holding its snapshot and locks until
        // it next wrote to the closed socket: stop it now.
        if self.busy.get() {
            self.cancel();
        }
        let id = self.id;
        OPEN.with(|o| o.borrow_mut().retain(|(i, _, _)| *i != id));
    }
}

type SimpleResult = std::result::Result<Vec<SimpleQueryMessage>, tokio_postgres::Error>;

/// A request sent with `send_simple`, not yet read.
pub struct Pending<'a> {
    conn: &'a SourceConn,
    fut: Pin<Box<dyn Future<Output = SimpleResult> + 'a>>,
    done: Option<SimpleResult>,
}

impl Pending<'_> {
    /// Read what the server has sent so far, without waiting for more.
    pub fn pump(&mut self) {
        if self.done.is_none() {
            let fut = &mut self.fut;
            self.done = self
                .conn
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_millis(1), fut).await })
                .ok();
        }
    }

    /// Wait for the whole result: the rows of every statement, in order.
    pub fn finish(self) -> Result<Vec<Vec<tokio_postgres::SimpleQueryRow>>> {
        let Pending { conn, fut, done } = self;
        let out = match done {
            Some(v) => v,
            None => conn.wait(fut),
        };
        conn.busy.set(false);
        let mut sets = vec![Vec::new()];
        for m in out.map_err(|e| conn.map(e))? {
            match m {
                SimpleQueryMessage::Row(r) => sets.last_mut().expect("one set").push(r),
                SimpleQueryMessage::CommandComplete(_) => sets.push(Vec::new()),
                _ => {}
            }
        }
        sets.pop();
        Ok(sets)
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
                        self.conn.busy.set(false);
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
        crate::interrupts::check();
        let slice = Duration::from_millis(100);
        if let Ok(v) = rt.block_on(async { tokio::time::timeout(slice, &mut fut).await }) {
            return Ok(v);
        }
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

    #[test]
    fn driver_config_defaults() {
        let info = ConnInfo::parse("host=127.0.0.1,/tmp port=6000,6001 user=u").unwrap();
        assert_eq!(
            connect_timeout(&info),
            Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_S)
        );
        let c = candidates(&info).unwrap();
        assert!(matches!(&c[0].1, Addr::Tcp(a) if a.port() == 6000));
        assert!(matches!(&c[1].1, Addr::Unix(p) if p.ends_with(".s.PGSQL.6001")));
        assert_eq!(driver_config(&info).get_user(), Some("u"));
        let t = ConnInfo::parse("host=127.0.0.1 connect_timeout=3").unwrap();
        assert_eq!(connect_timeout(&t), Duration::from_secs(3));
    }
}
