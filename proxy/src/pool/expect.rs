//! The answers a pooled backend connection owes, in order, and what to do with each.
//!
//! The backend answers the messages it gets in order, and after an error in an extended-protocol
//! batch it skips everything up to the Sync. duet sends a few messages of its own (a Parse the
//! client sent to another connection) and answers a few itself (a Parse the connection already
//! has, a Close of a statement duet keeps): each answer must reach the client at the position the
//! client's own message had. So every message that gets an answer is queued here, and the
//! backend's answers are matched against the queue.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::wire::backend as tag;

/// A message whose answer is owed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owed {
    /// A message the backend answers; the answers go to the client.
    Answer(Kind),
    /// A Parse duet sent for the client under `backend_name` (`client_name` is the client's own
    /// name for it, if the client sent it): if it fails or is skipped, the connection does not
    /// have it, and neither does the client.
    Parse {
        backend_name: Bytes,
        client_name: Option<Bytes>,
        /// duet's own Parse: its ParseComplete is not the client's.
        injected: bool,
    },
    /// duet answers with this message itself (ParseComplete or CloseComplete) when its turn comes.
    Synthetic(u8),
    /// duet's own message (a Close of a statement it evicts, its Sync): the whole answer is
    /// duet's.
    Own(Kind),
}

/// What kind of message the backend answers, by how its answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Parse duet does not track (the unnamed statement).
    Parse,
    /// Bind: BindComplete.
    Bind,
    /// Close: CloseComplete.
    Close,
    /// Describe of a statement: ParameterDescription, then RowDescription or NoData.
    DescribeStatement,
    /// Describe of a portal: RowDescription or NoData.
    DescribePortal,
    /// Execute: rows, then CommandComplete, EmptyQueryResponse or PortalSuspended.
    Execute,
    /// Sync, Query, FunctionCall: everything up to ReadyForQuery.
    UntilReady,
}

impl Kind {
    /// Whether `message` (a backend message type) is the last of this kind's answer.
    fn ends_with(self, message: u8) -> bool {
        match self {
            Kind::Parse => message == tag::PARSE_COMPLETE,
            Kind::Bind => message == tag::BIND_COMPLETE,
            Kind::Close => message == tag::CLOSE_COMPLETE,
            Kind::DescribeStatement | Kind::DescribePortal => {
                message == tag::ROW_DESCRIPTION || message == tag::NO_DATA
            }
            Kind::Execute => matches!(
                message,
                tag::COMMAND_COMPLETE | tag::EMPTY_QUERY_RESPONSE | tag::PORTAL_SUSPENDED
            ),
            Kind::UntilReady => message == tag::READY_FOR_QUERY,
        }
    }

    /// Whether an error ends this answer and makes the backend skip to the next Sync.
    fn is_extended(self) -> bool {
        self != Kind::UntilReady
    }
}

/// What to do with one backend message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// Pass it to the client (else drop it).
    pub forward: bool,
    /// The connection lost these statements (their Parse failed or was skipped).
    pub lost: Vec<(Bytes, Option<Bytes>)>,
    /// The server accepted this statement (a ParseComplete for a Parse duet tracks).
    pub prepared: Option<Bytes>,
}

/// The queue of owed answers of one attached connection.
#[derive(Debug, Default)]
pub struct Owing {
    queue: VecDeque<Owed>,
}

impl Owing {
    /// A message was sent (or answered by duet) whose answer is owed.
    pub fn push(&mut self, owed: Owed) {
        self.queue.push_back(owed);
    }

    /// Nothing is owed.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Pops the synthetic answers now at the front of the queue: send them to the client.
    pub fn take_synthetic(&mut self, out: &mut bytes::BytesMut) {
        while let Some(Owed::Synthetic(message)) = self.queue.front() {
            out.extend_from_slice(&[*message, 0, 0, 0, 4]);
            self.queue.pop_front();
        }
    }

