//! The message framing of the server's side of the PostgreSQL protocol, as
//! far as pgclone needs to follow it below the driver: whether the server
//! asked for a password before it accepted the session, and whether a
//! message announces more bytes than any server sends. Pure; the stream
//! that feeds it lives with the connection code.

/// Authentication requests count as "the server asked for a password".
const AUTH_OK: u32 = 0;
const AUTH_CLEARTEXT: u32 = 3;
const AUTH_MD5: u32 = 5;
const AUTH_SASL: u32 = 10;

/// Before authentication the server only sends small messages; PostgreSQL's
/// own limit for an authentication token is 64 kB.
const MAX_PRE_AUTH: u32 = 65536;
/// Messages that carry data (row descriptions, rows, COPY data, function
/// results) may be as large as a server can build one: 1 GB (MaxAllocSize),
/// plus the length word.
const MAX_DATA_MESSAGE: u32 = 0x3fff_ffff + 4;
/// Errors and notices carry text (a detail may quote a value): 1 MB is far
/// beyond what PostgreSQL writes. A notification's payload is under 8000 bytes.
const MAX_TEXT_MESSAGE: u32 = 1 << 20;
const MAX_NOTIFICATION: u32 = 1 << 16;
/// Every other message is small; libpq draws the same line at 30000 bytes.
const MAX_CONTROL_MESSAGE: u32 = 30000;

/// The SSLRequest packet: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// What the watch learnt about the session.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The server asked for a password (cleartext, MD5 or SCRAM) before it
    /// accepted the session.
    pub password_requested: bool,
    pub authenticated: bool,
    /// Why the watch cut the connection, when it did.
    pub violation: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The client has not written yet (it may open with an SSLRequest).
    Start,
    /// The client asked for TLS; the next byte is 'S' or 'N'.
    SslReply,
    /// TLS was agreed: this layer only sees cipher text from here on.
    Opaque,
    /// Reading the 5-byte header of a message.
    Header,
    /// Inside a message body; `auth` collects an 'R' message's code.
    Body,
}

/// Follows the framing of the server's side of the protocol.
#[derive(Debug, Clone)]
pub struct FrameWatch {
    state: State,
    /// Bytes the client has written so far at the start (to spot SSLRequest).
    client_start: Vec<u8>,
    header: [u8; 5],
    have: usize,
    kind: u8,
    remaining: u64,
    auth: Vec<u8>,
    pub observed: Observed,
}

impl FrameWatch {
    /// A watch for the plain socket (`tls_layer` false) or for the clear
    /// text inside TLS (`tls_layer` true: no SSLRequest is seen there).
    pub fn new(tls_layer: bool) -> FrameWatch {
        FrameWatch {
            state: if tls_layer {
                State::Header
            } else {
                State::Start
            },
            client_start: Vec::new(),
            header: [0; 5],
            have: 0,
            kind: 0,
            remaining: 0,
            auth: Vec::new(),
            observed: Observed::default(),
        }
    }

    /// The client wrote `bytes`.
    pub fn client_wrote(&mut self, bytes: &[u8]) {
        if self.state != State::Start {
            return;
        }
        let need = SSL_REQUEST.len() - self.client_start.len();
        self.client_start
            .extend_from_slice(&bytes[..need.min(bytes.len())]);
        if self.client_start.len() < SSL_REQUEST.len() {
            return;
        }
        self.state = if self.client_start == SSL_REQUEST {
            State::SslReply
        } else {
            State::Header
        };
    }

    /// TLS was agreed: this layer sees cipher text only.
    pub fn is_opaque(&self) -> bool {
        self.state == State::Opaque
    }

    fn limit(&self, kind: u8) -> u32 {
        if !self.observed.authenticated {
            return MAX_PRE_AUTH;
        }
        match kind {
            b'T' | b'D' | b'd' | b'V' => MAX_DATA_MESSAGE,
            b'E' | b'N' => MAX_TEXT_MESSAGE,
            b'A' => MAX_NOTIFICATION,
            _ => MAX_CONTROL_MESSAGE,
        }
    }

