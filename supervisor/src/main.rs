//! `taskmasterd`: the daemon binary. STUB.

fn main() {}
