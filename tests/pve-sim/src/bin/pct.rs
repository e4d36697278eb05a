//! `pve-sim-pct`: the simulated node's `pct`. The node's root comes from `PVE_SIM_ROOT` (set by the
//! `usr/sbin/pct` wrapper that `pve-sim --init` writes), so callers use pct's real syntax.

use pve_sim::state::SimRoot;

fn main() {
    let Ok(root) = std::env::var("PVE_SIM_ROOT") else {
        eprintln!("pve-sim-pct: PVE_SIM_ROOT is not set; run the usr/sbin/pct wrapper of a simulated node");
        std::process::exit(255);
    };
    let root = match SimRoot::open(&root) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pve-sim-pct: {root} is not a simulated node: {e}");
            std::process::exit(255);
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(pve_sim::pct::run(&root, &args).code);
}
