//! Whole messages at the start of a buffer: how the link reads both its sides.

use super::link::LinkError;

/// Largest message the link holds whole (PostgreSQL's own limit for a message is 1 GB).
const MAX_MESSAGE: usize = 1 << 30;

/// The type and length of the whole message at the start of `buf`, if it is all there.
pub fn next_message(buf: &[u8]) -> Result<Option<(u8, usize)>, LinkError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let declared = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if declared < 4 || declared as usize > MAX_MESSAGE {
        return Err(LinkError::BackendProtocol("invalid message length"));
    }
    let len = declared as usize + 1;
    Ok((buf.len() >= len).then_some((buf[0], len)))
}

/// Whether `buf` holds a whole message (or an invalid length, which its reader reports).
pub fn has_whole_message(buf: &[u8]) -> bool {
    matches!(next_message(buf), Ok(Some(_)) | Err(_))
}
