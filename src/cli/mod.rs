//! The command-line tools built into `weir`: `topic`, `produce`,
//! `consume`, `group` and `cluster`. They speak the Kafka protocol through
//! [`crate::client`], so they work against any Kafka-compatible broker.
//! `fault` speaks HTTP to a Weir broker's fault injection API.
//!
//! Conventions: exit status 0 on success and 1 on any failure (2 for usage
//! errors, from clap); one error line on stderr naming the broker address
//! and Kafka's error name; `--format json` prints machine-readable output
//! (one document, or one object per record for `consume`).

mod consume;
mod fault;
mod group;
mod output;
mod produce;
mod topic;

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use crate::client::{Client, ClientError};

pub use fault::{run as fault, FaultArgs};
pub use output::escape_bytes;

/// Options every client command takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Broker address(es), HOST:PORT[,HOST:PORT].
    #[arg(
        short = 'b',
        long = "bootstrap-server",
        env = "WEIR_BOOTSTRAP_SERVER",
        hide_env_values = true,
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub bootstrap: String,
    /// Kafka client properties for a secured listener: security.protocol,
    /// sasl.mechanism, sasl.username/sasl.password (or sasl.jaas.config),
    /// ssl.ca.location, ssl.certificate.location/ssl.key.location.
    #[arg(long = "command-config", value_name = "FILE", global = true)]
    pub command_config: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    pub format: Format,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Readable text and tables.
    Text,
    /// JSON: one document (one object per line for `consume`).
    Json,
}

/// `weir topic ...`
#[derive(Args, Debug)]
pub struct TopicArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: TopicCommand,
}

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create(topic::CreateArgs),
    /// List topics.
    List,
    /// Describe a topic: id, partitions with start/end offsets, non-default configs.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Set or delete topic configs.
    AlterConfig(topic::AlterConfigArgs),
    /// Grow a topic to a total number of partitions.
    AddPartitions {
        /// Topic name.
        name: String,
        /// The new total number of partitions.
        #[arg(long)]
        total: i32,
    },
    /// Delete topics.
    Delete {
        /// Topic names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// `weir group ...`
#[derive(Args, Debug)]
pub struct GroupArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: GroupCommand,
}

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups.
    List,
    /// Describe a group: state, members, and per partition the committed
    /// offset, end offset and lag.
    Describe {
        /// Group id.
        group: String,
    },
    /// Move a group's committed offsets (dry run unless --execute).
    ResetOffsets(group::ResetArgs),
    /// Delete groups (only empty ones).
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

/// `weir cluster ...`
#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Cluster id, brokers, controller and the API versions the broker offers.
    Info,
}

/// Produce arguments, with the common options.
#[derive(Args, Debug)]
pub struct ProduceCmd {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub args: produce::ProduceArgs,
}

/// Consume arguments, with the common options.
#[derive(Args, Debug)]
pub struct ConsumeCmd {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub args: consume::ConsumeArgs,
}

/// Runs a client command on a fresh single-threaded runtime.
fn run<F, Fut>(common: &Common, f: F) -> ExitCode
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<(), CliError>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weir: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let security = match &common.command_config {
            None => crate::client::ClientSecurity::default(),
            Some(path) => crate::client::ClientSecurity::from_file(path).map_err(|message| {
                ClientError::Other {
                    addr: common.bootstrap.clone(),
                    message,
                }
            })?,
        };
        let client = Client::connect_with(&common.bootstrap, security).await?;
        f(client).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir: {e}");
            ExitCode::from(1)
        }
    }
}

/// A command's failure: from the broker, or about the input.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Usage(String),
    /// Some items failed; each was already reported.
    #[error("{0}")]
    Partial(String),
}

pub fn topic(a: TopicArgs) -> ExitCode {
    let format = a.common.format;
    run(&a.common, move |c| topic::run(c, a.command, format))
}

pub fn group(a: GroupArgs) -> ExitCode {
    let format = a.common.format;
    run(&a.common, move |c| group::run(c, a.command, format))
}

pub fn cluster(a: ClusterArgs) -> ExitCode {
    let format = a.common.format;
    run(&a.common, move |c| group::cluster_info(c, format))
}

pub fn produce(a: ProduceCmd) -> ExitCode {
    let format = a.common.format;
    run(&a.common, move |c| produce::run(c, a.args, format))
}

pub fn consume(a: ConsumeCmd) -> ExitCode {
    let format = a.common.format;
    run(&a.common, move |c| consume::run(c, a.args, format))
}
