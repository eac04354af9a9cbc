//! Facts of the Intel SDM as data: register bits, MSR indices, exception vectors.
//!
//! Nothing in this module has behaviour beyond bit arithmetic; every other layer names
//! architectural constants through it so there is one source of truth.

pub mod apic;
pub mod exit_reason;
pub mod msr;
pub mod vmcs_fields;
pub mod vmx_ctrl;
pub mod vmx_error;
pub mod x86;
