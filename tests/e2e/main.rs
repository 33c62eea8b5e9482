//! End-to-end tests: the real `duet` binary in front of the real PostgreSQL, driven by real
//! clients. See tests/README.md.
