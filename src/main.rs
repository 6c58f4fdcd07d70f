//! homeostat's command line. Parsing and dispatch only: every command is a
//! library call. `anyhow` lives here and nowhere else.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

/// Autoscaling monitoring-and-remediation agent: scrapes metrics, evaluates
/// remediation rules, acts through providers, and explains every decision in an
/// audit log.
#[derive(Parser)]
#[command(name = "homeostat", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent with a config file.
    Run {
        /// Agent config file.
        #[arg(
            short,
            long,
            default_value = "homeostat.yaml",
            env = "HOMEOSTAT_CONFIG"
        )]
        config: PathBuf,
    },
    /// Validate the config and every rule file it names, or the rule files
    /// given (against the config's targets and sources, like `promtool check
    /// rules`); print all errors with file:line:column.
    Check {
        /// Agent config file.
        #[arg(
            short,
            long,
            default_value = "homeostat.yaml",
            env = "HOMEOSTAT_CONFIG"
        )]
        config: PathBuf,
        /// Rule files to check instead of the config's `rule_files`.
        files: Vec<PathBuf>,
    },
    /// Run rule unit tests (promtool's `test rules` format, plus `action_tests`);
    /// non-zero exit on any failure.
    Test {
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Read or verify the audit log.
    Audit(AuditArgs),
    /// Run the self-contained demo: demo service, load, agent, faults, and a report.
    Demo {
        /// Keep the agent (and its replicas) running after the scenario; stop with Ctrl-C.
        #[arg(long)]
        keep: bool,
        /// Where the demo keeps its data (default: a fresh temporary directory).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address of the demo agent's HTTP API.
        #[arg(long, default_value = "127.0.0.1:9798")]
        listen: String,
    },
    /// The demo HTTP service (what the demo's replicas run).
    DemoService(homeostat::demo::service::DemoServiceArgs),
    /// Exit 0 if `GET http://<host>:<port><path>` answers 2xx in time, else 1.
    /// For container health checks (images built `FROM scratch` have no curl).
    Healthcheck {
        /// Port to probe.
        #[arg(long)]
        port: u16,
        /// Host to probe.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// HTTP path that answers 2xx when healthy.
        #[arg(long, default_value = "/healthz")]
        path: String,
        /// Give up after this long.
        #[arg(long, default_value = "2s", value_parser = homeostat::spec::parse_duration)]
        timeout: std::time::Duration,
    },
}

