//! Edits to a chunk on its way through: the dual-write hook's replacements, removals and
//! insertions, applied when the chunk is forwarded.

use bytes::{Bytes, BytesMut};

use crate::wire::frame::Frame;

/// A replacement of `start..end` of a chunk by `bytes` (an insertion when `start == end`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Edit {
    /// Where the replaced range starts in the chunk.
    pub(super) start: usize,
    /// Where it ends (may be past the chunk: the rest of the message is dropped elsewhere).
    pub(super) end: usize,
    /// What goes in its place.
    pub(super) bytes: Bytes,
}

impl Edit {
    /// Replaces the message of `frame`, up to `end`, by `bytes`.
    pub(super) fn replace(frame: &Frame, end: usize, bytes: BytesMut) -> Edit {
        Edit {
            start: frame.start,
            end,
            bytes: bytes.freeze(),
        }
    }

    /// Removes the message of `frame`.
    pub(super) fn remove(frame: &Frame) -> Edit {
        Edit::remove_range(frame.start, frame.end())
    }

    /// Removes `start..end`.
    pub(super) fn remove_range(start: usize, end: usize) -> Edit {
        Edit {
            start,
            end,
            bytes: Bytes::new(),
        }
    }

    /// Inserts `bytes` at `at`.
    pub(super) fn insert(at: usize, bytes: Bytes) -> Edit {
        Edit {
            start: at,
            end: at,
            bytes,
        }
    }

    /// Whether this edit removes exactly the message of `frame`.
    pub(super) fn removes(&self, frame: &Frame) -> bool {
        self.start == frame.start && self.end == frame.end() && self.bytes.is_empty()
    }
}

/// `chunk` with `edits` applied (and drained). Out-of-order or out-of-range edits are clamped,
/// never a panic.
pub(super) fn apply_edits(chunk: &[u8], edits: &mut Vec<Edit>) -> BytesMut {
    let extra: usize = edits.iter().map(|e| e.bytes.len()).sum();
    let mut out = BytesMut::with_capacity(chunk.len() + extra);
    let mut at = 0;
    for edit in edits.drain(..) {
        let start = edit.start.clamp(at, chunk.len());
        out.extend_from_slice(&chunk[at..start]);
        out.extend_from_slice(&edit.bytes);
        at = edit.end.clamp(start, chunk.len());
    }
    out.extend_from_slice(&chunk[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_in_order_and_out_of_range_ones_are_clamped() {
        let chunk = b"0123456789";
        let mut edits = vec![
            Edit::insert(0, Bytes::from_static(b"<")),
            Edit::remove_range(2, 4),
            Edit {
                start: 6,
                end: 7,
                bytes: Bytes::from_static(b"six"),
            },
            // Out of order and past the end: clamped, never a panic.
            Edit::remove_range(5, 50),
        ];
        assert_eq!(&apply_edits(chunk, &mut edits)[..], b"<0145six");
        assert!(edits.is_empty(), "applied edits are drained");
    }
}
