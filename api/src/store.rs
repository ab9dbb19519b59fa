//! A local copy of one watched kind: the objects by `(namespace, name)`, kept up to date from
//! the watcher's events, including its re-lists after a watch error.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use kube::runtime::watcher::Event;

/// An object's `(namespace, name)`; the namespace is empty for cluster-scoped kinds.
pub type ObjectKey = (String, String);

/// How a re-list (the watcher listing every object again after a watch error) is applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Relist {
    /// The re-list's objects replace the store's only once it completes: until then the
    /// objects last fully listed stay in force, so an interrupted re-list changes nothing.
    #[default]
    WhenComplete,
    /// Each listed object is stored as it arrives; when the re-list completes, the objects it
    /// did not list are removed.
    AsListed,
}

/// What one watch event changed.
#[derive(Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Applied {
    /// The keys whose object was stored or removed (removed ones are absent afterwards).
    pub changed: Vec<ObjectKey>,
    /// Whether the event completed a list.
    pub listed: bool,
}

impl Applied {
    /// Whether the event changed the objects or completed a list.
    pub fn any(&self) -> bool {
        self.listed || !self.changed.is_empty()
    }
}

/// A re-list in progress.
enum Listing<K> {
    /// [`Relist::WhenComplete`]: the objects listed so far.
    Objects(BTreeMap<ObjectKey, K>),
    /// [`Relist::AsListed`]: the keys listed so far.
    Keys(BTreeSet<ObjectKey>),
}

/// The objects of one kind, as listed and then updated by watch events.
pub struct Store<K> {
    objects: BTreeMap<ObjectKey, K>,
    relist: Relist,
    listing: Option<Listing<K>>,
    synced: bool,
}

impl<K> Default for Store<K> {
    fn default() -> Self {
        Self::new(Relist::default())
    }
}

impl<K> Store<K> {
    pub fn new(relist: Relist) -> Self {
        Self {
            objects: BTreeMap::new(),
            relist,
            listing: None,
            synced: false,
        }
    }

    /// The objects, by `(namespace, name)`.
    pub fn objects(&self) -> &BTreeMap<ObjectKey, K> {
        &self.objects
    }

    /// Whether a first list has completed (or [`Store::mark_synced`] was called).
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Counts the store as listed without a list, for a kind the API server does not serve.
    pub fn mark_synced(&mut self) {
        self.synced = true;
    }
}

impl<K: ResourceExt> Store<K> {
    /// The key of `object`.
    pub fn key(object: &K) -> ObjectKey {
        (object.namespace().unwrap_or_default(), object.name_any())
    }

    /// Applies one watch event.
    pub fn apply(&mut self, event: Event<K>) -> Applied {
        match event {
            Event::Init => {
                self.listing = Some(match self.relist {
                    Relist::WhenComplete => Listing::Objects(BTreeMap::new()),
                    Relist::AsListed => Listing::Keys(BTreeSet::new()),
                });
                Applied::default()
            }
            Event::InitApply(object) => self.list_one(object),
            Event::InitDone => {
                self.synced = true;
                let changed = match self.listing.take() {
                    None => Vec::new(),
                    Some(Listing::Objects(listed)) => {
                        let old = std::mem::replace(&mut self.objects, listed);
                        let gone = old.into_keys().filter(|k| !self.objects.contains_key(k));
                        let mut changed: Vec<_> =
                            self.objects.keys().cloned().chain(gone).collect();
                        changed.sort();
                        changed
                    }
                    Some(Listing::Keys(seen)) => {
                        let gone: Vec<_> = self
                            .objects
                            .keys()
                            .filter(|k| !seen.contains(*k))
                            .cloned()
                            .collect();
                        for key in &gone {
                            self.objects.remove(key);
                        }
                        gone
                    }
                };
                Applied {
                    changed,
                    listed: true,
                }
            }
            Event::Apply(object) => {
                let key = Self::key(&object);
                self.objects.insert(key.clone(), object);
                Applied {
                    changed: vec![key],
                    listed: false,
                }
            }
            Event::Delete(object) => {
                let key = Self::key(&object);
                let changed = match self.objects.remove(&key) {
                    Some(_) => vec![key],
                    None => Vec::new(),
                };
                Applied {
                    changed,
                    listed: false,
                }
            }
        }
    }

