//! parser (work in progress).
