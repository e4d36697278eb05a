//! `pve-sim-admin`: the simulated node's administration commands with their real syntax, for the
//! `usr/sbin/pveum`, `usr/sbin/pvesh` and `usr/sbin/pveversion` wrappers that the node's setup writes
//! (`PVE_SIM_ROOT` names the node).

use pve_sim::state::SimRoot;

fn main() {
    let Ok(root) = std::env::var("PVE_SIM_ROOT") else {
        eprintln!(
            "pve-sim-admin: PVE_SIM_ROOT is not set; run the usr/sbin wrappers of a simulated node"
        );
        std::process::exit(255);
    };
    let root = match SimRoot::open(&root) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pve-sim-admin: {root} is not a simulated node: {e}");
            std::process::exit(255);
        }
    };
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let version = root.version();
    let code = match command.as_str() {
        "pveum" => pve_sim::pveum::run(&root, version, &rest).code,
        "pvesh" => pve_sim::pvesh::run(root, version, &rest).code,
        "pveversion" => {
            // `pve-manager/9.1.2/5e1b7d2b (running kernel: ...)`, as the real one prints.
            let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            println!(
                "pve-manager/{}/5e1b7d2b (running kernel: {})",
                version.full(),
                kernel.trim()
            );
            0
        }
        other => {
            eprintln!("pve-sim-admin: unknown command '{other}' (pveum, pvesh, pveversion)");
            255
        }
    };
    std::process::exit(code);
}