#[derive(Args)]
struct AuditArgs {
    #[command(subcommand)]
    verify: Option<AuditCommand>,
    /// Directory holding the audit log (the agent's `<data_dir>/audit`).
    /// Default: found from `--config`, else `data/audit`.
    #[arg(short, long, global = true, conflicts_with = "config")]
    dir: Option<PathBuf>,
    /// The agent's config: its log is `<data_dir>/audit`, with `data_dir`
    /// resolved as the agent resolves it (relative to the config file).
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    /// Only events newer than this: a duration ago (`10m`, `2h`) or an RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Only events of this rule.
    #[arg(long)]
    rule: Option<String>,
    /// Only events on this target.
    #[arg(long)]
    target: Option<String>,
    /// Only these event kinds (repeatable or comma-separated), e.g. `action_started,suppressed`.
    #[arg(long, value_delimiter = ',')]
    event: Vec<String>,
    /// Print raw JSON lines instead of the human format.
    #[arg(long)]
    json: bool,
    /// Keep printing new events as they are written.
    #[arg(short, long)]
    follow: bool,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the sha-256 hash chain across all files; non-zero exit on a break.
    Verify,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One rustls crypto provider for the whole process, before any TLS client exists.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Worker and blocking threads evaluate queries: sized for the
        // deepest query the pre-parse check lets through.
        .thread_stack_size(homeostat::query::limits::THREAD_STACK_BYTES)
        .build()
        .context("starting the tokio runtime")
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => run_agent(&config),
        Command::Check { config, files } => Ok(check(&config, &files)),
        Command::Test { files } => Ok(
            match homeostat::ruletest::run_cli(&files, &mut std::io::stdout()) {
                true => ExitCode::SUCCESS,
                false => ExitCode::from(1),
            },
        ),
        Command::Audit(args) => audit(args),
        Command::Demo {
            keep,
            data_dir,
            listen,
        } => demo(keep, data_dir, listen),
        Command::DemoService(args) => {
            runtime()?.block_on(homeostat::demo::service::run(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Healthcheck {
            port,
            host,
            path,
            timeout,
        } => {
            let healthy = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?
                .block_on(homeostat::providers::health::probe(
                    &host, port, &path, timeout,
                ));
            Ok(if healthy {
                ExitCode::SUCCESS
            } else {
                eprintln!("unhealthy: GET http://{host}:{port}{path} did not answer 2xx within {timeout:?}");
                ExitCode::from(1)
            })
        }
    }
}

fn run_agent(config: &std::path::Path) -> anyhow::Result<ExitCode> {
    let cfg = match homeostat::config::load(config) {
        Ok(c) => c,
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            anyhow::bail!("{} error(s) in the configuration", diags.len());
        }
    };
    let format = match cfg.log.format {
        homeostat::config::LogFormat::Pretty => homeostat::telemetry::LogFormat::Pretty,
        homeostat::config::LogFormat::Json => homeostat::telemetry::LogFormat::Json,
    };
    homeostat::telemetry::init_logging(format, &cfg.log.level)?;
    // The soft descriptor limit up to the hard one; the HTTP connection cap
    // keeps half of it for scrapes, providers and the audit log.
    let fds = homeostat::server::conn::raise_fd_limit();
    tracing::info!(open_files_limit = ?fds, "file descriptor limit");
    let rt = runtime()?;
    rt.block_on(async move {
        let clock = homeostat::clock::Clock::system();
        let agent = homeostat::agent::Agent::start(cfg, clock, Default::default()).await?;
        // SIGHUP reloads the rules; SIGTERM and Ctrl-C stop the agent.
        let reloader = agent.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hup.recv().await.is_some() {
                let _ = reloader.reload("sighup").await;
            }
        });
        agent.run(shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn check(config: &std::path::Path, files: &[PathBuf]) -> ExitCode {
    let result = if files.is_empty() {
        homeostat::agent::check(config)
    } else {
        homeostat::agent::check_files(config, files)
    };
    match result {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            eprintln!("{} error(s)", diags.len());
            ExitCode::from(1)
        }
    }
}

/// The log directory `homeostat audit` reads: `--dir`, else the config's
/// `<data_dir>/audit`, else `data/audit`; refused when it holds no log.
fn audit_dir(args: &AuditArgs) -> anyhow::Result<PathBuf> {
    let dir = match (&args.dir, &args.config) {
        (Some(d), _) => d.clone(),
        (None, Some(config)) => match homeostat::config::load(config) {
            Ok(c) => c.data_dir.join("audit"),
            Err(diags) => {
                for d in &diags {
                    eprintln!("{d}");
                }
                anyhow::bail!(
                    "cannot find the audit log: {} does not load",
                    config.display()
                );
            }
        },
        (None, None) => PathBuf::from("data/audit"),
    };
    homeostat::audit::existing_log(&dir)?;
    Ok(dir)
}

fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    use homeostat::audit;
    let dir = audit_dir(&args)?;
    if let Some(AuditCommand::Verify) = args.verify {
        let report = audit::verify(&dir)?;
        println!("{report}");
        return Ok(if report.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        });
    }
    let now = homeostat::clock::Clock::system().now_ms();
    let filter = audit::cli::filter_from_args(
        args.since.as_deref(),
        args.rule.as_deref(),
        args.target.as_deref(),
        &args.event,
        None,
        now,
    )?;
    let mut out = std::io::stdout().lock();
    if args.follow {
        audit::cli::follow(&dir, &filter, args.json, &mut out, || false)?;
    } else {
        audit::cli::show(&dir, &filter, args.json, &mut out)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn demo(keep: bool, data_dir: Option<PathBuf>, listen: String) -> anyhow::Result<ExitCode> {
    homeostat::telemetry::init_logging(homeostat::telemetry::LogFormat::Pretty, "warn")?;
    let (data_dir, _tmp) = match data_dir {
        Some(d) => (d, None),
        None => {
            let t = std::env::temp_dir().join(format!("homeostat-demo-{}", std::process::id()));
            (t.clone(), Some(t))
        }
    };
    let opts = homeostat::demo::scenario::DemoOptions {
        keep,
        data_dir,
        listen,
        first_port: 18100,
    };
    runtime()?.block_on(homeostat::demo::scenario::run(opts))?;
    Ok(ExitCode::SUCCESS)
}
