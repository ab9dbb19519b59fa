//! How swimlb's programs present themselves to the API server: a `User-Agent` of
//! `<name>/<version>` on every request and the field manager `<name>` on every write, so
//! `managedFields` and the audit log say which program changed what.
//!
//! Writes that cannot carry a field manager (Events through kube's `Recorder`) are attributed by
//! the API server from the `User-Agent`: the part before its first `/`, the same name.

use http::header::{HeaderValue, InvalidHeaderValue, USER_AGENT};
use kube::Client;
use kube::api::{PatchParams, PostParams};

/// One of swimlb's programs, as the API server sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agent {
    name: &'static str,
    version: &'static str,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the User-Agent {0:?} is not a valid header value")]
    UserAgent(String, #[source] InvalidHeaderValue),
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

impl Agent {
    /// `name` is the field manager and the start of the User-Agent; `version` follows it.
    pub const fn new(name: &'static str, version: &'static str) -> Self {
        Self { name, version }
    }

    /// The field manager of this program's writes.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `<name>/<version>`.
    pub fn user_agent(&self) -> String {
        format!("{}/{}", self.name, self.version)
    }

    /// Parameters for a patch by this program.
    pub fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.name.to_owned()),
            ..PatchParams::default()
        }
    }

    /// Parameters for a server-side apply by this program that takes over the fields it
    /// sets from whoever wrote them before (another node's speaker, for a moved VIP).
    pub fn apply_params(&self) -> PatchParams {
        PatchParams::apply(self.name).force()
    }

    /// Parameters for a create or replace by this program.
    pub fn post_params(&self) -> PostParams {
        PostParams {
            field_manager: Some(self.name.to_owned()),
            ..PostParams::default()
        }
    }

    /// Makes every request built from `config` carry this program's User-Agent.
    pub fn configure(&self, config: &mut kube::Config) -> Result<(), ClientError> {
        let agent = self.user_agent();
        let value =
            HeaderValue::from_str(&agent).map_err(|e| ClientError::UserAgent(agent.clone(), e))?;
        config.headers.retain(|(name, _)| *name != USER_AGENT);
        config.headers.push((USER_AGENT, value));
        Ok(())
    }

    /// A client for `config` whose requests carry this program's User-Agent.
    pub fn client(&self, mut config: kube::Config) -> Result<Client, ClientError> {
        self.configure(&mut config)?;
        Ok(Client::try_from(config)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENT: Agent = Agent::new("swimlb-test", "1.2.3");

    #[test]
    fn the_user_agent_is_the_name_then_the_version() {
        assert_eq!(AGENT.user_agent(), "swimlb-test/1.2.3");
    }

    #[test]
    fn every_write_names_the_field_manager() {
        assert_eq!(
            AGENT.patch_params().field_manager.as_deref(),
            Some("swimlb-test")
        );
        assert_eq!(
            AGENT.post_params().field_manager.as_deref(),
            Some("swimlb-test")
        );
        let apply = AGENT.apply_params();
        assert_eq!(apply.field_manager.as_deref(), Some("swimlb-test"));
        assert!(apply.force, "a moved VIP's new owner takes the fields over");
    }

    #[test]
    fn the_config_carries_one_user_agent() {
        let mut config = kube::Config::new("https://192.0.2.1:6443".parse().expect("a URI"));
        config
            .headers
            .push((USER_AGENT, HeaderValue::from_static("other/0")));
        AGENT.configure(&mut config).expect("a valid header");
        let agents: Vec<_> = config
            .headers
            .iter()
            .filter(|(name, _)| *name == USER_AGENT)
            .map(|(_, value)| value.to_str().expect("ASCII"))
            .collect();
        assert_eq!(agents, ["swimlb-test/1.2.3"]);
    }

    #[test]
    fn a_name_that_is_not_a_header_value_is_an_error() {
        let mut config = kube::Config::new("https://192.0.2.1:6443".parse().expect("a URI"));
        assert!(matches!(
            Agent::new("bad\nname", "1").configure(&mut config),
            Err(ClientError::UserAgent(..))
        ));
    }
}
