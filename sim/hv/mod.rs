//! Hypervisor programs: x86 code generated with iced-x86's CodeAssembler. This module has the
//! builder layer the programs are written with (named functions that become profile symbols,
//! forward references by name, data blobs); the KVM model itself arrives with issue 5.

pub mod builder;
pub mod config;
pub mod kvm;
pub mod layout;
pub mod stack;
pub mod workload;
