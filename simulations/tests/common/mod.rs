//! What the simulator's scenario tests share: small-cluster parameters and one-configuration
//! runs.

use swimlb_gossip::{Preset, Timing};
use swimlb_simulations::network::Network;
use swimlb_simulations::scenario::{
    self, ConfigReport, Configuration, Model, Params, ScenarioKind, ScenarioOptions,
};

/// `trials` trials of `scenario` on `nodes` nodes with two VIPs a node, 1 % loss, seed 1.
pub fn params(
    scenario: ScenarioKind,
    nodes: usize,
    trials: usize,
    options: ScenarioOptions,
) -> Params {
    Params {
        scenario,
        nodes,
        vips: nodes * 2,
        trials,
        loss: 0.01,
        seed: 1,
        ineligible: 0,
        options,
        network: Network::lan(0.01),
    }
}

pub fn gossip(name: &str, timing: Timing) -> Configuration {
    Configuration::new(name, Model::Gossip { timing })
}

pub fn fast() -> Configuration {
    gossip("fast", Preset::Fast.timing())
}

/// Runs `params` with `config` alone and returns its report.
pub fn run_one(params: &Params, config: Configuration) -> ConfigReport {
    let report = scenario::run(params, &[config], 1, &|_| {}).expect("runs");
    report
        .configs
        .into_iter()
        .next()
        .expect("one configuration")
}
