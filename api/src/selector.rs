//! Kubernetes label selectors (`matchLabels` and `matchExpressions`), parsed once and then
//! matched against label maps: the pools' Service and Namespace selectors, the advertisements'
//! pool and node selectors.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A Kubernetes label selector, checked once at parse time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    match_labels: BTreeMap<String, String>,
    requirements: Vec<Requirement>,
}

impl Selector {
    pub fn parse(selector: &LabelSelector) -> Result<Self, String> {
        let match_labels = selector.match_labels.clone().unwrap_or_default();
        let mut requirements = Vec::new();
        for expr in selector.match_expressions.iter().flatten() {
            let values: BTreeSet<String> = expr.values.iter().flatten().cloned().collect();
            let key = expr.key.clone();
            let requirement = match expr.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(format!(
                        "operator {} on key {key:?} needs values",
                        expr.operator
                    ));
                }
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(format!(
                        "operator {} on key {key:?} takes no values",
                        expr.operator
                    ));
                }
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                other => return Err(format!("unknown operator {other:?} on key {key:?}")),
            };
            requirements.push(requirement);
        }
        Ok(Self {
            match_labels,
            requirements,
        })
    }

    /// A selector requiring exactly these labels.
    pub fn from_labels(labels: BTreeMap<String, String>) -> Self {
        Self {
            match_labels: labels,
            requirements: Vec::new(),
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.requirements.iter().all(|r| match r {
                Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
                Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
                Requirement::Exists(k) => labels.contains_key(k),
                Requirement::DoesNotExist(k) => !labels.contains_key(k),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    /// A selector with one expression on key `a`.
    fn expression(op: &str, values: Option<Vec<String>>) -> Result<Selector, String> {
        Selector::parse(&LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".to_owned(),
                operator: op.to_owned(),
                values,
            }]),
        })
    }

    #[test]
    fn selector_operators() {
        let labels = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
        let selector = |op: &str, values| expression(op, values).expect("valid selector");
        assert!(selector("Exists", None).matches(&labels));
        assert!(!selector("DoesNotExist", None).matches(&labels));
        assert!(!selector("NotIn", Some(vec!["1".to_owned()])).matches(&labels));
        assert!(selector("NotIn", Some(vec!["2".to_owned()])).matches(&labels));
        assert!(selector("NotIn", Some(vec!["2".to_owned()])).matches(&BTreeMap::new()));
        assert!(Selector::default().matches(&labels));
    }

    #[test]
    fn bad_operators_and_values_are_errors() {
        assert!(expression("In", None).is_err());
        assert!(expression("Exists", Some(vec!["1".to_owned()])).is_err());
        assert!(expression("Matches", None).is_err());
    }
}
