//! `taskmasterctl`. STUB.
fn main() {}
