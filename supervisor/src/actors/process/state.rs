//! The pure per-instance state machine (no IO, no actix). STUB.
