//! Test harness for end-to-end tests. STUB.
