//! SQL identifiers: quoting, and the naming of the objects duet creates (a suffix within 63
//! bytes, the shadow table's name).

use serde::{Deserialize, Serialize};

/// Suffix of a shadow table's name (`t` → `t__duet`).
pub const SHADOW_SUFFIX: &str = "__duet";
/// The tombstone column of a shadow table.
pub const DELETED_COLUMN: &str = "__duet_deleted";
/// PostgreSQL's identifier length limit in bytes (NAMEDATALEN - 1).
pub const MAX_IDENT_BYTES: usize = 63;

/// Quote an identifier for SQL (`a"b` → `"a""b"`). Identifiers are always quoted.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A schema-qualified relation name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualifiedName {
    /// Schema (e.g. `public`).
    pub schema: String,
    /// Relation name, unquoted.
    pub name: String,
}

impl QualifiedName {
    /// A name in the given schema.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        QualifiedName {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// The quoted SQL form, `"schema"."name"`.
    pub fn sql(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// The shadow table of this table, in the same schema.
    pub fn shadow(&self) -> QualifiedName {
        QualifiedName::new(self.schema.clone(), shadow_table_name(&self.name))
    }
}

impl std::fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.sql())
    }
}

/// The shadow table's name for table `t`: `t__duet` ([`with_suffix`]).
pub fn shadow_table_name(table: &str) -> String {
    with_suffix(table, SHADOW_SUFFIX)
}

/// `name` + `suffix`; when that exceeds 63 bytes, `name` is truncated and a short stable hash of
/// the full name is put before the suffix, so distinct long names stay distinct.
pub fn with_suffix(name: &str, suffix: &str) -> String {
    let plain = format!("{name}{suffix}");
    if plain.len() <= MAX_IDENT_BYTES {
        return plain;
    }
    let hash = format!("_{:08x}", fnv1a32(name.as_bytes()));
    let room = MAX_IDENT_BYTES - suffix.len() - hash.len();
    let mut cut = room.min(name.len());
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{hash}{suffix}", &name[..cut])
}

/// FNV-1a: tiny, stable across Rust versions (unlike `DefaultHasher`), good enough for names.
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_get_the_plain_suffix() {
        assert_eq!(shadow_table_name("orders"), "orders__duet");
    }

    #[test]
    fn long_names_are_truncated_with_a_hash() {
        let long = "x".repeat(70);
        let name = shadow_table_name(&long);
        assert!(name.len() <= 63);
        assert!(name.ends_with("__duet"));
        assert_ne!(name, shadow_table_name(&"x".repeat(71)));
    }

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
