//! Message boundaries in a byte stream, without collecting whole messages.
//!
//! After startup every message is `type:u8 length:i32 body`, where the length counts itself but not
//! the type byte. [`FrameScanner`] walks a chunk of bytes as it arrives, reports each message
//! header it reaches, and remembers how much of a message that runs past the end of the chunk is
//! still to come, so the caller can forward the chunk at once and only ever keeps an incomplete
//! header (at most 4 bytes) — or, for the few messages it must read whole, that message — for the
//! next read.

/// The size of a message header: type byte plus length.
pub const HEADER_LEN: usize = 5;

/// A message header found in a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// The message type byte.
    pub tag: u8,
    /// Offset of the type byte in the chunk.
    pub start: usize,
    /// Size of the whole message on the wire (type byte + length field + body).
    pub wire_len: usize,
}

impl Frame {
    /// Offset just past the message (may be beyond the chunk).
    pub fn end(&self) -> usize {
        self.start + self.wire_len
    }

    /// The whole message, if it is complete in `chunk`.
    pub fn bytes<'a>(&self, chunk: &'a [u8]) -> Option<&'a [u8]> {
        chunk.get(self.start..self.end())
    }

    /// The body (after the length field), if the message is complete in `chunk`.
    pub fn body<'a>(&self, chunk: &'a [u8]) -> Option<&'a [u8]> {
        chunk.get(self.start + HEADER_LEN..self.end())
    }
}

/// A header that cannot be right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length field is smaller than 4 (it counts itself) or larger than allowed.
    #[error("invalid message length {length} for message type {tag:?}")]
    Length {
        /// The type byte, as a char for messages.
        tag: char,
        /// The length field.
        length: i64,
    },
}

/// Walks message boundaries across chunks.
#[derive(Debug, Default, Clone)]
pub struct FrameScanner {
    /// Bytes of the current message that have not arrived yet.
    pending: usize,
}

impl FrameScanner {
    /// A scanner at a message boundary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the scanner is between messages (nothing of a started message is still to come).
    pub fn at_boundary(&self) -> bool {
        self.pending == 0
    }

    /// Finds the next message header in `chunk` starting at `*pos`.
    ///
    /// First skips what remains of a message streamed earlier. Returns `Ok(None)` when the chunk is
    /// used up, or when it ends inside a header: then `*pos` is left at the start of that partial
    /// header, which the caller keeps for the next read. The returned frame is *not* consumed:
    /// call [`FrameScanner::pass`] to stream it, or set `*pos = frame.end()` after handling it whole
    /// (or leave `*pos` at `frame.start` to keep it for later).
    pub fn next_frame(
        &mut self,
        chunk: &[u8],
        pos: &mut usize,
        max_len: usize,
    ) -> Result<Option<Frame>, FrameError> {
        if self.pending > 0 {
            let available = chunk.len().saturating_sub(*pos);
            let skip = self.pending.min(available);
            self.pending -= skip;
            *pos += skip;
            if self.pending > 0 {
                return Ok(None);
            }
        }
        let Some(header) = chunk.get(*pos..*pos + HEADER_LEN) else {
            return Ok(None);
        };
        let tag = header[0];
        let length = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        if length < 4 || length as usize > max_len {
            return Err(FrameError::Length {
                tag: tag as char,
                length: length.into(),
            });
        }
        Ok(Some(Frame {
            tag,
            start: *pos,
            wire_len: 1 + length as usize,
        }))
    }

    /// Streams `frame`: consumes the part of it that is in the chunk and remembers the rest.
    pub fn pass(&mut self, frame: &Frame, chunk_len: usize, pos: &mut usize) {
        if frame.end() <= chunk_len {
            *pos = frame.end();
        } else {
            self.pending = frame.end() - chunk_len;
            *pos = chunk_len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    /// Feeds `stream` in chunks of the given sizes and returns the tags seen, streaming everything.
    fn scan_in_chunks(
        stream: &[u8],
        sizes: &mut dyn Iterator<Item = usize>,
    ) -> Result<Vec<u8>, FrameError> {
        let mut scanner = FrameScanner::new();
        let mut buffer: Vec<u8> = Vec::new();
        let mut offset = 0;
        let mut tags = Vec::new();
        while offset < stream.len() {
            let n = sizes.next().unwrap_or(1).max(1).min(stream.len() - offset);
            buffer.extend_from_slice(&stream[offset..offset + n]);
            offset += n;
            let mut pos = 0;
            while let Some(frame) = scanner.next_frame(&buffer, &mut pos, 1 << 30)? {
                tags.push(frame.tag);
                scanner.pass(&frame, buffer.len(), &mut pos);
            }
            buffer.drain(..pos);
            assert!(
                buffer.len() < HEADER_LEN,
                "only a partial header is ever kept"
            );
        }
        Ok(tags)
    }

    #[test]
    fn finds_every_boundary_whatever_the_chunking() {
        let mut stream = Vec::new();
        stream.extend(msg(b'T', b"row description"));
        stream.extend(msg(b'D', &vec![7u8; 100_000]));
        stream.extend(msg(b'C', b"SELECT 1\0"));
        stream.extend(msg(b'Z', b"I"));
        for size in [1, 2, 3, 4, 5, 7, 64, 4096, 1 << 20] {
            let tags = scan_in_chunks(&stream, &mut std::iter::repeat(size)).unwrap();
            assert_eq!(tags, b"TDCZ", "chunk size {size}");
        }
    }

    #[test]
    fn whole_messages_can_be_read() {
        let stream = [msg(b'Z', b"T"), msg(b'Z', b"I")].concat();
        let mut scanner = FrameScanner::new();
        let mut pos = 0;
        let first = scanner.next_frame(&stream, &mut pos, 100).unwrap().unwrap();
        assert_eq!(first.body(&stream), Some(&b"T"[..]));
        pos = first.end();
        let second = scanner.next_frame(&stream, &mut pos, 100).unwrap().unwrap();
        assert_eq!(second.bytes(&stream), Some(&stream[6..]));
        // An incomplete message has no bytes yet.
        assert_eq!(second.bytes(&stream[..8]), None);
    }

    #[test]
    fn rejects_impossible_lengths() {
        let mut scanner = FrameScanner::new();
        let mut pos = 0;
        assert!(scanner
            .next_frame(&[b'Q', 0, 0, 0, 3], &mut pos, 100)
            .is_err());
        assert!(scanner
            .next_frame(&[b'Q', 0xff, 0xff, 0xff, 0xff], &mut pos, 100)
            .is_err());
        assert!(scanner
            .next_frame(&[b'Q', 0, 0, 1, 0], &mut pos, 100)
            .is_err());
        assert!(scanner
            .next_frame(&[b'Q', 0, 0, 0, 4], &mut pos, 100)
            .is_ok());
    }

    /// Property: random bytes in random chunkings never panic and never lose track of position.
    #[test]
    fn random_input_never_panics() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let len = (next() % 300) as usize;
            let mut stream: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Make plausible small lengths common, so the scanner goes deep into the input.
            for i in (1..stream.len()).step_by(7) {
                if next() % 2 == 0 {
                    stream[i] = 0;
                }
            }
            let sizes: Vec<usize> = (0..len + 1).map(|_| (next() % 17) as usize).collect();
            let _ = scan_in_chunks(&stream, &mut sizes.into_iter());
        }
    }
}
