//! taskmasterctl as a library. STUB.
