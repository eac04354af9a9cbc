//! vmxsim: a cycle-level simulator of nested Intel VMX.
//!
//! The crate is layered as ARCHITECTURE.md describes, data flowing downwards only:
//! [`arch`] (facts of the Intel SDM as data), [`machine`] (the simulated hardware: CPU,
//! memory, paging, decoded-block cache, interpreter, devices), [`loader`] (putting images
//! into a machine the way firmware or a boot loader would), [`cpu_model`] (CPU capability
//! models read from `models/cpu/*.toml`), [`scenario`] (scenarios and the hypervisor models
//! they stack, `scenarios/*.toml` and `models/hv/*.toml`), and the jobs the CLI calls: [`exec`]
//! (`vmxsim exec`), [`bench`](mod@bench) and [`run`] (`vmxsim run SCENARIO`). [`testkit`] runs
//! instruction snippets for differential tests.

pub mod arch;
pub mod bench;
pub mod config;
pub mod cpu_model;
pub mod exec;
pub mod hv;
pub mod loader;
pub mod machine;
pub mod run;
pub mod scenario;
pub mod testkit;
pub mod timing;
pub mod util;
