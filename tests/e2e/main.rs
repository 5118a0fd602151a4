//! End-to-end tests of the depth2ply binary.
