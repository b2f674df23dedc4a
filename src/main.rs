//! The `pingora-secgw` command: the gateway itself (with Pingora's own flags), `check`,
//! `audit`, and `crd` (the SecurityPolicy resource's definition).

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pingora_core::server::configuration::Opt;

use pingora_secgw::{
    access_log, audit, check, controller, logging, metrics::metrics, policy, server,
};

// Heap profilers (heaptrack, massif) see only the system allocator: the
// `system-allocator` feature builds the gateway for them (benches/idle-heap.sh).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An edge gateway on Pingora that puts the right security headers on every response.
#[derive(Parser)]
#[command(
    name = "pingora-secgw",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    opt: Opt,
    /// With `-t`: also list the cluster's objects with this kubeconfig and compile
    /// them with gw.yaml, as Kubernetes mode would serve them.
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Lint a configuration like `manage.py check --deploy`, and predict each vhost's
    /// MDN HTTP Observatory grade.
    Check(check::CheckArgs),
    /// Grade a live site the way the MDN HTTP Observatory does.
    Audit(audit::AuditArgs),
    /// Print the SecurityPolicy CustomResourceDefinition (secgw.io/v1alpha1), for
    /// `kubectl apply -f -`; k8s/crds/securitypolicy.yaml holds the same.
    Crd,
}

fn main() -> ExitCode {
    // SIGUSR1 (logrotate's "reopen") would end the process by default until
    // the reopen service installs its handler: a rotation during start-up or
    // an upgrade must not kill the new process.
    // SAFETY: setting a disposition to SIG_IGN runs no handler code.
    unsafe { libc::signal(libc::SIGUSR1, libc::SIG_IGN) };
    logging::init();
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Check(args)) => return check::run(args),
        Some(Command::Audit(args)) => return audit::run(args),
        Some(Command::Crd) => {
            print!("{}", pingora_secgw::cluster::security_policy::crd_yaml());
            return ExitCode::SUCCESS;
        }
        None => {}
    }
    let Some(conf) = cli.opt.conf.clone() else {
        eprintln!(
            "pingora-secgw: no configuration file given; run `pingora-secgw -c conf/gw.yaml`"
        );
        return ExitCode::from(2);
    };
    let (mut loaded, plan) = match policy::load(Path::new(&conf), metrics()) {
        Ok(both) => both,
        Err(e) => {
            eprintln!("pingora-secgw: invalid configuration: {e}");
            return ExitCode::from(1);
        }
    };
    if let (true, Some(kubeconfig)) = (cli.opt.test, &cli.kubeconfig) {
        return test_with_cluster(&conf, &mut loaded, kubeconfig);
    }
    metrics().config_loaded(loaded.hash);
    if cli.opt.test {
        println!(
            "pingora-secgw: configuration {conf} is valid ({} vhosts)",
            plan.vhosts.len()
        );
    }
    let (server, run_args) = server::build(cli.opt, loaded, plan);
    server.run(run_args);
    // The last requests' lines are still on their way to the files.
    access_log::sink::flush_all(std::time::Duration::from_secs(2));
    ExitCode::SUCCESS
}

/// `-t --kubeconfig`: the configuration with the cluster's objects; each object
/// the gateway would refuse (in part) is listed, and the status is 1 if any is.
fn test_with_cluster(
    conf: &str,
    loaded: &mut pingora_secgw::config::LoadedConfig,
    kubeconfig: &Path,
) -> ExitCode {
    let own = loaded.gateway.vhosts.len();
    match controller::compose_once(loaded, kubeconfig, metrics()) {
        Ok(composed) => {
            for p in &composed.translation.problems {
                eprintln!("Ingress {}: {} ({})", p.object_name(), p.message, p.reason);
            }
            use pingora_secgw::check::lints;
            let gateway = lints::gateway_problems(&composed.translation.gateway_api);
            let policies = lints::policy_problems(&composed.translation.policies);
            for f in gateway.iter().chain(&policies) {
                eprintln!("{}: {}", f.key, f.message);
            }
            println!(
                "pingora-secgw: configuration {conf} is valid ({} vhosts, {} from the cluster; {} \
                 Ingress problems, {} Gateway API problems, {} SecurityPolicy problems)",
                composed.plan.vhosts.len(),
                composed.plan.vhosts.len() - own,
                composed.translation.problems.len(),
                gateway.len(),
                policies.len()
            );
            let problems = !composed.translation.problems.is_empty()
                || !gateway.is_empty()
                || !policies.is_empty();
            ExitCode::from(u8::from(problems))
        }
        Err(e) => {
            eprintln!("pingora-secgw: {e}");
            ExitCode::from(1)
        }
    }
}
