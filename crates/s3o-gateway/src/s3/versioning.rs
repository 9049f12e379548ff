//! S3 versioning (DESIGN decision 25): Put/GetBucketVersioning, version-addressed reads,
//! DeleteObject with delete markers and ListObjectVersions. The ledger decides every rule; this
//! module speaks S3.

use s3o_store::{NULL_VERSION_ID, Versioning};

use super::*;
use crate::ledger::Version;

/// The `x-amz-version-id` a GET/HEAD/PUT/copy answers: the version's id, except the `null`
/// version of a key the client did not address by version (S3 answers no version id for a
/// write into a suspended bucket).
pub(super) fn answered_version(id: Option<&str>, asked: bool) -> Option<String> {
    id.filter(|v| asked || *v != NULL_VERSION_ID)
        .map(str::to_owned)
}

impl GatewayS3 {
    pub(super) async fn do_put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let i = req.input;
        self.bucket(&i.bucket).await?;
        let state = match i
            .versioning_configuration
            .status
            .as_ref()
            .map(|s| s.as_str())
        {
            Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "versioning status must be Enabled or Suspended"
                ));
            }
        };
        self.ledger
            .set_versioning(&i.bucket, state)
            .await
            .map_err(write_err)?;
        Ok(S3Response::new(PutBucketVersioningOutput::default()))
    }

    pub(super) async fn do_get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.bucket(&req.input.bucket).await?;
        let state = self
            .ledger
            .versioning(&req.input.bucket)
            .await
            .map_err(read_err)?;
        Ok(S3Response::new(GetBucketVersioningOutput {
            status: state.as_status().map(BucketVersioningStatus::from_static),
            ..GetBucketVersioningOutput::default()
        }))
    }

    /// Finds the version to read: the latest (`version` absent; a broadcast when the ledger
    /// is down) or the one named. A delete marker reads as `NoSuchKey` when it is the latest
    /// and as `MethodNotAllowed` when addressed, as S3 answers.
    pub(super) async fn lookup_at(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> S3Result<Found> {
        let lkey = keys::ledger_key(bucket, key);
        let found = match version {
            None => self.ledger.latest(&lkey).await,
            Some(v) => self.ledger.version(&lkey, v).await,
        };
        match found {
            Ok(Version::Object { version_id, copies }) => {
                let mut f = found_of(copies);
                f.meta.version_id = Some(version_id);
                Ok(f)
            }
            Ok(Version::Marker { version_id }) => {
                let mut e = if version.is_some() {
                    s3_error!(MethodNotAllowed, "the version is a delete marker")
                } else {
                    s3_error!(NoSuchKey)
                };
                let mut h = hyper::HeaderMap::new();
                h.insert(
                    "x-amz-delete-marker",
                    hyper::header::HeaderValue::from_static("true"),
                );
                if let Ok(v) = hyper::header::HeaderValue::from_str(&version_id) {
                    h.insert("x-amz-version-id", v);
                }
                e.set_headers(h);
                Err(e)
            }
            Err(e) if version.is_none() && is_outage(&e) => {
                self.metrics.event("broadcast_read");
                self.broadcast(bucket, key).await
            }
            Err(e) => Err(read_err(e)),
        }
    }

    /// DeleteObject with or without a version id; answers the version and marker headers.
    pub(super) async fn delete_one(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> S3Result<crate::ledger::Deleted> {
        let mut d = self
            .ledger
            .delete_in_bucket(bucket, &keys::ledger_key(bucket, key), version)
            .await
            .map_err(write_err)?;
        self.remove_displaced(std::mem::take(&mut d.displaced), "deleted")
            .await;
        Ok(d)
    }

    pub(super) async fn do_list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let i = req.input;
        self.bucket(&i.bucket).await?;
        let url = i
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL);
        let enc = |s: String| if url { list::url_encode(&s) } else { s };
        let prefix = i.prefix.clone().unwrap_or_default();
        let delimiter = i.delimiter.clone().unwrap_or_default();
        let key_marker = i.key_marker.clone().unwrap_or_default();
        let version_marker = i.version_id_marker.clone().unwrap_or_default();
        let bucket_prefix = keys::ledger_key(&i.bucket, "");
        let max_keys = i.max_keys.unwrap_or(1000);
        let page = if max_keys <= 0 {
            s3o_store::VersionListing::default()
        } else {
            self.ledger
                .list_versions(
                    &format!("{bucket_prefix}{prefix}"),
                    &delimiter,
                    &if key_marker.is_empty() {
                        String::new()
                    } else {
                        format!("{bucket_prefix}{key_marker}")
                    },
                    &version_marker,
                    i64::from(max_keys),
                )
                .await
                .map_err(read_err)?
        };
        let strip = |k: &str| k.strip_prefix(&bucket_prefix).unwrap_or(k).to_owned();
        let owner = self.s3_owner();
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        for v in &page.versions {
            if v.delete_marker {
                markers.push(DeleteMarkerEntry {
                    is_latest: Some(v.is_latest),
                    key: Some(enc(strip(&v.object_key))),
                    last_modified: Some(to_s3_time(v.created_at)),
                    owner: Some(owner.clone()),
                    version_id: Some(v.version_id.clone()),
                });
            } else {
                versions.push(ObjectVersion {
                    e_tag: (!v.etag.is_empty()).then(|| ETag::Strong(v.etag.clone())),
                    is_latest: Some(v.is_latest),
                    key: Some(enc(strip(&v.object_key))),
                    last_modified: Some(to_s3_time(v.created_at)),
                    owner: Some(owner.clone()),
                    size: Some(v.size_bytes),
                    storage_class: Some(ObjectVersionStorageClass::from_static(
                        ObjectVersionStorageClass::STANDARD,
                    )),
                    version_id: Some(v.version_id.clone()),
                    ..ObjectVersion::default()
                });
            }
        }
        let prefixes: Vec<CommonPrefix> = page
            .common_prefixes
            .iter()
            .map(|p| CommonPrefix {
                prefix: Some(enc(strip(p))),
            })
            .collect();
        let truncated = page.is_truncated;
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(i.bucket.clone()),
            prefix: Some(enc(prefix)),
            key_marker: Some(enc(key_marker)),
            version_id_marker: Some(version_marker),
            delimiter: (!delimiter.is_empty()).then(|| enc(delimiter)),
            max_keys: Some(max_keys),
            is_truncated: Some(truncated),
            next_key_marker: truncated.then(|| enc(strip(&page.next_key_marker))),
            next_version_id_marker: truncated
                .then(|| page.next_version_id_marker.clone())
                .filter(|v| !v.is_empty()),
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            versions: (!versions.is_empty()).then_some(versions),
            delete_markers: (!markers.is_empty()).then_some(markers),
            encoding_type: i.encoding_type.clone(),
            ..ListObjectVersionsOutput::default()
        }))
    }
}
