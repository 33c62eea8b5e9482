//! Named prepared statements across backend connections.
//!
//! A client names its statements (`Parse` with a name) once per session, but in transaction mode
//! its transactions run on whichever backend connection is free. So duet names each statement on
//! the backends after its content — `duet_` and a 128-bit hash of the text and parameter types —
//! and remembers, per client, which content each of its names stands for, and per backend
//! connection, which contents it has prepared. A Bind or Describe of a statement the attached
//! connection lacks gets the Parse sent first (its answer kept from the client); a Parse of a
//! statement the connection has is answered by duet. Clients sharing a statement share it on the
//! server, as with PgBouncer 1.21+ and PgDog.
//!
//! A Parse is answered from a backend's statement only if no schema change passed through duet
//! since that statement was parsed: PostgreSQL fixes a statement's parameter types when it parses
//! it (a table dropped and created again with another column type would otherwise keep a
//! parameter of the old type: "column is of type foo_enum but expression is of type character
//! varying", found by SQLAlchemy's own test suite). So the backend name also carries the
//! [`schema_generation`], which every `CREATE`, `ALTER`, `DROP`, `DO` or `IMPORT` a pooled
//! client sends moves on, when sent and again when its transaction ends; the statements of older
//! generations age out of the connections as any unused statement does. A schema change made
//! straight on the server, or by a function or procedure a statement calls, is not seen (as with
//! PgBouncer, which sees none).
//!
//! Names are resolved at Parse time too: the name also carries the client's `search_path`, so
//! clients whose paths lead the same text to different tables (a schema per tenant) never share a
//! statement. A client that may have changed its settings in the open transaction (not yet read
//! back) has a path duet does not know: its statement gets a name of its own.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};

use crate::wire::messages::{Message, Parse};

/// A client's prepared statement, as the backends know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Its name on the backends.
    pub backend_name: Bytes,
    /// The Parse message that prepares it on a backend under that name.
    pub parse: Bytes,
    /// Running it may change the session's settings (`SET …` prepared with Parse): each
    /// execution has them read back, as a `SET` sent as a query does.
    pub changes_settings: bool,
    /// Running it may change the schema (`CREATE`, `ALTER`, `DROP`, …).
    pub changes_schema: bool,
    /// The statement it runs (`EXPLAIN … EXECUTE other`): prepared on a connection before it.
    pub needs: Option<Box<Prepared>>,
}

/// Schema changes pooled clients have sent through this duet (see the module's docs).
static SCHEMA_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Statements named for one client alone (its `search_path` unknown).
static UNSHARED: AtomicU64 = AtomicU64::new(0);

/// The `search_path` a client's Parse is resolved under, as far as duet knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchPath<'a> {
    /// The client's setting (`None`: the pool's default for its user and database).
    Known(Option<&'a str>),
    /// Possibly changed in the open transaction and not read back yet.
    Unknown,
}

/// The current schema generation.
pub fn schema_generation() -> u64 {
    SCHEMA_GENERATION.load(Ordering::Relaxed)
}

/// A pooled client sent a statement that may change the schema, or its transaction that did
/// ended: statements parsed from now on get new backend names.
pub fn schema_changed() {
    SCHEMA_GENERATION.fetch_add(1, Ordering::Relaxed);
}

impl Prepared {
    /// The statement a client's Parse defines, under the current schema generation and `path`.
    pub fn of(parse: &Parse<'_>, path: SearchPath<'_>) -> Prepared {
        let backend_name = match path {
            SearchPath::Known(path) => backend_name(
                parse.text,
                parse.parameters,
                schema_generation(),
                path.unwrap_or("").as_bytes(),
            ),
            SearchPath::Unknown => {
                let n = UNSHARED.fetch_add(1, Ordering::Relaxed);
                Bytes::from(format!("duet_own_{n:016x}"))
            }
        };
        let message = Parse {
            name: &backend_name,
            text: parse.text,
            parameters: parse.parameters,
        }
        .to_bytes()
        .freeze();
        Prepared {
            backend_name,
            parse: message,
            changes_settings: false,
            changes_schema: false,
            needs: None,
        }
    }
}

/// The name a statement has on the backends: the same text and parameter types in one schema
/// generation under one `search_path` always get the same name, different ones different names
/// (a 128-bit hash; 37 bytes, within NAMEDATALEN).
pub fn backend_name(text: &[u8], parameters: &[u8], generation: u64, path: &[u8]) -> Bytes {
    let half = |seed: u64| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        seed.hash(&mut hasher);
        text.hash(&mut hasher);
        parameters.hash(&mut hasher);
        generation.hash(&mut hasher);
        path.hash(&mut hasher);
        hasher.finish()
    };
    let mut name = BytesMut::with_capacity(37);
    name.extend_from_slice(format!("duet_{:016x}{:016x}", half(1), half(2)).as_bytes());
    name.freeze()
}

/// One client's named statements.
#[derive(Debug, Default)]
pub struct ClientStatements {
    by_name: HashMap<Bytes, Prepared>,
}

impl ClientStatements {
    /// Defines (or redefines) `name`.
    pub fn define(&mut self, name: &[u8], prepared: Prepared) {
        self.by_name.insert(Bytes::copy_from_slice(name), prepared);
    }

    /// What `name` stands for.
    pub fn get(&self, name: &[u8]) -> Option<&Prepared> {
        self.by_name.get(name)
    }

    /// Forgets `name` (a Close, a DEALLOCATE, or its Parse failed). Returns what it stood for.
    pub fn forget(&mut self, name: &[u8]) -> Option<Prepared> {
        self.by_name.remove(name)
    }

