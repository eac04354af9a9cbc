//! Comparing an oracle's (Bochs') output with a golden file that may, on
//! purpose, differ from it in a few documented lines: where Bochs 2.7
//! contradicts the Intel SDM, the golden file keeps the SDM's answer (see
//! `tests/vmx/README.md`), and the Bochs check accepts exactly Bochs' known
//! wrong line in its place.
//!
//! Also: removing the lines that Bochs' internal debugger writes to stdout in
//! the middle of a guest's port 0xE9 stream.

/// One documented disagreement between Bochs and the SDM: the whole output
/// line (without `\n`) the golden file holds (the SDM's answer) and the one
/// Bochs prints instead.
#[derive(Clone, Copy, Debug)]
pub struct KnownDiff {
    pub golden: &'static str,
    pub bochs: &'static str,
    /// One-line reason (the long form is in the README).
    pub why: &'static str,
}

/// Removes the debugger's disassembly lines, `(0).[TICKS] [0x...] ...\n`,
/// that Bochs' internal debugger writes to stdout when the guest causes a
/// "shutdown" event (e.g. a triple fault inside a VMX guest, which is a VM
/// exit, not a machine shutdown). Such a line can start in the middle of a
/// guest output line; it always ends with `\n`. Guests never print `(0).[`.
pub fn strip_bochs_debugger_lines(out: &[u8]) -> Vec<u8> {
    let pat = b"(0).[";
    let mut res = Vec::with_capacity(out.len());
    let mut i = 0;
    while i < out.len() {
        if out[i..].starts_with(pat) {
            let digits = out[i + pat.len()..].iter().take_while(|b| b.is_ascii_digit()).count();
            let after = i + pat.len() + digits;
            if digits > 0 && out[after..].starts_with(b"] [0x") {
                match out[after..].iter().position(|&b| b == b'\n') {
                    Some(nl) => {
                        i = after + nl + 1;
                        continue;
                    }
                    None => break,
                }
            }
        }
        res.push(out[i]);
        i += 1;
    }
    res
}

fn lines(b: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(b).split_inclusive('\n').map(|l| l.trim_end_matches('\n').to_string()).collect()
}

/// Compares Bochs' output with the golden file line by line: every line must
/// be equal, or be a documented difference (golden line = `d.golden` and
/// Bochs line = `d.bochs` for some `d` in `diffs`). Every documented
/// difference must be seen (otherwise the documentation is stale: Bochs now
/// agrees with the SDM, or the case changed). Returns a description of the
/// problems on failure.
pub fn compare_with_known_diffs(golden: &[u8], bochs: &[u8], diffs: &[KnownDiff]) -> Result<(), String> {
    let g = lines(golden);
    let b = lines(bochs);
    let mut problems = Vec::new();
    if golden.ends_with(b"\n") != bochs.ends_with(b"\n") {
        problems.push("one output ends with a newline and the other does not".to_string());
    }
    if g.len() != b.len() {
        problems.push(format!("golden has {} lines, Bochs printed {}", g.len(), b.len()));
    }
    let mut used = vec![false; diffs.len()];
    for (n, (gl, bl)) in g.iter().zip(b.iter()).enumerate() {
        if gl == bl {
            continue;
        }
        match diffs.iter().position(|d| d.golden == gl && d.bochs == bl) {
            Some(k) => used[k] = true,
            None => problems
                .push(format!("line {}: undocumented difference\n    golden: {gl:?}\n    bochs:  {bl:?}", n + 1)),
        }
    }
    for (d, u) in diffs.iter().zip(used) {
        if !u {
            problems.push(format!(
                "documented difference not seen (Bochs now prints the golden line, or the case changed; \
                 update the image's KnownDiff list and tests/vmx/README.md):\n    golden: {:?}\n    bochs:  {:?}\n    why:    {}",
                d.golden, d.bochs, d.why
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// What to write as the golden file when blessing from Bochs' output: Bochs'
/// lines, with each documented Bochs line replaced by the SDM's line.
pub fn bless_from_bochs(bochs: &[u8], diffs: &[KnownDiff]) -> Vec<u8> {
    let s = String::from_utf8_lossy(bochs);
    let mut out = String::with_capacity(s.len());
    for piece in s.split_inclusive('\n') {
        let (line, nl) = match piece.strip_suffix('\n') {
            Some(l) => (l, "\n"),
            None => (piece, ""),
        };
        match diffs.iter().find(|d| d.bochs == line) {
            Some(d) => out.push_str(d.golden),
            None => out.push_str(line),
        }
        out.push_str(nl);
    }
    out.into_bytes()
}
