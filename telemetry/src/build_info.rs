//! `<prefix>_build_info`: a gauge of 1 whose labels say what is running.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The commit the binaries were built from, when the build set `SWIMLB_COMMIT`.
const COMMIT: Option<&str> = option_env!("SWIMLB_COMMIT");
/// The compiler's version, recorded by this crate's build script.
const RUSTC: Option<&str> = option_env!("SWIMLB_RUSTC_VERSION");

type Labels = Vec<(&'static str, &'static str)>;

/// What the build-info gauge reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: &'static str,
    /// Absent when unknown; the label is left out then.
    pub commit: Option<&'static str>,
    pub rustc: Option<&'static str>,
}

impl BuildInfo {
    /// The build of the running binary; `version` is its `CARGO_PKG_VERSION`.
    pub fn current(version: &'static str) -> Self {
        Self {
            version,
            commit: COMMIT.map(str::trim).filter(|c| !c.is_empty()),
            rustc: RUSTC,
        }
    }

    /// The labels in export order: `version`, then `commit` and `rustc` when known.
    pub fn labels(&self) -> Labels {
        let mut labels = vec![("version", self.version)];
        if let Some(commit) = self.commit {
            labels.push(("commit", commit));
        }
        if let Some(rustc) = self.rustc {
            labels.push(("rustc", rustc));
        }
        labels
    }

    /// Registers `build_info` (prefixed by `registry`'s prefix) with the value 1.
    pub fn register(&self, registry: &mut Registry) {
        let family: Family<Labels, Gauge> = Family::default();
        family.get_or_create(&self.labels()).set(1);
        registry.register(
            "build_info",
            "A metric with a constant value 1, labelled with the version, the commit (when the \
             build recorded it) and the Rust compiler version of this binary",
            family,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_leave_their_label_out() {
        let mut build = BuildInfo {
            version: "0.1.0",
            commit: None,
            rustc: Some("1.89.0"),
        };
        assert_eq!(
            build.labels(),
            vec![("version", "0.1.0"), ("rustc", "1.89.0")]
        );
        build.commit = Some("a22336c");
        build.rustc = None;
        assert_eq!(
            build.labels(),
            vec![("version", "0.1.0"), ("commit", "a22336c")]
        );
    }

    #[test]
    fn the_gauge_is_prefixed_and_one() {
        let mut registry = Registry::default();
        let build = BuildInfo {
            version: "0.1.0",
            commit: Some("abc"),
            rustc: Some("1.89.0"),
        };
        build.register(registry.sub_registry_with_prefix("swimlb_test"));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
            .expect("encodes");
        assert!(
            text.contains(
                "swimlb_test_build_info{version=\"0.1.0\",commit=\"abc\",rustc=\"1.89.0\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE swimlb_test_build_info gauge\n"),
            "{text}"
        );
    }

    #[test]
    fn the_build_script_recorded_the_compiler() {
        let rustc = BuildInfo::current("0.1.0").rustc.expect("recorded");
        assert!(
            rustc.split('.').count() >= 3 && rustc.starts_with('1'),
            "{rustc}"
        );
    }
}
