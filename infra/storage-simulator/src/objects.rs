//! Buckets and their objects, with GCS's generations: every write of an object gets a new,
//! larger `generation` (microseconds since the epoch, strictly increasing), and
//! `ifGenerationMatch` (0: "must not exist") makes a write or delete conditional.

use std::collections::BTreeMap;

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::{
    error::GcsError,
    hash::{crc32c_base64, encode_component, md5_base64},
};

#[derive(Debug, Clone)]
pub struct Object {
    pub bucket: String,
    pub name: String,
    pub content: Vec<u8>,
    pub content_type: String,
    pub generation: i64,
    pub metageneration: i64,
    pub md5_hash: String,
    pub crc32c: String,
    pub created: DateTime<Utc>,
}

impl Object {
    /// The object resource, as `GET .../o/{object}` and uploads answer it.
    pub fn metadata(&self, base: &str) -> Value {
        let time = self.created.to_rfc3339_opts(SecondsFormat::Millis, true);
        let (bucket, encoded) = (&self.bucket, encode_component(&self.name));
        json!({
            "kind": "storage#object",
            "id": format!("{bucket}/{}/{}", self.name, self.generation),
            "selfLink": format!("{base}/storage/v1/b/{bucket}/o/{encoded}"),
            "mediaLink": format!("{base}/download/storage/v1/b/{bucket}/o/{encoded}?generation={}&alt=media", self.generation),
            "name": self.name,
            "bucket": bucket,
            "generation": self.generation.to_string(),
            "metageneration": self.metageneration.to_string(),
            "contentType": self.content_type,
            "storageClass": "STANDARD",
            "size": self.content.len().to_string(),
            "md5Hash": self.md5_hash,
            "crc32c": self.crc32c,
            "etag": self.etag(),
            "timeCreated": time,
            "updated": time,
            "timeStorageClassUpdated": time,
        })
    }

    /// Opaque, changing with every generation.
    pub fn etag(&self) -> String {
        STANDARD.encode(self.generation.to_be_bytes())
    }
}

#[derive(Debug, Default)]
pub struct Store {
    buckets: BTreeMap<String, BTreeMap<String, Object>>,
    last_generation: i64,
}

fn precondition(
    current: Option<&Object>,
    if_generation_match: Option<i64>,
) -> Result<(), GcsError> {
    match if_generation_match {
        Some(wanted) if wanted != current.map_or(0, |o| o.generation) => {
            Err(GcsError::condition_not_met())
        }
        _ => Ok(()),
    }
}

impl Store {
    /// `true` when it did not exist.
    pub fn create_bucket(&mut self, name: &str) -> bool {
        if self.buckets.contains_key(name) {
            return false;
        }
        self.buckets.insert(name.to_owned(), BTreeMap::new());
        true
    }

    /// `(name, objects)` per bucket.
    pub fn bucket_counts(&self) -> Vec<(String, usize)> {
        self.buckets
            .iter()
            .map(|(n, o)| (n.clone(), o.len()))
            .collect()
    }

    fn bucket(&self, bucket: &str) -> Result<&BTreeMap<String, Object>, GcsError> {
        self.buckets
            .get(bucket)
            .ok_or_else(GcsError::no_such_bucket)
    }

    /// The object's current generation; with `generation`, only if that is the current one.
    pub fn get(
        &self,
        bucket: &str,
        name: &str,
        generation: Option<i64>,
    ) -> Result<&Object, GcsError> {
        self.bucket(bucket)?
            .get(name)
            .filter(|o| generation.is_none_or(|g| g == o.generation))
            .ok_or_else(|| GcsError::no_such_object(bucket, name))
    }

    pub fn put(
        &mut self,
        bucket: &str,
        name: &str,
        content: Vec<u8>,
        content_type: &str,
        if_generation_match: Option<i64>,
    ) -> Result<Object, GcsError> {
        precondition(self.bucket(bucket)?.get(name), if_generation_match)?;
        let now = Utc::now();
        self.last_generation = now.timestamp_micros().max(self.last_generation + 1);
        let object = Object {
            bucket: bucket.to_owned(),
            name: name.to_owned(),
            md5_hash: md5_base64(&content),
            crc32c: crc32c_base64(&content),
            content,
            content_type: content_type.to_owned(),
            generation: self.last_generation,
            metageneration: 1,
            created: now,
        };
        let objects = self.buckets.get_mut(bucket).expect("checked above");
        objects.insert(name.to_owned(), object.clone());
        Ok(object)
    }

    pub fn delete(
        &mut self,
        bucket: &str,
        name: &str,
        if_generation_match: Option<i64>,
    ) -> Result<Object, GcsError> {
        let current = self.get(bucket, name, None)?;
        precondition(Some(current), if_generation_match)?;
        let objects = self.buckets.get_mut(bucket).expect("checked above");
        Ok(objects.remove(name).expect("checked above"))
    }

    /// Objects of a bucket whose names start with `prefix`, in name order.
    pub fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<&Object>, GcsError> {
        Ok(self
            .bucket(bucket)?
            .range(prefix.to_owned()..)
            .take_while(|(name, _)| name.starts_with(prefix))
            .map(|(_, o)| o)
            .collect())
    }

    pub fn all(&self) -> impl Iterator<Item = &Object> {
        self.buckets.values().flat_map(|objects| objects.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_preconditions_and_listing() {
        let mut store = Store::default();
        assert!(store.create_bucket("b1") && !store.create_bucket("b1"));
        let missing = store
            .put("nope", "x", vec![], "text/plain", None)
            .unwrap_err();
        assert_eq!(missing.message, "The specified bucket does not exist.");
        let first = store
            .put("b1", "u/1.jpg", b"a".to_vec(), "image/jpeg", Some(0))
            .unwrap();
        let again = store.put("b1", "u/1.jpg", b"b".to_vec(), "image/jpeg", Some(0));
        assert_eq!(again.unwrap_err().reason, "conditionNotMet");
        let second = store
            .put(
                "b1",
                "u/1.jpg",
                b"b".to_vec(),
                "image/jpeg",
                Some(first.generation),
            )
            .unwrap();
        assert!(second.generation > first.generation);
        assert!(store.get("b1", "u/1.jpg", Some(first.generation)).is_err());
        store
            .put("b1", "u/2.jpg", vec![], "image/jpeg", None)
            .unwrap();
        store
            .put("b1", "v/1.jpg", vec![], "image/jpeg", None)
            .unwrap();
        assert_eq!(store.list("b1", "u/").unwrap().len(), 2);
        assert!(store.delete("b1", "u/2.jpg", Some(1)).is_err());
        store.delete("b1", "u/2.jpg", None).unwrap();
        assert_eq!(store.all().count(), 2);
        let meta = second.metadata("http://h");
        assert_eq!(meta["size"], "1");
        assert_eq!(meta["selfLink"], "http://h/storage/v1/b/b1/o/u%2F1.jpg");
    }
}
