//! The fleet's messages: the payloads of `NOTIFY duet_fleet`, one variant per kind.
//!
//! A payload is words separated by single spaces; tokens and member ids never contain one.
//! Unknown or malformed payloads are ignored by readers (a newer member may send kinds an older
//! one does not know).

/// The channel every member listens on.
pub const CHANNEL: &str = "duet_fleet";

/// One message between members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A row of `duet.migrations` changed (sent by a trigger on the table, so every writer of it
    /// announces its changes, committed ones only).
    Changed {
        /// The migration's id.
        migration: i64,
    },
    /// Hold new transactions at their boundary and acknowledge (the start of a coordinated flip).
    Hold {
        /// Names this hold in acknowledgements and the release.
        token: String,
        /// The member asking (it holds its own clients itself).
        from: String,
        /// How long a member may take to reach a quiet gate, in milliseconds.
        budget_ms: u64,
    },
    /// The hold `token` is over: read the stored phases, publish their routes, release clients.
    Release {
        /// The hold.
        token: String,
    },
    /// Read the stored phases, publish their routes, then acknowledge `token` (a barrier).
    Sync {
        /// Names the barrier.
        token: String,
    },
    /// A member's answer to a hold or a sync.
    Ack {
        /// The hold or sync answered.
        token: String,
        /// The answering member.
        member: String,
        /// Whether it did what was asked (false: it could not hold in time).
        ok: bool,
        /// Why not, for the operator.
        detail: String,
    },
}

impl Message {
    /// Parses a payload; `None` for anything not understood.
    pub fn parse(payload: &str) -> Option<Message> {
        let mut words = payload.splitn(5, ' ');
        let kind = words.next()?;
        match kind {
            "changed" => Some(Message::Changed {
                migration: words.next()?.parse().ok()?,
            }),
            "hold" => Some(Message::Hold {
                token: words.next()?.to_owned(),
                from: words.next()?.to_owned(),
                budget_ms: words.next()?.parse().ok()?,
            }),
            "release" => Some(Message::Release {
                token: words.next()?.to_owned(),
            }),
            "sync" => Some(Message::Sync {
                token: words.next()?.to_owned(),
            }),
            "ack" => {
                let token = words.next()?.to_owned();
                let member = words.next()?.to_owned();
                let ok = match words.next()? {
                    "ok" => true,
                    "missed" => false,
                    _ => return None,
                };
                Some(Message::Ack {
                    token,
                    member,
                    ok,
                    detail: words.next().unwrap_or("").to_owned(),
                })
            }
            _ => None,
        }
    }

    /// The payload to send.
    pub fn payload(&self) -> String {
        match self {
            Message::Changed { migration } => format!("changed {migration}"),
            Message::Hold {
                token,
                from,
                budget_ms,
            } => format!("hold {token} {from} {budget_ms}"),
            Message::Release { token } => format!("release {token}"),
            Message::Sync { token } => format!("sync {token}"),
            Message::Ack {
                token,
                member,
                ok,
                detail,
            } => format!(
                "ack {token} {member} {} {detail}",
                if *ok { "ok" } else { "missed" }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Message;

    #[test]
    fn every_message_reads_back() {
        let all = [
            Message::Changed { migration: 7 },
            Message::Hold {
                token: "h1".into(),
                from: "m-a".into(),
                budget_ms: 2000,
            },
            Message::Release { token: "h1".into() },
            Message::Sync { token: "s1".into() },
            Message::Ack {
                token: "h1".into(),
                member: "m-b".into(),
                ok: false,
                detail: "session 3 (user app, active for 2.0s) kept it busy".into(),
            },
        ];
        for message in all {
            assert_eq!(Message::parse(&message.payload()), Some(message));
        }
        assert_eq!(Message::parse("nonsense 1"), None);
        assert_eq!(Message::parse("changed x"), None);
    }
}
