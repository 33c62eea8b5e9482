//! What the backend→client scan changes in the answers while the hook expects something: tags
//! restored, refusals in place of the markers' errors, injected answers dropped.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use duet_shadow::rewrite::TagVerb;

use super::decide::{refusal_error, refusal_of};
use super::{DualWrite, Expect, HookContext};
use crate::session::edit::Edit;
use crate::wire::backend;
use crate::wire::frame::Frame;
use crate::wire::messages::{
    CommandComplete, ErrorField, ErrorResponse, Message, ParameterDescription, RowDescription,
};

/// SQLSTATE and message of the error a statement prepared before a schema change gets.
const CACHED_PLAN_CODE: &[u8] = b"0A000";
const CACHED_PLAN_MESSAGE: &[u8] = b"cached plan must not change result type";

/// What the downstream scan does with one backend message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BackendHook {
    /// Stream it as usual.
    Pass,
    /// It must be read whole and is not: keep it for the next read.
    Incomplete,
    /// Handled whole (perhaps replaced through an edit).
    Done,
}

impl DualWrite {
    /// Whether the answer being received belongs to an injected request.
    pub(crate) fn swallowing(&self, answered: u64) -> bool {
        matches!(self.front(answered), Some(Expect::Swallow))
    }

    /// One backend message other than ReadyForQuery, while the hook expects something or
    /// watches errors.
    pub(crate) fn backend_frame(
        &mut self,
        cx: &HookContext<'_>,
        answered: u64,
        frame: &Frame,
        chunk: &[u8],
        edits: &mut Vec<Edit>,
    ) -> BackendHook {
        if frame.tag == backend::PARAMETER_DESCRIPTION && !self.describes.is_empty() {
            let Some(body) = frame.body(chunk) else {
                return BackendHook::Incomplete;
            };
            self.parameters_described(ParameterDescription::decode(body).ok().as_ref());
            // Injected requests never describe: this answer is the client's, forwarded as is.
            return BackendHook::Pass;
        }
        if matches!(frame.tag, backend::ROW_DESCRIPTION | backend::NO_DATA)
            && self.rows_of.is_some()
        {
            if frame.tag == backend::NO_DATA {
                self.rows_described(None);
            } else {
                let Some(body) = frame.body(chunk) else {
                    return BackendHook::Incomplete;
                };
                self.rows_described(RowDescription::decode(body).ok().as_ref());
            }
            return BackendHook::Pass;
        }
        if frame.tag == backend::ERROR_RESPONSE {
            // The server skips the rest of the failed batch, Describes included: their answers
            // will not come, so the pending names can no longer be matched.
            self.describes.clear();
            self.rows_of = None;
        }
        let seq = answered;
        let front = self.front(seq);
        let swallow = matches!(front, Some(Expect::Swallow));
        let interesting = swallow
            || (front.is_some()
                && matches!(
                    frame.tag,
                    backend::COMMAND_COMPLETE
                        | backend::EMPTY_QUERY_RESPONSE
                        | backend::PORTAL_SUSPENDED
                        | backend::ERROR_RESPONSE
                ))
            || (frame.tag == backend::ERROR_RESPONSE && !self.prepared.is_empty());
        if !interesting {
            return BackendHook::Pass;
        }
        let Some(body) = frame.body(chunk) else {
            return BackendHook::Incomplete;
        };
        let error = (frame.tag == backend::ERROR_RESPONSE)
            .then(|| ErrorResponse::decode(body).ok())
            .flatten();
        if swallow {
            // 42P05: the fallback Parse of a statement whose first re-prepare succeeded.
            if frame.tag == backend::ERROR_RESPONSE
                && !error.as_ref().is_some_and(is_duplicate_statement_error)
            {
                tracing::warn!(
                    session = cx.session,
                    error = %String::from_utf8_lossy(body).replace('\0', " "),
                    "preparing a statement again failed; its next use gets the server's error"
                );
            }
            edits.push(Edit::remove(frame));
            return BackendHook::Done;
        }
        if frame.tag == backend::ERROR_RESPONSE {
            if !self.prepared.is_empty() && error.as_ref().is_some_and(is_cached_plan_error) {
                // The next transaction prepares every remembered statement again.
                self.stale = true;
            }
            // An error ends the query string: a held COPY tag will not be reported.
            self.held_copy = None;
            match self.front(seq) {
                Some(Expect::Refused(cached)) => {
                    if let Some(refusal) = refusal_of(cached) {
                        edits.push(Edit::replace(frame, frame.end(), refusal_error(refusal)));
                    }
                    self.finish(seq);
                }
                Some(Expect::HoldCopy { staging, table }) => {
                    let renamed = error
                        .as_ref()
                        .and_then(|error| copy_error_renamed(error, staging, table));
                    if let Some(renamed) = renamed {
                        edits.push(Edit::replace(frame, frame.end(), renamed));
                    }
                    self.finish(seq);
                }
                Some(_) => self.finish(seq),
                None => {}
            }
            return BackendHook::Done;
        }
        if !matches!(
            self.front(seq),
            Some(Expect::Complete(_) | Expect::Drop | Expect::HoldCopy { .. } | Expect::CopyTag)
        ) {
            return BackendHook::Done;
        }
        let Some((_, expect)) = self.expect.pop_front() else {
            return BackendHook::Done;
        };
        if frame.tag != backend::COMMAND_COMPLETE {
            return BackendHook::Done;
        }
        let complete = CommandComplete::decode(body).ok();
        match expect {
            Expect::Complete(verb) => {
                let patched = complete
                    .as_ref()
                    .and_then(|complete| patched_command_complete(complete, verb));
                if let Some(patched) = patched {
                    edits.push(Edit::replace(frame, frame.end(), patched));
                }
            }
            Expect::Drop => edits.push(Edit::remove(frame)),
            Expect::HoldCopy { .. } => {
                self.held_copy = complete.map(|held| Bytes::copy_from_slice(held.tag));
                edits.push(Edit::remove(frame));
            }
            Expect::CopyTag => {
                if let Some(held) = self.held_copy.take() {
                    let tag = CommandComplete { tag: &held }.to_bytes();
                    edits.push(Edit::replace(frame, frame.end(), tag));
                }
            }
            Expect::Refused(_) | Expect::Swallow => {}
        }
        BackendHook::Done
    }
}

