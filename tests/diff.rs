//! Differential tests: hs vs bash.
