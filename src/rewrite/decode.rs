//! Streaming decoders for the content codings the nonce rewriter can undo:
//! gzip, deflate (zlib, or raw as some servers send it) and br.

use std::io::{self, Write};

use flate2::write::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

/// How much one input chunk may decode to. An upstream chunk is at most 64 KiB,
/// so this allows a 256:1 ratio, far above real HTML, and stops a decompression
/// bomb before it fills memory.
const CHUNK_OUTPUT_LIMIT: usize = 16 << 20;

/// A `Content-Encoding` the rewriter can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
    Brotli,
}

impl Coding {
    /// `None` for codings it cannot decode (and for lists of several).
    pub fn from_header(value: &[u8]) -> Option<Coding> {
        let value = std::str::from_utf8(value).ok()?.trim();
        [
            ("gzip", Coding::Gzip),
            ("x-gzip", Coding::Gzip),
            ("deflate", Coding::Deflate),
            ("br", Coding::Brotli),
        ]
        .into_iter()
        .find(|(name, _)| value.eq_ignore_ascii_case(name))
        .map(|(_, coding)| coding)
    }
}

/// Decoded bytes of the current chunk, capped.
#[derive(Debug, Default)]
struct Sink(Vec<u8>);

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.0.len() + data.len() > CHUNK_OUTPUT_LIMIT {
            return Err(io::Error::other(format!(
                "one chunk decoded to more than {CHUNK_OUTPUT_LIMIT} bytes"
            )));
        }
        self.0.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Inner {
    Gzip(MultiGzDecoder<Sink>),
    /// `deflate` before its first two bytes say whether it is zlib or raw.
    DeflateUnknown(Vec<u8>),
    Zlib(ZlibDecoder<Sink>),
    RawDeflate(DeflateDecoder<Sink>),
    Brotli(Box<brotli::DecompressorWriter<Sink>>),
}

pub struct Decoder(Inner);

impl Decoder {
    pub fn new(coding: Coding) -> Decoder {
        Decoder(match coding {
            Coding::Gzip => Inner::Gzip(MultiGzDecoder::new(Sink::default())),
            Coding::Deflate => Inner::DeflateUnknown(Vec::new()),
            Coding::Brotli => Inner::Brotli(Box::new(brotli::DecompressorWriter::new(
                Sink::default(),
                4096,
            ))),
        })
    }

    /// Decodes one chunk; returns what it decoded to so far.
    pub fn decode(&mut self, chunk: &[u8]) -> io::Result<Vec<u8>> {
        if chunk.is_empty() {
            return Ok(Vec::new());
        }
        if let Inner::DeflateUnknown(head) = &mut self.0 {
            head.extend_from_slice(chunk);
            if head.len() < 2 {
                return Ok(Vec::new());
            }
            let head = std::mem::take(head);
            self.0 = deflate_for(&head);
            return self.decode(&head);
        }
        match &mut self.0 {
            Inner::Gzip(d) => write_then_take(d, chunk, |d| d.get_mut()),
            Inner::Zlib(d) => write_then_take(d, chunk, |d| d.get_mut()),
            Inner::RawDeflate(d) => write_then_take(d, chunk, |d| d.get_mut()),
            Inner::Brotli(d) => write_then_take(d.as_mut(), chunk, |d| d.get_mut()),
            Inner::DeflateUnknown(_) => Ok(Vec::new()),
        }
    }

    /// The rest of the decoded body; an error if the encoded stream was cut short.
    pub fn finish(mut self) -> io::Result<Vec<u8>> {
        let truncated = || io::Error::new(io::ErrorKind::UnexpectedEof, "truncated stream");
        let mut out = Vec::new();
        if let Inner::DeflateUnknown(head) = &mut self.0 {
            let head = std::mem::take(head);
            if head.is_empty() {
                return Ok(out);
            }
            self.0 = deflate_for(&head);
            out = self.decode(&head)?;
        }
        let sink = match self.0 {
            Inner::Gzip(d) => d.finish()?,
            Inner::Zlib(d) => d.finish()?,
            Inner::RawDeflate(d) => d.finish()?,
            Inner::Brotli(d) => d.into_inner().map_err(|_| truncated())?,
            Inner::DeflateUnknown(_) => Sink::default(),
        };
        out.extend(sink.0);
        Ok(out)
    }
}

