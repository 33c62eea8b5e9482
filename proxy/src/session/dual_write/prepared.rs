//! The statements the hook remembers: as the client prepared them, as the server described
//! them, and as the client closed or deallocated them.

use std::sync::Arc;

use bytes::Bytes;
use duet_shadow::rewrite::result_shape::DescribedColumn;

use super::DualWrite;
use crate::routes::Published;
use crate::wire::messages::{Describe, ParameterDescription, RowDescription, Target};

/// A named statement as the client prepared it.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The client's text.
    pub(crate) sql: String,
    /// The Parse body after the text: parameter count and type OIDs, as sent.
    pub(crate) params: Bytes,
    /// The epoch it was last prepared under.
    pub(crate) epoch: u64,
    /// The routes it was last prepared under (`None`: while nothing was routed).
    pub(crate) published: Option<Arc<Published>>,
    /// Its result columns as the server first described them to the client (`None`: not
    /// described, or no rows): preparing it again keeps them (see
    /// [`duet_shadow::rewrite::result_shape`]).
    pub(crate) results: Option<Arc<[DescribedColumn]>>,
}

impl DualWrite {
    /// Records a Describe message read whole (only statement describes get a ParameterDescription).
    pub(crate) fn described(&mut self, describe: &Describe<'_>) {
        if describe.target == Target::Statement {
            self.describes.push_back(describe.name.to_vec());
        }
    }

    /// A ParameterDescription answered the oldest Describe('S'): keep the server's parameter types
    /// (same layout as a Parse's parameter section: count, then one OID each) for re-preparing.
    /// (`None`: a ParameterDescription that does not decode answered it; nothing is kept.)
    pub(crate) fn parameters_described(&mut self, described: Option<&ParameterDescription<'_>>) {
        let Some(name) = self.describes.pop_front() else {
            return;
        };
        let Some(described) = described.filter(|_| !name.is_empty()) else {
            return;
        };
        if let Some(prepared) = self.prepared.get_mut(&name) {
            prepared.params = Bytes::copy_from_slice(described.types);
            self.rows_of = Some(name);
        }
    }

    /// The RowDescription (`Some`) or NoData (`None`; also a RowDescription that does not decode)
    /// after a statement's ParameterDescription:
    /// the result shape the client now expects from it. Only the first description counts: a
    /// statement prepared again by duet is not described to the client again.
    pub(crate) fn rows_described(&mut self, rows: Option<&RowDescription<'_>>) {
        let Some(name) = self.rows_of.take() else {
            return;
        };
        if let Some(prepared) = self.prepared.get_mut(&name) {
            if prepared.results.is_none() {
                prepared.results = rows.map(described_columns).map(Arc::from);
            }
        }
    }

    /// Forgets a closed statement.
    pub(crate) fn close_statement(&mut self, name: &[u8]) {
        self.statement_patches.remove(name);
        self.prepared.remove(name);
    }

    /// Forgets every statement and portal (DISCARD ALL, DEALLOCATE ALL).
    pub(crate) fn forget_all(&mut self) {
        self.statement_patches.clear();
        self.portal_patches.clear();
        self.prepared.clear();
    }
}

/// The result columns a RowDescription tells the client about.
fn described_columns(rows: &RowDescription<'_>) -> Vec<DescribedColumn> {
    rows.fields()
        .map(|field| DescribedColumn {
            name: String::from_utf8_lossy(field.name).into_owned(),
            type_oid: field.type_oid,
            typmod: field.typmod,
        })
        .collect()
}

/// Whether a Query text is `DISCARD ALL` or `DEALLOCATE [PREPARE] ALL` (which drop every prepared
/// statement), or `DEALLOCATE [PREPARE] name` (returns the name). Cheap: looks at the first words.
pub(super) fn deallocation(sql: &[u8]) -> Option<Option<Vec<u8>>> {
    // Most queries are rejected on their first letter, without allocating.
    let start = sql.iter().position(|b| !b.is_ascii_whitespace())?;
    if !matches!(sql[start], b'd' | b'D') {
        return None;
    }
    let text = std::str::from_utf8(&sql[start..]).ok()?;
    let mut words = text
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|w| !w.is_empty());
    let first = words.next()?.to_ascii_lowercase();
    match first.as_str() {
        "discard" => {
            let second = words.next()?.to_ascii_lowercase();
            (second == "all").then_some(None)
        }
        "deallocate" => {
            let mut second = words.next()?;
            if second.eq_ignore_ascii_case("prepare") {
                second = words.next()?;
            }
            if second.eq_ignore_ascii_case("all") {
                Some(None)
            } else if let Some(quoted) = second.strip_prefix('"') {
                Some(Some(quoted.trim_end_matches('"').as_bytes().to_vec()))
            } else {
                Some(Some(second.to_ascii_lowercase().into_bytes()))
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::wire::messages::Message;

    #[test]
    fn a_statement_keeps_its_first_row_description() {
        let mut hook = DualWrite::default();
        hook.prepared.insert(
            b"s1".to_vec(),
            Prepared {
                sql: "select id, note from t".into(),
                params: Bytes::from_static(b"\0\0"),
                epoch: 0,
                published: None,
                results: None,
            },
        );
        let describe = Describe::decode(b"Ss1\0").unwrap();
        let no_parameters = ParameterDescription::decode(b"\0\0").unwrap();
        hook.described(&describe);
        hook.parameters_described(Some(&no_parameters));
        let mut body = 2u16.to_be_bytes().to_vec();
        for (name, oid, typmod) in [("id", 23u32, -1i32), ("note", 1043, 24)] {
            body.extend_from_slice(name.as_bytes());
            body.push(0);
            body.extend_from_slice(&16384u32.to_be_bytes()); // table
            body.extend_from_slice(&1i16.to_be_bytes()); // attnum
            body.extend_from_slice(&oid.to_be_bytes());
            body.extend_from_slice(&(-1i16).to_be_bytes()); // length
            body.extend_from_slice(&typmod.to_be_bytes());
            body.extend_from_slice(&1i16.to_be_bytes()); // binary
        }
        hook.rows_described(Some(&RowDescription::decode(&body).unwrap()));
        let results = hook.prepared[&b"s1".to_vec()]
            .results
            .clone()
            .expect("described");
        assert_eq!(results.len(), 2);
        assert_eq!((results[0].name.as_str(), results[0].type_oid), ("id", 23));
        assert_eq!((results[1].type_oid, results[1].typmod), (1043, 24));
        // A second description (duet's own re-prepare is never described) changes nothing, and a
        // truncated body is ignored.
        hook.described(&describe);
        hook.parameters_described(Some(&no_parameters));
        let truncated = RowDescription::decode(&body[..body.len() - 3]);
        assert!(truncated.is_err());
        hook.rows_described(truncated.ok().as_ref());
        assert_eq!(hook.prepared[&b"s1".to_vec()].results, Some(results));
    }
}
