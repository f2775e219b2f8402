//! `leakguard`: wires the command line to the modules that do the work.

use std::{
    io::{self, Write as _},
    process::ExitCode,
};

use clap::Parser as _;
use leakguard::{
    cli::{exit, Cli, Command, Format, LogFormat},
    config, daemon,
    kernel::{attach, pins::Pins},
    policy::catalog::CATALOG,
    status,
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
    init_logs(cli.log_format);
    let mut out = io::stdout().lock();
    let r = match cli.command {
        Command::Run {
            config,
            ebpf_object,
        } => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return fail(&anyhow::anyhow!("starting the runtime: {e}")),
            };
            return match rt.block_on(daemon::run(&config, ebpf_object.as_deref())) {
                Ok(()) => ExitCode::from(exit::OK),
                Err(e) => fail(&e),
            };
        }
        Command::Status {
            config,
            pin_path,
            format,
        } => match pins_of(&config, pin_path.as_deref()).and_then(|p| status::gather(&p)) {
            Ok(st) if format == Format::Json => match serde_json::to_string_pretty(&st) {
                Ok(j) => writeln!(out, "{j}"),
                Err(e) => return fail(&e.into()),
            },
            Ok(st) => write!(out, "{}", st.text()),
            Err(e) => return fail(&e),
        },
        Command::Detach { config, pin_path } => {
            let removed = pins_of(&config, pin_path.as_deref()).and_then(|p| {
                leakguard::privileges::require(p.namespaced()?)?;
                attach::detach_all(&p)
            });
            match removed {
                Ok(r) if r.is_empty() => writeln!(out, "nothing to remove: no guard is installed"),
                Ok(r) => r.iter().try_for_each(|l| writeln!(out, "{l}")),
                Err(e) => return fail(&e),
            }
        }
        Command::CheckConfig { path } => match config::load(&path) {
            Ok(config) => write!(out, "{}", config.describe())
                .and_then(|()| writeln!(out, "{}: valid", path.display())),
            Err(e) => {
                eprintln!("leakguard: {e}");
                return ExitCode::from(exit::FAILURE);
            }
        },
        Command::Headers => headers(&mut out),
        Command::Audit {
            config,
            format,
            capture,
        } => match leakguard::audit::run(&config, &capture, format, &mut out) {
            Ok(()) => Ok(()),
            Err(e) => return fail(&e),
        },
        Command::GenerateAssets { out: dir } => leakguard::cli::generate_assets(&dir),
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

fn fail(e: &anyhow::Error) -> ExitCode {
    tracing::error!("{e:#}");
    ExitCode::from(exit::FAILURE)
}

/// The pinned state: `--pin-path`, or the policy file's `daemon.pin_path`.
fn pins_of(config: &std::path::Path, pin_path: Option<&std::path::Path>) -> anyhow::Result<Pins> {
    if let Some(p) = pin_path {
        return Ok(Pins::new(p));
    }
    let c = config::load(config)
        .map_err(|e| anyhow::anyhow!("{e} (to act on the pinned state anyway, pass --pin-path)"))?;
    Ok(Pins::new(&c.pin_path))
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LEAKGUARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal());
    match format {
        LogFormat::Text => b.with_target(false).init(),
        LogFormat::Json => b.json().init(),
    }
}

fn headers(out: &mut impl io::Write) -> io::Result<()> {
    writeln!(out, "{:<30} {:<12} seen at", "header", "carries")?;
    for e in CATALOG {
        writeln!(out, "{:<30} {:<12} {}", e.header, e.kind.name(), e.source)?;
    }
    Ok(())
}
