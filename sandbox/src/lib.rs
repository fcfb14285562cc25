//! sandbox (work in progress).
