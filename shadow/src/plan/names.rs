//! Names of the objects duet creates around a migration: temporary names of the shadow's indexes
//! and constraints (renamed at the flip), the old table's parked names, and the shadow table's
//! primary key as PostgreSQL names it. Every name stays within 63 bytes.

use crate::ident::QualifiedName;

pub use crate::ident::{with_suffix, MAX_IDENT_BYTES};

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
