//! Hypervisor programs: x86 code generated with iced-x86's CodeAssembler. [`builder`] is the
//! layer the programs are written with (named functions that become profile symbols, forward
//! references by name, data blobs); [`kvm`] generates the KVM model from a level's
//! [`config::HvParams`]; [`workload`] the innermost guests; [`layout`] is the physical layout
//! every level shares and [`stack`] loads a whole stack into one machine.

pub mod builder;
pub mod config;
pub mod kvm;
pub mod layout;
pub mod stack;
pub mod workload;
