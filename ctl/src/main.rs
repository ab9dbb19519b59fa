use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use swimlb_ctl::documents::{Document, read_documents};
use swimlb_ctl::{migrate, status, to_yaml_stream, validate};

/// swimlb's operator tool. Also works as a kubectl plugin when installed (or linked) as
/// `kubectl-swimlb`.
#[derive(Parser, Debug)]
#[command(name = "swimlbctl", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Checks IPAddressPools, legacy ConfigMaps and L2Advertisements as swimlb would, before
    /// applying them.
    /// Exits 1 when anything is invalid.
    Validate {
        /// YAML files (one or more documents each, `kind: List` allowed).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Translates MetalLB configuration (the legacy ConfigMap, metallb.io IPAddressPools and
    /// L2Advertisements) into swimlb objects on stdout; lists on stderr what has no
    /// equivalent, and why.
    MigrateMetallb {
        /// MetalLB YAML files, for example from `kubectl get -n metallb-system
        /// configmap/config ipaddresspools.metallb.io l2advertisements.metallb.io -o yaml`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Namespace of the objects written (the controller's).
        #[arg(long, env = "SWIMLB_NAMESPACE", default_value = "swimlb-system")]
        namespace: String,
        /// Exit 2 when anything could not be translated.
        #[arg(long)]
        strict: bool,
    },
    /// Shows every VIP with its Services, pool, announcing node, interfaces, since when and
    /// why, and the pools' usage; in static mode (`--speakers`) asks each speaker's /vips.
    Status {
        /// Namespace of the IPAddressPools (the controller's).
        #[arg(long, env = "SWIMLB_NAMESPACE", default_value = "swimlb-system")]
        namespace: String,
        /// A kubeconfig file; without it, as kubectl: KUBECONFIG, ~/.kube/config, in-cluster.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Static mode: the speakers' metrics addresses (host:port, comma separated).
        #[arg(long, value_delimiter = ',')]
        speakers: Vec<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Table,
    Json,
    Yaml,
}

/// Who swimlbctl says it is to the API server.
const AGENT: swimlb_api::Agent = swimlb_api::Agent::new("swimlbctl", env!("CARGO_PKG_VERSION"));

/// The cluster's status report, read with a client built as kubectl would.
fn cluster_status(namespace: &str, kubeconfig: Option<&PathBuf>) -> Result<status::StatusReport> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let config = match kubeconfig {
            Some(path) => {
                let file = kube::config::Kubeconfig::read_from(path)
                    .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(file, &Default::default()).await?
            }
            None => kube::Config::infer()
                .await
                .context("cannot find a kubeconfig (KUBECONFIG, ~/.kube/config or in-cluster)")?,
        };
        let client = AGENT.client(config)?;
        status::read_cluster(&client, namespace)
            .await
            .context("cannot read the cluster")
    })
}

fn read_all(files: &[PathBuf]) -> Result<Vec<Document>> {
    let mut documents = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        documents.extend(read_documents(&file.display().to_string(), &text)?);
    }
    Ok(documents)
}

fn main() -> Result<ExitCode> {
    let args = Args::parse();
    match args.command {
        Command::Validate { files } => {
            let report = validate::validate(&read_all(&files)?);
            for pool in &report.pools {
                if pool.errors.is_empty() {
                    println!(
                        "ok       {} ({}): {}",
                        pool.name,
                        pool.origin,
                        pool.addresses.join(", ")
                    );
                } else {
                    println!(
                        "invalid  {} ({}): {}",
                        pool.name,
                        pool.origin,
                        pool.errors.join("; ")
                    );
                }
            }
            for ad in &report.advertisements {
                if ad.errors.is_empty() {
                    println!("ok       L2Advertisement {} ({})", ad.name, ad.source);
                } else {
                    println!(
                        "invalid  L2Advertisement {} ({}): {}",
                        ad.name,
                        ad.source,
                        ad.errors.join("; ")
                    );
                }
            }
            for problem in &report.problems {
                println!("problem  {problem}");
            }
            Ok(if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Status {
            namespace,
            kubeconfig,
            speakers,
            output,
        } => {
            let report = if speakers.is_empty() {
                cluster_status(&namespace, kubeconfig.as_ref())?
            } else {
                let mut answers = Vec::new();
                for speaker in &speakers {
                    let body = status::ask_speaker(speaker)?;
                    answers.push(status::parse_vips(speaker, &body)?);
                }
                status::from_speakers(answers)
            };
            match output {
                Output::Table => print!("{}", status::render_table(&report)),
                Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Output::Yaml => print!("{}", serde_saphyr::to_string(&report)?),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::MigrateMetallb {
            files,
            namespace,
            strict,
        } => {
            let migration = migrate::migrate(&read_all(&files)?, &namespace);
            print!("{}", to_yaml_stream(&migration.objects)?);
            for item in &migration.untranslated {
                eprintln!(
                    "not translated: {}: {}: {}",
                    item.source, item.what, item.reason
                );
            }
            for note in &migration.notes {
                eprintln!("note: {note}");
            }
            // The written objects must pass the controller's and the speaker's checks as they are.
            let check = validate::validate(&read_documents(
                "output",
                &to_yaml_stream(&migration.objects)?,
            )?);
            for pool in check.pools.iter().filter(|p| !p.errors.is_empty()) {
                eprintln!(
                    "invalid after translation: {}: {}",
                    pool.name,
                    pool.errors.join("; ")
                );
            }
            for ad in check.advertisements.iter().filter(|a| !a.errors.is_empty()) {
                eprintln!(
                    "invalid after translation: L2Advertisement {}: {}",
                    ad.name,
                    ad.errors.join("; ")
                );
            }
            let clean = check.is_clean();
            Ok(if !clean {
                ExitCode::from(1)
            } else if strict && !migration.untranslated.is_empty() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
