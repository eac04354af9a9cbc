//! `vmxsim bench`: simulated MIPS on benchmark images, median of several runs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::exec::{prepare, ExecOptions};

/// The image benchmarked when none is given.
pub const DEFAULT_IMAGE: &str = "images/alu-loop.img";

#[derive(serde::Serialize)]
struct Row {
    image: String,
    instructions: u64,
    median_seconds: f64,
    mips: f64,
    runs: usize,
}

/// Runs each image `runs` times with `opts` (cost model, profiling) and prints the medians.
pub fn run(images: &[PathBuf], runs: usize, json: bool, opts: &ExecOptions) -> Result<(), String> {
    let defaults = [PathBuf::from(DEFAULT_IMAGE)];
    let images = if images.is_empty() { &defaults[..] } else { images };
    let mut rows = Vec::new();
    for img in images {
        rows.push(bench_one(img, runs.max(1), opts)?);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?);
    } else {
        println!("{:<40} {:>14} {:>10} {:>10}", "image", "instructions", "median s", "MIPS");
        for r in &rows {
            println!("{:<40} {:>14} {:>10.3} {:>10.1}", r.image, r.instructions, r.median_seconds, r.mips);
        }
    }
    Ok(())
}

fn bench_one(img: &Path, runs: usize, opts: &ExecOptions) -> Result<Row, String> {
    let bytes = std::fs::read(img).map_err(|e| format!("{}: {e}", img.display()))?;
    let mut times = Vec::new();
    let mut instructions = 0;
    for _ in 0..runs {
        let (mut m, _) = prepare(&bytes, opts).map_err(|e| e.to_string())?;
        let t = Instant::now();
        let stop = m.run(opts.max_instructions);
        times.push(t.elapsed().as_secs_f64());
        if crate::exec::exit_status(&stop) == 2 {
            return Err(format!("{}: run ended abnormally: {stop:?}", img.display()));
        }
        instructions = m.stats.instructions;
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    Ok(Row {
        image: img.display().to_string(),
        instructions,
        median_seconds: median,
        mips: instructions as f64 / median / 1e6,
        runs,
    })
}
