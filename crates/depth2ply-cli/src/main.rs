//! The depth2ply command-line tool.
fn main() {}