    /// Forgets `name` only if it still stands for `backend_name` (a failed Parse must not undo a
    /// later definition).
    pub fn forget_if(&mut self, name: &[u8], backend_name: &[u8]) {
        if self
            .by_name
            .get(name)
            .is_some_and(|p| p.backend_name == backend_name)
        {
            self.by_name.remove(name);
        }
    }

    /// Forgets every name (`DEALLOCATE ALL`, `DISCARD ALL`).
    pub fn clear(&mut self) {
        self.by_name.clear();
    }

    /// How many names the client has.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether the client has none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Statements a backend connection keeps before duet closes the oldest (as PgBouncer's
/// `max_prepared_statements`): clients that close theirs or prepare ever new texts must not grow
/// the server's memory without end.
pub const MAX_STATEMENTS_PER_CONNECTION: usize = 500;

/// The statements one backend connection has prepared (by backend name), oldest first.
#[derive(Debug, Default)]
pub struct BackendStatements {
    names: HashSet<Bytes>,
    order: VecDeque<Bytes>,
}

impl BackendStatements {
    /// Whether the connection has `backend_name`.
    pub fn has(&self, backend_name: &[u8]) -> bool {
        self.names.contains(backend_name)
    }

    /// The connection is preparing `backend_name`.
    pub fn add(&mut self, backend_name: Bytes) {
        if self.names.insert(backend_name.clone()) {
            self.order.push_back(backend_name);
        }
    }

    /// The connection does not have `backend_name` (its Parse failed, or it was closed).
    pub fn remove(&mut self, backend_name: &[u8]) {
        if self.names.remove(backend_name) {
            self.order.retain(|name| name != backend_name);
        }
    }

    /// The connection has none (`DISCARD ALL`, `DEALLOCATE ALL`).
    pub fn clear(&mut self) {
        self.names.clear();
        self.order.clear();
    }

    /// When the connection holds more than [`MAX_STATEMENTS_PER_CONNECTION`], forgets the oldest
    /// down to three quarters of it and returns their names (for duet to close on the server).
    pub fn evict(&mut self) -> Vec<Bytes> {
        if self.names.len() <= MAX_STATEMENTS_PER_CONNECTION {
            return Vec::new();
        }
        let keep = MAX_STATEMENTS_PER_CONNECTION * 3 / 4;
        let mut evicted = Vec::with_capacity(self.names.len() - keep);
        while self.names.len() > keep {
            let Some(name) = self.order.pop_front() else {
                break;
            };
            self.names.remove(&name);
            evicted.push(name);
        }
        evicted
    }

    /// How many it has.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_content() {
        let name = |text: &[u8], parameters: &[u8], generation, path: &[u8]| {
            backend_name(text, parameters, generation, path)
        };
        let a = name(b"select $1", b"\0\x01\0\0\0\x17", 0, b"");
        assert_eq!(a, name(b"select $1", b"\0\x01\0\0\0\x17", 0, b""));
        assert_ne!(a, name(b"select $1", b"\0\x01\0\0\0\x14", 0, b""));
        assert_ne!(a, name(b"select $2", b"\0\x01\0\0\0\x17", 0, b""));
        assert_ne!(
            a,
            name(b"select $1", b"\0\x01\0\0\0\x17", 1, b""),
            "a schema change gives the same text a new name"
        );
        assert_ne!(
            a,
            name(b"select $1", b"\0\x01\0\0\0\x17", 0, b"tenant"),
            "so does another search_path"
        );
        assert_eq!(a.len(), 37);
        assert!(a.starts_with(b"duet_"));
        let parse = Parse {
            name: b"s1",
            text: b"select 1",
            parameters: b"\0\0",
        };
        let own = Prepared::of(&parse, SearchPath::Unknown);
        assert_ne!(
            own,
            Prepared::of(&parse, SearchPath::Unknown),
            "never shared"
        );
        assert!(own.backend_name.len() < 64, "within NAMEDATALEN");
    }

    #[test]
    fn the_oldest_statements_are_evicted_past_the_limit() {
        let mut conn = BackendStatements::default();
        for n in 0..MAX_STATEMENTS_PER_CONNECTION {
            conn.add(Bytes::from(format!("s{n}")));
        }
        assert!(conn.evict().is_empty(), "at the limit nothing goes");
        conn.add(Bytes::from_static(b"newest"));
        let evicted = conn.evict();
        assert_eq!(evicted.first().map(|b| &b[..]), Some(&b"s0"[..]));
        assert_eq!(conn.len(), MAX_STATEMENTS_PER_CONNECTION * 3 / 4);
        assert!(conn.has(b"newest"));
        assert!(!conn.has(b"s0"));
    }

    #[test]
    fn a_failed_parse_forgets_only_its_own_definition() {
        let parse = |text: &'static [u8]| Parse {
            name: b"s1",
            text,
            parameters: b"\0\0",
        };
        let mut client = ClientStatements::default();
        let first = Prepared::of(&parse(b"select 1"), SearchPath::Known(None));
        let second = Prepared::of(&parse(b"select 2"), SearchPath::Known(None));
        client.define(b"s1", first.clone());
        client.define(b"s1", second.clone());
        client.forget_if(b"s1", &first.backend_name);
        assert_eq!(client.get(b"s1"), Some(&second));
        client.forget_if(b"s1", &second.backend_name);
        assert!(client.is_empty());
        let decoded = Parse::decode_message(&second.parse).expect("a Parse");
        assert_eq!(decoded.name, &second.backend_name[..]);
        assert_eq!(decoded.text, b"select 2");
    }
}
