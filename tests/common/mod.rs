//! Helpers shared by the integration tests that run boot images, in vmxsim
//! and in Bochs 2.7 (the VMX oracle). Include with `mod common;` from a file
//! directly under `tests/`.
//!
//! - [`boot`]: assembling images with nasm, extracting the marked part of a
//!   port 0xE9 stream, running vmxsim with a timeout, readable diffs.
//! - [`bochs`]: running an image in Bochs headless and getting its port 0xE9
//!   bytes back (see the module docs for how and why).
//! - [`oracle`]: comparing Bochs' output with a golden file that keeps the
//!   SDM's answer where Bochs is documented to be wrong (VMX images).

#![allow(dead_code)]

pub mod bochs;
pub mod boot;
pub mod oracle;
