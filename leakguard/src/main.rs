//! `leakguard`: wires the command line to the modules that do the work.

use std::{
    io::{self, Write as _},
    process::ExitCode,
};

use clap::Parser as _;
use leakguard::{
    cli::{exit, Cli, Command},
    policy::{catalog::CATALOG, file},
};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let mut out = io::stdout().lock();
    let r = match cli.command {
        Command::CheckConfig { path } => match file::load(&path) {
            Ok(config) => write!(out, "{}", config.describe())
                .and_then(|()| writeln!(out, "{}: valid", path.display())),
            Err(e) => {
                eprintln!("leakguard: {e}");
                return ExitCode::from(exit::FAILURE);
            }
        },
        Command::Headers => headers(&mut out),
    };
    match r {
        // A reader that went away (`| head`) is not an error of ours.
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("leakguard: writing output: {e}");
            ExitCode::from(exit::FAILURE)
        }
    }
}

fn headers(out: &mut impl io::Write) -> io::Result<()> {
    writeln!(out, "{:<30} {:<12} seen at", "header", "carries")?;
    for e in CATALOG {
        writeln!(out, "{:<30} {:<12} {}", e.header, e.kind.name(), e.source)?;
    }
    Ok(())
}