    /// Matches a backend message of type `message` against the queue.
    pub fn answer(&mut self, message: u8) -> Verdict {
        let mut verdict = Verdict {
            forward: true,
            lost: Vec::new(),
            prepared: None,
        };
        if matches!(
            message,
            tag::NOTICE_RESPONSE | tag::PARAMETER_STATUS | tag::NOTIFICATION_RESPONSE
        ) {
            // Asynchronous: they can come at any time and answer nothing.
            return verdict;
        }
        let Some(front) = self.queue.front().cloned() else {
            return verdict;
        };
        let kind = match &front {
            Owed::Answer(kind) => *kind,
            Owed::Own(kind) => {
                verdict.forward = false;
                *kind
            }
            Owed::Parse { .. } => Kind::Parse,
            // take_synthetic runs before every answer, so a synthetic is never at the front here.
            Owed::Synthetic(_) => return verdict,
        };
        if message == tag::ERROR_RESPONSE && kind.is_extended() {
            self.queue.pop_front();
            if let Owed::Parse {
                backend_name,
                client_name,
                ..
            } = front
            {
                verdict.lost.push((backend_name, client_name));
            }
            // The backend skips to the Sync: what was owed before it never comes.
            while let Some(owed) = self.queue.front() {
                match owed {
                    Owed::Answer(Kind::UntilReady) => break,
                    Owed::Parse {
                        backend_name,
                        client_name,
                        ..
                    } => verdict
                        .lost
                        .push((backend_name.clone(), client_name.clone())),
                    _ => {}
                }
                self.queue.pop_front();
            }
            return verdict;
        }
        if kind.ends_with(message) {
            self.queue.pop_front();
            if let Owed::Parse {
                injected,
                backend_name,
                ..
            } = front
            {
                verdict.forward = !injected;
                verdict.prepared = Some(backend_name);
            }
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &'static [u8], injected: bool) -> Owed {
        Owed::Parse {
            backend_name: Bytes::from_static(name),
            client_name: Some(Bytes::from_static(b"s")),
            injected,
        }
    }

    #[test]
    fn synthetic_answers_take_their_turn() {
        let mut owing = Owing::default();
        owing.push(Owed::Answer(Kind::Bind));
        owing.push(Owed::Synthetic(tag::PARSE_COMPLETE));
        owing.push(Owed::Answer(Kind::UntilReady));
        let mut out = bytes::BytesMut::new();
        owing.take_synthetic(&mut out);
        assert!(out.is_empty(), "the Bind's answer comes first");
        assert!(owing.answer(tag::BIND_COMPLETE).forward);
        owing.take_synthetic(&mut out);
        assert_eq!(&out[..], [b'1', 0, 0, 0, 4]);
        assert!(owing.answer(tag::READY_FOR_QUERY).forward);
        assert!(owing.is_empty());
    }

    #[test]
    fn an_injected_parse_is_answered_to_duet_only() {
        let mut owing = Owing::default();
        owing.push(parse(b"duet_a", true));
        owing.push(Owed::Answer(Kind::Bind));
        assert!(!owing.answer(tag::PARSE_COMPLETE).forward);
        assert!(owing.answer(tag::BIND_COMPLETE).forward);
    }

    #[test]
    fn an_error_skips_to_the_sync_and_loses_the_parses_on_the_way() {
        let mut owing = Owing::default();
        owing.push(parse(b"duet_a", false));
        owing.push(Owed::Answer(Kind::Bind));
        owing.push(parse(b"duet_b", true));
        owing.push(Owed::Synthetic(tag::CLOSE_COMPLETE));
        owing.push(Owed::Answer(Kind::UntilReady));
        let verdict = owing.answer(tag::ERROR_RESPONSE);
        assert!(verdict.forward);
        assert_eq!(verdict.lost.len(), 2);
        let mut out = bytes::BytesMut::new();
        owing.take_synthetic(&mut out);
        assert!(out.is_empty(), "a skipped Close is not answered");
        assert!(owing.answer(tag::READY_FOR_QUERY).forward);
        assert!(owing.is_empty());
    }

    #[test]
    fn duets_own_batch_is_answered_to_duet_only() {
        let mut owing = Owing::default();
        owing.push(Owed::Own(Kind::Close));
        owing.push(Owed::Own(Kind::UntilReady));
        owing.push(Owed::Answer(Kind::UntilReady));
        assert!(!owing.answer(tag::CLOSE_COMPLETE).forward);
        assert!(!owing.answer(tag::READY_FOR_QUERY).forward);
        assert!(owing.answer(tag::ROW_DESCRIPTION).forward);
        assert!(owing.answer(tag::READY_FOR_QUERY).forward);
        assert!(owing.is_empty());
    }

    #[test]
    fn rows_and_errors_inside_a_query_stay_inside_it() {
        let mut owing = Owing::default();
        owing.push(Owed::Answer(Kind::UntilReady));
        for message in [tag::ROW_DESCRIPTION, tag::DATA_ROW, tag::ERROR_RESPONSE] {
            assert!(owing.answer(message).forward);
            assert!(!owing.is_empty());
        }
        owing.answer(tag::READY_FOR_QUERY);
        assert!(owing.is_empty());
    }
}
