//! HTTP/2 control-frame floods, counted from the connection's decrypted bytes.
//!
//! The `h2` crate bounds rapid resets, CONTINUATION and HPACK abuse, but counts
//! neither WINDOW_UPDATE nor PRIORITY frames (nor PINGs and SETTINGS past its
//! pending-ACK bounds, empty DATA frames, frames of unknown types): a client can
//! make the gateway parse millions of them a second. Pingora owns the HTTP/2 connection, so the connection layer
//! (`edge/guarded.rs`) feeds every byte the client sends after the preface to a
//! [`FrameCounter`], which reads only frame headers and skips payloads.
//!
//! Budget: [`BASE_PER_SECOND`] frames that make no request progress per second,
//! plus one per KiB the gateway wrote to the client in that second (a client
//! downloading fast opens its windows often). Past it the connection is closed.

use std::time::{Duration, Instant};

/// No-progress frames a connection may send per second on top of its share of
/// the data it received. Browsers send a few dozen.
pub const BASE_PER_SECOND: u64 = 1_000;

/// Bytes written to the client that earn one more frame in the same second.
const BYTES_PER_FRAME: u64 = 1_024;

const FRAME_HEADER: usize = 9;

/// PRIORITY, SETTINGS, PING, WINDOW_UPDATE (RFC 9113 6), an empty DATA frame that
/// does not end its stream, and frame types HTTP/2 does not define (ignored by
/// the receiver, but parsed all the same).
fn is_no_progress(kind: u8, len: u64, flags: u8) -> bool {
    const END_STREAM: u8 = 0x1;
    match kind {
        0x2 | 0x4 | 0x6 | 0x8 => true,
        0x0 => len == 0 && flags & END_STREAM == 0,
        0x1 | 0x3 | 0x5 | 0x7 | 0x9 => false,
        _ => true,
    }
}

/// A connection that sent more no-progress frames than its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flood;

impl std::fmt::Display for Flood {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP/2 control-frame flood")
    }
}

impl std::error::Error for Flood {}

/// Where a client's frame stream is, and this second's count.
#[derive(Debug)]
pub struct FrameCounter {
    /// The frame header being read, and how much of it has arrived.
    header: [u8; FRAME_HEADER],
    have: usize,
    /// Payload bytes of the current frame still to skip.
    skip: u64,
    window_start: Instant,
    frames: u64,
    written: u64,
}

impl FrameCounter {
    pub fn new(now: Instant) -> FrameCounter {
        FrameCounter {
            header: [0; FRAME_HEADER],
            have: 0,
            skip: 0,
            window_start: now,
            frames: 0,
            written: 0,
        }
    }

    fn roll(&mut self, now: Instant) {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.frames = 0;
            self.written = 0;
        }
    }

    /// Bytes the gateway wrote to the client.
    pub fn wrote(&mut self, n: usize, now: Instant) {
        self.roll(now);
        self.written += n as u64;
    }

    /// Bytes the client sent, after the connection preface.
    pub fn feed(&mut self, mut bytes: &[u8], now: Instant) -> Result<(), Flood> {
        self.roll(now);
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len() as u64);
                self.skip -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            let take = (FRAME_HEADER - self.have).min(bytes.len());
            self.header[self.have..self.have + take].copy_from_slice(&bytes[..take]);
            self.have += take;
            bytes = &bytes[take..];
            if self.have < FRAME_HEADER {
                break;
            }
            self.have = 0;
            let h = self.header;
            self.skip = u64::from(h[0]) << 16 | u64::from(h[1]) << 8 | u64::from(h[2]);
            if is_no_progress(h[3], self.skip, h[4]) {
                self.frames += 1;
                if self.frames > BASE_PER_SECOND + self.written / BYTES_PER_FRAME {
                    return Err(Flood);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            0,
            0,
            0,
            0,
            1,
        ];
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn frames_are_counted_across_reads_and_payloads_skipped() {
        let now = Instant::now();
        let mut c = FrameCounter::new(now);
        // A DATA frame whose payload looks like WINDOW_UPDATE headers is skipped.
        let fake = frame(0x8, &[0, 0, 0, 1]).repeat(2_000);
        let mut stream = frame(0x0, &fake);
        stream.extend(frame(0x1, b"headers"));
        for byte in stream.chunks(7) {
            c.feed(byte, now).unwrap();
        }
        let update = frame(0x8, &[0, 0, 0, 1]);
        for _ in 0..BASE_PER_SECOND {
            c.feed(&update, now).unwrap();
        }
        assert_eq!(c.feed(&update, now), Err(Flood));
    }

    #[test]
    fn the_budget_grows_with_data_written_and_renews_each_second() {
        let now = Instant::now();
        let mut c = FrameCounter::new(now);
        c.wrote(100 * 1_024, now);
        let ping = frame(0x6, &[0; 8]);
        for _ in 0..BASE_PER_SECOND + 100 {
            c.feed(&ping, now).unwrap();
        }
        assert_eq!(c.feed(&ping, now), Err(Flood));
        let later = now + Duration::from_secs(1);
        c.feed(&ping, later).unwrap();
        // Frames that carry requests never count.
        for _ in 0..10 * BASE_PER_SECOND {
            c.feed(&frame(0x1, b"h"), later).unwrap();
            c.feed(&frame(0x0, b"data"), later).unwrap();
        }
        // Empty DATA frames that end nothing and unknown types do.
        let mut c = FrameCounter::new(later);
        for kind in [0x0, 0xa, 0xff] {
            for _ in 0..BASE_PER_SECOND / 3 {
                c.feed(&frame(kind, b""), later).unwrap();
            }
        }
        c.feed(&frame(0x0, b""), later).unwrap();
        assert_eq!(c.feed(&frame(0x0, b""), later), Err(Flood));
    }
}