/// The CommandComplete the client expects for a rewritten statement, or `None` to keep the
/// server's (no verb to restore, or a tag without a count).
pub(super) fn patched_command_complete(
    complete: &CommandComplete<'_>,
    verb: Option<TagVerb>,
) -> Option<BytesMut> {
    let restored = verb?.restore(complete.tag_str()?)?;
    Some(CommandComplete::new(&restored).to_bytes())
}

/// The ErrorResponse `error` with its context line `COPY <staging>, …` naming `table` instead, or
/// `None` when it has no such line.
pub(super) fn copy_error_renamed(
    error: &ErrorResponse<'_>,
    staging: &str,
    table: &str,
) -> Option<BytesMut> {
    let from = format!("COPY {staging},");
    let to = format!("COPY {table},");
    let values: Vec<Cow<'_, [u8]>> = error
        .fields()
        .map(|field| match field.value.strip_prefix(from.as_bytes()) {
            Some(tail) if field.kind == b'W' => Cow::Owned([to.as_bytes(), tail].concat()),
            _ => Cow::Borrowed(field.value),
        })
        .collect();
    if !values.iter().any(|value| matches!(value, Cow::Owned(_))) {
        return None;
    }
    let fields: Vec<ErrorField<'_>> = error
        .fields()
        .zip(&values)
        .map(|(field, value)| ErrorField {
            kind: field.kind,
            value,
        })
        .collect();
    let mut body = Vec::with_capacity(error.body_len() + table.len());
    Some(ErrorResponse::encode_fields(&fields, &mut body).to_bytes())
}

/// Whether an ErrorResponse is "cached plan must not change result type".
pub(super) fn is_cached_plan_error(error: &ErrorResponse<'_>) -> bool {
    error.sqlstate() == Some(CACHED_PLAN_CODE) && error.message() == Some(CACHED_PLAN_MESSAGE)
}

/// Whether an ErrorResponse is "prepared statement … already exists" (42P05).
pub(super) fn is_duplicate_statement_error(error: &ErrorResponse<'_>) -> bool {
    error.sqlstate() == Some(b"42P05")
}
