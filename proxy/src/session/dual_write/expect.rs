//! What the hook expects of an answer, and the patch a prepared statement or portal carries.

use std::sync::Arc;

use duet_shadow::rewrite::{Answer, StatementPatch, TagVerb};

use crate::routes::Cached;

/// What to do with one answer of a request.
#[derive(Debug, Clone)]
pub(crate) enum Expect {
    /// A statement's or Execute's completion; restore this verb in its CommandComplete.
    Complete(Option<TagVerb>),
    /// The marker standing for a refused statement: replace its ErrorResponse.
    Refused(Arc<Cached>),
    /// An injected request: drop every message of its answer, ReadyForQuery included.
    Swallow,
    /// A statement duet added to the client's query string: drop its CommandComplete.
    Drop,
    /// The COPY into a staging table: hold its CommandComplete back for [`Expect::CopyTag`]; in
    /// its error, name `table` instead of `staging` in the context.
    HoldCopy {
        /// The staging table's name.
        staging: String,
        /// The client's table's name.
        table: String,
    },
    /// The INSERT that completes a staged COPY: its CommandComplete becomes the held `COPY n`.
    CopyTag,
}

impl Expect {
    /// What the answer to a statement with this patch needs.
    pub(crate) fn for_statement(patch: &StatementPatch) -> Expect {
        match &patch.answer {
            Answer::Client => Expect::Complete(patch.command_tag),
            Answer::Added => Expect::Drop,
            Answer::StagedCopy { staging, table } => Expect::HoldCopy {
                staging: staging.clone(),
                table: table.clone(),
            },
            Answer::StagedInsert => Expect::CopyTag,
        }
    }
}

/// The patch of a prepared statement or portal: the verb to restore and the cache entry to count.
#[derive(Debug, Clone)]
pub(crate) struct Patch {
    pub(crate) verb: Option<TagVerb>,
    pub(crate) cached: Arc<Cached>,
}
