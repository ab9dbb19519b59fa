//! Kubernetes objects read from YAML files: one or many documents a file, `kind: List` opened.

use serde_json::Value;

/// One object, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// `FILE` or `FILE#N` (the N-th document of a multi-document file, from 1).
    pub source: String,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub value: Value,
}

impl Document {
    /// The API group of `apiVersion` (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    /// `Kind namespace/name` (or `Kind name`), for messages.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DocumentError {
    #[error("{file}: not valid YAML: {reason}")]
    Yaml { file: String, reason: String },
    #[error("{file}: a document without apiVersion and kind")]
    NotAnObject { file: String },
}

/// Reads every object in `text`; `source` names the file in messages.
pub fn read_documents(source: &str, text: &str) -> Result<Vec<Document>, DocumentError> {
    let values: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| DocumentError::Yaml {
            file: source.to_owned(),
            reason: e.to_string(),
        })?;
    let several = values.len() > 1;
    let mut documents = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        // An empty document (a trailing `---`) holds nothing.
        if value.is_null() {
            continue;
        }
        let source = if several {
            format!("{source}#{}", index + 1)
        } else {
            source.to_owned()
        };
        push_object(&source, value, &mut documents)?;
    }
    Ok(documents)
}

fn push_object(source: &str, value: Value, out: &mut Vec<Document>) -> Result<(), DocumentError> {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let (Some(api_version), Some(kind)) = (text(&value, "apiVersion"), text(&value, "kind")) else {
        return Err(DocumentError::NotAnObject {
            file: source.to_owned(),
        });
    };
    if kind == "List" {
        let items = value
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (index, item) in items.into_iter().enumerate() {
            push_object(&format!("{source} items[{index}]"), item, out)?;
        }
        return Ok(());
    }
    let metadata = value.get("metadata").cloned().unwrap_or(Value::Null);
    out.push(Document {
        source: source.to_owned(),
        name: text(&metadata, "name").unwrap_or_default(),
        namespace: text(&metadata, "namespace"),
        api_version,
        kind,
        value,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_documents_and_lists_are_opened() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: metallb.io/v1beta1\n  kind: IPAddressPool\n  metadata: {name: a}\n---\n";
        let docs = read_documents("in.yaml", text).expect("valid");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].source, "in.yaml#1");
        assert_eq!(docs[0].describe(), "ConfigMap metallb-system/config");
        assert_eq!(docs[0].group(), "");
        assert_eq!(docs[1].source, "in.yaml#2 items[0]");
        assert_eq!(docs[1].group(), "metallb.io");
        assert_eq!(docs[1].describe(), "IPAddressPool a");
    }

    #[test]
    fn bad_yaml_and_non_objects_are_errors() {
        assert!(matches!(
            read_documents("x", "a: [1, 2"),
            Err(DocumentError::Yaml { .. })
        ));
        assert_eq!(
            read_documents("x", "just: data\n"),
            Err(DocumentError::NotAnObject { file: "x".into() })
        );
    }
}