    /// The server sent `bytes`. Err: the session must end (the reason is
    /// kept in `observed.violation` too).
    pub fn server_sent(&mut self, bytes: &[u8]) -> Result<(), String> {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Opaque => return Ok(()),
                // A server that answers before the client spoke is not one we
                // follow; frame it from the first byte anyway.
                State::Start | State::Header => {
                    self.state = State::Header;
                    let take = (5 - self.have).min(bytes.len() - i);
                    self.header[self.have..self.have + take].copy_from_slice(&bytes[i..i + take]);
                    self.have += take;
                    i += take;
                    if self.have == 5 {
                        self.have = 0;
                        self.start_message()?;
                    }
                }
                State::SslReply => {
                    self.state = if bytes[i] == b'S' {
                        State::Opaque
                    } else {
                        State::Header
                    };
                    i += 1;
                }
                State::Body => {
                    let take = (self.remaining.min((bytes.len() - i) as u64)) as usize;
                    if self.kind == b'R' && self.auth.len() < 4 {
                        let want = (4 - self.auth.len()).min(take);
                        self.auth.extend_from_slice(&bytes[i..i + want]);
                        if self.auth.len() == 4 {
                            self.auth_code();
                        }
                    }
                    self.remaining -= take as u64;
                    i += take;
                    if self.remaining == 0 {
                        self.state = State::Header;
                    }
                }
            }
        }
        Ok(())
    }

    fn start_message(&mut self) -> Result<(), String> {
        let kind = self.header[0];
        let len = u32::from_be_bytes([
            self.header[1],
            self.header[2],
            self.header[3],
            self.header[4],
        ]);
        let limit = self.limit(kind);
        if len < 4 || len > limit {
            let why = format!(
                "the source server sent a message ({}) of {len} bytes, more than the {limit} pgclone accepts{}",
                printable(kind),
                if self.observed.authenticated {
                    ""
                } else {
                    " before authentication"
                }
            );
            self.observed.violation = Some(why.clone());
            return Err(why);
        }
        self.kind = kind;
        self.auth.clear();
        self.remaining = len as u64 - 4;
        self.state = if self.remaining == 0 {
            State::Header
        } else {
            State::Body
        };
        Ok(())
    }

    fn auth_code(&mut self) {
        let code = u32::from_be_bytes([self.auth[0], self.auth[1], self.auth[2], self.auth[3]]);
        match code {
            AUTH_CLEARTEXT | AUTH_MD5 | AUTH_SASL if !self.observed.authenticated => {
                self.observed.password_requested = true;
            }
            AUTH_OK => self.observed.authenticated = true,
            _ => {}
        }
    }
}

fn printable(kind: u8) -> String {
    if kind.is_ascii_graphic() {
        format!("'{}'", kind as char)
    } else {
        format!("byte {kind}")
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() as u32 + 4).to_be_bytes()));
        m.extend_from_slice(body);
        m
    }

    fn startup(w: &mut FrameWatch) {
        // a StartupMessage: length, protocol 3.0, no parameters
        w.client_wrote(&[0, 0, 0, 9, 0, 3, 0, 0, 0]);
    }

    #[test]
    fn scram_then_ok_counts_as_password() {
        let mut w = FrameWatch::new(false);
        startup(&mut w);
        let mut bytes = msg(b'R', &[0, 0, 0, 10, b'S', b'C', 0, 0]);
        bytes.extend(msg(b'R', &[0, 0, 0, 0]));
        bytes.extend(msg(b'Z', b"I"));
        // delivered one byte at a time: framing must not depend on chunking
        for b in &bytes {
            w.server_sent(std::slice::from_ref(b)).unwrap();
        }
        assert!(w.observed.password_requested);
        assert!(w.observed.authenticated);
    }

    #[test]
    fn trust_is_seen_as_no_password() {
        let mut w = FrameWatch::new(false);
        startup(&mut w);
        w.server_sent(&msg(b'R', &[0, 0, 0, 0])).unwrap();
        assert!(!w.observed.password_requested);
        assert!(w.observed.authenticated);
        // a password request after authentication changes nothing
        w.server_sent(&msg(b'R', &[0, 0, 0, 3])).unwrap();
        assert!(!w.observed.password_requested);
    }

    #[test]
    fn oversized_messages_are_refused() {
        let mut w = FrameWatch::new(false);
        startup(&mut w);
        let mut huge = vec![b'R'];
        huge.extend_from_slice(&0x3fff_0000u32.to_be_bytes());
        let e = w.server_sent(&huge).unwrap_err();
        assert!(e.contains("before authentication"), "{e}");
        assert!(w.observed.violation.is_some());

        let mut w = FrameWatch::new(false);
        startup(&mut w);
        w.server_sent(&msg(b'R', &[0, 0, 0, 0])).unwrap();
        // a data row may be large, a control message may not
        let mut row = vec![b'D'];
        row.extend_from_slice(&(64u32 << 20).to_be_bytes());
        assert!(w.clone().server_sent(&row).is_ok());
        let mut ctl = vec![b'Z'];
        ctl.extend_from_slice(&100_000u32.to_be_bytes());
        assert!(w.clone().server_sent(&ctl).is_err());
        let mut bad = vec![b'D'];
        bad.extend_from_slice(&2u32.to_be_bytes());
        assert!(w.server_sent(&bad).is_err());
    }

    #[test]
    fn tls_layer_below_goes_opaque() {
        let mut w = FrameWatch::new(false);
        w.client_wrote(&SSL_REQUEST[..3]);
        w.client_wrote(&SSL_REQUEST[3..]);
        w.server_sent(b"S").unwrap();
        // cipher text, whatever it looks like, is not framed here
        w.server_sent(&[b'R', 0xff, 0xff, 0xff, 0xff]).unwrap();
        assert_eq!(w.observed.violation, None);
    }

    #[test]
    fn plain_after_refused_tls() {
        let mut w = FrameWatch::new(false);
        w.client_wrote(&SSL_REQUEST);
        let mut bytes = b"N".to_vec();
        bytes.extend(msg(b'R', &[0, 0, 0, 5, 1, 2, 3, 4]));
        w.server_sent(&bytes).unwrap();
        assert!(w.observed.password_requested);
    }
}
