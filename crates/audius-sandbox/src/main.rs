//! The `audius-sandbox` binary.
fn main() {}
