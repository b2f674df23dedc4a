//! The stream Pingora's TLS acceptor takes ([`Transport`]), and the stream
//! traits other than reading and writing, passed straight through
//! (`pass_through!`, also used by the guarded stream).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::{SslDigest, TlsRef};
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Pingora's `Stream` is a boxed trait object, which its TLS acceptor cannot take:
/// this hands the same stream over as a concrete type.
#[derive(Debug)]
pub(super) struct Transport(pub(super) Stream);

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Transport {
    async fn shutdown(&mut self) {
        self.0.shutdown().await;
    }
}

/// The stream traits other than reading and writing pass straight through.
macro_rules! pass_through {
    ($t:ty, $inner:tt) => {
        impl UniqueID for $t {
            fn id(&self) -> UniqueIDType {
                self.$inner.id()
            }
        }
        impl Ssl for $t {
            fn get_ssl(&self) -> Option<&TlsRef> {
                self.$inner.get_ssl()
            }
            fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
                self.$inner.get_ssl_digest()
            }
            fn selected_alpn_proto(&self) -> Option<ALPN> {
                self.$inner.selected_alpn_proto()
            }
        }
        impl GetTimingDigest for $t {
            fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
                self.$inner.get_timing_digest()
            }
            fn get_read_pending_time(&self) -> Duration {
                self.$inner.get_read_pending_time()
            }
            fn get_write_pending_time(&self) -> Duration {
                self.$inner.get_write_pending_time()
            }
        }
        impl GetProxyDigest for $t {
            fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
                self.$inner.get_proxy_digest()
            }
            fn set_proxy_digest(&mut self, digest: ProxyDigest) {
                self.$inner.set_proxy_digest(digest)
            }
        }
        impl GetSocketDigest for $t {
            fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
                self.$inner.get_socket_digest()
            }
            fn set_socket_digest(&mut self, digest: SocketDigest) {
                self.$inner.set_socket_digest(digest)
            }
        }
        #[async_trait]
        impl Peek for $t {
            async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
                self.$inner.try_peek(buf).await
            }
        }
    };
}

pub(super) use pass_through;

pass_through!(Transport, 0);