    fn list_one(&mut self, object: K) -> Applied {
        let key = Self::key(&object);
        match self.relist {
            Relist::WhenComplete => {
                match &mut self.listing {
                    Some(Listing::Objects(listed)) => {
                        listed.insert(key, object);
                    }
                    listing => *listing = Some(Listing::Objects(BTreeMap::from([(key, object)]))),
                }
                Applied::default()
            }
            Relist::AsListed => {
                if let Some(Listing::Keys(seen)) = &mut self.listing {
                    seen.insert(key.clone());
                }
                self.objects.insert(key.clone(), object);
                Applied {
                    changed: vec![key],
                    listed: false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Node};

    fn node(name: &str) -> Node {
        let mut node = Node::default();
        node.metadata.name = Some(name.to_owned());
        node
    }

    fn config_map(name: &str) -> ConfigMap {
        let mut config_map = ConfigMap::default();
        config_map.metadata.namespace = Some("ns".to_owned());
        config_map.metadata.name = Some(name.to_owned());
        config_map
    }

    fn names<K>(store: &Store<K>) -> Vec<String> {
        store
            .objects()
            .keys()
            .map(|(_, name)| name.clone())
            .collect()
    }

    fn key(name: &str) -> ObjectKey {
        ("ns".to_owned(), name.to_owned())
    }

    #[test]
    fn a_relist_replaces_the_objects_only_when_complete() {
        let mut store = Store::default();
        assert!(!store.apply(Event::Init).any());
        assert!(!store.apply(Event::InitApply(node("a"))).any());
        assert!(!store.apply(Event::InitApply(node("b"))).any());
        assert!(!store.synced());
        assert!(store.apply(Event::InitDone).any());
        assert!(store.synced());
        assert_eq!(names(&store), ["a", "b"]);
        // A watch error restarts the list: until it completes, the old objects stay.
        let _ = store.apply(Event::Init);
        assert!(!store.apply(Event::InitApply(node("b"))).any());
        assert_eq!(names(&store), ["a", "b"]);
        let done = store.apply(Event::InitDone);
        assert!(done.listed);
        assert_eq!(
            done.changed,
            [
                (String::new(), "a".to_owned()),
                (String::new(), "b".to_owned())
            ]
        );
        assert_eq!(names(&store), ["b"]);
        assert!(store.apply(Event::Delete(node("b"))).any());
        assert!(!store.apply(Event::Delete(node("b"))).any());
        assert!(store.apply(Event::Apply(node("c"))).any());
        assert_eq!(names(&store), ["c"]);
    }

    #[test]
    fn an_empty_first_list_still_counts() {
        let mut store: Store<Node> = Store::default();
        let _ = store.apply(Event::Init);
        let done = store.apply(Event::InitDone);
        assert!(done.any() && done.changed.is_empty());
        assert!(store.synced());
    }

    #[test]
    fn a_relist_as_listed_reports_objects_deleted_while_disconnected() {
        let mut store: Store<ConfigMap> = Store::new(Relist::AsListed);
        assert!(store.apply(Event::Init).changed.is_empty());
        assert_eq!(
            store.apply(Event::InitApply(config_map("a"))).changed,
            [key("a")]
        );
        assert_eq!(
            store.apply(Event::InitApply(config_map("b"))).changed,
            [key("b")]
        );
        assert!(!store.synced());
        assert!(store.apply(Event::InitDone).changed.is_empty());
        assert!(store.synced());
        // A new watch after a disconnect lists only "b": "a" is gone.
        let _ = store.apply(Event::Init);
        assert_eq!(
            store.apply(Event::InitApply(config_map("b"))).changed,
            [key("b")]
        );
        assert_eq!(names(&store), ["a", "b"]);
        assert_eq!(store.apply(Event::InitDone).changed, [key("a")]);
        assert_eq!(names(&store), ["b"]);
        assert_eq!(
            store.apply(Event::Delete(config_map("b"))).changed,
            [key("b")]
        );
        assert!(store.objects().is_empty());
    }

    #[test]
    fn a_list_without_its_start_is_applied_as_listed_or_kept_whole() {
        let mut kept: Store<Node> = Store::default();
        let _ = kept.apply(Event::InitApply(node("a")));
        assert!(kept.objects().is_empty());
        let _ = kept.apply(Event::InitDone);
        assert_eq!(names(&kept), ["a"]);

        let mut as_listed: Store<Node> = Store::new(Relist::AsListed);
        let _ = as_listed.apply(Event::Apply(node("old")));
        let _ = as_listed.apply(Event::InitApply(node("a")));
        assert!(as_listed.apply(Event::InitDone).changed.is_empty());
        assert_eq!(names(&as_listed), ["a", "old"]);
    }

    #[test]
    fn a_store_can_count_as_listed_without_a_list() {
        let mut store: Store<Node> = Store::default();
        store.mark_synced();
        assert!(store.synced() && store.objects().is_empty());
    }
}