fn write_then_take<W: Write>(
    decoder: &mut W,
    chunk: &[u8],
    sink: impl Fn(&mut W) -> &mut Sink,
) -> io::Result<Vec<u8>> {
    decoder.write_all(chunk)?;
    decoder.flush()?;
    Ok(std::mem::take(&mut sink(decoder).0))
}

/// RFC 1950 says `deflate` is zlib (compression method 8, a header checksum
/// divisible by 31); some servers send raw deflate instead.
fn deflate_for(head: &[u8]) -> Inner {
    let zlib = match head {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => true,
    };
    if zlib {
        Inner::Zlib(ZlibDecoder::new(Sink::default()))
    } else {
        Inner::RawDeflate(DeflateDecoder::new(Sink::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;

    fn page() -> Vec<u8> {
        (0..2000)
            .flat_map(|i| format!("<p>line {i}</p>\n").into_bytes())
            .collect()
    }

    fn encode(coding: &str, data: &[u8]) -> Vec<u8> {
        match coding {
            "gzip" => {
                let mut e = GzEncoder::new(Vec::new(), Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "zlib" => {
                let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "raw" => {
                let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            _ => {
                let mut out = Vec::new();
                let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                e.write_all(data).unwrap();
                drop(e);
                out
            }
        }
    }

    /// Decodes `encoded` fed in `size`-byte chunks.
    fn decode(coding: Coding, encoded: &[u8], size: usize) -> io::Result<Vec<u8>> {
        let mut d = Decoder::new(coding);
        let mut out = Vec::new();
        for chunk in encoded.chunks(size) {
            out.extend(d.decode(chunk)?);
        }
        out.extend(d.finish()?);
        Ok(out)
    }

    #[test]
    fn every_coding_round_trips_in_any_chunking() {
        let page = page();
        for (name, coding) in [
            ("gzip", Coding::Gzip),
            ("zlib", Coding::Deflate),
            ("raw", Coding::Deflate),
            ("br", Coding::Brotli),
        ] {
            let encoded = encode(name, &page);
            for size in [1, 7, 4096, encoded.len()] {
                assert_eq!(
                    decode(coding, &encoded, size).unwrap(),
                    page,
                    "{name} {size}"
                );
            }
        }
    }

    #[test]
    fn concatenated_gzip_members_are_one_body() {
        let mut encoded = encode("gzip", b"<p>one</p>");
        encoded.extend(encode("gzip", b"<p>two</p>"));
        assert_eq!(
            decode(Coding::Gzip, &encoded, 5).unwrap(),
            b"<p>one</p><p>two</p>"
        );
    }

    #[test]
    fn truncated_and_corrupt_streams_are_errors() {
        let page = page();
        for (name, coding) in [("gzip", Coding::Gzip), ("br", Coding::Brotli)] {
            let encoded = encode(name, &page);
            assert!(
                decode(coding, &encoded[..encoded.len() / 2], 100).is_err(),
                "{name}"
            );
        }
        assert!(decode(Coding::Gzip, b"this is not gzip at all", 4).is_err());
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_chunk_limit() {
        let zeros = vec![0u8; CHUNK_OUTPUT_LIMIT + 1];
        let encoded = encode("gzip", &zeros);
        assert!(encoded.len() < 64 << 10);
        let e = decode(Coding::Gzip, &encoded, encoded.len()).unwrap_err();
        assert!(e.to_string().contains("decoded to more than"), "{e}");
    }

    #[test]
    fn header_names() {
        assert_eq!(Coding::from_header(b" GZIP "), Some(Coding::Gzip));
        assert_eq!(Coding::from_header(b"x-gzip"), Some(Coding::Gzip));
        assert_eq!(Coding::from_header(b"br"), Some(Coding::Brotli));
        assert_eq!(Coding::from_header(b"deflate"), Some(Coding::Deflate));
        assert_eq!(Coding::from_header(b"zstd"), None);
        assert_eq!(Coding::from_header(b"gzip, br"), None);
    }
}
