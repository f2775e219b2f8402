//! Part `e2e`: wrk through the gateway to nginx under every setup, in alternating rounds,
//! with the kernel's and the daemon's figures for leakguard.

use std::{
    net::SocketAddr,
    process::{Child, Stdio},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};
use leakguard::kernel::object::{PROG_TC_EGRESS, PROG_XDP};
use leakguard_tests::{
    bpfstats,
    daemon::{wait_for, Daemon},
    gateway::{GW_CLI, GW_CLI_IF, GW_UP_IF, SRV},
    guard::{PROG_BASELINE_TC, PROG_BASELINE_XDP},
    http::{ACR, MSISDN, UIDH},
    netns::Netns,
};
use serde_json::{json, Value};

use crate::{
    accounting::{prog_map_bytes, prog_stats},
    net::{attach_empty, topology, Topo},
    timing::{median, median_ci, median_confidence},
    Cfg,
};

pub fn e2e(cfg: &Cfg) -> Result<Value> {
    let t = topology()?;
    let _nginx = nginx(&t)?;
    let accounting = bpfstats::Setting::new(true)?;
    // Warm up (ARP, nginx, and the machine after the parts before).
    let _ = wrk(&t, &format!("http://{SRV}/"), 3)?;
    // Rounds of every setup in turn, each round starting one setup later, so that drift
    // in the machine's speed falls on all of them alike; each run is compared with the
    // no-filter run of its own round.
    let mut runs: Vec<Vec<(Load, Value)>> = SETUPS.iter().map(|_| Vec::new()).collect();
    for round in 0..cfg.e2e_rounds {
        for k in 0..SETUPS.len() {
            let i = (k + round) % SETUPS.len();
            runs[i].push(e2e_run(&t, cfg, SETUPS[i].1)?);
            // The per-packet figures need the kernel's accounting on throughout.
            if !bpfstats::enabled()? {
                bail!(
                    "kernel.bpf_stats_enabled was turned off during the run (by another process?)"
                );
            }
        }
    }
    drop(accounting);

    let (_, conf) = median_confidence(cfg.e2e_rounds);
    println!(
        "\n## End to end: wrk (2 threads, 32 connections, {} s each, identity headers by Lua) → nginx, through the gateway; {}; medians of {} alternating rounds, in brackets {}\n",
        cfg.e2e_secs,
        match pinning() {
            Some((load, server)) => format!("wrk pinned to CPU {load} (the gateway's forwarding runs there too, in its softirq), nginx to CPU {server}, HAProxy not pinned"),
            None => "one CPU, nothing pinned".to_owned(),
        },
        cfg.e2e_rounds,
        if cfg.e2e_rounds > 1 {
            format!("the interval that holds the median with {:.1}% confidence (order statistics of the rounds)", 100.0 * conf)
        } else {
            "the one round (no interval)".to_owned()
        }
    );
    println!("| run | kernel ns per real packet | % of a CPU in the program | requests/s | vs no filter | p50 ms | p99 ms | p99 vs no filter | maps MiB | daemon peak RSS MiB | daemon CPU % |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let base = &runs[0];
    let mut rows = Vec::new();
    for ((name, _), rs) in SETUPS.iter().zip(&runs) {
        let ratio = |f: fn(&Load) -> f64| -> Vec<f64> {
            rs.iter()
                .zip(base)
                .map(|(r, b)| f(&r.0) / f(&b.0))
                .collect()
        };
        let (lo, rps_ratio, hi) = median_ci(ratio(|l| l.rps));
        let p50_ratio = median(ratio(|l| l.p50_ms));
        let p99_ratio = median(ratio(|l| l.p99_ms));
        let extra = |k: &str| median_of(rs.iter().map(|r| r.1.get(k).and_then(Value::as_f64)));
        let cell = |v: Option<f64>, scale: f64, digits: usize| {
            v.map_or("–".to_owned(), |x| format!("{:.*}", digits, x / scale))
        };
        let ns: Vec<f64> = rs
            .iter()
            .filter_map(|r| r.1.get("kernel_ns_per_packet").and_then(Value::as_f64))
            .collect();
        let ns_cell = if ns.is_empty() {
            "–".to_owned()
        } else {
            let (a, m, b) = median_ci(ns);
            format!("**{m:.0}** ({a:.0}–{b:.0})")
        };
        let rps = median(rs.iter().map(|r| r.0.rps).collect());
        let p50 = median(rs.iter().map(|r| r.0.p50_ms).collect());
        let p99 = median(rs.iter().map(|r| r.0.p99_ms).collect());
        println!(
            "| {name} | {ns_cell} | {} | {rps:.0} | {:.1}% ({:.1}–{:.1}%) | {p50:.2} | {p99:.2} | {:+.1}% | {} | {} | {} |",
            cell(extra("kernel_cpu_share"), 0.01, 1),
            100.0 * rps_ratio,
            100.0 * lo,
            100.0 * hi,
            100.0 * (p99_ratio - 1.0),
            cell(extra("map_bytes"), 1024.0 * 1024.0, 1),
            cell(extra("daemon_peak_rss_kib"), 1024.0, 1),
            cell(extra("daemon_cpu_percent"), 1.0, 1),
        );
        let rounds: Vec<Value> = rs
            .iter()
            .map(|(l, e)| {
                let mut r = json!({"requests_per_s": l.rps, "requests": l.requests,
                    "p50_ms": l.p50_ms, "p99_ms": l.p99_ms});
                if let (Value::Object(r), Value::Object(e)) = (&mut r, e) {
                    r.extend(e.clone());
                }
                r
            })
            .collect();
        rows.push(
            json!({"run": name, "requests_per_s": rps, "p50_ms": p50, "p99_ms": p99,
            "rps_vs_no_filter": rps_ratio, "rps_vs_no_filter_ci": [lo, hi, conf],
            "p50_vs_no_filter": p50_ratio, "p99_vs_no_filter": p99_ratio,
            "kernel_ns_per_packet": extra("kernel_ns_per_packet"),
            "kernel_cpu_share": extra("kernel_cpu_share"),
            "map_bytes": extra("map_bytes"), "daemon_peak_rss_kib": extra("daemon_peak_rss_kib"),
            "daemon_cpu_percent": extra("daemon_cpu_percent"), "rounds": rounds}),
        );
    }
    // Two comparisons round by round: the NIC-like redact run against the same receive
    // path without a filter (the empty XDP program alone), and TC redact against HAProxy.
    let at = |name: &str| SETUPS.iter().position(|(n, _)| *n == name);
    for (a, b, what) in [
        (NIC_LIKE_REDACT, EMPTY_XDP_CLIENT, "TC redact with skbs received as from a NIC, against the same receive path without a filter (the empty XDP program alone)"),
        (TC_REDACT, HAPROXY, "TC redact's requests/s against HAProxy's"),
    ] {
        let (Some(a), Some(b)) = (at(a), at(b)) else {
            continue;
        };
        let r: Vec<f64> = runs[a]
            .iter()
            .zip(&runs[b])
            .map(|(x, y)| x.0.rps / y.0.rps)
            .collect();
        let (lo, m, hi) = median_ci(r);
        println!("\n{what}: {m:.3}× ({lo:.3}–{hi:.3}).");
        rows.push(json!({"run": what, "ratio": m, "ci": [lo, hi, conf]}));
    }
    let _ = std::fs::remove_dir_all(&t.dir);
    Ok(Value::Array(rows))
}

/// The share of one CPU that `ns` of program time over a run is.
fn cpu_share(ns: u64, cfg: &Cfg) -> f64 {
    ns as f64 / (cfg.e2e_secs as f64 * 1e9)
}

/// Median of a field over rounds (None when no round has it).
fn median_of(vals: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = vals.flatten().collect();
    (!v.is_empty()).then(|| median(v))
}

const DAEMON_RULES: &str = "[[rule]]\nheader = \"X-MSISDN\"\naction = \"redact\"\n\n[[rule]]\nheader = \"X-UIDH\"\naction = \"redact\"\n\n[[rule]]\nheader = \"X-ACR\"\naction = \"count\"\n";

/// One end-to-end configuration.
#[derive(Clone, Copy)]
enum Setup {
    Direct,
    /// The empty program of a hook attached where leakguard would be: the floor of any
    /// filter on that hook.
    Empty {
        xdp: bool,
        iface: &'static str,
    },
    Leakguard {
        hook: &'static str,
        iface: &'static str,
        prog: &'static str,
        action: &'static str,
        /// With the empty XDP program on the gateway's client side: veth then copies every
        /// skb it receives into a page of its own, as a NIC driver builds them, where
        /// otherwise the gateway forwards the client's own skb, a clone that TCP keeps for
        /// retransmission (which a write into its payload must first copy).
        nic_like: bool,
    },
    Haproxy,
}

const NIC_LIKE_REDACT: &str =
    "leakguard TC egress (gateway → server), redact, skbs received as from a NIC";

const EMPTY_XDP_CLIENT: &str = "empty XDP program (gateway's client side)";

const TC_REDACT: &str = "leakguard TC egress (gateway → server), redact";

const HAPROXY: &str = "HAProxy in the gateway, del-header";

const SETUPS: [(&str, Setup); 8] = [
    ("no filter", Setup::Direct),
    (
        "empty TC egress program (gateway → server)",
        Setup::Empty {
            xdp: false,
            iface: GW_UP_IF,
        },
    ),
    (
        "leakguard TC egress (gateway → server), count",
        Setup::Leakguard {
            hook: "tc-egress",
            iface: GW_UP_IF,
            prog: PROG_TC_EGRESS,
            action: "count",
            nic_like: false,
        },
    ),
    (
        TC_REDACT,
        Setup::Leakguard {
            hook: "tc-egress",
            iface: GW_UP_IF,
            prog: PROG_TC_EGRESS,
            action: "redact",
            nic_like: false,
        },
    ),
    (
        NIC_LIKE_REDACT,
        Setup::Leakguard {
            hook: "tc-egress",
            iface: GW_UP_IF,
            prog: PROG_TC_EGRESS,
            action: "redact",
            nic_like: true,
        },
    ),
    (
        "leakguard XDP (gateway's client side), count",
        Setup::Leakguard {
            hook: "xdp",
            iface: GW_CLI_IF,
            prog: PROG_XDP,
            action: "count",
            nic_like: false,
        },
    ),
    (
        EMPTY_XDP_CLIENT,
        Setup::Empty {
            xdp: true,
            iface: GW_CLI_IF,
        },
    ),
    (HAPROXY, Setup::Haproxy),
];

/// One wrk run through `setup`, with the kernel's and the daemon's figures for leakguard.
fn e2e_run(t: &Topo, cfg: &Cfg, setup: Setup) -> Result<(Load, Value)> {
    let direct = format!("http://{SRV}/");
    match setup {
        Setup::Direct => Ok((wrk(t, &direct, cfg.e2e_secs)?, json!({}))),
        Setup::Empty { xdp, iface } => {
            let prog = if xdp {
                PROG_BASELINE_XDP
            } else {
                PROG_BASELINE_TC
            };
            let ebpf = attach_empty(t, xdp, iface)?;
            let before = prog_stats(prog)?;
            let load = wrk(t, &direct, cfg.e2e_secs)?;
            let after = prog_stats(prog)?;
            drop(ebpf);
            let runs_n = after.1 - before.1;
            let ns = (after.0 - before.0) as f64 / runs_n.max(1) as f64;
            Ok((
                load,
                json!({"kernel_ns_per_packet": ns, "kernel_packets": runs_n,
                       "kernel_cpu_share": cpu_share(after.0 - before.0, cfg)}),
            ))
        }
        Setup::Haproxy => {
            let _hap = haproxy(t)?;
            let url = format!("http://{GW_CLI}/");
            // Warm up: HAProxy's first connections to the server.
            let _ = wrk(t, &url, 1)?;
            Ok((wrk(t, &url, cfg.e2e_secs)?, json!({})))
        }
        Setup::Leakguard {
            hook,
            iface,
            prog,
            action,
            nic_like,
        } => {
            let _nic = if nic_like {
                Some(attach_empty(t, true, GW_CLI_IF)?)
            } else {
                None
            };
            let rules = DAEMON_RULES.replace("\"redact\"", &format!("\"{action}\""));
            let body = format!("[[attach]]\ninterface = \"{iface}\"\nhook = \"{hook}\"\n\n[scan]\nbuiltin_catalog = \"off\"\n\n{rules}");
            let mut d = Daemon::new(&t.net.gw, &body)?;
            d.start()?;
            let cpu_before = d.pid().and_then(cpu_secs);
            let before = prog_stats(prog)?;
            let load = wrk(t, &direct, cfg.e2e_secs)?;
            let after = prog_stats(prog)?;
            let cpu_after = d.pid().and_then(cpu_secs);
            let daemon_cpu = match (cpu_before, cpu_after) {
                (Some(a), Some(b)) => Some(100.0 * (b - a) / cfg.e2e_secs as f64),
                _ => None,
            };
            let runs_n = after.1 - before.1;
            let ns = if runs_n > 0 {
                (after.0 - before.0) as f64 / runs_n as f64
            } else {
                0.0
            };
            let maps = prog_map_bytes(prog)?;
            let rss = d.pid().and_then(vm_hwm_kib).unwrap_or(0);
            d.stop()?;
            let _ = d.cli("detach");
            Ok((
                load,
                json!({"kernel_ns_per_packet": ns, "kernel_packets": runs_n,
                       "kernel_cpu_share": cpu_share(after.0 - before.0, cfg),
                       "map_bytes": maps, "daemon_peak_rss_kib": rss,
                       "daemon_cpu_percent": daemon_cpu}),
            ))
        }
    }
}

/// A background process in a process group of its own, killed with the whole group on
/// drop (nginx's workers outlive a killed master otherwise).
struct Bg(Child);

impl Bg {
    fn spawn(cmd: &mut std::process::Command) -> std::io::Result<Self> {
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0).spawn().map(Self)
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this child leads.
        unsafe { libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn wait_port(ns: &Netns, to: SocketAddr) -> Result<()> {
    wait_for(&format!("{to} to accept"), Duration::from_secs(10), || {
        ns.enter(|| std::net::TcpStream::connect_timeout(&to, Duration::from_millis(200)).is_ok())
            .unwrap_or(false)
    })
}

fn nginx(t: &Topo) -> Result<Bg> {
    let conf = t.dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx.err;\n\
             events {{ worker_connections 4096; }}\n\
             http {{ access_log off; keepalive_requests 1000000;\n\
               client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};\n\
               uwsgi_temp_path {d}; scgi_temp_path {d};\n\
               server {{ listen {SRV}:80; location / {{ return 200 \"ok\\n\"; }} }} }}\n",
            d = t.dir.display()
        ),
    )?;
    let bg = Bg::spawn(
        pinned(&t.net.srv, "nginx", pinning().map(|p| p.1))
            .args(["-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .context("nginx (Debian's nginx-light, installed by `cargo xtask setup`)")?;
    wait_port(&t.net.srv, SocketAddr::new(SRV.parse()?, 80))?;
    Ok(bg)
}

fn haproxy(t: &Topo) -> Result<Bg> {
    let conf = t.dir.join("haproxy.cfg");
    std::fs::write(
        &conf,
        format!(
            "global\n  maxconn 8192\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             frontend fe\n  bind {GW_CLI}:80\n  http-request del-header X-MSISDN\n  http-request del-header X-UIDH\n  http-request del-header X-ACR\n  default_backend be\n\
             backend be\n  http-reuse always\n  server s1 {SRV}:80\n"
        ),
    )?;
    let bg = Bg::spawn(
        t.net
            .gw
            .command("haproxy")
            .args(["-db", "-f"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .context("haproxy (Debian's haproxy, installed by `cargo xtask setup`)")?;
    wait_port(&t.net.cli, SocketAddr::new(GW_CLI.parse()?, 80))?;
    Ok(bg)
}

/// The CPUs of the load (wrk) and of the server (nginx), apart so that neither takes the
/// other's; the gateway's work on a request runs in softirq on the CPU that sent it, so
/// it shares wrk's, where its cost shows in wrk's requests/s. None on a single CPU.
fn pinning() -> Option<(usize, usize)> {
    let cpus = crate::mix::allowed_cpus().ok()?;
    match cpus.as_slice() {
        [first, .., last] => Some((*first, *last)),
        _ => None,
    }
}

/// `program` in `ns`, pinned to `cpu` by taskset (util-linux) when given.
fn pinned(ns: &Netns, program: &str, cpu: Option<usize>) -> std::process::Command {
    match cpu {
        Some(cpu) => {
            let mut c = ns.command("taskset");
            c.args(["-c", &cpu.to_string(), program]);
            c
        }
        None => ns.command(program),
    }
}

/// wrk's figures: requests per second and latency percentiles in ms.
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
}

fn wrk(t: &Topo, url: &str, secs: u64) -> Result<Load> {
    let lua = t.dir.join("headers.lua");
    std::fs::write(
        &lua,
        format!(
            "wrk.headers[\"X-MSISDN\"] = \"{MSISDN}\"\nwrk.headers[\"X-UIDH\"] = \"{UIDH}\"\nwrk.headers[\"X-ACR\"] = \"{ACR}\"\n"
        ),
    )?;
    let out = pinned(&t.net.cli, "wrk", pinning().map(|p| p.0))
        .args(["-t2", "-c32", &format!("-d{secs}s"), "--latency", "-s"])
        .arg(&lua)
        .arg(url)
        .output()
        .context("wrk (Debian's wrk, installed by `cargo xtask setup`)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("Non-2xx") || text.contains("Socket errors") {
        bail!("wrk against {url} failed or saw errors:\n{text}");
    }
    let ms = |s: &str| -> Option<f64> {
        let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
        let v: f64 = num.parse().ok()?;
        Some(match unit {
            "us" => v / 1000.0,
            "ms" => v,
            "s" => v * 1000.0,
            _ => return None,
        })
    };
    let pct = |p: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(p).and_then(|r| ms(r.trim())))
    };
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok());
    let requests = text
        .lines()
        .find_map(|l| {
            l.split_once(" requests in ")
                .map(|(n, _)| n.trim().parse().ok())
        })
        .flatten();
    match (rps, pct("50%"), pct("99%"), requests) {
        (Some(rps), Some(p50_ms), Some(p99_ms), Some(requests)) => Ok(Load {
            rps,
            p50_ms,
            p99_ms,
            requests,
        }),
        _ => bail!("cannot read wrk's output:\n{text}"),
    }
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // utime and stime: fields 14 and 15 of proc(5), 12 and 13 after the name.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks as f64 / hz as f64)
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
