use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use swimlb_ctl::documents::{Document, read_documents};
use swimlb_ctl::{cluster, migrate, status, to_yaml_stream, validate};

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
        #[arg(required_unless_present = "from_cluster")]
        files: Vec<PathBuf>,
        /// Read MetalLB's configuration from the cluster instead: the ConfigMap and every
        /// metallb.io object in --metallb-namespace.
        #[arg(long)]
        from_cluster: bool,
        /// MetalLB's namespace, with --from-cluster.
        #[arg(long, default_value = "metallb-system")]
        metallb_namespace: String,
        /// MetalLB's legacy ConfigMap, with --from-cluster.
        #[arg(long, default_value = "config")]
        metallb_config_map: String,
        /// Apply the swimlb objects to the cluster (server-side apply) once they pass the
        /// checks, besides printing them.
        #[arg(long)]
        apply: bool,
        /// A kubeconfig file; without it, as kubectl: KUBECONFIG, ~/.kube/config, in-cluster.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
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

/// Runs `work` on a single-threaded runtime.
fn block_on<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(work)
}

/// A client built as kubectl would: `kubeconfig`, else KUBECONFIG, ~/.kube/config, in-cluster.
async fn client(kubeconfig: Option<&PathBuf>) -> Result<kube::Client> {
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
    Ok(AGENT.client(config)?)
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
                block_on(async {
                    let client = client(kubeconfig.as_ref()).await?;
                    status::read_cluster(&client, &namespace)
                        .await
                        .context("cannot read the cluster")
                })?
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
            from_cluster,
            metallb_namespace,
            metallb_config_map,
            apply,
            kubeconfig,
            namespace,
            strict,
        } => {
            let mut documents = read_all(&files)?;
            if from_cluster {
                documents.extend(block_on(async {
                    let client = client(kubeconfig.as_ref()).await?;
                    Ok(
                        cluster::read_metallb(&client, &metallb_namespace, &metallb_config_map)
                            .await?,
                    )
                })?);
            }
            let migration = migrate::migrate(&documents, &namespace);
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
            if apply && clean {
                let applied = block_on(async {
                    let client = client(kubeconfig.as_ref()).await?;
                    Ok(cluster::apply(&client, &migration.objects, &AGENT.apply_params()).await?)
                })?;
                for object in applied {
                    eprintln!("applied: {object}");
                }
            } else if apply {
                eprintln!("not applied: the translated objects do not pass the checks");
            }
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
