//! duet's load benchmark. Not built yet.
