//! RFC 6902 patches built from JSON-pointer tokens, so that a `/` or `~` in an
//! annotation key is escaped (`~1`, `~0`) rather than splitting the path.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

/// Accumulates the patch of one review across all mutating policies, and
/// which policy added each operation.
#[derive(Debug, Default)]
pub struct PatchBuilder {
    ops: Vec<PatchOperation>,
    /// The policy behind each operation (parallel to `ops`).
    owners: Vec<usize>,
    /// The policy whose operations are being added (see [`Self::set_owner`]).
    owner: usize,
    /// Maps this patch created, so later entries go inside them.
    created: Vec<PointerBuf>,
    /// Entries this patch added, so a later policy never adds one twice.
    added: Vec<PointerBuf>,
}

impl PatchBuilder {
    /// How many operations so far.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Credits the operations added from now on to the policy at this index.
    /// An operation is only ever added once, so a map two policies need is
    /// created by, and credited to, the first.
    pub fn set_owner(&mut self, policy: usize) {
        self.owner = policy;
    }

    fn push(&mut self, op: PatchOperation) {
        self.ops.push(op);
        self.owners.push(self.owner);
    }

    /// Sets `metadata.annotations[key]` unless the object already has that
    /// annotation (a user's value is never overwritten). Creates the annotations
    /// map when the object has none. Returns whether an operation was added.
    pub fn add_annotation(&mut self, metadata: &ObjectMeta, key: &str, value: &str) -> bool {
        let existing = metadata.annotations.as_ref();
        if existing.is_some_and(|map| map.contains_key(key)) {
            return false;
        }
        self.add_map_entry(&["metadata", "annotations"], existing.is_some(), key, Value::from(value))
    }

    /// Adds `key: value` to the map at `map_tokens`, creating the map first when
    /// `map_exists` is false and no earlier operation created it.
    pub fn add_map_entry(&mut self, map_tokens: &[&str], map_exists: bool, key: &str, value: Value) -> bool {
        let map = PointerBuf::from_tokens(map_tokens.iter().copied());
        let mut entry = map.clone();
        entry.push_back(key);
        if self.added.contains(&entry) {
            return false;
        }
        if !map_exists && !self.created.contains(&map) {
            self.push(PatchOperation::Add(AddOperation {
                path: map.clone(),
                value: Value::Object(Default::default()),
            }));
            self.created.push(map);
        }
        self.push(PatchOperation::Add(AddOperation { path: entry.clone(), value }));
        self.added.push(entry);
        true
    }

    pub fn build(self) -> Patch {
        Patch(self.ops)
    }

    /// The patch, and the policy behind each of its operations.
    pub fn finish(self) -> (Patch, Vec<usize>) {
        (Patch(self.ops), self.owners)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_slashes_and_creates_the_missing_map() {
        let mut builder = PatchBuilder::default();
        let metadata = ObjectMeta::default();
        assert!(builder.add_annotation(&metadata, "nginx.ingress.kubernetes.io/force-ssl-redirect", "true"));
        assert!(builder.add_annotation(&metadata, "a~b/c", "x"));
        assert_eq!(
            serde_json::to_value(builder.build()).unwrap(),
            json!([
                {"op": "add", "path": "/metadata/annotations", "value": {}},
                {"op": "add", "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1force-ssl-redirect", "value": "true"},
                {"op": "add", "path": "/metadata/annotations/a~0b~1c", "value": "x"},
            ])
        );
    }

    #[test]
    fn never_overwrites_and_never_adds_twice() {
        let metadata = ObjectMeta {
            annotations: Some([("set/by-user".to_owned(), "false".to_owned())].into()),
            ..Default::default()
        };
        let mut builder = PatchBuilder::default();
        assert!(!builder.add_annotation(&metadata, "set/by-user", "true"));
        assert!(builder.add_annotation(&metadata, "new", "1"));
        assert!(!builder.add_annotation(&metadata, "new", "2"));
        assert_eq!(
            serde_json::to_value(builder.build()).unwrap(),
            json!([{"op": "add", "path": "/metadata/annotations/new", "value": "1"}])
        );
    }

    #[test]
    fn credits_each_operation_to_the_policy_that_added_it() {
        let metadata = ObjectMeta::default();
        let mut builder = PatchBuilder::default();
        builder.set_owner(3);
        assert!(builder.add_annotation(&metadata, "first", "1"));
        builder.set_owner(5);
        assert!(!builder.add_annotation(&metadata, "first", "2"), "already added by policy 3");
        assert!(builder.add_annotation(&metadata, "second", "2"));
        let (patch, owners) = builder.finish();
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([
                {"op": "add", "path": "/metadata/annotations", "value": {}},
                {"op": "add", "path": "/metadata/annotations/first", "value": "1"},
                {"op": "add", "path": "/metadata/annotations/second", "value": "2"},
            ])
        );
        // The map both need is created once, by the first.
        assert_eq!(owners, [3, 3, 5]);
    }
}
