//! A program the kernel's verifier refused: one line for the operator (the program, the
//! verifier's last message, how far it got) and the whole log in a file the line names.
//! Logs run to hundreds of kilobytes; printed as one error they bury everything else.

use std::path::{Path, PathBuf};

use aya::programs::ProgramError;

/// Where refusal logs go: the unit's `LogsDirectory`, or the temporary directory when
/// that cannot be written (a developer's machine, a test).
const LOG_DIR: &str = "/var/log/leakguard";

/// The one-line error for `program`'s failed load; a verifier log, if any, is written to
/// a file first.
#[must_use]
pub fn refused(program: &str, e: ProgramError) -> anyhow::Error {
    let release = super::features::release();
    let ProgramError::LoadError {
        io_error,
        verifier_log,
    } = e
    else {
        return anyhow::Error::new(e)
            .context(format!("the kernel ({release}) refused program {program}"));
    };
    let log = verifier_log.to_string();
    let summary = Summary::of(&log);
    let saved = match save(program, &log) {
        Ok(p) => format!("the verifier's log: {}", p.display()),
        Err(e) => format!("the verifier's log could not be saved: {e}"),
    };
    anyhow::anyhow!(
        "the kernel ({release}) refused program {program}: {} ({}; {io_error}); {saved}",
        summary.last.unwrap_or("no verifier message"),
        summary.processed.map_or_else(
            || "instructions processed unknown".to_owned(),
            |n| { format!("{n} instructions processed") }
        ),
    )
}

/// What the operator's line says of a verifier log.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary<'a> {
    /// The last line that says why: not a statistics line, not an instruction.
    pub last: Option<&'a str>,
    /// "processed N insns".
    pub processed: Option<u64>,
}

impl<'a> Summary<'a> {
    #[must_use]
    pub fn of(log: &'a str) -> Self {
        let processed = log.lines().rev().find_map(|l| {
            l.strip_prefix("processed ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        });
        let last = log.lines().rev().map(str::trim).find(|l| {
            !l.is_empty()
                && !l.starts_with("processed ")
                && !l.starts_with("verification time")
                && !l.starts_with("stack depth")
                && !l.starts_with(';')
                && !l.starts_with("frame")
                && !l.starts_with("caller")
                && !l.starts_with("callee")
                && !register_state(l)
                && !l
                    .split(':')
                    .next()
                    .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
        });
        Self { last, processed }
    }
}

/// A line of register states (`R1=ctx() R10=fp0`), which the verifier prints before and
/// after its messages.
fn register_state(l: &str) -> bool {
    l.strip_prefix('R').is_some_and(|r| {
        let digits = r.chars().take_while(char::is_ascii_digit).count();
        digits > 0 && (r[digits..].starts_with('=') || r[digits..].starts_with("_w="))
    })
}

fn save(program: &str, log: &str) -> std::io::Result<PathBuf> {
    let name = format!(
        "verifier-{program}-{}.log",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    let dir = Path::new(LOG_DIR);
    let path = if std::fs::create_dir_all(dir).is_ok() && writable(dir) {
        dir.join(name)
    } else {
        std::env::temp_dir().join(name)
    };
    std::fs::write(&path, log)?;
    Ok(path)
}

fn writable(dir: &Path) -> bool {
    let probe = dir.join(".leakguard-write-test");
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(probe);
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_the_reason_not_the_statistics() {
        let log = "0: R1=ctx() R10=fp0\n; let x = 1;\n6227: (71) r5 = *(u8 *)(r3 +0)\n\
                   R3 unbounded memory access, make sure to bounds check any such access\n\
                   verification time 123251 usec\nstack depth 216+96+0+56\n\
                   processed 5734 insns (limit 1000000) max_states_per_insn 6 total_states 300\n";
        assert_eq!(
            Summary::of(log),
            Summary {
                last: Some("R3 unbounded memory access, make sure to bounds check any such access"),
                processed: Some(5734),
            }
        );
        let too_big = "BPF program is too large. Processed 1000001 insn\n\
                       processed 1000001 insns (limit 1000000)\n";
        let s = Summary::of(too_big);
        assert_eq!(
            s.last,
            Some("BPF program is too large. Processed 1000001 insn")
        );
        assert_eq!(s.processed, Some(1_000_001));
        assert_eq!(Summary::of("").last, None);
    }
}
