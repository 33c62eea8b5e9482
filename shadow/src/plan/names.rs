//! Names of the objects duet creates around a migration: temporary names of the shadow's indexes
//! and constraints (renamed at the flip), the old table's parked names, and the shadow table's
//! primary key as PostgreSQL names it. Every name stays within 63 bytes.

use crate::ident::QualifiedName;

/// PostgreSQL's identifier length limit in bytes (NAMEDATALEN - 1).
const MAX_IDENT_BYTES: usize = 63;

/// `name` + `suffix`, truncated (with a stable hash of the full name) to fit 63 bytes.
pub fn with_suffix(name: &str, suffix: &str) -> String {
    let plain = format!("{name}{suffix}");
    if plain.len() <= MAX_IDENT_BYTES {
        return plain;
    }
    let hash = format!(
        "_{:08x}",
        name.bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
    );
    let room = MAX_IDENT_BYTES - suffix.len() - hash.len();
    let mut cut = room.min(name.len());
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{hash}{suffix}", &name[..cut])
}

/// Suffix of the shadow's indexes and constraints until the flip.
pub const TEMP_SUFFIX: &str = "__duet";
/// Suffix of the old table, its indexes and constraints after the flip; of a shadow column's old
/// column after the flip.
pub const OLD_SUFFIX: &str = "__duet_old";
/// Suffix of the CHECK (c IS NOT NULL) proving a column non-null before SET NOT NULL.
pub const NOT_NULL_SUFFIX: &str = "__duet_nn";

/// The old table after the flip: `t__duet_old`.
pub fn old_table(table: &QualifiedName) -> QualifiedName {
    QualifiedName::new(table.schema.clone(), with_suffix(&table.name, OLD_SUFFIX))
}

/// The name PostgreSQL gives the primary key of `table` (`makeObjectName(table, NULL, "pkey")`:
/// the table name is clipped so that `<name>_pkey` fits 63 bytes).
pub fn pkey_name(table: &str) -> String {
    let room = MAX_IDENT_BYTES - "_pkey".len();
    let mut cut = room.min(table.len());
    while !table.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_pkey", &table[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_stay_recognizable() {
        assert_eq!(with_suffix("t_pkey", OLD_SUFFIX), "t_pkey__duet_old");
        let long = "x".repeat(62);
        let n = with_suffix(&long, OLD_SUFFIX);
        assert!(n.len() <= 63 && n.ends_with(OLD_SUFFIX));
        assert_eq!(pkey_name("t__duet"), "t__duet_pkey");
        assert_eq!(pkey_name(&"y".repeat(63)).len(), 63);
    }
}
