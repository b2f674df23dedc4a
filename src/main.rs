use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use pingora_core::server::configuration::Opt;

use pingora_secgw::{logging, metrics::metrics, policy, server};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An edge gateway on Pingora that puts the right security headers on every response.
#[derive(Parser)]
#[command(name = "pingora-secgw", version)]
struct Cli {
    #[command(flatten)]
    opt: Opt,
}

fn main() -> ExitCode {
    logging::init();
    let cli = Cli::parse();
    let Some(conf) = cli.opt.conf.clone() else {
        eprintln!(
            "pingora-secgw: no configuration file given; run `pingora-secgw -c conf/gw.yaml`"
        );
        return ExitCode::from(2);
    };
    let (loaded, plan) = match policy::load(Path::new(&conf)) {
        Ok(both) => both,
        Err(e) => {
            eprintln!("pingora-secgw: invalid configuration: {e}");
            return ExitCode::from(1);
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    metrics().config_loaded(loaded.hash, now);
    if cli.opt.test {
        println!(
            "pingora-secgw: configuration {conf} is valid ({} vhosts)",
            plan.vhosts.len()
        );
    }
    server::build(cli.opt, loaded, plan).run_forever()
}
