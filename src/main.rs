//! The `weir` binary: parses arguments, loads configuration and calls
//! [`weir::run`]. Everything else lives in the library.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use weir::server::BoundListener;
use weir::{cli, Broker, Config};

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "A Kafka wire-protocol-compatible single-node broker, and tools for any Kafka-compatible broker",
    after_help = "The client commands take -b/--bootstrap-server HOST:PORT[,HOST:PORT] \
(default 127.0.0.1:9092, or $WEIR_BOOTSTRAP_SERVER), --command-config FILE (Kafka client \
properties for TLS/SASL listeners) and --format text|json. \
They exit 0 on success and 1 on any failure, with one error line on stderr."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Create, list, describe, configure, grow and delete topics.
    Topic(cli::TopicArgs),
    /// Produce one record per line of standard input.
    Produce(cli::ProduceCmd),
    /// Print records of a topic, alone or as a member of a consumer group.
    Consume(cli::ConsumeCmd),
    /// List, describe, reset and delete consumer groups.
    Group(cli::GroupArgs),
    /// Show the cluster: id, brokers, controller, API versions.
    Cluster(cli::ClusterArgs),
    /// Inject faults into a Weir broker (its HTTP listener): errors,
    /// delays, disconnects, throttling.
    Fault(cli::FaultArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file (keys as in config/weir.toml); flags override it.
    #[arg(long)]
    config: Option<String>,
    /// Address to listen on [default: 127.0.0.1:9092].
    #[arg(long)]
    listen: Option<String>,
    /// Data directory [default: ./data].
    #[arg(long)]
    data_dir: Option<String>,
    /// Use a temporary data directory, removed at exit (for CI).
    #[arg(long, conflicts_with = "data_dir")]
    ephemeral: bool,
    /// Host to advertise in Metadata instead of the automatic choice.
    #[arg(long)]
    advertised_host: Option<String>,
    /// Advertise and serve the API versions of this Apache Kafka release
    /// (2.1 to 4.2), to test a client against an older Kafka.
    #[arg(long)]
    emulate_kafka_version: Option<String>,
}

fn main() -> ExitCode {
    // `weir serve` is parsed on its own: building the whole command tree
    // (every tool's subcommands and flags) took ~0.15 ms of a ~3 ms
    // start-up.
    let command = if std::env::args_os().nth(1).is_some_and(|a| a == "serve") {
        use clap::{Args, FromArgMatches};
        let cmd = ServeArgs::augment_args(
            clap::Command::new("serve")
                .bin_name("weir serve")
                .about("Run the broker until SIGINT or SIGTERM."),
        );
        let m = cmd.get_matches_from(std::env::args_os().skip(1));
        Command::Serve(ServeArgs::from_arg_matches(&m).unwrap_or_else(|e| e.exit()))
    } else {
        Cli::parse().command
    };
    let args = match command {
        Command::Serve(args) => args,
        Command::Topic(a) => return cli::topic(a),
        Command::Produce(a) => return cli::produce(a),
        Command::Consume(a) => return cli::consume(a),
        Command::Group(a) => return cli::group(a),
        Command::Cluster(a) => return cli::cluster(a),
        Command::Fault(a) => return cli::fault(a),
    };
    // Colours only on a terminal: a log redirected to a file or a pipe
    // carries no escape sequences.
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // EnvFilter only when RUST_LOG asks for it: building one cost ~0.1 ms
    // of start-up, a plain level costs nothing.
    match std::env::var_os("RUST_LOG") {
        Some(_) => fmt
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init(),
        None => fmt.with_max_level(tracing::Level::INFO).init(),
    }
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir: {e}");
            ExitCode::from(2)
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(h) = args.advertised_host {
        config.advertised_host = h;
    }
    if let Some(v) = args.emulate_kafka_version {
        config.emulate_kafka_version = v;
    }
    // Kept alive until the broker has shut down; dropping it removes the dir.
    let ephemeral = if args.ephemeral {
        Some(tempfile::Builder::new().prefix("weir-").tempdir()?)
    } else {
        None
    };
    if let Some(dir) = &ephemeral {
        config.data_dir = dir.path().to_string_lossy().into_owned();
    }
    config.validate()?;
    let config = Arc::new(config);
    // The data directory opens on its own thread while the runtime starts
    // and the listeners bind: the two were about equal shares of start-up.
    let opening = std::thread::spawn({
        let config = config.clone();
        move || Broker::open_unbound(config)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listeners = BoundListener::bind_all(&config).await?;
        let addr = listeners[0].local_addr()?;
        let mut broker = opening
            .join()
            .map_err(|_| anyhow::anyhow!("opening the data directory panicked"))??;
        broker.bound_to(addr);
        let broker = Arc::new(broker);
        let mut http_extra = String::new();
        // The HTTP listener is a convenience: a broker that cannot have it
        // (another one holds the port) still serves Kafka.
        match weir::http::bind(&config.http_listen).await {
            Ok(Some(http)) => {
                http_extra = format!("; HTTP on {}", http.local_addr()?);
                tokio::spawn(weir::http::serve(http, broker.clone()));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(address = %config.http_listen, error = %e, "HTTP listener (http-listen) not started");
            }
        }
        let shutdown = shutdown_signal()?;
        let mut extra = String::new();
        for l in &listeners[1..] {
            extra.push_str(&format!("; {} on {}", l.protocol().name(), l.local_addr()?));
        }
        // The one stable readiness line scripts wait for.
        println!(
            "weir ready: listening on {addr} (data dir {}){extra}{http_extra}",
            config.data_dir
        );
        weir::server::run_listeners(listeners, broker, shutdown).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    drop(ephemeral);
    Ok(())
}

/// Installs the SIGTERM/SIGINT handlers now (before readiness is announced,
/// so a signal sent right after the readiness line is never fatal) and
/// returns the future that completes on either signal.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
