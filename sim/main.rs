//! The `vmxsim` command line: thin over the library's jobs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vmxsim::exec::{run_image, ExecOptions, DEFAULT_BUDGET};
use vmxsim::loader::Format;

#[derive(Parser)]
#[command(name = "vmxsim", version, about = "A cycle-level simulator of nested Intel VMX")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a guest image (boot sector, freestanding ELF64 or Multiboot) on the simulated machine.
    Exec {
        /// The image file.
        image: PathBuf,
        /// Image format (detected when omitted).
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Guest RAM size, e.g. 256M or 1G.
        #[arg(long, default_value = "256M", value_parser = vmxsim::config::parse_size)]
        memory: u64,
        /// Stop after this many instructions.
        #[arg(long, default_value_t = DEFAULT_BUDGET)]
        max_instructions: u64,
        /// CPU model: a name from models/cpu/ or a path to a model file.
        #[arg(long, default_value = vmxsim::cpu_model::DEFAULT)]
        cpu: String,
        /// Multiboot command line.
        #[arg(long, default_value = "")]
        cmdline: String,
        /// Cost model: a name from models/cost/ (broadwell, haswell, skylake), a path, or
        /// "unit" (one cycle per instruction). Default: the model named like --cpu.
        #[arg(long)]
        cost_model: Option<String>,
        /// Attribute cycles to level and function symbol (printed as a table, or in --json).
        #[arg(long)]
        profile: bool,
        /// Print one JSON object instead of the guest's output.
        #[arg(long)]
        json: bool,
    },
    /// Run a scenario: a stack of hypervisors with a workload innermost (see scenarios/README.md).
    Run {
        /// The scenario file, e.g. scenarios/cpuid-l2.toml.
        scenario: PathBuf,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Override a scenario key: a dotted key and a TOML value, e.g. --set iterations=1000,
        /// --set 'hv.L0.shadow_read_write_fields=["GUEST_RIP"]'. Repeatable; applied in order.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Attribute cycles to level and function symbol.
        #[arg(long)]
        profile: bool,
    },
    /// Measure simulated MIPS on benchmark images (see BENCHMARKS.md).
    Bench {
        /// Images to run; the shipped ALU-loop image when omitted.
        images: Vec<PathBuf>,
        /// Runs per image (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Cost model (default: broadwell; "unit" for one cycle per instruction).
        #[arg(long)]
        cost_model: Option<String>,
        /// Measure with per-symbol profiling on.
        #[arg(long)]
        profile: bool,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Exec { image, format, memory, max_instructions, cpu, cmdline, cost_model, profile, json } => {
            let bytes = match std::fs::read(&image) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("vmxsim: cannot read {}: {e}", image.display());
                    return ExitCode::from(2);
                }
            };
            let opts = ExecOptions { format, memory, max_instructions, cpu, cmdline, echo: !json, cost_model, profile };
            match run_image(&bytes, &opts) {
                Ok(r) => {
                    if json {
                        if let Ok(s) = serde_json::to_string_pretty(&r) {
                            use std::io::Write;
                            // A closed pipe (e.g. `| head`) is not an error of the run.
                            let _ = writeln!(std::io::stdout(), "{s}");
                        }
                    } else {
                        use std::io::Write;
                        let _ = std::io::stdout().flush();
                        if let Some(acct) = &r.accounting {
                            eprint!("{}", vmxsim::exec::profile_table(acct));
                        }
                    }
                    if r.exit_code == 2 {
                        eprintln!("vmxsim: {}: {}", r.reason, r.detail.as_deref().unwrap_or(""));
                    }
                    if !r.unimplemented.is_empty() && !json {
                        let list: Vec<String> = r.unimplemented.iter().map(|(k, v)| format!("{k} x{v}")).collect();
                        eprintln!("vmxsim: unimplemented instructions raised #UD: {}", list.join(", "));
                    }
                    ExitCode::from(r.exit_code as u8)
                }
                Err(e) => {
                    eprintln!("vmxsim: {}: {e}", image.display());
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Run { scenario, json, sets, profile } => run(&scenario, json, &sets, profile),
        Cmd::Bench { images, runs, cost_model, profile, json } => match vmxsim::bench::run(
            &images,
            runs,
            json,
            &ExecOptions { cost_model, profile, ..ExecOptions::default() },
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("vmxsim bench: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// `vmxsim run`: load, run, print.
fn run(path: &std::path::Path, json: bool, sets: &[String], profile: bool) -> ExitCode {
    use std::io::Write;
    let scenario = match vmxsim::scenario::load(path, sets) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vmxsim: {e}");
            return ExitCode::from(2);
        }
    };
    match vmxsim::run::run_scenario(&scenario, &vmxsim::run::RunOptions { json, profile }) {
        Ok(report) => {
            // A closed pipe (e.g. `| head`) is not an error of the run.
            if json {
                if let Ok(s) = serde_json::to_string_pretty(&report) {
                    let _ = writeln!(std::io::stdout(), "{s}");
                }
            } else {
                let _ = write!(std::io::stdout(), "{}", vmxsim::run::render_table(&report));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vmxsim run: {}: {e}", scenario.name);
            ExitCode::from(2)
        }
    }
}
