//! Procedural macros for `ractor-otp`.
//!
//! This crate is re-exported by `ractor_otp`; depend on that instead. The worker and
//! supervision-tree macros land here with the pool layer (see the project's issues).
