//! A watch on the bytes the source server sends, below the driver.
//!
//! Two things cannot be learnt from the driver's API, and both matter for a
//! server we do not trust:
//! - whether the server asked for the password at all (a `trust` line lends
//!   the server's identity to whoever connects; dblink and postgres_fdw
//!   refuse such a connection for a non-superuser, and so do we);
//! - how large a message the server announces: the driver reserves a buffer
//!   of the announced size before the bytes arrive, so one header claiming a
//!   gigabyte would make the backend allocate a gigabyte.
//!
//! `FrameWatch` follows the message framing of the protocol (pure, unit
//! tested); `Watched` wraps a stream with it; `WatchedTls` wraps the TLS
//! layer so the watch sees the protocol in clear text.

use pgclone_core::wire::FrameWatch;
pub use pgclone_core::wire::Observed;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};

/// A stream whose traffic a `FrameWatch` follows. Several layers (the socket,
/// then the TLS session on it) share one `Observed` through `shared`.
pub struct Watched<S> {
    inner: S,
    watch: FrameWatch,
    shared: Arc<Mutex<Observed>>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, tls_layer: bool, shared: Arc<Mutex<Observed>>) -> Watched<S> {
        Watched {
            inner,
            watch: FrameWatch::new(tls_layer),
            shared,
        }
    }

    fn publish(&self) {
        if self.watch.is_opaque() {
            return; // the TLS layer above reports for this session
        }
        if let Ok(mut o) = self.shared.lock() {
            *o = self.watch.observed.clone();
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let me = &mut *self;
        match Pin::new(&mut me.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let checked = me.watch.server_sent(&buf.filled()[before..]);
                me.publish();
                match checked {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(why) => {
                        // The driver never sees the header it would size a buffer by.
                        buf.set_filled(before);
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why)))
                    }
                }
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        match Pin::new(&mut me.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                me.watch.client_wrote(&buf[..n]);
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: TlsStream + Unpin> TlsStream for Watched<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

/// The TLS connector of a session, returning a watched TLS stream.
pub struct WatchedTls<T> {
    pub inner: T,
    pub shared: Arc<Mutex<Observed>>,
}

impl<S, T> TlsConnect<S> for WatchedTls<T>
where
    T: TlsConnect<S> + 'static,
    T::Future: Send + 'static,
    T::Stream: Send + 'static,
{
    type Stream = Watched<T::Stream>;
    type Error = T::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, Self::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let shared = self.shared;
        let fut = self.inner.connect(stream);
        Box::pin(async move { fut.await.map(|s| Watched::new(s, true, shared)) })
    }
}
