//! The schema-change classifier (`duet check`). Not built yet.
